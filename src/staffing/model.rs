//! The cost model of `[cost]`, fed by the workload deskwatch observed ([`Observed`], read by
//! [`crate::query::workload::observe`]): the hour-of-week arrivals, the handle times with their
//! evidence, the opening hours and the SLA breaches. It gives this month in-house and outsourced, per ticket, the break-even
//! volume, the cost of the breaches, and the sensitivity to volume; what-ifs change the volume
//! or the service target.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::StaffingError;
use super::checks::{Flag, flags};
use super::cost::{InHouse, Msp, Pricing, profile};
use super::erlang::Staffing;
use super::hours::{HoursSource, OpenHours};
use super::plan::{
    Comparison, Queue, Target, WEEKS_PER_MONTH, Week, break_even, compare, staff_queues,
};

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
    /// Real-time channels (answered live): staffed to `answer-within-seconds` and
    /// `service-level`.
    pub realtime_channels: Vec<String>,
    /// Answer within this many seconds…
    pub answer_within_seconds: f64,
    /// …for this share of real-time tickets.
    pub service_level: f64,
    /// The other channels (e-mail, portal, …) are staffed to a first response within this many
    /// seconds…
    pub deferred_answer_within_seconds: f64,
    /// …for this share of their tickets.
    pub deferred_service_level: f64,
    /// Handle time of a ticket with neither logged work nor active time in progress, seconds.
    pub default_aht_seconds: f64,
    /// The same per channel (`phone = 420.0`), where it differs.
    pub channel_default_aht_seconds: BTreeMap<String, f64>,
    /// Opening hours per channel: a calendar of `[sla.calendars]` (or `24x7`). A channel not
    /// named is open when the SLA calendar of most of its tickets is.
    pub open_hours: BTreeMap<String, String>,
    /// Agents on each channel in every open hour, however few tickets arrive.
    pub minimum_agents: u32,
    /// Published range of the in-house cost per ticket, dollars; outside it the report says so.
    pub plausible_cost_per_ticket: [f64; 2],
    /// Published range of tickets per agent (FTE) and month.
    pub plausible_tickets_per_agent_month: [f64; 2],
    /// Published range of handle times, minutes.
    pub plausible_aht_minutes: [f64; 2],
    /// A channel whose FTE are more than this share minimum staffing is flagged.
    pub minimum_staffing_warning: f64,
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
    /// How often a running service recomputes the cost and staffing gauges, seconds.
    pub refresh_seconds: u64,
}

impl CostConfig {
    /// Checks values; the error names the key.
    pub fn validate(&self) -> Result<(), (String, String)> {
        const FRACTION: &str = "must be within 0 (inclusive) and 1 (exclusive)";
        let fraction = |v: f64| (0.0..1.0).contains(&v);
        let share = |v: f64| (0.0..=1.0).contains(&v);
        let range = |[lo, hi]: [f64; 2]| lo.is_finite() && hi.is_finite() && 0.0 <= lo && lo < hi;
        const RANGE: &str = "must be [low, high] with 0 ≤ low < high";
        let checks: [(&str, bool, &str); 14] = [
            (
                "salary-profile",
                self.annual_salary > 0.0 || profile(&self.salary_profile).is_some(),
                "unknown profile (and no annual-salary given)",
            ),
            (
                "load-factor",
                (1.0..=3.0).contains(&self.load_factor),
                "must be within 1–3",
            ),
            ("shrinkage", fraction(self.shrinkage), FRACTION),
            (
                "max-occupancy",
                self.max_occupancy > 0.0 && self.max_occupancy <= 1.0,
                "must be within (0, 1]",
            ),
            ("service-level", fraction(self.service_level), FRACTION),
            (
                "deferred-service-level",
                fraction(self.deferred_service_level),
                FRACTION,
            ),
            (
                "answer-within-seconds",
                self.answer_within_seconds >= 0.0 && self.deferred_answer_within_seconds >= 0.0,
                "answer times must be 0 or more",
            ),
            (
                "hours-per-fte-week",
                self.hours_per_fte_week > 0.0 && self.default_aht_seconds > 0.0,
                "hours and handle times must be above 0",
            ),
            (
                "refresh-seconds",
                self.refresh_seconds > 0,
                "must be at least 1",
            ),
            (
                "minimum-agents",
                self.minimum_agents <= 1000,
                "must be at most 1000",
            ),
            (
                "plausible-cost-per-ticket",
                range(self.plausible_cost_per_ticket),
                RANGE,
            ),
            (
                "plausible-tickets-per-agent-month",
                range(self.plausible_tickets_per_agent_month),
                RANGE,
            ),
            (
                "plausible-aht-minutes",
                range(self.plausible_aht_minutes),
                RANGE,
            ),
            (
                "minimum-staffing-warning",
                share(self.minimum_staffing_warning),
                "must be within 0–1",
            ),
        ];
        if let Some((key, _, problem)) = checks.iter().find(|(_, ok, _)| !ok) {
            return Err((format!("cost.{key}"), (*problem).to_string()));
        }
        self.validate_channels()?;
        if self.pricing().is_err() {
            return Err((
                "cost.msp-pricing".into(),
                "must be ticket, user-month or handle-minute".into(),
            ));
        }
        if !share(self.msp_credit_cap) {
            return Err(("cost.msp-credit-cap".into(), "must be within 0–1".into()));
        }
        Ok(())
    }

    /// Every channel named in a key is a known channel; per-channel handle times are above 0.
    fn validate_channels(&self) -> Result<(), (String, String)> {
        let channels: [(&str, Vec<&String>); 3] = [
            ("realtime-channels", self.realtime_channels.iter().collect()),
            (
                "channel-default-aht-seconds",
                self.channel_default_aht_seconds.keys().collect(),
            ),
            ("open-hours", self.open_hours.keys().collect()),
        ];
        for (key, names) in channels {
            if let Some(c) = names
                .iter()
                .find(|c| crate::event::Channel::parse(c).is_none())
            {
                return Err((format!("cost.{key}"), format!("unknown channel `{c}`")));
            }
        }
        if let Some((c, _)) = self
            .channel_default_aht_seconds
            .iter()
            .find(|(_, v)| !(v.is_finite() && **v > 0.0))
        {
            return Err((
                format!("cost.channel-default-aht-seconds.{c}"),
                "must be above 0".into(),
            ));
        }
        Ok(())
    }

    fn pricing(&self) -> Result<Pricing, StaffingError> {
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
            other => Err(StaffingError::Pricing(other.to_string())),
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

    /// The default handle time of `channel`, seconds.
    pub fn default_aht(&self, channel: &str) -> f64 {
        self.channel_default_aht_seconds
            .get(channel)
            .copied()
            .unwrap_or(self.default_aht_seconds)
    }

    /// The loaded cost of an agent's hour: salary × load factor / 2,080 hours.
    pub fn hourly_rate(&self) -> f64 {
        self.in_house().loaded_hourly_rate()
    }

    /// The provider's parameters.
    pub fn msp(&self) -> Result<Msp, StaffingError> {
        Ok(Msp {
            pricing: self.pricing()?,
            credit_per_breach: self.msp_credit_per_breach,
            credit_cap: self.msp_credit_cap,
        })
    }
}

/// Where a channel's handle time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AhtSource {
    /// Work logs (`ticket.work_logged`).
    WorkLogged,
    /// Estimated from the active time in progress (`tickets.active_minutes`).
    Estimated,
    /// The configured default (`default-aht-seconds`, `channel-default-aht-seconds`).
    Default,
}

/// The evidence behind a channel's handle time: the share of its tickets behind each source.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AhtEvidence {
    /// The source behind most of the tickets.
    pub source: AhtSource,
    /// Share of tickets with logged work.
    pub work_logged: f64,
    /// Share of tickets with an estimate (no work logged, some active time in progress).
    pub estimated: f64,
    /// Share of tickets with neither, counted at the default.
    pub default: f64,
    /// The channel's default, seconds.
    pub default_seconds: f64,
}

impl AhtEvidence {
    /// All tickets at the default.
    pub fn default_only(default_seconds: f64) -> AhtEvidence {
        AhtEvidence {
            source: AhtSource::Default,
            work_logged: 0.0,
            estimated: 0.0,
            default: 1.0,
            default_seconds,
        }
    }

    /// All tickets with logged work.
    pub fn work_logged_only(default_seconds: f64) -> AhtEvidence {
        AhtEvidence {
            source: AhtSource::WorkLogged,
            work_logged: 1.0,
            estimated: 0.0,
            default: 0.0,
            default_seconds,
        }
    }
}

/// What the events say about one channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelLoad {
    /// The channel.
    pub channel: String,
    /// Mean arrivals per hour of the week (168, Monday 00:00 UTC first).
    #[serde(skip)]
    pub arrivals: Vec<f64>,
    /// Tickets per week on average.
    pub tickets_per_week: f64,
    /// Average handle time, seconds: logged work, estimates and defaults, ticket by ticket.
    pub aht_seconds: f64,
    /// Where it comes from.
    pub aht: AhtEvidence,
    /// The hours the channel is open.
    pub hours: OpenHours,
}

/// What the events say about the workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observed {
    /// Per channel, busiest first.
    pub channels: Vec<ChannelLoad>,
    /// Tickets per week on average.
    pub tickets_per_week: f64,
    /// Average handle time over all channels' tickets, seconds (the configured default when
    /// there are none).
    pub aht_seconds: f64,
    /// Breached SLA clocks per ticket.
    pub breaches_per_ticket: f64,
}

/// A what-if.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct WhatIf {
    /// Volume change in percent (+30 for 30 % more tickets).
    pub volume_change_percent: Option<f64>,
    /// Another service level for the real-time channels (0–1).
    pub service_level: Option<f64>,
    /// Another answer time for the real-time channels, seconds.
    pub answer_within_seconds: Option<f64>,
}

/// A what-if as `GET /v1/cost` and `GET /v1/staffing` take it (and the CLI's flags).
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WhatIfRequest {
    /// Volume change in percent (`30` for +30 %, `-20`).
    pub volume_change: Option<f64>,
    /// Service level of the real-time channels, as a share (`0.9`) or a percentage (`90`).
    pub service_level: Option<f64>,
    /// Answer time of the real-time channels, seconds.
    pub answer_within_seconds: Option<f64>,
}

impl WhatIfRequest {
    /// The parameter names, for error messages.
    pub const NAMES: &str = "volume_change, service_level, answer_within_seconds";

    /// The what-if, checked; the error names the parameter.
    pub fn what_if(self) -> Result<WhatIf, (&'static str, String)> {
        let w = WhatIf {
            volume_change_percent: self.volume_change,
            service_level: self
                .service_level
                .map(|s| if s > 1.0 { s / 100.0 } else { s }),
            answer_within_seconds: self.answer_within_seconds,
        };
        w.validate()?;
        Ok(w)
    }
}

impl WhatIf {
    /// Checks the values; the error names the parameter.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if let Some(v) = self.volume_change_percent
            && !(v.is_finite() && v > -100.0 && v <= 10_000.0)
        {
            return Err((
                "volume_change",
                "must be above -100 and at most 10000 (percent)".into(),
            ));
        }
        if let Some(v) = self.service_level
            && !(0.0..1.0).contains(&v)
        {
            return Err((
                "service_level",
                "must be within 0 (inclusive) and 1 (exclusive)".into(),
            ));
        }
        if let Some(v) = self.answer_within_seconds
            && !(v.is_finite() && v >= 0.0)
        {
            return Err(("answer_within_seconds", "must be 0 or more".into()));
        }
        Ok(())
    }

    /// The volume multiplier.
    pub fn scale(&self) -> f64 {
        1.0 + self.volume_change_percent.unwrap_or(0.0) / 100.0
    }
}

/// The queues of `observed` under `config` and `what_if` (volume not yet scaled).
pub fn queues(observed: &Observed, config: &CostConfig, what_if: &WhatIf) -> Vec<Queue> {
    observed
        .channels
        .iter()
        .map(|c| {
            let realtime = config.realtime_channels.contains(&c.channel);
            let (answer_within_seconds, service_level) = if realtime {
                (
                    what_if
                        .answer_within_seconds
                        .unwrap_or(config.answer_within_seconds),
                    what_if.service_level.unwrap_or(config.service_level),
                )
            } else {
                (
                    config.deferred_answer_within_seconds,
                    config.deferred_service_level,
                )
            };
            Queue {
                channel: c.channel.clone(),
                arrivals: c.arrivals.clone(),
                open: c.hours.open.clone(),
                minimum_agents: config.minimum_agents,
                target: Target {
                    aht_seconds: c.aht_seconds,
                    answer_within_seconds,
                    service_level,
                    shrinkage: config.shrinkage,
                    max_occupancy: config.max_occupancy,
                    hours_per_fte_week: config.hours_per_fte_week,
                },
            }
        })
        .collect()
}

/// One channel's staffing in a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelPlan {
    /// The channel.
    pub channel: String,
    /// Staffed to answer in seconds (real-time) or to the first-response target.
    pub realtime: bool,
    /// Its target: answer within this many seconds…
    pub answer_within_seconds: f64,
    /// …for this share.
    pub service_level: f64,
    /// Tickets per week (after the what-if).
    pub tickets_per_week: f64,
    /// Average handle time, seconds.
    pub aht_seconds: f64,
    /// Where the handle time comes from, and the share of tickets behind each source.
    pub aht: AhtEvidence,
    /// The calendar the channel is open on.
    pub calendar: String,
    /// Where that calendar comes from.
    pub calendar_source: HoursSource,
    /// Open hours a week.
    pub open_hours: u32,
    /// Agents at the busiest hour.
    pub peak_agents: u32,
    /// Agent-hours per week.
    pub agent_hours: f64,
    /// FTE to employ.
    pub fte: f64,
    /// The part of `fte` that staffs open hours at `minimum-agents` because the tickets would
    /// need no more.
    pub minimum_fte: f64,
}

/// The cost report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostReport {
    /// The observed workload, tickets per week (before the what-if).
    pub tickets_per_week: f64,
    /// Average handle time over all channels, seconds.
    pub aht_seconds: f64,
    /// Breached clocks per ticket.
    pub breaches_per_ticket: f64,
    /// The what-if applied.
    pub what_if: WhatIf,
    /// This month, both models.
    pub month: Comparison,
    /// Per channel.
    pub channels: Vec<ChannelPlan>,
    /// Cost of the SLA breaches under the provider's credits (what they would refund).
    pub sla_breach_credits: f64,
    /// Volume multiple (of the observed volume) from which in-house is no dearer (`null`:
    /// not within 0.01–100×).
    pub break_even_scale: Option<f64>,
    /// Tickets per month at the break-even.
    pub break_even_tickets_per_month: Option<f64>,
    /// Both models at −30 % … +30 % of the what-if's volume.
    pub sensitivity: Vec<Comparison>,
    /// The part of the month's FTE that is minimum staffing of open hours.
    pub minimum_fte: f64,
    /// Results outside published ranges, with the reason.
    pub flags: Vec<Flag>,
}

fn plans(
    queues: &[Queue],
    weeks: &[Week],
    observed: &Observed,
    config: &CostConfig,
) -> Vec<ChannelPlan> {
    queues
        .iter()
        .zip(weeks)
        .zip(&observed.channels)
        .map(|((q, w), c)| ChannelPlan {
            channel: q.channel.clone(),
            realtime: config.realtime_channels.contains(&q.channel),
            answer_within_seconds: q.target.answer_within_seconds,
            service_level: q.target.service_level,
            tickets_per_week: w.tickets,
            aht_seconds: q.target.aht_seconds,
            aht: c.aht,
            calendar: c.hours.calendar.clone(),
            calendar_source: c.hours.source,
            open_hours: w.open_hours,
            peak_agents: w.agents.iter().copied().max().unwrap_or(0),
            agent_hours: w.agent_hours,
            fte: w.fte,
            minimum_fte: w.minimum_fte,
        })
        .collect()
}

/// The report for `observed` under `config` and `what_if`.
pub fn report(
    observed: &Observed,
    config: &CostConfig,
    what_if: WhatIf,
) -> Result<CostReport, StaffingError> {
    what_if
        .validate()
        .map_err(|(name, problem)| StaffingError::WhatIf { name, problem })?;
    let queues = queues(observed, config, &what_if);
    let (inside, msp) = (config.in_house(), config.msp()?);
    let scale = what_if.scale();
    let b = observed.breaches_per_ticket;
    let month = compare(&queues, &inside, &msp, b, scale)?;
    let weeks = staff_queues(&queues, scale)?;
    let fee = msp.monthly(month.tickets, month.handle_minutes, 0.0);
    let sla_breach_credits = fee.total - month.outsourced;
    // Without a workload there is no volume to break even at.
    let even = if observed.tickets_per_week > 0.0 {
        break_even(&queues, &inside, &msp, b)?
    } else {
        None
    };
    let sensitivity = [-30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 30.0]
        .iter()
        .map(|p| compare(&queues, &inside, &msp, b, scale * (1.0 + p / 100.0)))
        .collect::<Result<Vec<_>, _>>()?;
    let channels = plans(&queues, &weeks, observed, config);
    Ok(CostReport {
        tickets_per_week: observed.tickets_per_week,
        aht_seconds: observed.aht_seconds,
        breaches_per_ticket: b,
        what_if,
        minimum_fte: channels.iter().map(|c| c.minimum_fte).sum(),
        flags: flags(&channels, Some(&month), config),
        month,
        channels,
        sla_breach_credits,
        break_even_scale: even,
        break_even_tickets_per_month: even.map(|s| s * observed.tickets_per_week * WEEKS_PER_MONTH),
        sensitivity,
    })
}

/// One channel's week in the staffing report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelWeek {
    /// The channel and its totals.
    #[serde(flatten)]
    pub plan: ChannelPlan,
    /// Agents on the channel in each hour of the week (168, Monday 00:00 UTC first):
    /// closed hours 0, open hours at least `minimum-agents`.
    pub agents: Vec<u32>,
    /// Each hour of the week with arrivals: Erlang C figures.
    pub hours: Vec<HourPlan>,
}

/// One hour of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HourPlan {
    /// 0 = Monday 00:00–01:00 UTC … 167.
    pub hour_of_week: u32,
    /// Arrivals in that hour.
    pub arrivals: f64,
    /// The Erlang C figures with the required agents.
    #[serde(flatten)]
    pub staffing: Staffing,
}

/// The staffing report: agents per hour of the week, per channel and in all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StaffingReport {
    /// The what-if applied.
    pub what_if: WhatIf,
    /// Agents on the queues in each hour of the week, all channels.
    pub agents: Vec<u32>,
    /// The hour of the week now (UTC) and the agents it needs.
    pub hour_of_week_now: u32,
    /// Agents needed now.
    pub agents_now: u32,
    /// FTE to employ, all channels.
    pub fte: f64,
    /// The part of it that is minimum staffing of open hours.
    pub minimum_fte: f64,
    /// Results outside published ranges, with the reason.
    pub flags: Vec<Flag>,
    /// Per channel.
    pub channels: Vec<ChannelWeek>,
}

/// The hour of the week (0 = Monday 00:00 UTC) of a time in milliseconds.
pub fn hour_of_week(at_ms: i64) -> u32 {
    // 1970-01-01 was a Thursday: hour 72 of its week.
    ((at_ms.div_euclid(3_600_000) + 72).rem_euclid(168)) as u32
}

/// The staffing of `observed` under `config` and `what_if`, with `now_ms` for the current hour.
pub fn staffing(
    observed: &Observed,
    config: &CostConfig,
    what_if: WhatIf,
    now_ms: i64,
) -> Result<StaffingReport, StaffingError> {
    what_if
        .validate()
        .map_err(|(name, problem)| StaffingError::WhatIf { name, problem })?;
    let queues = queues(observed, config, &what_if);
    let scale = what_if.scale();
    let weeks = staff_queues(&queues, scale)?;
    let plans = plans(&queues, &weeks, observed, config);
    let flags = flags(&plans, None, config);
    let mut agents = vec![0u32; 168];
    for w in &weeks {
        for (a, n) in agents.iter_mut().zip(&w.agents) {
            *a += n;
        }
    }
    let now = hour_of_week(now_ms);
    let channels = plans
        .into_iter()
        .zip(&weeks)
        .map(|(plan, w)| ChannelWeek {
            plan,
            agents: w.agents.clone(),
            hours: w
                .hours
                .iter()
                .enumerate()
                .filter_map(|(h, s)| {
                    s.map(|staffing| HourPlan {
                        hour_of_week: h as u32,
                        arrivals: w.arrivals[h],
                        staffing,
                    })
                })
                .collect(),
        })
        .collect();
    Ok(StaffingReport {
        what_if,
        agents_now: agents[now as usize],
        hour_of_week_now: now,
        fte: weeks.iter().map(|w| w.fte).sum(),
        minimum_fte: weeks.iter().map(|w| w.minimum_fte).sum(),
        flags,
        agents,
        channels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::staffing::erlang::Demand;

    /// Phone: 200 calls an hour at 180 s all week (the Erlang reference point, 10 erlangs);
    /// e-mail: 20 an hour at 30 minutes (10 erlangs too); one breach per 100 tickets.
    fn observed() -> Observed {
        let channel = |name: &str, rate: f64, aht: f64| ChannelLoad {
            channel: name.into(),
            arrivals: vec![rate; 168],
            tickets_per_week: rate * 168.0,
            aht_seconds: aht,
            aht: AhtEvidence::work_logged_only(600.0),
            hours: OpenHours::always(HoursSource::AroundTheClock),
        };
        Observed {
            channels: vec![
                channel("phone", 200.0, 180.0),
                channel("email", 20.0, 1800.0),
            ],
            tickets_per_week: 220.0 * 168.0,
            aht_seconds: (200.0 * 180.0 + 20.0 * 1800.0) / 220.0,
            breaches_per_ticket: 0.01,
        }
    }

    fn config() -> CostConfig {
        Config::load(None).unwrap().cost
    }

    #[test]
    fn the_month_by_hand() {
        let c = config();
        let r = report(&observed(), &c, WhatIf::default()).unwrap();
        // Phone at 80 % in 20 s: 14 agents (occupancy 0.71 < 0.85). E-mail, first response
        // within 4 h: the wait target is easy, the 85 % occupancy cap is not: ceil(10/0.85) =
        // 12. (14 + 12) × 168 h / 40 h / (1 − 0.3) = 156 FTE.
        assert_eq!(
            (r.channels[0].peak_agents, r.channels[1].peak_agents),
            (14, 12)
        );
        assert!(r.channels[0].realtime && !r.channels[1].realtime);
        assert_eq!(r.channels[1].answer_within_seconds, 14_400.0);
        assert!((r.month.fte - 156.0).abs() < 1e-9, "{}", r.month.fte);
        assert!((r.month.in_house - c.in_house().monthly(156.0).total).abs() < 1e-6);
        // $22 a ticket; credits $50 × 1 % = $0.50 a ticket, under the 10 % cap.
        let tickets = 220.0 * 168.0 * 52.0 / 12.0;
        assert!((r.month.tickets - tickets).abs() < 1e-6);
        assert!((r.month.outsourced - 21.5 * tickets).abs() < 1e-6);
        assert!((r.sla_breach_credits - 0.5 * tickets).abs() < 1e-6);
        assert!((r.month.outsourced_per_ticket - 21.5).abs() < 1e-9);
        assert_eq!(r.sensitivity[3], r.month);
        // The break-even volume is where the two cost the same.
        let s = r.break_even_scale.expect("a break-even within range");
        let q = queues(&observed(), &c, &WhatIf::default());
        let at = compare(&q, &c.in_house(), &c.msp().unwrap(), 0.01, s).unwrap();
        assert!(at.in_house <= at.outsourced);
        let below = compare(&q, &c.in_house(), &c.msp().unwrap(), 0.01, s * 0.99).unwrap();
        assert!(below.in_house > below.outsourced);
    }

    #[test]
    fn what_ifs_move_by_the_expected_amount() {
        let c = config();
        let base = report(&observed(), &c, WhatIf::default()).unwrap();
        let more = report(
            &observed(),
            &c,
            WhatIf {
                volume_change_percent: Some(30.0),
                ..WhatIf::default()
            },
        )
        .unwrap();
        // +30 %: tickets and a per-ticket price × 1.3 exactly; agents as Erlang C says for
        // 260 calls and 26 e-mails an hour.
        assert!((more.month.tickets / base.month.tickets - 1.3).abs() < 1e-12);
        assert!((more.month.outsourced / base.month.outsourced - 1.3).abs() < 1e-12);
        let agents = |rate: f64, aht: f64, t: f64, sl: f64| {
            Demand {
                calls_per_hour: rate,
                aht_seconds: aht,
                answer_within_seconds: t,
                service_level: sl,
                shrinkage: 0.3,
                max_occupancy: 0.85,
            }
            .required()
            .unwrap()
            .agents
        };
        let (phone, email) = (
            agents(260.0, 180.0, 20.0, 0.8),
            agents(26.0, 1800.0, 14_400.0, 0.9),
        );
        assert_eq!(
            (more.channels[0].peak_agents, more.channels[1].peak_agents),
            (phone, email)
        );
        let fte = f64::from(phone + email) * 168.0 / 40.0 / 0.7;
        assert!((more.month.fte - fte).abs() < 1e-9);
        // Economies of scale: 30 % more tickets, fewer than 30 % more agents.
        assert!(more.month.fte < base.month.fte * 1.3);
        // 90 % in 20 s: at 14 agents the phone reaches 88.8 %, so it takes 15; e-mail keeps
        // its own target.
        let stricter = report(
            &observed(),
            &c,
            WhatIfRequest {
                service_level: Some(90.0),
                ..WhatIfRequest::default()
            }
            .what_if()
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (
                stricter.channels[0].peak_agents,
                stricter.channels[1].peak_agents
            ),
            (15, 12)
        );
        assert!((stricter.month.fte - 27.0 * 168.0 / 40.0 / 0.7).abs() < 1e-9);
        assert!(stricter.month.in_house > base.month.in_house);
        assert_eq!(stricter.month.outsourced, base.month.outsourced);
        // The sensitivity brackets the what-if's volume.
        let s = &more.sensitivity;
        assert!((s[0].tickets / more.month.tickets - 0.7).abs() < 1e-12);
        assert!(s.windows(2).all(|w| w[0].in_house <= w[1].in_house));
    }

    #[test]
    fn no_workload_costs_nothing_and_has_no_break_even() {
        let empty = Observed {
            channels: Vec::new(),
            tickets_per_week: 0.0,
            aht_seconds: 600.0,
            breaches_per_ticket: 0.0,
        };
        let r = report(&empty, &config(), WhatIf::default()).unwrap();
        assert_eq!(
            (r.month.tickets, r.month.fte, r.month.outsourced),
            (0.0, 0.0, 0.0)
        );
        assert_eq!(r.break_even_scale, None);
        assert!(r.channels.is_empty());
    }

    #[test]
    fn bad_what_ifs_name_the_parameter() {
        for (w, name) in [
            (
                WhatIfRequest {
                    volume_change: Some(-100.0),
                    ..Default::default()
                },
                "volume_change",
            ),
            (
                WhatIfRequest {
                    service_level: Some(100.0),
                    ..Default::default()
                },
                "service_level",
            ),
            (
                WhatIfRequest {
                    answer_within_seconds: Some(-1.0),
                    ..Default::default()
                },
                "answer_within_seconds",
            ),
        ] {
            assert_eq!(w.what_if().unwrap_err().0, name);
        }
    }

    #[test]
    fn staffing_per_hour_adds_up() {
        // 2026-03-04 (a Wednesday) 10:30 UTC: hour 2 × 24 + 10 = 58 of the week.
        assert_eq!(hour_of_week(0), 72, "1970-01-01 was a Thursday");
        assert_eq!(hour_of_week(1_772_620_200_000), 58);
        assert_eq!(hour_of_week(-1), 71);
        let mut o = observed();
        // E-mail only on weekdays 09:00–17:00.
        o.channels[1].arrivals = (0..168)
            .map(|h| {
                if h < 120 && (9..17).contains(&(h % 24)) {
                    60.0
                } else {
                    0.0
                }
            })
            .collect();
        let s = staffing(&o, &config(), WhatIf::default(), 1_772_620_200_000).unwrap();
        assert_eq!(s.hour_of_week_now, 58);
        assert_eq!(s.agents[58], 14 + s.channels[1].hours[0].staffing.agents);
        assert_eq!(
            s.channels[1].agents[58],
            s.channels[1].hours[0].staffing.agents
        );
        // Open around the clock: one agent keeps e-mail open at night (minimum staffing).
        assert_eq!(s.agents[0], 14 + 1);
        assert_eq!(s.channels[1].agents[0], 1);
        let night = 128.0 / 40.0 / 0.7;
        assert!((s.channels[1].plan.minimum_fte - night).abs() < 1e-9);
        assert!(
            (s.minimum_fte - night).abs() < 1e-9,
            "the phone is never at the floor"
        );
        assert_eq!(s.agents_now, s.agents[58]);
        assert_eq!(s.channels[1].hours.len(), 40);
        assert_eq!(s.channels[0].hours.len(), 168);
        let sum: f64 = s.channels.iter().map(|c| c.plan.fte).sum();
        assert!((s.fte - sum).abs() < 1e-9);
        let h = &s.channels[0].hours[58];
        assert_eq!(h.hour_of_week, 58);
        assert!((h.staffing.p_wait - 0.17413).abs() < 5e-6);
    }
}
