//! Time for projections, for both drivers of one (the embedded writer in [`crate::service`]
//! and the Kafka projector in [`crate::kafka::consumer`]): the wall clock, the SLA tick that
//! moves a projection's clocks to now and hands the resulting alerts over, the cadence of the
//! SLA gauges, and the step that takes a projection live once it has caught up with its log.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::alert::AlertSink;
use crate::base::Millis;
use crate::projection::Projection;
use crate::sla::alerts::AlertUpdate;
use crate::telemetry::Metrics;

/// Now, in milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How often a driver moves SLA time when no events arrive.
pub const SLA_TICK: Duration = Duration::from_millis(100);
/// How often SLA gauges are recomputed (a scan of every open clock).
pub const SLA_REPORT_EVERY: Duration = Duration::from_secs(2);

/// Takes a projection that has caught up with its log live: its clocks move to now, the
/// dispatcher learns what is active, and from then on every change is recorded as an alert
/// update. Returns the instant used.
pub fn go_live(projection: &mut Projection, alerts: &AlertSink) -> Millis {
    let now = now_ms();
    projection.sla_mut().advance(now);
    alerts.send(projection.active_alerts(now, false));
    projection.sla_mut().set_recording(true);
    now
}

/// Moves a projection's SLA time to now and hands the resulting alerts over.
pub fn sla_tick(projection: &mut Projection, alerts: &AlertSink, metrics: &Metrics) {
    let updates = projection.sla_tick(now_ms());
    if updates.is_empty() {
        return;
    }
    let mut out: Vec<AlertUpdate> = Vec::with_capacity(updates.len());
    for (u, delay) in updates {
        metrics
            .sla_alert_delay_seconds
            .observe(delay.max(0) as f64 / 1000.0);
        out.push(u);
    }
    alerts.send(out);
}

/// The beat both drivers give their projections: every [`SLA_TICK`] the clocks move to now and
/// the alerts go out; every [`SLA_REPORT_EVERY`] the SLA gauges are published for all of the
/// driver's projections together (the Kafka projector has one per owned partition).
#[derive(Debug)]
pub struct Pulse {
    last_tick: Instant,
    last_report: Instant,
}

impl Default for Pulse {
    fn default() -> Pulse {
        Pulse::new()
    }
}

impl Pulse {
    /// A pulse whose first beat is due after one tick.
    pub fn new() -> Pulse {
        let now = Instant::now();
        Pulse {
            last_tick: now,
            last_report: now,
        }
    }

    /// Whether a beat is due.
    pub fn due(&self) -> bool {
        self.last_tick.elapsed() >= SLA_TICK
    }

    /// Beats now: moves the clocks of `projections` to now, hands their alerts over and, when
    /// due, publishes their SLA gauges together.
    pub fn beat<'a>(
        &mut self,
        projections: impl IntoIterator<Item = (&'a mut Projection, &'a AlertSink)>,
        metrics: &Metrics,
    ) {
        let report = self.last_report.elapsed() >= SLA_REPORT_EVERY;
        let now = now_ms();
        let mut total = crate::sla::SlaReport::default();
        for (projection, alerts) in projections {
            sla_tick(projection, alerts, metrics);
            if report {
                total.add(&projection.sla_report(now));
            }
        }
        if report {
            metrics.publish_sla(&total);
            self.last_report = Instant::now();
        }
        self.last_tick = Instant::now();
    }
}

/// Something that keeps projections following a log: the embedded writer or the Kafka
/// projector. [`drive`] is the one loop both run.
pub trait Driver {
    /// Waits at most `wait` for work (submissions, records) and does it; `false` once it
    /// should stop.
    fn step(&mut self, wait: Duration) -> bool;
    /// Upkeep between steps: publishing, time-based checkpoints, lag and readiness.
    fn upkeep(&mut self);
    /// Gives its live projections their beat.
    fn beat(&mut self, pulse: &mut Pulse);
    /// After the last step: the final checkpoint and hand-over.
    fn finish(&mut self);
}

/// Runs `driver` until it stops: work, upkeep, and the SLA beat whenever it is due.
pub fn drive(driver: &mut impl Driver) {
    let mut pulse = Pulse::new();
    while driver.step(SLA_TICK) {
        driver.upkeep();
        if pulse.due() {
            driver.beat(&mut pulse);
        }
    }
    driver.finish();
}
