//! Backfill from other help desks: CSV and XES exports, gzip or plain, streamed through a
//! mapping file ([`mapping`]) into events ([`derive`]).
//!
//! Rows of one ticket that follow each other in the file are put in time order before they are
//! derived (exports sorted by ticket, XES traces); a ticket may also come back later in the file
//! (exports sorted by time) as long as its rows keep moving forward in time. A row that cannot be
//! mapped is reported with its number and reason and counted; the rest goes on.

pub mod derive;
pub mod json;
pub mod mapping;
pub mod source;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde::Serialize;

use crate::event::TicketEvent;
use derive::{Deriver, Keyed, RowError, RowOutcome};
use mapping::{Format, Mapping};
use source::Record;

/// What an import did, per file and in all.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    /// Rows (CSV lines, XES events) read.
    pub rows: u64,
    /// Rows that became one or more events.
    pub imported_rows: u64,
    /// Rows that repeated the ticket's state.
    pub unchanged_rows: u64,
    /// Rows mapped to `skip`.
    pub skipped_rows: u64,
    /// Rows not imported, by reason.
    pub rejected_rows: BTreeMap<String, u64>,
    /// Events derived.
    pub events: u64,
}

impl Counts {
    /// Rows not imported.
    pub fn rejected(&self) -> u64 {
        self.rejected_rows.values().sum()
    }
}

/// Reads the mapped files and hands the events to `sink` in batches of about `batch`, with the
/// row each came from; `report` gets every row that was not imported.
#[derive(Debug)]
pub struct Importer {
    deriver: Deriver,
    /// Counts so far.
    pub counts: Counts,
}

/// An event and the row it came from.
pub type Derived = (u64, TicketEvent);

impl Importer {
    /// An importer for a checked mapping.
    pub fn new(mapping: Mapping) -> Importer {
        Importer {
            deriver: Deriver::new(mapping),
            counts: Counts::default(),
        }
    }

    /// Tickets seen so far.
    pub fn tickets(&self) -> usize {
        self.deriver.tickets()
    }

    /// Imports one file. `progress` follows the bytes read; `sink` takes batches of events (an
    /// error stops the import: the log refused to store them); `report` takes rejected rows.
    pub fn file<E>(
        &mut self,
        path: &Path,
        progress: Arc<AtomicU64>,
        batch: usize,
        sink: &mut dyn FnMut(Vec<Derived>) -> Result<(), E>,
        report: &mut dyn FnMut(&RowError),
    ) -> Result<(), ImportError<E>> {
        let records = source::open(path, self.deriver.mapping(), progress)
            .map_err(|e| ImportError::Open(path.display().to_string(), e))?;
        let mut checked = self.deriver.mapping().format != Format::Csv;
        let mut group: Vec<(Record, Keyed)> = Vec::new();
        let mut pending: Vec<Derived> = Vec::with_capacity(batch);
        for item in records {
            self.counts.rows += 1;
            let record = match item {
                Ok(r) => r,
                Err(e) => {
                    self.reject(
                        report,
                        &RowError {
                            row: e.row,
                            ticket: None,
                            reason: "unreadable",
                            message: e.message,
                        },
                    );
                    continue;
                }
            };
            if !checked {
                let missing: Vec<String> = self
                    .deriver
                    .columns()
                    .into_iter()
                    .filter(|c| record.get(c).is_none())
                    .collect();
                if !missing.is_empty() {
                    return Err(ImportError::Columns(path.display().to_string(), missing));
                }
                checked = true;
            }
            let key = match self.deriver.key(&record) {
                Ok(k) => k,
                Err(e) => {
                    self.reject(report, &e);
                    continue;
                }
            };
            if group.first().is_some_and(|(_, k)| k.ticket != key.ticket) {
                self.flush_group(&mut group, &mut pending, report);
                if pending.len() >= batch {
                    sink(std::mem::take(&mut pending)).map_err(ImportError::Sink)?;
                }
            }
            group.push((record, key));
        }
        self.flush_group(&mut group, &mut pending, report);
        if !pending.is_empty() {
            sink(pending).map_err(ImportError::Sink)?;
        }
        Ok(())
    }

    fn reject(&mut self, report: &mut dyn FnMut(&RowError), e: &RowError) {
        *self
            .counts
            .rejected_rows
            .entry(e.reason.to_string())
            .or_default() += 1;
        report(e);
    }

    /// Derives the rows of one ticket, in time order (stable: equal instants keep file order).
    fn flush_group(
        &mut self,
        group: &mut Vec<(Record, Keyed)>,
        pending: &mut Vec<Derived>,
        report: &mut dyn FnMut(&RowError),
    ) {
        group.sort_by_key(|(_, k)| k.at);
        let n = group.len();
        for (i, (record, key)) in group.drain(..).enumerate() {
            match self.deriver.row(&record, &key, i + 1 < n) {
                Ok(RowOutcome::Events(events)) => {
                    self.counts.imported_rows += 1;
                    self.counts.events += events.len() as u64;
                    pending.extend(events.into_iter().map(|e| (record.row, e)));
                }
                Ok(RowOutcome::Unchanged) => self.counts.unchanged_rows += 1,
                Ok(RowOutcome::Skipped) => self.counts.skipped_rows += 1,
                Err(e) => self.reject(report, &e),
            }
        }
    }
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError<E> {
    /// The file could not be opened or is not of the mapping's format.
    #[error("cannot read {0}: {1}")]
    Open(String, std::io::Error),
    /// The mapping names columns the file does not have.
    #[error("{0} has no column {1:?} that the mapping names")]
    Columns(String, Vec<String>),
    /// The log did not take the events.
    #[error("the log did not take the events: {0}")]
    Sink(E),
}

#[cfg(test)]
mod tests;
