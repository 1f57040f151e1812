//! Cost models: running the desk in-house, or buying it from a managed service provider (MSP).
//!
//! - In-house, per month: `FTE × salary/12 × load factor` (benefits, payroll taxes, overhead)
//!   `+ FTE × tools per seat` `+ FTE / agents-per-manager × manager salary/12 × load factor`.
//! - MSP, per month: the fee (per user and month, per ticket, or per handle-minute) minus the
//!   SLA credits earned from the actual breaches, capped at a share of the fee as contracts do.
//!
//! Salary profiles are configuration; the built-in ones are the brief's figures.

use serde::Serialize;

/// An annual salary with where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SalaryProfile {
    /// Name used in configuration.
    pub name: &'static str,
    /// Gross annual salary, dollars.
    pub annual: f64,
    /// Source.
    pub source: &'static str,
}

/// Paid hours in a year (52 weeks × 40 h), to turn annual salaries into hourly rates.
pub const HOURS_PER_YEAR: f64 = 2080.0;

/// The brief's salary figures.
pub const PROFILES: &[SalaryProfile] = &[
    SalaryProfile {
        name: "us-helpdesk-2023-average",
        annual: 44_109.0,
        source: "US IT help-desk analyst, April 2023, average ($21.21/h)",
    },
    SalaryProfile {
        name: "us-helpdesk-2023-p25",
        annual: 34_687.0,
        source: "US IT help-desk analyst, April 2023, 25th percentile",
    },
    SalaryProfile {
        name: "us-helpdesk-2023-p75",
        annual: 47_860.0,
        source: "US IT help-desk analyst, April 2023, 75th percentile",
    },
    SalaryProfile {
        name: "ca-helpdesk-average",
        annual: 59_783.0,
        source: "Canada IT help-desk analyst, average ($30.66/h)",
    },
    SalaryProfile {
        name: "ca-helpdesk-entry",
        annual: 46_176.0,
        source: "Canada IT help-desk analyst, entry level",
    },
    SalaryProfile {
        name: "ca-helpdesk-experienced",
        annual: 74_796.0,
        source: "Canada IT help-desk analyst, experienced",
    },
    SalaryProfile {
        name: "us-support-2024-p10",
        annual: 38_780.0,
        source: "US computer user support specialists, May 2024, 10th percentile",
    },
    SalaryProfile {
        name: "us-support-2024-p25",
        annual: 47_580.0,
        source: "US computer user support specialists, May 2024, 25th percentile",
    },
    SalaryProfile {
        name: "us-support-2024-median",
        annual: 60_340.0,
        source: "US computer user support specialists, May 2024, median",
    },
    SalaryProfile {
        name: "us-support-2024-p75",
        annual: 77_010.0,
        source: "US computer user support specialists, May 2024, 75th percentile",
    },
    SalaryProfile {
        name: "us-support-2024-p90",
        annual: 98_010.0,
        source: "US computer user support specialists, May 2024, 90th percentile",
    },
];

/// A built-in profile by name.
pub fn profile(name: &str) -> Option<&'static SalaryProfile> {
    PROFILES.iter().find(|p| p.name == name)
}

/// The in-house model's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InHouse {
    /// Agent annual salary, dollars.
    pub annual_salary: f64,
    /// Employer cost per salary dollar (benefits, taxes, overhead); 1.3–1.4 is usual.
    pub load_factor: f64,
    /// Tools and licences per seat and month, dollars.
    pub tools_per_seat_month: f64,
    /// Agents per team lead or manager.
    pub agents_per_manager: f64,
    /// Manager annual salary, dollars.
    pub manager_annual_salary: f64,
}

/// One month of the in-house model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct InHouseCost {
    /// Scheduled FTE.
    pub fte: f64,
    /// Loaded agent salaries.
    pub salaries: f64,
    /// Tools and licences.
    pub tools: f64,
    /// Loaded management.
    pub management: f64,
    /// The sum.
    pub total: f64,
}

impl InHouse {
    /// The loaded cost of one agent hour.
    pub fn loaded_hourly_rate(&self) -> f64 {
        self.annual_salary * self.load_factor / HOURS_PER_YEAR
    }

    /// One month with `fte` scheduled agents.
    pub fn monthly(&self, fte: f64) -> InHouseCost {
        let salaries = fte * self.annual_salary / 12.0 * self.load_factor;
        let tools = fte * self.tools_per_seat_month;
        let management = if self.agents_per_manager > 0.0 {
            fte / self.agents_per_manager * self.manager_annual_salary / 12.0 * self.load_factor
        } else {
            0.0
        };
        InHouseCost {
            fte,
            salaries,
            tools,
            management,
            total: salaries + tools + management,
        }
    }
}

/// How the provider charges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "per", rename_all = "snake_case")]
pub enum Pricing {
    /// A price per supported user and month.
    UserMonth {
        /// Users supported.
        users: f64,
        /// Dollars per user and month.
        price: f64,
    },
    /// A price per ticket.
    Ticket {
        /// Dollars per ticket.
        price: f64,
    },
    /// A price per minute of handle time.
    HandleMinute {
        /// Dollars per minute.
        price: f64,
    },
}

/// The outsourced model's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Msp {
    /// Pricing.
    pub pricing: Pricing,
    /// Credit owed per breached SLA clock, dollars.
    pub credit_per_breach: f64,
    /// Credits never exceed this share of the month's fee (0–1).
    pub credit_cap: f64,
}

/// One month of the outsourced model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MspCost {
    /// The fee before credits.
    pub fee: f64,
    /// SLA credits (subtracted).
    pub credits: f64,
    /// Fee minus credits.
    pub total: f64,
}

impl Msp {
    /// One month with this volume and these breaches.
    pub fn monthly(&self, tickets: f64, handle_minutes: f64, breaches: f64) -> MspCost {
        let fee = match self.pricing {
            Pricing::UserMonth { users, price } => users * price,
            Pricing::Ticket { price } => tickets * price,
            Pricing::HandleMinute { price } => handle_minutes * price,
        };
        let credits = (breaches * self.credit_per_breach).min(fee * self.credit_cap);
        MspCost {
            fee,
            credits,
            total: fee - credits,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn in_house() -> InHouse {
        InHouse {
            annual_salary: profile("us-helpdesk-2023-average").unwrap().annual,
            load_factor: 1.3,
            tools_per_seat_month: 150.0,
            agents_per_manager: 10.0,
            manager_annual_salary: profile("us-support-2024-median").unwrap().annual,
        }
    }

    #[test]
    fn the_profiles_are_the_briefs_figures() {
        let us = profile("us-helpdesk-2023-average").unwrap();
        // $44,109 a year is $21.21 an hour and $3,675.75 a month.
        assert!((us.annual / HOURS_PER_YEAR - 21.206).abs() < 1e-3);
        assert!((us.annual / 12.0 - 3675.75).abs() < 1e-9);
        let ca = profile("ca-helpdesk-average").unwrap();
        assert!(
            (ca.annual / HOURS_PER_YEAR - 28.74).abs() < 0.01,
            "2080 h basis"
        );
        assert_eq!(PROFILES.len(), 11);
        assert!(profile("nowhere").is_none());
    }

    #[test]
    fn in_house_by_hand() {
        // 20 FTE: 20 × 44,109 / 12 × 1.3 = 95,569.50; tools 20 × 150 = 3,000;
        // 2 managers × 60,340 / 12 × 1.3 = 13,073.67.
        let c = in_house().monthly(20.0);
        assert!((c.salaries - 95_569.5).abs() < 1e-6);
        assert!((c.tools - 3_000.0).abs() < 1e-9);
        assert!((c.management - 13_073.666_666_7).abs() < 1e-6);
        assert!((c.total - 111_643.166_666_7).abs() < 1e-6);
        assert!((in_house().loaded_hourly_rate() - 27.568).abs() < 1e-3);
        // Linear in FTE.
        let half = in_house().monthly(10.0);
        assert!((half.total * 2.0 - c.total).abs() < 1e-6);
    }

    #[test]
    fn msp_by_hand_with_capped_credits() {
        let per_ticket = Msp {
            pricing: Pricing::Ticket { price: 25.0 },
            credit_per_breach: 100.0,
            credit_cap: 0.1,
        };
        let c = per_ticket.monthly(3_000.0, 45_000.0, 10.0);
        assert_eq!((c.fee, c.credits, c.total), (75_000.0, 1_000.0, 74_000.0));
        // 200 breaches would owe 20,000; the cap is 10 % of the fee.
        let capped = per_ticket.monthly(3_000.0, 45_000.0, 200.0);
        assert_eq!((capped.credits, capped.total), (7_500.0, 67_500.0));
        let per_user = Msp {
            pricing: Pricing::UserMonth {
                users: 2_500.0,
                price: 32.0,
            },
            ..per_ticket
        };
        assert_eq!(per_user.monthly(3_000.0, 45_000.0, 0.0).total, 80_000.0);
        let per_minute = Msp {
            pricing: Pricing::HandleMinute { price: 1.5 },
            ..per_ticket
        };
        assert_eq!(per_minute.monthly(3_000.0, 45_000.0, 0.0).fee, 67_500.0);
    }
}
