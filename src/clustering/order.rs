//! Text placement in one order across the partitions of a Kafka topic.
//!
//! Placing a ticket depends on the tickets placed before it, so every replica must place the
//! tickets of all partitions in the same order, whatever order its consumer happened to read
//! the partitions in. That order is a function of the topic alone: each partition's records
//! come in order, and each partition tells how far in time it has got, its *horizon*: the
//! creation time of its latest ticket, or the time of its latest *tick* less [`GRACE_MS`]
//! (replicas append a tick to a partition that has been quiet for a while, saying "what is
//! created from now on arrives within the grace"). A ticket waits until every partition's
//! horizon has passed its key, then is placed; keys are placed in order of (creation time,
//! ticket id). The result is the embedded log's order when the events were appended in
//! creation order, and the same on every replica, after any restart and for any interleaving
//! of the partitions.
//!
//! A ticket that reaches its partition after the partition's horizon passed its creation
//! time (created before the tickets before it in the partition, or more than [`GRACE_MS`]
//! before a tick, as in an import of old tickets into a running desk) takes its place at the
//! horizon: where it arrived, not where it was created. It is counted as reordered.
//!
//! Pure: the caller feeds records; [`crate::checkpoint`] saves the state with the offset of
//! each partition it has read up to.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::state::{Catalog, TextSetup, TextState};
use crate::base::RestoreError;

/// How long after its creation a ticket may reach its partition after a tick and still be
/// placed where it was created.
pub const GRACE_MS: i64 = 60_000;

/// Where a waiting ticket goes in the order: creation time, ticket id, partition.
type Key = (i64, Box<str>, u32);

/// A created ticket waiting for its turn.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Waiting {
    /// Its index in its partition's projection.
    ticket: u32,
    /// Its creation time (ms).
    at: i64,
    title: Box<str>,
    description: Option<Box<str>>,
}

/// What the order knows of one partition.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Part {
    /// Cluster of each of the partition's tickets, by ticket index (`u32::MAX`: waiting, or
    /// never read).
    clusters: Vec<u32>,
    /// Next offset to read.
    fed: u64,
    /// No ticket will be placed before this time (ms) from this partition (see the module
    /// documentation).
    horizon: Option<i64>,
    /// Tickets placed since the caller last asked (see [`TextOrder::take_changed`]).
    #[serde(skip)]
    changed: BTreeSet<u32>,
}

/// The text clusters of a desk read from several partitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextOrder {
    text: TextState,
    parts: BTreeMap<u32, Part>,
    waiting: BTreeMap<Key, Waiting>,
    /// Tickets placed at their partition's horizon rather than at their creation time.
    reordered: u64,
}

impl TextOrder {
    /// No ticket read yet, placing under `setup`.
    pub fn new(setup: Arc<TextSetup>) -> TextOrder {
        TextOrder {
            text: TextState::new(setup),
            parts: BTreeMap::new(),
            waiting: BTreeMap::new(),
            reordered: 0,
        }
    }

    /// Attaches `setup` to state loaded from a checkpoint and checks the state; fails when it
    /// was built under other settings or does not hold together.
    pub fn attach(&mut self, setup: Arc<TextSetup>) -> Result<(), RestoreError> {
        self.text.attach(setup)?;
        // The order keeps the tickets' clusters itself: the state holds none.
        self.text.check(0)?;
        let clusters = self.text.len();
        for part in self.parts.values() {
            if part
                .clusters
                .iter()
                .any(|&c| c != u32::MAX && c as usize >= clusters)
            {
                return Err(RestoreError::Inconsistent(
                    "a ticket names a cluster the text order does not hold".into(),
                ));
            }
        }
        for ((_, _, p), w) in &self.waiting {
            let known = self.parts.get(p).map_or(0, |part| part.clusters.len());
            if w.ticket as usize >= known {
                return Err(RestoreError::Inconsistent(
                    "a waiting ticket is not among its partition's tickets".into(),
                ));
            }
        }
        Ok(())
    }

    /// Takes part `partition` into account from now on (it bounds the order even before its
    /// first record).
    pub fn add_partition(&mut self, partition: u32) {
        self.parts.entry(partition).or_default();
    }

    /// Next offset of `partition` to read.
    pub fn fed(&self, partition: u32) -> u64 {
        self.parts.get(&partition).map_or(0, |p| p.fed)
    }

    /// Tickets read from `partition` so far: the index the next created ticket must have.
    pub fn tickets(&self, partition: u32) -> usize {
        self.parts.get(&partition).map_or(0, |p| p.clusters.len())
    }

    /// The record at `offset` of `partition` created no ticket.
    pub fn skip(&mut self, partition: u32, offset: u64) {
        let part = self.parts.entry(partition).or_default();
        part.fed = part.fed.max(offset + 1);
    }

    /// The record at `offset` of `partition` is a tick written at `at` (ms): the partition
    /// will place nothing before `at` − [`GRACE_MS`].
    pub fn tick(&mut self, partition: u32, offset: u64, at: i64) {
        let part = self.parts.entry(partition).or_default();
        part.fed = part.fed.max(offset + 1);
        let horizon = at.saturating_sub(GRACE_MS);
        part.horizon = Some(part.horizon.map_or(horizon, |h| h.max(horizon)));
    }

    /// The record at `offset` of `partition` created ticket number `ticket` of the partition.
    /// Tickets between the last one read and `ticket` (records the broker no longer has)
    /// stay without a cluster.
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        partition: u32,
        offset: u64,
        ticket: usize,
        ticket_id: &str,
        at: i64,
        title: &str,
        description: Option<&str>,
    ) {
        let part = self.parts.entry(partition).or_default();
        part.fed = part.fed.max(offset + 1);
        if ticket < part.clusters.len() {
            return; // read before
        }
        part.clusters.resize(ticket + 1, u32::MAX);
        let key_at = part.horizon.map_or(at, |h| h.max(at));
        part.horizon = Some(key_at);
        if key_at > at {
            self.reordered += 1;
        }
        self.waiting.insert(
            (key_at, ticket_id.into(), partition),
            Waiting {
                ticket: ticket as u32,
                at,
                title: title.into(),
                description: description.map(Into::into),
            },
        );
    }

    /// Places, in order, every waiting ticket no partition can still precede; how many.
    pub fn release(&mut self) -> usize {
        let bound = self
            .parts
            .values()
            .map(|p| p.horizon.unwrap_or(i64::MIN))
            .min()
            .unwrap_or(i64::MIN);
        let mut placed = 0;
        // A partition may still deliver another ticket at its horizon: strictly before it.
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 >= bound {
                break;
            }
            let (key, waiting) = entry.remove_entry();
            self.place(&key, &waiting);
            placed += 1;
        }
        placed
    }

    fn place(&mut self, key: &Key, waiting: &Waiting) {
        let (_, ticket_id, partition) = key;
        let cluster = self.text.assign(
            ticket_id,
            waiting.at,
            &waiting.title,
            waiting.description.as_deref(),
            None,
        );
        let part = self.parts.entry(*partition).or_default();
        if let Some(slot) = part.clusters.get_mut(waiting.ticket as usize) {
            *slot = cluster;
            part.changed.insert(waiting.ticket);
        }
    }

    /// Tickets of `partition` placed since the last call, by ticket index.
    pub fn take_changed(&mut self, partition: u32) -> BTreeSet<u32> {
        self.parts
            .get_mut(&partition)
            .map(|p| std::mem::take(&mut p.changed))
            .unwrap_or_default()
    }

    /// Cluster indices of tickets `range` of `partition` (`u32::MAX` where not placed).
    pub fn clusters_of(&self, partition: u32, range: std::ops::Range<usize>) -> Arc<[u32]> {
        let have = self
            .parts
            .get(&partition)
            .map_or(&[][..], |p| &p.clusters[..]);
        let end = range.end.min(have.len());
        let start = range.start.min(end);
        let mut out = have[start..end].to_vec();
        out.resize(range.len(), u32::MAX);
        out.into()
    }

    /// The catalog of every cluster.
    pub fn catalog(&mut self) -> Catalog {
        self.text.catalog()
    }

    /// Each partition's horizon (ms; `None` before its first ticket or tick).
    pub fn horizons(&self) -> Vec<(u32, Option<i64>)> {
        self.parts
            .iter()
            .map(|(&p, part)| (p, part.horizon))
            .collect()
    }

    /// Tickets read and not yet placed.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Tickets placed at their partition's horizon rather than at their creation time.
    pub fn reordered(&self) -> u64 {
        self.reordered
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.text.heap_bytes()
            + self
                .parts
                .values()
                .map(|p| p.clusters.capacity() * 4)
                .sum::<usize>()
            + self
                .waiting
                .iter()
                .map(|(k, w)| {
                    64 + k.1.len() + w.title.len() + w.description.as_ref().map_or(0, |d| d.len())
                })
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests;
