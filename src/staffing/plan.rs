//! A week of staffing from an hour-of-week arrivals profile, its monthly cost in-house and
//! outsourced, and the volume at which the two cost the same.

use serde::Serialize;

use super::StaffingError;
use super::cost::{InHouse, Msp};
use super::erlang::{Demand, Staffing};

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

/// One queue: a channel's arrivals per hour of the week, the hours it is open and the target
/// it is staffed to.
#[derive(Debug, Clone, PartialEq)]
pub struct Queue {
    /// The channel (`phone`, `email`, …).
    pub channel: String,
    /// Mean arrivals in each hour of the week (168 values, 0 = Monday 00:00 UTC).
    pub arrivals: Vec<f64>,
    /// The hours of the week the channel is staffed (168 values).
    pub open: Vec<bool>,
    /// Agents on the queue in every open hour, however few tickets arrive.
    pub minimum_agents: u32,
    /// Its target, handle time and limits.
    pub target: Target,
}

impl Queue {
    /// A queue open around the clock with nobody on it in hours without arrivals.
    pub fn always_open(channel: &str, arrivals: Vec<f64>, target: Target) -> Queue {
        Queue {
            channel: channel.to_string(),
            arrivals,
            open: vec![true; 168],
            minimum_agents: 0,
            target,
        }
    }
}

/// A staffed week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Week {
    /// Agents on the queue in each hour of the week (0 = Monday 00:00).
    pub agents: Vec<u32>,
    /// The Erlang C figures of each hour with arrivals (`None` for hours without any).
    pub hours: Vec<Option<Staffing>>,
    /// Agent-hours on the queue.
    pub agent_hours: f64,
    /// Agent-hours of open hours staffed at the minimum because the tickets would need no
    /// more: the price of being open.
    pub minimum_agent_hours: f64,
    /// Open hours in the week.
    pub open_hours: u32,
    /// Tickets arriving in the week.
    pub tickets: f64,
    /// Arrivals per hour as the open hours see them (closed hours carried forward).
    pub arrivals: Vec<f64>,
    /// FTE to employ: agent-hours / hours per FTE / (1 − shrinkage).
    pub fte: f64,
    /// The part of `fte` that is minimum staffing.
    pub minimum_fte: f64,
}

/// The arrivals of `profile` as the open hours of `open` see them: what arrives while the
/// channel is closed waits for the next stretch of open hours and is spread evenly over it
/// (the backlog is worked off in that stretch). Without any open hour the profile is kept.
pub fn carry_into_open_hours(profile: &[f64], open: &[bool]) -> Vec<f64> {
    let n = profile.len();
    if open.len() != n || open.iter().all(|&o| o) || !open.iter().any(|&o| o) {
        return profile.to_vec();
    }
    let mut out: Vec<f64> = profile
        .iter()
        .zip(open)
        .map(|(&r, &o)| if o { r } else { 0.0 })
        .collect();
    // Start just after an open hour, so that every closed stretch is met whole.
    let start = (0..n)
        .find(|&h| open[h] && !open[(h + 1) % n])
        .map_or(0, |h| h + 1);
    let mut waiting = 0.0;
    for i in (start..start + n).map(|h| h % n) {
        if !open[i] {
            waiting += profile[i];
        } else if waiting > 0.0 {
            let stretch: Vec<usize> = (0..n)
                .map(|k| (i + k) % n)
                .take_while(|&j| open[j])
                .collect();
            let share = waiting / stretch.len() as f64;
            for j in stretch {
                out[j] += share;
            }
            waiting = 0.0;
        }
    }
    out
}

/// Staffs every hour of `profile` (arrivals per hour, 168 values) to `target`, with
/// everybody in the open hours of `open` and at least `minimum` agents in each of them; what
/// arrives in closed hours is carried into the next open ones ([`carry_into_open_hours`]).
pub fn staff_week(
    profile: &[f64],
    open: &[bool],
    minimum: u32,
    target: &Target,
) -> Result<Week, StaffingError> {
    if profile.len() != 168 || open.len() != 168 {
        return Err(StaffingError::Week {
            arrivals: profile.len(),
            open: open.len(),
        });
    }
    let carried = carry_into_open_hours(profile, open);
    let open_somewhere = open.iter().any(|&o| o);
    let (mut hours, mut agents) = (Vec::with_capacity(168), Vec::with_capacity(168));
    let mut minimum_agent_hours = 0.0;
    for (h, &rate) in carried.iter().enumerate() {
        let staffed = open[h] || !open_somewhere;
        let figures = if rate <= 0.0 {
            None
        } else {
            Some(
                Demand {
                    calls_per_hour: rate,
                    aht_seconds: target.aht_seconds,
                    answer_within_seconds: target.answer_within_seconds,
                    service_level: target.service_level,
                    shrinkage: target.shrinkage,
                    max_occupancy: target.max_occupancy,
                }
                .required()?,
            )
        };
        let needed = figures.map_or(0, |s| s.agents);
        let n = if staffed { needed.max(minimum) } else { needed };
        if staffed && minimum > 0 && needed <= minimum {
            minimum_agent_hours += f64::from(n);
        }
        hours.push(figures);
        agents.push(n);
    }
    let agent_hours: f64 = agents.iter().map(|&n| f64::from(n)).sum();
    let fte = |h: f64| h / target.hours_per_fte_week / (1.0 - target.shrinkage);
    Ok(Week {
        fte: fte(agent_hours),
        minimum_fte: fte(minimum_agent_hours),
        open_hours: if open_somewhere {
            open.iter().filter(|&&o| o).count() as u32
        } else {
            168
        },
        tickets: profile.iter().sum(),
        arrivals: carried,
        agent_hours,
        minimum_agent_hours,
        agents,
        hours,
    })
}

/// Staffs each queue at `scale` times its volume. Queues are staffed apart (no agent is
/// counted on two channels at once), which is what a desk with dedicated phone and
/// back-office teams does and an upper bound for one with fully blended agents.
pub fn staff_queues(queues: &[Queue], scale: f64) -> Result<Vec<Week>, StaffingError> {
    queues
        .iter()
        .map(|q| {
            let scaled: Vec<f64> = q.arrivals.iter().map(|r| r * scale).collect();
            staff_week(&scaled, &q.open, q.minimum_agents, &q.target)
        })
        .collect()
}

/// The month of both models at `scale` times the profile's volume.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    /// Volume multiplier.
    pub scale: f64,
    /// Tickets per month.
    pub tickets: f64,
    /// Handle minutes per month.
    pub handle_minutes: f64,
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

/// Compares the two models at `scale` × the queues' volume; handle minutes and breaches scale
/// with the tickets.
pub fn compare(
    queues: &[Queue],
    in_house: &InHouse,
    msp: &Msp,
    breaches_per_ticket: f64,
    scale: f64,
) -> Result<Comparison, StaffingError> {
    let weeks = staff_queues(queues, scale)?;
    let fte: f64 = weeks.iter().map(|w| w.fte).sum();
    let tickets: f64 = weeks.iter().map(|w| w.tickets).sum::<f64>() * WEEKS_PER_MONTH;
    let minutes: f64 = queues
        .iter()
        .zip(&weeks)
        .map(|(q, w)| w.tickets * q.target.aht_seconds / 60.0)
        .sum::<f64>()
        * WEEKS_PER_MONTH;
    let inside = in_house.monthly(fte).total;
    let outside = msp
        .monthly(tickets, minutes, tickets * breaches_per_ticket)
        .total;
    let per = |c: f64| if tickets > 0.0 { c / tickets } else { 0.0 };
    Ok(Comparison {
        scale,
        tickets,
        handle_minutes: minutes,
        fte,
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
    queues: &[Queue],
    in_house: &InHouse,
    msp: &Msp,
    breaches_per_ticket: f64,
) -> Result<Option<f64>, StaffingError> {
    let diff = |s: f64| -> Result<f64, StaffingError> {
        let c = compare(queues, in_house, msp, breaches_per_ticket, s)?;
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
        let all = [true; 168];
        let w = staff_week(&[200.0; 168], &all, 0, &target()).unwrap();
        assert!(w.agents.iter().all(|&n| n == 14));
        assert_eq!(w.agent_hours, 14.0 * 168.0);
        // 2,352 agent-hours / 40 h / 0.7 = 84 FTE.
        assert!((w.fte - 84.0).abs() < 1e-9);
        assert_eq!(w.tickets, 200.0 * 168.0);
        // Closed hours need nobody.
        let mut office = vec![0.0; 168];
        office[9] = 200.0;
        assert_eq!(
            staff_week(&office, &all, 0, &target()).unwrap().agent_hours,
            14.0
        );
        assert!(staff_week(&[1.0; 24], &all, 0, &target()).is_err());
    }

    #[test]
    fn volume_has_economies_of_scale_and_a_break_even() {
        let mut profile = vec![0.0; 168];
        for day in 0..5 {
            for hour in 8..18 {
                profile[day * 24 + hour] = 20.0;
            }
        }
        let q = [Queue::always_open("phone", profile, target())];
        let one = compare(&q, &in_house(), &msp(20.0), 0.0, 1.0).unwrap();
        let ten = compare(&q, &in_house(), &msp(20.0), 0.0, 10.0).unwrap();
        assert!((one.tickets - 20.0 * 50.0 * WEEKS_PER_MONTH).abs() < 1e-9);
        // Ten times the calls need fewer than ten times the agents.
        assert!(ten.fte < 10.0 * one.fte * 0.8, "{} vs {}", ten.fte, one.fte);
        assert!(ten.in_house_per_ticket < one.in_house_per_ticket);
        // Per ticket, the MSP price does not move (no breaches).
        assert!((one.outsourced_per_ticket - 20.0).abs() < 1e-9);
        let s = break_even(&q, &in_house(), &msp(20.0), 0.0)
            .unwrap()
            .expect("in-house wins from some volume on");
        let at = compare(&q, &in_house(), &msp(20.0), 0.0, s).unwrap();
        assert!(at.in_house <= at.outsourced);
        let below = compare(&q, &in_house(), &msp(20.0), 0.0, s * 0.95).unwrap();
        assert!(below.in_house > below.outsourced);
        // A cheaper provider moves the break-even to a higher volume.
        let cheaper = break_even(&q, &in_house(), &msp(15.0), 0.0)
            .unwrap()
            .unwrap();
        assert!(cheaper > s);
        // SLA credits make outsourcing cheaper too.
        let credited = compare(&q, &in_house(), &msp(20.0), 0.05, 1.0).unwrap();
        assert!(
            (credited.outsourced - one.outsourced * 0.9).abs() < 1e-6,
            "capped at 10 %"
        );
    }

    #[test]
    fn queues_are_staffed_apart_to_their_own_targets() {
        let phone = Queue::always_open("phone", vec![200.0; 168], target());
        // E-mail: 20 an hour at 30 minutes, answered within 4 hours (first response), at most
        // 85 % busy: a load of 10 erlangs needs ceil(10 / 0.85) = 12 agents; the wait target
        // is met long before.
        let email = Queue::always_open(
            "email",
            vec![20.0; 168],
            Target {
                aht_seconds: 1800.0,
                answer_within_seconds: 4.0 * 3600.0,
                service_level: 0.9,
                max_occupancy: 0.85,
                ..target()
            },
        );
        let weeks = staff_queues(&[phone.clone(), email.clone()], 1.0).unwrap();
        assert!(weeks[0].agents.iter().all(|&n| n == 14));
        assert!(weeks[1].agents.iter().all(|&n| n == 12));
        let h = weeks[1].hours[0].unwrap();
        assert!(h.service_level > 0.99 && (h.occupancy - 10.0 / 12.0).abs() < 1e-12);
        let both = compare(&[phone.clone(), email], &in_house(), &msp(20.0), 0.0, 1.0).unwrap();
        let alone = compare(&[phone], &in_house(), &msp(20.0), 0.0, 1.0).unwrap();
        // (14 + 12) × 168 agent-hours / 40 / 0.7 = 156 FTE; minutes add per channel.
        assert!((both.fte - 156.0).abs() < 1e-9, "{}", both.fte);
        assert!((alone.fte - 84.0).abs() < 1e-9);
        let minutes = (200.0 * 3.0 + 20.0 * 30.0) * 168.0 * WEEKS_PER_MONTH;
        assert!((both.handle_minutes - minutes).abs() < 1e-6);
        // Scaling doubles the tickets of every queue.
        let doubled = compare(&[weeks_queue()], &in_house(), &msp(20.0), 0.0, 2.0).unwrap();
        assert!((doubled.tickets - 2.0 * 50.0 * 168.0 * WEEKS_PER_MONTH).abs() < 1e-6);
    }

    fn weeks_queue() -> Queue {
        Queue::always_open("chat", vec![50.0; 168], target())
    }

    #[test]
    fn closed_hours_carry_their_tickets_and_open_hours_keep_a_minimum() {
        // Open Monday–Friday 09:00–17:00 (40 hours); one ticket every hour of the week.
        let open: Vec<bool> = (0..168)
            .map(|h| h < 120 && (9..17).contains(&(h % 24)))
            .collect();
        let carried = carry_into_open_hours(&[1.0; 168], &open);
        assert!(
            (carried.iter().sum::<f64>() - 168.0).abs() < 1e-9,
            "nothing lost"
        );
        assert!(carried.iter().zip(&open).all(|(&r, &o)| o || r == 0.0));
        // Friday 17:00 → Monday 09:00 is 64 closed hours, spread over Monday's 8 open ones.
        assert!(
            (carried[9] - (1.0 + 64.0 / 8.0)).abs() < 1e-9,
            "{}",
            carried[9]
        );
        // Tuesday: the 16 hours of Monday night over Tuesday's 8.
        assert!((carried[33] - 3.0).abs() < 1e-9);
        // Staffed: every open hour has at least 2 agents, closed hours none.
        let t = Target {
            aht_seconds: 600.0,
            answer_within_seconds: 14_400.0,
            service_level: 0.9,
            max_occupancy: 0.85,
            ..target()
        };
        let w = staff_week(&[1.0; 168], &open, 2, &t).unwrap();
        assert_eq!(w.open_hours, 40);
        assert!(
            w.agents
                .iter()
                .zip(&open)
                .all(|(&n, &o)| if o { n >= 2 } else { n == 0 })
        );
        // 9 tickets an hour at 10 minutes are 1.5 erlangs: 2 agents, at the floor; every
        // open hour is minimum staffing.
        assert_eq!(w.agent_hours, 80.0);
        assert_eq!(w.minimum_agent_hours, 80.0);
        assert!((w.minimum_fte - 80.0 / 40.0 / 0.7).abs() < 1e-9);
        assert!((w.fte - w.minimum_fte).abs() < 1e-12);
        // A busy channel is above the floor: none of it is minimum staffing.
        let busy = staff_week(&[200.0; 168], &[true; 168], 1, &target()).unwrap();
        assert_eq!(busy.minimum_agent_hours, 0.0);
        // A channel without any open hour is staffed where tickets arrive (never dropped).
        let shut = staff_week(&[1.0; 168], &[false; 168], 1, &t).unwrap();
        assert_eq!(shut.open_hours, 168);
        assert!(shut.agents.iter().all(|&n| n == 1));
    }
}
