//! Erlang C: the probability a call waits, the service level, the average speed of answer and
//! the agents a queue needs.
//!
//! With arrival rate λ and average handle time AHT the offered load is `A = λ·AHT` erlangs. For
//! `N > A` agents:
//! - `P_wait = C(N, A)`, computed from the Erlang B recursion `B(0) = 1`,
//!   `B(k) = A·B(k−1) / (k + A·B(k−1))` and `C = N·B / (N − A·(1 − B))`. Every step stays in
//!   [0, 1], so hundreds or thousands of agents neither overflow nor lose precision — unlike the
//!   textbook `Aᴺ/N!` form.
//! - service level `SL(t) = 1 − P_wait·e^(−(N−A)·t/AHT)`;
//! - average speed of answer `ASA = P_wait·AHT / (N − A)`;
//! - occupancy `A / N`; scheduled FTE `N / (1 − shrinkage)`.

use serde::Serialize;

use super::StaffingError;

/// The probability that a call waits, with `agents` agents and `load` erlangs offered; 1 when
/// the queue is unstable (`agents ≤ load`).
pub fn p_wait(agents: u32, load: f64) -> f64 {
    if load <= 0.0 {
        return 0.0;
    }
    let n = f64::from(agents);
    if n <= load {
        return 1.0;
    }
    let mut b = 1.0;
    for k in 1..=agents {
        b = load * b / (f64::from(k) + load * b);
    }
    n * b / (n - load * (1.0 - b))
}

/// A staffing question: the traffic, the target and the limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Demand {
    /// Calls per hour.
    pub calls_per_hour: f64,
    /// Average handle time, seconds.
    pub aht_seconds: f64,
    /// Answer within this many seconds…
    pub answer_within_seconds: f64,
    /// …for this share of calls (0–1).
    pub service_level: f64,
    /// Share of paid time not on the phones (breaks, training, absence), 0–1.
    pub shrinkage: f64,
    /// Highest occupancy allowed (0–1]; 1 for no limit.
    pub max_occupancy: f64,
}

/// What `agents` agents give for a demand.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Staffing {
    /// Offered load, erlangs.
    pub load_erlangs: f64,
    /// Agents on the phones.
    pub agents: u32,
    /// Agents to schedule: `agents / (1 − shrinkage)`.
    pub scheduled_fte: f64,
    /// Probability that a call waits.
    pub p_wait: f64,
    /// Share answered within the target time.
    pub service_level: f64,
    /// Average speed of answer, seconds.
    pub asa_seconds: f64,
    /// Load / agents.
    pub occupancy: f64,
}

impl Demand {
    /// Offered load in erlangs.
    pub fn load(&self) -> f64 {
        self.calls_per_hour * self.aht_seconds / 3600.0
    }

    /// The figures `agents` agents give.
    pub fn with_agents(&self, agents: u32) -> Staffing {
        let a = self.load();
        let n = f64::from(agents);
        let pw = p_wait(agents, a);
        let (sl, asa) = if n > a {
            (
                1.0 - pw * (-(n - a) * self.answer_within_seconds / self.aht_seconds).exp(),
                pw * self.aht_seconds / (n - a),
            )
        } else {
            (0.0, f64::INFINITY)
        };
        Staffing {
            load_erlangs: a,
            agents,
            scheduled_fte: n / (1.0 - self.shrinkage),
            p_wait: pw,
            service_level: sl,
            asa_seconds: asa,
            occupancy: if n > 0.0 { a / n } else { 0.0 },
        }
    }

    /// The fewest agents that meet the service level without exceeding the occupancy limit.
    pub fn required(&self) -> Result<Staffing, StaffingError> {
        let a = self.load();
        if !(a.is_finite() && a >= 0.0) {
            return Err(StaffingError::Invalid(
                "the load (calls per hour × handle time) must be finite and ≥ 0",
            ));
        }
        if self.aht_seconds.is_nan() || self.aht_seconds <= 0.0 {
            return Err(StaffingError::Invalid("the handle time must be above 0"));
        }
        if !(0.0..1.0).contains(&self.service_level) {
            return Err(StaffingError::Invalid(
                "the service level must be within 0 (inclusive) and 1 (exclusive)",
            ));
        }
        if !(0.0..1.0).contains(&self.shrinkage) {
            return Err(StaffingError::Invalid(
                "shrinkage must be within 0 (inclusive) and 1 (exclusive)",
            ));
        }
        if !(self.max_occupancy > 0.0 && self.max_occupancy <= 1.0) {
            return Err(StaffingError::Invalid(
                "the maximum occupancy must be within (0, 1]",
            ));
        }
        if a > 1e6 {
            return Err(StaffingError::Invalid(
                "more than a million erlangs: split the queue",
            ));
        }
        // Start at the first stable count and at the occupancy limit, whichever is higher.
        let mut n = ((a / self.max_occupancy).ceil() as u32).max(a.floor() as u32 + 1);
        let limit = (a * 10.0) as u32 + 10_000;
        while n <= limit {
            let s = self.with_agents(n);
            if s.service_level >= self.service_level && s.occupancy <= self.max_occupancy {
                return Ok(s);
            }
            n += 1;
        }
        Err(StaffingError::UnmetTarget { limit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demand(calls_per_hour: f64, aht: f64, t: f64, sl: f64) -> Demand {
        Demand {
            calls_per_hour,
            aht_seconds: aht,
            answer_within_seconds: t,
            service_level: sl,
            shrinkage: 0.0,
            max_occupancy: 1.0,
        }
    }

    /// The brief's check: A = 10, N = 14, AHT = 180 s, t = 20 s.
    #[test]
    fn the_reference_point() {
        let d = demand(200.0, 180.0, 20.0, 0.8);
        assert!((d.load() - 10.0).abs() < 1e-12);
        let s = d.with_agents(14);
        assert!((s.p_wait - 0.17413).abs() < 5e-6, "{}", s.p_wait);
        assert!(
            (s.service_level - 0.88835).abs() < 5e-6,
            "{}",
            s.service_level
        );
        assert!((s.asa_seconds - 7.836).abs() < 5e-4, "{}", s.asa_seconds);
        assert!((s.occupancy - 0.714).abs() < 5e-4);
        // 80 % in 20 s needs 14 agents: 13 answer 79.56 % in time.
        let r = d.required().unwrap();
        assert_eq!(r.agents, 14);
        assert!((d.with_agents(13).service_level - 0.795_594_79).abs() < 1e-8);
    }

    /// Erlang C from its textbook sum, in log space with a log-sum-exp: an independent method.
    fn p_wait_direct(n: u32, a: f64) -> f64 {
        let ln_fact = |k: u32| (1..=k).map(|i| f64::from(i).ln()).sum::<f64>();
        let terms: Vec<f64> = (0..n).map(|k| f64::from(k) * a.ln() - ln_fact(k)).collect();
        let last = f64::from(n) * a.ln() - ln_fact(n) + (f64::from(n) / (f64::from(n) - a)).ln();
        let max = terms.iter().copied().fold(last, f64::max);
        let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum::<f64>() + (last - max).exp();
        (last - max).exp() / sum
    }

    #[test]
    fn agrees_with_the_direct_formula_up_to_hundreds_of_agents() {
        for (n, a) in [
            (2, 1.0),
            (14, 10.0),
            (30, 25.5),
            (120, 100.0),
            (450, 420.0),
            (900, 880.0),
        ] {
            let (x, y) = (p_wait(n, a), p_wait_direct(n, a));
            assert!(
                (x - y).abs() < 1e-9 * y.max(1e-3),
                "N={n} A={a}: {x} vs {y}"
            );
        }
    }

    #[test]
    fn limits_and_monotonicity() {
        assert_eq!(p_wait(10, 10.0), 1.0, "unstable queue: everyone waits");
        assert_eq!(p_wait(5, 0.0), 0.0);
        // More agents, less waiting; more load, more waiting.
        assert!(p_wait(15, 10.0) < p_wait(14, 10.0));
        assert!(p_wait(14, 11.0) > p_wait(14, 10.0));
        // A large call centre stays finite and sensible.
        let d = demand(20_000.0, 300.0, 20.0, 0.9);
        let r = d.required().unwrap();
        assert!(r.agents > 1667 && r.agents < 1800, "{r:?}");
        assert!(r.service_level >= 0.9 && r.p_wait.is_finite());
    }

    #[test]
    fn shrinkage_and_occupancy_cap() {
        let d = Demand {
            shrinkage: 0.3,
            max_occupancy: 0.85,
            ..demand(200.0, 180.0, 20.0, 0.8)
        };
        let r = d.required().unwrap();
        // 14 agents are 71 % occupied (under the cap), so the target decides.
        assert_eq!(r.agents, 14);
        assert!((r.scheduled_fte - 20.0).abs() < 1e-12);
        let tight = Demand {
            max_occupancy: 0.6,
            ..d
        };
        assert_eq!(tight.required().unwrap().agents, 17, "10 / 0.6 → 17");
        // A stricter target needs more agents.
        let strict = demand(200.0, 180.0, 20.0, 0.95);
        assert!(strict.required().unwrap().agents > 14);
        assert!(demand(200.0, 0.0, 20.0, 0.8).required().is_err());
        assert!(
            Demand {
                shrinkage: 1.0,
                ..d
            }
            .required()
            .is_err()
        );
    }
}
