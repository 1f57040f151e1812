//! Streaming readers of the formats, gzip or plain: CSV rows with a header, the events of an
//! XES log with their trace's attributes (as `trace.<key>`), and JSON documents.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_xml::events::{BytesStart, Event};

use super::mapping::{Format, Mapping};

/// One row (CSV) or event (XES), before mapping.
#[derive(Debug, Clone)]
pub struct Record {
    /// Where it is: the CSV line, or the XES event's number in the file.
    pub row: u64,
    values: Values,
}

#[derive(Debug, Clone)]
enum Values {
    Csv {
        index: Arc<HashMap<String, usize>>,
        record: csv::StringRecord,
    },
    Map(HashMap<String, String>),
}

impl Record {
    /// A record of named values (tests, XES).
    pub fn from_map(row: u64, values: HashMap<String, String>) -> Record {
        Record {
            row,
            values: Values::Map(values),
        }
    }

    /// The value of a column or attribute.
    pub fn get(&self, key: &str) -> Option<&str> {
        match &self.values {
            Values::Csv { index, record } => index.get(key).and_then(|&i| record.get(i)),
            Values::Map(m) => m.get(key).map(String::as_str),
        }
    }
}

/// A row that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    /// Where.
    pub row: u64,
    /// Why.
    pub message: String,
}

/// Counts the bytes read from the file (before decompression), for progress.
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Opens `path`, gunzipping when it starts with the gzip magic bytes.
fn open_bytes(path: &Path, count: Arc<AtomicU64>) -> std::io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
    let mut reader = BufReader::with_capacity(1 << 16, Counted { inner: file, count });
    let gz = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(reader),
        ))
    } else {
        Box::new(reader)
    })
}

/// The records of one input file.
pub type Records = Box<dyn Iterator<Item = Result<Record, ReadError>> + Send>;

/// Opens `path` as the mapping's format; `count` follows the bytes read.
pub fn open(path: &Path, mapping: &Mapping, count: Arc<AtomicU64>) -> std::io::Result<Records> {
    let bytes = open_bytes(path, count)?;
    Ok(match mapping.format {
        Format::Csv => Box::new(CsvRecords::new(bytes, mapping)?),
        Format::Xes => Box::new(XesRecords::new(bytes)),
        Format::Json => {
            let columns = super::derive::Deriver::new(mapping.clone()).columns();
            let rows = super::json::JsonRows::new(mapping, columns);
            let docs =
                serde_json::Deserializer::from_reader(bytes).into_iter::<serde_json::Value>();
            Box::new(JsonRecords {
                docs,
                rows,
                pending: std::collections::VecDeque::new(),
                count: 0,
                done: false,
            })
        }
    })
}

/// JSON documents, one after another (NDJSON) or in arrays; each is a row.
struct JsonRecords {
    docs: serde_json::StreamDeserializer<
        'static,
        serde_json::de::IoRead<Box<dyn BufRead + Send>>,
        serde_json::Value,
    >,
    rows: super::json::JsonRows,
    pending: std::collections::VecDeque<serde_json::Value>,
    count: u64,
    done: bool,
}

impl Iterator for JsonRecords {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(doc) = self.pending.pop_front() {
                self.count += 1;
                return Some(Ok(self.rows.record(self.count, &doc)));
            }
            if self.done {
                return None;
            }
            match self.docs.next()? {
                Ok(serde_json::Value::Array(docs)) => self.pending.extend(docs),
                Ok(doc) => self.pending.push_back(doc),
                Err(e) => {
                    // A syntax error leaves no place to resume from.
                    self.done = true;
                    return Some(Err(ReadError {
                        row: self.count + 1,
                        message: format!("not JSON: {e}"),
                    }));
                }
            }
        }
    }
}

struct CsvRecords {
    reader: csv::Reader<Box<dyn BufRead + Send>>,
    index: Arc<HashMap<String, usize>>,
    width: usize,
    done: bool,
}

impl CsvRecords {
    fn new(bytes: Box<dyn BufRead + Send>, mapping: &Mapping) -> std::io::Result<CsvRecords> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(mapping.delimiter())
            .quote(mapping.csv.quote.as_bytes()[0])
            .flexible(true)
            .has_headers(true)
            .from_reader(bytes);
        let headers = reader
            .headers()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?
            .clone();
        let index: HashMap<String, usize> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.trim_start_matches('\u{feff}').trim().to_string(), i))
            .collect();
        Ok(CsvRecords {
            width: headers.len(),
            index: Arc::new(index),
            reader,
            done: false,
        })
    }
}

impl Iterator for CsvRecords {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut record = csv::StringRecord::new();
        match self.reader.read_record(&mut record) {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                let row = record.position().map_or(0, |p| p.line());
                if record.len() != self.width {
                    return Some(Err(ReadError {
                        row,
                        message: format!(
                            "{} fields where the header has {} (a truncated or split line?)",
                            record.len(),
                            self.width
                        ),
                    }));
                }
                Some(Ok(Record {
                    row,
                    values: Values::Csv {
                        index: self.index.clone(),
                        record,
                    },
                }))
            }
            Err(e) => {
                let row = e.position().map_or(0, |p| p.line());
                if let csv::ErrorKind::Io(_) = e.kind() {
                    self.done = true;
                }
                Some(Err(ReadError {
                    row,
                    message: e.to_string(),
                }))
            }
        }
    }
}

/// Where the XES reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Log,
    Trace,
    Event,
}

struct XesRecords {
    reader: quick_xml::Reader<Box<dyn BufRead + Send>>,
    buf: Vec<u8>,
    level: Level,
    /// Depth of nested attributes below the current level (their values are ignored).
    nested: u32,
    trace: HashMap<String, String>,
    events: Vec<(u64, HashMap<String, String>)>,
    event: HashMap<String, String>,
    ready: std::collections::VecDeque<Result<Record, ReadError>>,
    count: u64,
    done: bool,
}

impl XesRecords {
    fn new(bytes: Box<dyn BufRead + Send>) -> XesRecords {
        XesRecords {
            reader: quick_xml::Reader::from_reader(bytes),
            buf: Vec::new(),
            level: Level::Log,
            nested: 0,
            trace: HashMap::new(),
            events: Vec::new(),
            event: HashMap::new(),
            ready: Default::default(),
            count: 0,
            done: false,
        }
    }

    fn attribute(e: &BytesStart<'_>) -> Option<(String, String)> {
        let (mut key, mut value) = (None, None);
        for a in e.attributes().flatten() {
            match a.key.as_ref() {
                b"key" => key = a.unescape_value().ok().map(|v| v.into_owned()),
                b"value" => value = a.unescape_value().ok().map(|v| v.into_owned()),
                _ => {}
            }
        }
        Some((key?, value.unwrap_or_default()))
    }

    /// One start (or empty) element.
    fn start(&mut self, e: &BytesStart<'_>, empty: bool) {
        let name = e.local_name();
        let name = name.as_ref();
        if self.nested > 0 {
            if !empty {
                self.nested += 1;
            }
            return;
        }
        match (self.level, name) {
            (Level::Log, b"trace") if !empty => {
                self.level = Level::Trace;
                self.trace.clear();
                self.events.clear();
            }
            (Level::Trace, b"event") => {
                self.count += 1;
                self.event.clear();
                if empty {
                    self.events.push((self.count, HashMap::new()));
                } else {
                    self.level = Level::Event;
                }
            }
            (Level::Trace | Level::Event, _) => {
                if let Some((k, v)) = Self::attribute(e) {
                    if self.level == Level::Trace {
                        self.trace.insert(k, v);
                    } else {
                        self.event.insert(k, v);
                    }
                }
                if !empty {
                    self.nested = 1;
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, name: &[u8]) {
        if self.nested > 0 {
            self.nested -= 1;
            return;
        }
        match (self.level, name) {
            (Level::Event, b"event") => {
                self.events
                    .push((self.count, std::mem::take(&mut self.event)));
                self.level = Level::Trace;
            }
            (Level::Trace, b"trace") => {
                // Trace attributes may follow the events: emit at the end of the trace.
                for (row, mut values) in self.events.drain(..) {
                    for (k, v) in &self.trace {
                        values.insert(format!("trace.{k}"), v.clone());
                    }
                    self.ready.push_back(Ok(Record::from_map(row, values)));
                }
                self.level = Level::Log;
            }
            _ => {}
        }
    }
}

impl Iterator for XesRecords {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Some(r);
            }
            if self.done {
                return None;
            }
            self.buf.clear();
            match self.reader.read_event_into(&mut self.buf) {
                Ok(Event::Start(e)) => {
                    let e = e.into_owned();
                    self.start(&e, false);
                }
                Ok(Event::Empty(e)) => {
                    let e = e.into_owned();
                    self.start(&e, true);
                }
                Ok(Event::End(e)) => {
                    let name = e.local_name().as_ref().to_vec();
                    self.end(&name);
                }
                Ok(Event::Eof) => {
                    self.done = true;
                    if self.level != Level::Log {
                        return Some(Err(ReadError {
                            row: self.count,
                            message: "the file ends inside a trace (truncated?); its events are not imported".into(),
                        }));
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    // Malformed XML cannot be resynchronised reliably: stop this file here.
                    self.done = true;
                    return Some(Err(ReadError {
                        row: self.count,
                        message: format!(
                            "malformed XML at byte {}: {e}; the rest of the file is not read",
                            self.reader.buffer_position()
                        ),
                    }));
                }
            }
        }
    }
}
