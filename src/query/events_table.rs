//! `ticket_events` as DataFusion sees it: the snapshot's history chunks, read lazily.
//!
//! Chunks that left the heap are read from their files one at a time as the query consumes
//! them, and only for the columns it uses, so a query over ten million events holds a chunk's
//! worth of rows per partition, not the history. `ticket_id` is stored dictionary-encoded and
//! shown as `Utf8View`: grouping and joining on a view is several times faster, and the cast
//! shares the dictionary's bytes. `ticket_id = '…'` (a ticket's page) skips every chunk whose
//! ticket hashes rule the ticket out, and keeps only the ticket's rows of the others.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::catalog::{Session, TableProvider};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};

use super::ticket_id_equals;
use crate::projection::Snapshot;
use crate::projection::history::EventChunk;
use crate::projection::tables::{EVENTS_SCHEMA, TICKET_ID, TICKET_ID_COLUMN};

/// The `ticket_events` table of the latest published snapshot.
pub(super) struct EventsTable {
    /// The schema queries see (`ticket_id` as `Utf8View`).
    schema: SchemaRef,
    source: Arc<arc_swap::ArcSwap<Snapshot>>,
    partitions: usize,
}

impl EventsTable {
    pub(super) fn new(source: Arc<arc_swap::ArcSwap<Snapshot>>, partitions: usize) -> EventsTable {
        let fields: Vec<FieldRef> = EVENTS_SCHEMA
            .fields()
            .iter()
            .map(|f| {
                if f.name() == TICKET_ID {
                    Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View))
                } else {
                    f.clone()
                }
            })
            .collect();
        EventsTable {
            schema: Arc::new(Schema::new(fields)),
            source,
            partitions: partitions.max(1),
        }
    }
}

impl fmt::Debug for EventsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventsTable").finish_non_exhaustive()
    }
}

/// What one partition of a scan reads.
#[derive(Debug, Clone)]
struct Read {
    /// Columns of the stored chunk to read (the projection, plus `ticket_id` when filtering).
    columns: Vec<usize>,
    /// Positions in `columns` of the projection's columns.
    keep: Vec<usize>,
    /// Only the rows of this ticket.
    ticket: Option<String>,
    /// The schema of the output.
    schema: SchemaRef,
}

impl Read {
    /// The rows of `chunk` this scan returns, or `None` when there are none.
    fn chunk(&self, chunk: &EventChunk) -> Result<Option<RecordBatch>, ArrowError> {
        let mut batch = chunk.read(&self.columns)?;
        if let Some(id) = &self.ticket {
            let at = self.columns.len() - 1;
            match rows_of_ticket(&batch, at, id)? {
                Some(rows) => batch = rows,
                None => return Ok(None),
            }
        }
        let columns = self
            .keep
            .iter()
            .zip(self.schema.fields())
            .map(|(&c, f)| {
                let column = batch.column(c);
                if column.data_type() == f.data_type() {
                    Ok(column.clone())
                } else {
                    datafusion::arrow::compute::cast(column, f.data_type())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options).map(Some)
    }
}

/// The rows of `batch` whose dictionary-encoded ticket id (column `at`) is `id`.
fn rows_of_ticket(
    batch: &RecordBatch,
    at: usize,
    id: &str,
) -> Result<Option<RecordBatch>, ArrowError> {
    let column = batch.column(at);
    let Some(dictionary) = column.as_any_dictionary_opt() else {
        return Ok(Some(batch.clone()));
    };
    let values = dictionary.values().as_string::<i32>();
    let Some(key) = (0..values.len()).find(|&k| values.value(k) == id) else {
        return Ok(None);
    };
    let keys = dictionary.normalized_keys();
    let mask: BooleanArray = keys.iter().map(|&k| Some(k == key)).collect();
    let rows = datafusion::arrow::compute::filter_record_batch(batch, &mask)?;
    Ok((rows.num_rows() > 0).then_some(rows))
}

/// One partition: a share of the chunks, read as the stream is polled.
#[derive(Debug)]
struct Partition {
    chunks: Vec<EventChunk>,
    read: Read,
}

impl PartitionStream for Partition {
    fn schema(&self) -> &SchemaRef {
        &self.read.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let read = self.read.clone();
        // A chunk read is a few positioned reads of a local file (usually from the page
        // cache), small enough to do on the executor's thread.
        let batches = self
            .chunks
            .clone()
            .into_iter()
            .filter_map(move |chunk| read.chunk(&chunk).map_err(Into::into).transpose());
        Box::pin(RecordBatchStreamAdapter::new(
            self.read.schema.clone(),
            futures_util::stream::iter(batches),
        ))
    }
}

#[async_trait]
impl TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match ticket_id_equals(f) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let snapshot = self.source.load_full();
        let mut columns: Vec<usize> = projection
            .cloned()
            .unwrap_or_else(|| (0..self.schema.fields().len()).collect());
        let schema = Arc::new(self.schema.project(&columns)?);
        let keep = (0..columns.len()).collect();
        let ticket = filters.iter().find_map(ticket_id_equals);
        if ticket.is_some() {
            columns.push(TICKET_ID_COLUMN);
        }
        let read = Read {
            columns,
            keep,
            ticket: ticket.clone(),
            schema: schema.clone(),
        };
        let chunks = snapshot
            .events
            .iter()
            .filter(|c| ticket.as_deref().is_none_or(|id| c.may_hold_ticket(id)));
        let mut shares: Vec<Vec<EventChunk>> = vec![Vec::new(); self.partitions];
        for (i, chunk) in chunks.enumerate() {
            shares[i % self.partitions].push(chunk.clone());
        }
        shares.retain(|s| !s.is_empty());
        if shares.is_empty() {
            shares.push(Vec::new());
        }
        let partitions = shares
            .into_iter()
            .map(|chunks| {
                Arc::new(Partition {
                    chunks,
                    read: read.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            schema,
            partitions,
            None,
            [],
            false,
            limit,
        )?))
    }
}
