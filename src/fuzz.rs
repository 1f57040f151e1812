//! Entry points of the fuzz targets (`fuzz/fuzz_targets/`), shared with the corpus replay test
//! (`tests/fuzz_corpus.rs`) so that CI runs every committed input through the same code without
//! building the fuzzer.
//!
//! Each function takes arbitrary bytes and must return without panicking, whatever they are: a
//! decoder answers bad input with an error, never with a crash. Inputs that need files (a
//! segment, a checkpoint, an export) are written to a scratch directory of this process.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::event::{TicketEvent, parse_batch};
use crate::log::{EventLog, LogPosition};

/// A fresh, empty directory of this process under the system's temporary directory.
fn scratch(name: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "deskwatch-fuzz-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed) % 4
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// The event parser: a request body (JSON array or NDJSON) and a single event.
pub fn event_parser(data: &[u8]) {
    if let Ok(entries) = parse_batch(data) {
        for (_, entry) in entries {
            if let Ok((event, _)) = entry {
                // What parses must serialise and parse back to the same event.
                let again = TicketEvent::from_json(&event.to_json());
                assert!(
                    again.as_ref().is_ok_and(|e| *e == event),
                    "an accepted event does not survive a round trip: {again:?}"
                );
            }
        }
    }
    if let Ok(event) = TicketEvent::from_json(data) {
        let mut projection = crate::projection::Projection::new();
        projection.apply(&event, 0);
        let _ = projection.snapshot(&Default::default());
    }
}

/// The segment reader: `data` is a segment file (the magic is prepended when the first byte
/// is even, so most inputs reach the frames). Opening repairs a torn tail; reading what is left
/// must then succeed record by record.
pub fn segment(data: &[u8]) {
    let dir = scratch("segment");
    let mut bytes = Vec::with_capacity(data.len() + 8);
    if data.first().is_some_and(|b| b % 2 == 0) {
        bytes.extend_from_slice(b"DWLOG001");
        bytes.extend_from_slice(&data[1..]);
    } else {
        bytes.extend_from_slice(data);
    }
    if std::fs::write(dir.join("00000000000000000000.seg"), &bytes).is_err() {
        return;
    }
    // A read-only reader first (what `replay` does), then the writer's repair and read.
    if let Ok(mut reader) = crate::log::embedded::EmbeddedLog::read_only(&dir) {
        while let Ok(Some(record)) = reader.next_record() {
            let _ = TicketEvent::from_json(record.payload);
        }
    }
    if let Ok(log) = crate::log::embedded::EmbeddedLog::open(&dir)
        && let Ok(mut reader) = log.reader(&LogPosition::default())
    {
        loop {
            match reader.next_record() {
                Ok(Some(record)) => {
                    let _ = TicketEvent::from_json(record.payload);
                }
                Ok(None) => break,
                Err(e) => panic!("a repaired log cannot be read: {e}"),
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The checkpoint decoder: `data` is a checkpoint file. When the first byte is even, the magic
/// and a valid checksum are added around the rest, so the body decoder is reached.
pub fn checkpoint(data: &[u8]) {
    let dir = scratch("checkpoint");
    let mut bytes = Vec::with_capacity(data.len() + 12);
    if let Some((first, body)) = data.split_first()
        && first % 2 == 0
    {
        bytes.extend_from_slice(crate::checkpoint::MAGIC);
        bytes.extend_from_slice(body);
        bytes.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    } else {
        bytes.extend_from_slice(data);
    }
    if std::fs::write(dir.join("checkpoint-00000000000000000001.bin"), &bytes).is_err() {
        return;
    }
    let end = LogPosition(std::collections::BTreeMap::from([(0, u64::MAX)]));
    if let Ok(Some(mut loaded)) = crate::checkpoint::Checkpoints::new(&dir).load_newest(&end) {
        // A checkpoint that loads must be a state the projection can work with.
        let _ = loaded.projection.snapshot(&Default::default());
        let _ = loaded.projection.sla_report(0);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The history chunk file decoder: `data` is a chunk file (`checkpoints/chunks/*.cols`). It
/// is opened and every column read; a file that opens must decode or fail with an error.
pub fn chunk_file(data: &[u8]) {
    use crate::projection::history::ChunkFile;
    let dir = scratch("chunk");
    let path = dir.join("chunk.cols");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(file) = crate::checkpoint::columns::ColumnFile::open(&path) {
        let _ = file.verify();
        let all: Vec<usize> =
            (0..crate::projection::tables::EVENTS_SCHEMA.fields().len()).collect();
        let _ = file.read(&all);
        let _ = file.read(&[2, 1]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The import readers: `data` is an export, read as JSON documents through the Zammad webhook
/// mapping (first byte 0xff), CSV (other even first bytes) or XES (odd) through
/// a mapping shipped in `examples/mappings/`.
pub fn import(data: &[u8]) {
    const CSV: &str = include_str!("../examples/mappings/servicenow-incidents.toml");
    const XES: &str = include_str!("../examples/mappings/helpdesk-xes.toml");
    const JSON: &str = include_str!("../examples/mappings/webhooks/zammad.toml");
    let Some((first, body)) = data.split_first() else {
        return;
    };
    let (text, name) = match first {
        0xff => (JSON, "payloads.json"),
        f if f % 2 == 0 => (CSV, "export.csv"),
        _ => (XES, "export.xes"),
    };
    let Ok(mapping) = crate::import::mapping::Mapping::from_toml(text) else {
        panic!("the example mapping does not load");
    };
    let dir = scratch("import");
    let path = dir.join(name);
    if std::fs::write(&path, body).is_err() {
        return;
    }
    let mut importer = crate::import::Importer::new(mapping);
    let mut sink = |events: Vec<crate::import::Derived>| -> Result<(), std::convert::Infallible> {
        for (_, event) in events {
            assert!(
                event.validate().is_ok(),
                "an imported event is not valid: {event:?}"
            );
        }
        Ok(())
    };
    let _ = importer.file(
        &path,
        Arc::new(AtomicU64::new(0)),
        64,
        &mut sink,
        &mut |_| {},
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fuzz target: bytes in, a panic on a bug.
pub type Target = fn(&[u8]);

/// The targets by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("event_parser", event_parser),
    ("segment", segment),
    ("checkpoint", checkpoint),
    ("import", import),
    ("chunk_file", chunk_file),
];
