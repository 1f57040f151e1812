//! The timeline of a ticket's clocks as the engine lives it: the ticket's changes are replayed
//! through a fresh [`SlaState`] under the same rules, and every step of every clock is read
//! from the engine's own state — starts, pauses and resumptions (with the statuses and cycles
//! the rules define), re-targets, the exact instant each warning threshold and the target were
//! crossed, stops, and the deadline ahead. Nothing about clock semantics is decided here.

use std::sync::Arc;

use super::{Change, Clock, ClockKind, Phase, Rules, SlaState, TicketView};
use crate::base::Millis;

/// One step in the life of a clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// When.
    pub at: Millis,
    /// Which clock.
    pub clock: ClockKind,
    /// `started`, `paused`, `resumed`, `retargeted`, `at_risk`, `breached`, `stopped`,
    /// `stopped late`, `cancelled` or `deadline`.
    pub event: &'static str,
    /// The status, priority, percentage or result it happened with.
    pub detail: Option<String>,
}

/// Replays one ticket's changes (in log order) under `rules`, and returns the steps of its
/// clocks in time order, with the deadline of each clock still open at `now`.
pub fn trace(
    rules: Arc<Rules>,
    changes: &[(TicketView<'_>, Change, Millis)],
    now: Millis,
) -> Vec<Step> {
    let mut state = SlaState::new(rules);
    state.set_recording(true);
    let mut steps = Vec::new();
    let mut before: Vec<Clock> = Vec::new();
    for (view, change, at) in changes {
        state.apply(0, view, *change, *at);
        levels(&mut state, &mut steps);
        let after = clocks(&state);
        for a in &after {
            let b = before.iter().find(|b| b.kind == a.kind);
            steps.extend(compare(b, a, view, *change, *at));
        }
        before = after;
    }
    state.advance(now);
    levels(&mut state, &mut steps);
    for c in clocks(&state) {
        if c.phase == Phase::Open && c.deadline != Millis::MAX {
            steps.push(step(c.deadline, c.kind, "deadline", None));
        }
    }
    steps.sort_by_key(|s| s.at);
    steps
}

fn clocks(state: &SlaState) -> Vec<Clock> {
    state
        .ticket(0)
        .map(|t| t.clocks.clone())
        .unwrap_or_default()
}

fn step(at: Millis, clock: ClockKind, event: &'static str, detail: Option<String>) -> Step {
    Step {
        at,
        clock,
        event,
        detail,
    }
}

/// Warning and breach crossings, at the instants the engine computed for them.
fn levels(state: &mut SlaState, steps: &mut Vec<Step>) {
    for t in state.take_transitions() {
        match t.level {
            0 => {}
            100 => steps.push(step(t.at, t.clock, "breached", None)),
            l => steps.push(step(t.at, t.clock, "at_risk", Some(format!("{l}%")))),
        }
    }
}

/// What an event did to one clock: the difference between its state before and after.
fn compare(
    b: Option<&Clock>,
    a: &Clock,
    view: &TicketView<'_>,
    change: Change,
    at: Millis,
) -> Vec<Step> {
    let status = || Some(view.status.as_str().to_string());
    let reopened = matches!(change, Change::Status { from, .. } if from.is_final() || from == crate::event::Status::Resolved);
    let was = b.map_or(Phase::Idle, |b| b.phase);
    let mut out = Vec::new();
    match (was, a.phase) {
        (Phase::Idle, Phase::Open) => out.push(step(a.started_at, a.kind, "started", None)),
        (Phase::Stopped | Phase::Cancelled, Phase::Open) => {
            // A new cycle (next reply: the requester wrote again) starts afresh; the same
            // cycle going on (resolution: the ticket was reopened) resumes.
            if b.is_some_and(|b| b.started_at != a.started_at) {
                out.push(step(a.started_at, a.kind, "started", None));
            } else {
                out.push(step(at, a.kind, "resumed", Some("reopened".into())));
            }
        }
        (Phase::Open, Phase::Open) => {
            let b = b.expect("an open clock was there before");
            if b.running() && !a.running() {
                out.push(step(at, a.kind, "paused", status()));
            } else if !b.running() && a.running() {
                let why = if reopened {
                    Some("reopened".into())
                } else {
                    status()
                };
                out.push(step(at, a.kind, "resumed", why));
            }
        }
        (Phase::Open, Phase::Stopped) => out.push(stopped(a, a.stopped_at)),
        (Phase::Open, Phase::Idle) => {
            // A next-reply cycle answered: the clock waits for the next requester comment.
            let late = b.is_some_and(|b| b.breached());
            let (event, result) = if late {
                ("stopped late", "breached")
            } else {
                ("stopped", "met")
            };
            out.push(step(at, a.kind, event, Some(result.into())));
        }
        (Phase::Open, Phase::Cancelled) => out.push(step(at, a.kind, "cancelled", None)),
        _ => {}
    }
    if let Some(b) = b
        && (b.target_ms != a.target_ms || b.calendar != a.calendar)
    {
        let priority = view.subject.priority.as_str().to_string();
        out.push(step(at, a.kind, "retargeted", Some(priority)));
    }
    out
}

fn stopped(c: &Clock, at: Millis) -> Step {
    if c.breached() {
        step(at, c.kind, "stopped late", Some("breached".into()))
    } else {
        step(at, c.kind, "stopped", Some("met".into()))
    }
}
