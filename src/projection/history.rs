//! The event history (`ticket_events`): sealed Arrow chunks plus one open chunk, and the
//! `event_id` dedup index.
//!
//! Rows are appended to the open chunk; every [`CHUNK_ROWS`] rows it is sealed into an
//! immutable Arrow [`RecordBatch`] that snapshots share without copying. Once a checkpoint has
//! written a sealed chunk to disk, the chunk is swapped for a [`ChunkFile`] handle and its rows
//! leave the heap: resident memory follows the ticket state, not the length of the history.
//! Queries read only the columns they need from such chunks (see [`EventChunk::read`]).
//!
//! The dedup index is a hash table of (48 bits of the xxh3 hash of the event id, row number). A hash hit is
//! confirmed against the stored id (read back from disk for a chunk that left the heap, with a
//! small cache, since duplicates come in runs), so a hash collision never drops an event.

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::error::ArrowError;
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

/// A sealed chunk written to disk (implemented by the checkpoint store, which owns the files).
pub trait ChunkFile: fmt::Debug + Send + Sync {
    /// Rows in the chunk.
    fn rows(&self) -> usize;
    /// The columns `columns` (indices into the `ticket_events` schema) of the chunk, in that
    /// order, with their fields from the schema.
    fn read(&self, columns: &[usize]) -> Result<RecordBatch, ArrowError>;
}

/// One chunk of the history as a snapshot holds it.
#[derive(Debug, Clone)]
pub enum EventChunk {
    /// Rows on the heap (the open chunk, and sealed chunks no checkpoint has written yet).
    Resident(RecordBatch),
    /// A sealed chunk on disk, with the xxh3 hashes of the ticket ids it holds (sorted), so a
    /// ticket's page reads only the chunks that hold its events.
    Stored {
        /// The file.
        file: Arc<dyn ChunkFile>,
        /// Sorted hashes of its distinct ticket ids.
        tickets: Arc<[u64]>,
    },
}

impl EventChunk {
    /// Rows in the chunk.
    pub fn rows(&self) -> usize {
        match self {
            EventChunk::Resident(batch) => batch.num_rows(),
            EventChunk::Stored { file, .. } => file.rows(),
        }
    }

    /// The columns `columns` of the chunk (indices into the `ticket_events` schema).
    pub fn read(&self, columns: &[usize]) -> Result<RecordBatch, ArrowError> {
        match self {
            EventChunk::Resident(batch) => batch.project(columns),
            EventChunk::Stored { file, .. } => file.read(columns),
        }
    }

    /// False only when the chunk certainly holds no event of ticket `id`.
    pub fn may_hold_ticket(&self, id: &str) -> bool {
        match self {
            EventChunk::Resident(_) => true,
            EventChunk::Stored { tickets, .. } => {
                tickets.binary_search(&xxh3_64(id.as_bytes())).is_ok()
            }
        }
    }

    /// Heap bytes of the chunk's rows (zero on disk, but for the ticket hashes).
    fn heap_bytes(&self) -> usize {
        match self {
            EventChunk::Resident(batch) => batch.get_array_memory_size(),
            EventChunk::Stored { tickets, .. } => tickets.len() * 8,
        }
    }
}

/// Sorted, distinct xxh3 hashes of the ticket ids of a sealed chunk.
fn ticket_hashes(batch: &RecordBatch) -> Result<Arc<[u64]>, ArrowError> {
    let column = batch
        .column_by_name(tables::TICKET_ID)
        .ok_or_else(|| ArrowError::SchemaError("chunk has no ticket_id column".into()))?;
    let values = column
        .as_any_dictionary_opt()
        .map(|d| d.values().clone())
        .ok_or_else(|| ArrowError::SchemaError("ticket_id is not a dictionary".into()))?;
    let values = values
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError("ticket_id values are not strings".into()))?;
    let mut hashes: Vec<u64> = values
        .iter()
        .flatten()
        .map(|v| xxh3_64(v.as_bytes()))
        .collect();
    hashes.sort_unstable();
    hashes.dedup();
    Ok(hashes.into())
}

/// The event ids of a chunk.
fn ids_of(batch: &RecordBatch) -> Result<StringArray, ArrowError> {
    batch
        .column_by_name(tables::EVENT_ID)
        .and_then(|c| c.as_string_opt::<i32>())
        .cloned()
        .ok_or_else(|| ArrowError::SchemaError("chunk has no event_id column".into()))
}

/// A fingerprint of a sealed chunk's content: the hash of its event ids in order. Chunk files
/// are named by it, so a file left by another history is never taken for this one's.
fn fingerprint(ids: &StringArray) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for id in ids.iter().flatten() {
        h.update(&(id.len() as u32).to_le_bytes());
        h.update(id.as_bytes());
    }
    h.digest()
}

/// A dedup index entry: the history row and the top 48 bits of the id's xxh3 hash, packed in
/// 10 bytes (a hash table slot costs 11 with its control byte). 48 bits leave a false hit, which
/// costs one read of a chunk's ids, about once per 28 million lookups at 10M events.
#[derive(Debug, Clone, Copy)]
struct Entry([u16; 5]);

impl Entry {
    fn new(hash: u64, row: u32) -> Entry {
        let h = hash >> 16;
        Entry([
            row as u16,
            (row >> 16) as u16,
            h as u16,
            (h >> 16) as u16,
            (h >> 32) as u16,
        ])
    }

    fn row(self) -> u32 {
        u32::from(self.0[0]) | (u32::from(self.0[1]) << 16)
    }

    /// The key the table is hashed by, rebuilt from the stored 48 bits.
    fn key(self) -> u64 {
        let h = u64::from(self.0[2]) | (u64::from(self.0[3]) << 16) | (u64::from(self.0[4]) << 32);
        h | (h << 48)
    }
}

/// The table key of an id hash: its top 48 bits, with the top bits (the table's control tag)
/// taken from them too.
fn key_of(hash: u64) -> u64 {
    let h = hash >> 16;
    h | (h << 48)
}

/// A sealed chunk and its fingerprint.
#[derive(Debug, Clone)]
struct Sealed {
    chunk: EventChunk,
    fingerprint: u64,
}

/// The history and dedup index.
#[derive(Debug, Default)]
pub struct History {
    sealed: Vec<Sealed>,
    open: OpenChunk,
    /// (hash of the event id, row).
    index: HashTable<Entry>,
    /// The ids of the stored chunk last read to confirm a hash hit.
    confirmed: Mutex<Option<(usize, StringArray)>>,
}

impl History {
    /// Rebuilds a history from chunk files and the open rows (checkpoint load). Reads the
    /// event ids and ticket ids of every chunk (to index them), nothing else.
    pub fn restore(
        files: Vec<(Arc<dyn ChunkFile>, u64)>,
        open: OpenChunk,
    ) -> Result<History, RestoreError> {
        let bad = |i: usize, detail: String| {
            RestoreError::Inconsistent(format!("sealed chunk {i}: {detail}"))
        };
        let mut history = History {
            open,
            ..History::default()
        };
        let total = files.len() * CHUNK_ROWS + history.open.rows.len();
        history.index.reserve(total, |e| e.key());
        let columns = [tables::EVENT_ID_COLUMN, tables::TICKET_ID_COLUMN];
        for (i, (file, expected)) in files.into_iter().enumerate() {
            if file.rows() != CHUNK_ROWS {
                return Err(bad(
                    i,
                    format!("{} rows, expected {CHUNK_ROWS}", file.rows()),
                ));
            }
            let batch = file.read(&columns).map_err(|e| bad(i, e.to_string()))?;
            let ids = ids_of(&batch).map_err(|e| bad(i, e.to_string()))?;
            if ids.len() != CHUNK_ROWS || fingerprint(&ids) != expected {
                return Err(bad(i, "its event ids do not match the checkpoint".into()));
            }
            let tickets = ticket_hashes(&batch).map_err(|e| bad(i, e.to_string()))?;
            let base = (i * CHUNK_ROWS) as u32;
            for (r, id) in ids.iter().enumerate() {
                history.insert(id.unwrap_or_default(), base + r as u32);
            }
            history.sealed.push(Sealed {
                chunk: EventChunk::Stored { file, tickets },
                fingerprint: expected,
            });
        }
        let base = (history.sealed.len() * CHUNK_ROWS) as u32;
        for r in 0..history.open.rows.len() {
            let hash = xxh3_64(history.open.id(r).as_bytes());
            history
                .index
                .insert_unique(key_of(hash), Entry::new(hash, base + r as u32), |e| e.key());
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

    /// Whether row `row` has event id `event_id`. A chunk on disk is read back (its ids are
    /// cached for the next hit); if it cannot be read, the hash match is taken as the answer:
    /// a 64-bit hash collision with an unreadable chunk is not a case worth failing on.
    fn row_has_id(&self, row: u32, event_id: &str) -> bool {
        let row = row as usize;
        let (chunk, within) = (row / CHUNK_ROWS, row % CHUNK_ROWS);
        let Some(sealed) = self.sealed.get(chunk) else {
            return self.open.id(row - self.sealed.len() * CHUNK_ROWS) == event_id;
        };
        let file = match &sealed.chunk {
            EventChunk::Resident(batch) => {
                return ids_of(batch).is_ok_and(|ids| ids.value(within) == event_id);
            }
            EventChunk::Stored { file, .. } => file,
        };
        let mut cached = self.confirmed.lock().unwrap_or_else(|p| p.into_inner());
        if cached.as_ref().is_none_or(|(n, _)| *n != chunk) {
            match file
                .read(&[tables::EVENT_ID_COLUMN])
                .and_then(|b| ids_of(&b))
            {
                Ok(ids) => *cached = Some((chunk, ids)),
                Err(e) => {
                    tracing::warn!(chunk, error = %e, "cannot read a history chunk to confirm a duplicate event id; taking the hash match");
                    return true;
                }
            }
        }
        cached
            .as_ref()
            .is_some_and(|(_, ids)| ids.len() > within && ids.value(within) == event_id)
    }

    /// Whether `event_id` is in the history.
    pub fn contains(&self, event_id: &str) -> bool {
        let key = key_of(xxh3_64(event_id.as_bytes()));
        self.index
            .find(key, |&e| {
                e.key() == key && self.row_has_id(e.row(), event_id)
            })
            .is_some()
    }

    fn insert(&mut self, event_id: &str, row: u32) {
        let hash = xxh3_64(event_id.as_bytes());
        self.index
            .insert_unique(key_of(hash), Entry::new(hash, row), |e| e.key());
    }

    /// Appends an accepted event. The caller has checked it is not a duplicate.
    pub fn push(&mut self, event_id: &str, row: EventRow, strings: &Interner) {
        let row_no = self.len() as u32;
        self.open.ids.push_str(event_id);
        self.open.id_ends.push(self.open.ids.len() as u32);
        self.open.rows.push(row);
        self.insert(event_id, row_no);
        if self.open.rows.len() == CHUNK_ROWS {
            self.seal(strings);
        }
    }

    fn seal(&mut self, strings: &Interner) {
        let batch = tables::events_batch(&self.open, strings);
        // events_batch always writes the event_id column as Utf8.
        if let Ok(ids) = ids_of(&batch) {
            self.sealed.push(Sealed {
                fingerprint: fingerprint(&ids),
                chunk: EventChunk::Resident(batch),
            });
            self.open = OpenChunk::default();
        }
    }

    /// The sealed chunks with their fingerprints.
    pub fn sealed(&self) -> impl ExactSizeIterator<Item = (&EventChunk, u64)> {
        self.sealed.iter().map(|s| (&s.chunk, s.fingerprint))
    }

    /// Sealed chunk `n` has been written durably as `file`: its rows leave the heap.
    pub fn stored(&mut self, n: usize, file: Arc<dyn ChunkFile>) -> Result<(), ArrowError> {
        let Some(sealed) = self.sealed.get_mut(n) else {
            return Ok(());
        };
        if let EventChunk::Resident(batch) = &sealed.chunk {
            if file.rows() != batch.num_rows() {
                return Err(ArrowError::InvalidArgumentError(format!(
                    "chunk file has {} rows, the chunk {}",
                    file.rows(),
                    batch.num_rows()
                )));
            }
            let tickets = ticket_hashes(batch)?;
            sealed.chunk = EventChunk::Stored { file, tickets };
        }
        Ok(())
    }

    /// The open rows.
    pub fn open(&self) -> &OpenChunk {
        &self.open
    }

    /// All history as chunks: the sealed ones (shared) and the open rows (built now).
    pub fn chunks(&self, strings: &Interner) -> Vec<EventChunk> {
        let mut out: Vec<EventChunk> = self.sealed.iter().map(|s| s.chunk.clone()).collect();
        if !self.open.rows.is_empty() {
            out.push(EventChunk::Resident(tables::events_batch(
                &self.open, strings,
            )));
        }
        out
    }

    /// Approximate heap bytes: the rows, and the dedup index.
    pub fn heap_parts(&self) -> (usize, usize) {
        let rows = self
            .sealed
            .iter()
            .map(|s| s.chunk.heap_bytes())
            .sum::<usize>()
            + self.open.ids.capacity()
            + self.open.id_ends.capacity() * 4
            + self.open.rows.capacity() * std::mem::size_of::<EventRow>();
        (rows, self.index.capacity() * 11)
    }

    /// Heap bytes of each column of the sealed chunks still on the heap, by name.
    pub fn column_bytes(&self) -> Vec<(String, usize)> {
        let schema = tables::EVENTS_SCHEMA.clone();
        (0..schema.fields().len())
            .map(|c| {
                let bytes = self
                    .sealed
                    .iter()
                    .filter_map(|s| match &s.chunk {
                        EventChunk::Resident(b) => Some(b.column(c).get_array_memory_size()),
                        EventChunk::Stored { .. } => None,
                    })
                    .sum();
                (schema.field(c).name().clone(), bytes)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_entry_keeps_its_row_and_key() {
        for (hash, row) in [
            (0u64, 0u32),
            (u64::MAX, u32::MAX),
            (0x0123_4567_89ab_cdef, 77_777),
        ] {
            let e = Entry::new(hash, row);
            assert_eq!(e.row(), row);
            assert_eq!(e.key(), key_of(hash));
        }
        // Hashes that differ only in the 16 bits not kept share a key: a hit is then
        // confirmed against the id.
        assert_eq!(key_of(0xffff), key_of(0));
        assert_ne!(key_of(1 << 16), key_of(0));
    }
}
