use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::projection::{Outcome, Projection};

fn manifest(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn import(mapping: &str, input: &str) -> (Importer, Vec<Derived>, Vec<RowError>) {
    let mapping = Mapping::load(&manifest(mapping)).unwrap();
    let mut importer = Importer::new(mapping);
    let (mut events, mut errors) = (Vec::new(), Vec::new());
    importer
        .file(
            &manifest(input),
            Arc::new(AtomicU64::new(0)),
            4,
            &mut |batch: Vec<Derived>| -> Result<(), String> {
                events.extend(batch);
                Ok(())
            },
            &mut |e: &RowError| errors.push(e.clone()),
        )
        .unwrap();
    (importer, events, errors)
}

fn summary(e: &TicketEvent) -> (String, String, String, Value) {
    let v: Value = serde_json::from_slice(&e.to_json()).unwrap();
    (
        e.ticket_id.clone(),
        v["type"]
            .as_str()
            .unwrap()
            .trim_start_matches("ticket.")
            .to_string(),
        v["occurred_at"].as_str().unwrap().to_string(),
        v["payload"].clone(),
    )
}

#[test]
fn snapshot_rows_become_exactly_the_expected_events() {
    let (importer, events, errors) = import(
        "examples/mappings/servicenow-incidents.toml",
        "tests/fixtures/import/servicenow-audit.csv",
    );
    let got: Vec<(u64, (String, String, String, Value))> =
        events.iter().map(|(row, e)| (*row, summary(e))).collect();
    let e = |row: u64, t: &str, ty: &str, at: &str, payload: Value| {
        (
            row,
            (format!("SN-{t}"), ty.to_string(), at.to_string(), payload),
        )
    };
    let (one, two) = ("INC0010001", "INC0010002");
    let expected = vec![
        e(
            2,
            one,
            "created",
            "2026-03-02T08:00:00.000Z",
            json!({
            "channel": "phone", "priority": "P3", "category": "network", "subcategory": "vpn",
            "configuration_item": "VPN-GW-01", "service": "Remote access", "requester": "alice",
            "title": "VPN drops every hour", "description": "Since this morning, \"VPN\" disconnects"}),
        ),
        e(
            3,
            one,
            "assigned",
            "2026-03-02T08:05:00.000Z",
            json!({"group": "Service Desk", "tier": 1}),
        ),
        e(
            4,
            one,
            "assigned",
            "2026-03-02T08:20:00.000Z",
            json!({"group": "Service Desk", "agent": "bob", "tier": 1}),
        ),
        e(
            4,
            one,
            "status_changed",
            "2026-03-02T08:20:00.000Z",
            json!({"from": "open", "to": "in_progress"}),
        ),
        e(
            4,
            one,
            "commented",
            "2026-03-02T08:20:00.000Z",
            json!({"public": true, "author_role": "agent"}),
        ),
        // Line 5 repeats line 4. Line 6 is another incident, then the first one goes on.
        e(
            6,
            two,
            "created",
            "2026-03-02T08:30:00.000Z",
            json!({
            "channel": "portal", "priority": "P4", "category": "access", "subcategory": "password",
            "requester": "dave", "title": "Password reset"}),
        ),
        e(
            6,
            two,
            "assigned",
            "2026-03-02T08:30:00.000Z",
            json!({"group": "Service Desk", "agent": "bob", "tier": 1}),
        ),
        e(
            6,
            two,
            "resolved",
            "2026-03-02T08:30:00.000Z",
            json!({"resolution_code": "Solved (Permanently)", "first_contact": true}),
        ),
        e(
            7,
            one,
            "priority_changed",
            "2026-03-02T09:00:00.000Z",
            json!({"from": "P3", "to": "P2"}),
        ),
        e(
            7,
            one,
            "escalated",
            "2026-03-02T09:00:00.000Z",
            json!({"from_tier": 1, "to_tier": 2, "group": "Network"}),
        ),
        e(
            7,
            one,
            "assigned",
            "2026-03-02T09:00:00.000Z",
            json!({"group": "Network", "agent": "carol", "tier": 2}),
        ),
        e(
            8,
            one,
            "status_changed",
            "2026-03-02T10:00:00.000Z",
            json!({"from": "in_progress", "to": "pending_customer"}),
        ),
        e(
            9,
            one,
            "resolved",
            "2026-03-02T11:00:00.000Z",
            json!({"resolution_code": "Workaround", "first_contact": false}),
        ),
        e(10, one, "reopened", "2026-03-03T07:00:00.000Z", json!({})),
        e(
            10,
            one,
            "status_changed",
            "2026-03-03T07:00:00.000Z",
            json!({"from": "open", "to": "in_progress"}),
        ),
        e(
            11,
            one,
            "resolved",
            "2026-03-03T08:00:00.000Z",
            json!({"resolution_code": "Solved (Permanently)", "first_contact": false}),
        ),
        e(12, one, "closed", "2026-03-04T08:00:00.000Z", json!({})),
    ];
    assert_eq!(got.len(), expected.len(), "{got:#?}");
    for (g, x) in got.iter().zip(&expected) {
        assert_eq!(g, x);
    }
    // Who: the requester creates, the agent (or the updater) acts; the tenant rides along.
    assert_eq!(events[0].1.actor.id, "alice");
    assert_eq!(events[1].1.actor.id, "system");
    assert_eq!(events[2].1.actor.id, "bob");
    assert!(
        events
            .iter()
            .all(|(_, e)| e.tenant.as_deref() == Some("acme"))
    );
    // The rejected rows, each with its line and reason.
    let mut rejected: Vec<(u64, &str)> = errors.iter().map(|e| (e.row, e.reason)).collect();
    rejected.sort();
    assert_eq!(
        rejected,
        [
            (13, "after_close"),
            (14, "unknown_status"),
            (15, "bad_time"),
            (16, "unreadable")
        ]
    );
    let c = &importer.counts;
    assert_eq!(
        (c.rows, c.imported_rows, c.unchanged_rows, c.rejected()),
        (15, 10, 1, 4)
    );
    assert_eq!(c.events, 17);
    // Every derived event applies.
    let mut p = Projection::new();
    for (i, (_, e)) in events.iter().enumerate() {
        assert_eq!(p.apply(e, i as u64), Outcome::Applied, "{e:?}");
    }
    // The same rows again give the same ids: duplicates only.
    let (_, again, _) = import(
        "examples/mappings/servicenow-incidents.toml",
        "tests/fixtures/import/servicenow-audit.csv",
    );
    for (i, (_, e)) in again.iter().enumerate() {
        assert_eq!(p.apply(e, 100 + i as u64), Outcome::Duplicate);
    }
}

#[test]
fn times_and_mappings_are_checked() {
    use chrono_tz::Europe::Paris;
    use derive::parse_time;
    assert_eq!(
        parse_time("2026-03-02T09:00:00+01:00", "rfc3339", Paris),
        Ok(1_772_438_400_000)
    );
    assert_eq!(
        parse_time("2026-03-02 09:00", "%Y-%m-%d %H:%M", Paris),
        Ok(1_772_438_400_000)
    );
    assert_eq!(
        parse_time("1772438400", "epoch-seconds", Paris),
        Ok(1_772_438_400_000)
    );
    assert!(
        parse_time("2026-03-29 02:30", "%Y-%m-%d %H:%M", Paris)
            .unwrap_err()
            .to_string()
            .contains("daylight-saving")
    );
    assert!(parse_time("yesterday", "rfc3339", Paris).is_err());
    let base =
        std::fs::read_to_string(manifest("examples/mappings/servicenow-incidents.toml")).unwrap();
    for (from, to, key) in [
        ("mode = \"snapshot\"", "mode = \"event\"", "fields.activity"),
        (
            "\"Resolved\" = \"resolved\"",
            "\"Resolved\" = \"done\"",
            "values.status",
        ),
        (
            "\"2 - High\" = \"P2\"",
            "\"2 - High\" = \"P0\"",
            "values.priority",
        ),
        (
            "time-zone = \"Europe/Paris\"",
            "time-zone = \"Paris\"",
            "time.time-zone",
        ),
        ("\"L2\" = \"2\"", "\"L2\" = \"4\"", "values.tier"),
    ] {
        let e = Mapping::from_toml(&base.replace(from, to)).unwrap_err();
        assert!(e.to_string().contains(key), "{key}: {e}");
    }
    let e = Mapping::from_toml(&base.replace("[fields]", "[fields]\ncolour = \"x\"")).unwrap_err();
    assert!(e.to_string().contains("colour"), "{e}");
}

#[test]
fn a_mapping_naming_a_missing_column_stops_before_importing() {
    let text = std::fs::read_to_string(manifest("examples/mappings/servicenow-incidents.toml"))
        .unwrap()
        .replace("category = \"category\"", "category = \"kategorie\"");
    let mut importer = Importer::new(Mapping::from_toml(&text).unwrap());
    let r = importer.file(
        &manifest("tests/fixtures/import/servicenow-audit.csv"),
        Arc::new(AtomicU64::new(0)),
        10,
        &mut |_b: Vec<Derived>| -> Result<(), String> { panic!("nothing is imported") },
        &mut |_e: &RowError| {},
    );
    assert!(r.unwrap_err().to_string().contains("kategorie"));
}

#[test]
fn an_empty_value_takes_the_mappings_default() {
    let text = std::fs::read_to_string(manifest("examples/mappings/servicenow-incidents.toml"))
        .unwrap()
        .replace(
            "category = \"category\"",
            "category = { column = \"category\", default = \"uncategorised\" }",
        );
    let dir = tempfile::tempdir().unwrap();
    let csv = std::fs::read_to_string(manifest("tests/fixtures/import/servicenow-audit.csv"))
        .unwrap()
        .replace(",Phone,network,vpn,", ",Phone,,vpn,");
    let input = dir.path().join("empty-category.csv");
    std::fs::write(&input, csv).unwrap();
    let mut importer = Importer::new(Mapping::from_toml(&text).unwrap());
    let mut created = Vec::new();
    let mut errors = Vec::new();
    importer
        .file(
            &input,
            Arc::new(AtomicU64::new(0)),
            4,
            &mut |batch: Vec<Derived>| -> Result<(), String> {
                for (_, e) in batch {
                    if let crate::event::Payload::Created(c) = &e.payload {
                        created.push((e.ticket_id.clone(), c.category.clone()));
                    }
                }
                Ok(())
            },
            &mut |e: &RowError| errors.push(e.clone()),
        )
        .unwrap();
    // The fixture's deliberately broken rows are refused as before; none for the category.
    assert!(
        errors.iter().all(|e| !e.message.contains("category")),
        "{errors:?}"
    );
    assert!(
        created.contains(&("SN-INC0010001".to_string(), "uncategorised".to_string())),
        "{created:?}"
    );
    // Without the default the same rows are refused, naming the field.
    let plain = Mapping::load(&manifest("examples/mappings/servicenow-incidents.toml")).unwrap();
    let mut importer = Importer::new(plain);
    let mut refused = Vec::new();
    importer
        .file(
            &input,
            Arc::new(AtomicU64::new(0)),
            4,
            &mut |_b: Vec<Derived>| -> Result<(), String> { Ok(()) },
            &mut |e: &RowError| refused.push(e.clone()),
        )
        .unwrap();
    assert!(
        refused.iter().any(|e| e.message.contains("category")),
        "{refused:?}"
    );
}

#[test]
fn work_time_becomes_work_logs_of_at_most_a_day() {
    let mapping = Mapping::from_toml(
        r#"
name = "w"
format = "csv"
mode = "event"
[time]
field = "t"
[fields]
ticket-id = "id"
activity = "a"
priority = { value = "P3" }
channel = { value = "email" }
category = { value = "c" }
requester = { value = "r" }
title = { value = "x" }
actor = "who"
work-time = "h"
[derive]
work-unit = "hours"
"#,
    )
    .unwrap();
    let mut d = derive::Deriver::new(mapping);
    let row = |n: u64, t: &str, h: &str| {
        source::Record::from_map(
            n,
            [
                ("id", "1"),
                ("t", t),
                ("a", "open"),
                ("h", h),
                ("who", "ann"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
    };
    let mut worked = |r: &source::Record| -> Result<Vec<u32>, &'static str> {
        let key = d.key(r).unwrap();
        match d.row(r, &key, false) {
            Ok(RowOutcome::Events(e)) => Ok(e
                .iter()
                .filter_map(|e| match &e.payload {
                    crate::event::Payload::WorkLogged(w) => {
                        assert_eq!(w.agent, "ann");
                        Some(w.minutes)
                    }
                    _ => None,
                })
                .collect()),
            Ok(_) => Ok(Vec::new()),
            Err(e) => Err(e.reason),
        }
    };
    assert_eq!(
        worked(&row(1, "2026-01-01T08:00:00Z", "0.25")),
        Ok(vec![15])
    );
    assert_eq!(
        worked(&row(2, "2026-01-02T08:00:00Z", "30")),
        Ok(vec![1440, 360]),
        "30 hours: a day, then six hours"
    );
    assert_eq!(
        worked(&row(3, "2026-01-03T08:00:00Z", "-2")),
        Ok(vec![]),
        "a correction"
    );
    assert_eq!(
        worked(&row(4, "2026-01-04T08:00:00Z", "lots")),
        Err("bad_work_time")
    );
}
