//! The command line end to end: simulate → ingest → query, bad lines, kill -9 mid-ingest.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{deskwatch, query, run, simulate};

fn ingest(data_dir: &Path, file: &Path) -> std::process::Output {
    run(&[
        "ingest",
        "--data-dir",
        data_dir.to_str().unwrap(),
        file.to_str().unwrap(),
    ])
}

#[test]
fn simulate_ingest_query_and_reingest_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sim.ndjson");
    let data = tmp.path().join("data");
    simulate(&file, 20_000, 1);
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    let out = ingest(&data, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        query(&data, "csv", "select count(*) as n from tickets"),
        "n\n20000\n"
    );
    assert_eq!(
        query(&data, "csv", "select count(*) as n from ticket_events"),
        format!("n\n{lines}\n")
    );
    let summary = "select status, priority, count(*) as n, sum(handle_minutes) as m \
                   from tickets group by status, priority order by status, priority";
    let before = query(&data, "csv", summary);
    let again = ingest(&data, &file);
    assert!(again.status.success());
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.contains(&format!("0 accepted, {lines} duplicate, 0 rejected")),
        "{text}"
    );
    assert_eq!(query(&data, "csv", summary), before);
    assert_eq!(
        query(&data, "csv", "select count(*) as n from ticket_events"),
        format!("n\n{lines}\n")
    );
    // The truth file sits beside the output.
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("sim.ndjson.truth.json")).unwrap())
            .unwrap();
    assert_eq!(truth["tickets"], 20_000);
    assert!(!truth["recurring_problems"].as_array().unwrap().is_empty());
}

#[test]
fn malformed_lines_are_reported_and_the_rest_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let sim = tmp.path().join("sim.ndjson");
    simulate(&sim, 40, 5);
    let valid: Vec<String> = std::fs::read_to_string(&sim)
        .unwrap()
        .lines()
        .take(100)
        .map(str::to_string)
        .collect();
    assert_eq!(valid.len(), 100);
    let bad = [
        "{not json",
        r#"{"event_id":"x1","type":"ticket.created"}"#,
        &valid[0].replace("ticket.created", "ticket.teleported"),
        &valid[0]
            .replace("\"event_id\":\"", "\"event_id\":\"bad-")
            .replace("\"P", "\"Q"),
        &valid[1]
            .replace("-01\"", "-99\"")
            .replace("occurred_at\":\"2026", "occurred_at\":\"20x6"),
        r#"{"event_id":"x2","ticket_id":"NOPE","type":"ticket.closed","occurred_at":"2026-01-05T10:00:00Z","actor":{"id":"a","role":"agent"},"schema_version":1,"payload":{}}"#,
        r#"{"event_id":"x3","ticket_id":"INC0000001","type":"ticket.status_changed","occurred_at":"2026-01-09T10:00:00Z","actor":{"id":"a","role":"agent"},"schema_version":1,"payload":{"from":"pending_vendor","to":"open"}}"#,
        "[1,2,3]",
        r#"{"event_id":"x4","ticket_id":"T","type":"ticket.work_logged","occurred_at":"2026-01-05T10:00:00Z","actor":{"id":"a","role":"agent"},"schema_version":1,"payload":{"agent":"a","minutes":-5}}"#,
        "\"just a string\"",
    ];
    let mut lines = Vec::new();
    let mut bad_lines = Vec::new();
    let mut b = bad.iter();
    for (i, v) in valid.iter().enumerate() {
        lines.push(v.clone());
        if i % 10 == 4 {
            lines.push(b.next().unwrap().to_string());
            bad_lines.push(lines.len());
        }
    }
    let file = tmp.path().join("mixed.ndjson");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let data = tmp.path().join("data");
    let out = ingest(&data, &file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "exit code 3 signals rejections");
    assert!(
        stdout.contains("110 lines: 100 accepted, 0 duplicate, 10 rejected"),
        "{stdout}"
    );
    let mut reported: Vec<usize> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("line ")?.split(':').next()?.parse().ok())
        .collect();
    // Parse errors are reported as read, state-check rejections after their batch.
    reported.sort_unstable();
    assert_eq!(reported, bad_lines, "{stderr}");
    for l in stderr.lines() {
        assert!(l.contains("rejected ("), "each rejection has a reason: {l}");
    }
    assert!(stderr.contains("status_conflict"), "{stderr}");
    assert!(stderr.contains("unknown_ticket"), "{stderr}");
    assert_eq!(
        query(&data, "csv", "select count(*) as n from ticket_events"),
        "n\n100\n"
    );
}

fn fingerprint(data: &Path) -> (String, String) {
    let tickets = query(
        data,
        "csv",
        "select ticket_id, status, priority, assignment_group, tier, created_at, resolved_at, \
         closed_at, reopen_count, reassignment_count, handoff_count, escalation_count, handle_minutes, \
         event_count from tickets order by ticket_id",
    );
    let events = query(
        data,
        "csv",
        "select count(*), count(distinct event_id), sum(log_offset), sum(minutes), \
         max(occurred_at), count(distinct ticket_id) from ticket_events",
    );
    (tickets, events)
}

#[test]
fn kill_9_during_ingest_then_reingest_equals_a_clean_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("big.ndjson");
    simulate(&file, 118_000, 9);
    let lines = std::fs::read_to_string(&file).unwrap().lines().count();
    assert!(lines >= 1_000_000, "{lines} events");

    let clean = tmp.path().join("clean");
    assert!(ingest(&clean, &file).status.success());

    let crashed = tmp.path().join("crashed");
    let mut child = deskwatch()
        .args([
            "ingest",
            "--data-dir",
            crashed.to_str().unwrap(),
            "--checkpoint-every",
            "150000",
            file.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a good part of the log is written (and a checkpoint likely), then SIGKILL.
    let seg = crashed.join("log").join("00000000000000000000.seg");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let size = std::fs::metadata(&seg).map(|m| m.len()).unwrap_or(0);
        if size > 150 * 1024 * 1024 / 2 {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        killed,
        "ingest finished before it could be killed; grow the input"
    );
    let partial = query(&crashed, "csv", "select count(*) as n from ticket_events");
    let n: usize = partial.lines().nth(1).unwrap().parse().unwrap();
    assert!(
        n > 0 && n < lines,
        "{n} of {lines} events survived the kill"
    );

    let out = ingest(&crashed, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{} accepted, {n} duplicate", lines - n)),
        "{text}"
    );
    assert_eq!(fingerprint(&crashed), fingerprint(&clean));
}

#[test]
fn schema_command_prints_the_published_schema() {
    let out = run(&["schema"]);
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let file: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/ticket-event.v1.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(printed, file);
}

#[test]
fn export_writes_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sim.ndjson");
    simulate(&file, 300, 2);
    let data = tmp.path().join("data");
    assert!(ingest(&data, &file).status.success());
    let out_dir = tmp.path().join("pq");
    let out = run(&[
        "export",
        "--data-dir",
        data.to_str().unwrap(),
        "--parquet",
        out_dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("tickets: 300 rows"));
    let bytes = std::fs::read(out_dir.join("tickets.parquet")).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
}

#[test]
fn sla_command_lists_exactly_the_simulators_breaches() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.ndjson");
    simulate(&file, 2000, 5);
    let data = dir.path().join("data");
    assert!(ingest(&data, &file).status.success());
    let out = run(&[
        "sla",
        "--data-dir",
        data.to_str().unwrap(),
        "--breaches",
        "--limit",
        "100000",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("--format json prints a JSON array");
    let mut got: Vec<(String, String)> = listed
        .iter()
        .map(|r| {
            (
                r["ticket_id"].as_str().unwrap().to_string(),
                r["clock"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let truth: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("s.ndjson.truth.json")).unwrap(),
    )
    .unwrap();
    let mut expected: Vec<(String, String)> = truth["expected_breaches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["ticket_id"].as_str().unwrap().to_string(),
                b["clock"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    expected.sort();
    assert!(!expected.is_empty());
    assert_eq!(got, expected);
    // Filters and their errors.
    let out = run(&[
        "sla",
        "--data-dir",
        data.to_str().unwrap(),
        "--priority",
        "P7",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("priority"));
}

#[test]
fn erlang_prints_the_staffing_of_the_reference_point() {
    let out = run(&[
        "erlang",
        "--calls-per-hour",
        "200",
        "--aht-seconds",
        "180",
        "--answer-within-seconds",
        "20",
        "--service-level",
        "80",
        "--shrinkage",
        "0.3",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["agents"], 14);
    assert!((v["p_wait"].as_f64().unwrap() - 0.17413).abs() < 5e-6);
    assert!((v["service_level"].as_f64().unwrap() - 0.88835).abs() < 5e-6);
    assert!((v["asa_seconds"].as_f64().unwrap() - 7.836).abs() < 5e-4);
    assert!((v["scheduled_fte"].as_f64().unwrap() - 20.0).abs() < 1e-9);
    // An impossible target is an error with a reason, not a hang.
    let bad = run(&[
        "erlang",
        "--calls-per-hour",
        "200",
        "--aht-seconds",
        "180",
        "--answer-within-seconds",
        "20",
        "--service-level",
        "100",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("service level"));
}

#[test]
fn cost_compares_in_house_and_outsourced_on_the_observed_workload() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sim.ndjson");
    let data = tmp.path().join("data");
    simulate(&file, 3_000, 5);
    assert!(ingest(&data, &file).status.success());
    let cost = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "cost",
            "--data-dir",
            data.to_str().unwrap(),
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = run(&args);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let base = cost(&[]);
    let month = &base["month"];
    assert!(month["fte"].as_f64().unwrap() > 1.0, "{base:#}");
    assert!(base["aht_seconds"].as_f64().unwrap() > 60.0);
    // 3,000 tickets over 7.5 days: about 2,800 a week.
    let per_week = base["tickets_per_week"].as_f64().unwrap();
    assert!((2_000.0..4_000.0).contains(&per_week), "{per_week}");
    let sens = base["sensitivity"].as_array().unwrap();
    assert_eq!(sens.len(), 7);
    let inside: Vec<f64> = sens
        .iter()
        .map(|c| c["in_house"].as_f64().unwrap())
        .collect();
    assert!(inside.windows(2).all(|w| w[0] <= w[1]), "{inside:?}");
    // What-ifs move the figures the expected way and by the expected amount.
    let more = cost(&["--volume-change", "30"]);
    let ratio = more["month"]["tickets"].as_f64().unwrap() / month["tickets"].as_f64().unwrap();
    assert!((ratio - 1.3).abs() < 1e-9);
    assert!(more["month"]["fte"].as_f64().unwrap() > month["fte"].as_f64().unwrap());
    let less = cost(&["--volume-change", "-30"]);
    assert!(less["month"]["fte"].as_f64().unwrap() < month["fte"].as_f64().unwrap());
    let strict = cost(&["--service-level", "95", "--answer-within-seconds", "10"]);
    assert!(strict["month"]["fte"].as_f64().unwrap() > month["fte"].as_f64().unwrap());
    assert_eq!(
        strict["month"]["outsourced"], month["outsourced"],
        "the provider's price does not depend on our target"
    );
}

/// Every file of a directory and its bytes, to see that nothing changed.
fn tree(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn replay_under_a_stricter_policy_leaves_the_data_directory_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sim.ndjson");
    let data = tmp.path().join("data");
    simulate(&file, 2_000, 8);
    assert!(ingest(&data, &file).status.success());
    let strict = tmp.path().join("strict.toml");
    std::fs::write(
        &strict,
        "[[sla.policies]]\nname = \"all\"\nmatch = {}\ntargets = { first-response = { within = \"10m\", calendar = \"24x7\" }, resolution = { within = \"2h\", calendar = \"24x7\" } }\n",
    )
    .unwrap();
    let before = tree(&data);
    let replay = || -> serde_json::Value {
        let out = run(&[
            "replay",
            "--data-dir",
            data.to_str().unwrap(),
            "--config",
            strict.to_str().unwrap(),
            "--format",
            "json",
        ]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let r = replay();
    assert_eq!(r["tickets"], 2000);
    let total = |side: &str| r[side]["sla_total"]["breached"].as_u64().unwrap();
    assert!(total("after") > total("before"), "{r:#}");
    assert_eq!(replay(), r, "the same history gives the same answer");
    assert_eq!(tree(&data), before, "the data directory is untouched");
    // The table names every priority and the change.
    let out = run(&[
        "replay",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        strict.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("P1 resolution") && text.contains("cost per month"),
        "{text}"
    );
}

/// The handle-time estimate for exports without work logs, judged on the simulator, whose
/// work logs are the truth: the same history with every `ticket.work_logged` line removed
/// must give an AHT within ±30 % of the logged one, on the whole desk and on every channel,
/// and say that it is estimated.
#[test]
fn handle_time_estimated_without_work_logs_is_within_30_percent_of_the_logged_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sim.ndjson");
    simulate(&file, 6000, 11);
    let text = std::fs::read_to_string(&file).unwrap();
    let stripped = tmp.path().join("no-work-logs.ndjson");
    let kept: String = text
        .lines()
        .filter(|l| !l.contains("\"type\":\"ticket.work_logged\""))
        .flat_map(|l| [l, "\n"])
        .collect();
    assert!(kept.len() < text.len(), "work logs were removed");
    std::fs::write(&stripped, kept).unwrap();
    let report = |input: &Path, name: &str| -> serde_json::Value {
        let data = tmp.path().join(name);
        let d = data.to_str().unwrap();
        let out = run(&["ingest", "--data-dir", d, input.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        let out = run(&["cost", "--data-dir", d, "--format", "json"]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let truth = report(&file, "logged");
    let estimate = report(&stripped, "estimated");
    let aht = |r: &serde_json::Value| r["aht_seconds"].as_f64().unwrap();
    let ratio = aht(&estimate) / aht(&truth);
    eprintln!(
        "AHT logged {:.1} min, estimated {:.1} min ({:+.1} %)",
        aht(&truth) / 60.0,
        aht(&estimate) / 60.0,
        (ratio - 1.0) * 100.0
    );
    assert!((0.7..=1.3).contains(&ratio), "desk: {ratio}");
    for c in truth["channels"].as_array().unwrap() {
        let e = estimate["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["channel"] == c["channel"])
            .unwrap();
        assert!(c["aht"]["work_logged"].as_f64().unwrap() > 0.9, "{c}");
        assert_eq!(e["aht"]["source"], "estimated", "{e}");
        assert_eq!(e["aht"]["work_logged"], 0.0, "{e}");
        let r = aht(e) / aht(c);
        assert!((0.7..=1.3).contains(&r), "{}: {r}", c["channel"]);
    }
}
