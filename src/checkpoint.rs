//! Checkpoints: the projection and the log position it covers, saved atomically.
//!
//! Layout under `<data-dir>/checkpoints/`:
//! - `chunks/<n>-<fingerprint>.cols` — sealed history chunks, stored by column (see
//!   [`columns`]), each written once (they never change), so a checkpoint costs what the ticket
//!   state costs, not what the history costs. Once written, the projection drops the chunk's
//!   rows from the heap and reads them from the file when a query asks;
//! - `checkpoint-<events>.bin` — magic, a postcard body (position, strings, tickets, open
//!   history rows, counters) and a CRC-32 trailer, written to a temporary file, fsynced, renamed,
//!   and the directory fsynced. The two newest are kept.
//!
//! Loading takes the newest checkpoint whose checksum and chunks verify; a damaged one is
//! skipped with a warning (the log still has everything, so the cost is a longer replay).

pub mod columns;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::base::RestoreError;
use crate::base::interner::{Interner, Sym};
use crate::clustering::order::TextOrder;
use crate::clustering::state::TextSetup;
use crate::log::LogPosition;
use crate::projection::history::{ChunkFile, EventChunk, History, OpenChunk};
use crate::projection::{Counters, Projection, TicketState, tables};

/// First bytes of a checkpoint file.
pub const MAGIC: &[u8; 8] = b"DWCKP007";
const KEEP: usize = 2;

/// Errors of checkpointing.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Writing failed; the previous checkpoint is still in place.
    #[error("cannot write checkpoint {path}: {source}")]
    Write {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A history chunk could not be encoded.
    #[error("cannot encode history chunk {path}: {source}")]
    Encode {
        /// File.
        path: PathBuf,
        /// Cause.
        source: datafusion::arrow::error::ArrowError,
    },
    /// The directory could not be listed.
    #[error("cannot list checkpoints in {path}: {source}")]
    List {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Why a checkpoint file cannot be used: it is skipped, and the log replayed.
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a checkpoint of this deskwatch version (the log is replayed)")]
    Version,
    #[error("checksum mismatch (torn or damaged file)")]
    Checksum,
    #[error("cannot decode: {0}")]
    Decode(#[from] postcard::Error),
    #[error("history chunk {path}: {detail}")]
    Chunk { path: PathBuf, detail: String },
    #[error(transparent)]
    State(#[from] RestoreError),
}

#[derive(Serialize, Deserialize)]
struct Body {
    position: LogPosition,
    /// Fingerprint of each sealed chunk, in order.
    chunks: Vec<u64>,
    strings: Vec<Box<str>>,
    tickets: Vec<TicketState>,
    open: OpenChunk,
    counters: Counters,
    sla: crate::sla::SlaState,
    text: crate::clustering::state::TextState,
}

/// A projection loaded from disk, with the log position it covers.
#[derive(Debug)]
pub struct Loaded {
    /// The state.
    pub projection: Projection,
    /// The next log offset to replay from.
    pub position: LogPosition,
    /// The checkpoint file it came from.
    pub path: PathBuf,
}

/// Reads and writes checkpoints in one directory.
#[derive(Debug, Clone)]
pub struct Checkpoints {
    dir: PathBuf,
}

impl Checkpoints {
    /// Checkpoints under `dir` (created on first write).
    pub fn new(dir: &Path) -> Checkpoints {
        Checkpoints {
            dir: dir.to_path_buf(),
        }
    }

    fn chunk_path(&self, n: usize, fingerprint: u64) -> PathBuf {
        self.dir
            .join("chunks")
            .join(format!("{n:08}-{fingerprint:016x}.cols"))
    }

    /// Saves `projection` as covering the log up to `position`; returns the file written.
    /// Sealed chunks not yet on disk are written first; afterwards their rows leave the heap
    /// (the projection reads them from their files).
    pub fn write(
        &self,
        projection: &mut Projection,
        position: &LogPosition,
    ) -> Result<PathBuf, CheckpointError> {
        let chunks_dir = self.dir.join("chunks");
        fs::create_dir_all(&chunks_dir).map_err(|source| CheckpointError::Write {
            path: chunks_dir.clone(),
            source,
        })?;
        let mut fingerprints = Vec::with_capacity(projection.history.sealed().len());
        let mut written = Vec::new();
        for (n, (chunk, fingerprint)) in projection.history.sealed().enumerate() {
            fingerprints.push(fingerprint);
            let path = self.chunk_path(n, fingerprint);
            if !path.exists() {
                let batch = chunk
                    .read(&(0..tables::EVENTS_SCHEMA.fields().len()).collect::<Vec<_>>())
                    .map_err(|source| CheckpointError::Encode {
                        path: path.clone(),
                        source,
                    })?;
                columns::write(&path, &batch).map_err(|source| CheckpointError::Write {
                    path: path.clone(),
                    source,
                })?;
            }
            if matches!(chunk, EventChunk::Resident(_)) {
                written.push((n, path));
            }
        }
        sync_dir(&chunks_dir)?;
        let body = Body {
            position: position.clone(),
            chunks: fingerprints,
            strings: projection.strings.strings().to_vec(),
            tickets: projection.tickets.clone(),
            open: projection.history.open().clone(),
            counters: projection.counters.clone(),
            sla: projection.sla.clone(),
            text: projection.text.clone(),
        };
        let path = self
            .dir
            .join(format!("checkpoint-{:020}.bin", position.total()));
        let bytes = postcard::to_stdvec(&body).map_err(|e| CheckpointError::Write {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_sealed(&self.dir, &path, MAGIC, &bytes)?;
        self.prune()?;
        for (n, chunk) in written {
            let stored = columns::ColumnFile::open(&chunk)
                .map_err(|e| e.to_string())
                .and_then(|file| {
                    projection
                        .history
                        .stored(n, Arc::new(file))
                        .map_err(|e| e.to_string())
                });
            if let Err(e) = stored {
                // The rows stay on the heap: correct, only larger.
                tracing::warn!(path = %chunk.display(), error = %e, "cannot use a written history chunk; keeping it in memory");
            }
        }
        Ok(path)
    }

    fn list(&self) -> Result<Vec<PathBuf>, CheckpointError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(CheckpointError::List {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("checkpoint-") && n.ends_with(".bin"))
            })
            .collect();
        files.sort();
        Ok(files)
    }

    fn prune(&self) -> Result<(), CheckpointError> {
        let files = self.list()?;
        if files.len() > KEEP {
            for old in &files[..files.len() - KEEP] {
                if let Err(e) = fs::remove_file(old) {
                    tracing::warn!(path = %old.display(), error = %e, "could not remove an old checkpoint");
                }
            }
        }
        Ok(())
    }

    /// Loads the newest checkpoint that verifies and does not reach past `log_end`.
    pub fn load_newest(&self, log_end: &LogPosition) -> Result<Option<Loaded>, CheckpointError> {
        for path in self.list()?.into_iter().rev() {
            match self.load(&path) {
                Ok(loaded) => {
                    let beyond = loaded
                        .position
                        .0
                        .iter()
                        .any(|(p, o)| *o > log_end.next_offset(*p));
                    if beyond {
                        tracing::warn!(
                            path = %path.display(),
                            "checkpoint is ahead of the event log (was the log replaced?); ignoring it"
                        );
                        continue;
                    }
                    return Ok(Some(loaded));
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "skipping unreadable checkpoint");
                }
            }
        }
        Ok(None)
    }

    fn load(&self, path: &Path) -> Result<Loaded, Unreadable> {
        let bytes = read_sealed(path, MAGIC)?;
        let body: Body = postcard::from_bytes(&bytes)?;
        // Not preallocated from the count: a damaged count must not ask for gigabytes.
        let mut files: Vec<(Arc<dyn ChunkFile>, u64)> = Vec::new();
        for (n, &fingerprint) in body.chunks.iter().enumerate() {
            let path = self.chunk_path(n, fingerprint);
            let file = columns::ColumnFile::open(&path)
                .map_err(|e| e.to_string())
                .and_then(|f| f.verify().map(|()| f).map_err(|e| e.to_string()))
                .map_err(|detail| Unreadable::Chunk {
                    path: path.clone(),
                    detail,
                })?;
            files.push((Arc::new(file), fingerprint));
        }
        validate(&body)?;
        let history = History::restore(files, body.open)?;
        let tickets = body.tickets;
        let count = body.strings.len();
        let strings = Interner::from_strings(body.strings);
        if strings.len() != count {
            // Symbols are positions in the list: a repeated string would shift every later one.
            return Err(inconsistent("the string table repeats a string").into());
        }
        let mut ticket_by_sym = vec![u32::MAX; strings.len()];
        for (i, t) in tickets.iter().enumerate() {
            if t.ticket_id.index() >= ticket_by_sym.len() {
                return Err(inconsistent("ticket refers to an unknown string").into());
            }
            ticket_by_sym[t.ticket_id.index()] = i as u32;
        }
        let blocks = tickets.len().div_ceil(tables::TICKET_BLOCK);
        Ok(Loaded {
            projection: Projection {
                strings,
                tickets,
                ticket_by_sym,
                history,
                counters: body.counters,
                dirty_blocks: vec![true; blocks],
                sla: body.sla,
                text: body.text,
                text_elsewhere: false,
            },
            position: body.position,
            path: path.to_path_buf(),
        })
    }
}

/// Checks what the checksum cannot: that the state refers only to what it holds (strings,
/// event ids, tickets). A body that passes its checksum but fails here was written by a bug or
/// altered; it is skipped like a damaged file, and the log replayed.
fn inconsistent(m: impl Into<String>) -> RestoreError {
    RestoreError::Inconsistent(m.into())
}

fn validate(body: &Body) -> Result<(), RestoreError> {
    let strings = body.strings.len();
    let sym = |s: Sym| s.index() < strings;
    let opt = |s: Option<Sym>| s.is_none_or(sym);
    for (i, t) in body.tickets.iter().enumerate() {
        let ok = sym(t.ticket_id)
            && opt(t.tenant)
            && sym(t.category)
            && opt(t.subcategory)
            && opt(t.configuration_item)
            && opt(t.service)
            && sym(t.requester)
            && opt(t.group)
            && opt(t.agent)
            && opt(t.resolution_code)
            && opt(t.kb_article);
        if !ok {
            return Err(inconsistent(format!(
                "ticket {i} refers to a string the checkpoint does not hold"
            )));
        }
    }
    let open = &body.open;
    if open.id_ends.len() != open.rows.len() {
        return Err(inconsistent(
            "open history chunk: ids and rows differ in number",
        ));
    }
    let mut start = 0usize;
    for &end in &open.id_ends {
        let end = end as usize;
        if end < start || end > open.ids.len() || !open.ids.is_char_boundary(end) {
            return Err(inconsistent(
                "open history chunk: event id bounds out of range",
            ));
        }
        start = end;
    }
    for (i, r) in open.rows.iter().enumerate() {
        let ok = sym(r.ticket)
            && opt(r.tenant)
            && sym(r.actor)
            && opt(r.group)
            && opt(r.agent)
            && opt(r.note);
        if !ok {
            return Err(inconsistent(format!(
                "history row {i} refers to a string the checkpoint does not hold"
            )));
        }
    }
    if body.sla.tickets.len() > body.tickets.len() {
        return Err(inconsistent(
            "SLA state holds more tickets than the checkpoint",
        ));
    }
    body.text
        .check(body.tickets.len())
        .map_err(|e| inconsistent(format!("text clusters: {e}")))
}

/// Writes `bytes` as `path` in `dir`: `magic`, the bytes and their CRC-32, through a temporary
/// file that is fsynced and renamed, then the directory fsynced. A crash leaves the old file or
/// the new one, never a mix.
fn write_sealed(
    dir: &Path,
    path: &Path,
    magic: &[u8; 8],
    bytes: &[u8],
) -> Result<(), CheckpointError> {
    let tmp = path.with_extension("tmp");
    let werr = |source| CheckpointError::Write {
        path: tmp.clone(),
        source,
    };
    fs::create_dir_all(dir).map_err(werr)?;
    let mut file = BufWriter::new(File::create(&tmp).map_err(werr)?);
    file.write_all(magic).map_err(werr)?;
    file.write_all(bytes).map_err(werr)?;
    file.write_all(&crc32fast::hash(bytes).to_le_bytes())
        .map_err(werr)?;
    let file = file.into_inner().map_err(|e| werr(e.into_error()))?;
    file.sync_all().map_err(werr)?;
    fs::rename(&tmp, path).map_err(werr)?;
    sync_dir(dir)
}

/// The bytes of a file [`write_sealed`] wrote with `magic`, checked.
fn read_sealed(path: &Path, magic: &[u8; 8]) -> Result<Vec<u8>, Unreadable> {
    let mut bytes = fs::read(path)?;
    if bytes.len() < magic.len() + 4 || &bytes[..magic.len()] != magic {
        return Err(Unreadable::Version);
    }
    let trailer = bytes.split_off(bytes.len() - 4);
    let expected = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    bytes.drain(..magic.len());
    if crc32fast::hash(&bytes) != expected {
        return Err(Unreadable::Checksum);
    }
    Ok(bytes)
}

/// First bytes of a saved text order.
const TEXT_ORDER_MAGIC: &[u8; 8] = b"DWTXO001";

/// Where a Kafka replica keeps its [`TextOrder`] (`<dir>/text-order.bin`), which records for
/// every partition the offset it has read up to.
#[derive(Debug, Clone)]
pub struct TextOrderFile {
    dir: PathBuf,
}

impl TextOrderFile {
    /// The text order saved under `dir`.
    pub fn new(dir: &Path) -> TextOrderFile {
        TextOrderFile {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("text-order.bin")
    }

    /// Saves `order`, replacing the previous one atomically.
    pub fn save(&self, order: &TextOrder) -> Result<PathBuf, CheckpointError> {
        let path = self.path();
        let bytes = postcard::to_stdvec(order).map_err(|e| CheckpointError::Write {
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
        write_sealed(&self.dir, &path, TEXT_ORDER_MAGIC, &bytes)?;
        Ok(path)
    }

    /// The saved order under `setup`; `None` (with the reason logged) when there is none or it
    /// cannot be used: the partitions' texts are then read again from their start.
    pub fn load(&self, setup: Arc<TextSetup>) -> Option<TextOrder> {
        let path = self.path();
        if !path.exists() {
            return None;
        }
        let loaded = read_sealed(&path, TEXT_ORDER_MAGIC).and_then(|bytes| {
            let mut order: TextOrder = postcard::from_bytes(&bytes)?;
            order.attach(setup)?;
            Ok(order)
        });
        match loaded {
            Ok(order) => Some(order),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "text order not used; reading the partitions' texts again");
                None
            }
        }
    }

    /// Removes the saved order (the topic was replaced).
    pub fn remove(&self) {
        if let Err(e) = fs::remove_file(self.path())
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path().display(), error = %e, "cannot remove the text order");
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| CheckpointError::Write {
            path: dir.to_path_buf(),
            source,
        })
}
