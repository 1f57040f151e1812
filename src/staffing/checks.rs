//! Plausibility: the cost and staffing results that fall outside published ranges, or rest
//! on weak evidence, each with the reason. The report carries them instead of printing the
//! numbers as fact.

use serde::Serialize;

use super::model::{AhtSource, ChannelPlan, CostConfig};
use super::plan::{Comparison, WEEKS_PER_MONTH};

/// One result to check before believing it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    /// What is checked: `cost_per_ticket`, `tickets_per_agent_month`, `aht_minutes`,
    /// `minimum_staffing`, `aht_default`.
    pub check: &'static str,
    /// `desk` or the channel.
    pub subject: String,
    /// The value found.
    pub value: f64,
    /// The range it should be in.
    pub range: [f64; 2],
    /// Why it matters and what to look at.
    pub reason: String,
}

fn outside(v: f64, [lo, hi]: [f64; 2]) -> bool {
    v.is_finite() && (v < lo || v > hi)
}

/// The flags of a report's channels and, for the cost report, its month.
pub fn flags(
    channels: &[ChannelPlan],
    month: Option<&Comparison>,
    config: &CostConfig,
) -> Vec<Flag> {
    let mut out = Vec::new();
    if let Some(m) = month.filter(|m| m.tickets > 0.0) {
        desk_flags(m, config, &mut out);
    }
    for c in channels {
        channel_flags(c, config, &mut out);
    }
    out
}

/// Cost per ticket and tickets per agent-month of the whole desk.
fn desk_flags(m: &Comparison, config: &CostConfig, out: &mut Vec<Flag>) {
    let range = config.plausible_cost_per_ticket;
    if outside(m.in_house_per_ticket, range) {
        out.push(Flag {
            check: "cost_per_ticket",
            subject: "desk".into(),
            value: m.in_house_per_ticket,
            range,
            reason: format!(
                "in-house cost per ticket ${:.2} is outside the published ${:.0}–{:.0} \
                 (MetricNet: North-American in-house service desks average $15–25); check \
                 the handle times, the opening hours and the minimum staffing",
                m.in_house_per_ticket, range[0], range[1]
            ),
        });
    }
    let range = config.plausible_tickets_per_agent_month;
    if m.fte > 0.0 {
        let per_agent = m.tickets / m.fte;
        if outside(per_agent, range) {
            let why = if per_agent < range[0] {
                "the agents would be idle most of the time: minimum staffing of open hours \
                 or long handle times"
            } else {
                "more tickets than an agent handles: short handle times or a volume the \
                 staffing does not cover"
            };
            out.push(Flag {
                check: "tickets_per_agent_month",
                subject: "desk".into(),
                value: per_agent,
                range,
                reason: format!(
                    "{per_agent:.0} tickets per FTE and month is outside {:.0}–{:.0}: {why}",
                    range[0], range[1]
                ),
            });
        }
    }
}

/// A channel's handle time, its evidence and its minimum staffing.
fn channel_flags(c: &ChannelPlan, config: &CostConfig, out: &mut Vec<Flag>) {
    let minutes = c.aht_seconds / 60.0;
    let range = config.plausible_aht_minutes;
    if c.tickets_per_week > 0.0 && outside(minutes, range) {
        out.push(Flag {
            check: "aht_minutes",
            subject: c.channel.clone(),
            value: minutes,
            range,
            reason: format!(
                "handle time {minutes:.1} min is outside {:.0}–{:.0} min ({} for {:.0} % of \
                 the tickets); a handle time measured in hours or days is usually time \
                 waiting, not working",
                range[0],
                range[1],
                source_name(c.aht.source),
                share(c.aht.source, c) * 100.0
            ),
        });
    }
    if c.tickets_per_week > 0.0 && c.aht.default > 0.5 {
        out.push(Flag {
            check: "aht_default",
            subject: c.channel.clone(),
            value: c.aht.default,
            range: [0.0, 0.5],
            reason: format!(
                "{:.0} % of the tickets have neither logged work nor time in progress: their \
                 handle time is the configured default ({:.1} min)",
                c.aht.default * 100.0,
                c.aht.default_seconds / 60.0
            ),
        });
    }
    if c.fte > 0.0 {
        let share = c.minimum_fte / c.fte;
        if share > config.minimum_staffing_warning {
            let needed = c.tickets_per_week * c.aht_seconds / 3600.0 * WEEKS_PER_MONTH;
            out.push(Flag {
                check: "minimum_staffing",
                subject: c.channel.clone(),
                value: share,
                range: [0.0, config.minimum_staffing_warning],
                reason: format!(
                    "{:.1} of its {:.1} FTE keep {} agent(s) on it for its {} open hours a \
                     week ({}), for {:.0} tickets a week ({needed:.0} handle hours a month); \
                     shorter hours or agents shared with another channel would cost less",
                    c.minimum_fte,
                    c.fte,
                    config.minimum_agents,
                    c.open_hours,
                    c.calendar,
                    c.tickets_per_week
                ),
            });
        }
    }
}

fn source_name(s: AhtSource) -> &'static str {
    match s {
        AhtSource::WorkLogged => "work logged",
        AhtSource::Estimated => "estimated",
        AhtSource::Default => "default",
    }
}

fn share(s: AhtSource, c: &ChannelPlan) -> f64 {
    match s {
        AhtSource::WorkLogged => c.aht.work_logged,
        AhtSource::Estimated => c.aht.estimated,
        AhtSource::Default => c.aht.default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::staffing::hours::HoursSource;
    use crate::staffing::model::AhtEvidence;

    fn channel(tickets_per_week: f64, aht_minutes: f64, fte: f64, minimum_fte: f64) -> ChannelPlan {
        ChannelPlan {
            channel: "portal".into(),
            realtime: false,
            answer_within_seconds: 14_400.0,
            service_level: 0.9,
            tickets_per_week,
            aht_seconds: aht_minutes * 60.0,
            aht: AhtEvidence::work_logged_only(600.0),
            calendar: "24x7".into(),
            calendar_source: HoursSource::AroundTheClock,
            open_hours: 168,
            peak_agents: 1,
            agent_hours: 168.0,
            fte,
            minimum_fte,
        }
    }

    fn month(tickets: f64, fte: f64, in_house: f64) -> Comparison {
        Comparison {
            scale: 1.0,
            tickets,
            handle_minutes: 0.0,
            fte,
            in_house,
            outsourced: 0.0,
            in_house_per_ticket: in_house / tickets,
            outsourced_per_ticket: 0.0,
        }
    }

    #[test]
    fn results_outside_the_ranges_are_flagged_with_their_reason() {
        let config = Config::load(None).unwrap().cost;
        // A believable desk: 2,000 tickets a month, 6 FTE, $20 a ticket, 15-minute AHT.
        let fine = flags(
            &[channel(460.0, 15.0, 6.0, 0.0)],
            Some(&month(2000.0, 6.0, 40_000.0)),
            &config,
        );
        assert!(fine.is_empty(), "{fine:?}");
        // The wrong answer of issue 17: days of "handle time", $5,423 a ticket, 2,076 FTE for
        // 2,137 tickets a month.
        let wrong = flags(
            &[channel(493.0, 5970.3, 2076.1, 0.0)],
            Some(&month(2137.0, 2076.1, 11_589_358.15)),
            &config,
        );
        let checks: Vec<&str> = wrong.iter().map(|f| f.check).collect();
        assert_eq!(
            checks,
            ["cost_per_ticket", "tickets_per_agent_month", "aht_minutes"]
        );
        assert!(wrong[0].reason.contains("$5423.19"), "{}", wrong[0].reason);
        assert_eq!(wrong[1].range, [100.0, 800.0]);
        // A small channel kept open around the clock, and handle times that are defaults.
        let mut idle = channel(5.0, 10.0, 6.0, 5.8);
        idle.aht = AhtEvidence::default_only(600.0);
        let f = flags(&[idle], None, &config);
        let checks: Vec<&str> = f.iter().map(|f| f.check).collect();
        assert_eq!(checks, ["aht_default", "minimum_staffing"]);
        assert!(f[1].reason.contains("168 open hours"), "{}", f[1].reason);
    }
}
