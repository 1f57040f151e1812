//! The embedded event log: numbered segment files in one directory.
//!
//! Layout: `<dir>/<base offset, 20 digits>.seg`, each starting with an 8-byte magic, then
//! frames `[len: u32 LE][crc32(len ‖ payload): u32 LE][payload]`. A segment is rolled at
//! [`SEGMENT_BYTES`]. `append` writes a whole batch with one `write` and one `fdatasync`
//! (group commit: the caller batches concurrent submissions). On open, the last segment is
//! scanned; a torn or corrupt tail is cut off at the last good frame, never read as data. A bad
//! frame in an older segment is an error ([`LogError::Corrupt`]), not something to skip.
//!
//! Why not a crate: the well-known embedded logs are either unmaintained (`commitlog`) or
//! key-value stores with far more than an append-only log needs (`sled`, `fjall`); this file is
//! the whole of what deskwatch needs and its format is documented above.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::{AppendRecord, EventLog, LogError, LogPosition, LogReader, Placement, Record};

/// Segment magic and format version.
const MAGIC: &[u8; 8] = b"DWLOG001";
/// Size at which a new segment is started.
pub const SEGMENT_BYTES: u64 = 128 * 1024 * 1024;
/// Largest record accepted.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
const FRAME_HEADER: usize = 8;

#[derive(Debug)]
struct Segment {
    base: u64,
    path: PathBuf,
    records: u64,
    bytes: u64,
}

/// The log on local disk. One process at a time (a lock file enforces it).
#[derive(Debug)]
pub struct EmbeddedLog {
    dir: PathBuf,
    segments: Vec<Segment>,
    active: File,
    _lock: File,
    truncated_bytes: u64,
    scratch: Vec<u8>,
}

impl EmbeddedLog {
    /// Reads the log in `dir` from the start without locking or changing it: what is durable
    /// when it is called, even while a writer (`deskwatch serve`) appends to it.
    pub fn read_only(dir: &Path) -> Result<Box<dyn LogReader>, LogError> {
        let open_err = |source| LogError::Open {
            path: dir.to_path_buf(),
            source,
        };
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).map_err(open_err)? {
            let name = entry.map_err(open_err)?.file_name();
            if let Some(base) = name
                .to_string_lossy()
                .strip_suffix(".seg")
                .and_then(|b| b.parse::<u64>().ok())
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let mut segments = std::collections::VecDeque::new();
        let mut end = 0;
        for (i, base) in bases.iter().enumerate() {
            let path = segment_path(dir, *base);
            let (records, bytes, _) = scan(&path, i + 1 == bases.len(), false)?;
            end = base + records;
            segments.push_back((*base, path, records, bytes));
        }
        Ok(Box::new(EmbeddedReader {
            segments,
            current: None,
            next: 0,
            end,
            buf: Vec::new(),
        }))
    }

    /// Opens (or creates) the log in `dir`, repairing a torn tail.
    pub fn open(dir: &Path) -> Result<EmbeddedLog, LogError> {
        let open_err = |source| LogError::Open {
            path: dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(dir).map_err(open_err)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(open_err)?;
        if lock.try_lock().is_err() {
            return Err(LogError::Locked {
                path: dir.to_path_buf(),
            });
        }
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir).map_err(open_err)? {
            let name = entry.map_err(open_err)?.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = name
                .strip_suffix(".seg")
                .and_then(|b| b.parse::<u64>().ok())
            {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        let mut segments = Vec::with_capacity(bases.len().max(1));
        let mut truncated_bytes = 0;
        for (i, base) in bases.iter().enumerate() {
            let path = segment_path(dir, *base);
            let last = i + 1 == bases.len();
            let (records, bytes, cut) = scan_segment(&path, last)?;
            truncated_bytes += cut;
            segments.push(Segment {
                base: *base,
                path,
                records,
                bytes,
            });
        }
        for pair in segments.windows(2) {
            if pair[0].base + pair[0].records != pair[1].base {
                return Err(LogError::Corrupt {
                    path: pair[1].path.clone(),
                    position: 0,
                    detail: format!(
                        "segment starts at offset {} but the previous one ends at {}",
                        pair[1].base,
                        pair[0].base + pair[0].records
                    ),
                });
            }
        }
        if segments.is_empty() {
            segments.push(create_segment(dir, 0)?);
        }
        let active = open_for_append(segments.last().map(|s| s.path.as_path()).unwrap_or(dir))?;
        if truncated_bytes > 0 {
            tracing::warn!(
                dir = %dir.display(),
                truncated_bytes,
                "cut a torn or corrupt tail off the event log"
            );
        }
        Ok(EmbeddedLog {
            dir: dir.to_path_buf(),
            segments,
            active,
            _lock: lock,
            truncated_bytes,
            scratch: Vec::new(),
        })
    }

    /// Bytes cut off a torn tail when the log was opened.
    pub fn truncated_bytes(&self) -> u64 {
        self.truncated_bytes
    }

    /// The next offset to be written.
    pub fn next_offset(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.base + s.records)
    }

    /// Total bytes on disk.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn roll(&mut self) -> Result<(), LogError> {
        let base = self.next_offset();
        let segment = create_segment(&self.dir, base)?;
        self.active = open_for_append(&segment.path)?;
        self.segments.push(segment);
        Ok(())
    }
}

impl EventLog for EmbeddedLog {
    fn append(&mut self, records: &[AppendRecord<'_>]) -> Result<Vec<Placement>, LogError> {
        let first = self.next_offset();
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(big) = records.iter().find(|r| r.payload.len() > MAX_RECORD_BYTES) {
            return Err(LogError::RecordTooLarge {
                size: big.payload.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        let mut rest = records;
        while !rest.is_empty() {
            let active_bytes = self.segments.last().map_or(0, |s| s.bytes);
            if active_bytes >= SEGMENT_BYTES {
                self.roll()?;
            }
            // Fill the active segment up to its size, then roll; at least one record per pass.
            let room = SEGMENT_BYTES.saturating_sub(active_bytes);
            let mut take = 0;
            let mut size = 0u64;
            for r in rest {
                let frame = (FRAME_HEADER + r.payload.len()) as u64;
                if take > 0 && size + frame > room {
                    break;
                }
                size += frame;
                take += 1;
            }
            let (now, later) = rest.split_at(take);
            self.scratch.clear();
            for r in now {
                encode_frame(&mut self.scratch, r.payload);
            }
            let Some(segment) = self.segments.last_mut() else {
                break;
            };
            let append_err = |source| LogError::Append {
                path: segment.path.clone(),
                source,
            };
            let written = self
                .active
                .write_all(&self.scratch)
                .and_then(|()| self.active.sync_data());
            if let Err(e) = written {
                // Leave the file as long as the last durable frame, so a retry cannot interleave.
                let _ = self.active.set_len(segment.bytes);
                return Err(append_err(e));
            }
            segment.bytes += self.scratch.len() as u64;
            segment.records += now.len() as u64;
            rest = later;
        }
        Ok((first..first + records.len() as u64)
            .map(|offset| Placement {
                partition: 0,
                offset,
            })
            .collect())
    }

    fn end(&self) -> Result<LogPosition, LogError> {
        let mut p = LogPosition::default();
        p.0.insert(0, self.next_offset());
        Ok(p)
    }

    fn reader(&self, from: &LogPosition) -> Result<Box<dyn LogReader>, LogError> {
        let from = from.next_offset(0);
        let end = self.next_offset();
        if from > end {
            return Err(LogError::OutOfRange { offset: from, end });
        }
        let segments = self
            .segments
            .iter()
            .filter(|s| s.base + s.records > from || s.base == from)
            .map(|s| (s.base, s.path.clone(), s.records, s.bytes))
            .collect();
        Ok(Box::new(EmbeddedReader {
            segments,
            current: None,
            next: from,
            end,
            buf: Vec::new(),
        }))
    }
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

fn create_segment(dir: &Path, base: u64) -> Result<Segment, LogError> {
    let path = segment_path(dir, base);
    let err = |source| LogError::Append {
        path: path.clone(),
        source,
    };
    let mut f = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .map_err(err)?;
    f.write_all(MAGIC)
        .and_then(|()| f.sync_all())
        .map_err(err)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(err)?;
    Ok(Segment {
        base,
        path,
        records: 0,
        bytes: MAGIC.len() as u64,
    })
}

fn open_for_append(path: &Path) -> Result<File, LogError> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|source| LogError::Append {
            path: path.to_path_buf(),
            source,
        })
}

fn encode_frame(out: &mut Vec<u8>, payload: &[u8]) {
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// Counts the good frames of a segment. In the last segment a bad frame ends the log: the file
/// is cut there and `(records, bytes, cut bytes)` returned. Elsewhere a bad frame is corruption.
fn scan_segment(path: &Path, last: bool) -> Result<(u64, u64, u64), LogError> {
    scan(path, last, true)
}

/// [`scan_segment`] that may leave the file alone (`repair: false`: a bad tail of the last
/// segment just ends what is read, as when a writer is in the middle of a frame).
fn scan(path: &Path, last: bool, repair: bool) -> Result<(u64, u64, u64), LogError> {
    let read_err = |source| LogError::ReadSegment {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    let mut pos = 0u64;
    let mut records = 0u64;
    let mut problem = None;
    if reader.read_exact(&mut magic).is_err() || &magic != MAGIC {
        problem = Some("missing segment header".to_string());
    } else {
        pos = MAGIC.len() as u64;
        let mut payload = Vec::new();
        loop {
            match read_frame(&mut reader, &mut payload, len - pos) {
                Ok(Some(frame_len)) => {
                    pos += frame_len;
                    records += 1;
                }
                Ok(None) => break,
                Err(detail) => {
                    problem = Some(detail.to_string());
                    break;
                }
            }
        }
    }
    match problem {
        None => Ok((records, pos, 0)),
        Some(_) if last && !repair => Ok((records, pos.max(MAGIC.len() as u64), 0)),
        Some(detail) if last => {
            let keep = pos.max(MAGIC.len() as u64);
            let f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(read_err)?;
            if pos < MAGIC.len() as u64 {
                f.set_len(0).map_err(read_err)?;
                (&f).write_all(MAGIC).map_err(read_err)?;
            } else {
                f.set_len(keep).map_err(read_err)?;
            }
            f.sync_all().map_err(read_err)?;
            tracing::warn!(path = %path.display(), position = keep, %detail, "truncating log tail");
            Ok((records, keep, len.saturating_sub(keep)))
        }
        Some(detail) => Err(LogError::Corrupt {
            path: path.to_path_buf(),
            position: pos,
            detail,
        }),
    }
}

/// What is wrong with a frame that cannot be read.
#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("torn frame header ({0} bytes)")]
    TornHeader(u64),
    #[error("unreadable frame header: {0}")]
    Header(std::io::Error),
    #[error("frame length {0} runs past the end of the segment")]
    Length(usize),
    #[error("unreadable frame: {0}")]
    Body(std::io::Error),
    #[error("checksum mismatch")]
    Checksum,
}

/// Reads one frame into `payload`. `Ok(None)` at a clean end; `Err` describes a torn or bad frame.
fn read_frame(
    reader: &mut impl Read,
    payload: &mut Vec<u8>,
    remaining: u64,
) -> Result<Option<u64>, FrameError> {
    if remaining == 0 {
        return Ok(None);
    }
    if remaining < FRAME_HEADER as u64 {
        return Err(FrameError::TornHeader(remaining));
    }
    let mut header = [0u8; FRAME_HEADER];
    reader.read_exact(&mut header).map_err(FrameError::Header)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD_BYTES || (FRAME_HEADER + len) as u64 > remaining {
        return Err(FrameError::Length(len));
    }
    payload.resize(len, 0);
    reader.read_exact(payload).map_err(FrameError::Body)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[..4]);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Err(FrameError::Checksum);
    }
    Ok(Some((FRAME_HEADER + len) as u64))
}

struct EmbeddedReader {
    /// (base, path, records, bytes) of the segments still to read.
    segments: std::collections::VecDeque<(u64, PathBuf, u64, u64)>,
    current: Option<OpenSegment>,
    next: u64,
    end: u64,
    buf: Vec<u8>,
}

struct OpenSegment {
    path: PathBuf,
    reader: BufReader<File>,
    offset: u64,
    pos: u64,
    bytes: u64,
}

impl EmbeddedReader {
    fn open_next(&mut self) -> Result<bool, LogError> {
        let Some((base, path, _records, bytes)) = self.segments.pop_front() else {
            return Ok(false);
        };
        let read_err = |source| LogError::ReadSegment {
            path: path.clone(),
            source,
        };
        let mut file = File::open(&path).map_err(read_err)?;
        file.seek(SeekFrom::Start(MAGIC.len() as u64))
            .map_err(read_err)?;
        let mut seg = OpenSegment {
            path: path.clone(),
            reader: BufReader::with_capacity(1 << 20, file),
            offset: base,
            pos: MAGIC.len() as u64,
            bytes,
        };
        // Skip to `next` by reading headers only.
        while seg.offset < self.next {
            let mut header = [0u8; FRAME_HEADER];
            seg.reader.read_exact(&mut header).map_err(read_err)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as i64;
            seg.reader.seek_relative(len).map_err(read_err)?;
            seg.pos += FRAME_HEADER as u64 + len as u64;
            seg.offset += 1;
        }
        self.current = Some(seg);
        Ok(true)
    }
}

impl LogReader for EmbeddedReader {
    fn next_record(&mut self) -> Result<Option<Record<'_>>, LogError> {
        loop {
            if self.next >= self.end {
                return Ok(None);
            }
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            let Some(seg) = self.current.as_mut() else {
                return Ok(None);
            };
            if seg.pos >= seg.bytes {
                self.current = None;
                continue;
            }
            match read_frame(&mut seg.reader, &mut self.buf, seg.bytes - seg.pos) {
                Ok(Some(n)) => {
                    seg.pos += n;
                    let offset = seg.offset;
                    seg.offset += 1;
                    self.next = offset + 1;
                    return Ok(Some(Record {
                        partition: 0,
                        offset,
                        payload: &self.buf,
                    }));
                }
                Ok(None) => self.current = None,
                Err(detail) => {
                    return Err(LogError::Corrupt {
                        path: seg.path.clone(),
                        position: seg.pos,
                        detail: detail.to_string(),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append_all(log: &mut EmbeddedLog, payloads: &[&str]) -> u64 {
        let records: Vec<_> = payloads
            .iter()
            .map(|p| AppendRecord {
                key: "k",
                payload: p.as_bytes(),
            })
            .collect();
        log.append(&records).unwrap()[0].offset
    }

    fn read_all(log: &EmbeddedLog, from: u64) -> Vec<(u64, String)> {
        let mut pos = LogPosition::default();
        pos.0.insert(0, from);
        let mut reader = log.reader(&pos).unwrap();
        let mut out = Vec::new();
        while let Some(r) = reader.next_record().unwrap() {
            out.push((r.offset, String::from_utf8(r.payload.to_vec()).unwrap()));
        }
        out
    }

    #[test]
    fn appends_and_replays_from_any_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EmbeddedLog::open(dir.path()).unwrap();
        assert_eq!(append_all(&mut log, &["a", "b"]), 0);
        assert_eq!(append_all(&mut log, &["c"]), 2);
        assert_eq!(read_all(&log, 1), vec![(1, "b".into()), (2, "c".into())]);
        drop(log);
        let log = EmbeddedLog::open(dir.path()).unwrap();
        assert_eq!(log.next_offset(), 3);
        assert_eq!(read_all(&log, 0).len(), 3);
        assert!(log.reader(&LogPosition([(0, 9)].into())).is_err());
    }

    #[test]
    fn a_second_process_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _log = EmbeddedLog::open(dir.path()).unwrap();
        assert!(matches!(
            EmbeddedLog::open(dir.path()),
            Err(LogError::Locked { .. })
        ));
    }

    #[test]
    fn torn_and_corrupt_tails_are_cut_never_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EmbeddedLog::open(dir.path()).unwrap();
        append_all(&mut log, &["first", "second", "third"]);
        drop(log);
        let seg = segment_path(dir.path(), 0);
        let full = fs::metadata(&seg).unwrap().len();
        // Torn: half of the last frame is missing.
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(full - 3)
            .unwrap();
        let mut log = EmbeddedLog::open(dir.path()).unwrap();
        assert!(log.truncated_bytes() > 0);
        assert_eq!(read_all(&log, 0).len(), 2);
        append_all(&mut log, &["again"]);
        assert_eq!(read_all(&log, 0)[2], (2, "again".to_string()));
        drop(log);
        // Corrupt: flip a payload byte of the last frame.
        let mut bytes = fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        let log = EmbeddedLog::open(dir.path()).unwrap();
        assert_eq!(read_all(&log, 0).len(), 2);
    }

    #[test]
    fn corruption_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = EmbeddedLog::open(dir.path()).unwrap();
        append_all(&mut log, &["aaaa", "bbbb"]);
        log.roll().unwrap();
        append_all(&mut log, &["cccc"]);
        drop(log);
        let seg = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[MAGIC.len() + FRAME_HEADER] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        assert!(matches!(
            EmbeddedLog::open(dir.path()),
            Err(LogError::Corrupt { .. })
        ));
    }
}
