//! Staffing and cost, as state and math only: Erlang C ([`erlang`]), the cost models
//! ([`cost`]), opening hours per channel ([`hours`]), weeks staffed per hour and compared
//! ([`plan`]), the model of `[cost]` over an observed workload ([`model`]) and plausibility
//! flags ([`checks`]). The workload is read by [`crate::query::workload`]; the gauges of a
//! running service are kept by [`crate::monitor::cost`].

pub mod checks;
pub mod cost;
pub mod erlang;
pub mod hours;
pub mod model;
pub mod plan;

/// Why a staffing or cost model could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StaffingError {
    /// An input out of its domain: a load, a share, a handle time.
    #[error("{0}")]
    Invalid(&'static str),
    /// No staffing up to the limit meets the target.
    #[error("no staffing up to {limit} agents meets the target")]
    UnmetTarget {
        /// Agents tried.
        limit: u32,
    },
    /// A what-if parameter out of range.
    #[error("invalid parameter `{name}`: {problem}")]
    WhatIf {
        /// The parameter.
        name: &'static str,
        /// Its range.
        problem: String,
    },
    /// `msp-pricing` names no pricing.
    #[error("unknown pricing `{0}`")]
    Pricing(String),
    /// A week profile without 168 hours.
    #[error("a week has 168 hours, not {arrivals} (arrivals) and {open} (open hours)")]
    Week {
        /// Arrival values given.
        arrivals: usize,
        /// Open-hour values given.
        open: usize,
    },
}
