//! The event log: an ordered, replayable, durable sequence of event records.
//!
//! This module owns the [`EventLog`] trait that the engine appends to and replays from, and the
//! position type stored in checkpoints. It does not parse events: a record is bytes.
//! Implementations: [`embedded::EmbeddedLog`] (segment files on local disk, the default) and
//! [`crate::kafka::log::KafkaLog`] (a partitioned Kafka topic, in the Kafka module: the log does
//! not know its implementations).

pub mod embedded;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Errors of the event log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log directory could not be created or listed.
    #[error("cannot open the event log in {path}: {source}")]
    Open {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Another process holds the log.
    #[error(
        "the event log in {path} is in use by another deskwatch process (lock file {path}/LOCK); stop it first"
    )]
    Locked {
        /// Directory.
        path: PathBuf,
    },
    /// A segment could not be read.
    #[error("cannot read log segment {path}: {source}")]
    ReadSegment {
        /// Segment file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Appending or syncing failed; nothing after the last durable record may be assumed written.
    #[error("cannot append to log segment {path}: {source}")]
    Append {
        /// Segment file.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// A record before the tail failed its checksum: the log is damaged, not just torn.
    #[error(
        "log segment {path} is corrupt at byte {position} ({detail}); restore it from a backup or remove the segments from this one on and re-ingest"
    )]
    Corrupt {
        /// Segment file.
        path: PathBuf,
        /// Byte position of the bad record.
        position: u64,
        /// What was wrong.
        detail: String,
    },
    /// A read asked for an offset the log does not have.
    #[error("offset {offset} is beyond the end of the log ({end})")]
    OutOfRange {
        /// Requested offset.
        offset: u64,
        /// Next offset to be written.
        end: u64,
    },
    /// The broker behind the log (Kafka) failed or did not acknowledge.
    #[error(transparent)]
    Broker(Box<dyn std::error::Error + Send + Sync>),
    /// A record is larger than the log accepts.
    #[error("a record of {size} bytes exceeds the {max}-byte limit")]
    RecordTooLarge {
        /// Size.
        size: usize,
        /// Limit.
        max: usize,
    },
}

/// One record to append.
#[derive(Debug, Clone, Copy)]
pub struct AppendRecord<'a> {
    /// Partitioning key (the ticket id), so one ticket's events stay in order.
    pub key: &'a str,
    /// The event bytes.
    pub payload: &'a [u8],
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// Partition (always 0 for the embedded log).
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
}

/// One record read back.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Partition (always 0 for the embedded log).
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
    /// The event bytes.
    pub payload: &'a [u8],
}

/// Where a consumer stands: the next offset to read, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition(pub BTreeMap<u32, u64>);

impl LogPosition {
    /// The next offset to read in `partition` (0 when never read).
    pub fn next_offset(&self, partition: u32) -> u64 {
        self.0.get(&partition).copied().unwrap_or(0)
    }

    /// Records that `offset` of `partition` has been applied.
    pub fn advance(&mut self, partition: u32, offset: u64) {
        let next = self.0.entry(partition).or_insert(0);
        *next = (*next).max(offset + 1);
    }

    /// Total records applied over all partitions.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

/// An append-only, ordered, replayable log of event records.
///
/// `append` returns only once the records are durable. Readers see only durable records.
pub trait EventLog: Send + std::fmt::Debug {
    /// Appends `records` durably, keeping the order of records with the same key; returns where
    /// each one landed, in input order.
    fn append(&mut self, records: &[AppendRecord<'_>]) -> Result<Vec<Placement>, LogError>;

    /// The next offset to be written, per partition.
    fn end(&self) -> Result<LogPosition, LogError>;

    /// A reader over the durable records from `from` on.
    fn reader(&self, from: &LogPosition) -> Result<Box<dyn LogReader>, LogError>;
}

/// Reads records in log order.
pub trait LogReader: Send {
    /// The next record, or `None` at the end of what was durable when the reader was made.
    fn next_record(&mut self) -> Result<Option<Record<'_>>, LogError>;
}
