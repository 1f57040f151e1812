//! Incremental text clustering on term vectors weighted by this desk's own history.
//!
//! Every ticket becomes a vector of its tokens: title tokens count 2.5 times, description tokens
//! once (sub-linear in repeats, `1 + ln tf`), each weighted by how informative it is in the
//! tickets seen so far (document frequencies kept here, updated in log order):
//!
//! - **common words weigh little**: `1 + ln((N + 1) / (df + 1))`, so a word in most tickets
//!   (form text, greetings) counts for much less than a word that names the call;
//! - **one-off words weigh nothing**: a token no other ticket had yet (a person's or a
//!   project's name, a one-off code) cannot match anything; it still counts in the ticket's
//!   norm at a fraction of a recurring word, so a ticket made mostly of new words is a new
//!   kind of call rather than the cluster its few common words point to;
//! - **form text is dropped**: a description line whose normalised text was seen in at least
//!   `max(5, 0.5 % of tickets)` tickets is boilerplate (a portal's or a bug tracker's form) and
//!   is left out of multi-line descriptions.
//!
//! A ticket is compared with the **recent members** of the clusters (the last
//! [`RECENT_TICKETS`] tickets created within [`DEFAULT_WINDOW_DAYS`] days of it), found
//! through an inverted index on their most informative tokens, by the cosine of the two
//! vectors weighted with the current frequencies. It joins a cluster when
//!
//! - it closely resembles one of its recent tickets (cosine ≥ `similarity`), or
//! - it resembles, more loosely, several of them ([`SUPPORT`] tickets at cosine ≥
//!   `similarity` × [`LOOSE`]): a routine call that people word in many ways is recognised by
//!   how many of its recent tickets look like the new one, while one loose resemblance (two
//!   bug reports about the same screen) is not enough;
//!
//! and founds a new cluster otherwise. A cluster whose tickets stopped coming for the window is
//! not joined any more: a similar ticket months later starts a new occurrence. A cluster's id is
//! a hash of its founder's tokens.
//!
//! Placement is incremental and deterministic: a ticket is placed once, later tickets never
//! move it, and feeding the same tickets in the same order (a replay, or a restore from a
//! checkpoint and the rest of the log) gives the same clusters and ids. Sums run over sorted
//! tokens, and no decision depends on a hash map's iteration order.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use super::text::Analysis;
use crate::base::RestoreError;

/// Cosine similarity at which a ticket joins the cluster of a recent ticket, by default.
pub const DEFAULT_SIMILARITY: f64 = 0.46;
/// Days a cluster's tickets stay comparable, by default.
pub const DEFAULT_WINDOW_DAYS: u32 = 45;
/// The loose resemblance, as a share of the similarity, that counts towards [`SUPPORT`].
pub const LOOSE: f64 = 0.4;
/// Recent tickets of one cluster that must loosely resemble a ticket for it to join.
pub const SUPPORT: usize = 6;
/// Words a ticket must share with one recent ticket to join on that resemblance alone (one
/// rare word in common, a person's name, is not a call).
const STRICT_WORDS: usize = 2;
/// Term frequency of a title token (a description token counts 1 per occurrence).
const TITLE_TF: f64 = 2.5;
/// What a word no earlier ticket had weighs in a ticket's norm, as a share of a word seen
/// once before.
const NOVEL: f64 = 0.5;
/// Most recent tickets kept to compare with (bounds memory and time on a large desk).
pub const RECENT_TICKETS: usize = 32_768;
/// Tokens kept of a recent ticket's vector (its most informative when it was placed).
const MEMBER_TERMS: usize = 32;
/// Most informative tokens of a ticket it is looked up and indexed under.
const QUERY_TERMS: usize = 8;
/// Recent tickets listed per token in the inverted index (the oldest make room).
const POSTINGS: usize = 256;
/// Recent tickets scored before the search may stop at a near copy ([`NEAR_COPY`]).
const SCAN_BEFORE_STOP: usize = 64;
/// Cosine at which a recent ticket is a near copy of the new one.
const NEAR_COPY: f64 = 0.8;
/// Recent tickets scored per new ticket at most (those sharing the most query tokens, the
/// newest among equals).
const MAX_CANDIDATES: usize = 256;
/// Ticket numbers fit below the shared-key count packed above them (see `candidates`).
const NUMBER_BITS: u64 = (1 << 56) - 1;
/// Every this many tickets, tokens and lines seen only once are forgotten, and index entries
/// of tickets no longer recent (bounds memory on a large desk).
const PRUNE_EVERY: u64 = 65_536;
/// A description line seen in at least this many tickets (and 1/[`BOILERPLATE_SHARE`] of
/// all) is form text.
const BOILERPLATE_MIN: u32 = 5;
const BOILERPLATE_SHARE: u64 = 200;
/// Description lines counted for form-text detection per ticket.
const LINES_COUNTED: usize = 32;
const DAY_MS: i64 = 86_400_000;

/// Hashes of the mask tokens the analyzer puts in place of what varies.
static MASKS: std::sync::LazyLock<Vec<u64>> = std::sync::LazyLock::new(|| {
    [
        "<url>", "<email>", "<path>", "<ip>", "<hex>", "<id>", "<num>",
    ]
    .iter()
    .map(|m| xxh3_64(m.as_bytes()))
    .collect()
});

/// Hashes already-hashed tokens (xxh3 values) by using them as they are: a map lookup per
/// token is the inner loop of placement.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenHasher(u64);

impl std::hash::Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A map keyed by token hashes.
pub type TokenMap<V> = HashMap<u64, V, std::hash::BuildHasherDefault<TokenHasher>>;

/// A sparse vector: (token, weight), sorted by token.
pub type Vector = Vec<(u64, f64)>;

/// Cosine of two sparse vectors sorted by token.
pub fn cosine(a: &[(u64, f32)], b: &[(u64, f32)]) -> f64 {
    let (mut i, mut j, mut dot) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                dot += f64::from(a[i].1) * f64::from(b[j].1);
                i += 1;
                j += 1;
            }
        }
    }
    let norm = |v: &[(u64, f32)]| v.iter().map(|(_, w)| f64::from(*w).powi(2)).sum::<f64>();
    let n = (norm(a) * norm(b)).sqrt();
    if n > 0.0 { dot / n } else { 0.0 }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cluster {
    id: u64,
    size: u32,
}

/// A recent ticket as the clusterer compares it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Member {
    cluster: u32,
    /// Creation time (ms).
    at: i64,
    /// Term frequencies (`1 + ln tf`) of its most informative tokens, sorted by token; weighted
    /// with the current frequencies when compared.
    terms: Box<[(u64, f32)]>,
    /// Norm of the weighted terms as of `norm_docs` tickets (refreshed as the desk grows).
    norm: f32,
    norm_docs: u64,
}

/// Clusters of ticket texts, grown one ticket at a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Clusterer {
    threshold: f64,
    window_ms: i64,
    /// Tickets placed.
    docs: u64,
    /// Token → tickets that had it.
    df: TokenMap<u32>,
    /// Description line key → tickets that had it.
    lines: TokenMap<u32>,
    clusters: Vec<Cluster>,
    /// The most recent tickets, oldest first; `recent[0]` is ticket number `first`.
    recent: VecDeque<Member>,
    /// Creation time of each recent ticket (aligned with `recent`; rebuilt after a restore):
    /// the window check reads this small array rather than every candidate's member.
    #[serde(skip)]
    ats: VecDeque<i64>,
    first: u64,
    /// Token → numbers of recent tickets indexed under it (oldest first).
    postings: TokenMap<VecDeque<u64>>,
    /// Buffers of one placement, kept between placements so that placing a ticket allocates
    /// (almost) nothing: in a 10M-event ingest, growing them anew for each ticket was a third
    /// of placement's time.
    #[serde(skip)]
    scratch: Scratch,
}

/// Buffers a placement reuses (empty, or all 0, between placements).
#[derive(Debug, Clone, Default)]
struct Scratch {
    /// Keys shared with the ticket being placed, per recent ticket (all 0 between placements).
    counts: Vec<u8>,
    /// Recent tickets sharing a key with the ticket being placed.
    distinct: Vec<u64>,
    /// The candidates, most promising first.
    candidates: Vec<u64>,
    /// (cluster, similarity) of the loosely similar candidates.
    loosely: Vec<(u32, f64)>,
    /// (cluster, loosely similar candidates, their summed similarity).
    support: Vec<(u32, usize, f64)>,
}

impl Default for Clusterer {
    fn default() -> Clusterer {
        Clusterer::new(DEFAULT_SIMILARITY, DEFAULT_WINDOW_DAYS)
    }
}

/// Where a ticket was placed.
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    /// Index of the cluster in this clusterer (dense, in founding order).
    pub index: u32,
    /// Whether the ticket founded the cluster.
    pub founded: bool,
}

impl Clusterer {
    /// A clusterer joining a ticket to a cluster at cosine similarity ≥ `threshold` with one
    /// of its tickets created within `window_days` days.
    pub fn new(threshold: f64, window_days: u32) -> Clusterer {
        Clusterer {
            threshold,
            window_ms: i64::from(window_days.max(1)) * DAY_MS,
            docs: 0,
            df: TokenMap::default(),
            lines: TokenMap::default(),
            clusters: Vec::new(),
            recent: VecDeque::new(),
            ats: VecDeque::new(),
            first: 0,
            postings: TokenMap::default(),
            scratch: Scratch::default(),
        }
    }

    /// Number of clusters.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// Whether no ticket was placed yet.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Content-based id of the cluster at `index`.
    pub fn id(&self, index: u32) -> u64 {
        self.clusters[index as usize].id
    }

    /// Tickets placed in the cluster at `index`.
    pub fn size(&self, index: u32) -> u32 {
        self.clusters[index as usize].size
    }

    /// Checks restored state: every recent ticket names a cluster that exists, and the index
    /// names no ticket placed after them.
    pub fn check(&self) -> Result<(), RestoreError> {
        let n = self.clusters.len();
        if self.recent.iter().any(|m| m.cluster as usize >= n) {
            return Err(RestoreError::Inconsistent(
                "a recent ticket names a cluster the text state does not hold".into(),
            ));
        }
        let end = self.first + self.recent.len() as u64;
        if self.postings.values().flatten().any(|&t| t >= end) {
            return Err(RestoreError::Inconsistent(
                "the text index names a ticket the state does not hold".into(),
            ));
        }
        Ok(())
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        let map = |entries: usize, value: usize| entries * (8 + value + 1) * 8 / 7;
        self.clusters.capacity() * std::mem::size_of::<Cluster>()
            + self.recent.capacity() * std::mem::size_of::<Member>()
            + self.ats.capacity() * 8
            + self.scratch.counts.capacity()
            + self
                .recent
                .iter()
                .map(|m| m.terms.len() * 16)
                .sum::<usize>()
            + map(self.df.capacity(), 4)
            + map(self.lines.capacity(), 4)
            + map(
                self.postings.capacity(),
                std::mem::size_of::<VecDeque<u64>>(),
            )
            + self
                .postings
                .values()
                .map(|v| v.capacity() * 8)
                .sum::<usize>()
    }

    /// Weight of a token seen in `df` of `docs` tickets (this one included): 0 for a token only
    /// one ticket had.
    pub fn weight(docs: u64, df: u32) -> f64 {
        if df <= 1 {
            return 0.0;
        }
        1.0 + ((docs as f64 + 1.0) / (f64::from(df) + 1.0)).ln().max(0.0)
    }

    fn token_weight(&self, token: u64) -> f64 {
        Clusterer::weight(self.docs, self.df.get(&token).copied().unwrap_or(0))
    }

    /// Places a ticket with this text, created at `at` (ms).
    pub fn assign(&mut self, text: &Analysis, at: i64) -> Placement {
        self.docs += 1;
        let kept = self.kept_lines(text);
        let merged = term_frequencies(text, &kept);
        for (t, _) in &merged {
            *self.df.entry(*t).or_default() += 1;
        }
        let (query, weights, query_norm) = self.query(&merged);
        let keys = top_terms(&query, QUERY_TERMS);
        let mut scratch = std::mem::take(&mut self.scratch);
        self.candidates(&keys, at, &mut scratch);
        self.refresh(&scratch.candidates);
        let best = self.best((&query, &weights), query_norm, &mut scratch);
        self.scratch = scratch;
        let (index, founded) = match best {
            Some(c) => (c, false),
            None => (self.found(&merged), true),
        };
        self.clusters[index as usize].size += 1;
        self.remember(index, at, &query, &merged, keys);
        if self.docs.is_multiple_of(PRUNE_EVERY) {
            self.prune();
        }
        Placement { index, founded }
    }

    /// A ticket's weighted vector, each entry's token weight (scoring multiplies by it), and the
    /// vector's norm, which counts the words no earlier ticket had at a fraction of a recurring
    /// word.
    fn query(&self, merged: &[(u64, f64)]) -> (Vector, Vec<f64>, f64) {
        let mut body: Vector = Vec::with_capacity(merged.len());
        let mut weights: Vec<f64> = Vec::with_capacity(merged.len());
        for &(t, n) in merged {
            let w = self.token_weight(t);
            if w > 0.0 {
                body.push((t, (1.0 + n.ln()) * w));
                weights.push(w);
            }
        }
        let novel = Clusterer::weight(self.docs, 2) * NOVEL;
        let novel_sum: f64 = merged
            .iter()
            .filter(|(t, _)| self.df.get(t).is_some_and(|&n| n == 1))
            .map(|(_, n)| ((1.0 + n.ln()) * novel).powi(2))
            .sum();
        let norm = (norm(&body).powi(2) + novel_sum).sqrt();
        (body, weights, norm)
    }

    /// The recent tickets indexed under `keys`, created within the window of `at`: those
    /// sharing the most keys, the newest among equals, at most [`MAX_CANDIDATES`], into
    /// `scratch.candidates`.
    fn candidates(&mut self, keys: &[u64], at: i64, scratch: &mut Scratch) {
        // Shared keys per recent ticket, counted in a scratch array indexed by its position
        // (zero again when done), rather than sorting every hit.
        if self.ats.len() != self.recent.len() {
            self.ats = self.recent.iter().map(|m| m.at).collect();
        }
        let first = self.first;
        let counts = &mut scratch.counts;
        counts.resize(self.recent.len(), 0);
        let distinct = &mut scratch.distinct;
        distinct.clear();
        for list in keys.iter().filter_map(|k| self.postings.get(k)) {
            for &t in list.iter().filter(|&&t| t >= first) {
                let i = (t - first) as usize;
                if counts[i] == 0 {
                    distinct.push(t);
                }
                counts[i] = counts[i].saturating_add(1);
            }
        }
        // (shared keys, number) packed in one integer: ordering by it is ordering by shared
        // keys, then newest.
        let counted = &mut scratch.candidates;
        counted.clear();
        for &t in distinct.iter() {
            let i = (t - first) as usize;
            if at - self.ats[i] <= self.window_ms {
                counted.push(u64::from(counts[i]) << 56 | t);
            }
            counts[i] = 0;
        }
        if counted.len() > MAX_CANDIDATES {
            let cut = counted.len() - MAX_CANDIDATES;
            counted.select_nth_unstable(cut);
            counted.drain(..cut);
        }
        counted.sort_unstable_by(|a, b| b.cmp(a));
        for k in counted.iter_mut() {
            *k &= NUMBER_BITS;
        }
    }

    /// Recomputes the norms of recent tickets whose weights drifted: when the desk grew by a
    /// quarter since, or when it was 0 (words all new then).
    fn refresh(&mut self, numbers: &[u64]) {
        let docs = self.docs;
        for &t in numbers {
            let i = (t - self.first) as usize;
            let member = &self.recent[i];
            if member.norm_docs * 5 / 4 > docs && member.norm > 0.0 {
                continue;
            }
            let norm = member
                .terms
                .iter()
                .map(|&(token, tf)| (f64::from(tf) * self.token_weight(token)).powi(2))
                .sum::<f64>()
                .sqrt();
            let member = &mut self.recent[i];
            member.norm = norm as f32;
            member.norm_docs = docs;
        }
    }

    fn member(&self, number: u64) -> &Member {
        &self.recent[(number - self.first) as usize]
    }

    /// The cluster the ticket joins: that of the most similar recent ticket at cosine ≥ the
    /// threshold, else the cluster with the most recent tickets (at least [`SUPPORT`]) at
    /// cosine ≥ threshold × [`LOOSE`].
    fn best(
        &self,
        query: (&Vector, &[f64]),
        query_norm: f64,
        scratch: &mut Scratch,
    ) -> Option<u32> {
        if query_norm <= 0.0 {
            return None;
        }
        let loose = self.threshold * LOOSE;
        let mut closest: Option<(f64, u32)> = None;
        let loosely = &mut scratch.loosely;
        loosely.clear();
        for (n, &t) in scratch.candidates.iter().enumerate() {
            // Candidates come most promising first (the most shared words, then the newest):
            // once a near copy is found among the first ones, the rest are not scored.
            if n >= SCAN_BEFORE_STOP && closest.is_some_and(|(s, _)| s >= NEAR_COPY) {
                break;
            }
            let member = self.member(t);
            let (s, words) = Clusterer::similarity(query, query_norm, member);
            // Ties go to the older cluster, so the choice does not depend on lookup order.
            if s >= self.threshold
                && words >= STRICT_WORDS
                && closest.is_none_or(|(bs, bc)| s > bs || (s == bs && member.cluster < bc))
            {
                closest = Some((s, member.cluster));
            }
            if s >= loose && words >= STRICT_WORDS {
                loosely.push((member.cluster, s));
            }
        }
        if let Some((_, c)) = closest {
            return Some(c);
        }
        // (cluster, loosely similar tickets, their summed similarity)
        loosely.sort_unstable_by_key(|(c, _)| *c);
        let support = &mut scratch.support;
        support.clear();
        for &(c, s) in loosely.iter() {
            match support.last_mut() {
                Some(entry) if entry.0 == c => {
                    entry.1 += 1;
                    entry.2 += s;
                }
                _ => support.push((c, 1, s)),
            }
        }
        support
            .iter()
            .copied()
            .filter(|&(_, n, _)| n >= SUPPORT)
            .max_by(|a, b| a.1.cmp(&b.1).then(a.2.total_cmp(&b.2)).then(b.0.cmp(&a.0)))
            .map(|(c, _, _)| c)
    }

    /// Cosine of a query (its vector and its tokens' current weights) with a recent ticket's
    /// terms weighted with the same; 0 when they share only masks (`<id>`, `<num>`, …), which
    /// say nothing alone.
    fn similarity(
        (query, weights): (&Vector, &[f64]),
        query_norm: f64,
        member: &Member,
    ) -> (f64, usize) {
        // A merge of the two sorted lists whose steps are arithmetic rather than branches:
        // which list moves on is a coin toss for the branch predictor (token hashes), and
        // mispredicted branches were most of placement's time. Matches still sum in token order.
        let terms = &member.terms;
        let (mut i, mut j, mut dot, mut words) = (0, 0, 0.0, 0);
        while i < query.len() && j < terms.len() {
            let (a, (b, tf)) = (query[i].0, terms[j]);
            if a == b {
                dot += query[i].1 * f64::from(tf) * weights[i];
                words += usize::from(!MASKS.contains(&b));
            }
            i += usize::from(a <= b);
            j += usize::from(b <= a);
        }
        if words == 0 || member.norm <= 0.0 {
            return (0.0, 0);
        }
        (dot / (query_norm * f64::from(member.norm)), words)
    }

    /// Founds a cluster for a ticket with these tokens; its id is a hash of them.
    fn found(&mut self, merged: &[(u64, f64)]) -> u32 {
        let mut bytes = Vec::with_capacity(merged.len() * 8);
        for (t, _) in merged {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        self.clusters.push(Cluster {
            id: xxh3_64(&bytes),
            size: 0,
        });
        (self.clusters.len() - 1) as u32
    }

    /// Keeps the ticket among the recent ones, indexed under `keys` (or, while none of its
    /// tokens recurs, its first tokens, so that the next ticket like it finds it).
    fn remember(
        &mut self,
        cluster: u32,
        at: i64,
        query: &Vector,
        merged: &[(u64, f64)],
        keys: Vec<u64>,
    ) {
        // Its most informative tokens now; tokens new today (weight 0) fill the rest, as they
        // may recur.
        let ranked: Vector = merged
            .iter()
            .map(|&(t, n)| {
                let w = query
                    .binary_search_by_key(&t, |(q, _)| *q)
                    .map_or(0.0, |i| query[i].1);
                (t, w + (1.0 + n.ln()) * 1e-9)
            })
            .collect();
        let keep = top_terms(&ranked, MEMBER_TERMS);
        let mut terms: Vec<(u64, f32)> = merged
            .iter()
            .filter(|(t, _)| keep.contains(t))
            .map(|&(t, n)| (t, (1.0 + n.ln()) as f32))
            .collect();
        terms.sort_unstable_by_key(|(t, _)| *t);
        let keys = if keys.len() < QUERY_TERMS {
            top_terms(&ranked, QUERY_TERMS)
        } else {
            keys
        };
        let number = self.first + self.recent.len() as u64;
        self.recent.push_back(Member {
            cluster,
            at,
            terms: terms.into(),
            norm: 0.0,
            norm_docs: 0,
        });
        self.ats.push_back(at);
        if self.recent.len() > RECENT_TICKETS {
            self.recent.pop_front();
            self.ats.pop_front();
            self.first += 1;
        }
        for key in keys {
            let list = self.postings.entry(key).or_default();
            if list.len() == POSTINGS {
                list.pop_front();
            }
            list.push_back(number);
        }
    }

    /// Forgets tokens and lines seen once, and index entries of tickets no longer recent.
    fn prune(&mut self) {
        self.df.retain(|_, n| *n > 1);
        self.lines.retain(|_, n| *n > 1);
        let first = self.first;
        self.postings.retain(|_, list| {
            while list.front().is_some_and(|&t| t < first) {
                list.pop_front();
            }
            !list.is_empty()
        });
    }

    /// The description lines to read: all of them, except form text (lines many tickets share)
    /// in a multi-line description. Counts the lines as seen.
    fn kept_lines<'t>(&mut self, text: &'t Analysis) -> Vec<&'t [u64]> {
        let boilerplate = (self.docs / BOILERPLATE_SHARE).max(u64::from(BOILERPLATE_MIN));
        let mut seen_lines: Vec<u64> = Vec::new();
        let mut kept: Vec<&[u64]> = Vec::new();
        for line in &text.lines {
            let count = if seen_lines.len() < LINES_COUNTED && !seen_lines.contains(&line.key) {
                seen_lines.push(line.key);
                let n = self.lines.entry(line.key).or_default();
                *n += 1;
                *n
            } else {
                self.lines.get(&line.key).copied().unwrap_or(0)
            };
            if text.lines.len() == 1 || u64::from(count) < boilerplate {
                kept.push(&line.tokens);
            }
        }
        kept
    }
}

fn norm(v: &Vector) -> f64 {
    v.iter().map(|(_, w)| w * w).sum::<f64>().sqrt()
}

/// The `n` heaviest tokens of a vector (ties: the smaller hash).
fn top_terms(v: &Vector, n: usize) -> Vec<u64> {
    let mut sorted: Vec<&(u64, f64)> = v.iter().collect();
    sorted.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    sorted.into_iter().take(n).map(|(t, _)| *t).collect()
}

/// The ticket's distinct title tokens, and its term frequencies: title tokens count
/// `TITLE_TF` once each, tokens of the kept description lines 1 each.
fn term_frequencies(text: &Analysis, kept: &[&[u64]]) -> Vec<(u64, f64)> {
    let mut title: Vec<u64> = text.title.clone();
    title.sort_unstable();
    title.dedup();
    let mut tf: Vec<(u64, f64)> = title.iter().map(|&t| (t, TITLE_TF)).collect();
    tf.extend(kept.iter().flat_map(|l| l.iter()).map(|&t| (t, 1.0)));
    tf.sort_unstable_by_key(|(t, _)| *t);
    let mut merged: Vec<(u64, f64)> = Vec::with_capacity(tf.len());
    for (t, n) in tf {
        match merged.last_mut() {
            Some((last, m)) if *last == t => *m += n,
            _ => merged.push((t, n)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clustering::text::Analyzer;

    #[test]
    fn variants_join_and_unrelated_tickets_do_not() {
        let a = Analyzer::default();
        let mut c = Clusterer::default();
        let vpn = [
            "VPN connection drops every few minutes (error 0x8005E026)",
            "VPN connection drops every few minutes (error 0x800102F7)",
            "La connexion VPN se coupe toutes les quelques minutes (erreur 0x80057F57)",
        ];
        let ids: Vec<u32> = vpn
            .iter()
            .map(|t| c.assign(&a.analyze(t, None), 0).index)
            .collect();
        assert!(ids.iter().all(|&i| i == ids[0]), "{ids:?}");
        for other in [
            "Printer PRN-NYC-04 not printing, jobs stuck in queue",
            "Password reset for user0010@acme.example",
            "Second monitor not detected on LT-NYC-1886",
        ] {
            assert_ne!(
                c.assign(&a.analyze(other, None), 0).index,
                ids[0],
                "{other}"
            );
        }
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn the_same_order_gives_the_same_ids() {
        let a = Analyzer::default();
        let texts: Vec<crate::clustering::text::Analysis> =
            crate::simulate::Simulator::new(crate::simulate::Params {
                tickets: 300,
                seed: 3,
                ..Default::default()
            })
            .filter_map(|e| match e.payload {
                crate::event::Payload::Created(c) => {
                    Some(a.analyze(&c.title, c.description.as_deref()))
                }
                _ => None,
            })
            .collect();
        let run = || {
            let mut c = Clusterer::default();
            texts
                .iter()
                .map(|t| {
                    let i = c.assign(t, 0).index;
                    c.id(i)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        // A restored clusterer continues exactly like the one it was saved from.
        let mut first = Clusterer::default();
        let half = texts.len() / 2;
        for t in &texts[..half] {
            first.assign(t, 0);
        }
        let mut restored: Clusterer =
            postcard::from_bytes(&postcard::to_stdvec(&first).unwrap()).unwrap();
        let rest_a: Vec<u32> = texts[half..]
            .iter()
            .map(|t| first.assign(t, 0).index)
            .collect();
        let rest_b: Vec<u32> = texts[half..]
            .iter()
            .map(|t| restored.assign(t, 0).index)
            .collect();
        assert_eq!(rest_a, rest_b);
    }
}

#[cfg(test)]
mod quality {
    use std::collections::HashMap;

    use super::*;
    use crate::clustering::text::Analyzer;
    use crate::event::Payload;

    /// Injected problems of the simulator: how many of each problem's tickets share one
    /// cluster (recall), and how many tickets of that cluster on the problem's configuration
    /// item belong to the problem (precision at the fingerprint level).
    #[test]
    fn injected_problems_form_clean_clusters() {
        let a = Analyzer::default();
        for seed in [1u64, 2, 3] {
            let mut sim = crate::simulate::Simulator::new(crate::simulate::Params {
                tickets: 3000,
                seed,
                ..Default::default()
            });
            let mut c = Clusterer::default();
            let mut of: HashMap<String, (u32, String)> = HashMap::new();
            for e in sim.by_ref() {
                if let Payload::Created(cr) = &e.payload {
                    let id = c
                        .assign(
                            &a.analyze(&cr.title, cr.description.as_deref()),
                            e.occurred_at.timestamp_millis(),
                        )
                        .index;
                    of.insert(
                        e.ticket_id.clone(),
                        (id, cr.configuration_item.clone().unwrap_or_default()),
                    );
                }
            }
            let truth = sim.truth();
            let (mut recall_sum, mut precision_sum) = (0.0, 0.0);
            for p in &truth.recurring_problems {
                let mut counts: HashMap<u32, usize> = HashMap::new();
                for t in &p.ticket_ids {
                    *counts.entry(of[t].0).or_default() += 1;
                }
                let (&cluster, &n) = counts.iter().max_by_key(|(id, n)| (**n, **id)).unwrap();
                let recall = n as f64 / p.ticket_ids.len() as f64;
                let same_fp = of
                    .values()
                    .filter(|(id, ci)| *id == cluster && *ci == p.configuration_item)
                    .count();
                let precision = n as f64 / same_fp as f64;
                recall_sum += recall;
                precision_sum += precision;
            }
            let k = truth.recurring_problems.len() as f64;
            eprintln!(
                "seed {seed}: {} problems, {} clusters over {} tickets, mean recall {:.3}, mean precision {:.3}",
                truth.recurring_problems.len(),
                c.len(),
                of.len(),
                recall_sum / k,
                precision_sum / k
            );
            assert!(
                recall_sum / k >= 0.9,
                "seed {seed}: recall {}",
                recall_sum / k
            );
            assert!(
                precision_sum / k >= 0.9,
                "seed {seed}: precision {}",
                precision_sum / k
            );
        }
    }
}

#[cfg(test)]
mod names {
    use super::*;
    use crate::clustering::text::Analyzer;

    /// A routine request whose titles each carry a different person's name is one call, and
    /// the other routine calls between them stay apart. (Known limit: when the same full name
    /// appears in two different requests close together, the name can link them.)
    #[test]
    fn names_do_not_split_a_routine_request() {
        let a = Analyzer::default();
        let mut c = Clusterer::default();
        let people = [
            "Jean Dupont",
            "Marie Curie",
            "Paul Martin",
            "Sophie Bernard",
            "Luc Petit",
            "Emma Robert",
            "Hugo Richard",
            "Léa Durand",
            "Louis Moreau",
            "Chloé Simon",
            "Jules Laurent",
            "Inès Lefebvre",
        ];
        let mut account = Vec::new();
        let mut share = Vec::new();
        for (i, who) in people.iter().enumerate() {
            account.push(
                c.assign(
                    &a.analyze(&format!("Création compte AD pour {who}"), None),
                    0,
                )
                .index,
            );
            share.push(
                c.assign(
                    &a.analyze(
                        &format!(
                            "Accès au partage {} pour {}",
                            ["Finance", "RH", "Projets"][i % 3],
                            people[(i + 5) % people.len()]
                                .split(' ')
                                .next()
                                .unwrap_or_default()
                        ),
                        None,
                    ),
                    0,
                )
                .index,
            );
            c.assign(&a.analyze("Imprimante du 2e étage bloquée", None), 0);
        }
        // The first few tickets of a new desk have no history to weigh words by.
        let tail = |v: &[u32]| {
            v[3..]
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        assert_eq!(tail(&account), 1, "{account:?}");
        assert_eq!(tail(&share), 1, "{share:?}");
        assert_ne!(account[5], share[5]);
    }
}
