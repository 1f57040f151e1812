//! Model-based test: random event sequences applied to the projection and to a naive model.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use super::*;
use crate::event::*;

#[derive(Debug, Clone, Default)]
struct ModelTicket {
    status: Option<Status>,
    priority: Option<Priority>,
    reopens: u16,
    minutes: u32,
    events: u32,
}

#[derive(Debug, Clone)]
enum Op {
    Create(u8, Priority),
    Status(u8, Status, Status),
    Priority(u8, Priority, Priority),
    Work(u8, u32),
    Resolve(u8),
    Reopen(u8),
    Close(u8),
    Replay(usize),
}

fn status() -> impl Strategy<Value = Status> {
    prop::sample::select(Status::ALL.to_vec())
}

fn priority() -> impl Strategy<Value = Priority> {
    prop::sample::select(Priority::ALL.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u8, priority()).prop_map(|(t, p)| Op::Create(t, p)),
        (0..4u8, status(), status()).prop_map(|(t, a, b)| Op::Status(t, a, b)),
        (0..4u8, priority(), priority()).prop_map(|(t, a, b)| Op::Priority(t, a, b)),
        (0..4u8, 1..100u32).prop_map(|(t, m)| Op::Work(t, m)),
        (0..4u8).prop_map(Op::Resolve),
        (0..4u8).prop_map(Op::Reopen),
        (0..4u8).prop_map(Op::Close),
        (0..64usize).prop_map(Op::Replay),
    ]
}

fn event(n: usize, ticket: u8, payload: Payload) -> TicketEvent {
    TicketEvent {
        event_id: format!("e{n}"),
        ticket_id: format!("T{ticket}"),
        tenant: None,
        occurred_at: DateTime::<Utc>::from_timestamp(1_700_000_000 + n as i64 * 60, 0).unwrap(),
        actor: Actor {
            id: "a".into(),
            role: Role::Agent,
        },
        payload,
    }
}

proptest! {
    #[test]
    fn projection_matches_a_naive_model(ops in prop::collection::vec(op(), 1..80)) {
        let mut projection = Projection::new();
        let mut model: HashMap<u8, ModelTicket> = HashMap::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut sent: Vec<TicketEvent> = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            let e = match op {
                Op::Replay(i) if !sent.is_empty() => sent[i % sent.len()].clone(),
                Op::Replay(_) => continue,
                Op::Create(t, p) => event(n, t, Payload::Created(Created {
                    channel: Channel::Phone, priority: Some(p), impact: None, urgency: None,
                    category: "c".into(), subcategory: None, configuration_item: None,
                    service: None, requester: "r".into(), title: "t".into(), description: None,
                })),
                Op::Status(t, a, b) => event(n, t, Payload::StatusChanged(StatusChanged { from: a, to: b })),
                Op::Priority(t, a, b) => event(n, t, Payload::PriorityChanged(PriorityChanged { from: a, to: b })),
                Op::Work(t, m) => event(n, t, Payload::WorkLogged(WorkLogged { agent: "a".into(), minutes: m })),
                Op::Resolve(t) => event(n, t, Payload::Resolved(Resolved {
                    resolution_code: "fixed".into(), first_contact: false, kb_article: None })),
                Op::Reopen(t) => event(n, t, Payload::Reopened(Reopened { reason: None })),
                Op::Close(t) => event(n, t, Payload::Closed(Closed {})),
            };
            let ticket: u8 = e.ticket_id[1..].parse().unwrap();
            // The naive model's decision.
            let expected = if seen.contains(&e.event_id) {
                "duplicate"
            } else {
                let m = model.entry(ticket).or_default();
                let ok = match (&e.payload, m.status) {
                    (Payload::Created(c), None) => { m.status = Some(Status::New); m.priority = c.priority; true }
                    (Payload::Created(_), Some(_)) | (_, None) => false,
                    (_, Some(s)) if s == Status::Closed || s == Status::Cancelled => {
                        if let Payload::WorkLogged(w) = &e.payload { m.minutes += w.minutes; true } else { false }
                    }
                    (Payload::StatusChanged(c), Some(s)) => {
                        if c.from == s && c.from != c.to {
                            if s == Status::Resolved && !c.to.is_final() && c.to != Status::Resolved { m.reopens += 1; }
                            m.status = Some(c.to); true
                        } else { false }
                    }
                    (Payload::PriorityChanged(c), Some(_)) => {
                        if Some(c.from) == m.priority && c.from != c.to { m.priority = Some(c.to); true } else { false }
                    }
                    (Payload::WorkLogged(w), Some(_)) => { m.minutes += w.minutes; true }
                    (Payload::Resolved(_), Some(s)) => if s == Status::Resolved { false } else { m.status = Some(Status::Resolved); true },
                    (Payload::Reopened(_), Some(s)) => if s == Status::Resolved { m.status = Some(Status::Open); m.reopens += 1; true } else { false },
                    (Payload::Closed(_), Some(_)) => { m.status = Some(Status::Closed); true }
                    _ => true,
                };
                if ok { m.events += 1; seen.insert(e.event_id.clone()); "applied" } else { "rejected" }
            };
            let got = match projection.apply(&e, n as u64) {
                Outcome::Applied => "applied",
                Outcome::Duplicate => "duplicate",
                Outcome::Rejected(_) => "rejected",
            };
            prop_assert_eq!(got, expected, "event {:?}", e);
            sent.push(e);
        }
        for (ticket, m) in &model {
            let state = projection.ticket(&format!("T{ticket}"));
            match (m.status, state) {
                (None, None) => {}
                (Some(status), Some(s)) => {
                    prop_assert_eq!(s.status, status);
                    prop_assert_eq!(Some(s.priority), m.priority);
                    prop_assert_eq!(s.reopen_count, m.reopens);
                    prop_assert_eq!(s.handle_minutes, m.minutes);
                    prop_assert_eq!(s.event_count, m.events);
                }
                (a, b) => prop_assert!(false, "model {:?} vs projection {:?}", a, b),
            }
        }
        prop_assert_eq!(projection.event_count(), seen.len() as u64);
    }
}

/// `reassignment_count` counts changes of assignment group after the first assignment (by an
/// assignment or an escalation); `handoff_count` counts an agent passing the ticket to
/// another.
#[test]
fn reassignments_are_group_changes_and_hand_offs_are_agent_changes() {
    let mut p = Projection::new();
    let assign = |group: &str, agent: Option<&str>, tier: u8| {
        Payload::Assigned(Assigned {
            group: group.into(),
            agent: agent.map(Into::into),
            tier,
        })
    };
    let events = [
        Payload::Created(Created {
            channel: Channel::Phone,
            priority: Some(Priority::P3),
            impact: None,
            urgency: None,
            category: "c".into(),
            subcategory: None,
            configuration_item: None,
            service: None,
            requester: "r".into(),
            title: "t".into(),
            description: None,
        }),
        assign("desk", None, 1),           // first assignment
        assign("desk", Some("ann"), 1),    // an agent takes it: no hand-off, no reassignment
        assign("desk", Some("bob"), 1),    // hand-off 1
        assign("network", Some("cat"), 2), // reassignment 1, hand-off 2
        Payload::Escalated(Escalated {
            from_tier: 2,
            to_tier: 3,
            group: "engineering".into(),
            reason: None,
        }), // reassignment 2 (escalation 1); nobody holds it
        assign("engineering", Some("dan"), 3), // nobody to hand off from
    ];
    for (n, payload) in events.into_iter().enumerate() {
        assert!(matches!(
            p.apply(&event(n, 1, payload), n as u64),
            Outcome::Applied
        ));
    }
    let t = &p.tickets[0];
    assert_eq!(
        (t.reassignment_count, t.handoff_count, t.escalation_count),
        (2, 2, 1)
    );
}
