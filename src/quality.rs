//! How well text clustering groups real tickets: pair precision, recall and F1 against labelled
//! groups, for the product's clusters and for a plain TF-IDF cosine reference in the same run.
//!
//! Input is a CSV with at least `title`, `description` and `group_id` (optionally `id` and
//! `created_at`; rows are fed in `created_at` order when it is given, file order otherwise).
//! Every row becomes a `ticket.created` event that goes through the real pipeline (parsing,
//! the projection's text analysis and clustering, the snapshot's clusters, as
//! `ticket_clusters` shows them).
//!
//! Scoring is by pairs: precision is the share of same-cluster pairs that share a group, recall
//! the share of same-group pairs that share a cluster.
//!
//! The reference is what a data scientist would try first: scikit-learn's `TfidfVectorizer`
//! defaults (lower-case, words of two or more letters or digits, raw counts, smoothed IDF
//! `ln((1 + n) / (1 + df)) + 1`, unit length) on `title + " " + description`, every pair with
//! cosine ≥ a threshold linked, clusters the connected groups.

use std::collections::HashMap;
use std::io::Read;
use std::time::Instant;

use serde::Serialize;

use crate::clustering::state::TextSetup;
use crate::event::TicketEvent;
use crate::projection::{Projection, Snapshot};

/// Longest description the event contract takes, in characters.
const MAX_DESCRIPTION_CHARS: usize = 16_384;

/// Thresholds the reference is measured at.
pub const REFERENCE_THRESHOLDS: [f64; 4] = [0.3, 0.4, 0.5, 0.6];

/// One labelled ticket.
#[derive(Debug, Clone)]
pub struct Labelled {
    /// Title.
    pub title: String,
    /// Description (may be empty).
    pub description: String,
    /// Ground-truth group.
    pub group: String,
    /// Creation time, when the file has a `created_at` column in RFC 3339.
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Pair scores of one clustering.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Scores {
    /// Share of same-cluster pairs that share a group.
    pub precision: f64,
    /// Share of same-group pairs that share a cluster.
    pub recall: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Clusters formed.
    pub clusters: usize,
}

/// The product and the reference on one set.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Tickets.
    pub tickets: usize,
    /// Groups with at least two tickets.
    pub groups: usize,
    /// Same-group pairs.
    pub pairs: u64,
    /// The product's clusters.
    pub deskwatch: Scores,
    /// The reference at each of [`REFERENCE_THRESHOLDS`].
    pub reference: Vec<(f64, Scores)>,
    /// Mean time to place one ticket in a cluster (text already analysed), microseconds.
    pub place_micros: f64,
    /// Mean time to analyse one ticket's text, microseconds (done in parallel with placing
    /// when the log is replayed).
    pub analyse_micros: f64,
}

impl Evaluation {
    /// The reference's best F1 over its thresholds.
    pub fn best_reference(&self) -> (f64, Scores) {
        self.reference
            .iter()
            .copied()
            .max_by(|a, b| a.1.f1.total_cmp(&b.1.f1))
            .unwrap_or((
                0.0,
                Scores {
                    precision: 0.0,
                    recall: 0.0,
                    f1: 0.0,
                    clusters: 0,
                },
            ))
    }
}

/// Reads a labelled CSV (UTF-8, RFC 4180): columns `title`, `description`, `group_id`, and
/// `created_at` when present (rows sorted by it, stably).
pub fn read_csv(input: impl Read) -> anyhow::Result<Vec<Labelled>> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(input);
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let need =
        |name: &str| column(name).ok_or_else(|| anyhow::anyhow!("the CSV has no `{name}` column"));
    let (title, description, group) = (need("title")?, need("description")?, need("group_id")?);
    let created = column("created_at");
    let mut rows: Vec<(String, Labelled)> = Vec::new();
    for (line, record) in reader.records().enumerate() {
        let record = record.map_err(|e| anyhow::anyhow!("row {}: {e}", line + 2))?;
        let get = |i: usize| record.get(i).unwrap_or("").to_string();
        let created_text = created.map(get).unwrap_or_default();
        let created_at = parse_time(&created_text);
        rows.push((
            created_text,
            Labelled {
                title: get(title),
                description: get(description),
                group: get(group),
                created_at,
            },
        ));
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

/// Clusters `rows` through the projection under `setup` and scores it and the reference.
pub fn evaluate(rows: &[Labelled], setup: TextSetup) -> anyhow::Result<Evaluation> {
    let setup = std::sync::Arc::new(setup);
    let groups: Vec<&str> = rows.iter().map(|r| r.group.as_str()).collect();
    let mut projection = Projection::new();
    projection.text = crate::clustering::state::TextState::new(setup.clone());
    let titles: Vec<String> = rows.iter().map(title_of).collect();
    // Longer descriptions are cut where the event contract stops (as an import does).
    let descriptions: Vec<String> = rows
        .iter()
        .map(|r| r.description.chars().take(MAX_DESCRIPTION_CHARS).collect())
        .collect();
    let mut analysed = Vec::with_capacity(rows.len());
    let started = Instant::now();
    for (r, title) in descriptions.iter().zip(&titles) {
        let description = (!r.is_empty()).then_some(r.as_str());
        analysed.push(setup.analyzer.analyze(title, description));
    }
    let analyse = started.elapsed().as_secs_f64();
    let events = descriptions
        .iter()
        .zip(&titles)
        .enumerate()
        .map(|(i, (description, title))| created_event(i, rows[i].created_at, title, description))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    for ((offset, event), text) in events.iter().enumerate().zip(analysed) {
        projection.apply_prepared(event, offset as u64, Some(text));
    }
    let place = started.elapsed().as_secs_f64();
    let snapshot = projection.snapshot(&Snapshot::default());
    let text = projection.text();
    let clusters: Vec<u64> = (0..rows.len())
        .map(|i| {
            text.cluster_of(i)
                .and_then(|index| snapshot.catalog.get(index))
                .map_or(u64::MAX - i as u64, |l| l.id)
        })
        .collect();
    let deskwatch = score(&clusters, &groups);
    let started = Instant::now();
    let reference = reference(rows)
        .into_iter()
        .map(|(t, labels)| (t, score(&labels, &groups)))
        .collect();
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "reference");
    let mut sizes: HashMap<&str, u64> = HashMap::new();
    for g in &groups {
        *sizes.entry(g).or_default() += 1;
    }
    let n = rows.len().max(1) as f64;
    Ok(Evaluation {
        tickets: rows.len(),
        groups: sizes.values().filter(|&&s| s > 1).count(),
        pairs: sizes.values().map(|s| s * (s - 1) / 2).sum(),
        deskwatch,
        reference,
        place_micros: place * 1e6 / n,
        analyse_micros: analyse * 1e6 / n,
    })
}

/// A row's title. A ticket needs one: an export without it gets the description's first
/// words, as a help desk's own list shows it.
fn title_of(r: &Labelled) -> String {
    if !r.title.trim().is_empty() {
        return r.title.clone();
    }
    let first = r
        .description
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let short: String = first.chars().take(80).collect();
    if short.trim().is_empty() {
        "(no title)".into()
    } else {
        short
    }
}

/// A row's creation time (RFC 3339), if it has one.
fn parse_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|at| at.to_utc())
}

/// Row `i` as a `ticket.created` event through the event contract's own parser: at the row's
/// creation time, or (a file without times) one minute after the previous row.
fn created_event(
    i: usize,
    created_at: Option<chrono::DateTime<chrono::Utc>>,
    title: &str,
    description: &str,
) -> anyhow::Result<TicketEvent> {
    let base = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")?.to_utc();
    let at = created_at.unwrap_or(base + chrono::Duration::minutes(i as i64));
    let json = serde_json::json!({
        "event_id": format!("e{i}"),
        "ticket_id": format!("T{i}"),
        "type": "ticket.created",
        "occurred_at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "actor": {"id": "requester", "role": "requester"},
        "schema_version": 1,
        "payload": {
            "channel": "portal",
            "priority": "P3",
            "category": "uncategorised",
            "requester": format!("r{i}"),
            "title": title,
            "description": description,
        }
    });
    TicketEvent::from_json(json.to_string().as_bytes())
        .map_err(|e| anyhow::anyhow!("row {}: {e}", i + 1))
}

/// Pair precision, recall and F1 of `clusters` against `groups` (same length).
pub fn score<C: std::hash::Hash + Eq + Copy>(clusters: &[C], groups: &[&str]) -> Scores {
    let pairs = |n: u64| n * n.saturating_sub(1) / 2;
    let mut by_cluster: HashMap<C, u64> = HashMap::new();
    let mut by_group: HashMap<&str, u64> = HashMap::new();
    let mut by_both: HashMap<(C, &str), u64> = HashMap::new();
    for (&c, &g) in clusters.iter().zip(groups) {
        *by_cluster.entry(c).or_default() += 1;
        *by_group.entry(g).or_default() += 1;
        *by_both.entry((c, g)).or_default() += 1;
    }
    let same_cluster: u64 = by_cluster.values().map(|&n| pairs(n)).sum();
    let same_group: u64 = by_group.values().map(|&n| pairs(n)).sum();
    let both: u64 = by_both.values().map(|&n| pairs(n)).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (precision, recall) = (ratio(both, same_cluster), ratio(both, same_group));
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    Scores {
        precision,
        recall,
        f1,
        clusters: by_cluster.len(),
    }
}

/// The reference clusterings: for each of [`REFERENCE_THRESHOLDS`], every ticket's component
/// (the index of its representative).
pub fn reference(rows: &[Labelled]) -> Vec<(f64, Vec<usize>)> {
    // Vocabulary and counts, scikit-learn's default token pattern `\b\w\w+\b`.
    let mut vocabulary: HashMap<String, u32> = HashMap::new();
    let mut docs: Vec<Vec<(u32, f64)>> = Vec::with_capacity(rows.len());
    for r in rows {
        let text = format!("{} {}", r.title, r.description).to_lowercase();
        let mut counts: HashMap<u32, f64> = HashMap::new();
        for word in text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| w.chars().count() >= 2)
        {
            let next = vocabulary.len() as u32;
            let id = *vocabulary.entry(word.to_string()).or_insert(next);
            *counts.entry(id).or_default() += 1.0;
        }
        let mut doc: Vec<(u32, f64)> = counts.into_iter().collect();
        doc.sort_unstable_by_key(|(t, _)| *t);
        docs.push(doc);
    }
    let mut df = vec![0u32; vocabulary.len()];
    for doc in &docs {
        for (t, _) in doc {
            df[*t as usize] += 1;
        }
    }
    let n = docs.len() as f64;
    let idf: Vec<f64> = df
        .iter()
        .map(|&d| ((1.0 + n) / (1.0 + f64::from(d))).ln() + 1.0)
        .collect();
    for doc in &mut docs {
        for (t, w) in doc.iter_mut() {
            *w *= idf[*t as usize];
        }
        let len = doc.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
        if len > 0.0 {
            for (_, w) in doc.iter_mut() {
                *w /= len;
            }
        }
    }
    // All pairs through an inverted index: for each ticket, its dot products with every
    // earlier one accumulated term by term.
    let mut postings: Vec<Vec<(u32, f64)>> = vec![Vec::new(); vocabulary.len()];
    let mut sets: Vec<UnionFind> = REFERENCE_THRESHOLDS
        .iter()
        .map(|_| UnionFind::new(docs.len()))
        .collect();
    let mut acc = vec![0.0f64; docs.len()];
    let mut touched: Vec<u32> = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        for &(t, w) in doc {
            for &(j, v) in &postings[t as usize] {
                if acc[j as usize] == 0.0 {
                    touched.push(j);
                }
                acc[j as usize] += w * v;
            }
        }
        for &j in &touched {
            // Rounding can put an identical pair a hair under 1.0; thresholds are far below.
            let s = acc[j as usize] + 1e-12;
            for (k, &threshold) in REFERENCE_THRESHOLDS.iter().enumerate() {
                if s >= threshold {
                    sets[k].union(i, j as usize);
                }
            }
            acc[j as usize] = 0.0;
        }
        touched.clear();
        for &(t, w) in doc {
            postings[t as usize].push((i as u32, w));
        }
    }
    REFERENCE_THRESHOLDS
        .iter()
        .zip(sets.iter_mut())
        .map(|(&t, set)| (t, (0..docs.len()).map(|i| set.find(i)).collect()))
        .collect()
}

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> UnionFind {
        UnionFind {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.parent[a.max(b)] = a.min(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_scores_count_pairs() {
        // Clusters {0,1,2} {3}; groups {0,1} {2,3}: 3 same-cluster pairs, 1 of them right;
        // 2 same-group pairs, 1 found.
        let s = score(&[1, 1, 1, 2], &["a", "a", "b", "b"]);
        assert!((s.precision - 1.0 / 3.0).abs() < 1e-12, "{s:?}");
        assert!((s.recall - 0.5).abs() < 1e-12, "{s:?}");
        assert!((s.f1 - 0.4).abs() < 1e-12, "{s:?}");
        assert_eq!(s.clusters, 2);
    }

    #[test]
    fn the_reference_links_similar_texts() {
        let row = |t: &str, g: &str| Labelled {
            title: t.into(),
            description: String::new(),
            group: g.into(),
            created_at: None,
        };
        let rows = [
            row("printer on floor two jams", "p"),
            row("printer on floor two jams again", "p"),
            row("vpn drops every hour", "v"),
        ];
        let links = reference(&rows);
        let (_, at_half) = links.iter().find(|(t, _)| *t == 0.5).unwrap();
        assert_eq!(at_half[0], at_half[1]);
        assert_ne!(at_half[0], at_half[2]);
    }
}
