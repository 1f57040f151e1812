//! The engine: the single writer that owns the event log, the projection and the checkpoints.
//!
//! A batch of submitted events is decided event by event against the projection (applied,
//! duplicate, rejected), the applied ones are appended to the log with one durable write, and
//! only then does the caller acknowledge or publish a snapshot. If the append fails, the engine
//! throws its in-memory state away and rebuilds it from the checkpoint and the log, so memory
//! never holds an event the log does not. Start-up loads the newest checkpoint and replays only
//! the tail of the log; a projection is therefore always a function of the log.

pub mod replay;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::{CheckpointError, Checkpoints};
use crate::clustering::state::TextSetup;
use crate::event::TicketEvent;
use crate::log::embedded::EmbeddedLog;
use crate::log::{AppendRecord, EventLog, LogError, LogPosition};
use crate::projection::{Outcome, Projection, Snapshot};
use crate::sla::Rules;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The log failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A checkpoint could not be written.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

/// How the engine came up.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Recovery {
    /// Checkpoint loaded, if any.
    pub checkpoint: Option<PathBuf>,
    /// Records replayed from the log after it.
    pub replayed: u64,
    /// Log records that were not valid events (counted, skipped).
    pub invalid_records: u64,
    /// Bytes cut off a torn log tail.
    pub truncated_bytes: u64,
}

/// One event to submit, with the bytes to store in the log.
#[derive(Debug)]
pub struct Submission<'a> {
    /// The parsed event.
    pub event: &'a TicketEvent,
    /// Its JSON bytes as submitted.
    pub raw: &'a [u8],
    /// The text of a `ticket.created` event already analysed by [`Engine::text_setup`]'s
    /// analyzer (on the submitter's thread); `None` to analyse it while applying.
    pub text: Option<crate::clustering::text::Analysis>,
}

/// Owns the log and the projection of one data directory.
#[derive(Debug)]
pub struct Engine {
    data_dir: PathBuf,
    log: EmbeddedLog,
    projection: Projection,
    position: LogPosition,
    checkpoints: Checkpoints,
    events_since_checkpoint: u64,
    recovery: Recovery,
    rules: Arc<Rules>,
    text: Arc<TextSetup>,
}

impl Engine {
    /// Opens the data directory: the log (repairing a torn tail), the newest checkpoint, and a
    /// replay of the log after it. Tickets get SLA clocks under `rules`; a checkpoint taken
    /// under other rules is not used (the whole log is replayed).
    pub fn open(data_dir: &Path, rules: Arc<Rules>) -> Result<Engine, EngineError> {
        Engine::open_with(data_dir, rules, Arc::new(TextSetup::default()))
    }

    /// Like [`Engine::open`], placing ticket texts into clusters under `text`; a checkpoint
    /// taken under other text settings is not used either.
    pub fn open_with(
        data_dir: &Path,
        rules: Arc<Rules>,
        text: Arc<TextSetup>,
    ) -> Result<Engine, EngineError> {
        let log = EmbeddedLog::open(&data_dir.join("log"))?;
        let checkpoints = Checkpoints::new(&data_dir.join("checkpoints"));
        let mut engine = Engine {
            data_dir: data_dir.to_path_buf(),
            log,
            projection: Projection::with_setup(rules.clone(), text.clone()),
            position: LogPosition::default(),
            checkpoints,
            events_since_checkpoint: 0,
            recovery: Recovery::default(),
            rules,
            text,
        };
        engine.recover()?;
        Ok(engine)
    }

    fn recover(&mut self) -> Result<(), EngineError> {
        let mut recovery = Recovery {
            truncated_bytes: self.log.truncated_bytes(),
            ..Recovery::default()
        };
        let loaded = match self.checkpoints.load_newest(&self.log.end()?)? {
            Some(mut loaded) => match loaded
                .projection
                .attach(self.rules.clone(), self.text.clone())
            {
                Ok(()) => Some(loaded),
                Err(reason) => {
                    tracing::warn!(path = %loaded.path.display(), %reason, "replaying the whole log");
                    None
                }
            },
            None => None,
        };
        match loaded {
            Some(loaded) => {
                self.projection = loaded.projection;
                self.position = loaded.position;
                recovery.checkpoint = Some(loaded.path);
            }
            None => {
                // No usable checkpoint: history chunks on disk may be from another log.
                let chunks = self.data_dir.join("checkpoints").join("chunks");
                if chunks.exists() {
                    let _ = std::fs::remove_dir_all(&chunks);
                }
                self.projection = Projection::with_setup(self.rules.clone(), self.text.clone());
                self.position = LogPosition::default();
            }
        }
        let reader = self.log.reader(&self.position)?;
        let position = &mut self.position;
        replay::replay(&mut self.projection, reader, |partition, offset, error| {
            if let Some(e) = error {
                recovery.invalid_records += 1;
                tracing::warn!(offset, error = %e, "log record is not a valid event; skipped");
            }
            position.advance(partition, offset);
            recovery.replayed += 1;
        })?;
        self.events_since_checkpoint = recovery.replayed;
        tracing::info!(
            checkpoint = ?recovery.checkpoint,
            replayed = recovery.replayed,
            tickets = self.projection.ticket_count(),
            events = self.projection.event_count(),
            "projection recovered"
        );
        self.recovery = recovery;
        Ok(())
    }

    /// Decides and applies a batch; appends the applied events durably. Outcomes are in input
    /// order. On a log failure the in-memory state is rebuilt from disk and the error returned:
    /// none of the batch is then applied.
    pub fn submit(&mut self, batch: Vec<Submission<'_>>) -> Result<Vec<Outcome>, EngineError> {
        let first = self.log.next_offset();
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut records = Vec::with_capacity(batch.len());
        for s in batch {
            let offset = first + records.len() as u64;
            let outcome = self.projection.apply_prepared(s.event, offset, s.text);
            if outcome == Outcome::Applied {
                records.push(AppendRecord {
                    key: &s.event.ticket_id,
                    payload: s.raw,
                });
            }
            outcomes.push(outcome);
        }
        if records.is_empty() {
            return Ok(outcomes);
        }
        match self.log.append(&records) {
            Ok(placements) => {
                if let Some(last) = placements.last() {
                    self.position.advance(last.partition, last.offset);
                }
                self.events_since_checkpoint += records.len() as u64;
                Ok(outcomes)
            }
            Err(e) => {
                tracing::error!(error = %e, "log append failed; rebuilding the projection from disk");
                self.recover()?;
                Err(e.into())
            }
        }
    }

    /// The text settings tickets are analysed under, to analyse submissions ahead of
    /// [`Engine::submit`] on other threads.
    pub fn text_setup(&mut self) -> std::sync::Arc<crate::clustering::state::TextSetup> {
        self.projection.text_setup()
    }

    /// Writes a checkpoint of the current state.
    pub fn checkpoint(&mut self) -> Result<PathBuf, EngineError> {
        let path = self
            .checkpoints
            .write(&mut self.projection, &self.position)?;
        self.events_since_checkpoint = 0;
        Ok(path)
    }

    /// Events applied since the last checkpoint.
    pub fn events_since_checkpoint(&self) -> u64 {
        self.events_since_checkpoint
    }

    /// A snapshot for queries, sharing unchanged parts with `previous`.
    pub fn snapshot(&mut self, previous: &Snapshot) -> Snapshot {
        self.projection.snapshot(previous)
    }

    /// The projection.
    pub fn projection(&self) -> &Projection {
        &self.projection
    }

    /// The log position the projection covers.
    pub fn position(&self) -> &LogPosition {
        &self.position
    }

    /// The log.
    pub fn log(&self) -> &EmbeddedLog {
        &self.log
    }

    /// The projection, mutable (SLA time and transitions).
    pub fn projection_mut(&mut self) -> &mut Projection {
        &mut self.projection
    }

    /// How the engine came up.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }
}
