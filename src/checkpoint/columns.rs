//! Sealed history chunks on disk, one file per chunk, stored by column.
//!
//! A chunk file is a sequence of self-contained Arrow IPC streams, one per column of
//! `ticket_events` in schema order, followed by a footer: the end offset (u64 little-endian) and
//! CRC-32 (u32) of each stream, the row count (u32), the column count (u32) and [`MAGIC`]. Every
//! read checks the CRC of what it read; [`ColumnFile::verify`] checks the whole file. A query reads only
//! the byte ranges of the columns it asks for, so counting event types reads one byte per event,
//! not the whole chunk. Files are written once, to a temporary name, fsynced and renamed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::StreamDecoder;
use datafusion::arrow::ipc::writer::StreamWriter;

use crate::projection::history::ChunkFile;
use crate::projection::tables::EVENTS_SCHEMA;

/// Last bytes of a chunk file.
pub const MAGIC: &[u8; 8] = b"DWCOLS02";

/// Footer bytes per column: end offset and CRC-32.
const PER_COLUMN: u64 = 12;

/// Writes `batch` (a `ticket_events` chunk) to `path`, durably.
pub fn write(path: &Path, batch: &RecordBatch) -> Result<(), std::io::Error> {
    let tmp = path.with_extension("tmp");
    let file = File::create(&tmp)?;
    let mut out = BufWriter::new(file);
    let mut ends = Vec::with_capacity(batch.num_columns());
    let mut written = 0u64;
    for (c, field) in batch.schema().fields().iter().enumerate() {
        let schema = Arc::new(Schema::new(vec![field.clone()]));
        let one = RecordBatch::try_new(schema.clone(), vec![batch.column(c).clone()])
            .map_err(std::io::Error::other)?;
        let mut bytes = Vec::new();
        let mut writer =
            StreamWriter::try_new(&mut bytes, &schema).map_err(std::io::Error::other)?;
        writer.write(&one).map_err(std::io::Error::other)?;
        writer.finish().map_err(std::io::Error::other)?;
        drop(writer);
        out.write_all(&bytes)?;
        written += bytes.len() as u64;
        ends.push((written, crc32fast::hash(&bytes)));
    }
    for (end, crc) in &ends {
        out.write_all(&end.to_le_bytes())?;
        out.write_all(&crc.to_le_bytes())?;
    }
    out.write_all(&(batch.num_rows() as u32).to_le_bytes())?;
    out.write_all(&(ends.len() as u32).to_le_bytes())?;
    out.write_all(MAGIC)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A chunk file, opened: its path and the byte range of each column.
#[derive(Debug)]
pub struct ColumnFile {
    path: PathBuf,
    file: File,
    rows: usize,
    /// End offset of each column's stream; column `c` spans `ends[c-1]..ends[c]`.
    ends: Vec<u64>,
    /// CRC-32 of each column's stream.
    crcs: Vec<u32>,
}

impl ColumnFile {
    /// Opens `path` and reads its footer.
    pub fn open(path: &Path) -> Result<ColumnFile, std::io::Error> {
        let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let tail = 16;
        if len < tail {
            return Err(bad("too short for a chunk file"));
        }
        let mut trailer = [0u8; 16];
        file.read_exact_at(&mut trailer, len - tail)?;
        if &trailer[8..] != MAGIC {
            return Err(bad("not a deskwatch chunk file"));
        }
        let rows = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]) as usize;
        let columns = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]) as usize;
        if columns != EVENTS_SCHEMA.fields().len() {
            return Err(bad("the chunk's columns are not those of ticket_events"));
        }
        let footer = PER_COLUMN * columns as u64;
        if len < tail + footer {
            return Err(bad("too short for its footer"));
        }
        let mut raw = vec![0u8; footer as usize];
        file.read_exact_at(&mut raw, len - tail - footer)?;
        let (mut ends, mut crcs) = (Vec::with_capacity(columns), Vec::with_capacity(columns));
        for entry in raw.chunks_exact(PER_COLUMN as usize) {
            let (end, crc) = entry.split_at(8);
            ends.push(u64::from_le_bytes(end.try_into().unwrap_or_default()));
            crcs.push(u32::from_le_bytes(crc.try_into().unwrap_or_default()));
        }
        let body = len - tail - footer;
        if ends.windows(2).any(|w| w[0] > w[1]) || ends.last().is_some_and(|&e| e != body) {
            return Err(bad("its column offsets are inconsistent"));
        }
        Ok(ColumnFile {
            path: path.to_path_buf(),
            file,
            rows,
            ends,
            crcs,
        })
    }

    /// Reads and decodes every column (a check of the whole file, as on restore).
    pub fn verify(&self) -> Result<(), ArrowError> {
        (0..self.ends.len()).try_for_each(|c| self.column(c).map(drop))
    }

    fn column(&self, c: usize) -> Result<ArrayRef, ArrowError> {
        let start = if c == 0 { 0 } else { self.ends[c - 1] };
        let mut bytes = vec![0u8; (self.ends[c] - start) as usize];
        self.file
            .read_exact_at(&mut bytes, start)
            .map_err(|e| ArrowError::IoError(format!("{}: {e}", self.path.display()), e))?;
        if crc32fast::hash(&bytes) != self.crcs[c] {
            return Err(ArrowError::IpcError(format!(
                "{}: column {c} fails its checksum (the file was damaged)",
                self.path.display()
            )));
        }
        // Decoded in place: the arrays share the bytes just read.
        let mut buffer = Buffer::from_vec(bytes);
        let mut decoder = StreamDecoder::new();
        let mut batch = None;
        while !buffer.is_empty() {
            match decoder.decode(&mut buffer)? {
                Some(b) if batch.is_none() => batch = Some(b),
                Some(_) => {
                    return Err(ArrowError::IpcError(format!(
                        "{}: column {c} holds more than one batch",
                        self.path.display()
                    )));
                }
                None => {}
            }
        }
        decoder.finish()?;
        let batch = batch.ok_or_else(|| {
            ArrowError::IpcError(format!("{}: column {c} is empty", self.path.display()))
        })?;
        if batch.num_rows() != self.rows || batch.num_columns() != 1 {
            return Err(ArrowError::IpcError(format!(
                "{}: column {c} does not have the chunk's rows",
                self.path.display()
            )));
        }
        Ok(batch.column(0).clone())
    }
}

impl ChunkFile for ColumnFile {
    fn rows(&self) -> usize {
        self.rows
    }

    fn read(&self, columns: &[usize]) -> Result<RecordBatch, ArrowError> {
        let schema: SchemaRef = Arc::new(EVENTS_SCHEMA.project(columns)?);
        let arrays = columns
            .iter()
            .map(|&c| {
                if c >= self.ends.len() {
                    return Err(ArrowError::InvalidArgumentError(format!("no column {c}")));
                }
                self.column(c)
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new_with_options(
            schema,
            arrays,
            &RecordBatchOptions::new().with_row_count(Some(self.rows)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::interner::Interner;
    use crate::event::{EventType, Priority, Role, Status};
    use crate::projection::history::{EventRow, OpenChunk};
    use crate::projection::tables::events_batch;

    fn chunk(strings: &mut Interner) -> RecordBatch {
        let mut open = OpenChunk::default();
        for i in 0..100u64 {
            open.ids.push_str(&format!("ev-{i}"));
            open.id_ends.push(open.ids.len() as u32);
            open.rows.push(EventRow {
                offset: i,
                ticket: strings.intern(&format!("T-{}", i % 7)),
                tenant: None,
                event_type: EventType::Commented,
                occurred_at: i as i64 * 1000,
                actor: strings.intern("a"),
                actor_role: Role::Agent,
                status_after: Status::Open,
                priority_after: Priority::P3,
                group: (i % 2 == 0).then(|| strings.intern("g")),
                agent: None,
                tier: Some(1),
                minutes: None,
                public: Some(true),
                note: None,
            });
        }
        events_batch(&open, strings)
    }

    #[test]
    fn a_chunk_reads_back_column_by_column() {
        let mut strings = Interner::default();
        let batch = chunk(&mut strings);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.cols");
        write(&path, &batch).unwrap();
        let file = ColumnFile::open(&path).unwrap();
        assert_eq!(file.rows(), 100);
        assert_eq!(file.read(&(0..16).collect::<Vec<_>>()).unwrap(), batch);
        assert_eq!(file.read(&[4, 2]).unwrap(), batch.project(&[4, 2]).unwrap());
        assert!(file.read(&[99]).is_err());
    }

    #[test]
    fn a_damaged_chunk_file_is_refused() {
        let mut strings = Interner::default();
        let batch = chunk(&mut strings);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.cols");
        write(&path, &batch).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        // Cut short: no footer.
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(ColumnFile::open(&path).is_err());
        // A column's bytes overwritten: the footer opens, the column does not decode.
        let mut broken = bytes.clone();
        for b in &mut broken[10..60] {
            *b = 0xFF;
        }
        std::fs::write(&path, &broken).unwrap();
        let file = ColumnFile::open(&path).unwrap();
        assert!(file.read(&[0]).is_err());
    }
}
