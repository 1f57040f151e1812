//! Alert delivery: Alertmanager (API v2) and generic JSON webhooks.
//!
//! The projection reports, per (ticket, clock), the level that is active now (see
//! [`crate::sla::alerts::AlertUpdate`]). The dispatcher keeps the set of active alerts — one per
//! (ticket, clock, level), with the labels fixed when it first fired so Alertmanager sees one
//! stable identity — and turns changes into firing and resolved alerts. Active alerts are sent
//! again every `resend-seconds` with `endsAt` four periods ahead, so Alertmanager resolves them
//! by itself if deskwatch disappears.
//!
//! Replicas (Kafka, every instance projecting every partition) all evaluate every clock and
//! send the same alerts, with the same labels, to Alertmanager, which deduplicates them — the
//! pattern of highly available Prometheus. Webhook receivers cannot deduplicate, so each alert
//! goes to them from the instance the consumer group elects for the partition its ticket came
//! from ([`Leader`]); alerts of the whole desk (problem candidates) from the leader of
//! partition 0.
//!
//! Every receiver has its own bounded queue and delivery task ([`deliver`]): the projection
//! only pushes into a channel and is never slowed by a receiver. Nothing is lost silently: a
//! queue drop, an alert a receiver refuses and a dispatcher that is gone are logged and
//! counted; at shutdown the queues get `shutdown-grace-seconds` to flush.

pub mod deliver;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::base::Millis;
use crate::event::format_ms as rfc3339;
use crate::sla::alerts::{AlertInfo, AlertUpdate, ProblemAlert};
use crate::sla::rules::AlertsConfig;
use crate::telemetry::Metrics;
use deliver::Receiver;

/// The alert object of a problem candidate (Alertmanager API v2 shape).
pub fn problem_json(
    p: &ProblemAlert,
    config: &AlertsConfig,
    now: Millis,
    ends_at: Millis,
) -> Value {
    let base = config.external_url.trim_end_matches('/');
    let link = format!("{base}/v1/recurring?candidates=problem");
    let item = if p.configuration_item.is_empty() {
        String::new()
    } else {
        format!(" on {}", p.configuration_item)
    };
    json!({
        "labels": {
            "alertname": "DeskwatchRecurringProblem",
            "severity": "warning",
            "fingerprint": p.fingerprint,
            "tenant": p.tenant,
            "category": p.category,
            "configuration_item": p.configuration_item,
            "cluster_id": p.cluster_id,
        },
        "annotations": {
            "summary": format!("{} tickets of \"{}\"{item} within {}: a problem-record candidate", p.tickets, p.label, p.window),
            "label": p.label,
            "spike_score": format!("{:.1}", p.spike_score),
            "samples": p.samples.join(", "),
            "link": link,
        },
        "startsAt": rfc3339(p.since.min(now)),
        "endsAt": rfc3339(ends_at),
        "generatorURL": link,
    })
}

/// Which partitions' webhook alerts this instance sends (the consumer group's election).
pub trait Leader: Send + Sync + std::fmt::Debug {
    /// Whether this instance sends the webhook alerts of `partition`.
    fn leads(&self, partition: u32) -> bool;
}

/// Handle the projection side pushes updates into; never blocks.
#[derive(Debug, Clone)]
pub struct AlertSink {
    inner: Option<Arc<SinkInner>>,
    /// The log partition whose projection sends through this handle (Kafka).
    partition: Option<u32>,
}

/// Updates and the partition they come from.
type Batch = (Option<u32>, Vec<AlertUpdate>);

#[derive(Debug)]
struct SinkInner {
    tx: mpsc::UnboundedSender<Batch>,
    /// Set when the instance is one replica of several (Kafka with webhook receivers).
    leader: Arc<std::sync::OnceLock<Arc<dyn Leader>>>,
    metrics: Metrics,
    /// Set once the loss of the dispatcher was logged (every loss is still counted).
    reported: AtomicBool,
    /// Cancelled by [`AlertSink::close`]: the dispatcher takes what is left and stops.
    closing: CancellationToken,
    /// Cancelled once the dispatcher stopped: the receivers flush their queues and stop.
    drained: CancellationToken,
    dispatcher: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    grace: Duration,
}

impl AlertSink {
    /// A sink that discards everything (no runtime, tests, CLI).
    pub fn disabled() -> AlertSink {
        AlertSink {
            inner: None,
            partition: None,
        }
    }

    /// The handle of one log partition's projection: its alerts carry the partition.
    pub fn for_partition(&self, partition: u32) -> AlertSink {
        AlertSink {
            inner: self.inner.clone(),
            partition: Some(partition),
        }
    }

    /// Webhook alerts go out only for the partitions `leader` leads (set once, when replicas
    /// elect their webhook senders).
    pub fn elect_with(&self, leader: Arc<dyn Leader>) {
        if let Some(inner) = &self.inner {
            let _ = inner.leader.set(leader);
        }
    }

    /// Queues updates for the dispatcher. If the dispatcher is gone (it failed, or the service
    /// is closing), the updates are counted in `deskwatch_alerts_dropped_total{receiver =
    /// "dispatcher"}` and the first loss is logged as an error.
    pub fn send(&self, updates: Vec<AlertUpdate>) {
        if updates.is_empty() {
            return;
        }
        let Some(inner) = &self.inner else { return };
        let n = updates.len();
        if inner.tx.send((self.partition, updates)).is_err() {
            inner
                .metrics
                .alerts_dropped
                .with_label_values(&["dispatcher"])
                .inc_by(n as u64);
            if !inner.reported.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    lost = n,
                    "the alert dispatcher is not running: alert updates are lost (counted in deskwatch_alerts_dropped_total{{receiver=\"dispatcher\"}})"
                );
            }
        }
    }

    /// Whether the dispatcher is still running.
    pub fn is_running(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| !i.tx.is_closed())
    }

    /// Stops taking updates, lets the receivers deliver what is queued for at most
    /// `shutdown-grace-seconds`, and waits for them. What is left is logged and counted.
    pub async fn close(&self) {
        let Some(inner) = &self.inner else { return };
        inner.closing.cancel();
        let dispatcher = inner
            .dispatcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(d) = dispatcher {
            match tokio::time::timeout(inner.grace, d).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the alert dispatcher failed"),
                Err(_) => tracing::error!("the alert dispatcher did not stop in time"),
            }
        }
        inner.drained.cancel();
        let tasks: Vec<_> =
            std::mem::take(&mut *inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let wait = async {
            for t in tasks {
                if let Err(e) = t.await {
                    tracing::error!(error = %e, "an alert task failed");
                }
            }
        };
        if tokio::time::timeout(inner.grace + Duration::from_secs(2), wait)
            .await
            .is_err()
        {
            tracing::error!("alert delivery did not stop within its grace period");
        }
    }
}

/// Starts the dispatcher and one delivery task per receiver on the current tokio runtime.
/// Without a runtime, returns a disabled sink.
pub fn start(config: &AlertsConfig, metrics: Metrics) -> AlertSink {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return AlertSink::disabled();
    };
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_seconds))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the HTTP client; alerts are disabled");
            return AlertSink::disabled();
        }
    };
    let mut receivers = Vec::new();
    for (i, url) in config.alertmanager.iter().enumerate() {
        receivers.push(Arc::new(Receiver::new(
            format!("alertmanager-{i}"),
            format!("{}/api/v2/alerts", url.trim_end_matches('/')),
            true,
        )));
    }
    for (i, url) in config.webhooks.iter().enumerate() {
        receivers.push(Arc::new(Receiver::new(
            format!("webhook-{i}"),
            url.clone(),
            false,
        )));
    }
    let closing = CancellationToken::new();
    let drained = CancellationToken::new();
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    let mut tasks = Vec::new();
    for r in &receivers {
        // Each receiver's series exist from zero, so rate() and alert rules see the first one.
        let name = [r.name.as_str()];
        metrics.alerts_sent.with_label_values(&name);
        metrics.alert_delivery_failures.with_label_values(&name);
        metrics.alerts_rejected.with_label_values(&name);
        metrics.alerts_dropped.with_label_values(&name);
        metrics.alerts_queued.with_label_values(&name).set(0);
        tasks.push(handle.spawn(deliver::run(
            r.clone(),
            client.clone(),
            metrics.clone(),
            drained.clone(),
            grace,
        )));
    }
    metrics.alerts_dropped.with_label_values(&["dispatcher"]);
    let (tx, rx) = mpsc::unbounded_channel();
    let leader = Arc::new(std::sync::OnceLock::new());
    let dispatcher = Dispatcher {
        active: HashMap::new(),
        problems: HashMap::new(),
        receivers,
        config: config.clone(),
        metrics: metrics.clone(),
        leader: leader.clone(),
    };
    let dispatcher = handle.spawn(dispatcher.run(rx, closing.clone()));
    AlertSink {
        partition: None,
        inner: Some(Arc::new(SinkInner {
            tx,
            leader,
            metrics,
            reported: AtomicBool::new(false),
            closing,
            drained,
            dispatcher: std::sync::Mutex::new(Some(dispatcher)),
            tasks: std::sync::Mutex::new(tasks),
            grace,
        })),
    }
}

struct Dispatcher {
    /// Active alerts and the partition each came from.
    active: HashMap<(String, crate::sla::ClockKind), (AlertInfo, Option<u32>)>,
    problems: HashMap<String, ProblemAlert>,
    receivers: Vec<Arc<Receiver>>,
    config: AlertsConfig,
    metrics: Metrics,
    leader: Arc<std::sync::OnceLock<Arc<dyn Leader>>>,
}

/// Alerts to send, each with the partition it comes from (`None`: the whole desk).
type Out = Vec<(Value, Option<u32>)>;

fn human(ms: i64) -> String {
    let (sign, ms) = if ms < 0 { ("-", -ms) } else { ("", ms) };
    let s = ms / 1000;
    match s {
        s if s >= 86_400 => format!("{sign}{}d{}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{sign}{}h{}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{sign}{}m{}s", s / 60, s % 60),
        s => format!("{sign}{s}s"),
    }
}

/// The alert object (Alertmanager API v2 shape; webhooks get it with a `status`).
pub fn alert_json(a: &AlertInfo, config: &AlertsConfig, now: Millis, ends_at: Millis) -> Value {
    let breached = a.level >= 100;
    let link = format!(
        "{}/v1/tickets/{}",
        config.external_url.trim_end_matches('/'),
        a.ticket_id
    );
    let mut labels = serde_json::Map::new();
    let mut put = |k: &str, v: &str| {
        labels.insert(k.into(), Value::String(v.into()));
    };
    put(
        "alertname",
        if breached {
            "DeskwatchSlaBreached"
        } else {
            "DeskwatchSlaAtRisk"
        },
    );
    put(
        "severity",
        match a.level {
            100.. => "critical",
            90..=99 => "warning",
            _ => "info",
        },
    );
    put("ticket_id", &a.ticket_id);
    put("tenant", a.tenant.as_deref().unwrap_or(""));
    put("group", a.group.as_deref().unwrap_or(""));
    put("priority", a.priority);
    put("clock", a.clock.as_str());
    put("level", &a.level.to_string());
    let time_left = a.deadline.map(|d| d - now);
    let summary = if breached {
        format!(
            "{} {} SLA breached ({}, policy {})",
            a.ticket_id,
            a.clock.as_str().replace('_', " "),
            a.priority,
            a.policy
        )
    } else {
        format!(
            "{} {} at {}% of its SLA target ({}, policy {})",
            a.ticket_id,
            a.clock.as_str().replace('_', " "),
            a.level,
            a.priority,
            a.policy
        )
    };
    json!({
        "labels": labels,
        "annotations": {
            "summary": summary,
            "title": a.title,
            "deadline": a.deadline.map(rfc3339).unwrap_or_default(),
            "time_left": time_left.map(human).unwrap_or_default(),
            "link": link,
        },
        "startsAt": rfc3339(a.since.min(now)),
        "endsAt": rfc3339(ends_at),
        "generatorURL": link,
    })
}

impl Dispatcher {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Batch>, closing: CancellationToken) {
        let period = Duration::from_secs(self.config.resend_seconds);
        let mut resend = tokio::time::interval(period);
        resend.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = closing.cancelled() => {
                    // Take what the projection sent before it stopped, then stop taking more.
                    rx.close();
                    let now = Utc::now().timestamp_millis();
                    let mut out = Vec::new();
                    while let Ok((p, more)) = rx.try_recv() {
                        for u in more {
                            self.apply(u, p, now, &mut out);
                        }
                    }
                    self.push(out);
                    break;
                }
                updates = rx.recv() => {
                    let Some((p, updates)) = updates else { break };
                    let now = Utc::now().timestamp_millis();
                    let mut out = Vec::new();
                    for u in updates {
                        self.apply(u, p, now, &mut out);
                    }
                    // Drain what else is waiting into the same batch.
                    while let Ok((p, more)) = rx.try_recv() {
                        for u in more {
                            self.apply(u, p, now, &mut out);
                        }
                    }
                    self.push(out);
                }
                _ = resend.tick() => {
                    let now = Utc::now().timestamp_millis();
                    let ends = now + 4 * period.as_millis() as i64;
                    let mut out: Out = self
                        .active
                        .values()
                        .map(|(a, p)| (alert_json(a, &self.config, now, ends), *p))
                        .collect();
                    out.extend(self.problems.values().map(|p| (problem_json(p, &self.config, now, ends), None)));
                    self.push(out);
                }
            }
            self.metrics
                .alerts_active
                .set((self.active.len() + self.problems.len()) as i64);
        }
    }

    fn apply(&mut self, update: AlertUpdate, from: Option<u32>, now: Millis, out: &mut Out) {
        let ends = now + 4 * (self.config.resend_seconds as i64) * 1000;
        match update {
            AlertUpdate::Fire(info) => {
                let key = (info.ticket_id.clone(), info.clock);
                if let Some((old, p)) = self.active.get(&key) {
                    if old.level == info.level {
                        return;
                    }
                    out.push((alert_json(old, &self.config, now, now), *p));
                }
                out.push((alert_json(&info, &self.config, now, ends), from));
                self.active.insert(key, (info, from));
            }
            AlertUpdate::Clear { ticket_id, clock } => {
                if let Some((old, p)) = self.active.remove(&(ticket_id, clock)) {
                    out.push((alert_json(&old, &self.config, now, now), p));
                }
            }
            AlertUpdate::Forget { ticket_id, clock } => {
                self.active.remove(&(ticket_id, clock));
            }
            AlertUpdate::Problem(p) => {
                // New: sent now. Known: updated, and sent again with the next resend.
                if !self.problems.contains_key(&p.fingerprint) {
                    out.push((problem_json(&p, &self.config, now, ends), None));
                }
                self.problems.insert(p.fingerprint.clone(), p);
            }
            AlertUpdate::ProblemEnded { fingerprint } => {
                if let Some(old) = self.problems.remove(&fingerprint) {
                    out.push((problem_json(&old, &self.config, now, now), None));
                }
            }
        }
    }

    /// Queues `alerts` for every Alertmanager, and for the webhooks those of the partitions
    /// this instance leads (all of them without an election).
    fn push(&self, alerts: Out) {
        if alerts.is_empty() {
            return;
        }
        // Without an election every receiver gets the same list; with one, webhooks get the
        // alerts of the partitions this instance leads.
        let led: Option<Vec<Value>> = self.leader.get().map(|l| {
            alerts
                .iter()
                .filter(|(_, p)| l.leads(p.unwrap_or(0)))
                .map(|(a, _)| a.clone())
                .collect()
        });
        let all: Vec<Value> = alerts.into_iter().map(|(a, _)| a).collect();
        for r in &self.receivers {
            let alerts = match &led {
                Some(led) if !r.is_alertmanager() => led,
                _ => &all,
            };
            if !alerts.is_empty() {
                r.push(alerts, self.config.queue_limit, &self.metrics);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sla::ClockKind;

    fn config() -> AlertsConfig {
        AlertsConfig {
            alertmanager: vec![],
            webhooks: vec![],
            resend_seconds: 60,
            external_url: "http://desk.example/".into(),
            queue_limit: 10,
            timeout_seconds: 5,
            shutdown_grace_seconds: 5,
        }
    }

    fn info(level: u8) -> AlertInfo {
        AlertInfo {
            ticket_id: "INC1".into(),
            tenant: Some("acme".into()),
            group: Some("service-desk".into()),
            priority: "P2",
            clock: ClockKind::Resolution,
            level,
            title: "VPN down".into(),
            policy: "P2".into(),
            deadline: Some(10 * 60_000),
            since: 0,
        }
    }

    #[test]
    fn alert_has_stable_labels_and_useful_annotations() {
        let a = alert_json(&info(100), &config(), 60_000, 300_000);
        assert_eq!(a["labels"]["alertname"], "DeskwatchSlaBreached");
        assert_eq!(a["labels"]["severity"], "critical");
        assert_eq!(a["labels"]["ticket_id"], "INC1");
        assert_eq!(a["labels"]["clock"], "resolution");
        assert_eq!(a["labels"]["level"], "100");
        assert_eq!(a["annotations"]["time_left"], "9m0s");
        assert_eq!(
            a["annotations"]["link"],
            "http://desk.example/v1/tickets/INC1"
        );
        let w = alert_json(&info(75), &config(), 0, 1);
        assert_eq!(w["labels"]["alertname"], "DeskwatchSlaAtRisk");
        assert_eq!(w["labels"]["severity"], "info");
        // Labels do not depend on time.
        assert_eq!(
            alert_json(&info(75), &config(), 5, 6)["labels"],
            w["labels"]
        );
    }

    #[test]
    fn level_change_resolves_the_old_level_and_clear_resolves_all() {
        let metrics = Metrics::new().unwrap();
        let mut d = Dispatcher {
            active: HashMap::new(),
            problems: HashMap::new(),
            receivers: vec![],
            config: config(),
            metrics,
            leader: Arc::default(),
        };
        let mut out = Vec::new();
        d.apply(AlertUpdate::Fire(info(50)), None, 1000, &mut out);
        assert_eq!(out.len(), 1);
        d.apply(AlertUpdate::Fire(info(50)), None, 2000, &mut out);
        assert_eq!(out.len(), 1, "same level again sends nothing");
        d.apply(AlertUpdate::Fire(info(100)), None, 3000, &mut out);
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].0["labels"]["level"], "50");
        assert_eq!(out[1].0["endsAt"], rfc3339(3000), "old level resolved");
        assert_eq!(out[2].0["labels"]["level"], "100");
        d.apply(
            AlertUpdate::Clear {
                ticket_id: "INC1".into(),
                clock: ClockKind::Resolution,
            },
            None,
            4000,
            &mut out,
        );
        assert_eq!(out.len(), 4);
        assert_eq!(out[3].0["endsAt"], rfc3339(4000));
        assert!(d.active.is_empty());
    }

    #[test]
    fn a_problem_candidate_fires_once_and_ends() {
        let mut d = Dispatcher {
            active: HashMap::new(),
            problems: HashMap::new(),
            receivers: vec![],
            config: config(),
            metrics: Metrics::new().unwrap(),
            leader: Arc::default(),
        };
        let problem = |tickets| ProblemAlert {
            fingerprint: "f1".into(),
            label: "scanner on floor <num> sends blank pdf by e mail".into(),
            cluster_id: "c1".into(),
            tenant: "acme".into(),
            category: "hardware".into(),
            configuration_item: "MFP-PAR-03".into(),
            tickets,
            spike_score: 5.2,
            window: "7d".into(),
            samples: vec!["INC9".into(), "INC8".into()],
            since: 1000,
        };
        let mut out = Vec::new();
        d.apply(AlertUpdate::Problem(problem(6)), None, 1000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0["labels"]["alertname"], "DeskwatchRecurringProblem");
        assert_eq!(out[0].0["labels"]["configuration_item"], "MFP-PAR-03");
        assert_eq!(
            out[0].0["annotations"]["summary"],
            "6 tickets of \"scanner on floor <num> sends blank pdf by e mail\" on MFP-PAR-03 \
             within 7d: a problem-record candidate"
        );
        d.apply(AlertUpdate::Problem(problem(8)), None, 2000, &mut out);
        assert_eq!(
            out.len(),
            1,
            "a known candidate is updated, not sent again at once"
        );
        assert_eq!(d.problems["f1"].tickets, 8);
        d.apply(
            AlertUpdate::ProblemEnded {
                fingerprint: "f1".into(),
            },
            None,
            3000,
            &mut out,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].0["endsAt"], rfc3339(3000));
        assert!(d.problems.is_empty());
    }
}
