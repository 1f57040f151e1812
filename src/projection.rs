//! The projection: folds events into the current state of every ticket and the event history.
//!
//! Pure: no I/O, no clock. [`Projection::apply`] decides, for one event, whether it is applied,
//! a duplicate (same `event_id` seen before) or rejected by a state check (a status change
//! from a state the ticket is not in, an event for a ticket that was never created, …), and the
//! decision depends only on the events applied before. So replaying the same log always gives
//! the same state, and a duplicate delivered twice is never counted twice.
//!
//! State layout is chosen for memory: strings are interned ([`interner`]), timestamps are
//! milliseconds, the history is a list of sealed Arrow chunks ([`history`]), and the dedup
//! index holds row numbers, not strings. [`tables`] turns state into Arrow record batches.

pub mod history;
pub mod sla_table;
pub mod tables;

use datafusion::arrow::array::RecordBatch;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::clustering::order::TextOrder;
use crate::clustering::state::{Catalog, TextSetup, TextState};
use crate::event::{Channel, EventType, Payload, Priority, Role, Status, TicketEvent};
use crate::sla::{Change, Rules, SlaState, Subject, TicketView};
use history::{EventRow, History};
use interner::{Interner, Sym};

/// The most a ticket's active time grows between two of its events while it is in progress:
/// an agent works on a ticket for a while after touching it, not for the days it may stay
/// `in_progress` while parked. 15 minutes: on the simulator, whose work logs are the truth,
/// the estimate lands within −10 % of the logged handle time (the test
/// `handle_time_estimated_without_work_logs_is_within_30_percent_of_the_logged_truth` prints it).
pub const ACTIVE_SESSION_CAP_MS: i64 = 15 * 60_000;

pub use crate::base::{Millis, RestoreError, interner};

/// What happened to one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Applied to the ticket and added to the history.
    Applied,
    /// An event with this `event_id` was applied before; ignored.
    Duplicate,
    /// Refused by a state check; nothing changed.
    Rejected(Rejection),
}

/// Why the state refused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Machine-readable reason (`unknown_ticket`, `status_conflict`, …).
    pub reason: &'static str,
    /// JSON pointer of the field the check is about.
    pub field: &'static str,
    /// A sentence a person can act on.
    pub message: String,
}

fn reject(reason: &'static str, field: &'static str, message: String) -> Outcome {
    Outcome::Rejected(Rejection {
        reason,
        field,
        message,
    })
}

/// Current state of one ticket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TicketState {
    /// Ticket id.
    pub ticket_id: Sym,
    /// Tenant.
    pub tenant: Option<Sym>,
    /// Status.
    pub status: Status,
    /// Priority.
    pub priority: Priority,
    /// Channel.
    pub channel: Channel,
    /// Category.
    pub category: Sym,
    /// Subcategory.
    pub subcategory: Option<Sym>,
    /// Configuration item.
    pub configuration_item: Option<Sym>,
    /// Service.
    pub service: Option<Sym>,
    /// Requester.
    pub requester: Sym,
    /// Current assignment group.
    pub group: Option<Sym>,
    /// Current agent.
    pub agent: Option<Sym>,
    /// Current tier (0 before the first assignment).
    pub tier: u8,
    /// Title.
    pub title: Box<str>,
    /// Creation time.
    pub created_at: Millis,
    /// First assignment.
    pub first_assigned_at: Option<Millis>,
    /// First public agent comment.
    pub first_response_at: Option<Millis>,
    /// Latest resolution (cleared by a reopen).
    pub resolved_at: Option<Millis>,
    /// Closure.
    pub closed_at: Option<Millis>,
    /// Reopens.
    pub reopen_count: u16,
    /// Changes of assignment group after the first assignment (by an assignment or an
    /// escalation): the ITSM meaning, as ServiceNow's `reassignment_count`.
    pub reassignment_count: u16,
    /// Hand-offs from one agent to another (an assignment naming a different agent while one
    /// held the ticket).
    pub handoff_count: u16,
    /// Escalations.
    pub escalation_count: u16,
    /// Sum of work-logged minutes.
    pub handle_minutes: u32,
    /// Active time in progress, seconds: after each event that leaves the ticket
    /// `in_progress`, the time to the ticket's next event, at most [`ACTIVE_SESSION_CAP_MS`].
    /// The handle-time estimate of exports without work logs.
    pub active_seconds: u32,
    /// Latest event time seen.
    pub last_event_at: Millis,
    /// Events applied.
    pub event_count: u32,
    /// From the latest resolution.
    pub first_contact: Option<bool>,
    /// From the latest resolution.
    pub resolution_code: Option<Sym>,
    /// From the latest resolution.
    pub kb_article: Option<Sym>,
}

/// Counters of what the projection has seen, for metrics and reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Events applied.
    pub applied: u64,
    /// Duplicates ignored.
    pub duplicates: u64,
    /// Events rejected by a state check.
    pub rejected: u64,
}

/// What derived state depends on besides the events: SLA rules and text clustering settings.
#[derive(Debug, Clone)]
pub struct Setup {
    /// SLA rules.
    pub rules: Arc<Rules>,
    /// Text clustering settings.
    pub text: Arc<TextSetup>,
}

/// All projected state.
#[derive(Debug, Default)]
pub struct Projection {
    pub(crate) strings: Interner,
    pub(crate) tickets: Vec<TicketState>,
    /// Ticket index by the ticket id's symbol index (`u32::MAX` for other symbols).
    pub(crate) ticket_by_sym: Vec<u32>,
    pub(crate) history: History,
    pub(crate) counters: Counters,
    /// One flag per block of [`tables::TICKET_BLOCK`] tickets: changed since last snapshot.
    pub(crate) dirty_blocks: Vec<bool>,
    /// SLA clocks of every ticket.
    pub(crate) sla: SlaState,
    /// Text cluster of every ticket.
    pub(crate) text: TextState,
    /// Ticket texts are placed by the caller (across partitions, see
    /// [`crate::clustering::order`]), not here.
    pub(crate) text_elsewhere: bool,
}

impl Projection {
    /// An empty projection without SLA policies.
    pub fn new() -> Projection {
        Projection::default()
    }

    /// An empty projection whose tickets get SLA clocks under `rules`.
    pub fn with_rules(rules: Arc<Rules>) -> Projection {
        Projection {
            sla: SlaState::new(rules),
            ..Projection::default()
        }
    }

    /// An empty projection under `rules`, placing ticket texts under `text`.
    pub fn with_setup(rules: Arc<Rules>, text: Arc<TextSetup>) -> Projection {
        Projection {
            sla: SlaState::new(rules),
            text: TextState::new(text),
            ..Projection::default()
        }
    }

    /// Attaches `rules` to a projection loaded from a checkpoint; fails when its clocks were
    /// computed under other rules (the caller then replays the log).
    pub fn attach_rules(&mut self, rules: Arc<Rules>) -> Result<(), RestoreError> {
        self.sla.attach(rules)
    }

    /// Attaches `rules` and the text settings to a projection loaded from a checkpoint; fails
    /// when either differs from what the state was built under (the caller then replays).
    pub fn attach(&mut self, rules: Arc<Rules>, text: Arc<TextSetup>) -> Result<(), RestoreError> {
        self.sla.attach(rules)?;
        self.text.attach(text)
    }

    /// From now on ticket texts are placed by the caller, in one order across partitions
    /// ([`crate::clustering::order::TextOrder`]); the clusters held here are dropped.
    pub fn place_text_elsewhere(&mut self) {
        let setup = self.text.setup();
        self.text = TextState::new(setup);
        self.text_elsewhere = true;
    }

    /// Hands the record at `offset` of partition `partition`, which this projection has
    /// applied (`event`, `None` when it was not a valid event), to the text order: the ticket
    /// it created, if it created one.
    pub fn hand_text(
        &self,
        order: &mut TextOrder,
        partition: u32,
        offset: u64,
        event: Option<&TicketEvent>,
    ) {
        if let Some(event) = event
            && let Payload::Created(c) = &event.payload
            && let Some(index) = self.ticket_index_of(&event.ticket_id)
            && index >= order.tickets(partition)
        {
            order.push(
                partition,
                offset,
                index,
                &event.ticket_id,
                event.occurred_at.timestamp_millis(),
                &c.title,
                c.description.as_deref(),
            );
        } else {
            order.skip(partition, offset);
        }
    }

    /// The text clusters.
    pub fn text(&self) -> &TextState {
        &self.text
    }

    /// The settings ticket texts are analysed and placed under.
    pub fn text_setup(&mut self) -> Arc<TextSetup> {
        self.text.setup()
    }

    /// The event history (`ticket_events`).
    pub fn history(&self) -> &History {
        &self.history
    }

    /// The SLA clocks.
    pub fn sla(&self) -> &SlaState {
        &self.sla
    }

    /// The SLA clocks, mutable (time, recording of transitions).
    pub fn sla_mut(&mut self) -> &mut SlaState {
        &mut self.sla
    }

    /// SLA statistics for `/metrics` at `now`.
    pub fn sla_report(&self, now: Millis) -> crate::sla::SlaReport {
        self.sla.report(now, |t| {
            self.strings
                .resolve(interner::Sym::from_index(t as usize))
                .to_string()
        })
    }

    /// The alert update a clock transition means.
    pub fn alert_update(
        &self,
        t: &crate::sla::Transition,
    ) -> Option<crate::sla::alerts::AlertUpdate> {
        use crate::sla::alerts::{AlertInfo, AlertUpdate};
        let ticket = self.tickets.get(t.ticket as usize)?;
        let ticket_id = self.strings.resolve(ticket.ticket_id).to_string();
        if t.level == 0 {
            return Some(AlertUpdate::Clear {
                ticket_id,
                clock: t.clock,
            });
        }
        let sla = self.sla.ticket(t.ticket as usize)?;
        let clock = sla.clocks.iter().find(|c| c.kind == t.clock)?;
        let rules = self.sla.rules()?;
        Some(AlertUpdate::Fire(AlertInfo {
            ticket_id,
            tenant: self.strings.resolve_opt(ticket.tenant).map(str::to_string),
            group: self.strings.resolve_opt(ticket.group).map(str::to_string),
            priority: ticket.priority.as_str(),
            clock: t.clock,
            level: t.level,
            title: ticket.title.to_string(),
            policy: rules
                .policies
                .get(sla.policy as usize)
                .map_or_else(String::new, |p| p.name.clone()),
            deadline: if clock.breached() {
                Some(clock.breached_at)
            } else {
                (clock.deadline != Millis::MAX).then_some(clock.deadline)
            },
            since: t.at,
        }))
    }

    /// Alert updates for every open clock at a warning or breached level at `now` (to seed the
    /// dispatcher after recovery); `forget` gives `Forget` updates instead (a partition leaves).
    pub fn active_alerts(&self, now: Millis, forget: bool) -> Vec<crate::sla::alerts::AlertUpdate> {
        use crate::sla::alerts::AlertUpdate;
        let Some(rules) = self.sla.rules() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, t) in self.sla.tickets.iter().enumerate() {
            let Some(t) = t else { continue };
            for c in t
                .clocks
                .iter()
                .filter(|c| c.phase == crate::sla::Phase::Open)
            {
                let live = c.live(rules, t.policy, t.paused_since, now);
                if live.level == 0 {
                    continue;
                }
                if forget {
                    out.push(AlertUpdate::Forget {
                        ticket_id: self.strings.resolve(self.tickets[i].ticket_id).to_string(),
                        clock: c.kind,
                    });
                    continue;
                }
                let tr = crate::sla::Transition {
                    ticket: i as u32,
                    clock: c.kind,
                    level: live.level,
                    at: live.breached_at.unwrap_or(now),
                };
                out.extend(self.alert_update(&tr));
            }
        }
        out
    }

    /// Moves SLA time to `now` and returns the alert updates it and the events since the last
    /// call caused, with the delay of each from its instant (ms).
    pub fn sla_tick(&mut self, now: Millis) -> Vec<(crate::sla::alerts::AlertUpdate, i64)> {
        self.sla.advance(now);
        let transitions = self.sla.take_transitions();
        transitions
            .iter()
            .filter_map(|t| self.alert_update(t).map(|u| (u, now - t.at)))
            .collect()
    }

    /// The ticket at `index`.
    pub fn ticket_at(&self, index: usize) -> Option<&TicketState> {
        self.tickets.get(index)
    }

    /// Index of a ticket by id.
    pub fn ticket_index_of(&self, ticket_id: &str) -> Option<usize> {
        self.strings
            .get(ticket_id)
            .and_then(|s| self.ticket_index(s))
    }

    /// Number of tickets.
    pub fn ticket_count(&self) -> usize {
        self.tickets.len()
    }

    /// Number of events in the history.
    pub fn event_count(&self) -> u64 {
        self.history.len()
    }

    /// What has been applied, ignored and rejected.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The interned strings.
    pub fn strings(&self) -> &Interner {
        &self.strings
    }

    /// The state of a ticket by id.
    pub fn ticket(&self, ticket_id: &str) -> Option<&TicketState> {
        let sym = self.strings.get(ticket_id)?;
        self.ticket_index(sym).map(|i| &self.tickets[i])
    }

    fn ticket_index(&self, sym: Sym) -> Option<usize> {
        match self.ticket_by_sym.get(sym.index()) {
            Some(&i) if i != u32::MAX => Some(i as usize),
            _ => None,
        }
    }

    /// Whether an event with this id was applied.
    pub fn has_event(&self, event_id: &str) -> bool {
        self.history.contains(event_id)
    }

    /// Applies one structurally valid event that sits at `offset` in the log.
    pub fn apply(&mut self, event: &TicketEvent, offset: u64) -> Outcome {
        self.apply_prepared(event, offset, None)
    }

    /// Like [`Projection::apply`], with the text tokens of a `ticket.created` event already
    /// computed by [`Projection::text_setup`]'s analyzer (on another thread, see [`crate::engine::replay`]).
    pub fn apply_prepared(
        &mut self,
        event: &TicketEvent,
        offset: u64,
        tokens: Option<crate::clustering::text::Analysis>,
    ) -> Outcome {
        if self.history.contains(&event.event_id) {
            self.counters.duplicates += 1;
            return Outcome::Duplicate;
        }
        let outcome = self.apply_new(event, offset, tokens);
        match outcome {
            Outcome::Applied => self.counters.applied += 1,
            Outcome::Rejected(_) => self.counters.rejected += 1,
            Outcome::Duplicate => self.counters.duplicates += 1,
        }
        outcome
    }

    fn apply_new(
        &mut self,
        event: &TicketEvent,
        offset: u64,
        tokens: Option<crate::clustering::text::Analysis>,
    ) -> Outcome {
        let at = event.occurred_at.timestamp_millis();
        let existing = self
            .strings
            .get(&event.ticket_id)
            .and_then(|s| self.ticket_index(s));
        let index = match (&event.payload, existing) {
            (Payload::Created(_), Some(_)) => {
                return reject(
                    "ticket_exists",
                    "/ticket_id",
                    format!(
                        "ticket {} was already created; a ticket is created once",
                        event.ticket_id
                    ),
                );
            }
            (Payload::Created(c), None) => self.create(event, c, at, tokens),
            (_, None) => {
                return reject(
                    "unknown_ticket",
                    "/ticket_id",
                    format!(
                        "ticket {} has no ticket.created event before this {}",
                        event.ticket_id,
                        event.event_type()
                    ),
                );
            }
            (_, Some(i)) => {
                if let Some(outcome) = check_transition(&self.tickets[i], event) {
                    return outcome;
                }
                i
            }
        };
        let before = self.tickets[index].status;
        let strings = &mut self.strings;
        let t = &mut self.tickets[index];
        let mut row = EventRow {
            offset,
            ticket: t.ticket_id,
            tenant: t.tenant,
            event_type: event.event_type(),
            occurred_at: at,
            actor: strings.intern(&event.actor.id),
            actor_role: event.actor.role,
            status_after: t.status,
            priority_after: t.priority,
            group: None,
            agent: None,
            tier: None,
            minutes: None,
            public: None,
            note: None,
        };
        fold(t, strings, &event.payload, at, &mut row);
        if before == Status::InProgress && at > t.last_event_at {
            let ms = (at - t.last_event_at).min(ACTIVE_SESSION_CAP_MS);
            t.active_seconds = t.active_seconds.saturating_add((ms / 1000) as u32);
        }
        t.last_event_at = t.last_event_at.max(at);
        t.event_count = t.event_count.saturating_add(1);
        row.status_after = t.status;
        row.priority_after = t.priority;
        let change = sla_change(&event.payload, before, t.status);
        if change != Change::Other {
            self.apply_sla(index, change, at);
        }
        self.history.push(&event.event_id, row, &self.strings);
        let block = index / tables::TICKET_BLOCK;
        if self.dirty_blocks.len() <= block {
            self.dirty_blocks.resize(block + 1, true);
        }
        self.dirty_blocks[block] = true;
        Outcome::Applied
    }

    /// Creates the ticket of a `ticket.created` event and places its text; its index.
    fn create(
        &mut self,
        event: &TicketEvent,
        c: &crate::event::Created,
        at: Millis,
        tokens: Option<crate::clustering::text::Analysis>,
    ) -> usize {
        let ticket_id = self.strings.intern(&event.ticket_id);
        let state = TicketState {
            ticket_id,
            tenant: event.tenant.as_deref().map(|t| self.strings.intern(t)),
            status: Status::New,
            priority: c.effective_priority(),
            channel: c.channel,
            category: self.strings.intern(&c.category),
            subcategory: c.subcategory.as_deref().map(|s| self.strings.intern(s)),
            configuration_item: c
                .configuration_item
                .as_deref()
                .map(|s| self.strings.intern(s)),
            service: c.service.as_deref().map(|s| self.strings.intern(s)),
            requester: self.strings.intern(&c.requester),
            group: None,
            agent: None,
            tier: 0,
            title: c.title.as_str().into(),
            created_at: at,
            first_assigned_at: None,
            first_response_at: None,
            resolved_at: None,
            closed_at: None,
            reopen_count: 0,
            reassignment_count: 0,
            handoff_count: 0,
            escalation_count: 0,
            handle_minutes: 0,
            active_seconds: 0,
            last_event_at: at,
            event_count: 0,
            first_contact: None,
            resolution_code: None,
            kb_article: None,
        };
        let index = self.tickets.len();
        if self.ticket_by_sym.len() <= ticket_id.index() {
            self.ticket_by_sym.resize(ticket_id.index() + 1, u32::MAX);
        }
        self.ticket_by_sym[ticket_id.index()] = index as u32;
        self.tickets.push(state);
        if !self.text_elsewhere {
            self.text.place(
                index,
                &event.ticket_id,
                at,
                &c.title,
                c.description.as_deref(),
                tokens,
            );
        }
        index
    }

    /// Hands a change of ticket `index` to the SLA engine, with the ticket as it is now.
    fn apply_sla(&mut self, index: usize, change: Change, at: Millis) {
        let t = &self.tickets[index];
        let s = &self.strings;
        let view = TicketView {
            subject: Subject {
                priority: t.priority,
                tenant: t.tenant.map(|x| s.resolve(x)),
                category: s.resolve(t.category),
                channel: t.channel,
                service: t.service.map(|x| s.resolve(x)),
            },
            tenant: t.tenant,
            status: t.status,
            created_at: t.created_at,
            responded: t.first_response_at.is_some(),
        };
        self.sla.apply(index, &view, change, at);
    }

    /// Approximate heap bytes held (for the benchmark and metrics).
    pub fn heap_bytes(&self) -> usize {
        self.memory().iter().map(|(_, bytes)| bytes).sum()
    }

    /// Approximate heap bytes held, by part of the state.
    pub fn memory(&self) -> Vec<(&'static str, usize)> {
        let (history, index) = self.history.heap_parts();
        vec![
            ("strings", self.strings.heap_bytes()),
            (
                "tickets",
                self.tickets.capacity() * std::mem::size_of::<TicketState>()
                    + self.tickets.iter().map(|t| t.title.len()).sum::<usize>()
                    + self.ticket_by_sym.capacity() * 4,
            ),
            ("history", history),
            ("dedup index", index),
            ("sla clocks", self.sla.heap_bytes()),
            ("text", self.text.heap_bytes()),
        ]
    }
}

/// What an applied event does to its ticket's state, and the history row's fields it sets.
fn fold(
    t: &mut TicketState,
    strings: &mut Interner,
    payload: &Payload,
    at: Millis,
    row: &mut EventRow,
) {
    match payload {
        Payload::Created(_) => {}
        Payload::Assigned(a) => {
            let group = strings.intern(&a.group);
            let agent = a.agent.as_deref().map(|s| strings.intern(s));
            if t.first_assigned_at.is_none() {
                t.first_assigned_at = Some(at);
            } else if t.group != Some(group) {
                t.reassignment_count = t.reassignment_count.saturating_add(1);
            }
            if t.agent.is_some() && agent.is_some() && t.agent != agent {
                t.handoff_count = t.handoff_count.saturating_add(1);
            }
            t.group = Some(group);
            t.agent = agent;
            t.tier = a.tier;
            if t.status == Status::New {
                t.status = Status::Open;
            }
            (row.group, row.agent, row.tier) = (Some(group), agent, Some(a.tier));
        }
        Payload::Escalated(e) => {
            let group = strings.intern(&e.group);
            t.escalation_count = t.escalation_count.saturating_add(1);
            if t.first_assigned_at.is_some() && t.group != Some(group) {
                t.reassignment_count = t.reassignment_count.saturating_add(1);
            }
            t.group = Some(group);
            t.agent = None;
            t.tier = e.to_tier;
            row.group = Some(group);
            row.tier = Some(e.to_tier);
            row.note = e.reason.as_deref().map(|s| strings.intern(s));
        }
        Payload::StatusChanged(s) => {
            if s.from == Status::Resolved && !s.to.is_final() && s.to != Status::Resolved {
                t.reopen_count = t.reopen_count.saturating_add(1);
                t.resolved_at = None;
            }
            match s.to {
                Status::Resolved => t.resolved_at = Some(at),
                Status::Closed | Status::Cancelled => t.closed_at = Some(at),
                _ => {}
            }
            t.status = s.to;
        }
        Payload::PriorityChanged(p) => t.priority = p.to,
        Payload::Commented(c) => {
            if c.public && c.author_role == Role::Agent && t.first_response_at.is_none() {
                t.first_response_at = Some(at);
            }
            row.public = Some(c.public);
        }
        Payload::WorkLogged(w) => {
            t.handle_minutes = t.handle_minutes.saturating_add(w.minutes);
            row.agent = Some(strings.intern(&w.agent));
            row.minutes = Some(w.minutes);
        }
        Payload::Resolved(r) => {
            t.status = Status::Resolved;
            t.resolved_at = Some(at);
            t.first_contact = Some(r.first_contact);
            t.resolution_code = Some(strings.intern(&r.resolution_code));
            t.kb_article = r.kb_article.as_deref().map(|s| strings.intern(s));
            row.note = t.resolution_code;
        }
        Payload::Reopened(r) => {
            t.status = Status::Open;
            t.reopen_count = t.reopen_count.saturating_add(1);
            t.resolved_at = None;
            row.note = r.reason.as_deref().map(|s| strings.intern(s));
        }
        Payload::Closed(_) => {
            t.status = Status::Closed;
            t.closed_at = Some(at);
        }
    }
}

/// The change an event is to the SLA engine (`before` and `after`: the ticket's status).
fn sla_change(payload: &Payload, before: Status, after: Status) -> Change {
    let comment = match payload {
        Payload::Commented(c) => Some((c.public, c.author_role)),
        _ => None,
    };
    sla_change_of(payload.event_type(), comment, before, after)
}

/// The change an event of type `kind` is to the SLA engine: `comment` is a comment's
/// (public, author role); `before` and `after` the ticket's status around it. One definition
/// for the projection and for a ticket's timeline, which replays its history rows.
pub fn sla_change_of(
    kind: EventType,
    comment: Option<(bool, Role)>,
    before: Status,
    after: Status,
) -> Change {
    match (kind, comment) {
        (EventType::Created, _) => Change::Created,
        (EventType::Assigned, _) => Change::Assigned,
        (EventType::PriorityChanged, _) => Change::Priority,
        (EventType::Commented, Some((true, Role::Agent))) => Change::AgentReply,
        (EventType::Commented, Some((true, Role::Requester))) => Change::RequesterComment,
        (
            EventType::StatusChanged
            | EventType::Resolved
            | EventType::Reopened
            | EventType::Closed,
            _,
        ) if before != after => Change::Status {
            from: before,
            to: after,
        },
        _ => Change::Other,
    }
}

/// An immutable, shareable view of the projected tables, as queries see them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `tickets`, one batch per block of [`tables::TICKET_BLOCK`] tickets.
    pub tickets: Vec<RecordBatch>,
    /// `ticket_events`, chunk by chunk (on the heap or on disk).
    pub events: Vec<history::EventChunk>,
    /// Raw `sla_clocks` rows, one entry per ticket block (see [`sla_table`]).
    pub sla: Vec<Option<RecordBatch>>,
    /// The rules the clocks run under (to value them at query time).
    pub sla_rules: Option<Arc<Rules>>,
    /// Text cluster index of every ticket (into `catalog`), one entry per ticket block
    /// (aligned with `tickets`).
    pub clusters: Vec<Arc<[u32]>>,
    /// The text clusters.
    pub catalog: Catalog,
    /// Counters at the time of the snapshot.
    pub counters: Counters,
}

impl Snapshot {
    /// Every row of `ticket_events`, chunk by chunk (reading the chunks that are on disk).
    pub fn event_batches(&self) -> Result<Vec<RecordBatch>, datafusion::arrow::error::ArrowError> {
        let all: Vec<usize> = (0..tables::EVENTS_SCHEMA.fields().len()).collect();
        self.events.iter().map(|c| c.read(&all)).collect()
    }

    /// One snapshot of several disjoint projections (the partitions of a Kafka topic), whose
    /// texts were placed together: `clusters` for the parts' ticket blocks in order, indices
    /// into `catalog` (see [`crate::clustering::order`]).
    pub fn merge<'a>(
        parts: impl IntoIterator<Item = &'a Snapshot>,
        clusters: Vec<Arc<[u32]>>,
        catalog: Catalog,
    ) -> Snapshot {
        let mut merged = Snapshot {
            clusters,
            catalog,
            ..Snapshot::default()
        };
        for part in parts {
            merged.tickets.extend(part.tickets.iter().cloned());
            merged.events.extend(part.events.iter().cloned());
            merged.sla.extend(part.sla.iter().cloned());
            if merged.sla_rules.is_none() {
                merged.sla_rules = part.sla_rules.clone();
            }
            merged.counters.applied += part.counters.applied;
            merged.counters.duplicates += part.counters.duplicates;
            merged.counters.rejected += part.counters.rejected;
        }
        merged
    }
}

impl Projection {
    /// A snapshot of the current state, re-using the unchanged ticket blocks of `previous`.
    pub fn snapshot(&mut self, previous: &Snapshot) -> Snapshot {
        let blocks = self.tickets.len().div_ceil(tables::TICKET_BLOCK);
        let mut tickets = Vec::with_capacity(blocks);
        let mut sla = Vec::with_capacity(blocks);
        let mut clusters = Vec::with_capacity(blocks);
        for block in 0..blocks {
            let dirty = self.dirty_blocks.get(block).copied().unwrap_or(true);
            match (
                previous.tickets.get(block),
                previous.sla.get(block),
                previous.clusters.get(block),
            ) {
                (Some(batch), Some(raw), Some(c)) if !dirty => {
                    tickets.push(batch.clone());
                    sla.push(raw.clone());
                    clusters.push(c.clone());
                }
                _ => {
                    let start = block * tables::TICKET_BLOCK;
                    let end = (start + tables::TICKET_BLOCK).min(self.tickets.len());
                    clusters.push(self.text.clusters_of(start..end));
                    tickets.push(tables::tickets_batch(
                        &self.tickets[start..end],
                        &self.strings,
                    ));
                    let clocks = &self.sla.tickets;
                    let (s, e) = (start.min(clocks.len()), end.min(clocks.len()));
                    sla.push(sla_table::raw_batch(
                        &self.tickets[start..start + (e - s)],
                        &clocks[s..e],
                        &self.strings,
                    ));
                }
            }
        }
        self.dirty_blocks.iter_mut().for_each(|d| *d = false);
        Snapshot {
            tickets,
            sla,
            sla_rules: self.sla.rules().cloned(),
            clusters,
            catalog: self.text.catalog(),
            events: self.history.chunks(&self.strings),
            counters: self.counters.clone(),
        }
    }
}

/// The state checks of an event on an existing ticket; `None` when it may be applied.
fn check_transition(t: &TicketState, event: &TicketEvent) -> Option<Outcome> {
    let id = &event.ticket_id;
    let kind = event.event_type();
    if t.status.is_final() && !matches!(kind, EventType::Commented | EventType::WorkLogged) {
        return Some(reject(
            "ticket_closed",
            "/type",
            format!(
                "ticket {id} is {}; a {kind} event cannot change it any more",
                t.status
            ),
        ));
    }
    match &event.payload {
        Payload::StatusChanged(s) if s.from != t.status => Some(reject(
            "status_conflict",
            "/payload/from",
            format!(
                "ticket {id} is in status {}, not {}; the change to {} was not applied",
                t.status, s.from, s.to
            ),
        )),
        Payload::StatusChanged(s) if s.from == s.to => Some(reject(
            "invalid_transition",
            "/payload/to",
            format!("ticket {id} is already {}; nothing to change", s.to),
        )),
        Payload::PriorityChanged(p) if p.from != t.priority => Some(reject(
            "priority_conflict",
            "/payload/from",
            format!(
                "ticket {id} has priority {}, not {}; the change to {} was not applied",
                t.priority, p.from, p.to
            ),
        )),
        Payload::PriorityChanged(p) if p.from == p.to => Some(reject(
            "invalid_transition",
            "/payload/to",
            format!("ticket {id} already has priority {}", p.to),
        )),
        Payload::Resolved(_) if t.status == Status::Resolved => Some(reject(
            "invalid_transition",
            "/type",
            format!("ticket {id} is already resolved"),
        )),
        Payload::Reopened(_) if t.status != Status::Resolved => Some(reject(
            "invalid_transition",
            "/type",
            format!(
                "ticket {id} is {}, not resolved; only a resolved ticket can be reopened",
                t.status
            ),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
