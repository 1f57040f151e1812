//! `deskwatch import` on the two real logs of `../shared/data` (skipped with a notice when the
//! folder is absent, failing instead with `DESKWATCH_REQUIRE_DATA=1`), and on corrupted copies.

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use common::{query, run};
use serde_json::Value;

fn shared(name: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(name);
    if p.exists() {
        return Some(p);
    }
    assert!(
        std::env::var("DESKWATCH_REQUIRE_DATA").as_deref() != Ok("1"),
        "{} is missing and DESKWATCH_REQUIRE_DATA=1",
        p.display()
    );
    eprintln!("NOTICE: {} is absent; this test is skipped", p.display());
    None
}

fn mapping(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/mappings")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn gunzip(path: &Path) -> String {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Runs an import with `--json`; the summary and the exit code.
fn import(data: &Path, mapping: &str, input: &Path) -> (Value, Option<i32>, String) {
    let out = run(&[
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        "--mapping",
        mapping,
        "--json",
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)));
    (v, out.status.code(), stderr)
}

fn one(data: &Path, sql: &str) -> String {
    query(data, "csv", sql)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_volvo_incident_log_imports_completely() {
    let Some(file) = shared("volvo-it-incidents-2013.csv.gz") else {
        return;
    };
    // An independent count: CSV records and distinct SR numbers.
    let text = gunzip(&file);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let (mut rows, mut ids) = (0u64, HashSet::new());
    for r in reader.records() {
        let r = r.unwrap();
        rows += 1;
        ids.insert(r[0].to_string());
    }
    assert_eq!((rows, ids.len()), (65_533, 7_554), "the brief's figures");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let m = mapping("volvo-incidents.toml");
    let (s, code, stderr) = import(&data, &m, &file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(s["rows"], rows);
    assert_eq!(s["tickets"], ids.len());
    // Every row is accounted for: imported, or a repeat of the ticket's state.
    assert_eq!(
        s["imported_rows"].as_u64().unwrap() + s["unchanged_rows"].as_u64().unwrap(),
        rows,
        "{s:#}"
    );
    assert_eq!(s["rejected_rows"], serde_json::json!({}));
    let events = s["events"].as_u64().unwrap();
    assert_eq!(s["log"]["applied"], events);
    assert_eq!(
        one(&data, "select count(*) from tickets"),
        ids.len().to_string()
    );
    assert_eq!(
        one(&data, "select count(*) from ticket_events"),
        events.to_string()
    );
    // A hand-checked request: accepted at L1 (V30), sent to L3 (V5 3rd), back to L1, to
    // L2/L3 (V13 2nd 3rd), resolved, requeued (a reopen), L1 again, L3 again, resolved by
    // Loic, closed by Siebel.
    let t = "VOLVO-1-364285768";
    assert_eq!(
        one(
            &data,
            &format!(
                "select status, priority, reopen_count, escalation_count, assignment_group, tier, \
                 first_response_at, resolved_at, closed_at from tickets where ticket_id = '{t}'"
            )
        ),
        "closed,P3,1,3,V5 3rd,3,2010-03-31T14:59:42Z,2012-05-03T09:10:12Z,2012-05-10T23:26:15Z"
    );
    let path = query(
        &data,
        "csv",
        &format!(
            "select assignment_group from ticket_events where ticket_id = '{t}' \
             and event_type = 'ticket.escalated' order by log_offset"
        ),
    );
    assert_eq!(path, "assignment_group\nV5 3rd\nV13 2nd 3rd\nV5 3rd\n");
    // "Wait - User" pauses the SLA: the request with the most waiting has paused clocks.
    let paused: u64 = one(
        &data,
        "select count(*) from sla_clocks where paused_seconds > 0",
    )
    .parse()
    .unwrap();
    assert!(paused > 1000, "{paused} clocks paused");
    // Re-importing adds nothing.
    let (again, code, _) = import(&data, &m, &file);
    assert_eq!(code, Some(0));
    assert_eq!(again["log"]["applied"], 0);
    assert_eq!(again["log"]["duplicates"], events);
    assert_eq!(
        one(&data, "select count(*) from ticket_events"),
        events.to_string()
    );
}

#[test]
fn the_helpdesk_xes_log_imports_completely() {
    let Some(file) = shared("helpdesk.xes.gz") else {
        return;
    };
    let text = gunzip(&file);
    let (traces, events_in_file) = (
        text.matches("<trace>").count(),
        text.matches("<event>").count(),
    );
    assert_eq!(
        (traces, events_in_file),
        (4_580, 21_348),
        "the brief's figures"
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let m = mapping("helpdesk-xes.toml");
    let (s, code, stderr) = import(&data, &m, &file);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(s["rows"], events_in_file);
    assert_eq!(s["tickets"], traces);
    assert_eq!(
        s["imported_rows"].as_u64().unwrap() + s["unchanged_rows"].as_u64().unwrap(),
        events_in_file as u64
    );
    assert_eq!(
        one(&data, "select count(*) from tickets"),
        traces.to_string()
    );
    // Case 192: classified twice (the first assignment opens it), taken in charge, resolved,
    // closed, taken in charge again (the closure becomes a resolution and this a reopen),
    // resolved, closed.
    let t = "HD-Case 192";
    let kinds = query(
        &data,
        "csv",
        &format!(
            "select event_type, status_after from ticket_events where ticket_id = '{t}' \
             and event_type <> 'ticket.assigned' order by log_offset"
        ),
    );
    assert_eq!(
        kinds,
        "event_type,status_after\n\
         ticket.created,new\n\
         ticket.status_changed,in_progress\n\
         ticket.commented,in_progress\n\
         ticket.resolved,resolved\n\
         ticket.reopened,open\n\
         ticket.status_changed,in_progress\n\
         ticket.resolved,resolved\n\
         ticket.closed,closed\n"
    );
    assert_eq!(
        one(
            &data,
            &format!("select reopen_count, closed_at from tickets where ticket_id = '{t}'")
        ),
        "1,2013-08-24T10:30:08Z"
    );
    let (again, _, _) = import(&data, &m, &file);
    assert_eq!(again["log"]["applied"], 0);
}

#[test]
fn a_corrupted_copy_reports_the_bad_rows_and_imports_the_rest() {
    let Some(file) = shared("volvo-it-incidents-2013.csv.gz") else {
        return;
    };
    let text = gunzip(&file);
    let lines: Vec<&str> = text.lines().take(2001).collect();
    let mut bad = lines.clone();
    // Line numbers are 1-based with the header on line 1.
    let truncated = lines[100].split(',').take(5).collect::<Vec<_>>().join(",");
    bad[100] = &truncated;
    let bad_date = lines[200].replacen(",20", ",31/02/20", 1);
    bad[200] = &bad_date;
    let unknown = lines[300]
        .replacen(",Accepted,", ",Parked,", 1)
        .replacen(",Queued,", ",Parked,", 1)
        .replacen(",Completed,", ",Parked,", 1);
    bad[300] = &unknown;
    let tmp = tempfile::tempdir().unwrap();
    // A plain (not gzipped) copy: both are read.
    let copy = tmp.path().join("volvo-corrupted.csv");
    let mut f = std::fs::File::create(&copy).unwrap();
    for l in &bad {
        writeln!(f, "{l}").unwrap();
    }
    drop(f);
    let data = tmp.path().join("data");
    let (s, code, stderr) = import(&data, &mapping("volvo-incidents.toml"), &copy);
    assert_eq!(code, Some(3), "some rows were rejected");
    assert_eq!(s["rows"], 2000);
    let rejected = &s["rejected_rows"];
    assert_eq!(rejected["unreadable"], 1, "{s:#}");
    assert_eq!(rejected["bad_time"], 1);
    assert_eq!(rejected["unknown_status"], 1);
    for (line, reason) in [
        (101, "unreadable"),
        (201, "bad_time"),
        (301, "unknown_status"),
    ] {
        assert!(
            stderr.contains(&format!("row {line}: rejected ({reason})")),
            "row {line} {reason} in:\n{stderr}"
        );
    }
    // The rest went in.
    let accounted = s["imported_rows"].as_u64().unwrap() + s["unchanged_rows"].as_u64().unwrap();
    assert_eq!(accounted, 1997);
    let distinct: HashSet<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        one(&data, "select count(*) from tickets"),
        distinct.len().to_string()
    );
}

/// `import --dry-run` maps and decides everything but writes nothing, and names the values the
/// mapping does not map, with their counts.
#[test]
fn a_dry_run_reports_what_an_import_would_do_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/servicenow-audit.csv");
    let out = run(&[
        "import",
        "--data-dir",
        data.to_str().unwrap(),
        "--dry-run",
        "--json",
        "--mapping",
        &mapping("servicenow-incidents.toml"),
        fixture.to_str().unwrap(),
    ]);
    // Rows were rejected, so the exit code says so, as a real import's would.
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["unmapped"]["status `Escalated`"], 1, "{v}");
    assert_eq!(v["tickets"], 2);
    assert_eq!(v["log"]["applied"], v["events"], "{v}");
    assert!(!data.exists(), "a dry run created {}", data.display());
}

/// Tickets per month of a real log, counted from the file alone: each ticket's first
/// timestamp, over the weeks from the first ticket to the last (at least one), × 52/12.
fn tickets_per_month(first_seen: &std::collections::HashMap<String, i64>) -> f64 {
    let (lo, hi) = first_seen
        .values()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    let weeks = ((hi - lo) as f64 / 604_800_000.0).max(1.0);
    first_seen.len() as f64 / weeks * 52.0 / 12.0
}

fn millis(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .timestamp_millis()
}

fn volvo_first_seen(file: &Path) -> std::collections::HashMap<String, i64> {
    let text = gunzip(file);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let at = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "Change Date+Time")
        .unwrap();
    let mut first = std::collections::HashMap::new();
    for r in reader.records() {
        let r = r.unwrap();
        let t = millis(&r[at]);
        let e = first.entry(r[0].to_string()).or_insert(t);
        *e = (*e).min(t);
    }
    first
}

fn helpdesk_first_seen(file: &Path) -> std::collections::HashMap<String, i64> {
    let text = gunzip(file);
    let mut first = std::collections::HashMap::new();
    for (i, trace) in text.split("<trace>").skip(1).enumerate() {
        let t = trace
            .split("key=\"time:timestamp\" value=\"")
            .skip(1)
            .map(|s| millis(&s[..s.find('"').unwrap()]))
            .min()
            .unwrap();
        first.insert(i.to_string(), t);
    }
    first
}

/// `deskwatch cost --format json` (and the table) under `config`.
fn cost(data: &Path, config: Option<&Path>) -> (Value, String) {
    let mut args = vec!["cost", "--data-dir", data.to_str().unwrap()];
    if let Some(c) = config {
        args.extend(["--config", c.to_str().unwrap()]);
    }
    let table = run(&args);
    assert!(table.status.success(), "{table:?}");
    args.extend(["--format", "json"]);
    let out = run(&args);
    assert!(out.status.success(), "{out:?}");
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8(table.stdout).unwrap(),
    )
}

/// Neither real log has work logs. Their handle time is estimated from the active time in
/// progress, and the in-house answer must be believable: per ticket between $3 and $150,
/// and FTE within 4× of a benchmark computed here from the file alone (tickets per month ×
/// half an hour, over 120 productive hours an agent-month) plus the minimum staffing of the
/// open hours. Staffed around the clock (the default: every SLA calendar is 24x7), a desk of
/// a few dozen tickets a week is mostly idle minimum staffing, and the report says so.
#[test]
fn real_exports_without_work_logs_cost_what_a_desk_of_their_size_costs() {
    let logs = [
        (
            "volvo-it-incidents-2013.csv.gz",
            "volvo-incidents.toml",
            volvo_first_seen as fn(&Path) -> std::collections::HashMap<String, i64>,
            "Europe/Stockholm",
        ),
        (
            "helpdesk.xes.gz",
            "helpdesk-xes.toml",
            helpdesk_first_seen,
            "Europe/Rome",
        ),
    ];
    for (name, mapping_file, first_seen, zone) in logs {
        let Some(file) = shared(name) else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let (_, code, stderr) = import(&data, &mapping(mapping_file), &file);
        assert_eq!(code, Some(0), "{stderr}");
        let per_month = tickets_per_month(&first_seen(&file));
        // The defaults: 40 paid hours a week, 30 % shrinkage, one agent per open hour.
        let minimum = |open_hours: f64| open_hours / 40.0 / 0.7;
        let benchmark = |open_hours: f64| per_month * 0.5 / 120.0 + minimum(open_hours);
        // Around the clock.
        let (r, table) = cost(&data, None);
        let m = &r["month"];
        assert!(
            (m["tickets"].as_f64().unwrap() / per_month - 1.0).abs() < 0.01,
            "{name}: {} tickets a month, {per_month:.1} from the file",
            m["tickets"]
        );
        let portal = &r["channels"][0];
        assert_eq!(portal["aht"]["source"], "estimated", "{name}: {portal}");
        assert!(
            portal["aht"]["estimated"].as_f64().unwrap() > 0.9,
            "{portal}"
        );
        let aht = portal["aht_seconds"].as_f64().unwrap() / 60.0;
        assert!((5.0..=60.0).contains(&aht), "{name}: AHT {aht:.1} min");
        assert!(table.contains("estimated"), "{table}");
        assert_eq!(portal["open_hours"], 168);
        let fte = m["fte"].as_f64().unwrap();
        let b = benchmark(168.0);
        assert!(fte >= b / 4.0 && fte <= b * 4.0, "{name}: {fte} FTE vs {b}");
        let checks: Vec<&str> = r["flags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["check"].as_str().unwrap())
            .collect();
        assert!(checks.contains(&"minimum_staffing"), "{name}: {checks:?}");
        assert!(
            table.contains("check           minimum_staffing (portal)"),
            "{table}"
        );
        // Office hours in the desk's own time zone, 08:00–17:00 on weekdays: 45 hours.
        let config = tmp.path().join("office.toml");
        std::fs::write(
            &config,
            format!(
                "[sla.calendars.office]\ntime-zone = \"{zone}\"\n\
                 hours = {{ weekdays = [\"08:00-17:00\"] }}\n\
                 [cost]\nopen-hours = {{ portal = \"office\" }}\n"
            ),
        )
        .unwrap();
        let (r, table) = cost(&data, Some(&config));
        let m = &r["month"];
        let portal = &r["channels"][0];
        assert_eq!(
            (
                &portal["calendar"],
                &portal["calendar_source"],
                &portal["open_hours"]
            ),
            (
                &Value::from("office"),
                &Value::from("configured"),
                &Value::from(45)
            ),
            "{name}"
        );
        let per_ticket = m["in_house_per_ticket"].as_f64().unwrap();
        assert!(
            (3.0..=150.0).contains(&per_ticket),
            "{name}: ${per_ticket:.2} a ticket\n{table}"
        );
        let fte = m["fte"].as_f64().unwrap();
        let b = benchmark(45.0);
        assert!(
            fte >= b / 4.0 && fte <= b * 4.0,
            "{name}: {fte} FTE vs {b}\n{table}"
        );
        assert!(
            r["minimum_fte"].as_f64().unwrap() <= fte + 1e-9,
            "the minimum is part of the FTE"
        );
        eprintln!("{name}: {per_month:.0} tickets a month, AHT {aht:.1} min (estimated)\n{table}");
    }
}
