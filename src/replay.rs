//! What-if replay: the stored history projected again under another configuration (SLA
//! policies and calendars, recurring settings, cost model) next to the same history under the
//! base configuration, and the differences. The log is read without a lock and nothing is
//! written: the live state is not touched.
//!
//! Open clocks are valued at the end of the replayed history (the newest event, or `to`), not
//! at the wall clock: an imported history from years ago is not counted as breaching today.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::event::{Payload, TicketEvent};
use crate::log::LogReader;
use crate::log::embedded::EmbeddedLog;
use crate::projection::{Outcome, Projection, Snapshot};
use crate::query::workload::observe;
use crate::query::{QueryEngine, to_json_rows};
use crate::recurring::view::{self, Filter};
use crate::staffing::model::{WhatIf, report};

/// Stops a replay from another thread.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    /// Whether the replay should stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A guard that cancels when dropped.
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

/// Cancels its [`Cancel`] when dropped.
#[derive(Debug)]
pub struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.0.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Which tickets to replay: those created in `[from, to)` (milliseconds), with all their events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Range {
    /// From (inclusive).
    pub from: Option<i64>,
    /// To (exclusive); also the instant open clocks are valued at.
    pub to: Option<i64>,
}

impl Range {
    fn contains(&self, at: i64) -> bool {
        self.from.is_none_or(|f| at >= f) && self.to.is_none_or(|t| at < t)
    }
}

/// A projection of the history and what it took.
#[derive(Debug)]
pub struct Projected {
    /// The state.
    pub snapshot: Snapshot,
    /// Tickets replayed.
    pub tickets: u64,
    /// Events applied.
    pub events: u64,
    /// Newest event time applied.
    pub newest: Option<i64>,
}

/// Why a what-if replay did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The stored log could not be read.
    #[error(transparent)]
    Log(#[from] crate::log::LogError),
    /// The figures could not be read from a replayed snapshot.
    #[error(transparent)]
    Query(#[from] crate::query::QueryError),
    /// The cost model could not be computed.
    #[error(transparent)]
    Cost(#[from] crate::staffing::StaffingError),
    /// The request went away (or timed out) and the projections stopped.
    #[error("the replay was cancelled")]
    Cancelled,
    /// A projection thread failed.
    #[error("a replay thread failed")]
    Failed,
}

/// Projects the tickets of `range` from `reader` under `config`.
pub fn project(
    mut reader: Box<dyn LogReader>,
    config: &Config,
    range: Range,
    cancel: &Cancel,
) -> Result<Projected, ReplayError> {
    let setup = config.setup();
    let mut projection = Projection::with_setup(setup.rules, setup.text);
    let filtered = range.from.is_some() || range.to.is_some();
    let mut chosen: HashSet<String> = HashSet::new();
    let (mut tickets, mut events, mut newest) = (0u64, 0u64, None::<i64>);
    while let Some(r) = reader.next_record()? {
        if r.offset % 4096 == 0 && cancel.is_cancelled() {
            return Err(ReplayError::Cancelled);
        }
        let Ok(event) = TicketEvent::from_json(r.payload) else {
            continue;
        };
        if filtered {
            let at = event.occurred_at.timestamp_millis();
            match event.payload {
                Payload::Created(_) if range.contains(at) => {
                    chosen.insert(event.ticket_id.clone());
                }
                _ if chosen.contains(&event.ticket_id) => {}
                _ => continue,
            }
        }
        if projection.apply(&event, r.offset) == Outcome::Applied {
            events += 1;
            if matches!(event.payload, Payload::Created(_)) {
                tickets += 1;
            }
            let at = event.occurred_at.timestamp_millis();
            newest = Some(newest.map_or(at, |n| n.max(at)));
        }
    }
    Ok(Projected {
        snapshot: projection.snapshot(&Snapshot::default()),
        tickets,
        events,
        newest,
    })
}

/// SLA clocks of one priority and clock kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlaGroup {
    /// Clocks started.
    pub clocks: u64,
    /// Of which met (stopped in time).
    pub met: u64,
    /// Of which breached (stopped late, or open past the deadline).
    pub breached: u64,
    /// Of which cancelled with the ticket.
    pub cancelled: u64,
    /// `1 − breached / (clocks − cancelled)`.
    pub compliance: Option<f64>,
}

/// The recurring view at the end of the history.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RecurringSummary {
    /// Fingerprints with tickets in the window.
    pub fingerprints: u64,
    /// Problem candidates.
    pub problem_candidates: u64,
    /// Knowledge-base candidates.
    pub kb_candidates: u64,
    /// The problem candidates' labels.
    pub problems: Vec<String>,
}

/// The cost model on the replayed workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CostSummary {
    /// Tickets per month.
    pub tickets_per_month: f64,
    /// FTE in-house.
    pub fte: f64,
    /// In-house per month.
    pub in_house: f64,
    /// Outsourced per month, after credits.
    pub outsourced: f64,
    /// SLA credits per month.
    pub sla_breach_credits: f64,
}

/// One configuration's view of the history.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Side {
    /// Per priority, then clock.
    pub sla: BTreeMap<String, BTreeMap<String, SlaGroup>>,
    /// Every clock.
    pub sla_total: SlaGroup,
    /// The recurring view.
    pub recurring: RecurringSummary,
    /// The cost model.
    pub cost: CostSummary,
}

/// The replay's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayReport {
    /// The range asked for.
    pub range: Range,
    /// The instant open clocks are valued at (RFC 3339).
    pub as_of: Option<String>,
    /// Tickets replayed.
    pub tickets: u64,
    /// Events applied (base configuration).
    pub events: u64,
    /// Under the base configuration.
    pub before: Side,
    /// Under the other configuration.
    pub after: Side,
    /// Problem candidates only under the other configuration.
    pub new_problems: Vec<String>,
    /// Problem candidates only under the base configuration.
    pub gone_problems: Vec<String>,
}

fn group(rows: &[serde_json::Value]) -> SlaGroup {
    let n = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap_or(0);
    let mut g = SlaGroup::default();
    for r in rows {
        g.clocks += n(r, "clocks");
        g.met += n(r, "met");
        g.breached += n(r, "breached");
        g.cancelled += n(r, "cancelled");
    }
    let counted = g.clocks - g.cancelled;
    g.compliance = (counted > 0).then(|| 1.0 - g.breached as f64 / counted as f64);
    g
}

/// SLA, recurring and cost figures of a projected history under `config`, valued at `as_of`.
pub async fn side(snapshot: Snapshot, config: &Config, as_of: i64) -> Result<Side, ReplayError> {
    let query = QueryEngine::valued_at(Some(as_of))?;
    let settings = config.recurring.view();
    query.set_recurring(settings.clone());
    query.publish(snapshot);
    let rows = query
        .sql(
            "select priority, clock, count(*) as clocks, \
             count(*) filter (where state = 'met') as met, \
             count(*) filter (where breached_at is not null) as breached, \
             count(*) filter (where state = 'cancelled') as cancelled \
             from sla_clocks group by priority, clock",
        )
        .await
        .and_then(|b| to_json_rows(&b))?;
    let mut out = Side::default();
    for r in &rows {
        let (p, c) = (
            r["priority"].as_str().unwrap_or_default().to_string(),
            r["clock"].as_str().unwrap_or_default().to_string(),
        );
        out.sla
            .entry(p)
            .or_default()
            .insert(c, group(std::slice::from_ref(r)));
    }
    out.sla_total = group(&rows);
    let snapshot = query.current();
    let recurring = view::compute(&snapshot, &settings, Some(as_of), &Filter::default());
    out.recurring = RecurringSummary {
        fingerprints: recurring.fingerprints,
        problem_candidates: recurring.problem_candidates,
        kb_candidates: recurring.kb_candidates,
        problems: recurring
            .issues
            .iter()
            .filter(|i| i.problem_candidate)
            .map(|i| i.label.clone())
            .collect(),
    };
    let observed = observe(&query, &config.cost).await?;
    let cost = report(&observed, &config.cost, WhatIf::default())?;
    out.cost = CostSummary {
        tickets_per_month: cost.month.tickets,
        fte: cost.month.fte,
        in_house: cost.month.in_house,
        outsourced: cost.month.outsourced,
        sla_breach_credits: cost.sla_breach_credits,
    };
    Ok(out)
}

/// Replays the embedded log in `log_dir` under `base` and `other` (in parallel) and compares.
pub async fn replay(
    log_dir: PathBuf,
    base: Arc<Config>,
    other: Arc<Config>,
    range: Range,
) -> Result<ReplayReport, ReplayError> {
    // Dropping this future (a request that timed out or went away) stops the projections.
    let cancel = Cancel::default();
    let _stop = cancel.on_drop();
    let (b, o) = (base.clone(), other.clone());
    let (before, after) = tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            let dir = &log_dir;
            let open = move || EmbeddedLog::read_only(dir);
            let c = &cancel;
            let before = s.spawn(move || project(open()?, &b, range, c));
            let after = project(open()?, &o, range, c)?;
            let before = before.join().map_err(|_| ReplayError::Failed)??;
            Ok::<_, ReplayError>((before, after))
        })
    })
    .await
    .map_err(|_| ReplayError::Failed)??;
    let as_of = range.to.or(before.newest).unwrap_or(0);
    let (tickets, events) = (before.tickets, before.events);
    let before = side(before.snapshot, &base, as_of).await?;
    let after = side(after.snapshot, &other, as_of).await?;
    let set = |s: &Side| -> BTreeSet<String> { s.recurring.problems.iter().cloned().collect() };
    let (was, is) = (set(&before), set(&after));
    Ok(ReplayReport {
        range,
        as_of: chrono::DateTime::from_timestamp_millis(as_of).map(crate::event::format_time),
        tickets,
        events,
        new_problems: is.difference(&was).cloned().collect(),
        gone_problems: was.difference(&is).cloned().collect(),
        before,
        after,
    })
}
