//! Arrow schemas of the projected tables and the code that builds their record batches.
//!
//! Strings are dictionary-encoded (`Int8` keys for closed sets such as status, `Int32` keys for
//! open ones such as groups); instants are `Timestamp(ms, "UTC")`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, StringDictionaryBuilder,
    TimestampMillisecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{
    ArrowDictionaryKeyType, DataType, Field, Int8Type, Int32Type, Schema, SchemaRef, TimeUnit,
};

use super::TicketState;
use super::history::OpenChunk;
use crate::base::interner::{Interner, Sym};

/// Tickets per block of the `tickets` table (the unit of incremental snapshots).
pub const TICKET_BLOCK: usize = 16 * 1024;
/// Name of the event id column.
pub const EVENT_ID: &str = "event_id";
/// Name of the ticket id column of `ticket_events`.
pub const TICKET_ID: &str = "ticket_id";
/// Position of `event_id` in the `ticket_events` schema.
pub const EVENT_ID_COLUMN: usize = 1;
/// Position of `ticket_id` in the `ticket_events` schema.
pub const TICKET_ID_COLUMN: usize = 2;

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn dict8() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8))
}

fn dict32() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Schema of `ticket_events`: one row per accepted event.
pub static EVENTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("log_offset", DataType::UInt64, false),
        Field::new(EVENT_ID, DataType::Utf8, false),
        Field::new("ticket_id", dict32(), false),
        Field::new("tenant", dict32(), true),
        Field::new("event_type", dict8(), false),
        Field::new("occurred_at", ts(), false),
        Field::new("actor_id", dict32(), false),
        Field::new("actor_role", dict8(), false),
        Field::new("status_after", dict8(), false),
        Field::new("priority_after", dict8(), false),
        Field::new("assignment_group", dict32(), true),
        Field::new("agent", dict32(), true),
        Field::new("tier", DataType::UInt8, true),
        Field::new("minutes", DataType::UInt32, true),
        Field::new("public", DataType::Boolean, true),
        Field::new("note", dict32(), true),
    ]))
});

/// Schema of `tickets`: one row per ticket, current state.
pub static TICKETS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("ticket_id", DataType::Utf8, false),
        Field::new("tenant", dict32(), true),
        Field::new("status", dict8(), false),
        Field::new("priority", dict8(), false),
        Field::new("channel", dict8(), false),
        Field::new("category", dict32(), false),
        Field::new("subcategory", dict32(), true),
        Field::new("configuration_item", dict32(), true),
        Field::new("service", dict32(), true),
        Field::new("requester", dict32(), false),
        Field::new("assignment_group", dict32(), true),
        Field::new("agent", dict32(), true),
        Field::new("tier", DataType::UInt8, true),
        Field::new("title", DataType::Utf8, false),
        Field::new("created_at", ts(), false),
        Field::new("first_assigned_at", ts(), true),
        Field::new("first_response_at", ts(), true),
        Field::new("resolved_at", ts(), true),
        Field::new("closed_at", ts(), true),
        Field::new("reopen_count", DataType::UInt16, false),
        Field::new("reassignment_count", DataType::UInt16, false),
        Field::new("handoff_count", DataType::UInt16, false),
        Field::new("escalation_count", DataType::UInt16, false),
        Field::new("handle_minutes", DataType::UInt32, false),
        Field::new("active_minutes", DataType::Float64, false),
        Field::new("last_event_at", ts(), false),
        Field::new("event_count", DataType::UInt32, false),
        Field::new("first_contact", DataType::Boolean, true),
        Field::new("resolution_code", dict32(), true),
        Field::new("kb_article", dict32(), true),
    ]))
});

fn dict<'a, K: ArrowDictionaryKeyType>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    let mut b = StringDictionaryBuilder::<K>::new();
    for v in values {
        b.append_option(v);
    }
    Arc::new(b.finish())
}

fn syms<'a, T: 'a>(
    strings: &'a Interner,
    rows: &'a [T],
    f: impl Fn(&T) -> Option<Sym> + 'a,
) -> impl Iterator<Item = Option<&'a str>> + 'a {
    rows.iter().map(move |r| f(r).map(|s| strings.resolve(s)))
}

fn times(values: impl Iterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMillisecondArray::from(values.collect::<Vec<_>>()).with_timezone("UTC"))
}

/// Builds the `ticket_events` batch of a chunk of rows.
pub fn events_batch(chunk: &OpenChunk, strings: &Interner) -> RecordBatch {
    let rows = &chunk.rows;
    let ids = StringArray::from_iter_values((0..rows.len()).map(|i| {
        let start = if i == 0 {
            0
        } else {
            chunk.id_ends[i - 1] as usize
        };
        &chunk.ids[start..chunk.id_ends[i] as usize]
    }));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|r| r.offset))),
        Arc::new(ids),
        dict::<Int32Type>(syms(strings, rows, |r| Some(r.ticket))),
        dict::<Int32Type>(syms(strings, rows, |r| r.tenant)),
        dict::<Int8Type>(rows.iter().map(|r| Some(r.event_type.as_str()))),
        times(rows.iter().map(|r| Some(r.occurred_at))),
        dict::<Int32Type>(syms(strings, rows, |r| Some(r.actor))),
        dict::<Int8Type>(rows.iter().map(|r| Some(r.actor_role.as_str()))),
        dict::<Int8Type>(rows.iter().map(|r| Some(r.status_after.as_str()))),
        dict::<Int8Type>(rows.iter().map(|r| Some(r.priority_after.as_str()))),
        dict::<Int32Type>(syms(strings, rows, |r| r.group)),
        dict::<Int32Type>(syms(strings, rows, |r| r.agent)),
        Arc::new(UInt8Array::from(
            rows.iter().map(|r| r.tier).collect::<Vec<_>>(),
        )),
        Arc::new(UInt32Array::from(
            rows.iter().map(|r| r.minutes).collect::<Vec<_>>(),
        )),
        Arc::new(BooleanArray::from(
            rows.iter().map(|r| r.public).collect::<Vec<_>>(),
        )),
        dict::<Int32Type>(syms(strings, rows, |r| r.note)),
    ];
    // The columns are built to match EVENTS_SCHEMA exactly.
    RecordBatch::try_new(EVENTS_SCHEMA.clone(), columns)
        .unwrap_or_else(|e| panic!("ticket_events batch does not match its schema: {e}"))
}

/// Builds the `tickets` batch of a slice of tickets.
pub fn tickets_batch(tickets: &[TicketState], strings: &Interner) -> RecordBatch {
    let t = tickets;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            t.iter().map(|t| strings.resolve(t.ticket_id)),
        )),
        dict::<Int32Type>(syms(strings, t, |t| t.tenant)),
        dict::<Int8Type>(t.iter().map(|t| Some(t.status.as_str()))),
        dict::<Int8Type>(t.iter().map(|t| Some(t.priority.as_str()))),
        dict::<Int8Type>(t.iter().map(|t| Some(t.channel.as_str()))),
        dict::<Int32Type>(syms(strings, t, |t| Some(t.category))),
        dict::<Int32Type>(syms(strings, t, |t| t.subcategory)),
        dict::<Int32Type>(syms(strings, t, |t| t.configuration_item)),
        dict::<Int32Type>(syms(strings, t, |t| t.service)),
        dict::<Int32Type>(syms(strings, t, |t| Some(t.requester))),
        dict::<Int32Type>(syms(strings, t, |t| t.group)),
        dict::<Int32Type>(syms(strings, t, |t| t.agent)),
        Arc::new(UInt8Array::from(
            t.iter()
                .map(|t| (t.tier > 0).then_some(t.tier))
                .collect::<Vec<_>>(),
        )),
        Arc::new(StringArray::from_iter_values(t.iter().map(|t| &*t.title))),
        times(t.iter().map(|t| Some(t.created_at))),
        times(t.iter().map(|t| t.first_assigned_at)),
        times(t.iter().map(|t| t.first_response_at)),
        times(t.iter().map(|t| t.resolved_at)),
        times(t.iter().map(|t| t.closed_at)),
        Arc::new(UInt16Array::from_iter_values(
            t.iter().map(|t| t.reopen_count),
        )),
        Arc::new(UInt16Array::from_iter_values(
            t.iter().map(|t| t.reassignment_count),
        )),
        Arc::new(UInt16Array::from_iter_values(
            t.iter().map(|t| t.handoff_count),
        )),
        Arc::new(UInt16Array::from_iter_values(
            t.iter().map(|t| t.escalation_count),
        )),
        Arc::new(UInt32Array::from_iter_values(
            t.iter().map(|t| t.handle_minutes),
        )),
        Arc::new(Float64Array::from_iter_values(
            t.iter().map(|t| f64::from(t.active_seconds) / 60.0),
        )),
        times(t.iter().map(|t| Some(t.last_event_at))),
        Arc::new(UInt32Array::from_iter_values(
            t.iter().map(|t| t.event_count),
        )),
        Arc::new(BooleanArray::from(
            t.iter().map(|t| t.first_contact).collect::<Vec<_>>(),
        )),
        dict::<Int32Type>(syms(strings, t, |t| t.resolution_code)),
        dict::<Int32Type>(syms(strings, t, |t| t.kb_article)),
    ];
    // The columns are built to match TICKETS_SCHEMA exactly.
    RecordBatch::try_new(TICKETS_SCHEMA.clone(), columns)
        .unwrap_or_else(|e| panic!("tickets batch does not match its schema: {e}"))
}
