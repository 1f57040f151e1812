//! What the SLA engine (and the recurring monitor) tell the alert dispatcher: pure values.
//! Delivery (queues, retries, receivers) is [`crate::alert`]'s.

use super::ClockKind;
use crate::base::Millis;

/// What an alert says about a ticket's clock.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertInfo {
    /// Ticket.
    pub ticket_id: String,
    /// Tenant.
    pub tenant: Option<String>,
    /// Assignment group.
    pub group: Option<String>,
    /// Priority.
    pub priority: &'static str,
    /// Clock.
    pub clock: ClockKind,
    /// Level: a warning percentage, or 100 for breached.
    pub level: u8,
    /// Ticket title.
    pub title: String,
    /// Policy name.
    pub policy: String,
    /// Deadline (or when it was breached).
    pub deadline: Option<Millis>,
    /// When the level was reached.
    pub since: Millis,
}

/// A change to the set of active alerts.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertUpdate {
    /// This level is now active for the clock (other levels of the clock resolve).
    Fire(AlertInfo),
    /// Nothing is active for the clock any more.
    Clear {
        /// Ticket.
        ticket_id: String,
        /// Clock.
        clock: ClockKind,
    },
    /// The clock is no longer this instance's (a Kafka partition moved): drop it silently.
    Forget {
        /// Ticket.
        ticket_id: String,
        /// Clock.
        clock: ClockKind,
    },
    /// A recurring fingerprint is (still) a problem candidate.
    Problem(ProblemAlert),
    /// A fingerprint is no longer a problem candidate.
    ProblemEnded {
        /// Fingerprint id.
        fingerprint: String,
    },
}

/// What an alert says about a problem candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct ProblemAlert {
    /// Fingerprint id.
    pub fingerprint: String,
    /// Readable label.
    pub label: String,
    /// Text cluster id.
    pub cluster_id: String,
    /// Tenant, category, configuration item (when part of the fingerprint).
    pub tenant: String,
    /// Category.
    pub category: String,
    /// Configuration item or service.
    pub configuration_item: String,
    /// Tickets in the window.
    pub tickets: u64,
    /// Spike score.
    pub spike_score: f64,
    /// Window length, as configured (`7d`).
    pub window: String,
    /// Newest tickets.
    pub samples: Vec<String>,
    /// When it was first seen a candidate (ms).
    pub since: Millis,
}
