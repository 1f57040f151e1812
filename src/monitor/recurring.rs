//! The recurring view kept current in a running service: every `refresh-seconds` the view of
//! the latest snapshot is computed on a blocking thread, its top K exported as metrics, and —
//! with `[recurring] alerts = true` — every new problem candidate raised as an alert through the
//! `[sla.alerts]` receivers (and ended when it no longer is one).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::MonitorError;
use crate::alert::AlertSink;
use crate::query::QueryEngine;
use crate::recurring::view::{self, Call, Filter, Issue, RecurringConfig, Report};
use crate::sla::alerts::{AlertUpdate, ProblemAlert};
use crate::telemetry::Metrics;

/// Longest label value exported (a cluster label is a ticket title).
const LABEL_CHARS: usize = 80;

fn short(s: &str) -> String {
    match s.char_indices().nth(LABEL_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

fn labels(i: &Issue) -> [String; 5] {
    [
        i.fingerprint.clone(),
        short(&i.label),
        i.tenant.clone().unwrap_or_default(),
        i.category.clone().unwrap_or_default(),
        i.configuration_item.clone().unwrap_or_default(),
    ]
}

/// Sets the recurring gauges from a report and the top calls: the top `k` fingerprints by
/// tickets and the top `k` problem candidates by spike score (older series are removed).
pub fn publish(metrics: &Metrics, report: &Report, calls: &[Call], k: usize) {
    metrics.recurring_tickets.reset();
    metrics.recurring_spike_score.reset();
    metrics.recurring_problem.reset();
    metrics.top_calls_tickets.reset();
    let mut problems: Vec<&Issue> = report
        .issues
        .iter()
        .filter(|i| i.problem_candidate)
        .collect();
    problems.sort_by(|a, b| {
        b.spike_score
            .unwrap_or(0.0)
            .total_cmp(&a.spike_score.unwrap_or(0.0))
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
    problems.truncate(k);
    for i in report.issues.iter().take(k).chain(problems.iter().copied()) {
        let l = labels(i);
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        metrics
            .recurring_tickets
            .with_label_values(&l)
            .set(i.tickets as i64);
        if let Some(s) = i.spike_score {
            metrics.recurring_spike_score.with_label_values(&l).set(s);
        }
    }
    for i in &problems {
        let l = labels(i);
        let l: Vec<&str> = l.iter().map(String::as_str).collect();
        metrics.recurring_problem.with_label_values(&l).set(1);
    }
    for c in calls.iter().take(k) {
        metrics
            .top_calls_tickets
            .with_label_values(&[&c.rank.to_string(), &c.cluster_id, &short(&c.label)])
            .set(c.tickets as i64);
    }
    metrics
        .recurring_fingerprints
        .set(report.fingerprints as i64);
    metrics
        .recurring_problem_candidates
        .set(report.problem_candidates as i64);
    metrics
        .recurring_kb_candidates
        .set(report.kb_candidates as i64);
}

/// Alert updates for the problem candidates of `report`, given those alerted before (updated
/// in place): a `Problem` for each candidate, a `ProblemEnded` for each that is gone.
pub fn problem_updates(
    report: &Report,
    window: &str,
    alerted: &mut HashMap<String, i64>,
    now: i64,
) -> Vec<AlertUpdate> {
    let mut out = Vec::new();
    let current: Vec<&Issue> = report
        .issues
        .iter()
        .filter(|i| i.problem_candidate)
        .collect();
    alerted.retain(|fp, _| {
        let keep = current.iter().any(|i| &i.fingerprint == fp);
        if !keep {
            out.push(AlertUpdate::ProblemEnded {
                fingerprint: fp.clone(),
            });
        }
        keep
    });
    for i in current {
        let since = *alerted.entry(i.fingerprint.clone()).or_insert(now);
        out.push(AlertUpdate::Problem(ProblemAlert {
            fingerprint: i.fingerprint.clone(),
            label: i.label.clone(),
            cluster_id: i.cluster_id.clone(),
            tenant: i.tenant.clone().unwrap_or_default(),
            category: i.category.clone().unwrap_or_default(),
            configuration_item: i.configuration_item.clone().unwrap_or_default(),
            tickets: i.tickets,
            spike_score: i.spike_score.unwrap_or(0.0),
            window: window.to_string(),
            samples: i.samples.clone(),
            since,
        }));
    }
    out
}

/// Refreshes the view, its metrics and its alerts every `refresh-seconds` until `stop`; ends
/// with an error only when the view's thread failed.
pub async fn run(
    query: QueryEngine,
    metrics: Metrics,
    alerts: AlertSink,
    config: RecurringConfig,
    stop: CancellationToken,
) -> Result<(), MonitorError> {
    let mut tick = tokio::time::interval(Duration::from_secs(config.refresh_seconds.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut alerted: HashMap<String, i64> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let (snapshot, settings) = (query.current(), query.recurring());
        let k = config.top_k;
        let (report, calls, seconds) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let report = view::compute(&snapshot, &settings, None, &Filter::default());
            let seconds = started.elapsed().as_secs_f64();
            let (_, _, _, calls) =
                view::top_calls(&snapshot, &settings, None, None, k, &Filter::default());
            (report, calls, seconds)
        })
        .await
        .map_err(|e| MonitorError::Failed {
            monitor: "recurring",
            detail: e.to_string(),
        })?;
        metrics.recurring_view_seconds.set(seconds);
        publish(&metrics, &report, &calls, k);
        if config.alerts {
            let now = crate::clock::now_ms();
            alerts.send(problem_updates(&report, &config.window, &mut alerted, now));
        }
    }
}
