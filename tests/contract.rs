//! The published JSON Schema and the Rust types agree: every simulated event validates against
//! the schema, and malformed fixtures are refused by both, naming the same field.

use deskwatch::event::{SCHEMA_JSON, TicketEvent};
use deskwatch::simulate::{Params, Simulator};
use serde_json::{Value, json};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(SCHEMA_JSON).expect("schema is JSON");
    jsonschema::validator_for(&schema).expect("schema compiles")
}

/// The JSON pointers a schema validator names for an instance.
fn schema_fields(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| {
            let base = e.instance_path.to_string();
            match &e.kind {
                jsonschema::error::ValidationErrorKind::Required { property } => {
                    format!("{base}/{}", property.as_str().unwrap_or_default())
                }
                jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                    format!("{base}/{}", unexpected.join(","))
                }
                _ => base,
            }
        })
        .collect()
}

#[test]
fn every_simulated_event_validates_against_the_schema() {
    let v = validator();
    let mut types = std::collections::BTreeSet::new();
    for event in Simulator::new(Params {
        tickets: 3000,
        seed: 11,
        ..Params::default()
    }) {
        let json: Value = serde_json::from_slice(&event.to_json()).unwrap();
        let errors = schema_fields(&v, &json);
        assert!(errors.is_empty(), "{json} fails the schema at {errors:?}");
        types.insert(json["type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        types.len(),
        10,
        "the simulator exercises every event type: {types:?}"
    );
}

fn valid() -> Value {
    json!({
        "event_id": "e-1", "ticket_id": "T-1", "tenant": "acme", "type": "ticket.created",
        "occurred_at": "2026-03-02T09:15:00+01:00",
        "actor": {"id": "u1", "role": "requester"}, "schema_version": 1,
        "payload": {"channel": "phone", "priority": "P3", "category": "network",
                    "requester": "u1", "title": "VPN drops"}
    })
}

#[test]
fn malformed_fixtures_are_refused_by_both_with_the_same_field() {
    let v = validator();
    assert!(schema_fields(&v, &valid()).is_empty());
    assert!(TicketEvent::from_json(valid().to_string().as_bytes()).is_ok());
    type Mutation = fn(&mut Value);
    let cases: Vec<(&str, Mutation)> = vec![
        ("/ticket_id", |e| {
            e.as_object_mut().unwrap().remove("ticket_id");
        }),
        ("/event_id", |e| e["event_id"] = json!("")),
        ("/type", |e| e["type"] = json!("ticket.exploded")),
        ("/occurred_at", |e| {
            e["occurred_at"] = json!("2026-03-02 09:15")
        }),
        ("/occurred_at", |e| e["occurred_at"] = json!("yesterday")),
        ("/payload/priority", |e| {
            e["payload"]["priority"] = json!("P9")
        }),
        ("/payload/channel", |e| {
            e["payload"]["channel"] = json!("fax")
        }),
        ("/actor/role", |e| e["actor"]["role"] = json!("robot")),
        ("/schema_version", |e| e["schema_version"] = json!(2)),
        ("/payload/title", |e| {
            e["payload"].as_object_mut().unwrap().remove("title");
        }),
        ("/colour", |e| e["colour"] = json!("blue")),
        ("/payload/impact", |e| {
            e["payload"].as_object_mut().unwrap().remove("priority");
        }),
        ("/payload/to", |e| {
            e["type"] = json!("ticket.status_changed");
            e["payload"] = json!({"from": "open", "to": "on_fire"});
        }),
        ("/payload/minutes", |e| {
            e["type"] = json!("ticket.work_logged");
            e["payload"] = json!({"agent": "a1", "minutes": 0});
        }),
        ("/payload/tier", |e| {
            e["type"] = json!("ticket.assigned");
            e["payload"] = json!({"group": "L1", "tier": 7});
        }),
    ];
    for (field, mutate) in cases {
        let mut event = valid();
        mutate(&mut event);
        let rust = TicketEvent::from_json(event.to_string().as_bytes())
            .expect_err(&format!("Rust accepted {event}"));
        let schema = schema_fields(&v, &event);
        assert!(!schema.is_empty(), "schema accepted {event}");
        assert_eq!(rust.field, field, "Rust names {rust:?} for {event}");
        assert!(
            schema.iter().any(|f| f == field),
            "schema names {schema:?}, not {field}, for {event}"
        );
    }
}
