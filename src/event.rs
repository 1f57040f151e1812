//! The event contract: the Rust side of `schemas/ticket-event.v1.schema.json`.
//!
//! This module owns parsing and structural validation of one event (the JSON envelope, the
//! payload of each type, value ranges). It knows nothing of ticket state: checks that need the
//! current state of a ticket (a status change from a state the ticket is not in, an event for
//! a ticket that was never created) belong to [`crate::projection`].
//!
//! Every error names the offending field as a JSON pointer (`/payload/priority`), the same
//! pointer a JSON Schema validator reports, so producers can fix their data from either.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The only schema version this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;
/// The published JSON Schema of one event.
pub const SCHEMA_JSON: &str = include_str!("../schemas/ticket-event.v1.schema.json");
/// Longest accepted identifier (event id, ticket id, actor id, names).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted title.
pub const MAX_TITLE_LEN: usize = 512;
/// Longest accepted free text (description, reasons).
pub const MAX_TEXT_LEN: usize = 16_384;
/// Most minutes one work-log entry may carry (one day).
pub const MAX_WORK_MINUTES: u32 = 1440;

/// Why an event was refused, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventError {
    /// Machine-readable reason, stable across versions (`missing_field`, `invalid_value`, …).
    pub reason: &'static str,
    /// JSON pointer of the field at fault (`/payload/priority`); empty for the whole document.
    pub field: String,
    /// A sentence a person can act on.
    pub message: String,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for EventError {}

impl EventError {
    fn new(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            reason,
            field: field.into(),
            message: message.into(),
        }
    }
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as written in events.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the text form; `None` when it is not one of [`Self::ALL`].
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// What kind of change an event records.
    EventType {
        Created = "ticket.created",
        Assigned = "ticket.assigned",
        Escalated = "ticket.escalated",
        StatusChanged = "ticket.status_changed",
        PriorityChanged = "ticket.priority_changed",
        Commented = "ticket.commented",
        WorkLogged = "ticket.work_logged",
        Resolved = "ticket.resolved",
        Reopened = "ticket.reopened",
        Closed = "ticket.closed",
    }
);

string_enum!(
    /// How the request reached the desk.
    Channel {
        Phone = "phone",
        Email = "email",
        Chat = "chat",
        Portal = "portal",
        Messaging = "messaging",
        WalkIn = "walk_in",
        Monitoring = "monitoring",
    }
);

string_enum!(
    /// Ticket priority, P1 (most urgent) to P4.
    Priority { P1 = "P1", P2 = "P2", P3 = "P3", P4 = "P4" }
);

string_enum!(
    /// Impact or urgency, from which a priority is derived when none is given.
    Level { High = "high", Medium = "medium", Low = "low" }
);

string_enum!(
    /// Ticket lifecycle status.
    Status {
        New = "new",
        Open = "open",
        InProgress = "in_progress",
        PendingCustomer = "pending_customer",
        PendingVendor = "pending_vendor",
        Resolved = "resolved",
        Closed = "closed",
        Cancelled = "cancelled",
    }
);

string_enum!(
    /// Who acted.
    Role { Agent = "agent", Requester = "requester", System = "system" }
);

impl Priority {
    /// The ITIL impact × urgency matrix: high/high → P1, one high and one medium → P2,
    /// high/low or medium/medium → P3, the rest → P4.
    pub fn from_impact_urgency(impact: Level, urgency: Level) -> Priority {
        use Level::*;
        match (impact, urgency) {
            (High, High) => Priority::P1,
            (High, Medium) | (Medium, High) => Priority::P2,
            (High, Low) | (Low, High) | (Medium, Medium) => Priority::P3,
            _ => Priority::P4,
        }
    }
}

impl Status {
    /// Statuses after which only a reopen may change the ticket.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Closed | Status::Cancelled)
    }
}

/// Who performed the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// Identifier of the person or system.
    pub id: String,
    /// Their role.
    pub role: Role,
}

/// `ticket.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Created {
    /// Intake channel.
    pub channel: Channel,
    /// Priority; derived from impact and urgency when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Business impact (with `urgency`, instead of `priority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impact: Option<Level>,
    /// Urgency (with `impact`, instead of `priority`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urgency: Option<Level>,
    /// Category of the catalogue.
    pub category: String,
    /// Subcategory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcategory: Option<String>,
    /// Affected configuration item (host, application, device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration_item: Option<String>,
    /// Affected business service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Who asked for help.
    pub requester: String,
    /// One-line summary.
    pub title: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Created {
    /// The priority given, or the one derived from impact and urgency.
    pub fn effective_priority(&self) -> Priority {
        match (self.priority, self.impact, self.urgency) {
            (Some(p), _, _) => p,
            (None, Some(i), Some(u)) => Priority::from_impact_urgency(i, u),
            // validate() refuses this case; P3 is never reached for an accepted event.
            _ => Priority::P3,
        }
    }
}

/// `ticket.assigned`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assigned {
    /// Assignment group (team).
    pub group: String,
    /// Agent, when assigned to a person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Support tier of the group, 1–3.
    pub tier: u8,
}

/// `ticket.escalated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalated {
    /// Tier before.
    pub from_tier: u8,
    /// Tier after.
    pub to_tier: u8,
    /// Receiving group.
    pub group: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `ticket.status_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChanged {
    /// Status the producer saw before the change.
    pub from: Status,
    /// New status.
    pub to: Status,
}

/// `ticket.priority_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityChanged {
    /// Priority before.
    pub from: Priority,
    /// Priority after.
    pub to: Priority,
}

/// `ticket.commented`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Commented {
    /// Visible to the requester.
    pub public: bool,
    /// Role of the author; the first public agent comment is the first response.
    pub author_role: Role,
}

/// `ticket.work_logged`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkLogged {
    /// Who worked.
    pub agent: String,
    /// Handle time, 1–1440 minutes.
    pub minutes: u32,
}

/// `ticket.resolved`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolved {
    /// Resolution code.
    pub resolution_code: String,
    /// Solved at first contact, without escalation or callback.
    pub first_contact: bool,
    /// Knowledge-base article used, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kb_article: Option<String>,
}

/// `ticket.reopened`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reopened {
    /// Why the requester came back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `ticket.closed`: no payload fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Closed {}

/// The payload of each event type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum Payload {
    Created(Created),
    Assigned(Assigned),
    Escalated(Escalated),
    StatusChanged(StatusChanged),
    PriorityChanged(PriorityChanged),
    Commented(Commented),
    WorkLogged(WorkLogged),
    Resolved(Resolved),
    Reopened(Reopened),
    Closed(Closed),
}

impl Payload {
    /// The event type this payload belongs to.
    pub fn event_type(&self) -> EventType {
        match self {
            Payload::Created(_) => EventType::Created,
            Payload::Assigned(_) => EventType::Assigned,
            Payload::Escalated(_) => EventType::Escalated,
            Payload::StatusChanged(_) => EventType::StatusChanged,
            Payload::PriorityChanged(_) => EventType::PriorityChanged,
            Payload::Commented(_) => EventType::Commented,
            Payload::WorkLogged(_) => EventType::WorkLogged,
            Payload::Resolved(_) => EventType::Resolved,
            Payload::Reopened(_) => EventType::Reopened,
            Payload::Closed(_) => EventType::Closed,
        }
    }
}

/// One immutable change to one ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketEvent {
    /// Unique id; the idempotency key.
    pub event_id: String,
    /// The ticket; also the log key, so one ticket's events stay in order.
    pub ticket_id: String,
    /// Client organisation, for providers serving several.
    pub tenant: Option<String>,
    /// When it happened (event time).
    pub occurred_at: DateTime<Utc>,
    /// Who did it.
    pub actor: Actor,
    /// The type and its fields.
    pub payload: Payload,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    ticket_id: Cow<'a, str>,
    #[serde(default, borrow)]
    tenant: Option<Cow<'a, str>>,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(borrow)]
    occurred_at: Cow<'a, str>,
    actor: Actor,
    schema_version: u32,
    #[serde(borrow)]
    payload: &'a RawValue,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    event_id: &'a str,
    ticket_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(rename = "type")]
    kind: EventType,
    occurred_at: String,
    actor: &'a Actor,
    schema_version: u32,
    payload: &'a Payload,
}

impl Serialize for TicketEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EnvelopeOut {
            event_id: &self.event_id,
            ticket_id: &self.ticket_id,
            tenant: self.tenant.as_deref(),
            kind: self.payload.event_type(),
            occurred_at: format_time(self.occurred_at),
            actor: &self.actor,
            schema_version: SCHEMA_VERSION,
            payload: &self.payload,
        }
        .serialize(serializer)
    }
}

/// Formats an instant the way events carry it: RFC 3339, UTC, milliseconds.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An instant in milliseconds as [`format_time`] writes it (out of range: the epoch).
pub fn format_ms(ms: i64) -> String {
    format_time(DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default())
}

impl TicketEvent {
    /// Parses and validates one event from JSON bytes.
    pub fn from_json(bytes: &[u8]) -> Result<TicketEvent, EventError> {
        let envelope: Envelope<'_> = match serde_json::from_slice(bytes) {
            Ok(e) => e,
            Err(_) => return Err(locate_error::<Envelope<'_>>(bytes, "")),
        };
        let payload = parse_payload(envelope.kind, envelope.payload)?;
        let occurred_at = DateTime::parse_from_rfc3339(&envelope.occurred_at)
            .map_err(|e| {
                EventError::new(
                    "invalid_timestamp",
                    "/occurred_at",
                    format!(
                        "'{}' is not an RFC 3339 timestamp with a time zone ({e})",
                        envelope.occurred_at
                    ),
                )
            })?
            .with_timezone(&Utc);
        if envelope.schema_version != SCHEMA_VERSION {
            return Err(EventError::new(
                "unsupported_schema_version",
                "/schema_version",
                format!(
                    "schema_version {} is not supported; this build reads version {SCHEMA_VERSION}",
                    envelope.schema_version
                ),
            ));
        }
        let event = TicketEvent {
            event_id: envelope.event_id.into_owned(),
            ticket_id: envelope.ticket_id.into_owned(),
            tenant: envelope.tenant.map(Cow::into_owned),
            occurred_at,
            actor: envelope.actor,
            payload,
        };
        event.validate()?;
        Ok(event)
    }

    /// The event as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain strings, enums and numbers into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The event type.
    pub fn event_type(&self) -> EventType {
        self.payload.event_type()
    }

    /// Value checks the JSON types alone cannot express (lengths, ranges, combinations).
    pub fn validate(&self) -> Result<(), EventError> {
        check_id("/event_id", &self.event_id)?;
        check_id("/ticket_id", &self.ticket_id)?;
        if let Some(t) = &self.tenant {
            check_id("/tenant", t)?;
        }
        check_id("/actor/id", &self.actor.id)?;
        match &self.payload {
            Payload::Created(c) => {
                if c.priority.is_none() {
                    match (c.impact, c.urgency) {
                        (Some(_), Some(_)) => {}
                        (None, _) => {
                            return Err(EventError::new(
                                "missing_field",
                                "/payload/impact",
                                "a created ticket needs a priority, or both impact and urgency",
                            ));
                        }
                        (Some(_), None) => {
                            return Err(EventError::new(
                                "missing_field",
                                "/payload/urgency",
                                "impact was given without urgency; give both, or a priority",
                            ));
                        }
                    }
                }
                check_id("/payload/category", &c.category)?;
                check_opt_id("/payload/subcategory", &c.subcategory)?;
                check_opt_id("/payload/configuration_item", &c.configuration_item)?;
                check_opt_id("/payload/service", &c.service)?;
                check_id("/payload/requester", &c.requester)?;
                check_text("/payload/title", &c.title, 1, MAX_TITLE_LEN)?;
                if let Some(d) = &c.description {
                    check_text("/payload/description", d, 0, MAX_TEXT_LEN)?;
                }
            }
            Payload::Assigned(a) => {
                check_id("/payload/group", &a.group)?;
                check_opt_id("/payload/agent", &a.agent)?;
                check_tier("/payload/tier", a.tier)?;
            }
            Payload::Escalated(e) => {
                check_tier("/payload/from_tier", e.from_tier)?;
                check_tier("/payload/to_tier", e.to_tier)?;
                check_id("/payload/group", &e.group)?;
                if let Some(r) = &e.reason {
                    check_text("/payload/reason", r, 0, MAX_TEXT_LEN)?;
                }
            }
            Payload::StatusChanged(_)
            | Payload::PriorityChanged(_)
            | Payload::Commented(_)
            | Payload::Closed(_) => {}
            Payload::WorkLogged(w) => {
                check_id("/payload/agent", &w.agent)?;
                if w.minutes == 0 || w.minutes > MAX_WORK_MINUTES {
                    return Err(EventError::new(
                        "out_of_range",
                        "/payload/minutes",
                        format!(
                            "minutes must be between 1 and {MAX_WORK_MINUTES}, got {}",
                            w.minutes
                        ),
                    ));
                }
            }
            Payload::Resolved(r) => {
                check_id("/payload/resolution_code", &r.resolution_code)?;
                check_opt_id("/payload/kb_article", &r.kb_article)?;
            }
            Payload::Reopened(r) => {
                if let Some(r) = &r.reason {
                    check_text("/payload/reason", r, 0, MAX_TEXT_LEN)?;
                }
            }
        }
        Ok(())
    }
}

/// One entry of a submitted batch: its 1-based line (NDJSON) or 0-based index (JSON array),
/// and the parsed event with its bytes, or why it was refused.
pub type BatchEntry = (usize, Result<(TicketEvent, Vec<u8>), EventError>);

/// Splits a request body into events: a JSON array of event objects, or NDJSON (one event per
/// line; blank lines are skipped). Each entry is parsed on its own, so a bad one does not spoil
/// the others. Only a body that starts as an array but is not valid JSON fails as a whole.
pub fn parse_batch(body: &[u8]) -> Result<Vec<BatchEntry>, EventError> {
    let trimmed = body.trim_ascii_start();
    if trimmed.first() == Some(&b'[') {
        let items: Vec<&RawValue> = serde_json::from_slice(trimmed).map_err(|e| {
            EventError::new(
                "invalid_json",
                "",
                format!("the body is not a JSON array of events: {e}"),
            )
        })?;
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| {
                let bytes = raw.get().as_bytes();
                (
                    i,
                    TicketEvent::from_json(bytes).map(|e| (e, bytes.to_vec())),
                )
            })
            .collect());
    }
    Ok(body
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.trim_ascii().is_empty())
        .map(|(i, line)| {
            let line = line.trim_ascii();
            (
                i + 1,
                TicketEvent::from_json(line).map(|e| (e, line.to_vec())),
            )
        })
        .collect())
}

fn parse_payload(kind: EventType, raw: &RawValue) -> Result<Payload, EventError> {
    fn parse<'a, T: Deserialize<'a>>(raw: &'a RawValue) -> Result<T, EventError> {
        serde_json::from_str(raw.get())
            .map_err(|_| locate_error::<T>(raw.get().as_bytes(), "/payload"))
    }
    Ok(match kind {
        EventType::Created => Payload::Created(parse(raw)?),
        EventType::Assigned => Payload::Assigned(parse(raw)?),
        EventType::Escalated => Payload::Escalated(parse(raw)?),
        EventType::StatusChanged => Payload::StatusChanged(parse(raw)?),
        EventType::PriorityChanged => Payload::PriorityChanged(parse(raw)?),
        EventType::Commented => Payload::Commented(parse(raw)?),
        EventType::WorkLogged => Payload::WorkLogged(parse(raw)?),
        EventType::Resolved => Payload::Resolved(parse(raw)?),
        EventType::Reopened => Payload::Reopened(parse(raw)?),
        EventType::Closed => Payload::Closed(parse(raw)?),
    })
}

/// Parses again, slowly, with path tracking, to name the field a fast parse failed on.
fn locate_error<'a, T: Deserialize<'a>>(bytes: &'a [u8], prefix: &str) -> EventError {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let err = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(_) => {
            return EventError::new("invalid_json", prefix, "the document could not be parsed");
        }
        Err(e) => e,
    };
    let mut pointer = String::from(prefix);
    for segment in err.path().iter() {
        use serde_path_to_error::Segment;
        match segment {
            Segment::Map { key } | Segment::Enum { variant: key } => {
                pointer.push('/');
                pointer.push_str(key);
            }
            Segment::Seq { index } => {
                pointer.push('/');
                pointer.push_str(&index.to_string());
            }
            Segment::Unknown => {}
        }
    }
    let inner = err.into_inner();
    let text = inner.to_string();
    let detail = text.split(" at line ").next().unwrap_or(&text).to_string();
    if inner.is_syntax() || inner.is_eof() {
        return EventError::new("invalid_json", "", format!("not valid JSON: {detail}"));
    }
    // serde names missing and unknown fields in the message, with the parent's path.
    for (marker, reason) in [
        ("missing field `", "missing_field"),
        ("unknown field `", "unknown_field"),
    ] {
        if let Some(rest) = detail.strip_prefix(marker) {
            let name = rest.split('`').next().unwrap_or_default();
            let suffix = format!("/{name}");
            // An unknown key is already the last path segment; a missing one is not.
            let field = if pointer.ends_with(&suffix) {
                pointer
            } else {
                pointer + &suffix
            };
            return EventError::new(reason, field, detail.clone());
        }
    }
    if pointer == "/type" || detail.starts_with("unknown variant") && pointer.ends_with("/type") {
        return EventError::new("unknown_type", pointer, detail);
    }
    EventError::new("invalid_value", pointer, detail)
}

fn check_id(field: &str, value: &str) -> Result<(), EventError> {
    check_text(field, value, 1, MAX_ID_LEN)
}

fn check_opt_id(field: &str, value: &Option<String>) -> Result<(), EventError> {
    match value {
        Some(v) => check_id(field, v),
        None => Ok(()),
    }
}

fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), EventError> {
    let chars = value.chars().count();
    if chars < min || value.trim().is_empty() && min > 0 {
        return Err(EventError::new(
            "empty_value",
            field,
            "must not be empty".to_string(),
        ));
    }
    if chars > max {
        return Err(EventError::new(
            "too_long",
            field,
            format!("is {chars} characters long; at most {max} are accepted"),
        ));
    }
    Ok(())
}

fn check_tier(field: &str, tier: u8) -> Result<(), EventError> {
    if (1..=3).contains(&tier) {
        Ok(())
    } else {
        Err(EventError::new(
            "out_of_range",
            field,
            format!("tier must be 1, 2 or 3, got {tier}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created_json() -> String {
        r#"{"event_id":"e1","ticket_id":"T1","type":"ticket.created","occurred_at":"2026-01-05T09:00:00+01:00","actor":{"id":"u1","role":"requester"},"schema_version":1,"payload":{"channel":"phone","priority":"P2","category":"network","requester":"u1","title":"VPN down"}}"#.to_string()
    }

    #[test]
    fn round_trips_through_json() {
        let e = TicketEvent::from_json(created_json().as_bytes()).unwrap();
        assert_eq!(e.occurred_at.to_rfc3339(), "2026-01-05T08:00:00+00:00");
        let again = TicketEvent::from_json(&e.to_json()).unwrap();
        assert_eq!(e, again);
    }

    #[test]
    fn names_the_field_at_fault() {
        let bad = created_json().replace("\"P2\"", "\"P9\"");
        let err = TicketEvent::from_json(bad.as_bytes()).unwrap_err();
        assert_eq!(err.field, "/payload/priority");
        let bad = created_json().replace("\"ticket_id\":\"T1\",", "");
        let err = TicketEvent::from_json(bad.as_bytes()).unwrap_err();
        assert_eq!(
            (err.reason, err.field.as_str()),
            ("missing_field", "/ticket_id")
        );
        let bad = created_json().replace("ticket.created", "ticket.exploded");
        let err = TicketEvent::from_json(bad.as_bytes()).unwrap_err();
        assert_eq!((err.reason, err.field.as_str()), ("unknown_type", "/type"));
        let bad = created_json().replace("2026-01-05T09:00:00+01:00", "yesterday");
        let err = TicketEvent::from_json(bad.as_bytes()).unwrap_err();
        assert_eq!(err.field, "/occurred_at");
    }

    #[test]
    fn derives_priority_from_impact_and_urgency() {
        let json = created_json().replace(
            "\"priority\":\"P2\"",
            "\"impact\":\"high\",\"urgency\":\"medium\"",
        );
        let e = TicketEvent::from_json(json.as_bytes()).unwrap();
        let Payload::Created(c) = e.payload else {
            panic!("not a created event")
        };
        assert_eq!(c.effective_priority(), Priority::P2);
    }
}
