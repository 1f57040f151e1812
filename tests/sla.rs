//! SLA alerting against real tools: Alertmanager receives and resolves the breach alert,
//! a webhook gets the same, an unreachable receiver does not block ingestion, Prometheus
//! scrapes `/metrics` and loads the rules, and promtool checks and tests the rules.
//!
//! The tools come from Debian (`prometheus`, `prometheus-alertmanager`); `scripts/test.sh`
//! installs them. Without them these tests print a notice and pass, unless
//! `DESKWATCH_REQUIRE_TOOLS=1` (set by the test script), when they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    Killed, Server, am_alerts, free_port, http, received_alert, start_alertmanager, tool, wait_for,
    webhook_sink,
};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn now_rfc3339(offset_ms: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::milliseconds(offset_ms))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn event(id: &str, ticket: &str, kind: &str, role: &str, payload: &str, at: &str) -> String {
    format!(
        r#"{{"event_id":"{id}","ticket_id":"{ticket}","tenant":"acme","type":"ticket.{kind}","occurred_at":"{at}","actor":{{"id":"x","role":"{role}"}},"schema_version":1,"payload":{payload}}}"#
    )
}

/// A config whose P1 first response is due 3 s after creation, alerts to `alertmanager` and
/// `webhooks`, re-sent every second.
fn config(dir: &Path, alertmanager: &[String], webhooks: &[String]) -> PathBuf {
    let list = |v: &[String]| {
        v.iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        r#"
[sla]
policies = [
  {{ name = "fast", match = {{ priority = ["P1"] }}, targets = {{ first-response = {{ within = "3s", calendar = "24x7" }}, resolution = {{ within = "1h", calendar = "24x7" }} }} }},
]
[sla.alerts]
alertmanager = [{}]
webhooks = [{}]
resend-seconds = 1
external-url = "http://deskwatch.test"
queue-limit = 1000
timeout-seconds = 2
"#,
        list(alertmanager),
        list(webhooks)
    );
    let path = dir.join("sla.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn create_p1(server: &Server, ticket: &str) {
    let created = event(
        &format!("{ticket}-1"),
        ticket,
        "created",
        "requester",
        r#"{"channel":"phone","priority":"P1","category":"network","requester":"r@acme.example","title":"Core switch down"}"#,
        &now_rfc3339(0),
    );
    let assigned = event(
        &format!("{ticket}-2"),
        ticket,
        "assigned",
        "agent",
        r#"{"group":"Network L2","agent":"a","tier":2}"#,
        &now_rfc3339(1),
    );
    let (status, body) = server.post("/v1/events", &format!("{created}\n{assigned}"));
    assert_eq!(status, 200, "{body}");
}

fn reply(server: &Server, ticket: &str) {
    let e = event(
        &format!("{ticket}-3"),
        ticket,
        "commented",
        "agent",
        r#"{"public":true,"author_role":"agent"}"#,
        &now_rfc3339(0),
    );
    let (status, body) = server.post("/v1/events", &e);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn breach_alert_reaches_alertmanager_and_is_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_am, am_addr)) = start_alertmanager(dir.path()) else {
        return;
    };
    let conf = config(dir.path(), &[format!("http://{am_addr}")], &[]);
    let server = Server::start(&conf, &dir.path().join("data"));
    create_p1(&server, "INC-AM-1");
    // The first response is due in 3 s; no event arrives, the deadline queue fires it.
    let breach = wait_for(30, || {
        am_alerts(&am_addr).into_iter().find(|a| {
            a["labels"]["ticket_id"] == "INC-AM-1"
                && a["labels"]["alertname"] == "DeskwatchSlaBreached"
                && a["status"]["state"] == "active"
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "Alertmanager never saw the breach; it has {:?}\n{}",
            am_alerts(&am_addr),
            std::fs::read_to_string(server.log_path()).unwrap_or_default()
        )
    });
    let labels = &breach["labels"];
    for (k, v) in [
        ("severity", "critical"),
        ("tenant", "acme"),
        ("group", "Network L2"),
        ("priority", "P1"),
        ("clock", "first_response"),
        ("level", "100"),
    ] {
        assert_eq!(labels[k], v, "label {k} of {breach}");
    }
    assert_eq!(breach["annotations"]["title"], "Core switch down");
    assert_eq!(
        breach["annotations"]["link"],
        "http://deskwatch.test/v1/tickets/INC-AM-1"
    );
    assert!(
        breach["annotations"]["deadline"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    // The at-risk warnings came first and were resolved by the breach.
    // The answer stops the clock: Alertmanager sees the breach resolved.
    reply(&server, "INC-AM-1");
    wait_for(30, || {
        let still = am_alerts(&am_addr).into_iter().any(|a| {
            a["labels"]["ticket_id"] == "INC-AM-1"
                && a["labels"]["clock"] == "first_response"
                && a["status"]["state"] == "active"
                && a["endsAt"]
                    .as_str()
                    .and_then(|e| chrono::DateTime::parse_from_rfc3339(e).ok())
                    .is_some_and(|e| e > chrono::Utc::now())
        });
        (!still).then_some(())
    })
    .expect("the breach is resolved in Alertmanager after the reply");
    // The API lists it as a breach, and the ticket shows its clocks with a timeline.
    let (_, body) = server
        .get("/v1/sla/breaches?priority=P1&clock=first_response")
        .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["count"], 1, "{body}");
    assert_eq!(v["clocks"][0]["ticket_id"], "INC-AM-1");
    let (_, body) = server.get("/v1/tickets/INC-AM-1").unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    let fr = v["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["clock"] == "first_response")
        .cloned()
        .expect("first_response clock");
    assert_eq!(fr["state"], "breached");
    let events: Vec<&str> = fr["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "started",
            "at_risk",
            "at_risk",
            "at_risk",
            "breached",
            "stopped late"
        ],
        "{fr}"
    );
    // 50 % of 3 s after the start: exact instants from the calendar.
    let at = |i: usize| {
        chrono::DateTime::parse_from_rfc3339(fr["timeline"][i]["at"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    assert_eq!(at(1) - at(0), 1500, "{fr}");
    assert_eq!(at(4) - at(0), 3000, "{fr}");
    let (status, body) = server.get("/v1/sla/breaches?priority=P9").unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_filter"));
}

#[test]
fn webhook_gets_firing_then_resolved_and_a_dead_receiver_blocks_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (hook, seen) = webhook_sink();
    // A receiver nobody listens on.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let conf = config(dir.path(), &[dead], &[format!("http://{hook}/hook")]);
    let server = Server::start(&conf, &dir.path().join("data"));
    create_p1(&server, "INC-WH-1");
    let firing = wait_for(30, || received_alert(&seen, "INC-WH-1", "100", "firing"))
        .expect("the webhook receives the firing breach");
    assert_eq!(firing["labels"]["alertname"], "DeskwatchSlaBreached");
    reply(&server, "INC-WH-1");
    wait_for(30, || received_alert(&seen, "INC-WH-1", "100", "resolved"))
        .expect("the webhook receives the resolved breach");
    // Ingestion went on while the dead receiver failed; /metrics says so.
    for n in 0..20 {
        create_p1(&server, &format!("INC-WH-N{n}"));
    }
    let metrics = wait_for(30, || {
        let (_, m) = server.get("/metrics")?;
        m.lines()
            .any(|l| {
                l.starts_with("deskwatch_alert_delivery_failures_total{receiver=\"alertmanager-0\"}")
                    && !l.ends_with(" 0")
            })
            .then_some(m)
            .filter(|m| m.contains("deskwatch_sla_breaches_total{clock=\"first_response\",priority=\"P1\",tenant=\"acme\"}"))
    })
    .expect("failures to the dead receiver and the breaches are counted");
    assert!(
        metrics.lines().any(|l| l
            .starts_with("deskwatch_alerts_queued{receiver=\"alertmanager-0\"}")
            && !l.ends_with(" 0")),
        "what could not be sent is queued"
    );
    assert!(!metrics.contains("INC-WH"), "no ticket ids in metrics");
    assert_eq!(server.count("tickets"), 21);
}

#[test]
fn prometheus_scrapes_metrics_and_loads_the_rules() {
    let Some(bin) = tool("prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = config(dir.path(), &[], &[]);
    let server = Server::start(&conf, &dir.path().join("data"));
    create_p1(&server, "INC-PROM-1");
    for rules in ["deskwatch-sla.rules.yml", "deskwatch-ops.rules.yml"] {
        std::fs::copy(
            repo().join("deploy/prometheus").join(rules),
            dir.path().join(rules),
        )
        .unwrap();
    }
    let prom_conf = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_conf,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [deskwatch-sla.rules.yml, deskwatch-ops.rules.yml]\nscrape_configs:\n  - job_name: deskwatch\n    static_configs:\n      - targets: [\"{}\"]\n",
            server.addr
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let _prom = Killed(
        Command::new(bin)
            .arg(format!("--config.file={}", prom_conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prom.log")).unwrap())
            .spawn()
            .expect("prometheus starts"),
    );
    let query = |q: &str| -> Vec<Value> {
        http("GET", &addr, &format!("/api/v1/query?query={q}"), "")
            .ok()
            .and_then(|(_, b)| serde_json::from_str::<Value>(&b).ok())
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    };
    wait_for(60, || {
        query("up%7Bjob%3D%22deskwatch%22%7D")
            .iter()
            .any(|r| r["value"][1] == "1")
            .then_some(())
    })
    .expect("Prometheus scrapes deskwatch (up == 1)");
    let breaches = wait_for(60, || {
        let r = query("deskwatch_sla_breaches_total");
        (!r.is_empty()).then_some(r)
    })
    .expect("the SLA breach counter is scraped");
    assert_eq!(breaches[0]["metric"]["priority"], "P1");
    let rules = wait_for(30, || {
        let (_, b) = http("GET", &addr, "/api/v1/rules", "").ok()?;
        let v: Value = serde_json::from_str(&b).ok()?;
        let groups = v["data"]["groups"].as_array()?.len();
        (groups == 3).then_some(v)
    })
    .expect("Prometheus loaded the SLA and operations rule groups");
    assert!(rules.to_string().contains("DeskwatchSlaComplianceBurn"));
    // The rules are evaluated, not just loaded: every rule reports its health.
    let healthy = wait_for(30, || {
        let (_, b) = http("GET", &addr, "/api/v1/rules", "").ok()?;
        let v: Value = serde_json::from_str(&b).ok()?;
        let rules: Vec<Value> = v["data"]["groups"]
            .as_array()?
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        rules
            .iter()
            .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
            .then_some(rules.len())
    });
    assert!(
        healthy.is_some_and(|n| n >= 12),
        "every rule evaluated without error"
    );
}

#[test]
fn promtool_checks_and_tests_the_rules_and_amtool_the_example() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    let dir = repo().join("deploy/prometheus");
    for args in [
        vec!["check", "rules", "deskwatch-sla.rules.yml"],
        vec!["test", "rules", "deskwatch-sla.rules.test.yml"],
        vec!["check", "rules", "deskwatch-ops.rules.yml"],
        vec!["test", "rules", "deskwatch-ops.rules.test.yml"],
        vec!["check", "config", "prometheus.yml"],
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if let Some(amtool) = tool("amtool") {
        let out = Command::new(amtool)
            .args(["check-config", "deploy/alertmanager/alertmanager.yml"])
            .current_dir(repo())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
