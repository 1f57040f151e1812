//! A week of staffing from an hour-of-week arrivals profile, its monthly cost in-house and
//! outsourced, and the volume at which the two cost the same.

use serde::Serialize;

use super::cost::{InHouse, Msp};
use super::erlang::Demand;

/// Weeks in a month on average (52 / 12).
pub const WEEKS_PER_MONTH: f64 = 52.0 / 12.0;

/// The service target and the limits every interval is staffed to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// Average handle time, seconds.
    pub aht_seconds: f64,
    /// Answer within this many seconds…
    pub answer_within_seconds: f64,
    /// …for this share of calls.
    pub service_level: f64,
    /// Share of paid time off the queue.
    pub shrinkage: f64,
    /// Highest occupancy allowed.
    pub max_occupancy: f64,
    /// Paid hours of one FTE per week.
    pub hours_per_fte_week: f64,
}

/// A staffed week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// Agents on the queue in each hour of the week (0 = Monday 00:00).
    pub agents: Vec<u32>,
    /// Agent-hours on the queue.
    pub agent_hours: f64,
    /// Tickets arriving in the week.
    pub tickets: f64,
    /// FTE to employ: agent-hours / hours per FTE / (1 − shrinkage).
    pub fte: f64,
}

/// Staffs every hour of `profile` (arrivals per hour, 168 values) to `target`.
pub fn staff_week(profile: &[f64], target: &Target) -> Result<Week, String> {
    if profile.len() != 168 {
        return Err(format!("a week has 168 hours, not {}", profile.len()));
    }
    let mut agents = Vec::with_capacity(168);
    for &rate in profile {
        let n = if rate <= 0.0 {
            0
        } else {
            Demand {
                calls_per_hour: rate,
                aht_seconds: target.aht_seconds,
                answer_within_seconds: target.answer_within_seconds,
                service_level: target.service_level,
                shrinkage: target.shrinkage,
                max_occupancy: target.max_occupancy,
            }
            .required()?
            .agents
        };
        agents.push(n);
    }
    let agent_hours: f64 = agents.iter().map(|&n| f64::from(n)).sum();
    Ok(Week {
        fte: agent_hours / target.hours_per_fte_week / (1.0 - target.shrinkage),
        tickets: profile.iter().sum(),
        agent_hours,
        agents,
    })
}

/// The month of both models at `scale` times the profile's volume.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    /// Volume multiplier.
    pub scale: f64,
    /// Tickets per month.
    pub tickets: f64,
    /// FTE in-house.
    pub fte: f64,
    /// In-house monthly cost.
    pub in_house: f64,
    /// Outsourced monthly cost.
    pub outsourced: f64,
    /// In-house cost per ticket.
    pub in_house_per_ticket: f64,
    /// Outsourced cost per ticket.
    pub outsourced_per_ticket: f64,
}

/// Compares the two models at `scale` × the profile's volume; handle minutes per ticket and
/// breaches per ticket scale with it.
pub fn compare(
    profile: &[f64],
    target: &Target,
    in_house: &InHouse,
    msp: &Msp,
    breaches_per_ticket: f64,
    scale: f64,
) -> Result<Comparison, String> {
    let scaled: Vec<f64> = profile.iter().map(|r| r * scale).collect();
    let week = staff_week(&scaled, target)?;
    let tickets = week.tickets * WEEKS_PER_MONTH;
    let minutes = tickets * target.aht_seconds / 60.0;
    let inside = in_house.monthly(week.fte).total;
    let outside = msp
        .monthly(tickets, minutes, tickets * breaches_per_ticket)
        .total;
    let per = |c: f64| if tickets > 0.0 { c / tickets } else { 0.0 };
    Ok(Comparison {
        scale,
        tickets,
        fte: week.fte,
        in_house: inside,
        outsourced: outside,
        in_house_per_ticket: per(inside),
        outsourced_per_ticket: per(outside),
    })
}

/// The smallest volume multiplier in `[0.01, 100]` from which in-house costs no more than
/// outsourcing, to about 0.1 %; `None` when it never does in that range. (In-house staffing
/// has economies of scale — larger queues need fewer agents per call — so it tends to win
/// from some volume on, against a price per ticket.)
pub fn break_even(
    profile: &[f64],
    target: &Target,
    in_house: &InHouse,
    msp: &Msp,
    breaches_per_ticket: f64,
) -> Result<Option<f64>, String> {
    let diff = |s: f64| -> Result<f64, String> {
        let c = compare(profile, target, in_house, msp, breaches_per_ticket, s)?;
        Ok(c.in_house - c.outsourced)
    };
    let mut lo = 0.01;
    if diff(lo)? <= 0.0 {
        return Ok(Some(lo));
    }
    let mut hi = lo;
    while diff(hi)? > 0.0 {
        hi *= 1.25;
        if hi > 100.0 {
            return Ok(None);
        }
    }
    lo = hi / 1.25;
    while (hi - lo) / hi > 1e-3 {
        let mid = (lo + hi) / 2.0;
        if diff(mid)? > 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(Some(hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::staffing::cost::Pricing;

    fn target() -> Target {
        Target {
            aht_seconds: 180.0,
            answer_within_seconds: 20.0,
            service_level: 0.8,
            shrinkage: 0.3,
            max_occupancy: 1.0,
            hours_per_fte_week: 40.0,
        }
    }

    fn in_house() -> InHouse {
        InHouse {
            annual_salary: 44_109.0,
            load_factor: 1.3,
            tools_per_seat_month: 150.0,
            agents_per_manager: 10.0,
            manager_annual_salary: 60_340.0,
        }
    }

    fn msp(price: f64) -> Msp {
        Msp {
            pricing: Pricing::Ticket { price },
            credit_per_breach: 50.0,
            credit_cap: 0.1,
        }
    }

    #[test]
    fn a_flat_week_by_hand() {
        // 200 calls an hour at 180 s, 80 % in 20 s: 14 agents every hour (erlang tests).
        let w = staff_week(&[200.0; 168], &target()).unwrap();
        assert!(w.agents.iter().all(|&n| n == 14));
        assert_eq!(w.agent_hours, 14.0 * 168.0);
        // 2,352 agent-hours / 40 h / 0.7 = 84 FTE.
        assert!((w.fte - 84.0).abs() < 1e-9);
        assert_eq!(w.tickets, 200.0 * 168.0);
        // Closed hours need nobody.
        let mut office = vec![0.0; 168];
        office[9] = 200.0;
        assert_eq!(staff_week(&office, &target()).unwrap().agent_hours, 14.0);
        assert!(staff_week(&[1.0; 24], &target()).is_err());
    }

    #[test]
    fn volume_has_economies_of_scale_and_a_break_even() {
        let mut profile = vec![0.0; 168];
        for day in 0..5 {
            for hour in 8..18 {
                profile[day * 24 + hour] = 20.0;
            }
        }
        let t = target();
        let one = compare(&profile, &t, &in_house(), &msp(20.0), 0.0, 1.0).unwrap();
        let ten = compare(&profile, &t, &in_house(), &msp(20.0), 0.0, 10.0).unwrap();
        assert!((one.tickets - 20.0 * 50.0 * WEEKS_PER_MONTH).abs() < 1e-9);
        // Ten times the calls need fewer than ten times the agents.
        assert!(ten.fte < 10.0 * one.fte * 0.8, "{} vs {}", ten.fte, one.fte);
        assert!(ten.in_house_per_ticket < one.in_house_per_ticket);
        // Per ticket, the MSP price does not move (no breaches).
        assert!((one.outsourced_per_ticket - 20.0).abs() < 1e-9);
        let s = break_even(&profile, &t, &in_house(), &msp(20.0), 0.0)
            .unwrap()
            .expect("in-house wins from some volume on");
        let at = compare(&profile, &t, &in_house(), &msp(20.0), 0.0, s).unwrap();
        assert!(at.in_house <= at.outsourced);
        let below = compare(&profile, &t, &in_house(), &msp(20.0), 0.0, s * 0.95).unwrap();
        assert!(below.in_house > below.outsourced);
        // A cheaper provider moves the break-even to a higher volume.
        let cheaper = break_even(&profile, &t, &in_house(), &msp(15.0), 0.0)
            .unwrap()
            .unwrap();
        assert!(cheaper > s);
        // SLA credits make outsourcing cheaper too.
        let credited = compare(&profile, &t, &in_house(), &msp(20.0), 0.05, 1.0).unwrap();
        assert!(
            (credited.outsourced - one.outsourced * 0.9).abs() < 1e-6,
            "capped at 10 %"
        );
    }
}
