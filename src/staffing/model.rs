//! The cost model of `[cost]`, fed by the workload deskwatch observed: the hour-of-week
//! arrivals (`workload`), the average handle time (`handle_times`) and the SLA breaches
//! (`sla_clocks`). It gives this month in-house and outsourced, per ticket, the break-even
//! volume, the cost of the breaches, and the sensitivity to volume; what-ifs change the volume
//! or the service target.

use serde::{Deserialize, Serialize};

use super::cost::{InHouse, Msp, Pricing, profile};
use super::plan::{Comparison, Target, WEEKS_PER_MONTH, break_even, compare};
use crate::query::{QueryEngine, to_json_rows};

/// `[cost]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CostConfig {
    /// Built-in salary profile (see the README), used unless `annual-salary` is above 0.
    pub salary_profile: String,
    /// Agent annual salary, dollars (0: the profile's).
    pub annual_salary: f64,
    /// Employer cost per salary dollar.
    pub load_factor: f64,
    /// Tools and licences per seat and month.
    pub tools_per_seat_month: f64,
    /// Agents per team lead.
    pub agents_per_manager: f64,
    /// Team lead annual salary.
    pub manager_annual_salary: f64,
    /// Share of paid time off the queue.
    pub shrinkage: f64,
    /// Highest occupancy.
    pub max_occupancy: f64,
    /// Paid hours per FTE and week.
    pub hours_per_fte_week: f64,
    /// Answer within this many seconds…
    pub answer_within_seconds: f64,
    /// …for this share of tickets.
    pub service_level: f64,
    /// Handle time when none was observed, seconds.
    pub default_aht_seconds: f64,
    /// The provider's pricing: `ticket`, `user-month` or `handle-minute`.
    pub msp_pricing: String,
    /// Its price in dollars (per ticket, per user and month, or per minute).
    pub msp_price: f64,
    /// Users supported (for `user-month`).
    pub msp_users: f64,
    /// Credit per breached SLA clock, dollars.
    pub msp_credit_per_breach: f64,
    /// Credits cap, share of the monthly fee.
    pub msp_credit_cap: f64,
}

impl CostConfig {
    /// Checks values; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, p: &str| Err((format!("cost.{k}"), p.to_string()));
        if self.annual_salary <= 0.0 && profile(&self.salary_profile).is_none() {
            return bad(
                "salary-profile",
                "unknown profile (and no annual-salary given)",
            );
        }
        if !(1.0..=3.0).contains(&self.load_factor) {
            return bad("load-factor", "must be within 1–3");
        }
        if !(0.0..1.0).contains(&self.shrinkage) {
            return bad(
                "shrinkage",
                "must be within 0 (inclusive) and 1 (exclusive)",
            );
        }
        if !(self.max_occupancy > 0.0 && self.max_occupancy <= 1.0) {
            return bad("max-occupancy", "must be within (0, 1]");
        }
        if !(0.0..1.0).contains(&self.service_level) {
            return bad(
                "service-level",
                "must be within 0 (inclusive) and 1 (exclusive)",
            );
        }
        if self.hours_per_fte_week <= 0.0 || self.default_aht_seconds <= 0.0 {
            return bad(
                "hours-per-fte-week",
                "hours and handle times must be above 0",
            );
        }
        if self.pricing().is_err() {
            return bad("msp-pricing", "must be ticket, user-month or handle-minute");
        }
        if !(0.0..=1.0).contains(&self.msp_credit_cap) {
            return bad("msp-credit-cap", "must be within 0–1");
        }
        Ok(())
    }

    fn pricing(&self) -> Result<Pricing, String> {
        match self.msp_pricing.as_str() {
            "ticket" => Ok(Pricing::Ticket {
                price: self.msp_price,
            }),
            "user-month" => Ok(Pricing::UserMonth {
                users: self.msp_users,
                price: self.msp_price,
            }),
            "handle-minute" => Ok(Pricing::HandleMinute {
                price: self.msp_price,
            }),
            other => Err(format!("unknown pricing `{other}`")),
        }
    }

    /// The in-house parameters.
    pub fn in_house(&self) -> InHouse {
        InHouse {
            annual_salary: if self.annual_salary > 0.0 {
                self.annual_salary
            } else {
                profile(&self.salary_profile).map_or(0.0, |p| p.annual)
            },
            load_factor: self.load_factor,
            tools_per_seat_month: self.tools_per_seat_month,
            agents_per_manager: self.agents_per_manager,
            manager_annual_salary: self.manager_annual_salary,
        }
    }

    /// The provider's parameters.
    pub fn msp(&self) -> Result<Msp, String> {
        Ok(Msp {
            pricing: self.pricing()?,
            credit_per_breach: self.msp_credit_per_breach,
            credit_cap: self.msp_credit_cap,
        })
    }
}

/// What the events say about the workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observed {
    /// Mean arrivals per hour of the week (168, Monday 00:00 UTC first).
    pub arrivals: Vec<f64>,
    /// Tickets per week on average.
    pub tickets_per_week: f64,
    /// Average handle time, seconds (the configured default when nothing was observed).
    pub aht_seconds: f64,
    /// Breached SLA clocks per ticket.
    pub breaches_per_ticket: f64,
}

/// Reads the workload from the published snapshot.
pub async fn observe(query: &QueryEngine, default_aht_seconds: f64) -> Result<Observed, String> {
    let rows = |sql: &'static str| async move {
        query
            .sql(sql)
            .await
            .map_err(|e| e.to_string())
            .and_then(|b| to_json_rows(&b).map_err(|e| e.to_string()))
    };
    let mut arrivals = vec![0.0; 168];
    for r in
        rows("select hour_of_week, sum(arrivals_per_hour) as a from workload group by 1").await?
    {
        let h = r["hour_of_week"].as_u64().unwrap_or(0) as usize;
        if h < 168 {
            arrivals[h] = r["a"].as_f64().unwrap_or(0.0);
        }
    }
    let aht = rows(
        "select sum(aht_minutes * tickets) / sum(tickets) as m from handle_times where aht_minutes is not null",
    )
    .await?;
    let aht_seconds = aht
        .first()
        .and_then(|r| r["m"].as_f64())
        .filter(|m| *m > 0.0)
        .map_or(default_aht_seconds, |m| m * 60.0);
    let b = rows(
        "select (select count(*) from sla_clocks where breached_at is not null) as b, \
                (select count(*) from tickets) as t",
    )
    .await?;
    let (breaches, tickets) = b.first().map_or((0.0, 0.0), |r| {
        (
            r["b"].as_f64().unwrap_or(0.0),
            r["t"].as_f64().unwrap_or(0.0),
        )
    });
    Ok(Observed {
        tickets_per_week: arrivals.iter().sum(),
        arrivals,
        aht_seconds,
        breaches_per_ticket: if tickets > 0.0 {
            breaches / tickets
        } else {
            0.0
        },
    })
}

/// A what-if.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WhatIf {
    /// Volume change in percent (+30 for 30 % more tickets).
    pub volume_change_percent: Option<f64>,
    /// Another service level (0–1).
    pub service_level: Option<f64>,
    /// Another answer time, seconds.
    pub answer_within_seconds: Option<f64>,
}

/// The cost report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostReport {
    /// The observed workload (without the arrivals profile).
    pub tickets_per_week: f64,
    /// Average handle time used, seconds.
    pub aht_seconds: f64,
    /// Breached clocks per ticket.
    pub breaches_per_ticket: f64,
    /// The what-if applied.
    pub what_if: WhatIf,
    /// This month, both models.
    pub month: Comparison,
    /// Cost of the SLA breaches under the provider's credits (what they would refund).
    pub sla_breach_credits: f64,
    /// Volume multiple from which in-house is no dearer (`null`: not within 0.01–100×).
    pub break_even_scale: Option<f64>,
    /// Tickets per month at the break-even.
    pub break_even_tickets_per_month: Option<f64>,
    /// Both models at −30 % … +30 % of the volume.
    pub sensitivity: Vec<Comparison>,
}

/// The report for `observed` under `config` and `what_if`.
pub fn report(
    observed: &Observed,
    config: &CostConfig,
    what_if: WhatIf,
) -> Result<CostReport, String> {
    let target = Target {
        aht_seconds: observed.aht_seconds,
        answer_within_seconds: what_if
            .answer_within_seconds
            .unwrap_or(config.answer_within_seconds),
        service_level: what_if.service_level.unwrap_or(config.service_level),
        shrinkage: config.shrinkage,
        max_occupancy: config.max_occupancy,
        hours_per_fte_week: config.hours_per_fte_week,
    };
    let (inside, msp) = (config.in_house(), config.msp()?);
    let scale = 1.0 + what_if.volume_change_percent.unwrap_or(0.0) / 100.0;
    if scale <= 0.0 {
        return Err("the volume change must leave some volume".into());
    }
    let b = observed.breaches_per_ticket;
    let month = compare(&observed.arrivals, &target, &inside, &msp, b, scale)?;
    let fee = msp.monthly(
        month.tickets,
        month.tickets * target.aht_seconds / 60.0,
        0.0,
    );
    let sla_breach_credits = fee.total - month.outsourced;
    let even = break_even(&observed.arrivals, &target, &inside, &msp, b)?;
    let sensitivity = [-30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0]
        .iter()
        .map(|p| {
            compare(
                &observed.arrivals,
                &target,
                &inside,
                &msp,
                b,
                scale * (1.0 + p / 100.0),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CostReport {
        tickets_per_week: observed.tickets_per_week,
        aht_seconds: observed.aht_seconds,
        breaches_per_ticket: b,
        what_if,
        month,
        sla_breach_credits,
        break_even_scale: even,
        break_even_tickets_per_month: even.map(|s| s * observed.tickets_per_week * WEEKS_PER_MONTH),
        sensitivity,
    })
}
