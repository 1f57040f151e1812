//! Incremental text clustering: MinHash signatures and LSH banding.
//!
//! Each ticket's token set gets a MinHash signature of [`HASHES`] values. The signature is cut
//! into [`BANDS`] bands; tickets sharing a band are candidates. A new ticket joins the candidate
//! cluster whose founding signature is most similar (estimated Jaccard ≥ the threshold), or
//! founds a new cluster. A cluster's id is a hash of its founder's sorted tokens, so it depends
//! on content, not on a counter. Assignment is incremental: a ticket is placed once, and
//! placing later tickets never moves it. Feeding the same tickets in the same order (a replay)
//! gives the same ids.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// MinHash values per signature.
pub const HASHES: usize = 64;
/// LSH bands (of `HASHES / BANDS` rows each).
pub const BANDS: usize = 16;
const ROWS: usize = HASHES / BANDS;

/// A MinHash signature.
pub type Signature = [u32; HASHES];

/// The signature of a token set (empty set: all `u32::MAX`).
pub fn signature(tokens: &[String]) -> Signature {
    let mut sig = [u32::MAX; HASHES];
    for t in tokens {
        let base = xxh3_64(t.as_bytes());
        for (i, slot) in sig.iter_mut().enumerate() {
            // One 64-bit hash per token, remixed per row: cheaper than HASHES full hashes.
            let h = xxh3_64_with_seed(&base.to_le_bytes(), i as u64) as u32;
            if h < *slot {
                *slot = h;
            }
        }
    }
    sig
}

/// Estimated Jaccard similarity of the sets behind two signatures.
pub fn similarity(a: &Signature, b: &Signature) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / HASHES as f64
}

/// Members of a cluster whose band keys are indexed; later members only join. Bounds the
/// index for clusters of thousands of tickets (a cluster that big already has enough keys).
const INDEXED_MEMBERS: u32 = 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cluster {
    id: u64,
    founder: Box<[u32]>,
    size: u32,
}

/// Clusters of ticket texts, grown one ticket at a time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Clusterer {
    threshold: f64,
    clusters: Vec<Cluster>,
    /// Band key → cluster indices whose members have that band.
    bands: HashMap<u64, Vec<u32>>,
}

impl Default for Clusterer {
    fn default() -> Clusterer {
        Clusterer::new(DEFAULT_SIMILARITY)
    }
}

/// Estimated Jaccard similarity at which a ticket joins a cluster, by default.
pub const DEFAULT_SIMILARITY: f64 = 0.5;

/// Where a ticket was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Index of the cluster in this clusterer (dense, in founding order).
    pub index: u32,
    /// Whether the ticket founded the cluster.
    pub founded: bool,
}

impl Clusterer {
    /// A clusterer joining a ticket to a cluster at estimated similarity ≥ `threshold`.
    pub fn new(threshold: f64) -> Clusterer {
        Clusterer {
            threshold,
            clusters: Vec::new(),
            bands: HashMap::new(),
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

    /// Signature of the founder of the cluster at `index`.
    pub fn founder(&self, index: u32) -> &[u32] {
        &self.clusters[index as usize].founder
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.clusters.capacity() * std::mem::size_of::<Cluster>()
            + self.clusters.len() * HASHES * 4
            + self
                .bands
                .values()
                .map(|v| 8 + std::mem::size_of::<Vec<u32>>() + v.capacity() * 4)
                .sum::<usize>()
    }

    /// The LSH band keys of a signature.
    pub fn band_keys(sig: &[u32]) -> [u64; BANDS] {
        let mut keys = [0u64; BANDS];
        for (b, key) in keys.iter_mut().enumerate() {
            let mut bytes = [0u8; ROWS * 4];
            for (r, v) in sig[b * ROWS..(b + 1) * ROWS].iter().enumerate() {
                bytes[r * 4..r * 4 + 4].copy_from_slice(&v.to_le_bytes());
            }
            *key = xxh3_64_with_seed(&bytes, b as u64);
        }
        keys
    }

    /// Places a ticket with these tokens.
    pub fn assign(&mut self, tokens: &[String]) -> Placement {
        let sig = signature(tokens);
        let keys = Clusterer::band_keys(&sig);
        let mut best: Option<(f64, u32)> = None;
        for key in &keys {
            for &c in self.bands.get(key).into_iter().flatten() {
                let founder: &[u32] = &self.clusters[c as usize].founder;
                let s = similarity(&sig, founder.try_into().unwrap_or(&[0; HASHES]));
                // Ties go to the older cluster, so the choice does not depend on map order.
                if s >= self.threshold && best.is_none_or(|(bs, bc)| s > bs || (s == bs && c < bc))
                {
                    best = Some((s, c));
                }
            }
        }
        let (index, founded) = match best {
            Some((_, c)) => (c, false),
            None => {
                let mut sorted: Vec<&str> = tokens.iter().map(String::as_str).collect();
                sorted.sort_unstable();
                sorted.dedup();
                let id = xxh3_64(sorted.join(" ").as_bytes());
                self.clusters.push(Cluster {
                    id,
                    founder: sig.into(),
                    size: 0,
                });
                ((self.clusters.len() - 1) as u32, true)
            }
        };
        let cluster = &mut self.clusters[index as usize];
        cluster.size += 1;
        if cluster.size <= INDEXED_MEMBERS {
            for key in keys {
                let list = self.bands.entry(key).or_default();
                if !list.contains(&index) {
                    list.push(index);
                }
            }
        }
        Placement { index, founded }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recurring::text::Analyzer;

    #[test]
    fn variants_join_and_unrelated_tickets_do_not() {
        let a = Analyzer::default();
        let mut c = Clusterer::new(0.5);
        let vpn = [
            "VPN connection drops every few minutes (error 0x8005E026)",
            "VPN connection drops every few minutes (error 0x800102F7)",
            "La connexion VPN se coupe toutes les quelques minutes (erreur 0x80057F57)",
        ];
        let ids: Vec<u32> = vpn
            .iter()
            .map(|t| c.assign(&a.tokens(t, None)).index)
            .collect();
        assert!(ids.iter().all(|&i| i == ids[0]), "{ids:?}");
        for other in [
            "Printer PRN-NYC-04 not printing, jobs stuck in queue",
            "Password reset for user0010@acme.example",
            "Second monitor not detected on LT-NYC-1886",
        ] {
            assert_ne!(c.assign(&a.tokens(other, None)).index, ids[0], "{other}");
        }
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn the_same_order_gives_the_same_ids() {
        let a = Analyzer::default();
        let texts: Vec<Vec<String>> = crate::simulate::Simulator::new(crate::simulate::Params {
            tickets: 300,
            seed: 3,
            ..Default::default()
        })
        .filter_map(|e| match e.payload {
            crate::event::Payload::Created(c) => Some(a.tokens(&c.title, c.description.as_deref())),
            _ => None,
        })
        .collect();
        let run = || {
            let mut c = Clusterer::new(0.5);
            texts
                .iter()
                .map(|t| {
                    let i = c.assign(t).index;
                    c.id(i)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        // A restored clusterer continues exactly like the one it was saved from.
        let mut first = Clusterer::new(0.5);
        let half = texts.len() / 2;
        for t in &texts[..half] {
            first.assign(t);
        }
        let mut restored: Clusterer =
            postcard::from_bytes(&postcard::to_stdvec(&first).unwrap()).unwrap();
        let rest_a: Vec<u32> = texts[half..]
            .iter()
            .map(|t| first.assign(t).index)
            .collect();
        let rest_b: Vec<u32> = texts[half..]
            .iter()
            .map(|t| restored.assign(t).index)
            .collect();
        assert_eq!(rest_a, rest_b);
    }
}

#[cfg(test)]
mod quality {
    use std::collections::HashMap;

    use super::*;
    use crate::event::Payload;
    use crate::recurring::text::Analyzer;

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
            let mut c = Clusterer::new(0.5);
            let mut of: HashMap<String, (u32, String)> = HashMap::new();
            for e in sim.by_ref() {
                if let Payload::Created(cr) = &e.payload {
                    let id = c
                        .assign(&a.tokens(&cr.title, cr.description.as_deref()))
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
