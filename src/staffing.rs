//! Staffing and cost (issue 6). First part: Erlang C ([`erlang`]).

pub mod erlang;
