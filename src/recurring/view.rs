//! Fingerprints and their recurrence, computed from a snapshot at query time.
//!
//! A fingerprint is a configurable tuple of ticket fields, by default (tenant, category,
//! configuration item — or the service when a ticket has none —, text cluster). For a window
//! `(to − window, to]` every fingerprint with tickets in it gets: ticket count, distinct
//! requesters, reopen rate, MTTR, handle time and its cost, the tickets of the same
//! fingerprint over the baseline before the window (up to `baseline-windows` windows, as much
//! history as there is) with the count expected from it and a spike score, first and last
//! seen, the newest sample tickets and a readable label.
//!
//! - **Spike score** ([`surprise`]): how unlikely the window's count `n` is if the
//!   fingerprint's rate had not changed since the baseline's `b` tickets over `k` whole
//!   windows: `−log10 P(X ≥ n)` with `X ~ Binomial(n + b, 1/(k+1))`. 4 means a chance of 1 in
//!   10,000 — strict on purpose, as hundreds of fingerprints are tested every few minutes. It
//!   needs one window of history before the window (`null` without); with little history a
//!   handful of tickets cannot score high, which is right: they could be chance.
//! - **Problem candidate**: at least `problem-min-tickets` tickets in the window, a spike score
//!   of at least `problem-min-spike` and `problem-min-trend` times the expected count — a new
//!   or sharply growing fingerprint, not the steady flow of a routine call (those are the top
//!   calls).
//! - **Knowledge-base candidate**: at least `problem-min-tickets` tickets in the window, at least
//!   two resolved, none of them with a `kb_article`.
//!
//! A snapshot has one cluster catalog even when its tickets come from several Kafka
//! partitions: the replica places all of them in one order ([`crate::clustering::order`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int8Type, Int32Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
    UInt16Type, UInt32Type,
};
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::base::ParseError;
use crate::clustering::state::ClusterMeta;
use crate::projection::Snapshot;

const HOUR_MS: f64 = 3_600_000.0;

/// A field a fingerprint can be made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FingerprintField {
    /// Tenant.
    Tenant,
    /// Category.
    Category,
    /// Subcategory.
    Subcategory,
    /// Configuration item, or the service when the ticket names no configuration item.
    ConfigurationItem,
    /// Service.
    Service,
    /// Requester.
    Requester,
    /// Text cluster.
    Cluster,
}

/// `[recurring]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RecurringConfig {
    /// Cosine similarity (0–1] of IDF-weighted term vectors at which a ticket joins a text
    /// cluster.
    pub similarity: f64,
    /// How long a text cluster's tickets stay comparable (`45d`).
    pub text_window: String,
    /// Extra French → English glossary entries for text analysis.
    pub glossary: BTreeMap<String, String>,
    /// Fields of a fingerprint.
    pub fingerprint: Vec<FingerprintField>,
    /// Window of the recurring view (`7d`, `24h`, `2w`).
    pub window: String,
    /// Windows of history before the window that make the baseline.
    pub baseline_windows: u32,
    /// Tickets a fingerprint needs in the window to be listed as recurring.
    pub min_tickets: u32,
    /// Tickets a fingerprint needs in the window to be a problem or KB candidate.
    pub problem_min_tickets: u32,
    /// Spike score a fingerprint needs to be a problem candidate (0: count alone).
    pub problem_min_spike: f64,
    /// And how many times the expected count it needs (2: at least double).
    pub problem_min_trend: f64,
    /// Sample tickets per fingerprint (the newest).
    pub samples: usize,
    /// Loaded cost of one hour of handle time, in dollars (unset: from `[cost]`, see
    /// `CostConfig::hourly_rate`).
    #[serde(default)]
    pub hourly_rate: Option<f64>,
    /// Fingerprints exported as metrics (bounded cardinality).
    pub top_k: usize,
    /// Raise an alert for a new problem candidate through the `[sla.alerts]` receivers.
    pub alerts: bool,
    /// How often a running service recomputes the view for metrics and alerts.
    pub refresh_seconds: u64,
}

/// A wall-clock duration like `7d`, `36h`, `2w` or `90m`, in ms.
pub fn parse_window(text: &str) -> Result<i64, ParseError> {
    let bad = || ParseError::Form {
        text: text.to_string(),
        expected: "a window like 7d, 24h, 2w or 90m",
    };
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = t.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let unit_ms = match unit {
        "w" => 7 * 86_400_000,
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(ParseError::Range {
            text: text.to_string(),
            problem: "must be longer than zero",
        });
    }
    n.checked_mul(unit_ms).ok_or_else(bad)
}

impl RecurringConfig {
    /// `text-window` in whole days (valid: [`RecurringConfig::validate`] checked it).
    pub fn text_window_days(&self) -> u32 {
        parse_window(&self.text_window)
            .map_or(crate::clustering::cluster::DEFAULT_WINDOW_DAYS, |ms| {
                (ms / 86_400_000).clamp(1, 3_650) as u32
            })
    }

    /// Checks values the types cannot; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, p: String| Err((format!("recurring.{k}"), p));
        if !(self.similarity > 0.0 && self.similarity <= 1.0) {
            return bad("similarity", "must be in (0, 1]".into());
        }
        match parse_window(&self.text_window) {
            Err(e) => return bad("text-window", e.to_string()),
            Ok(ms) if !(86_400_000..=3_650 * 86_400_000).contains(&ms) => {
                return bad("text-window", "must be from 1d to 3650d".into());
            }
            Ok(_) => {}
        }
        if self.fingerprint.is_empty() {
            return bad("fingerprint", "must name at least one field".into());
        }
        let distinct: HashSet<_> = self.fingerprint.iter().collect();
        if distinct.len() != self.fingerprint.len() {
            return bad("fingerprint", "names a field twice".into());
        }
        if let Err(e) = parse_window(&self.window) {
            return bad("window", e.to_string());
        }
        if self.baseline_windows == 0 {
            return bad("baseline-windows", "must be at least 1".into());
        }
        if self.min_tickets == 0 || self.problem_min_tickets == 0 {
            return bad("min-tickets", "ticket thresholds must be at least 1".into());
        }
        if self.problem_min_spike.is_nan() || self.problem_min_spike < 0.0 {
            return bad("problem-min-spike", "must be 0 or more".into());
        }
        if self.problem_min_trend.is_nan() || self.problem_min_trend < 0.0 {
            return bad("problem-min-trend", "must be 0 or more".into());
        }
        if self.hourly_rate.is_some_and(|r| r.is_nan() || r < 0.0) {
            return bad("hourly-rate", "must be 0 or more".into());
        }
        if self.refresh_seconds == 0 {
            return bad("refresh-seconds", "must be at least 1".into());
        }
        if self.top_k > 100 {
            return bad(
                "top-k",
                "at most 100 (each is a metric series per fingerprint)".into(),
            );
        }
        Ok(())
    }

    /// The view settings (valid after [`RecurringConfig::validate`]).
    pub fn view(&self) -> ViewSettings {
        ViewSettings {
            fields: self.fingerprint.clone(),
            window_ms: parse_window(&self.window).unwrap_or(7 * 86_400_000),
            baseline_windows: self.baseline_windows,
            min_tickets: self.min_tickets,
            problem_min_tickets: self.problem_min_tickets,
            problem_min_spike: self.problem_min_spike,
            problem_min_trend: self.problem_min_trend,
            samples: self.samples,
            hourly_rate: self.hourly_rate.unwrap_or(DEFAULT_HOURLY_RATE),
        }
    }
}

/// The hourly rate of the default `[cost]`: $44,109 a year × 1.3 / 2,080 hours.
const DEFAULT_HOURLY_RATE: f64 = 44_109.0 * 1.3 / 2080.0;

/// How the recurring view is computed.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewSettings {
    /// Fingerprint fields.
    pub fields: Vec<FingerprintField>,
    /// Window length (ms).
    pub window_ms: i64,
    /// Baseline windows before the window.
    pub baseline_windows: u32,
    /// Tickets to be listed.
    pub min_tickets: u32,
    /// Tickets to be a problem or KB candidate.
    pub problem_min_tickets: u32,
    /// Spike score to be a problem candidate.
    pub problem_min_spike: f64,
    /// Multiple of the expected count to be a problem candidate.
    pub problem_min_trend: f64,
    /// Sample tickets per fingerprint.
    pub samples: usize,
    /// Cost of an hour of handle time.
    pub hourly_rate: f64,
}

impl Default for ViewSettings {
    /// The built-in `[recurring]` defaults.
    fn default() -> ViewSettings {
        ViewSettings {
            fields: vec![
                FingerprintField::Tenant,
                FingerprintField::Category,
                FingerprintField::ConfigurationItem,
                FingerprintField::Cluster,
            ],
            window_ms: 7 * 86_400_000,
            baseline_windows: 4,
            min_tickets: 2,
            problem_min_tickets: 4,
            problem_min_spike: 4.0,
            problem_min_trend: 2.0,
            samples: 5,
            hourly_rate: DEFAULT_HOURLY_RATE,
        }
    }
}

/// Which tickets count.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this category.
    pub category: Option<String>,
    /// Only this channel.
    pub channel: Option<String>,
}

/// One recurring fingerprint.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Issue {
    /// Fingerprint id (hex of a hash of its field values).
    pub fingerprint: String,
    /// Readable label: the text cluster's founder title, normalised.
    pub label: String,
    /// Text cluster id (hex).
    pub cluster_id: String,
    /// Tenant (when part of the fingerprint).
    pub tenant: Option<String>,
    /// Category (when part of the fingerprint).
    pub category: Option<String>,
    /// Subcategory (when part of the fingerprint).
    pub subcategory: Option<String>,
    /// Configuration item or service (when part of the fingerprint).
    pub configuration_item: Option<String>,
    /// Service (when part of the fingerprint).
    pub service: Option<String>,
    /// Tickets created in the window.
    pub tickets: u64,
    /// Distinct requesters among them.
    pub requesters: u64,
    /// Share of them reopened at least once.
    pub reopen_rate: f64,
    /// How many are resolved (or closed after a resolution).
    pub resolved: u64,
    /// Mean time from creation to resolution of the resolved ones, hours.
    pub mttr_hours: Option<f64>,
    /// Work logged on them, hours.
    pub handle_hours: f64,
    /// That work at the configured hourly rate, dollars.
    pub handle_cost: f64,
    /// Resolved ones that cite a knowledge-base article.
    pub resolved_with_kb: u64,
    /// Tickets of the fingerprint in the baseline before the window.
    pub baseline_tickets: u64,
    /// Tickets the baseline rate predicts for the window (`null` without enough history).
    pub expected: Option<f64>,
    /// How unlikely the count is at the baseline's rate, `−log10` of the chance (`null`
    /// without enough history).
    pub spike_score: Option<f64>,
    /// Tickets / expected (`null` when nothing is expected).
    pub trend: Option<f64>,
    /// Creation of the fingerprint's first ticket ever (up to the window's end).
    pub first_seen: String,
    /// Creation of its newest ticket in the window.
    pub last_seen: String,
    /// The newest tickets in the window.
    pub samples: Vec<String>,
    /// New or spiking: worth a problem record.
    pub problem_candidate: bool,
    /// Recurring and resolved without a knowledge-base article: worth writing one.
    pub kb_candidate: bool,
}

/// The recurring view over one window.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Window start (exclusive).
    pub from: String,
    /// Window end (inclusive): the newest ticket's creation unless given.
    pub to: String,
    /// Baseline start (whole windows before the window, as far as the history goes).
    pub baseline_from: String,
    /// History the baseline actually covers, days (less than asked near the data's start).
    pub baseline_days: f64,
    /// Tickets created in the window (after the filter).
    pub tickets_in_window: u64,
    /// Fingerprints with tickets in the window.
    pub fingerprints: u64,
    /// Listed fingerprints that are problem candidates.
    pub problem_candidates: u64,
    /// Listed fingerprints that are knowledge-base candidates.
    pub kb_candidates: u64,
    /// Fingerprints with at least `min_tickets` in the window, most tickets first.
    pub issues: Vec<Issue>,
}

/// How surprising `n` tickets in the window are after `baseline` tickets in the `k` windows
/// before, if the rate did not change: `−log10 P(X ≥ n)` for `X ~ Binomial(n + baseline,
/// 1/(k+1))` (given the total, each ticket falls in the window with probability 1/(k+1)).
/// 0 when `n` is not above the baseline's rate; 4 means a chance of 1 in 10,000.
pub fn surprise(n: u64, baseline: u64, k: u64) -> f64 {
    if k == 0 || n == 0 || n * k <= baseline {
        return 0.0;
    }
    let total = n + baseline;
    let p = 1.0 / (k + 1) as f64;
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // ln of the first term, C(total, n) pᵑ qᵗᵒᵗᵃˡ⁻ⁿ, then the ratio of successive terms.
    let mut ln_term = (1..=n)
        .map(|i| (((total - n + i) as f64) / i as f64).ln())
        .sum::<f64>()
        + n as f64 * lp
        + (total - n) as f64 * lq;
    let ln_first = ln_term;
    let mut sum = 1.0;
    for x in n..total {
        ln_term += (((total - x) as f64) / (x + 1) as f64).ln() + lp - lq;
        let rel = (ln_term - ln_first).exp();
        sum += rel;
        if rel < 1e-12 * sum {
            break;
        }
    }
    (-(ln_first + sum.ln()) / std::f64::consts::LN_10).max(0.0)
}

/// Column access to one `tickets` batch.
struct Columns<'a> {
    ticket_id: &'a StringArray,
    title: Option<&'a StringArray>,
    dicts: [Option<DictCol<'a>>; 6],
    channel: DictCol8<'a>,
    created: &'a TimestampMillisecondArray,
    resolved: &'a TimestampMillisecondArray,
    reopens: &'a datafusion::arrow::array::PrimitiveArray<UInt16Type>,
    minutes: &'a datafusion::arrow::array::PrimitiveArray<UInt32Type>,
    kb: DictCol<'a>,
}

/// A dictionary column with one hash per dictionary value.
struct DictCol<'a> {
    keys: &'a datafusion::arrow::array::PrimitiveArray<Int32Type>,
    values: &'a StringArray,
    hashes: Vec<u64>,
}

struct DictCol8<'a> {
    keys: &'a datafusion::arrow::array::PrimitiveArray<Int8Type>,
    values: &'a StringArray,
}

impl<'a> DictCol<'a> {
    fn new(batch: &'a RecordBatch, name: &str) -> Option<DictCol<'a>> {
        let d = batch
            .column_by_name(name)?
            .as_dictionary_opt::<Int32Type>()?;
        let values = d.values().as_string_opt::<i32>()?;
        let hashes = values
            .iter()
            .map(|v| xxh3_64(v.unwrap_or("").as_bytes()))
            .collect();
        Some(DictCol {
            keys: d.keys(),
            values,
            hashes,
        })
    }

    fn get(&self, row: usize) -> Option<&'a str> {
        if self.keys.is_null(row) {
            return None;
        }
        Some(self.values.value(self.keys.value(row) as usize))
    }

    fn hash(&self, row: usize) -> u64 {
        if self.keys.is_null(row) {
            0
        } else {
            self.hashes[self.keys.value(row) as usize]
        }
    }
}

/// Slots of `Columns::dicts`.
const TENANT: usize = 0;
const CATEGORY: usize = 1;
const SUBCATEGORY: usize = 2;
const ITEM: usize = 3;
const SERVICE: usize = 4;
const REQUESTER: usize = 5;

impl<'a> Columns<'a> {
    fn new(batch: &'a RecordBatch) -> Option<Columns<'a>> {
        let ts = |name: &str| {
            batch
                .column_by_name(name)?
                .as_primitive_opt::<TimestampMillisecondType>()
        };
        let channel = batch
            .column_by_name("channel")?
            .as_dictionary_opt::<Int8Type>()?;
        Some(Columns {
            ticket_id: batch.column_by_name("ticket_id")?.as_string_opt::<i32>()?,
            title: batch
                .column_by_name("title")
                .and_then(|c| c.as_string_opt::<i32>()),
            dicts: [
                DictCol::new(batch, "tenant"),
                DictCol::new(batch, "category"),
                DictCol::new(batch, "subcategory"),
                DictCol::new(batch, "configuration_item"),
                DictCol::new(batch, "service"),
                DictCol::new(batch, "requester"),
            ],
            channel: DictCol8 {
                keys: channel.keys(),
                values: channel.values().as_string_opt::<i32>()?,
            },
            created: ts("created_at")?,
            resolved: ts("resolved_at")?,
            reopens: batch
                .column_by_name("reopen_count")?
                .as_primitive_opt::<UInt16Type>()?,
            minutes: batch
                .column_by_name("handle_minutes")?
                .as_primitive_opt::<UInt32Type>()?,
            kb: DictCol::new(batch, "kb_article")?,
        })
    }

    fn str(&self, slot: usize, row: usize) -> Option<&'a str> {
        self.dicts[slot].as_ref().and_then(|d| d.get(row))
    }

    fn hash(&self, slot: usize, row: usize) -> u64 {
        self.dicts[slot].as_ref().map_or(0, |d| d.hash(row))
    }

    /// Configuration item, else service.
    fn item(&self, row: usize) -> Option<&'a str> {
        self.str(ITEM, row).or_else(|| self.str(SERVICE, row))
    }

    fn item_hash(&self, row: usize) -> u64 {
        match self.str(ITEM, row) {
            Some(_) => self.hash(ITEM, row),
            None => self.hash(SERVICE, row) ^ 0x5e41_1ce0,
        }
    }

    fn passes(&self, f: &Filter, row: usize) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| got == Some(w))
        };
        eq(&f.tenant, self.str(TENANT, row))
            && eq(&f.category, self.str(CATEGORY, row))
            && eq(
                &f.channel,
                (!self.channel.keys.is_null(row)).then(|| {
                    self.channel
                        .values
                        .value(self.channel.keys.value(row) as usize)
                }),
            )
    }
}

/// One ticket as the view sees it.
#[derive(Clone, Copy)]
struct Row<'a> {
    cols: &'a Columns<'a>,
    row: usize,
    leader: Option<&'a ClusterMeta>,
}

impl<'a> Row<'a> {
    fn key(&self, fields: &[FingerprintField]) -> u64 {
        let mut h = 0x0d35_c0de_u64;
        for f in fields {
            let v = match f {
                FingerprintField::Tenant => self.cols.hash(TENANT, self.row),
                FingerprintField::Category => self.cols.hash(CATEGORY, self.row),
                FingerprintField::Subcategory => self.cols.hash(SUBCATEGORY, self.row),
                FingerprintField::ConfigurationItem => self.cols.item_hash(self.row),
                FingerprintField::Service => self.cols.hash(SERVICE, self.row),
                FingerprintField::Requester => self.cols.hash(REQUESTER, self.row),
                FingerprintField::Cluster => self.leader.map_or(0, |l| l.id),
            };
            h = xxh3_64_with_seed(&v.to_le_bytes(), h);
        }
        h
    }
}

/// Visits every ticket of a snapshot with its cluster.
fn for_each_ticket(snapshot: &Snapshot, mut visit: impl FnMut(&Row<'_>)) {
    for (b, batch) in snapshot.tickets.iter().enumerate() {
        let Some(cols) = Columns::new(batch) else {
            continue;
        };
        let clusters = snapshot.clusters.get(b);
        for row in 0..batch.num_rows() {
            let leader = clusters
                .and_then(|c| c.get(row))
                .and_then(|&index| snapshot.catalog.get(index));
            visit(&Row {
                cols: &cols,
                row,
                leader,
            });
        }
    }
}

#[derive(Debug, Default)]
struct Acc {
    first_row: Option<[Option<String>; 5]>,
    label: String,
    cluster_id: u64,
    tickets: u64,
    requesters: HashSet<u64>,
    reopened: u64,
    resolved: u64,
    resolve_ms: i64,
    minutes: u64,
    with_kb: u64,
    last_seen: i64,
    samples: Vec<(i64, String)>,
    /// The first [`LABEL_TITLES`] titles, to choose a representative label from.
    titles: Vec<String>,
    baseline: u64,
    first_seen: i64,
}

impl Acc {
    /// Counts ticket `r`, created at `at`, in this fingerprint.
    fn add(&mut self, r: &Row<'_>, at: i64, settings: &ViewSettings) {
        let (a, c) = (self, r.cols);
        if a.first_row.is_none() {
            let has = |f: FingerprintField| settings.fields.contains(&f);
            let s = |slot: usize, f: FingerprintField| {
                has(f)
                    .then(|| c.str(slot, r.row).map(str::to_string))
                    .flatten()
            };
            a.first_row = Some([
                s(TENANT, FingerprintField::Tenant),
                s(CATEGORY, FingerprintField::Category),
                s(SUBCATEGORY, FingerprintField::Subcategory),
                has(FingerprintField::ConfigurationItem)
                    .then(|| c.item(r.row).map(str::to_string))
                    .flatten(),
                s(SERVICE, FingerprintField::Service),
            ]);
            a.label = r.leader.map_or_else(
                || c.ticket_id.value(r.row).to_string(),
                |l| l.label.to_string(),
            );
            a.cluster_id = r.leader.map_or(0, |l| l.id);
            a.first_seen = at;
        }
        a.tickets += 1;
        if a.titles.len() < LABEL_TITLES
            && let Some(t) = c.title
        {
            a.titles.push(t.value(r.row).to_string());
        }
        a.requesters.insert(c.hash(REQUESTER, r.row));
        a.reopened += u64::from(c.reopens.value(r.row) > 0);
        if !c.resolved.is_null(r.row) {
            a.resolved += 1;
            a.resolve_ms += c.resolved.value(r.row) - at;
            a.with_kb += u64::from(c.kb.get(r.row).is_some());
        }
        a.minutes += u64::from(c.minutes.value(r.row));
        a.last_seen = a.last_seen.max(at);
        a.first_seen = a.first_seen.min(at);
        if settings.samples > 0 {
            let newest_first = a.samples.len() < settings.samples
                || a.samples.last().is_some_and(|(t, _)| at > *t);
            if newest_first {
                let pos = a.samples.partition_point(|(t, _)| *t >= at);
                a.samples
                    .insert(pos, (at, c.ticket_id.value(r.row).to_string()));
                a.samples.truncate(settings.samples);
            }
        }
    }

    /// The fingerprint's figures over `covered` ms of baseline (whole windows).
    fn issue(self, key: u64, settings: &ViewSettings, covered: i64, enough_history: bool) -> Issue {
        let (a, w) = (self, settings.window_ms.max(1));
        let expected = enough_history.then(|| a.baseline as f64 * w as f64 / covered as f64);
        let n = a.tickets as f64;
        let k = covered / w;
        let spike_score = enough_history.then(|| surprise(a.tickets, a.baseline, k as u64));
        let recurring = a.tickets >= u64::from(settings.problem_min_tickets);
        let [tenant, category, subcategory, configuration_item, service] =
            a.first_row.unwrap_or_default();
        Issue {
            fingerprint: format!("{key:016x}"),
            label: representative(&a.titles).unwrap_or(a.label),
            cluster_id: format!("{:016x}", a.cluster_id),
            tenant,
            category,
            subcategory,
            configuration_item,
            service,
            tickets: a.tickets,
            requesters: a.requesters.len() as u64,
            reopen_rate: a.reopened as f64 / n,
            resolved: a.resolved,
            mttr_hours: (a.resolved > 0).then(|| a.resolve_ms as f64 / a.resolved as f64 / HOUR_MS),
            handle_hours: a.minutes as f64 / 60.0,
            handle_cost: a.minutes as f64 / 60.0 * settings.hourly_rate,
            resolved_with_kb: a.with_kb,
            baseline_tickets: a.baseline,
            expected,
            spike_score,
            trend: expected.filter(|e| *e > 0.0).map(|e| n / e),
            first_seen: iso(a.first_seen),
            last_seen: iso(a.last_seen),
            samples: a.samples.into_iter().map(|(_, id)| id).collect(),
            problem_candidate: recurring
                && if settings.problem_min_spike <= 0.0 {
                    true
                } else {
                    spike_score.is_some_and(|s| s >= settings.problem_min_spike)
                        && expected.is_some_and(|e| n >= settings.problem_min_trend * e)
                },
            kb_candidate: recurring && a.resolved >= 2 && a.with_kb == 0,
        }
    }
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Titles a fingerprint's label is chosen from.
const LABEL_TITLES: usize = 50;

/// The title that reads most like the call: the one whose words most of the titles share
/// (ties: the shorter, then the first), lower-cased and masked, with the words no other title
/// has (a person's name, a project) replaced by `…`. `None` without titles.
fn representative(titles: &[String]) -> Option<String> {
    static ANALYZER: std::sync::LazyLock<crate::clustering::text::Analyzer> =
        std::sync::LazyLock::new(crate::clustering::text::Analyzer::default);
    let shown: Vec<String> = titles.iter().map(|t| ANALYZER.display(t)).collect();
    let keys: Vec<Vec<String>> = shown
        .iter()
        .map(|t| {
            let mut words: Vec<String> = t.split(' ').map(crate::clustering::text::fold).collect();
            words.sort_unstable();
            words.dedup();
            words
        })
        .collect();
    let mut share: HashMap<&str, usize> = HashMap::new();
    for words in &keys {
        for w in words {
            *share.entry(w.as_str()).or_default() += 1;
        }
    }
    let score = |words: &[String]| {
        words.iter().map(|w| share[w.as_str()] as f64).sum::<f64>() / words.len().max(1) as f64
    };
    let best = (0..shown.len())
        .filter(|&i| !shown[i].is_empty())
        .max_by(|&a, &b| {
            score(&keys[a])
                .total_cmp(&score(&keys[b]))
                .then(shown[b].chars().count().cmp(&shown[a].chars().count()))
                .then(b.cmp(&a))
        })?;
    if titles.len() < 3 {
        return Some(shown[best].clone());
    }
    let mut out: Vec<&str> = Vec::new();
    for w in shown[best].split(' ') {
        let unique = share
            .get(crate::clustering::text::fold(w).as_str())
            .copied()
            .unwrap_or(0)
            <= 1;
        match (unique, out.last()) {
            (true, Some(&"…")) => {}
            (true, _) => out.push("…"),
            (false, _) => out.push(w),
        }
    }
    Some(out.join(" "))
}

/// The newest ticket creation in a snapshot.
pub fn latest_created(snapshot: &Snapshot) -> Option<i64> {
    snapshot
        .tickets
        .iter()
        .filter_map(|b| {
            let c = b
                .column_by_name("created_at")?
                .as_primitive_opt::<TimestampMillisecondType>()?;
            datafusion::arrow::compute::max(c)
        })
        .max()
}

/// The recurring view of `snapshot` for the window ending at `to` (default: the newest
/// ticket's creation).
pub fn compute(
    snapshot: &Snapshot,
    settings: &ViewSettings,
    to: Option<i64>,
    filter: &Filter,
) -> Report {
    let to = to.or_else(|| latest_created(snapshot)).unwrap_or(0);
    let w = settings.window_ms.max(1);
    let from = to - w;
    let baseline_from = from - w * i64::from(settings.baseline_windows);
    let mut data_start = i64::MAX;
    let mut in_window = 0u64;
    let mut accs: HashMap<u64, Acc> = HashMap::new();
    let mut before: Vec<(u64, i64)> = Vec::new();
    for_each_ticket(snapshot, |r| {
        let c = r.cols;
        let at = c.created.value(r.row);
        if at > to || !c.passes(filter, r.row) {
            return;
        }
        data_start = data_start.min(at);
        let key = r.key(&settings.fields);
        if at <= from {
            before.push((key, at));
            return;
        }
        in_window += 1;
        accs.entry(key).or_default().add(r, at, settings);
    });
    // The baseline is whole windows (so a weekly pattern does not bias it), as many as the
    // history before the window holds, up to `baseline_windows`.
    // (No tickets at all: `data_start` is the largest instant, and nothing is covered.)
    let covered = (from
        .saturating_sub(data_start)
        .clamp(0, from - baseline_from)
        / w)
        * w;
    let baseline_start = from - covered;
    let enough_history = covered >= w;
    for (key, at) in before {
        if let Some(a) = accs.get_mut(&key) {
            a.first_seen = a.first_seen.min(at);
            if at > baseline_start {
                a.baseline += 1;
            }
        }
    }
    let fingerprints = accs.len() as u64;
    let mut issues: Vec<Issue> = accs
        .into_iter()
        .filter(|(_, a)| a.tickets >= u64::from(settings.min_tickets))
        .map(|(key, a)| a.issue(key, settings, covered, enough_history))
        .collect();
    issues.sort_by(|a, b| {
        b.tickets
            .cmp(&a.tickets)
            .then_with(|| {
                b.spike_score
                    .unwrap_or(f64::MIN)
                    .total_cmp(&a.spike_score.unwrap_or(f64::MIN))
            })
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
    Report {
        from: iso(from),
        to: iso(to),
        baseline_from: iso(baseline_start),
        baseline_days: covered as f64 / 86_400_000.0,
        tickets_in_window: in_window,
        fingerprints,
        problem_candidates: issues.iter().filter(|i| i.problem_candidate).count() as u64,
        kb_candidates: issues.iter().filter(|i| i.kb_candidate).count() as u64,
        issues,
    }
}

/// One of the most common calls of a period.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Call {
    /// Rank, from 1.
    pub rank: usize,
    /// Text cluster id (hex).
    pub cluster_id: String,
    /// Readable label.
    pub label: String,
    /// Tickets in the period.
    pub tickets: u64,
    /// Share of all tickets of the period.
    pub share: f64,
    /// Distinct requesters.
    pub requesters: u64,
    /// Mean time to resolve, hours.
    pub mttr_hours: Option<f64>,
    /// Work logged, hours.
    pub handle_hours: f64,
    /// Its cost, dollars.
    pub handle_cost: f64,
    /// Share of the resolved ones that cite a knowledge-base article.
    pub kb_share: Option<f64>,
    /// The newest tickets.
    pub samples: Vec<String>,
}

/// The `n` most common calls (text clusters) created in `(from, to]`.
pub fn top_calls(
    snapshot: &Snapshot,
    settings: &ViewSettings,
    from: Option<i64>,
    to: Option<i64>,
    n: usize,
    filter: &Filter,
) -> (String, String, u64, Vec<Call>) {
    let to = to.or_else(|| latest_created(snapshot)).unwrap_or(0);
    let from = from.unwrap_or(to - settings.window_ms);
    let by_cluster = ViewSettings {
        fields: vec![FingerprintField::Cluster],
        window_ms: (to - from).max(1),
        baseline_windows: 1,
        min_tickets: 1,
        ..settings.clone()
    };
    let report = compute(snapshot, &by_cluster, Some(to), filter);
    let total = report.tickets_in_window;
    let calls = report
        .issues
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, issue)| Call {
            rank: i + 1,
            cluster_id: issue.cluster_id,
            label: issue.label,
            tickets: issue.tickets,
            share: issue.tickets as f64 / total.max(1) as f64,
            requesters: issue.requesters,
            mttr_hours: issue.mttr_hours,
            handle_hours: issue.handle_hours,
            handle_cost: issue.handle_cost,
            kb_share: (issue.resolved > 0)
                .then(|| issue.resolved_with_kb as f64 / issue.resolved as f64),
            samples: issue.samples,
        })
        .collect();
    (report.from, report.to, total, calls)
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// Schema of `ticket_clusters`.
pub static CLUSTERS_SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("ticket_id", DataType::Utf8, false),
        Field::new("cluster_id", DataType::Utf8, false),
        Field::new("cluster_label", DataType::Utf8, false),
        Field::new("cluster_founder", DataType::Utf8, false),
        Field::new("fingerprint", DataType::Utf8, false),
        Field::new("created_at", ts_type(), false),
    ]))
});

/// The `ticket_clusters` rows of a snapshot: every ticket's cluster and fingerprint.
pub fn clusters_batch(snapshot: &Snapshot, settings: &ViewSettings) -> RecordBatch {
    let n: usize = snapshot.tickets.iter().map(|b| b.num_rows()).sum();
    let (mut ids, mut cids, mut labels, mut founders, mut fps, mut created) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for_each_ticket(snapshot, |r| {
        ids.push(r.cols.ticket_id.value(r.row).to_string());
        cids.push(format!("{:016x}", r.leader.map_or(0, |l| l.id)));
        labels.push(r.leader.map_or_else(String::new, |l| l.label.to_string()));
        founders.push(
            r.leader
                .map_or_else(String::new, |l| l.founder_ticket.to_string()),
        );
        fps.push(format!("{:016x}", r.key(&settings.fields)));
        created.push(r.cols.created.value(r.row));
    });
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(ids)),
        Arc::new(StringArray::from(cids)),
        Arc::new(StringArray::from(labels)),
        Arc::new(StringArray::from(founders)),
        Arc::new(StringArray::from(fps)),
        Arc::new(TimestampMillisecondArray::from(created).with_timezone("UTC")),
    ];
    RecordBatch::try_new(CLUSTERS_SCHEMA.clone(), columns).expect("columns match the schema")
}

/// Schema of `recurring_issues`.
pub static ISSUES_SCHEMA: std::sync::LazyLock<SchemaRef> = std::sync::LazyLock::new(|| {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let u = |n: &str| Field::new(n, DataType::UInt64, false);
    let f = |n: &str| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        Field::new("fingerprint", DataType::Utf8, false),
        Field::new("label", DataType::Utf8, false),
        Field::new("cluster_id", DataType::Utf8, false),
        s("tenant"),
        s("category"),
        s("subcategory"),
        s("configuration_item"),
        s("service"),
        u("tickets"),
        u("requesters"),
        f("reopen_rate"),
        u("resolved"),
        f("mttr_hours"),
        f("handle_hours"),
        f("handle_cost"),
        u("resolved_with_kb"),
        u("baseline_tickets"),
        f("expected"),
        f("spike_score"),
        f("trend"),
        Field::new("first_seen", ts_type(), false),
        Field::new("last_seen", ts_type(), false),
        Field::new("samples", DataType::Utf8, false),
        Field::new("problem_candidate", DataType::Boolean, false),
        Field::new("kb_candidate", DataType::Boolean, false),
        Field::new("window_from", ts_type(), false),
        Field::new("window_to", ts_type(), false),
    ]))
});

fn parse_iso(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s).map_or(0, |t| t.timestamp_millis())
}

/// The `recurring_issues` rows of a report.
pub fn issues_batch(report: &Report) -> RecordBatch {
    let is = &report.issues;
    let strs = |f: &dyn Fn(&Issue) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(is.iter().map(f).collect::<Vec<_>>()))
    };
    let u64s = |f: &dyn Fn(&Issue) -> u64| -> ArrayRef {
        Arc::new(UInt64Array::from(is.iter().map(f).collect::<Vec<_>>()))
    };
    let f64s = |f: &dyn Fn(&Issue) -> Option<f64>| -> ArrayRef {
        Arc::new(Float64Array::from(is.iter().map(f).collect::<Vec<_>>()))
    };
    let times = |f: &dyn Fn(&Issue) -> i64| -> ArrayRef {
        Arc::new(
            TimestampMillisecondArray::from(is.iter().map(f).collect::<Vec<_>>())
                .with_timezone("UTC"),
        )
    };
    let bools = |f: &dyn Fn(&Issue) -> bool| -> ArrayRef {
        Arc::new(BooleanArray::from(is.iter().map(f).collect::<Vec<_>>()))
    };
    let (from, to) = (parse_iso(&report.from), parse_iso(&report.to));
    let columns = vec![
        strs(&|i| Some(i.fingerprint.clone())),
        strs(&|i| Some(i.label.clone())),
        strs(&|i| Some(i.cluster_id.clone())),
        strs(&|i| i.tenant.clone()),
        strs(&|i| i.category.clone()),
        strs(&|i| i.subcategory.clone()),
        strs(&|i| i.configuration_item.clone()),
        strs(&|i| i.service.clone()),
        u64s(&|i| i.tickets),
        u64s(&|i| i.requesters),
        f64s(&|i| Some(i.reopen_rate)),
        u64s(&|i| i.resolved),
        f64s(&|i| i.mttr_hours),
        f64s(&|i| Some(i.handle_hours)),
        f64s(&|i| Some(i.handle_cost)),
        u64s(&|i| i.resolved_with_kb),
        u64s(&|i| i.baseline_tickets),
        f64s(&|i| i.expected),
        f64s(&|i| i.spike_score),
        f64s(&|i| i.trend),
        times(&|i| parse_iso(&i.first_seen)),
        times(&|i| parse_iso(&i.last_seen)),
        strs(&|i| Some(i.samples.join(","))),
        bools(&|i| i.problem_candidate),
        bools(&|i| i.kb_candidate),
        times(&|_| from),
        times(&|_| to),
    ];
    RecordBatch::try_new(ISSUES_SCHEMA.clone(), columns).expect("columns match the schema")
}

#[cfg(test)]
mod tests;
