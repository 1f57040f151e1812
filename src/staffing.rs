//! Staffing and cost: Erlang C ([`erlang`]), the cost models ([`cost`]), the workload views
//! ([`workload`]), opening hours per channel ([`hours`]), weeks staffed per hour and compared
//! ([`plan`]), the model of `[cost]` fed by the observed workload ([`model`]), plausibility
//! flags ([`checks`]) and its gauges in a running service ([`monitor`]).

pub mod checks;
pub mod cost;
pub mod erlang;
pub mod hours;
pub mod model;
pub mod monitor;
pub mod plan;
pub mod workload;
