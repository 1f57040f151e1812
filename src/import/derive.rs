//! From mapped rows to events. Each ticket's state is tracked (status, priority, group, agent,
//! tier) so every derived event is one the projection accepts: a status change names the status
//! the ticket is in, a reopen only follows a resolution, nothing follows a closure.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::mapping::{Mapping, Meaning, Mode, Source};
use super::source::Record;
use crate::event::{
    Actor, Assigned, Closed, Commented, Created, Escalated, Payload, Priority, PriorityChanged,
    Reopened, Resolved, Role, Status, StatusChanged, TicketEvent, WorkLogged,
};

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// Where (CSV line, XES event number).
    pub row: u64,
    /// The ticket, when known.
    pub ticket: Option<String>,
    /// Stable reason: `missing_ticket_id`, `bad_time`, `unknown_status`, `unknown_activity`,
    /// `unknown_priority`, `unknown_channel`, `unknown_tier`, `missing_field`, `out_of_order`,
    /// `after_close`, `unreadable`, `unknown_comment`, `unknown_ticket`, or a validation reason
    /// of the event contract.
    pub reason: &'static str,
    /// Details.
    pub message: String,
}

/// What a row became.
#[derive(Debug, Clone, PartialEq)]
pub enum RowOutcome {
    /// These events, in order.
    Events(Vec<TicketEvent>),
    /// It repeats the ticket's state: nothing happened.
    Unchanged,
    /// Its status or activity maps to `skip`.
    Skipped,
}

/// What the deriver knows of one ticket (saved by live sources with their cursor, or seeded
/// from the projection by webhooks).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Track {
    /// Status.
    pub status: Status,
    /// Priority.
    pub priority: Priority,
    /// Tenant.
    pub tenant: Option<String>,
    /// Assignment group.
    pub group: Option<String>,
    /// Agent.
    pub agent: Option<String>,
    /// Tier: 0 before the first assignment.
    pub tier: u8,
    /// Instant of the latest row, ms.
    pub last_at: i64,
    /// Rows seen (the ordinal in event ids).
    pub rows: u32,
    /// Hand-offs, escalations and reopens so far (a resolution without any is first contact).
    pub detours: u32,
    /// A public agent comment was made.
    pub responded: bool,
}

/// Turns rows into events, ticket by ticket.
#[derive(Debug)]
pub struct Deriver {
    mapping: Mapping,
    tz: Tz,
    first_response: Vec<Status>,
    tracks: HashMap<String, Track>,
    content_ids: bool,
}

/// The ticket id and instant of a row, read before the rows of a ticket are put in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    /// Ticket id, prefixed.
    pub ticket: String,
    /// Milliseconds since the epoch.
    pub at: i64,
}

/// What a row changes on a ticket that is not closed.
struct Change {
    target: Option<Status>,
    reassign: bool,
    priority: Option<Priority>,
    group: Option<String>,
    agent: Option<String>,
    tier: u8,
}

/// The comment a row is, if any (a public agent comment is a response).
fn comment(
    meaning: Option<Meaning>,
    t: &mut Track,
    out: &mut Vec<Payload>,
    requester_actor: &mut Vec<(usize, String)>,
) {
    match meaning {
        Some(Meaning::Comment) => out.push(Payload::Commented(Commented {
            public: false,
            author_role: Role::Agent,
        })),
        Some(Meaning::PublicComment) => {
            out.push(Payload::Commented(Commented {
                public: true,
                author_role: Role::Agent,
            }));
            t.responded = true;
        }
        Some(Meaning::RequesterComment) => {
            out.push(Payload::Commented(Commented {
                public: true,
                author_role: Role::Requester,
            }));
            requester_actor.push((out.len() - 1, "requester".into()));
        }
        _ => {}
    }
}

fn err(row: u64, ticket: &str, reason: &'static str, message: String) -> RowError {
    RowError {
        row,
        ticket: Some(ticket.to_string()),
        reason,
        message,
    }
}

impl Deriver {
    /// A deriver for a checked mapping.
    pub fn new(mapping: Mapping) -> Deriver {
        let tz = mapping.time.time_zone.parse().unwrap_or(chrono_tz::UTC);
        let first_response = mapping
            .derive
            .first_response_statuses
            .iter()
            .filter_map(|s| Status::parse(s))
            .collect();
        Deriver {
            mapping,
            tz,
            first_response,
            tracks: HashMap::new(),
            content_ids: false,
        }
    }

    /// Event ids from what happened (ticket, instant, the event itself) rather than from the
    /// row's place in the ticket's rows: for webhooks, whose rows may come again, or not at all,
    /// and whose tracks are seeded from the projection after a restart.
    pub fn with_content_ids(mut self) -> Deriver {
        self.content_ids = true;
        self
    }

    /// Whether the ticket is known.
    pub fn knows(&self, ticket: &str) -> bool {
        self.tracks.contains_key(ticket)
    }

    /// Sets what is known of a ticket (a webhook seeds it from the projection).
    pub fn seed(&mut self, ticket: &str, track: Track) {
        self.tracks.insert(ticket.to_string(), track);
    }

    /// Forgets tickets (the projection refused an event derived for them, or memory is bounded);
    /// `keep` says which stay.
    pub fn retain(&mut self, keep: impl FnMut(&String, &mut Track) -> bool) {
        self.tracks.retain(keep);
    }

    /// The mapping.
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// Tickets seen so far.
    pub fn tickets(&self) -> usize {
        self.tracks.len()
    }

    /// What it knows of every ticket, to save (a live source saves it with its cursor).
    pub fn tracks(&self) -> &HashMap<String, Track> {
        &self.tracks
    }

    /// Carries on from saved tracks (see [`Deriver::tracks`]).
    pub fn with_tracks(mut self, tracks: HashMap<String, Track>) -> Deriver {
        self.tracks = tracks;
        self
    }

    /// A field's value: `None` when null or absent.
    pub fn value(&self, source: &Source, r: &Record) -> Option<String> {
        let m = &self.mapping;
        match source {
            Source::Column(c) => r
                .get(c)
                .filter(|v| !m.is_null(v))
                .map(|v| v.trim().to_string()),
            Source::Value { value } => Some(value.clone()),
            Source::ColumnOr { column, default } => r
                .get(column)
                .filter(|v| !m.is_null(v) && !v.trim().is_empty())
                .map(|v| v.trim().to_string())
                .or_else(|| Some(default.clone())),
            Source::Template { template } => {
                let mut out = String::with_capacity(template.len() + 16);
                let mut rest = template.as_str();
                while let Some(open) = rest.find('{') {
                    out.push_str(&rest[..open]);
                    let Some(close) = rest[open..].find('}') else {
                        out.push_str(&rest[open..]);
                        rest = "";
                        break;
                    };
                    let key = &rest[open + 1..open + close];
                    if let Some(v) = r.get(key).filter(|v| !m.is_null(v)) {
                        out.push_str(v.trim());
                    }
                    rest = &rest[open + close + 1..];
                }
                out.push_str(rest);
                let out = out.trim();
                (!out.is_empty()).then(|| out.to_string())
            }
        }
    }

    /// The columns a mapping refers to (to check them against a CSV header).
    pub fn columns(&self) -> Vec<String> {
        let f = &self.mapping.fields;
        let mut out = vec![self.mapping.time.field.clone()];
        let all = [
            Some(&f.ticket_id),
            f.status.as_ref(),
            f.activity.as_ref(),
            f.priority.as_ref(),
            f.channel.as_ref(),
            f.category.as_ref(),
            f.requester.as_ref(),
            f.title.as_ref(),
            f.description.as_ref(),
            f.subcategory.as_ref(),
            f.configuration_item.as_ref(),
            f.service.as_ref(),
            f.tenant.as_ref(),
            f.group.as_ref(),
            f.agent.as_ref(),
            f.tier.as_ref(),
            f.resolution_code.as_ref(),
            f.actor.as_ref(),
            f.comment.as_ref(),
            f.comment_id.as_ref(),
            f.work_time.as_ref(),
        ];
        for s in all.into_iter().flatten() {
            match s {
                Source::Column(c) | Source::ColumnOr { column: c, .. } => out.push(c.clone()),
                Source::Template { template } => {
                    let mut rest = template.as_str();
                    while let (Some(o), Some(c)) = (rest.find('{'), rest.find('}')) {
                        if c > o {
                            out.push(rest[o + 1..c].to_string());
                        }
                        rest = &rest[c + 1..];
                    }
                }
                Source::Value { .. } => {}
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The ticket id and the instant of a row.
    pub fn key(&self, r: &Record) -> Result<Keyed, RowError> {
        let Some(id) = self.value(&self.mapping.fields.ticket_id, r) else {
            return Err(RowError {
                row: r.row,
                ticket: None,
                reason: "missing_ticket_id",
                message: "no ticket id".into(),
            });
        };
        let ticket = format!("{}{id}", self.mapping.ticket_prefix);
        let t = &self.mapping.time;
        let raw = r
            .get(&t.field)
            .filter(|v| !self.mapping.is_null(v))
            .map(str::trim);
        let Some(raw) = raw else {
            return Err(err(
                r.row,
                &ticket,
                "bad_time",
                format!("no value in `{}`", t.field),
            ));
        };
        let at = parse_time(raw, &t.format, self.tz).map_err(|m| {
            err(
                r.row,
                &ticket,
                "bad_time",
                format!("`{raw}` in `{}`: {m}", t.field),
            )
        })?;
        Ok(Keyed { ticket, at })
    }

    /// The events of one row of `ticket` at `at` (from [`Deriver::key`]); `more`: later rows of
    /// the ticket follow it in the file.
    pub fn row(&mut self, r: &Record, key: &Keyed, more: bool) -> Result<RowOutcome, RowError> {
        let m = &self.mapping;
        let (id, at, row) = (key.ticket.as_str(), key.at, r.row);
        let fail = |reason, message| Err(err(row, id, reason, message));
        let f = &m.fields;
        let meaning = self.meaning(r, row, id)?;
        let extra = self.comment_of(r, row, id)?;
        if meaning == Some(Meaning::Skip) {
            if let Some(t) = self.tracks.get_mut(id) {
                t.rows += 1;
            }
            return Ok(RowOutcome::Skipped);
        }
        let priority = match &f.priority {
            Some(s) => self.coded(s, r, row, id, "priority", |v| m.priority(v))?,
            None => None,
        };
        let tier = match &f.tier {
            Some(s) => self.coded(s, r, row, id, "tier", |v| m.tier(v))?,
            None => None,
        };
        let opt = |s: &Option<Source>| s.as_ref().and_then(|s| self.value(s, r));
        let (group, agent) = (opt(&f.group), opt(&f.agent));
        let actor_id = agent
            .clone()
            .or_else(|| opt(&f.actor))
            .unwrap_or_else(|| "import".into());
        let mut out: Vec<Payload> = Vec::new();
        let mut requester_actor = Vec::new();
        let created = !self.tracks.contains_key(id);
        let mut t = self.track(r, key, priority, &mut out, &mut requester_actor)?;
        let c = self.change(&t, meaning, more, priority, tier, group, agent);
        if t.status.is_final() {
            let changes =
                c.reassign || c.priority.is_some() || c.target.is_some_and(|s| s != t.status);
            if changes {
                return fail(
                    "after_close",
                    format!(
                        "the ticket is {} already; a later change cannot apply",
                        t.status
                    ),
                );
            }
        } else {
            self.transitions(&mut t, c, r, &mut out);
        }
        // The row's comment (its activity's, or `fields.comment`'s) is where `comment-id` goes.
        let mut comment_at = None;
        for m in [meaning, extra] {
            let before = out.len();
            comment(m, &mut t, &mut out, &mut requester_actor);
            if out.len() > before {
                comment_at = Some(before);
            }
        }
        let worker = opt(&f.actor).or_else(|| t.agent.clone());
        self.work(r, row, id, worker, &mut out)?;
        let ordinal = t.rows;
        t.rows += 1;
        t.last_at = at;
        if out.is_empty() {
            self.tracks.insert(id.to_string(), t);
            return Ok(RowOutcome::Unchanged);
        }
        let events = self.events(
            r,
            Place {
                id,
                ordinal,
                created,
                comment_at,
            },
            &actor_id,
            &t,
            out,
            &requester_actor,
        )?;
        self.tracks.insert(id.to_string(), t);
        Ok(RowOutcome::Events(events))
    }

    /// The time worked in the row (`fields.work-time`) as `work_logged` events of at most a day
    /// each (the contract's limit); none for zero or a negative correction.
    fn work(
        &self,
        r: &Record,
        row: u64,
        id: &str,
        worker: Option<String>,
        out: &mut Vec<Payload>,
    ) -> Result<(), RowError> {
        let m = &self.mapping;
        let Some(v) = m.fields.work_time.as_ref().and_then(|s| self.value(s, r)) else {
            return Ok(());
        };
        let amount: f64 = v.parse().map_err(|_| {
            err(
                row,
                id,
                "bad_work_time",
                format!("work time `{v}` is not a number"),
            )
        })?;
        let minutes = match m.derive.work_unit.as_str() {
            "seconds" => amount / 60.0,
            "hours" => amount * 60.0,
            _ => amount,
        };
        if !minutes.is_finite() || minutes > 525_600.0 {
            return Err(err(
                row,
                id,
                "bad_work_time",
                format!("work time `{v}` is not a plausible amount"),
            ));
        }
        let mut left = minutes.round() as i64;
        let agent = worker.unwrap_or_else(|| "import".into());
        while left > 0 {
            let now = left.min(1440);
            out.push(Payload::WorkLogged(WorkLogged {
                agent: agent.clone(),
                minutes: now as u32,
            }));
            left -= now;
        }
        Ok(())
    }

    /// The comment a row carries besides its status (`fields.comment`), if any.
    fn comment_of(&self, r: &Record, row: u64, id: &str) -> Result<Option<Meaning>, RowError> {
        let m = &self.mapping;
        let Some(v) = m.fields.comment.as_ref().and_then(|s| self.value(s, r)) else {
            return Ok(None);
        };
        match m.comment_meaning(&v) {
            Some(Meaning::Skip) => Ok(None),
            Some(x) => Ok(Some(x)),
            None => Err(err(
                row,
                id,
                "unknown_comment",
                format!("comment `{v}` is not in [values.comment]"),
            )),
        }
    }

    /// What a row means: its status (snapshot mode) or activity (event mode) through the
    /// mapping.
    fn meaning(&self, r: &Record, row: u64, id: &str) -> Result<Option<Meaning>, RowError> {
        let m = &self.mapping;
        let f = &m.fields;
        let fail = |reason, message| Err(err(row, id, reason, message));
        Ok(match m.mode {
            Mode::Snapshot => match f.status.as_ref().and_then(|s| self.value(s, r)) {
                None => None,
                Some(v) => match m.status_meaning(&v) {
                    Some(x) => Some(x),
                    None => {
                        return fail(
                            "unknown_status",
                            format!("status `{v}` is not in [values.status]"),
                        );
                    }
                },
            },
            Mode::Event => match f.activity.as_ref().and_then(|s| self.value(s, r)) {
                None => return fail("missing_field", "no activity".into()),
                Some(v) => match m.activity_meaning(&v) {
                    Some(x) => Some(x),
                    None => {
                        return fail(
                            "unknown_activity",
                            format!("activity `{v}` is not in [activities]"),
                        );
                    }
                },
            },
        })
    }

    /// What the row changes on the ticket `t`: the status it reaches (a closure followed by
    /// more rows is a resolution when `reopen-after-close`), the assignment and the priority.
    #[allow(clippy::too_many_arguments)]
    fn change(
        &self,
        t: &Track,
        meaning: Option<Meaning>,
        more: bool,
        priority: Option<Priority>,
        tier: Option<u8>,
        group: Option<String>,
        agent: Option<String>,
    ) -> Change {
        let m = &self.mapping;
        let target = match meaning {
            Some(Meaning::Status(Status::Closed)) if more && m.derive.reopen_after_close => {
                Some(Status::Resolved)
            }
            Some(Meaning::Status(s)) => Some(s),
            _ => None,
        };
        let new_group = group.or_else(|| t.group.clone());
        let new_agent = agent.or_else(|| t.agent.clone());
        let new_tier = tier.unwrap_or(if t.tier == 0 || new_group != t.group {
            if t.tier == 0 {
                m.derive.default_tier
            } else {
                t.tier
            }
        } else {
            t.tier
        });
        let reassign = new_group.is_some()
            && (new_group != t.group || new_agent != t.agent || new_tier != t.tier);
        let new_priority = priority.filter(|p| *p != t.priority);
        Change {
            target,
            reassign,
            priority: new_priority,
            group: new_group,
            agent: new_agent,
            tier: new_tier,
        }
    }

    /// A coded field's value through the mapping (`None` when the row has none).
    fn coded<T>(
        &self,
        source: &Source,
        r: &Record,
        row: u64,
        id: &str,
        name: &'static str,
        lookup: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, RowError> {
        let Some(v) = self.value(source, r) else {
            return Ok(None);
        };
        match lookup(&v) {
            Some(x) => Ok(Some(x)),
            None => Err(err(
                row,
                id,
                match name {
                    "priority" => "unknown_priority",
                    _ => "unknown_tier",
                },
                format!("{name} `{v}` is not in [values.{name}]"),
            )),
        }
    }

    /// The ticket's track before this row; for a new ticket, its `ticket.created` goes to `out`
    /// first (and the requester is its actor).
    fn track(
        &self,
        r: &Record,
        key: &Keyed,
        priority: Option<Priority>,
        out: &mut Vec<Payload>,
        requester_actor: &mut Vec<(usize, String)>,
    ) -> Result<Track, RowError> {
        let m = &self.mapping;
        let f = &m.fields;
        let (id, at, row) = (key.ticket.as_str(), key.at, r.row);
        let fail = |reason, message| Err(err(row, id, reason, message));
        let opt = |s: &Option<Source>| s.as_ref().and_then(|s| self.value(s, r));
        Ok(match self.tracks.get(id) {
            Some(t) => {
                if at < t.last_at {
                    return fail(
                        "out_of_order",
                        format!(
                            "{} is before the ticket's previous row ({}); rows of a ticket must be in time order",
                            crate::event::format_ms(at),
                            crate::event::format_ms(t.last_at)
                        ),
                    );
                }
                t.clone()
            }
            None if !m.derive.create => {
                return fail(
                    "unknown_ticket",
                    "deskwatch has no such ticket, and this source does not create tickets".into(),
                );
            }
            None => {
                let required = |s: &Option<Source>, name: &str| {
                    s.as_ref()
                        .and_then(|s| self.value(s, r))
                        .ok_or_else(|| err(row, id, "missing_field", format!("no {name}")))
                };
                let channel_raw = required(&f.channel, "channel")?;
                let Some(channel) = m.channel(&channel_raw) else {
                    return fail(
                        "unknown_channel",
                        format!("channel `{channel_raw}` is not in [values.channel]"),
                    );
                };
                let Some(p) = priority else {
                    return fail("missing_field", "no priority for a new ticket".into());
                };
                let requester = required(&f.requester, "requester")?;
                out.push(Payload::Created(Created {
                    channel,
                    priority: Some(p),
                    impact: None,
                    urgency: None,
                    category: required(&f.category, "category")?,
                    subcategory: opt(&f.subcategory),
                    configuration_item: opt(&f.configuration_item),
                    service: opt(&f.service),
                    requester: requester.clone(),
                    title: required(&f.title, "title")?,
                    description: opt(&f.description),
                }));
                requester_actor.push((0usize, requester));
                Track {
                    status: Status::New,
                    priority: p,
                    tenant: opt(&f.tenant),
                    group: None,
                    agent: None,
                    tier: 0,
                    last_at: at,
                    rows: 0,
                    detours: 0,
                    responded: false,
                }
            }
        })
    }

    /// The events that take a ticket that is not closed to the row's state: a reopen, a
    /// priority change, an escalation or assignment, the status, the first response.
    fn transitions(&self, t: &mut Track, c: Change, r: &Record, out: &mut Vec<Payload>) {
        let f = &self.mapping.fields;
        let opt = |s: &Option<Source>| s.as_ref().and_then(|s| self.value(s, r));
        let Change {
            target,
            reassign,
            priority: new_priority,
            group: new_group,
            agent: new_agent,
            tier: new_tier,
        } = c;
        // A resolved ticket going back to work is reopened first.
        if t.status == Status::Resolved
            && target.is_some_and(|s| !s.is_final() && s != Status::Resolved)
        {
            out.push(Payload::Reopened(Reopened { reason: None }));
            t.status = Status::Open;
            t.detours += 1;
        }
        if let Some(p) = new_priority {
            out.push(Payload::PriorityChanged(PriorityChanged {
                from: t.priority,
                to: p,
            }));
            t.priority = p;
        }
        if reassign && let Some(g) = new_group.clone() {
            if t.tier > 0 && new_tier > t.tier {
                out.push(Payload::Escalated(Escalated {
                    from_tier: t.tier,
                    to_tier: new_tier,
                    group: g.clone(),
                    reason: None,
                }));
                t.agent = None;
                if new_agent.is_some() {
                    out.push(Payload::Assigned(Assigned {
                        group: g.clone(),
                        agent: new_agent.clone(),
                        tier: new_tier,
                    }));
                }
            } else {
                out.push(Payload::Assigned(Assigned {
                    group: g.clone(),
                    agent: new_agent.clone(),
                    tier: new_tier,
                }));
                if t.status == Status::New {
                    t.status = Status::Open;
                }
            }
            if t.group.is_some() && t.group.as_ref() != Some(&g) {
                t.detours += 1;
            }
            (t.group, t.agent, t.tier) = (Some(g), new_agent, new_tier);
        }
        // `new` only describes a ticket nobody has touched: once assigned, deskwatch has it
        // open, and an export still saying "New" does not take it back.
        if let Some(s) = target.filter(|s| *s != t.status && *s != Status::New) {
            out.push(match s {
                Status::Resolved => Payload::Resolved(Resolved {
                    resolution_code: opt(&f.resolution_code).unwrap_or_else(|| "resolved".into()),
                    first_contact: t.detours == 0,
                    kb_article: None,
                }),
                Status::Closed => Payload::Closed(Closed {}),
                to => Payload::StatusChanged(StatusChanged { from: t.status, to }),
            });
            t.status = s;
        }
        if target.is_some_and(|s| self.first_response.contains(&s)) && !t.responded {
            out.push(Payload::Commented(Commented {
                public: true,
                author_role: Role::Agent,
            }));
            t.responded = true;
        }
    }

    /// The row's payloads as events: ids from the row's ordinal (or its content, see
    /// [`Deriver::with_content_ids`]; a comment with `fields.comment-id` from that id), the
    /// requester as the actor of what the requester did, checked against the contract.
    fn events(
        &self,
        r: &Record,
        place: Place<'_>,
        actor_id: &str,
        t: &Track,
        out: Vec<Payload>,
        requester_actor: &[(usize, String)],
    ) -> Result<Vec<TicketEvent>, RowError> {
        let m = &self.mapping;
        let f = &m.fields;
        let id = place.id;
        let (at, row) = (t.last_at, r.row);
        let fail = |reason, message| Err(err(row, id, reason, message));
        let occurred_at = DateTime::<Utc>::from_timestamp_millis(at).unwrap_or_default();
        let comment_id = f.comment_id.as_ref().and_then(|s| self.value(s, r));
        let mut events = Vec::with_capacity(out.len());
        for (k, payload) in out.into_iter().enumerate() {
            let actor = match requester_actor.iter().find(|(i, _)| *i == k) {
                Some((_, who)) => Actor {
                    id: if who == "requester" && !place.created {
                        f.requester
                            .as_ref()
                            .and_then(|s| self.value(s, r))
                            .unwrap_or_else(|| "requester".into())
                    } else {
                        who.clone()
                    },
                    role: Role::Requester,
                },
                None => Actor {
                    id: actor_id.to_string(),
                    role: Role::Agent,
                },
            };
            let work = matches!(payload, Payload::WorkLogged(_));
            let event_id = match (&comment_id, place.comment_at == Some(k)) {
                (Some(c), true) => keyed_id(&m.name, id, &["comment", c]),
                // Time accounted on the comment counts once, however often it is sent.
                (Some(c), false) if work => keyed_id(&m.name, id, &["work", c, &k.to_string()]),
                _ if self.content_ids => {
                    let what = format!("{payload:?}");
                    keyed_id(&m.name, id, &[&at.to_string(), &k.to_string(), &what])
                }
                _ => event_id(&m.name, id, place.ordinal, k),
            };
            let e = TicketEvent {
                event_id,
                ticket_id: id.to_string(),
                tenant: t.tenant.clone(),
                occurred_at,
                actor,
                payload,
            };
            if let Err(v) = e.validate() {
                return fail(v.reason, format!("{}: {}", v.field, v.message));
            }
            events.push(e);
        }
        Ok(events)
    }
}

/// Where a row's events belong: the ticket, the row's ordinal, whether it created the ticket,
/// and which payload is its `fields.comment`.
struct Place<'a> {
    id: &'a str,
    ordinal: u32,
    created: bool,
    comment_at: Option<usize>,
}

/// `name-<128-bit hash of the ticket and parts>`.
fn keyed_id(name: &str, ticket: &str, parts: &[&str]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(ticket.as_bytes());
    for p in parts {
        h.update(&[0xff]);
        h.update(p.as_bytes());
    }
    format!("{name}-{:032x}", h.digest128())
}

/// `name-<128-bit hash of ticket, row ordinal and event index>`: the same rows give the same
/// ids on every import.
fn event_id(name: &str, ticket: &str, ordinal: u32, k: usize) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(ticket.as_bytes());
    h.update(&[0]);
    h.update(&ordinal.to_le_bytes());
    h.update(&(k as u32).to_le_bytes());
    format!("{name}-{:032x}", h.digest128())
}

/// Why an instant does not parse in the mapping's format.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TimeError {
    /// Not RFC 3339.
    #[error("not RFC 3339 ({0})")]
    Rfc3339(chrono::ParseError),
    /// Not a number of seconds.
    #[error("not a number of seconds ({0})")]
    Seconds(std::num::ParseFloatError),
    /// Not a number of milliseconds.
    #[error("not a number of milliseconds ({0})")]
    Millis(std::num::ParseIntError),
    /// Does not match the pattern.
    #[error("does not match `{pattern}` ({source})")]
    Pattern {
        /// The mapping's pattern.
        pattern: String,
        /// Why.
        source: chrono::ParseError,
    },
    /// A local time that does not exist.
    #[error("{naive} does not exist in {tz} (a daylight-saving gap)")]
    Gap {
        /// The local time.
        naive: NaiveDateTime,
        /// The time zone.
        tz: Tz,
    },
}

/// Parses an instant in the mapping's format; naive times are in `tz`.
pub fn parse_time(raw: &str, format: &str, tz: Tz) -> Result<i64, TimeError> {
    match format {
        "rfc3339" => DateTime::parse_from_rfc3339(raw)
            .map(|t| t.timestamp_millis())
            .map_err(TimeError::Rfc3339),
        "epoch-seconds" => raw
            .parse::<f64>()
            .map(|s| (s * 1000.0).round() as i64)
            .map_err(TimeError::Seconds),
        "epoch-millis" => raw.parse::<i64>().map_err(TimeError::Millis),
        pattern => {
            if let Ok(t) = DateTime::parse_from_str(raw, pattern) {
                return Ok(t.timestamp_millis());
            }
            let naive = NaiveDateTime::parse_from_str(raw, pattern).map_err(|source| {
                TimeError::Pattern {
                    pattern: pattern.to_string(),
                    source,
                }
            })?;
            tz.from_local_datetime(&naive)
                .earliest()
                .map(|t| t.timestamp_millis())
                .ok_or(TimeError::Gap { naive, tz })
        }
    }
}
