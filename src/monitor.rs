//! Background work of a running service, over the published snapshots: the recurring view
//! with its metrics and problem alerts ([`recurring`]), and the cost and staffing gauges
//! ([`cost`]). The engines they run are pure ([`crate::recurring::view`],
//! [`crate::staffing::model`]); reading the snapshot, the clock and the metrics is done here.

pub mod cost;
pub mod recurring;

/// A monitor that stopped for good: its thread panicked. The service ends with it.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// The monitor's work failed in a way the next refresh would not mend.
    #[error("the {monitor} monitor failed: {detail}")]
    Failed {
        /// Which monitor.
        monitor: &'static str,
        /// What happened.
        detail: String,
    },
}
