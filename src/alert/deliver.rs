//! One receiver's queue and delivery task.
//!
//! The queue keeps the newest version of each alert (an alert is its label set): a resend or a
//! resolution replaces what was still waiting, so a receiver that comes back after an outage
//! gets each alert once, in its latest state. Past `queue-limit` the oldest alerts are dropped,
//! logged and counted.
//!
//! Delivery sends up to [`BATCH`] alerts a request:
//! - success (2xx): exactly the alerts sent leave the queue (by sequence number, so alerts
//!   dropped or replaced meanwhile are never counted as sent);
//! - 5xx, 408, 429, a timeout or a connection error: the same alerts are retried with
//!   exponential backoff (1 s doubling to 60 s, with jitter; `Retry-After` is honoured);
//! - any other 4xx: the receiver refuses something in the batch. The batch is halved until the
//!   refused alert is found alone; only that one is dropped, logged with the receiver's answer
//!   and counted in `deskwatch_alerts_rejected_total{receiver}`; the rest is delivered.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Metrics;

/// Most alerts in one request.
pub const BATCH: usize = 1000;
/// First retry delay.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// Longest retry delay.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// A receiver: where alerts go and what waits for it.
#[derive(Debug)]
pub struct Receiver {
    /// `alertmanager-N` or `webhook-N` (the metrics' `receiver` label).
    pub name: String,
    url: String,
    alertmanager: bool,
    queue: Mutex<Queue>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Queue {
    /// (sequence number, identity, alert), oldest first.
    items: VecDeque<(u64, String, Value)>,
    /// The newest sequence number of each identity; older entries are stale.
    latest: HashMap<String, u64>,
    next: u64,
}

impl Queue {
    fn live(&self) -> usize {
        self.latest.len()
    }

    /// Drops stale entries from the front.
    fn trim_front(&mut self) {
        while let Some((seq, id, _)) = self.items.front() {
            if self.latest.get(id) == Some(seq) {
                break;
            }
            self.items.pop_front();
        }
    }

    /// Up to `n` live alerts from the front, with their sequence numbers.
    fn front(&mut self, n: usize) -> Vec<(u64, Value)> {
        self.trim_front();
        self.items
            .iter()
            .filter(|(seq, id, _)| self.latest.get(id) == Some(seq))
            .take(n)
            .map(|(seq, _, v)| (*seq, v.clone()))
            .collect()
    }

    /// Removes the entries with these sequence numbers (if they are still there and current).
    fn remove(&mut self, seqs: &[u64]) -> usize {
        let mut removed = 0;
        for (seq, id, _) in &self.items {
            if seqs.binary_search(seq).is_ok() && self.latest.get(id) == Some(seq) {
                self.latest.remove(id);
                removed += 1;
            }
        }
        self.trim_front();
        removed
    }
}

/// The identity of an alert: its labels (the `labels` object, keys sorted).
fn identity(alert: &Value) -> String {
    alert
        .get("labels")
        .map_or_else(|| alert.to_string(), |l| l.to_string())
}

impl Receiver {
    /// A receiver posting to `url` (the Alertmanager v2 alerts endpoint when `alertmanager`).
    pub fn new(name: String, url: String, alertmanager: bool) -> Receiver {
        Receiver {
            name,
            url,
            alertmanager,
            queue: Mutex::new(Queue::default()),
            notify: Notify::new(),
        }
    }

    /// Whether this is an Alertmanager (which deduplicates what replicas send).
    pub fn is_alertmanager(&self) -> bool {
        self.alertmanager
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `alerts` (newer versions replace waiting ones); drops the oldest past `limit`.
    pub fn push(&self, alerts: &[Value], limit: usize, metrics: &Metrics) {
        let mut q = self.queue();
        for a in alerts {
            let seq = q.next;
            q.next += 1;
            let id = identity(a);
            q.latest.insert(id.clone(), seq);
            q.items.push_back((seq, id, a.clone()));
        }
        q.trim_front();
        let mut dropped = 0u64;
        while q.live() > limit {
            if let Some((seq, id, _)) = q.items.pop_front()
                && q.latest.get(&id) == Some(&seq)
            {
                q.latest.remove(&id);
                dropped += 1;
            }
            q.trim_front();
        }
        // Compact when stale entries dominate (many replacements of waiting alerts).
        if q.items.len() > 2 * q.live() + 1024 {
            let Queue { items, latest, .. } = &mut *q;
            items.retain(|(seq, id, _)| latest.get(id) == Some(seq));
        }
        let live = q.live();
        drop(q);
        if dropped > 0 {
            metrics
                .alerts_dropped
                .with_label_values(&[&self.name])
                .inc_by(dropped);
            tracing::warn!(
                receiver = %self.name,
                dropped,
                limit,
                "alert queue full: the oldest waiting alerts were dropped (sla.alerts.queue-limit)"
            );
        }
        metrics
            .alerts_queued
            .with_label_values(&[&self.name])
            .set(live as i64);
        self.notify.notify_one();
    }

    /// Removes the alerts a request carried (delivered or refused) and updates the gauge.
    fn settle(&self, seqs: &[u64], metrics: &Metrics) {
        let left = {
            let mut q = self.queue();
            q.remove(seqs);
            q.live()
        };
        metrics
            .alerts_queued
            .with_label_values(&[&self.name])
            .set(left as i64);
    }

    /// Alerts waiting.
    pub fn waiting(&self) -> usize {
        self.queue().live()
    }

    fn body(&self, batch: &[(u64, Value)]) -> String {
        if self.alertmanager {
            return Value::Array(batch.iter().map(|(_, a)| a.clone()).collect()).to_string();
        }
        let now = Utc::now().timestamp_millis();
        let with_status: Vec<Value> = batch
            .iter()
            .map(|(_, a)| {
                let mut a = a.clone();
                let ends = a["endsAt"]
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                    .map_or(i64::MAX, |d| d.timestamp_millis());
                a["status"] = Value::from(if ends <= now { "resolved" } else { "firing" });
                a
            })
            .collect();
        json!({ "receiver": "deskwatch", "version": "1", "alerts": with_status }).to_string()
    }
}

/// What became of one request.
#[derive(Debug)]
enum Sent {
    Accepted,
    /// Try the same alerts again later (at least this long, when the receiver said so).
    Retry(Option<Duration>),
    /// The receiver refuses the content: status and its answer.
    Refused(u16, String),
}

async fn send(r: &Receiver, client: &reqwest::Client, body: String) -> Sent {
    let result = client
        .post(&r.url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await;
    match result {
        Ok(resp) if resp.status().is_success() => Sent::Accepted,
        Ok(resp) => {
            let status = resp.status();
            let after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(300)));
            let answer: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(500)
                .collect();
            let code = status.as_u16();
            if status.is_server_error() || code == 408 || code == 429 {
                tracing::warn!(receiver = %r.name, %status, %answer, "alert delivery failed; retrying");
                Sent::Retry(after)
            } else {
                Sent::Refused(code, answer)
            }
        }
        Err(e) => {
            tracing::warn!(receiver = %r.name, error = %e, "alert delivery failed; retrying");
            Sent::Retry(None)
        }
    }
}

/// `base` scaled by a factor in [0.5, 1): retries of many instances do not fall in step.
fn jitter(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    base.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0)
}

/// Delivers the receiver's queue until `closing`; then flushes for at most `grace`.
pub async fn run(
    r: std::sync::Arc<Receiver>,
    client: reqwest::Client,
    metrics: Metrics,
    closing: CancellationToken,
    grace: Duration,
) {
    let mut pace = Pace {
        backoff: BACKOFF_MIN,
        size: BATCH,
    };
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        if deadline.is_none() && closing.is_cancelled() {
            deadline = Some(tokio::time::Instant::now() + grace);
        }
        let batch = r.queue().front(pace.size);
        if batch.is_empty() {
            if deadline.is_some() {
                return;
            }
            tokio::select! {
                () = r.notify.notified() => {}
                () = closing.cancelled() => {}
            }
            continue;
        }
        let started = std::time::Instant::now();
        let sent = match deadline {
            Some(d) => match tokio::time::timeout_at(d, send(&r, &client, r.body(&batch))).await {
                Ok(s) => s,
                Err(_) => break,
            },
            None => send(&r, &client, r.body(&batch)).await,
        };
        let Some(wait) = pace.settle(&r, &metrics, &batch, sent, started) else {
            continue;
        };
        let until = tokio::time::Instant::now() + wait;
        match deadline {
            Some(d) if until >= d => break,
            Some(_) => tokio::time::sleep_until(until).await,
            None => {
                tokio::select! {
                    () = tokio::time::sleep_until(until) => {}
                    // At shutdown, try once more at once, then within the grace period.
                    () = closing.cancelled() => {}
                }
            }
        }
    }
    let left = r.waiting();
    if left > 0 {
        metrics
            .alerts_dropped
            .with_label_values(&[r.name.as_str()])
            .inc_by(left as u64);
        tracing::error!(
            receiver = %r.name,
            left,
            "alerts not delivered within the shutdown grace period (sla.alerts.shutdown-grace-seconds); they are resent after the restart while still active"
        );
    }
}

/// How a receiver is being sent to: the next retry's backoff and the batch size.
struct Pace {
    backoff: Duration,
    size: usize,
}

impl Pace {
    /// Acts on the receiver's answer to `batch` (settles what it accepted or refused for good,
    /// halves the batch to find a refused alert); returns how long to wait before retrying.
    fn settle(
        &mut self,
        r: &Receiver,
        metrics: &Metrics,
        batch: &[(u64, serde_json::Value)],
        sent: Sent,
        started: std::time::Instant,
    ) -> Option<Duration> {
        let name = [r.name.as_str()];
        let seqs: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
        match sent {
            Sent::Accepted => {
                metrics
                    .alert_delivery_seconds
                    .observe(started.elapsed().as_secs_f64());
                metrics
                    .alerts_sent
                    .with_label_values(&name)
                    .inc_by(batch.len() as u64);
                r.settle(&seqs, metrics);
                self.backoff = BACKOFF_MIN;
                // After a refused batch was split, grow back towards full batches.
                self.size = (self.size * 2).min(BATCH);
                None
            }
            Sent::Refused(status, answer) if batch.len() == 1 => {
                let (_, alert) = &batch[0];
                let labels = alert.get("labels").cloned().unwrap_or_default();
                tracing::error!(
                    receiver = %r.name,
                    status,
                    answer = %answer,
                    %labels,
                    "the receiver refuses this alert; it is dropped (deskwatch_alerts_rejected_total)"
                );
                metrics.alerts_rejected.with_label_values(&name).inc();
                r.settle(&seqs, metrics);
                self.size = BATCH;
                None
            }
            Sent::Refused(status, answer) => {
                tracing::warn!(
                    receiver = %r.name,
                    status,
                    answer = %answer,
                    alerts = batch.len(),
                    "the receiver refuses a batch; splitting it to find the refused alert"
                );
                self.size = batch.len() / 2;
                None
            }
            Sent::Retry(after) => {
                metrics
                    .alert_delivery_failures
                    .with_label_values(&name)
                    .inc();
                let wait = jitter(self.backoff).max(after.unwrap_or_default());
                self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
                Some(wait)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(ticket: &str, level: u8, ends: &str) -> Value {
        json!({"labels": {"ticket_id": ticket, "level": level.to_string()}, "endsAt": ends})
    }

    #[test]
    fn newer_versions_replace_waiting_ones_and_only_what_was_sent_leaves() {
        let metrics = Metrics::new().unwrap();
        let r = Receiver::new("t".into(), "http://127.0.0.1:1".into(), true);
        r.push(&[alert("A", 50, "1"), alert("B", 50, "1")], 10, &metrics);
        let batch = r.queue().front(10);
        assert_eq!(batch.len(), 2);
        // While the batch is on its way, A is resolved: the new version stays queued.
        r.push(&[alert("A", 50, "0")], 10, &metrics);
        let seqs: Vec<u64> = batch.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            r.queue().remove(&seqs),
            1,
            "only B's sent version was current"
        );
        let left = r.queue().front(10);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].1["endsAt"], "0");
    }

    #[test]
    fn the_oldest_are_dropped_past_the_limit_and_counted() {
        let metrics = Metrics::new().unwrap();
        let r = Receiver::new("t".into(), "http://127.0.0.1:1".into(), true);
        let alerts: Vec<Value> = (0..5).map(|i| alert(&format!("T{i}"), 50, "1")).collect();
        r.push(&alerts, 3, &metrics);
        assert_eq!(r.waiting(), 3);
        let front = r.queue().front(10);
        assert_eq!(front[0].1["labels"]["ticket_id"], "T2");
        assert_eq!(metrics.alerts_dropped.with_label_values(&["t"]).get(), 2);
    }

    /// A receiver that refuses (400) any batch holding the alert of ticket `BAD`, answers 503
    /// to the first request, and records every alert it accepted.
    async fn picky_receiver() -> (String, std::sync::Arc<Mutex<Vec<String>>>) {
        use axum::routing::post;
        let accepted: std::sync::Arc<Mutex<Vec<String>>> = Default::default();
        let first = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let a = accepted.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |body: String| {
                let (a, first) = (a.clone(), first.clone());
                async move {
                    if first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "later");
                    }
                    let v: Value = serde_json::from_str(&body).unwrap();
                    let ids: Vec<String> = v
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x["labels"]["ticket_id"].as_str().unwrap().to_string())
                        .collect();
                    if ids.iter().any(|t| t == "BAD") {
                        return (axum::http::StatusCode::BAD_REQUEST, "invalid label value");
                    }
                    a.lock().unwrap().extend(ids);
                    (axum::http::StatusCode::OK, "")
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/hook"), accepted)
    }

    #[tokio::test]
    async fn a_refused_alert_is_found_alone_and_dropped_and_the_rest_is_delivered() {
        let (url, accepted) = picky_receiver().await;
        let metrics = Metrics::new().unwrap();
        let r = std::sync::Arc::new(Receiver::new("picky".into(), url, true));
        let mut alerts: Vec<Value> = (0..9).map(|i| alert(&format!("T{i}"), 50, "1")).collect();
        alerts.insert(4, alert("BAD", 50, "1"));
        r.push(&alerts, 100, &metrics);
        let drained = CancellationToken::new();
        let task = tokio::spawn(run(
            r.clone(),
            reqwest::Client::new(),
            metrics.clone(),
            drained.clone(),
            Duration::from_secs(5),
        ));
        // Closing at once: the queue still gets its grace period, the 503 is retried.
        drained.cancel();
        task.await.unwrap();
        let mut got = accepted.lock().unwrap().clone();
        got.sort();
        let want: Vec<String> = (0..9).map(|i| format!("T{i}")).collect();
        assert_eq!(got, want, "every alert but the refused one, each once");
        assert_eq!(
            metrics.alerts_rejected.with_label_values(&["picky"]).get(),
            1
        );
        assert_eq!(metrics.alerts_sent.with_label_values(&["picky"]).get(), 9);
        assert_eq!(
            metrics
                .alert_delivery_failures
                .with_label_values(&["picky"])
                .get(),
            1
        );
        assert_eq!(
            metrics.alerts_dropped.with_label_values(&["picky"]).get(),
            0
        );
        assert_eq!(r.waiting(), 0);
    }
}
