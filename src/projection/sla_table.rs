//! The `sla_clocks` table.
//!
//! Snapshots keep one *raw* batch per ticket block: the clock fields as the engine holds them
//! (elapsed time up to the last change, the deadline while running …). They change only when
//! an event changes the ticket, so unchanged blocks are shared between snapshots. What depends
//! on the time of the query — elapsed time of a running clock, state, level, percent — is
//! computed when the table is scanned, by the same [`Clock::live`] the API and alerts use.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt8Array, UInt16Array,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, UInt8Type, UInt16Type,
};

use super::TicketState;
use crate::base::Millis;
use crate::base::interner::Interner;
use crate::sla::{Clock, ClockKind, Phase, Rules, TicketSla};

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

fn dict32() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Raw columns, in order.
pub static RAW_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("ticket_id", DataType::Utf8, false),
        Field::new("tenant", dict32(), true),
        Field::new("priority", dict32(), false),
        Field::new("assignment_group", dict32(), true),
        Field::new("clock", dict32(), false),
        Field::new("policy", DataType::UInt16, false),
        Field::new("calendar", DataType::UInt16, false),
        Field::new("phase", DataType::UInt8, false),
        Field::new("reached", DataType::UInt8, false),
        Field::new("target_ms", DataType::Int64, false),
        Field::new("started_at", DataType::Int64, false),
        Field::new("elapsed_ms", DataType::Int64, false),
        Field::new("mark", DataType::Int64, false),
        Field::new("deadline", DataType::Int64, false),
        Field::new("paused_ms", DataType::Int64, false),
        Field::new("paused_since", DataType::Int64, false),
        Field::new("stopped_at", DataType::Int64, false),
        Field::new("breached_at", DataType::Int64, false),
        Field::new("cycles", DataType::UInt16, false),
        Field::new("breaches", DataType::UInt16, false),
        Field::new("title", DataType::Utf8, false),
    ]))
});

/// Schema of `sla_clocks`: one row per started clock of a ticket, valued at `as_of`.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("ticket_id", DataType::Utf8, false),
        Field::new("tenant", dict32(), true),
        Field::new("priority", dict32(), false),
        Field::new("assignment_group", dict32(), true),
        Field::new("clock", dict32(), false),
        Field::new("policy", DataType::Utf8, false),
        Field::new("calendar", DataType::Utf8, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("level", DataType::UInt8, false),
        Field::new("target_seconds", DataType::Float64, false),
        Field::new("elapsed_seconds", DataType::Float64, false),
        Field::new("remaining_seconds", DataType::Float64, false),
        Field::new("percent", DataType::Float64, false),
        Field::new("paused_seconds", DataType::Float64, false),
        Field::new("started_at", ts(), false),
        Field::new("deadline", ts(), true),
        Field::new("breached_at", ts(), true),
        Field::new("stopped_at", ts(), true),
        Field::new("cycles", DataType::UInt16, false),
        Field::new("breaches", DataType::UInt16, false),
        Field::new("title", DataType::Utf8, false),
        Field::new("as_of", ts(), false),
    ]))
});

fn phase_code(p: Phase) -> u8 {
    match p {
        Phase::Idle => 0,
        Phase::Open => 1,
        Phase::Stopped => 2,
        Phase::Cancelled => 3,
    }
}

fn phase_of(code: u8) -> Phase {
    match code {
        1 => Phase::Open,
        2 => Phase::Stopped,
        3 => Phase::Cancelled,
        _ => Phase::Idle,
    }
}

/// The raw batch of one block of tickets; `None` when no ticket in it has a started clock.
pub fn raw_batch(
    tickets: &[TicketState],
    sla: &[Option<Box<TicketSla>>],
    strings: &Interner,
) -> Option<RecordBatch> {
    use datafusion::arrow::array::StringDictionaryBuilder;
    use datafusion::arrow::datatypes::Int32Type;
    let mut ids = Vec::new();
    let mut titles = Vec::new();
    let mut tenant = StringDictionaryBuilder::<Int32Type>::new();
    let mut priority = StringDictionaryBuilder::<Int32Type>::new();
    let mut group = StringDictionaryBuilder::<Int32Type>::new();
    let mut clock = StringDictionaryBuilder::<Int32Type>::new();
    let (mut policy, mut calendar, mut phase, mut reached) = (vec![], vec![], vec![], vec![]);
    let mut i64s: [Vec<i64>; 9] = Default::default();
    let (mut cycles, mut breaches) = (vec![], vec![]);
    for (t, s) in tickets.iter().zip(sla) {
        let Some(s) = s else { continue };
        for c in s.clocks.iter().filter(|c| c.phase != Phase::Idle) {
            ids.push(strings.resolve(t.ticket_id));
            titles.push(&*t.title);
            tenant.append_option(strings.resolve_opt(t.tenant));
            priority.append_value(t.priority.as_str());
            group.append_option(strings.resolve_opt(t.group));
            clock.append_value(c.kind.as_str());
            policy.push(s.policy);
            calendar.push(c.calendar);
            phase.push(phase_code(c.phase));
            reached.push(c.reached);
            for (col, v) in i64s.iter_mut().zip([
                c.target_ms,
                c.started_at,
                c.elapsed_ms,
                c.mark,
                c.deadline,
                c.paused_ms,
                s.paused_since,
                c.stopped_at,
                c.breached_at,
            ]) {
                col.push(v);
            }
            cycles.push(c.cycles);
            breaches.push(c.breaches);
        }
    }
    if ids.is_empty() {
        return None;
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(tenant.finish()),
        Arc::new(priority.finish()),
        Arc::new(group.finish()),
        Arc::new(clock.finish()),
        Arc::new(UInt16Array::from(policy)),
        Arc::new(UInt16Array::from(calendar)),
        Arc::new(UInt8Array::from(phase)),
        Arc::new(UInt8Array::from(reached)),
    ];
    for col in i64s {
        columns.push(Arc::new(Int64Array::from(col)));
    }
    columns.push(Arc::new(UInt16Array::from(cycles)));
    columns.push(Arc::new(UInt16Array::from(breaches)));
    columns.push(Arc::new(StringArray::from(titles)));
    RecordBatch::try_new(RAW_SCHEMA.clone(), columns).ok()
}

/// The clocks of a raw batch, decoded column by column (the clock kinds once per dictionary
/// value, not once per row).
#[derive(Debug)]
pub struct RawClocks<'a> {
    raw: &'a RecordBatch,
    kinds: Vec<ClockKind>,
    keys: Vec<usize>,
}

impl<'a> RawClocks<'a> {
    /// Decodes `raw`.
    pub fn new(raw: &'a RecordBatch) -> Self {
        let d = raw.column(4).as_any_dictionary();
        let values = d.values().as_string::<i32>();
        let kinds = values
            .iter()
            .map(|v| {
                v.and_then(ClockKind::parse)
                    .unwrap_or(ClockKind::Resolution)
            })
            .collect();
        RawClocks {
            raw,
            kinds,
            keys: d.normalized_keys(),
        }
    }

    /// The clock and its context (policy, paused since) stored in row `i`.
    pub fn at(&self, i: usize) -> (Clock, u16, Millis) {
        let raw = self.raw;
        let u16s = |c: usize| raw.column(c).as_primitive::<UInt16Type>().value(i);
        let u8s = |c: usize| raw.column(c).as_primitive::<UInt8Type>().value(i);
        let i64s = |c: usize| raw.column(c).as_primitive::<Int64Type>().value(i);
        let clock = Clock {
            kind: self.kinds[self.keys[i]],
            phase: phase_of(u8s(7)),
            reached: u8s(8),
            calendar: u16s(6),
            target_ms: i64s(9),
            started_at: i64s(10),
            elapsed_ms: i64s(11),
            mark: i64s(12),
            deadline: i64s(13),
            paused_ms: i64s(14),
            stopped_at: i64s(16),
            breached_at: i64s(17),
            cycles: u16s(18),
            breaches: u16s(19),
            generation: 0,
        };
        (clock, u16s(5), i64s(15))
    }
}

/// What a listing needs to know of a raw batch before valuing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSummary {
    /// Open clocks (running or paused): the only ones whose state depends on the time.
    pub open: usize,
    /// Latest instant any clock of the block breached, or can have breached by `now`.
    pub latest_breach: Option<Millis>,
}

/// The summary of a raw batch at `now`, from whole columns (no row is valued).
pub fn summary(raw: &RecordBatch, now: Millis) -> BlockSummary {
    use datafusion::arrow::compute::kernels::aggregate::max;
    let phase = raw.column(7).as_primitive::<UInt8Type>();
    let open = phase
        .values()
        .iter()
        .filter(|&&p| p == phase_code(Phase::Open))
        .count();
    let stored = max(raw.column(17).as_primitive::<Int64Type>()).filter(|&b| b != Millis::MIN);
    // An open clock has breached by its deadline at the latest; bounded by now.
    let live = (open > 0).then_some(now);
    BlockSummary {
        open,
        latest_breach: stored.max(live),
    }
}

/// The rows of `raw` that `keep` selects, as a raw batch.
pub fn select(raw: &RecordBatch, keep: impl Fn(&RawClocks<'_>, usize) -> bool) -> RecordBatch {
    use datafusion::arrow::array::BooleanArray;
    let clocks = RawClocks::new(raw);
    let mask: BooleanArray = (0..raw.num_rows())
        .map(|i| Some(keep(&clocks, i)))
        .collect();
    datafusion::arrow::compute::filter_record_batch(raw, &mask)
        .expect("a mask as long as the batch")
}

/// Whether row `i` is open.
pub fn is_open(clocks: &RawClocks<'_>, i: usize) -> bool {
    clocks.raw.column(7).as_primitive::<UInt8Type>().value(i) == phase_code(Phase::Open)
}

/// Whether row `i` has no stop time (`stopped_at` is null).
pub fn is_not_stopped(clocks: &RawClocks<'_>, i: usize) -> bool {
    clocks.raw.column(16).as_primitive::<Int64Type>().value(i) == Millis::MIN
}

/// Whether row `i` is open or has breached (the clocks the breach listing may show).
pub fn may_have_breached(clocks: &RawClocks<'_>, i: usize) -> bool {
    is_open(clocks, i) || clocks.raw.column(17).as_primitive::<Int64Type>().value(i) != Millis::MIN
}

/// Clocks of a raw batch that have breached by `now`: stopped ones from their stored breach,
/// only the open ones valued.
pub fn breached_count(raw: &RecordBatch, rules: &Rules, now: Millis) -> usize {
    let clocks = RawClocks::new(raw);
    let breached = raw.column(17).as_primitive::<Int64Type>().values();
    (0..raw.num_rows())
        .filter(|&i| {
            breached[i] != Millis::MIN
                || (is_open(&clocks, i) && {
                    let (c, p, paused_since) = clocks.at(i);
                    c.live(rules, p, paused_since, now).breached_at.is_some()
                })
        })
        .count()
}

/// Row counts of the raw batches valued by [`evaluate`] without valuing them: an empty
/// projection (`count(*)`) needs only them.
pub fn row_counts(raw: &RecordBatch) -> RecordBatch {
    let options =
        datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(raw.num_rows()));
    RecordBatch::try_new_with_options(Arc::new(Schema::empty()), vec![], &options)
        .expect("an empty batch with a row count")
}

/// `sla_clocks` rows of one raw batch, valued at `now`.
pub fn evaluate(raw: &RecordBatch, rules: &Rules, now: Millis) -> RecordBatch {
    let n = raw.num_rows();
    let mut policy = Vec::with_capacity(n);
    let mut calendar = Vec::with_capacity(n);
    let mut state = Vec::with_capacity(n);
    let mut level = Vec::with_capacity(n);
    let (mut target, mut elapsed, mut remaining, mut percent, mut paused) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut started, mut deadline, mut breached, mut stopped) = (vec![], vec![], vec![], vec![]);
    let clocks = RawClocks::new(raw);
    for i in 0..n {
        let (c, p, paused_since) = clocks.at(i);
        let live = c.live(rules, p, paused_since, now);
        policy.push(
            rules
                .policies
                .get(p as usize)
                .map_or("", |x| x.name.as_str()),
        );
        calendar.push(
            rules
                .calendars
                .get(c.calendar as usize)
                .map_or("", |x| x.name.as_str()),
        );
        state.push(live.state);
        level.push(live.level);
        target.push(c.target_ms as f64 / 1000.0);
        elapsed.push(live.elapsed_ms as f64 / 1000.0);
        remaining.push((c.target_ms - live.elapsed_ms) as f64 / 1000.0);
        percent.push(if c.target_ms > 0 {
            live.elapsed_ms as f64 * 100.0 / c.target_ms as f64
        } else {
            0.0
        });
        paused.push(live.paused_ms as f64 / 1000.0);
        started.push(c.started_at);
        deadline.push(live.deadline.filter(|&d| d != Millis::MAX));
        breached.push(live.breached_at);
        stopped.push((c.stopped_at != Millis::MIN).then_some(c.stopped_at));
    }
    let tsa = |v: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(v).with_timezone("UTC"))
    };
    let columns: Vec<ArrayRef> = vec![
        raw.column(0).clone(),
        raw.column(1).clone(),
        raw.column(2).clone(),
        raw.column(3).clone(),
        raw.column(4).clone(),
        Arc::new(StringArray::from(policy)),
        Arc::new(StringArray::from(calendar)),
        Arc::new(StringArray::from(state)),
        Arc::new(UInt8Array::from(level)),
        Arc::new(Float64Array::from(target)),
        Arc::new(Float64Array::from(elapsed)),
        Arc::new(Float64Array::from(remaining)),
        Arc::new(Float64Array::from(percent)),
        Arc::new(Float64Array::from(paused)),
        Arc::new(TimestampMillisecondArray::from(started).with_timezone("UTC")),
        tsa(deadline),
        tsa(breached),
        tsa(stopped),
        raw.column(18).clone(),
        raw.column(19).clone(),
        raw.column(20).clone(),
        Arc::new(TimestampMillisecondArray::from(vec![now; n]).with_timezone("UTC")),
    ];
    RecordBatch::try_new(SCHEMA.clone(), columns).expect("sla_clocks columns match the schema")
}
