//! The cost and staffing gauges kept current in a running service: every `[cost]
//! refresh-seconds` the workload is read from the latest snapshot and the model run on a
//! blocking thread.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::MonitorError;
use crate::query::QueryEngine;
use crate::query::workload::observe;
use crate::staffing::model::{CostConfig, CostReport, StaffingReport, WhatIf, report, staffing};
use crate::telemetry::Metrics;

/// Why the cost model could not be computed this time (tried again at the next refresh).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The workload could not be read.
    #[error(transparent)]
    Read(#[from] crate::query::QueryError),
    /// The model could not staff it.
    #[error(transparent)]
    Model(#[from] crate::staffing::StaffingError),
}

/// Both reports for the snapshot `query` publishes now, without a what-if. The outer error is
/// the model's thread failing (a bug: the monitor stops the service); the inner one a workload
/// the model cannot staff or read (logged, tried again at the next refresh).
pub async fn compute(
    query: &QueryEngine,
    config: &CostConfig,
    now_ms: i64,
) -> Result<Result<(CostReport, StaffingReport), ModelError>, MonitorError> {
    let observed = match observe(query, config).await {
        Ok(o) => o,
        Err(e) => return Ok(Err(e.into())),
    };
    let config = config.clone();
    tokio::task::spawn_blocking(move || {
        Ok((
            report(&observed, &config, WhatIf::default())?,
            staffing(&observed, &config, WhatIf::default(), now_ms)?,
        ))
    })
    .await
    .map_err(|e| MonitorError::Failed {
        monitor: "cost",
        detail: e.to_string(),
    })
}

/// Sets the gauges from the two reports (channels no longer seen are removed).
pub fn publish(metrics: &Metrics, cost: &CostReport, staff: &StaffingReport) {
    let m = &cost.month;
    for (model, monthly, per) in [
        ("in_house", m.in_house, m.in_house_per_ticket),
        ("outsourced", m.outsourced, m.outsourced_per_ticket),
    ] {
        metrics
            .cost_monthly
            .with_label_values(&[model])
            .set(monthly);
        metrics.cost_per_ticket.with_label_values(&[model]).set(per);
    }
    metrics.cost_sla_credits.set(cost.sla_breach_credits + 0.0);
    metrics
        .cost_break_even_tickets
        .set(cost.break_even_tickets_per_month.unwrap_or(f64::NAN));
    metrics.staffing_required_agents.reset();
    metrics.staffing_fte.reset();
    metrics.staffing_aht_seconds.reset();
    metrics.staffing_aht_source_share.reset();
    metrics.staffing_minimum_fte.reset();
    metrics.staffing_weekly_tickets.reset();
    metrics.cost_plausibility_flags.reset();
    for f in &cost.flags {
        metrics
            .cost_plausibility_flags
            .with_label_values(&[f.check, f.subject.as_str()])
            .set(1.0);
    }
    let now = staff.hour_of_week_now as usize;
    for c in &staff.channels {
        let p = &c.plan;
        let l = [p.channel.as_str()];
        let agents_now = c.agents.get(now).copied().unwrap_or(0);
        for (source, share) in [
            ("work_logged", p.aht.work_logged),
            ("estimated", p.aht.estimated),
            ("default", p.aht.default),
        ] {
            metrics
                .staffing_aht_source_share
                .with_label_values(&[p.channel.as_str(), source])
                .set(share);
        }
        metrics
            .staffing_minimum_fte
            .with_label_values(&l)
            .set(p.minimum_fte);
        metrics
            .staffing_required_agents
            .with_label_values(&l)
            .set(i64::from(agents_now));
        metrics.staffing_fte.with_label_values(&l).set(p.fte);
        metrics
            .staffing_aht_seconds
            .with_label_values(&l)
            .set(p.aht_seconds);
        metrics
            .staffing_weekly_tickets
            .with_label_values(&l)
            .set(p.tickets_per_week);
    }
}

/// Refreshes the gauges every `refresh-seconds` until `stop`; ends with an error only when the
/// model's thread failed.
pub async fn run(
    query: QueryEngine,
    metrics: Metrics,
    config: CostConfig,
    stop: CancellationToken,
) -> Result<(), MonitorError> {
    let every = Duration::from_secs(config.refresh_seconds.max(1));
    loop {
        let started = Instant::now();
        let now = crate::clock::now_ms();
        let mut empty = true;
        match compute(&query, &config, now).await? {
            Ok((cost, staff)) => {
                metrics
                    .cost_model_seconds
                    .set(started.elapsed().as_secs_f64());
                empty = cost.tickets_per_week == 0.0;
                publish(&metrics, &cost, &staff);
            }
            Err(e) => tracing::warn!(error = %e, "the cost model could not be computed"),
        }
        // Until there is a workload (a fresh start, a demo loading its history), look again
        // soon rather than a whole refresh period later.
        let wait = if empty {
            every.min(Duration::from_secs(2))
        } else {
            every
        };
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
