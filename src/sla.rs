//! The SLA engine: per-ticket clocks on business calendars, and a deadline queue.
//!
//! Semantics (see the README, "SLA"):
//! - Clocks: **time to own** (created → first assignment), **first response** (created → first
//!   public agent comment), **next reply** (a public requester comment after the first
//!   response → the next public agent comment; one cycle at a time) and **resolution**
//!   (created → resolved; a reopen resumes it). A policy may set any of them.
//! - The first policy whose conditions match applies. A priority change matches again and
//!   re-targets the open clocks as if the new policy had applied from the ticket's start,
//!   keeping elapsed and paused time; a clock that already stopped keeps its verdict.
//! - A pause status stops every open clock of the ticket; resolution, closure and
//!   cancellation stop them all.
//! - A clock is breached once its elapsed business time reaches the target, and at risk once
//!   it reaches a warning percentage. `breached_at` is the instant that happened — computed
//!   from the calendar, never from when it was noticed — so a replay gives the same values.
//!
//! The engine is pure like the projection: time only enters through the events' own
//! timestamps and through [`SlaState::advance`], which the live service calls with the wall
//! clock and which moves the deadline queue. The queue holds one entry per running clock: the
//! instant of its next threshold. Entries made stale by a pause or a priority change are
//! skipped by a generation number.

pub mod alerts;
pub mod calendar;
pub mod rules;
#[cfg(test)]
mod tests;
pub mod trace;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::base::interner::Sym;
use crate::base::{Millis, RestoreError};
use crate::event::{Priority, Status};
pub use rules::{Rules, RulesError, SlaConfig, Subject};

/// The four clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum ClockKind {
    /// Created → first assignment.
    TimeToOwn = 0,
    /// Created → first public agent comment.
    FirstResponse = 1,
    /// Oldest unanswered public requester comment → next public agent comment.
    NextReply = 2,
    /// Created → resolved (resumed by a reopen).
    Resolution = 3,
}

impl ClockKind {
    /// All clocks.
    pub const ALL: [ClockKind; 4] = [
        ClockKind::TimeToOwn,
        ClockKind::FirstResponse,
        ClockKind::NextReply,
        ClockKind::Resolution,
    ];

    /// Name in tables, labels and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::TimeToOwn => "time_to_own",
            ClockKind::FirstResponse => "first_response",
            ClockKind::NextReply => "next_reply",
            ClockKind::Resolution => "resolution",
        }
    }

    /// Parses the table/API name.
    pub fn parse(text: &str) -> Option<ClockKind> {
        ClockKind::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// Parses the configuration name (`first-response`).
    pub fn from_config(text: &str) -> Option<ClockKind> {
        ClockKind::parse(&text.replace('-', "_"))
    }
}

/// Where a clock is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Not started (next reply between cycles, or a clock whose start has not happened).
    Idle,
    /// Started and not stopped; running or paused.
    Open,
    /// Stopped; `breached_at` tells whether it was in time.
    Stopped,
    /// Stopped by the ticket's cancellation.
    Cancelled,
}

/// One clock of one ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Clock {
    /// Which clock.
    pub kind: ClockKind,
    /// Life phase.
    pub phase: Phase,
    /// Highest percentage reached so far (0, a warning percentage, or 100 = breached).
    pub reached: u8,
    /// Calendar index.
    pub calendar: u16,
    /// Target in business milliseconds.
    pub target_ms: i64,
    /// Start of the current cycle.
    pub started_at: Millis,
    /// Business time elapsed up to `mark` (or in total when not running).
    pub elapsed_ms: i64,
    /// Running since (`Millis::MIN` when not running).
    pub mark: Millis,
    /// Instant the target is reached if it keeps running (`Millis::MAX` when not running).
    pub deadline: Millis,
    /// Wall-clock time spent paused while open.
    pub paused_ms: i64,
    /// When it stopped (`Millis::MIN` while open).
    pub stopped_at: Millis,
    /// When elapsed reached the target (`Millis::MIN` if it has not).
    pub breached_at: Millis,
    /// Completed cycles (next reply).
    pub cycles: u16,
    /// Breached cycles (next reply), or 0/1.
    pub breaches: u16,
    /// Bumped whenever the deadline changes; older queue entries are stale.
    pub generation: u32,
}

impl Clock {
    fn new(kind: ClockKind, target: rules::Target) -> Clock {
        Clock {
            kind,
            phase: Phase::Idle,
            reached: 0,
            calendar: target.calendar,
            target_ms: target.ms,
            started_at: Millis::MIN,
            elapsed_ms: 0,
            mark: Millis::MIN,
            deadline: Millis::MAX,
            paused_ms: 0,
            stopped_at: Millis::MIN,
            breached_at: Millis::MIN,
            cycles: 0,
            breaches: 0,
            generation: 0,
        }
    }

    /// Whether time accrues now.
    pub fn running(&self) -> bool {
        self.mark != Millis::MIN
    }

    /// Whether it has been breached (in the current cycle).
    pub fn breached(&self) -> bool {
        self.breached_at != Millis::MIN
    }
}

/// The SLA state of one ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketSla {
    /// Policy index (`u16::MAX`: none matched).
    pub policy: u16,
    /// Paused since (`Millis::MIN` when not paused).
    pub paused_since: Millis,
    /// Current priority (metrics labels).
    pub priority: Priority,
    /// Tenant symbol index (`u32::MAX`: none).
    pub tenant: u32,
    /// The policy's clocks.
    pub clocks: Vec<Clock>,
}

/// What happened to one ticket, as the SLA engine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Created.
    Created,
    /// Assigned (any assignment).
    Assigned,
    /// A public comment by an agent.
    AgentReply,
    /// A public comment by the requester.
    RequesterComment,
    /// Status moved from `from` to `to` (including by resolve/reopen/close events).
    Status {
        /// Before.
        from: Status,
        /// After.
        to: Status,
    },
    /// Priority changed.
    Priority,
    /// Anything else.
    Other,
}

/// A clock's alert level changed: `level` is the highest percentage now active (0 = nothing,
/// 100 = breached); the dispatcher resolves every other level of that clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Ticket index in the projection.
    pub ticket: u32,
    /// Clock.
    pub clock: ClockKind,
    /// Active level.
    pub level: u8,
    /// Instant of the change (event time, or the threshold's instant).
    pub at: Millis,
}

/// Counts kept for `/metrics`; functions of the log (and of time passing).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlaCounts {
    /// Breaches by (clock, priority, tenant symbol or `u32::MAX`).
    pub breaches: BTreeMap<(ClockKind, Priority, u32), u64>,
    /// Stopped clocks by (clock, met = true / breached = false).
    pub completed: BTreeMap<(ClockKind, bool), u64>,
}

/// SLA state of a projection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlaState {
    /// Fingerprint of the rules this state was computed under.
    pub fingerprint: u64,
    /// Per ticket, by ticket index.
    pub tickets: Vec<Option<Box<TicketSla>>>,
    /// Counts for metrics.
    pub counts: SlaCounts,
    /// Latest instant the clocks have been brought to.
    pub now: Millis,
    #[serde(skip)]
    rules: Option<Arc<Rules>>,
    #[serde(skip)]
    queue: BinaryHeap<Reverse<(Millis, u32, u8, u32)>>,
    #[serde(skip)]
    record: bool,
    #[serde(skip)]
    outbox: Vec<Transition>,
    #[serde(skip)]
    compact_at: usize,
    /// Tickets with an open clock: what the gauges read, instead of every ticket.
    #[serde(skip)]
    open: std::collections::BTreeSet<u32>,
}

/// Static attributes of a ticket the engine reads.
#[derive(Debug, Clone, Copy)]
pub struct TicketView<'a> {
    /// Policy subject.
    pub subject: Subject<'a>,
    /// Tenant symbol (metrics).
    pub tenant: Option<Sym>,
    /// Current status.
    pub status: Status,
    /// Creation instant.
    pub created_at: Millis,
    /// First public agent comment happened.
    pub responded: bool,
}

impl SlaState {
    /// State under `rules`, empty.
    pub fn new(rules: Arc<Rules>) -> SlaState {
        SlaState {
            fingerprint: rules.fingerprint,
            rules: Some(rules),
            now: Millis::MIN,
            ..SlaState::default()
        }
    }

    /// Attaches the rules to a state loaded from a checkpoint and rebuilds the queue. Fails
    /// when the state was computed under other rules.
    pub fn attach(&mut self, rules: Arc<Rules>) -> Result<(), RestoreError> {
        if self.fingerprint != rules.fingerprint {
            return Err(RestoreError::OtherSettings("SLA configuration"));
        }
        self.rules = Some(rules);
        self.queue.clear();
        self.open.clear();
        for i in 0..self.tickets.len() {
            let n = self.tickets[i].as_ref().map_or(0, |t| t.clocks.len());
            for c in 0..n {
                self.reschedule(i as u32, c);
            }
            self.track_open(i as u32);
        }
        Ok(())
    }

    /// The rules.
    pub fn rules(&self) -> Option<&Arc<Rules>> {
        self.rules.as_ref()
    }

    /// Record transitions for alerting (the live service turns this on after recovery).
    pub fn set_recording(&mut self, on: bool) {
        self.record = on;
        if !on {
            self.outbox.clear();
        }
    }

    /// Transitions since the last call.
    pub fn take_transitions(&mut self) -> Vec<Transition> {
        std::mem::take(&mut self.outbox)
    }

    /// The clocks of a ticket.
    pub fn ticket(&self, index: usize) -> Option<&TicketSla> {
        self.tickets.get(index).and_then(|t| t.as_deref())
    }

    /// Approximate heap bytes held (clocks and the deadline queue).
    pub fn heap_bytes(&self) -> usize {
        self.tickets.capacity() * std::mem::size_of::<Option<Box<TicketSla>>>()
            + self
                .tickets
                .iter()
                .flatten()
                .map(|t| {
                    std::mem::size_of::<TicketSla>()
                        + t.clocks.capacity() * std::mem::size_of::<Clock>()
                })
                .sum::<usize>()
            + self.queue.capacity() * std::mem::size_of::<Reverse<(Millis, u32, u8, u32)>>()
            + self.open.len() * 2 * std::mem::size_of::<u32>()
    }

    /// Entries in the deadline queue (including stale ones).
    pub fn queue_len(&self) -> usize {
        self.queue.len()
    }

    /// Instant of the earliest queued threshold.
    pub fn next_due(&self) -> Option<Millis> {
        self.queue.peek().map(|Reverse((at, ..))| *at)
    }

    fn emit(&mut self, ticket: u32, clock: ClockKind, level: u8, at: Millis) {
        if self.record {
            self.outbox.push(Transition {
                ticket,
                clock,
                level,
                at,
            });
        }
    }

    /// Applies one event of ticket `index`, which the projection has just applied.
    pub fn apply(&mut self, index: usize, view: &TicketView<'_>, change: Change, at: Millis) {
        self.apply_change(index, view, change, at);
        self.track_open(index as u32);
    }

    /// Keeps ticket `t` in the open set while one of its clocks is open.
    fn track_open(&mut self, t: u32) {
        let open = self
            .tickets
            .get(t as usize)
            .and_then(|x| x.as_deref())
            .is_some_and(|ts| ts.clocks.iter().any(|c| c.phase == Phase::Open));
        if open {
            self.open.insert(t);
        } else {
            self.open.remove(&t);
        }
    }

    fn apply_change(&mut self, index: usize, view: &TicketView<'_>, change: Change, at: Millis) {
        let Some(rules) = self.rules.clone() else {
            return;
        };
        // Time moves to the event first, so every threshold before it fires in order.
        self.advance(at);
        if self.tickets.len() <= index {
            self.tickets.resize_with(index + 1, || None);
        }
        let t = index as u32;
        match change {
            Change::Created => {
                let Some(policy) = rules.policy_for(&view.subject) else {
                    return;
                };
                let p = &rules.policies[policy as usize];
                let clocks: Vec<Clock> = ClockKind::ALL
                    .into_iter()
                    .filter_map(|kind| p.targets[kind as usize].map(|t| Clock::new(kind, t)))
                    .collect::<Vec<_>>()
                    .into_boxed_slice()
                    .into_vec();
                self.tickets[index] = Some(Box::new(TicketSla {
                    policy,
                    paused_since: Millis::MIN,
                    priority: view.subject.priority,
                    tenant: view.tenant.map_or(u32::MAX, |s| s.index() as u32),
                    clocks,
                }));
                let paused = rules.pauses(view.status);
                for kind in [
                    ClockKind::TimeToOwn,
                    ClockKind::FirstResponse,
                    ClockKind::Resolution,
                ] {
                    self.start(t, kind, at, paused);
                }
                if paused && let Some(ts) = self.tickets[index].as_deref_mut() {
                    ts.paused_since = at;
                }
            }
            _ if self.tickets[index].is_none() => {}
            Change::Assigned => self.stop(t, ClockKind::TimeToOwn, at, false),
            Change::AgentReply => {
                self.stop(t, ClockKind::FirstResponse, at, false);
                self.stop(t, ClockKind::NextReply, at, false);
            }
            Change::RequesterComment => {
                if view.responded && !view.status.is_final() && view.status != Status::Resolved {
                    let paused = rules.pauses(view.status);
                    self.start(t, ClockKind::NextReply, at, paused);
                }
            }
            Change::Status { from, to } => {
                if to == Status::Cancelled || to == Status::Closed || to == Status::Resolved {
                    self.set_paused(t, false, at);
                    for kind in ClockKind::ALL {
                        self.stop(t, kind, at, to == Status::Cancelled);
                    }
                    return;
                }
                if from == Status::Resolved || from.is_final() {
                    // A reopen: the resolution clock resumes where it stopped.
                    self.reopen(t, at);
                }
                self.set_paused(t, rules.pauses(to), at);
            }
            Change::Priority => {
                if let Some(ts) = self.tickets[index].as_deref_mut() {
                    ts.priority = view.subject.priority;
                }
                self.retarget(t, view, &rules, at);
            }
            Change::Other => {}
        }
    }

    fn slot(&self, t: u32, kind: ClockKind) -> Option<usize> {
        self.tickets[t as usize]
            .as_ref()?
            .clocks
            .iter()
            .position(|c| c.kind == kind)
    }

    /// Highest level reached at `elapsed`.
    fn level_at(warnings: &[u8], target: i64, elapsed: i64) -> u8 {
        if elapsed >= target {
            return 100;
        }
        warnings
            .iter()
            .rev()
            .find(|&&w| elapsed >= threshold(target, w))
            .copied()
            .unwrap_or(0)
    }

    fn start(&mut self, t: u32, kind: ClockKind, at: Millis, paused: bool) {
        let Some(slot) = self.slot(t, kind) else {
            return;
        };
        let c = &mut self.tickets[t as usize].as_mut().expect("ticket").clocks[slot];
        if c.phase == Phase::Open {
            return;
        }
        c.phase = Phase::Open;
        c.started_at = at;
        c.elapsed_ms = 0;
        c.paused_ms = 0;
        c.reached = 0;
        c.breached_at = Millis::MIN;
        c.stopped_at = Millis::MIN;
        c.mark = if paused { Millis::MIN } else { at };
        self.reschedule(t, slot);
    }

    /// Recomputes the deadline of a running clock and queues its next threshold.
    fn reschedule(&mut self, t: u32, slot: usize) {
        let rules = self.rules.clone().expect("rules attached");
        let ts = self.tickets[t as usize].as_mut().expect("ticket");
        let warnings = rules.warnings(ts.policy);
        let c = &mut ts.clocks[slot];
        c.generation = c.generation.wrapping_add(1);
        if !c.running() || c.phase != Phase::Open {
            c.deadline = Millis::MAX;
            return;
        }
        let cal = &rules.calendars[c.calendar as usize];
        c.deadline = cal.add_business(c.mark, c.target_ms - c.elapsed_ms);
        let next = warnings
            .iter()
            .map(|&w| (w, threshold(c.target_ms, w)))
            .chain([(100, c.target_ms)])
            .find(|&(level, _)| level > c.reached);
        if let Some((_, ms)) = next {
            let at = cal.add_business(c.mark, ms - c.elapsed_ms);
            if at != Millis::MAX {
                self.queue.push(Reverse((at, t, slot as u8, c.generation)));
            }
        }
    }

    /// Brings a running clock's elapsed time to `at`, an event of its own ticket (it keeps
    /// running from `at`). Only the ticket's own events move a clock's accrual, so its values
    /// do not depend on the other tickets sharing the log (or the Kafka partition).
    fn settle(&mut self, t: u32, slot: usize, at: Millis) {
        let rules = self.rules.clone().expect("rules attached");
        let ts = self.tickets[t as usize].as_mut().expect("ticket");
        let warnings = rules.warnings(ts.policy);
        let c = &mut ts.clocks[slot];
        if !c.running() || at <= c.mark {
            return;
        }
        let cal = &rules.calendars[c.calendar as usize];
        c.elapsed_ms += cal.business_ms(c.mark, at);
        c.mark = at;
        let level = SlaState::level_at(warnings, c.target_ms, c.elapsed_ms);
        if level < c.reached {
            // Time had moved past this event (another ticket's later event came first) and
            // fired a threshold this clock had not reached by now: take it back.
            self.lower(t, slot, level, at);
        } else {
            self.raise(t, slot, level, at);
        }
    }

    /// Fires the thresholds a running clock has passed by `at`, without moving its accrual.
    fn check_due(&mut self, t: u32, slot: usize, at: Millis) {
        let rules = self.rules.clone().expect("rules attached");
        let ts = self.tickets[t as usize].as_ref().expect("ticket");
        let warnings = rules.warnings(ts.policy);
        let c = &ts.clocks[slot];
        if !c.running() || at <= c.mark {
            return;
        }
        let elapsed = c.elapsed_ms + rules.calendars[c.calendar as usize].business_ms(c.mark, at);
        let level = SlaState::level_at(warnings, c.target_ms, elapsed);
        self.raise(t, slot, level, at);
    }

    /// Takes a level back (see [`SlaState::settle`]).
    fn lower(&mut self, t: u32, slot: usize, level: u8, at: Millis) {
        let ts = self.tickets[t as usize].as_mut().expect("ticket");
        let (priority, tenant) = (ts.priority, ts.tenant);
        let c = &mut ts.clocks[slot];
        if level >= c.reached {
            return;
        }
        let kind = c.kind;
        if c.reached == 100 && c.breached() {
            c.breached_at = Millis::MIN;
            c.breaches = c.breaches.saturating_sub(1);
            if let Some(n) = self.counts.breaches.get_mut(&(kind, priority, tenant)) {
                *n = n.saturating_sub(1);
            }
        }
        c.reached = level;
        self.emit(t, kind, level, at);
    }

    /// Records that a clock reached `level` (no-op if it had).
    fn raise(&mut self, t: u32, slot: usize, level: u8, at: Millis) {
        let ts = self.tickets[t as usize].as_mut().expect("ticket");
        let (priority, tenant) = (ts.priority, ts.tenant);
        let c = &mut ts.clocks[slot];
        if level <= c.reached {
            return;
        }
        c.reached = level;
        let kind = c.kind;
        let mut when = at;
        if level == 100 && !c.breached() {
            c.breached_at = c.deadline.min(at);
            c.breaches = c.breaches.saturating_add(1);
            when = c.breached_at;
            *self
                .counts
                .breaches
                .entry((kind, priority, tenant))
                .or_default() += 1;
        }
        self.emit(t, kind, level, when);
    }

    fn set_paused(&mut self, t: u32, paused: bool, at: Millis) {
        let Some(ts) = self.tickets[t as usize].as_deref() else {
            return;
        };
        let was = ts.paused_since != Millis::MIN;
        if was == paused {
            return;
        }
        let n = ts.clocks.len();
        if paused {
            for slot in 0..n {
                self.settle(t, slot, at);
                let c = &mut self.tickets[t as usize].as_mut().expect("ticket").clocks[slot];
                if c.phase == Phase::Open {
                    c.mark = Millis::MIN;
                }
                self.reschedule(t, slot);
            }
            self.tickets[t as usize]
                .as_mut()
                .expect("ticket")
                .paused_since = at;
        } else {
            let ts = self.tickets[t as usize].as_mut().expect("ticket");
            let since = ts.paused_since;
            ts.paused_since = Millis::MIN;
            for slot in 0..n {
                let c = &mut self.tickets[t as usize].as_mut().expect("ticket").clocks[slot];
                if c.phase == Phase::Open {
                    c.paused_ms += (at - since.max(c.started_at)).max(0);
                    c.mark = at;
                    self.reschedule(t, slot);
                }
            }
        }
    }

    fn stop(&mut self, t: u32, kind: ClockKind, at: Millis, cancelled: bool) {
        let Some(slot) = self.slot(t, kind) else {
            return;
        };
        if self.tickets[t as usize].as_ref().expect("ticket").clocks[slot].phase != Phase::Open {
            return;
        }
        self.settle(t, slot, at);
        let paused_since = self.tickets[t as usize]
            .as_ref()
            .expect("ticket")
            .paused_since;
        let met;
        {
            let c = &mut self.tickets[t as usize].as_mut().expect("ticket").clocks[slot];
            if !c.running() && paused_since != Millis::MIN {
                c.paused_ms += (at - paused_since.max(c.started_at)).max(0);
            }
            c.mark = Millis::MIN;
            c.stopped_at = at;
            met = !c.breached();
            c.phase = if cancelled && met {
                Phase::Cancelled
            } else {
                Phase::Stopped
            };
            c.cycles = c.cycles.saturating_add(1);
        }
        self.reschedule(t, slot);
        if !(cancelled && met) {
            *self.counts.completed.entry((kind, met)).or_default() += 1;
        }
        let reached = self.tickets[t as usize].as_ref().expect("ticket").clocks[slot].reached;
        if reached > 0 {
            self.emit(t, kind, 0, at);
        }
        if kind == ClockKind::NextReply {
            // The next cycle starts fresh.
            let c = &mut self.tickets[t as usize].as_mut().expect("ticket").clocks[slot];
            c.reached = 0;
        }
    }

    fn reopen(&mut self, t: u32, at: Millis) {
        let Some(slot) = self.slot(t, ClockKind::Resolution) else {
            return;
        };
        let paused = self.tickets[t as usize]
            .as_ref()
            .expect("ticket")
            .paused_since
            != Millis::MIN;
        let reached;
        {
            let c = &mut self.tickets[t as usize].as_mut().expect("ticket").clocks[slot];
            if !matches!(c.phase, Phase::Stopped | Phase::Cancelled) {
                return;
            }
            if c.phase == Phase::Stopped {
                let met = !c.breached();
                if let Some(n) = self.counts.completed.get_mut(&(ClockKind::Resolution, met)) {
                    *n = n.saturating_sub(1);
                }
            }
            c.phase = Phase::Open;
            c.stopped_at = Millis::MIN;
            c.mark = if paused { Millis::MIN } else { at };
            reached = c.reached;
        }
        self.reschedule(t, slot);
        if reached > 0 {
            self.emit(t, ClockKind::Resolution, reached, at);
        }
    }

    fn retarget(&mut self, t: u32, view: &TicketView<'_>, rules: &Rules, at: Millis) {
        let Some(policy) = rules.policy_for(&view.subject) else {
            return;
        };
        let old = self.tickets[t as usize].as_ref().expect("ticket").policy;
        if policy == old {
            return;
        }
        let n = self.tickets[t as usize]
            .as_ref()
            .expect("ticket")
            .clocks
            .len();
        for slot in 0..n {
            self.settle(t, slot, at);
        }
        let p = &rules.policies[policy as usize];
        let warnings = p.warnings.clone();
        let paused = self.tickets[t as usize]
            .as_ref()
            .expect("ticket")
            .paused_since
            != Millis::MIN;
        let mut old_clocks =
            std::mem::take(&mut self.tickets[t as usize].as_mut().expect("ticket").clocks);
        let mut clocks = Vec::new();
        let mut raised = Vec::new();
        for kind in ClockKind::ALL {
            let Some(target) = p.targets[kind as usize] else {
                if let Some(c) = old_clocks.iter().find(|c| c.kind == kind)
                    && c.reached > 0
                    && c.phase == Phase::Open
                {
                    self.emit(t, kind, 0, at);
                }
                continue;
            };
            let mut c = match old_clocks.iter().position(|c| c.kind == kind) {
                Some(i) => old_clocks.swap_remove(i),
                None => {
                    // New to this ticket: counted from the ticket's start on its calendar.
                    let mut c = Clock::new(kind, target);
                    if kind != ClockKind::NextReply && view.status != Status::Resolved {
                        let cal = &rules.calendars[target.calendar as usize];
                        c.phase = Phase::Open;
                        c.started_at = view.created_at;
                        c.elapsed_ms = cal.business_ms(view.created_at, at);
                        c.mark = if paused { Millis::MIN } else { at };
                    }
                    c
                }
            };
            c.target_ms = target.ms;
            c.calendar = target.calendar;
            if c.phase == Phase::Open {
                let level = SlaState::level_at(&warnings, c.target_ms, c.elapsed_ms);
                if level != c.reached {
                    if level < 100 {
                        c.breached_at = Millis::MIN;
                    }
                    raised.push((kind, level, c.reached));
                    c.reached = 0;
                }
            }
            clocks.push(c);
        }
        let ts = self.tickets[t as usize].as_mut().expect("ticket");
        ts.policy = policy;
        ts.clocks = clocks;
        let n = ts.clocks.len();
        for slot in 0..n {
            self.reschedule(t, slot);
        }
        for (kind, level, before) in raised {
            let slot = self.slot(t, kind).expect("clock");
            if level == 0 {
                if before > 0 {
                    self.emit(t, kind, 0, at);
                }
            } else {
                if level < before {
                    self.emit(t, kind, 0, at);
                }
                let c = &mut self.tickets[t as usize].as_mut().expect("ticket").clocks[slot];
                c.deadline = c.deadline.min(at);
                self.raise(t, slot, level, at);
                self.reschedule(t, slot);
            }
        }
    }

    /// Moves time to `now`: every queued threshold at or before it fires, in order.
    pub fn advance(&mut self, now: Millis) {
        if now <= self.now {
            return;
        }
        self.now = now;
        while let Some(&Reverse((at, t, slot, generation))) = self.queue.peek() {
            if at > now {
                break;
            }
            self.queue.pop();
            let slot = slot as usize;
            let live = self.tickets[t as usize]
                .as_ref()
                .and_then(|x| x.clocks.get(slot))
                .is_some_and(|c| c.generation == generation && c.running());
            if !live {
                continue;
            }
            self.check_due(t, slot, at);
            self.reschedule(t, slot);
        }
        // Stale entries (from pauses and re-targets) are dropped when the queue has doubled
        // since the last compaction: amortised O(1) per entry.
        if self.queue.len() > self.compact_at.max(1024) {
            if self.queue.len() > 2 * self.live_entries() {
                self.compact();
            }
            self.compact_at = 2 * self.queue.len();
        }
    }

    fn live_entries(&self) -> usize {
        self.tickets
            .iter()
            .flatten()
            .map(|t| {
                t.clocks
                    .iter()
                    .filter(|c| c.running() && c.reached < 100)
                    .count()
            })
            .sum()
    }

    fn compact(&mut self) {
        let entries: Vec<_> = self
            .queue
            .drain()
            .filter(|Reverse((_, t, slot, generation))| {
                self.tickets[*t as usize]
                    .as_ref()
                    .and_then(|x| x.clocks.get(*slot as usize))
                    .is_some_and(|c| c.generation == *generation && c.running())
            })
            .collect();
        self.queue = entries.into();
    }
}

/// Milliseconds of a `percent` warning of `target`.
pub fn threshold(target: i64, percent: u8) -> i64 {
    target * percent as i64 / 100
}

/// A clock's values at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Live {
    /// Business time elapsed.
    pub elapsed_ms: i64,
    /// Wall-clock time paused.
    pub paused_ms: i64,
    /// `running`, `paused`, `met`, `breached` or `cancelled`.
    pub state: &'static str,
    /// When the target was reached, if it was.
    pub breached_at: Option<Millis>,
    /// Deadline while running.
    pub deadline: Option<Millis>,
    /// Highest level reached: 0, a warning percentage, or 100.
    pub level: u8,
}

impl Clock {
    /// Values at `now` (which should not be before the last event of the ticket).
    pub fn live(&self, rules: &Rules, policy: u16, paused_since: Millis, now: Millis) -> Live {
        let cal = &rules.calendars[self.calendar as usize];
        let warnings = rules.warnings(policy);
        let open = self.phase == Phase::Open;
        let elapsed_ms = self.elapsed_ms
            + if self.running() {
                cal.business_ms(self.mark, now)
            } else {
                0
            };
        let paused_ms = self.paused_ms
            + if open && !self.running() && paused_since != Millis::MIN {
                (now - paused_since.max(self.started_at)).max(0)
            } else {
                0
            };
        let breached_at = if self.breached() {
            Some(self.breached_at)
        } else if open && elapsed_ms >= self.target_ms {
            Some(self.deadline.min(now))
        } else {
            None
        };
        let state = match self.phase {
            Phase::Cancelled => "cancelled",
            Phase::Stopped if breached_at.is_some() => "breached",
            Phase::Stopped | Phase::Idle => "met",
            Phase::Open if breached_at.is_some() => "breached",
            Phase::Open if self.running() => "running",
            Phase::Open => "paused",
        };
        Live {
            elapsed_ms,
            paused_ms,
            state,
            breached_at,
            deadline: (open && self.running()).then_some(self.deadline),
            level: SlaState::level_at(warnings, self.target_ms, elapsed_ms),
        }
    }
}

/// Levels reported by `deskwatch_sla_at_risk_clocks`.
pub const REPORT_LEVELS: [u8; 4] = [50, 75, 90, 100];
/// Buckets (seconds) of `deskwatch_sla_time_to_breach_clocks`.
pub const TIME_TO_BREACH_BUCKETS: [f64; 9] = [
    300.0,
    900.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
    28800.0,
    86400.0,
    f64::INFINITY,
];

/// Open clocks of one kind at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClockStats {
    /// Running.
    pub running: i64,
    /// Paused.
    pub paused: i64,
    /// By the highest of [`REPORT_LEVELS`] reached (index-aligned).
    pub at_level: [i64; 4],
    /// Running and not breached, with at most each of [`TIME_TO_BREACH_BUCKETS`] left.
    pub time_to_breach: [i64; 9],
}

/// Everything `/metrics` shows about SLAs, without per-ticket labels.
#[derive(Debug, Clone, Default)]
pub struct SlaReport {
    /// Open clocks by kind.
    pub stats: BTreeMap<ClockKind, ClockStats>,
    /// Breaches by (clock, priority, tenant).
    pub breaches: BTreeMap<(ClockKind, Priority, String), u64>,
    /// Stopped clocks by (clock, met).
    pub completed: BTreeMap<(ClockKind, bool), u64>,
    /// Deadline queue entries.
    pub queue: usize,
}

impl SlaReport {
    /// Adds another projection's report (Kafka partitions).
    pub fn add(&mut self, other: &SlaReport) {
        for (k, s) in &other.stats {
            let e = self.stats.entry(*k).or_default();
            e.running += s.running;
            e.paused += s.paused;
            for i in 0..e.at_level.len() {
                e.at_level[i] += s.at_level[i];
            }
            for i in 0..e.time_to_breach.len() {
                e.time_to_breach[i] += s.time_to_breach[i];
            }
        }
        for (k, n) in &other.breaches {
            *self.breaches.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &other.completed {
            *self.completed.entry(*k).or_default() += n;
        }
        self.queue += other.queue;
    }
}

impl SlaState {
    /// Open-clock statistics at `now`; `tenant` names a tenant symbol.
    pub fn report(&self, now: Millis, tenant: impl Fn(u32) -> String) -> SlaReport {
        let mut report = SlaReport {
            queue: self.queue.len(),
            ..SlaReport::default()
        };
        let Some(rules) = &self.rules else {
            return report;
        };
        let open = self
            .open
            .iter()
            .filter_map(|&t| self.tickets[t as usize].as_deref());
        for t in open {
            for c in t.clocks.iter().filter(|c| c.phase == Phase::Open) {
                let live = c.live(rules, t.policy, t.paused_since, now);
                let s = report.stats.entry(c.kind).or_default();
                if c.running() {
                    s.running += 1;
                } else {
                    s.paused += 1;
                }
                if let Some(i) = REPORT_LEVELS.iter().rposition(|&l| live.level >= l) {
                    s.at_level[i] += 1;
                }
                if live.breached_at.is_none() && c.running() {
                    let left = (c.deadline - now) as f64 / 1000.0;
                    for (i, le) in TIME_TO_BREACH_BUCKETS.iter().enumerate() {
                        if left <= *le {
                            s.time_to_breach[i] += 1;
                        }
                    }
                }
            }
        }
        for ((clock, priority, t), n) in &self.counts.breaches {
            let name = if *t == u32::MAX {
                String::new()
            } else {
                tenant(*t)
            };
            *report
                .breaches
                .entry((*clock, *priority, name))
                .or_default() += n;
        }
        report.completed = self.counts.completed.clone();
        report
    }
}
