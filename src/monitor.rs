//! Background work of a running service, over the published snapshots: the recurring view
//! with its metrics and problem alerts ([`recurring`]), and the cost and staffing gauges
//! ([`cost`]). The engines they run are pure ([`crate::recurring::view`],
//! [`crate::staffing::model`]); reading the snapshot, the clock and the metrics is done here.

pub mod cost;
pub mod recurring;
