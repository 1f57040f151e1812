//! The text clusters of one projection: every ticket's cluster, placed once when the ticket is
//! created, and the catalog of clusters (content id, readable label, founder).
//!
//! Pure like the projection: placing depends only on the tickets created before, in log
//! order, so a replay of the same log gives the same clusters, and the state is saved in the
//! checkpoint so a restart continues where it stopped. The settings that decide placement
//! (similarity, glossary) have a fingerprint; a checkpoint taken under other settings is not
//! used (the log is replayed instead).

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::cluster::{Clusterer, DEFAULT_SIMILARITY, DEFAULT_WINDOW_DAYS};
use super::text::{Analysis, Analyzer};
use crate::base::RestoreError;

/// Clusters per sealed catalog chunk (the unit a snapshot shares instead of copying).
const CATALOG_CHUNK: usize = 1024;

/// Bumped when text analysis or clustering changes in a way that moves tickets.
const ALGORITHM_VERSION: u32 = 3;

/// What decides where a ticket's text is placed.
#[derive(Debug)]
pub struct TextSetup {
    /// Cosine similarity at which a ticket joins a cluster.
    pub similarity: f64,
    /// Days a cluster's tickets stay comparable.
    pub window_days: u32,
    /// Extra French → English glossary entries.
    pub glossary: BTreeMap<String, String>,
    /// The analyzer built from the glossary.
    pub analyzer: Analyzer,
}

impl Default for TextSetup {
    fn default() -> TextSetup {
        TextSetup::new(DEFAULT_SIMILARITY, BTreeMap::new())
    }
}

impl TextSetup {
    /// A setup joining at `similarity`, with the built-in glossary extended by `glossary`.
    pub fn new(similarity: f64, glossary: BTreeMap<String, String>) -> TextSetup {
        TextSetup {
            similarity,
            window_days: DEFAULT_WINDOW_DAYS,
            analyzer: Analyzer::new(&glossary),
            glossary,
        }
    }

    /// The same setup with a window of `days` days.
    pub fn with_window_days(mut self, days: u32) -> TextSetup {
        self.window_days = days.max(1);
        self
    }

    /// A hash of everything that decides placement.
    pub fn fingerprint(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        ALGORITHM_VERSION.hash(&mut h);
        self.similarity.to_bits().hash(&mut h);
        self.window_days.hash(&mut h);
        self.glossary.hash(&mut h);
        h.finish()
    }
}

/// One cluster as the catalog describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterMeta {
    /// Content-based id (a hash of the founder's tokens).
    pub id: u64,
    /// The founder's title, normalised and masked (`vpn connection drops … error <hex>`).
    pub label: Box<str>,
    /// The ticket that founded the cluster.
    pub founder_ticket: Box<str>,
    /// Its creation time (ms).
    pub founder_at: i64,
}

/// The clusters of one projection, as a snapshot shares them: sealed chunks by reference.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Chunks of [`CATALOG_CHUNK`] clusters (the last may be shorter), in founding order.
    pub chunks: Vec<Arc<[ClusterMeta]>>,
}

impl Catalog {
    /// The cluster at `index`.
    pub fn get(&self, index: u32) -> Option<&ClusterMeta> {
        let i = index as usize;
        self.chunks
            .get(i / CATALOG_CHUNK)
            .and_then(|c| c.get(i % CATALOG_CHUNK))
    }

    /// Number of clusters.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    /// Whether there is no cluster.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// All clusters in founding order.
    pub fn iter(&self) -> impl Iterator<Item = &ClusterMeta> {
        self.chunks.iter().flat_map(|c| c.iter())
    }
}

/// Text clusters of one projection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextState {
    #[serde(skip)]
    setup: Option<Arc<TextSetup>>,
    fingerprint: u64,
    clusterer: Clusterer,
    /// Cluster index of every ticket, by ticket index.
    ticket_cluster: Vec<u32>,
    sealed: Vec<Arc<[ClusterMeta]>>,
    open: Vec<ClusterMeta>,
    /// The open chunk as last shared, while it has not changed.
    #[serde(skip)]
    open_shared: Option<Arc<[ClusterMeta]>>,
}

impl Default for TextState {
    fn default() -> TextState {
        TextState::new(Arc::new(TextSetup::default()))
    }
}

impl TextState {
    /// Empty state placing tickets under `setup`.
    pub fn new(setup: Arc<TextSetup>) -> TextState {
        TextState {
            fingerprint: setup.fingerprint(),
            clusterer: Clusterer::new(setup.similarity, setup.window_days),
            setup: Some(setup),
            ticket_cluster: Vec::new(),
            sealed: Vec::new(),
            open: Vec::new(),
            open_shared: None,
        }
    }

    /// Attaches `setup` to state loaded from a checkpoint; fails when it was built under other
    /// settings.
    pub fn attach(&mut self, setup: Arc<TextSetup>) -> Result<(), RestoreError> {
        if setup.fingerprint() != self.fingerprint {
            return Err(RestoreError::OtherSettings("text clustering settings"));
        }
        self.setup = Some(setup);
        Ok(())
    }

    /// The settings tickets are placed under.
    pub fn setup(&mut self) -> Arc<TextSetup> {
        self.setup
            .get_or_insert_with(|| Arc::new(TextSetup::default()))
            .clone()
    }

    /// Places the newly created ticket `ticket` (the next index) and returns its cluster index.
    /// `analysis` is the analyzer's reading of the text when already computed.
    pub fn place(
        &mut self,
        ticket: usize,
        ticket_id: &str,
        at: i64,
        title: &str,
        description: Option<&str>,
        analysis: Option<Analysis>,
    ) -> u32 {
        debug_assert_eq!(ticket, self.ticket_cluster.len());
        let index = self.assign(ticket_id, at, title, description, analysis);
        if self.ticket_cluster.len() <= ticket {
            self.ticket_cluster.resize(ticket + 1, u32::MAX);
        }
        self.ticket_cluster[ticket] = index;
        index
    }

    /// Places a ticket without recording it under a ticket index (the caller keeps where each
    /// ticket went, as [`super::order::TextOrder`] does for several partitions); its cluster
    /// index.
    pub fn assign(
        &mut self,
        ticket_id: &str,
        at: i64,
        title: &str,
        description: Option<&str>,
        analysis: Option<Analysis>,
    ) -> u32 {
        let setup = self.setup();
        let analysis = analysis.unwrap_or_else(|| setup.analyzer.analyze(title, description));
        let placed = self.clusterer.assign(&analysis, at);
        if placed.founded {
            self.open.push(ClusterMeta {
                id: self.clusterer.id(placed.index),
                label: setup.analyzer.display(title).into(),
                founder_ticket: ticket_id.into(),
                founder_at: at,
            });
            self.open_shared = None;
            if self.open.len() == CATALOG_CHUNK {
                self.sealed.push(std::mem::take(&mut self.open).into());
            }
        }
        placed.index
    }

    /// Checks a restored state against the number of tickets it was saved with: every placed
    /// ticket exists and names a cluster the state holds.
    pub fn check(&self, tickets: usize) -> Result<(), RestoreError> {
        let bad = |m: &str| Err(RestoreError::Inconsistent(m.into()));
        if self.ticket_cluster.len() > tickets {
            return bad("more tickets placed than the checkpoint holds");
        }
        let clusters = self.sealed.iter().map(|c| c.len()).sum::<usize>() + self.open.len();
        if self
            .ticket_cluster
            .iter()
            .any(|&c| c != u32::MAX && c as usize >= clusters)
        {
            return bad("a ticket names a cluster the state does not hold");
        }
        if self.clusterer.len() != clusters {
            return bad("the text clusters and their catalog disagree");
        }
        self.clusterer.check()
    }

    /// Cluster indices of the tickets `range`.
    pub fn clusters_of(&self, range: std::ops::Range<usize>) -> Arc<[u32]> {
        let end = range.end.min(self.ticket_cluster.len());
        let start = range.start.min(end);
        let mut out: Vec<u32> = self.ticket_cluster[start..end].to_vec();
        out.resize(range.len(), u32::MAX);
        out.into()
    }

    /// The cluster index of a ticket.
    pub fn cluster_of(&self, ticket: usize) -> Option<u32> {
        self.ticket_cluster.get(ticket).copied()
    }

    /// The catalog to share with a snapshot.
    pub fn catalog(&mut self) -> Catalog {
        let mut chunks = self.sealed.clone();
        if !self.open.is_empty() {
            let open = self
                .open_shared
                .get_or_insert_with(|| self.open.clone().into())
                .clone();
            chunks.push(open);
        }
        Catalog { chunks }
    }

    /// Number of clusters.
    pub fn len(&self) -> usize {
        self.clusterer.len()
    }

    /// Whether no ticket was placed.
    pub fn is_empty(&self) -> bool {
        self.clusterer.is_empty()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let meta = |m: &ClusterMeta| {
            std::mem::size_of::<ClusterMeta>() + m.label.len() + m.founder_ticket.len()
        };
        self.clusterer.heap_bytes()
            + self.ticket_cluster.capacity() * 4
            + self
                .sealed
                .iter()
                .flat_map(|c| c.iter())
                .map(meta)
                .sum::<usize>()
            + self.open.iter().map(meta).sum::<usize>()
    }
}
