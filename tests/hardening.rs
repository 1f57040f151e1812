//! No query, request or receiver can crash the service or lose what it must deliver.
//!
//! - Queries that would take the machine's memory get a JSON error (`resources_exhausted` or
//!   `timeout`) while other clients keep their answers, in a process under a 6 GB
//!   address-space limit; statements that write or read files are refused; results are capped.
//! - Alerts that fall due while Alertmanager is down arrive, each once, when it is back.
//! - `promtool check metrics` passes on a live `/metrics`.
//! - `serve` refuses a public address without tokens.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Killed, am_alerts, free_port, http, start_alertmanager_at, tool, wait_for};
use serde_json::Value;

/// `deskwatch serve` under `ulimit -v` (KiB), on a free port; waits for /healthz.
fn serve_capped(config: &Path, data: &Path, address_space_kib: u64) -> (Killed, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let log = std::fs::File::create(data.with_extension("log")).unwrap();
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {address_space_kib} && exec \"$0\" serve --config \"$1\" --data-dir \"$2\" --listen \"$3\""
        ))
        .arg(env!("CARGO_BIN_EXE_deskwatch"))
        .arg(config)
        .arg(data)
        .arg(&addr)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let server = Killed(child);
    wait_for(60, || {
        http("GET", &addr, "/healthz", "")
            .ok()
            .filter(|(s, _)| *s == 200)
    })
    .unwrap_or_else(|| {
        panic!(
            "the server did not start: {}",
            std::fs::read_to_string(data.with_extension("log")).unwrap_or_default()
        )
    });
    (server, addr)
}

fn sql(addr: &str, sql: &str) -> (u16, Value) {
    let body = serde_json::json!({ "sql": sql }).to_string();
    let (status, text) = http("POST", addr, "/v1/query", &body).expect("the server answers");
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{sql}: not JSON ({e}): {text}"));
    (status, v)
}

#[test]
fn queries_that_would_exhaust_memory_get_a_json_error_and_the_service_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::ingested(dir.path(), 20_000, 400, 7);
    let config = dir.path().join("q.toml");
    // The memory limit is left at `auto`: a quarter of the 6 GB address space.
    std::fs::write(
        &config,
        "[query]\ntimeout-seconds = 20\nmax-rows = 1000\nmax-concurrent = 4\n",
    )
    .unwrap();
    let (server, addr) = serve_capped(&config, &data, 6 * 1024 * 1024);

    let heavy = [
        "select value from generate_series(1, 1000000000) order by value desc limit 1 offset 500000000",
        "select count(distinct a.event_id || b.event_id) from ticket_events a, ticket_events b",
        "select array_agg(a.event_id) from ticket_events a, ticket_events b",
    ];
    let done = Arc::new(AtomicBool::new(false));
    // A second client: /healthz and a small query keep answering meanwhile.
    let watcher = {
        let (addr, done) = (addr.clone(), done.clone());
        std::thread::spawn(move || {
            let mut answered = 0;
            while !done.load(Ordering::Relaxed) {
                let (s, _) = http("GET", &addr, "/healthz", "").expect("healthz answers");
                assert_eq!(s, 200);
                let (s, v) = sql(&addr, "select count(*) as n from tickets");
                assert_eq!(s, 200, "{v}");
                assert_eq!(v["rows"][0]["n"], 20_000);
                answered += 1;
                std::thread::sleep(std::time::Duration::from_millis(300));
            }
            answered
        })
    };
    let clients: Vec<_> = heavy
        .iter()
        .map(|q| {
            let addr = addr.clone();
            let q = q.to_string();
            std::thread::spawn(move || (q.clone(), sql(&addr, &q)))
        })
        .collect();
    for c in clients {
        let (q, (status, v)) = c.join().unwrap();
        let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
        assert!(
            (status == 422 && code == "resources_exhausted")
                || (status == 408 && code == "timeout"),
            "{q}: {status} {v}"
        );
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("[query]")),
            "{v}"
        );
    }
    done.store(true, Ordering::Relaxed);
    let answered = watcher.join().unwrap();
    assert!(answered > 0);
    // Still alive, and the memory is back: the same small answer.
    let (s, v) = sql(&addr, "select count(*) as n from ticket_events");
    assert_eq!(s, 200, "{v}");

    // Functions whose one value would take gigabytes are refused before they allocate it (a
    // failed allocation would abort the process); the same functions work at a normal size.
    for huge in [
        "select repeat('x', 2000000000) as r",
        "select length(repeat(repeat('x', 100000), 100000)) as n",
        "select lpad('x', 2000000000) as r",
        "select range(1, 5000000000) as r",
        "select generate_series(timestamp '1970-01-01', timestamp '2100-01-01', interval '1 second') as r",
        "select array_repeat(1, 2000000000) as r",
        "select replace(repeat('x', 1000000), 'x', repeat('y', 10000)) as r",
    ] {
        let (s, v) = sql(&addr, huge);
        assert_eq!(s, 422, "{huge}: {v}");
        assert_eq!(v["error"]["code"], "resources_exhausted", "{huge}: {v}");
    }
    let (s, v) = sql(
        &addr,
        "select repeat('ab', 3) as r, lpad('7', 3, '0') as p, replace('a-b', '-', '+') as q, range(1, 4) as g, array_repeat('z', 2) as z",
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rows"][0]["r"], "ababab");
    assert_eq!(v["rows"][0]["p"], "007");
    assert_eq!(v["rows"][0]["q"], "a+b");
    assert_eq!(v["rows"][0]["g"], serde_json::json!([1, 2, 3]));
    assert_eq!(v["rows"][0]["z"], serde_json::json!(["z", "z"]));

    // Statements that write, create or read files are refused.
    for refused in [
        "copy (select * from tickets) to '/tmp/deskwatch-copy.csv'",
        "create external table t stored as csv location '/etc/passwd'",
        "select * from '/etc/passwd'",
        "insert into tickets select * from tickets",
    ] {
        let (s, v) = sql(&addr, refused);
        assert_eq!(s, 400, "{refused}: {v}");
        assert_eq!(v["error"]["code"], "invalid_query", "{refused}: {v}");
    }
    assert!(!Path::new("/tmp/deskwatch-copy.csv").exists());
    // Results are capped, and say so.
    let (s, v) = sql(&addr, "select * from ticket_events");
    assert_eq!(s, 200);
    assert_eq!(v["row_count"], 1000);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["rows"].as_array().unwrap().len(), 1000);
    let (s, v) = sql(
        &addr,
        "select status, count(*) n from tickets group by status",
    );
    assert_eq!(s, 200);
    assert_eq!(v["truncated"], false);
    assert_eq!(
        v["rows"].as_array().unwrap().len() as u64,
        v["row_count"].as_u64().unwrap()
    );
    drop(server);
}

#[test]
fn a_query_that_never_ends_is_cancelled_and_one_too_deep_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("q.toml");
    std::fs::write(&config, "[query]\ntimeout-seconds = 3\n").unwrap();
    let (_server, addr) = serve_capped(&config, &dir.path().join("data"), 6 * 1024 * 1024);
    let (s, v) = sql(
        &addr,
        "with recursive t(n) as (select 1 union all select n + 1 from t) select count(*) from t",
    );
    assert_eq!(s, 408, "{v}");
    assert_eq!(v["error"]["code"], "timeout", "{v}");
    // The plan stopped: the service answers at once, again and again.
    for _ in 0..3 {
        let (s, v) = sql(&addr, "select 1 as one");
        assert_eq!(s, 200, "{v}");
    }
    // An operator chain long enough to overflow the planner's stack is refused; one at the
    // limit is planned (in this debug build too), and long IN lists are fine.
    let chain = |n: usize| format!("select 1{} as n", " + 1".repeat(n));
    let (s, v) = sql(&addr, &chain(20_000));
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("operators"),
        "{v}"
    );
    let (s, v) = sql(&addr, &chain(999));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rows"][0]["n"], 1000);
    let list: Vec<String> = (0..20_000).map(|i| format!("'T{i}'")).collect();
    let (s, v) = sql(
        &addr,
        &format!(
            "select count(*) as n from tickets where ticket_id in ({})",
            list.join(",")
        ),
    );
    assert_eq!(s, 200, "{v}");
    let (s, v) = sql(
        &addr,
        &format!(
            "select {} as deep",
            "(".repeat(5000) + "1" + &")".repeat(5000)
        ),
    );
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_query");
}

fn event(id: &str, ticket: &str, kind: &str, payload: &str, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","ticket_id":"{ticket}","tenant":"acme","type":"ticket.{kind}","occurred_at":"{at}","actor":{{"id":"x","role":"agent"}},"schema_version":1,"payload":{payload}}}"#
    )
}

#[test]
fn alerts_due_while_alertmanager_is_down_arrive_once_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let am_addr = format!("127.0.0.1:{}", free_port());
    let Some(am) = start_alertmanager_at(dir.path(), &am_addr) else {
        return;
    };
    let config = dir.path().join("sla.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[sla]
warnings = [50]
policies = [
  {{ name = "fast", match = {{ priority = ["P1"] }}, targets = {{ first-response = {{ within = "2s", calendar = "24x7" }}, resolution = {{ within = "4s", calendar = "24x7" }} }} }},
]
[sla.alerts]
alertmanager = ["http://{am_addr}"]
resend-seconds = 1
queue-limit = 1000
timeout-seconds = 2
"#
        ),
    )
    .unwrap();
    let server = common::Server::start(&config, &dir.path().join("data"));
    // Alertmanager goes away; then the tickets arrive and their clocks reach 50 % and breach.
    drop(am);
    let tickets: Vec<String> = (0..20).map(|i| format!("INC-DOWN-{i}")).collect();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body: Vec<String> = tickets
        .iter()
        .map(|t| {
            event(
                &format!("{t}-1"),
                t,
                "created",
                r#"{"channel":"phone","priority":"P1","category":"network","requester":"r@acme.example","title":"Core switch down"}"#,
                &now,
            )
        })
        .collect();
    let (status, text) = server.post("/v1/events", &body.join("\n"));
    assert_eq!(status, 200, "{text}");
    let metric = |name: &str| -> f64 {
        let (_, m) = server.get("/metrics").unwrap();
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    // Both clocks of every ticket breach while deliveries fail.
    wait_for(30, || {
        (metric("deskwatch_alert_delivery_failures_total{receiver=\"alertmanager-0\"}") >= 2.0
            && metric("deskwatch_sla_breaches_total") > 0.0)
            .then_some(())
    });
    wait_for(30, || {
        let (_, m) = server.get("/metrics").unwrap();
        let breaches: f64 = m
            .lines()
            .filter(|l| l.starts_with("deskwatch_sla_breaches_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (breaches >= 40.0).then_some(())
    })
    .expect("40 breaches");
    // Alertmanager is back on the same address, with no alerts.
    let _am = start_alertmanager_at(dir.path(), &am_addr).unwrap();
    let seen = wait_for(60, || {
        let active: Vec<Value> = am_alerts(&am_addr)
            .into_iter()
            .filter(|a| a["status"]["state"] == "active")
            .filter(|a| {
                a["endsAt"]
                    .as_str()
                    .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
                    .is_some_and(|e| e > chrono::Utc::now())
            })
            .collect();
        (active.len() >= 40).then_some(active)
    })
    .unwrap_or_else(|| panic!("Alertmanager has {:?}", am_alerts(&am_addr)));
    // Every (ticket, clock) breach exactly once, and nothing else still firing.
    let mut keys: Vec<(String, String, String)> = seen
        .iter()
        .map(|a| {
            let l = &a["labels"];
            (
                l["ticket_id"].as_str().unwrap().to_string(),
                l["clock"].as_str().unwrap().to_string(),
                l["level"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    keys.sort();
    let mut expected: Vec<(String, String, String)> = tickets
        .iter()
        .flat_map(|t| {
            ["first_response", "resolution"].map(|c| (t.clone(), c.to_string(), "100".to_string()))
        })
        .collect();
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(
        metric("deskwatch_alerts_dropped_total{receiver=\"alertmanager-0\"}"),
        0.0
    );
    assert_eq!(
        metric("deskwatch_alerts_rejected_total{receiver=\"alertmanager-0\"}"),
        0.0
    );
    server.stop();
}

#[test]
fn promtool_accepts_the_metrics() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = common::ingested(dir.path(), 2_000, 200, 3);
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[recurring]\nrefresh-seconds = 1\n").unwrap();
    let server = common::Server::start(&config, &data);
    // Wait until the monitors have filled their gauges.
    let text = wait_for(30, || {
        let (_, m) = server.get("/metrics")?;
        (m.contains("deskwatch_recurring_fingerprints ")
            && m.contains("deskwatch_cost_monthly_dollars"))
        .then_some(m)
    })
    .expect("the recurring and cost gauges");
    common::check_metrics(&promtool, &text);
    server.stop();
}

#[test]
fn serve_refuses_a_public_address_without_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::deskwatch()
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    for hint in [
        "auth.tokens",
        "127.0.0.1",
        "--insecure-no-auth",
        "server.listen",
    ] {
        assert!(err.contains(hint), "{hint} not in: {err}");
    }
    assert!(!dir.path().join("data").exists(), "nothing was started");
    // Told explicitly, it starts (and warns).
    let port = free_port();
    let mut child = Killed(
        common::deskwatch()
            .args(["serve", "--insecure-no-auth", "--listen"])
            .arg(format!("0.0.0.0:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let addr = format!("127.0.0.1:{port}");
    wait_for(30, || {
        http("GET", &addr, "/healthz", "")
            .ok()
            .filter(|(s, _)| *s == 200)
    })
    .expect("starts with --insecure-no-auth");
    let _ = child.0.kill();
    let out = std::mem::replace(&mut child.0, Command::new("true").spawn().unwrap())
        .wait_with_output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without authentication"), "{err}");
}
