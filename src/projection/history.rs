//! The event history (`ticket_events`): sealed Arrow chunks plus one open chunk, and the
//! `event_id` dedup index.
//!
//! Rows are appended to the open chunk; every [`CHUNK_ROWS`] rows it is sealed into an
//! immutable Arrow [`RecordBatch`] that snapshots share without copying and checkpoints write
//! once. The dedup index is a hash table of row numbers keyed by the xxh3 hash of the event
//! id; a hit is confirmed against the stored id, so a hash collision never drops an event.

use datafusion::arrow::array::{Array, RecordBatch, StringArray};
use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::tables;
use crate::base::RestoreError;
use crate::base::interner::{Interner, Sym};
use crate::event::{EventType, Priority, Role, Status};

/// Rows per sealed chunk.
pub const CHUNK_ROWS: usize = 32 * 1024;

/// One accepted event, as kept in the history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRow {
    /// Log offset of the event.
    pub offset: u64,
    /// Ticket id.
    pub ticket: Sym,
    /// Tenant.
    pub tenant: Option<Sym>,
    /// Type.
    pub event_type: EventType,
    /// Event time, ms.
    pub occurred_at: i64,
    /// Actor id.
    pub actor: Sym,
    /// Actor role.
    pub actor_role: Role,
    /// Ticket status after the event.
    pub status_after: Status,
    /// Ticket priority after the event.
    pub priority_after: Priority,
    /// Group (assigned, escalated).
    pub group: Option<Sym>,
    /// Agent (assigned, work_logged).
    pub agent: Option<Sym>,
    /// Tier (assigned, escalated).
    pub tier: Option<u8>,
    /// Minutes (work_logged).
    pub minutes: Option<u32>,
    /// Public comment (commented).
    pub public: Option<bool>,
    /// Reason or resolution code.
    pub note: Option<Sym>,
}

/// The rows not yet sealed, in a form a checkpoint can save.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct OpenChunk {
    /// Event ids, concatenated.
    pub ids: String,
    /// End of each id in `ids`.
    pub id_ends: Vec<u32>,
    /// The rows.
    pub rows: Vec<EventRow>,
}

impl OpenChunk {
    fn id(&self, i: usize) -> &str {
        let start = if i == 0 {
            0
        } else {
            self.id_ends[i - 1] as usize
        };
        &self.ids[start..self.id_ends[i] as usize]
    }
}

/// The history and dedup index.
#[derive(Debug, Default)]
pub struct History {
    sealed: Vec<RecordBatch>,
    sealed_ids: Vec<StringArray>,
    open: OpenChunk,
    index: HashTable<u32>,
}

impl History {
    /// Rebuilds a history from sealed chunks and the open rows (checkpoint load).
    pub fn restore(sealed: Vec<RecordBatch>, open: OpenChunk) -> Result<History, RestoreError> {
        let mut sealed_ids = Vec::with_capacity(sealed.len());
        for (i, batch) in sealed.iter().enumerate() {
            if batch.num_rows() != CHUNK_ROWS {
                return Err(RestoreError::Inconsistent(format!(
                    "sealed chunk {i} has {} rows, expected {CHUNK_ROWS}",
                    batch.num_rows()
                )));
            }
            let ids = batch
                .column_by_name(tables::EVENT_ID)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| {
                    RestoreError::Inconsistent(format!(
                        "sealed chunk {i} has no {} column",
                        tables::EVENT_ID
                    ))
                })?;
            sealed_ids.push(ids.clone());
        }
        let mut history = History {
            sealed,
            sealed_ids,
            open,
            index: HashTable::new(),
        };
        let total = history.len();
        history.index.reserve(total as usize, |_| 0);
        for row in 0..total as u32 {
            let hash = xxh3_64(history.id(row).as_bytes());
            let (index, ids, open) = (&mut history.index, &history.sealed_ids, &history.open);
            index.insert_unique(hash, row, |&r| xxh3_64(id_of(ids, open, r).as_bytes()));
        }
        Ok(history)
    }

    /// Rows in the history.
    pub fn len(&self) -> u64 {
        (self.sealed.len() * CHUNK_ROWS + self.open.rows.len()) as u64
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn id(&self, row: u32) -> &str {
        id_of(&self.sealed_ids, &self.open, row)
    }

    /// Whether `event_id` is in the history.
    pub fn contains(&self, event_id: &str) -> bool {
        let hash = xxh3_64(event_id.as_bytes());
        self.index.find(hash, |&r| self.id(r) == event_id).is_some()
    }

    /// Appends an accepted event. The caller has checked it is not a duplicate.
    pub fn push(&mut self, event_id: &str, row: EventRow, strings: &Interner) {
        let row_no = self.len() as u32;
        self.open.ids.push_str(event_id);
        self.open.id_ends.push(self.open.ids.len() as u32);
        self.open.rows.push(row);
        let hash = xxh3_64(event_id.as_bytes());
        let (index, ids, open) = (&mut self.index, &self.sealed_ids, &self.open);
        index.insert_unique(hash, row_no, |&r| xxh3_64(id_of(ids, open, r).as_bytes()));
        if self.open.rows.len() == CHUNK_ROWS {
            self.seal(strings);
        }
    }

    fn seal(&mut self, strings: &Interner) {
        let batch = tables::events_batch(&self.open, strings);
        let ids = batch
            .column_by_name(tables::EVENT_ID)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            .cloned();
        // events_batch always writes the event_id column as Utf8.
        if let Some(ids) = ids {
            self.sealed.push(batch);
            self.sealed_ids.push(ids);
            self.open = OpenChunk::default();
        }
    }

    /// The sealed chunks.
    pub fn sealed(&self) -> &[RecordBatch] {
        &self.sealed
    }

    /// The open rows.
    pub fn open(&self) -> &OpenChunk {
        &self.open
    }

    /// All history as batches: the sealed chunks (shared) and the open rows (built now).
    pub fn batches(&self, strings: &Interner) -> Vec<RecordBatch> {
        let mut out = self.sealed.clone();
        if !self.open.rows.is_empty() {
            out.push(tables::events_batch(&self.open, strings));
        }
        out
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.sealed
            .iter()
            .map(RecordBatch::get_array_memory_size)
            .sum::<usize>()
            + self.open.ids.capacity()
            + self.open.id_ends.capacity() * 4
            + self.open.rows.capacity() * std::mem::size_of::<EventRow>()
            + self.index.capacity() * 5
    }
}

fn id_of<'a>(sealed: &'a [StringArray], open: &'a OpenChunk, row: u32) -> &'a str {
    let row = row as usize;
    let chunk = row / CHUNK_ROWS;
    match sealed.get(chunk) {
        Some(ids) => ids.value(row % CHUNK_ROWS),
        None => open.id(row - sealed.len() * CHUNK_ROWS),
    }
}
