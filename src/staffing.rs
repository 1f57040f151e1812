//! Staffing and cost (issue 6), first parts: Erlang C ([`erlang`]) and the cost models
//! ([`cost`]).

pub mod cost;
pub mod erlang;
pub mod model;
pub mod plan;
pub mod workload;
