//! `deskwatch bench --sla`: what the SLA engine costs and how late its alerts leave.
//!
//! 1. Cost per event: the same simulated events applied to a projection without SLA rules
//!    (the reference), with the default 24×7 policies, and with office-hours calendars
//!    (Paris, lunch break, holidays), in one run.
//! 2. Alert delay: `--clocks` open clocks (default 1,000,000), of which `--due` reach their
//!    deadline during the next ~20 s while no event arrives. The projection is driven like the
//!    service's writer (a tick every 100 ms) and alerts go through the real dispatcher to a
//!    local HTTP webhook; the delay is the webhook's arrival time minus the breach instant.
//!    The reference is the tick interval, the delay a timer of that period would add.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deskwatch::clock::{SLA_TICK, now_ms, sla_tick};
use deskwatch::event::{Actor, Channel, Created, Payload, Priority, Role, TicketEvent};
use deskwatch::projection::Projection;
use deskwatch::simulate::{Params, Simulator};
use deskwatch::sla::Rules;
use deskwatch::sla::rules::AlertsConfig;
use deskwatch::telemetry::Metrics;

fn rules(text: &str) -> anyhow::Result<Arc<Rules>> {
    Ok(Arc::new(Rules::compile(
        &deskwatch::config::sla_from_toml(text)?,
    )?))
}

fn office_rules() -> anyhow::Result<Arc<Rules>> {
    rules(
        r#"
pause-statuses = ["pending_customer", "pending_vendor"]
warnings = [50, 75, 90]
[calendars.office]
time-zone = "Europe/Paris"
hours = { weekdays = ["08:30-12:30", "13:30-18:00"] }
holidays = ["2026-01-01", "2026-04-06", "2026-05-01", "2026-05-08", "2026-05-14", "2026-05-25", "2026-07-14", "2026-08-15", "2026-11-01", "2026-11-11", "2026-12-25"]
[[policies]]
name = "p1"
match = { priority = ["P1"] }
targets = { time-to-own = { within = "10m", calendar = "office" }, first-response = { within = "15m", calendar = "office" }, next-reply = { within = "1h", calendar = "office" }, resolution = { within = "4h", calendar = "office" } }
[[policies]]
name = "other"
targets = { time-to-own = { within = "1h", calendar = "office" }, first-response = { within = "4h", calendar = "office" }, next-reply = { within = "4h", calendar = "office" }, resolution = { within = "24h", calendar = "office" } }
"#,
    )
}

fn apply_all(events: &[TicketEvent], projection: &mut Projection) -> f64 {
    let started = Instant::now();
    for (i, e) in events.iter().enumerate() {
        projection.apply(e, i as u64);
    }
    started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Runs both parts.
pub fn run(events: u64, clocks: u64, due: u64) -> anyhow::Result<()> {
    cost_per_event(events)?;
    alert_delay(clocks, due)
}

/// Part 1: events per second with and without the SLA engine.
fn cost_per_event(events: u64) -> anyhow::Result<()> {
    let default_rules = deskwatch::config::Config::load(None)?.sla_rules();
    let tickets = (events as f64 / 8.45).ceil() as u64;
    let stream: Vec<TicketEvent> = Simulator::new(Params {
        tickets,
        seed: 7,
        ..Params::default()
    })
    .collect();
    let n = stream.len() as f64;
    println!(
        "SLA engine cost per event ({} events, best of 2)",
        stream.len()
    );
    let best = |make: &dyn Fn() -> Projection| -> f64 {
        (0..2)
            .map(|_| apply_all(&stream, &mut make()))
            .fold(f64::MAX, f64::min)
    };
    let without = best(&|| Projection::new());
    let with_default = best(&|| Projection::with_rules(default_rules.clone()));
    let office = office_rules()?;
    let with_office = best(&|| Projection::with_rules(office.clone()));
    println!(
        "  projection without SLA (reference) {:>10.0} events/s",
        n / without
    );
    println!(
        "  with default 24x7 policies         {:>10.0} events/s   {:.2} of the reference",
        n / with_default,
        without / with_default
    );
    println!(
        "  with 4 clocks on office calendars  {:>10.0} events/s   {:.2} of the reference",
        n / with_office,
        without / with_office
    );
    Ok(())
}

/// Part 2: delay from deadline to webhook with `clocks` open clocks, `due` of them due soon.
fn alert_delay(clocks: u64, due: u64) -> anyhow::Result<()> {
    let bench_rules = rules(
        r#"
pause-statuses = ["pending_customer"]
warnings = []
[[policies]]
name = "bench"
targets = { resolution = { within = "1h", calendar = "24x7" } }
"#,
    )?;
    let hour = 3_600_000i64;
    let window_ms = 20_000i64;
    let lead_ms = 5_000i64;
    let mut projection = Projection::with_rules(bench_rules);
    let started = Instant::now();
    let base = now_ms();
    // Deadline = created + 1 h. `due` clocks are due between base+lead and base+lead+window;
    // the rest in 30–60 minutes. Every creation is in the past, so no event moves time ahead.
    for i in 0..clocks {
        let created = if i < due {
            base + lead_ms + (i as i64 * window_ms) / due.max(1) as i64 - hour
        } else {
            base - (i as i64 % (hour / 2))
        };
        projection.apply(&bench_ticket(i, created), i);
    }
    let setup = started.elapsed().as_secs_f64();
    projection.sla_mut().set_recording(true);
    println!(
        "Alert delay: {} open clocks ({} due in the next {} s), deadline queue {} entries, set up in {:.1} s",
        clocks,
        due,
        (lead_ms + window_ms) / 1000,
        projection.sla().queue_len(),
        setup
    );
    let (delays, tick_busy) = run_ticks(&mut projection, due, lead_ms + window_ms)?;
    report_delays(&projection, clocks, due, delays, tick_busy);
    Ok(())
}

/// Ticket `i` of the alert-delay part, created at `created` (ms).
fn bench_ticket(i: u64, created: i64) -> TicketEvent {
    TicketEvent {
        event_id: format!("b{i}"),
        ticket_id: format!("B{i:08}"),
        tenant: Some("bench".into()),
        occurred_at: DateTime::<Utc>::from_timestamp_millis(created).unwrap_or_default(),
        actor: Actor {
            id: "bench".into(),
            role: Role::Requester,
        },
        payload: Payload::Created(Created {
            channel: Channel::Portal,
            priority: Some(Priority::P3),
            impact: None,
            urgency: None,
            category: "bench".into(),
            subcategory: None,
            configuration_item: None,
            service: None,
            requester: "r".into(),
            title: "bench".into(),
            description: None,
        }),
    }
}

/// Ticks the SLA engine every `SLA_TICK` until `due` breach alerts have reached a local
/// webhook (or `span_ms` + 20 s have passed). Returns the sorted delays (ms) and tick times
/// (ms).
fn run_ticks(
    projection: &mut Projection,
    due: u64,
    span_ms: i64,
) -> anyhow::Result<(Vec<i64>, Vec<f64>)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let delays: Arc<Mutex<Vec<i64>>> = Arc::default();
    let sink_addr = rt.block_on(webhook_sink(delays.clone()))?;
    let metrics = Metrics::new()?;
    let sink = {
        let _guard = rt.enter();
        deskwatch::alert::start(
            &AlertsConfig {
                alertmanager: vec![],
                webhooks: vec![format!("http://{sink_addr}/hook")],
                resend_seconds: 3600,
                external_url: "http://127.0.0.1".into(),
                queue_limit: 10_000_000,
                timeout_seconds: 10,
                shutdown_grace_seconds: 5,
            },
            metrics.clone(),
        )
    };
    let deadline = Instant::now() + Duration::from_millis((span_ms + 20_000) as u64);
    let mut tick_busy = Vec::new();
    while Instant::now() < deadline && (delays.lock().map_or(0, |d| d.len()) as u64) < due {
        let t = Instant::now();
        sla_tick(projection, &sink, &metrics);
        tick_busy.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(SLA_TICK.saturating_sub(t.elapsed()));
    }
    let mut d = delays.lock().map(|d| d.clone()).unwrap_or_default();
    d.sort_unstable();
    tick_busy.sort_by(f64::total_cmp);
    Ok((d, tick_busy))
}

fn report_delays(projection: &Projection, clocks: u64, due: u64, d: Vec<i64>, tick_busy: Vec<f64>) {
    let tick_ms = SLA_TICK.as_millis() as f64;
    println!(
        "  breach alerts received by the webhook: {} of {}",
        d.len(),
        due
    );
    println!(
        "  delay deadline → webhook: p50 {} ms, p99 {} ms, max {} ms (reference: tick {} ms; p99/tick {:.2})",
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        d.last().copied().unwrap_or(0),
        tick_ms,
        percentile(&d, 0.99) as f64 / tick_ms
    );
    println!(
        "  time of one tick with {} open clocks: p50 {:.2} ms, p99 {:.2} ms",
        clocks,
        tick_busy.get(tick_busy.len() / 2).copied().unwrap_or(0.0),
        tick_busy
            .get(tick_busy.len() * 99 / 100)
            .copied()
            .unwrap_or(0.0)
    );
    println!(
        "  SLA state: {:.0} bytes per open clock with its queue entry (whole projection: {} MiB)",
        projection.sla().heap_bytes() as f64 / clocks as f64,
        projection.heap_bytes() / (1 << 20)
    );
}

/// A webhook that records, for each firing breach alert, arrival − deadline (ms).
async fn webhook_sink(delays: Arc<Mutex<Vec<i64>>>) -> anyhow::Result<String> {
    use axum::routing::post;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let app = axum::Router::new().route(
        "/hook",
        post(move |body: axum::body::Bytes| {
            let delays = delays.clone();
            async move {
                let now = now_ms();
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                    let mut d = delays.lock().unwrap_or_else(|e| e.into_inner());
                    for a in v["alerts"].as_array().into_iter().flatten() {
                        if a["status"] == "firing"
                            && let Some(at) = a["annotations"]["deadline"]
                                .as_str()
                                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                        {
                            d.push(now - at.timestamp_millis());
                        }
                    }
                }
                "ok"
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}
