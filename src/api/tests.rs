use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::config::{Config, Secret};
use crate::simulate::{Params, Simulator};
use crate::telemetry::Metrics;

fn setup(tokens: Vec<Token>) -> (tempfile::TempDir, Router, Arc<Service>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(None).unwrap();
    config.storage.data_dir = dir.path().to_path_buf();
    config.server.body_limit_bytes = 64 * 1024;
    let service = Arc::new(Service::start(&config, Metrics::new().unwrap()).unwrap());
    let state = AppState {
        service: service.clone(),
        tokens: Arc::new(tokens),
        hooks: Arc::default(),
    };
    (dir, router(state, &config), service)
}

#[tokio::test]
async fn metrics_are_open_unless_told_to_require_the_read_role() {
    let reader = "read-token-0123456789ab";
    let tokens = vec![token("grafana", reader, vec![Role::Read])];
    let (_dir, app, _service) = setup(tokens.clone());
    assert_eq!(
        call(&app, "GET", "/metrics", None, String::new()).await.0,
        StatusCode::OK
    );
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(None).unwrap();
    config.storage.data_dir = dir.path().to_path_buf();
    config.server.metrics_auth = true;
    let service = Arc::new(Service::start(&config, Metrics::new().unwrap()).unwrap());
    let app = router(
        AppState {
            service,
            tokens: Arc::new(tokens),
            hooks: Arc::default(),
        },
        &config,
    );
    let (status, v) = call(&app, "GET", "/metrics", None, String::new()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    let (status, v) = call(&app, "GET", "/metrics", Some(reader), String::new()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        v.as_str()
            .unwrap()
            .contains("deskwatch_ingest_events_total")
    );
}

fn token(name: &str, secret: &str, roles: Vec<Role>) -> Token {
    Token {
        name: name.into(),
        token: serde_json::from_value::<Secret>(Value::String(secret.into())).unwrap(),
        roles,
    }
}

async fn call(
    app: &Router,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: String,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(t) = auth {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

fn ndjson(tickets: u64) -> String {
    Simulator::new(Params {
        tickets,
        seed: 3,
        ..Params::default()
    })
    .map(|e| String::from_utf8(e.to_json()).unwrap() + "\n")
    .collect()
}

#[tokio::test]
async fn events_are_acknowledged_per_event_then_queryable() {
    let (_dir, app, _service) = setup(Vec::new());
    let body = ndjson(20);
    let lines = body.lines().count();
    let bad = "{\"event_id\":\"x\"}\n";
    let (status, v) = call(&app, "POST", "/v1/events", None, format!("{bad}{body}")).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], lines);
    assert_eq!(v["rejected"], 1);
    assert_eq!(v["results"][0]["outcome"], "invalid");
    assert_eq!(v["results"][0]["field"], "/ticket_id");
    // Same events again, as a JSON array: all duplicates.
    let array = format!("[{}]", body.lines().collect::<Vec<_>>().join(","));
    let (_, v) = call(&app, "POST", "/v1/events", None, array).await;
    assert_eq!(v["duplicates"], lines);
    let (status, v) = call(
        &app,
        "POST",
        "/v1/query",
        None,
        r#"{"sql":"select count(*) as n from tickets"}"#.into(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["rows"][0]["n"], 20);
    let (status, v) = call(&app, "GET", "/v1/tickets/INC0000003", None, String::new()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["ticket"]["ticket_id"], "INC0000003");
    assert!(v["history"].as_array().unwrap().len() >= 5);
    assert_eq!(v["history"][0]["event_type"], "ticket.created");
    let (status, v) = call(&app, "GET", "/v1/tickets/NOPE", None, String::new()).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, page) = call(&app, "GET", "/", None, String::new()).await;
    assert_eq!(status, StatusCode::OK);
    // The web page is one self-contained file reading the API (no external assets).
    let page = page.as_str().unwrap();
    for part in [
        "/v1/recurring",
        "/v1/sla/at-risk",
        "/v1/cost",
        "/v1/tickets/",
    ] {
        assert!(page.contains(part), "{part}");
    }
    assert!(!page.contains("https://") && !page.contains("http://"));
    let (_, metrics) = call(&app, "GET", "/metrics", None, String::new()).await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(&format!(
            "deskwatch_ingest_events_total{{outcome=\"applied\"}} {lines}"
        )),
        "{text}"
    );
    assert!(
        text.contains("deskwatch_ingest_rejected_events_total{reason=\"missing_field\"} 1"),
        "{text}"
    );
    assert!(text.contains("deskwatch_projection_tickets 20"));
}

#[tokio::test]
async fn recurring_issues_and_top_calls() {
    let (_dir, app, _service) = setup(Vec::new());
    let body = ndjson(3000);
    let lines: Vec<&str> = body.lines().collect();
    for chunk in lines.chunks(100) {
        let (status, v) = call(&app, "POST", "/v1/events", None, chunk.join("\n")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let (status, v) = call(
        &app,
        "GET",
        "/v1/recurring?window=3d&limit=5",
        None,
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let issues = v["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 5);
    let counts: Vec<u64> = issues
        .iter()
        .map(|i| i["tickets"].as_u64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    assert!(counts[0] >= 2);
    for key in [
        "fingerprint",
        "label",
        "cluster_id",
        "requesters",
        "mttr_hours",
        "handle_cost",
        "spike_score",
        "samples",
        "problem_candidate",
        "kb_candidate",
        "first_seen",
    ] {
        assert!(issues[0].get(key).is_some(), "{key} missing: {}", issues[0]);
    }
    // Three days of a 7.5-day stream: four days of history, not a whole baseline window.
    assert_eq!(v["baseline_days"], 3.0);
    let (status, calls) = call(&app, "GET", "/v1/top-calls?n=3", None, String::new()).await;
    assert_eq!(status, StatusCode::OK, "{calls}");
    let list = calls["calls"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["rank"], 1);
    let share: f64 = list.iter().map(|c| c["share"].as_f64().unwrap()).sum();
    assert!(share > 0.0 && share <= 1.0);
    // Filters narrow the tickets counted.
    let (_, phone) = call(
        &app,
        "GET",
        "/v1/top-calls?n=3&channel=phone",
        None,
        String::new(),
    )
    .await;
    assert!(phone["tickets"].as_u64().unwrap() < calls["tickets"].as_u64().unwrap());
    for (uri, name) in [
        ("/v1/recurring?window=7x", "window"),
        ("/v1/recurring?candidates=all", "candidates"),
        ("/v1/recurring?to=yesterday", "to"),
        ("/v1/recurring?min_tickets=0", "min_tickets"),
        ("/v1/recurring?colour=red", "colour"),
        ("/v1/top-calls?n=0", "n"),
        (
            "/v1/top-calls?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
        ),
    ] {
        let (status, e) = call(&app, "GET", uri, None, String::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {e}");
        assert_eq!(e["error"]["code"], "invalid_parameter", "{uri}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(name),
            "{uri}: {e}"
        );
    }
    // The same rows as SQL.
    let (status, rows) = call(
        &app,
        "POST",
        "/v1/query",
        None,
        r#"{"sql": "select count(*) as n from ticket_clusters"}"#.into(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert_eq!(rows["rows"][0]["n"], 3000);
}

/// `POST /v1/query` with `sql`, without a token.
async fn post_sql(app: &Router, sql: &str) -> (StatusCode, Value) {
    call(
        app,
        "POST",
        "/v1/query",
        None,
        serde_json::json!({"sql": sql}).to_string(),
    )
    .await
}

#[tokio::test]
async fn explain_and_explain_analyze_answer_their_plans() {
    let (_dir, app, _service) = setup(Vec::new());
    for (sql, shows) in [
        ("explain select count(*) from tickets", "physical_plan"),
        (
            "explain analyze select count(*) from tickets",
            "output_rows",
        ),
    ] {
        let (status, v) = post_sql(&app, sql).await;
        assert_eq!(status, StatusCode::OK, "{sql}: {v}");
        assert!(v["rows"].to_string().contains(shows), "{sql}: {v}");
    }
}

#[tokio::test]
async fn sql_is_read_only_and_errors_are_json() {
    let (_dir, app, _service) = setup(Vec::new());
    for sql in [
        "create table x (a int)",
        "insert into tickets values (1)",
        "drop table tickets",
    ] {
        let (status, v) = post_sql(&app, sql).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sql}: {v}");
        assert_eq!(v["error"]["code"], "invalid_query");
    }
    let (status, v) = call(&app, "POST", "/v1/query", None, "not json".into()).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );
    let big = "x".repeat(70 * 1024);
    let (status, _) = call(&app, "POST", "/v1/events", None, big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn bearer_tokens_and_roles() {
    let ingest = "ingest-token-0123456789";
    let reader = "read-token-0123456789ab";
    let (_dir, app, _service) = setup(vec![
        token("bot", ingest, vec![Role::Ingest]),
        token("grafana", reader, vec![Role::Read]),
    ]);
    let sql = r#"{"sql":"select 1"}"#.to_string();
    assert_eq!(
        call(&app, "POST", "/v1/query", None, sql.clone()).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(
            &app,
            "POST",
            "/v1/query",
            Some("wrong-token-000000000"),
            sql.clone()
        )
        .await
        .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(&app, "POST", "/v1/query", Some(ingest), sql.clone())
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(&app, "POST", "/v1/query", Some(reader), sql).await.0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "POST", "/v1/events", Some(ingest), ndjson(2))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "GET", "/healthz", None, String::new()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn serves_on_a_real_listener() {
    let (_dir, app, _service) = setup(Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ready\n"));
    server.abort();
}

#[tokio::test]
async fn cost_and_staffing_with_what_ifs_and_their_gauges() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::load(None).unwrap();
    config.storage.data_dir = dir.path().to_path_buf();
    config.cost.refresh_seconds = 1;
    let service = Arc::new(Service::start(&config, Metrics::new().unwrap()).unwrap());
    let state = AppState {
        service: service.clone(),
        tokens: Arc::new(Vec::new()),
        hooks: Arc::default(),
    };
    let app = router(state, &config);
    let body = ndjson(2000);
    let lines: Vec<&str> = body.lines().collect();
    for chunk in lines.chunks(200) {
        let (status, v) = call(&app, "POST", "/v1/events", None, chunk.join("\n")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let get = |uri: &'static str| {
        let app = app.clone();
        async move {
            let (status, v) = call(&app, "GET", uri, None, String::new()).await;
            assert_eq!(status, StatusCode::OK, "{uri}: {v}");
            v
        }
    };
    let base = get("/v1/cost").await;
    let month = &base["month"];
    assert!(month["tickets"].as_f64().unwrap() > 0.0, "{base}");
    assert!(month["fte"].as_f64().unwrap() > 0.0);
    let channels = base["channels"].as_array().unwrap();
    let phone = channels.iter().find(|c| c["channel"] == "phone").unwrap();
    let email = channels.iter().find(|c| c["channel"] == "email").unwrap();
    assert_eq!(phone["realtime"], true);
    assert_eq!(email["realtime"], false);
    assert_eq!(email["answer_within_seconds"], 14_400.0);
    assert_eq!(base["sensitivity"].as_array().unwrap().len(), 7);
    // +30 % volume: 1.3 × the tickets and the per-ticket fee, more in-house cost.
    let more = get("/v1/cost?volume_change=30").await;
    let ratio = |k: &str| more["month"][k].as_f64().unwrap() / month[k].as_f64().unwrap();
    assert!((ratio("tickets") - 1.3).abs() < 1e-9);
    assert!((ratio("outsourced") - 1.3).abs() < 1e-9);
    assert!(ratio("in_house") > 1.0);
    assert_eq!(more["what_if"]["volume_change_percent"], 30.0);
    // A stricter phone target needs at least as many agents, e-mail keeps its own.
    let base_staff = get("/v1/staffing").await;
    let strict = get("/v1/staffing?service_level=95&answer_within_seconds=10").await;
    let fte = |v: &Value, ch: &str| {
        v["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == ch)
            .unwrap()["fte"]
            .as_f64()
            .unwrap()
    };
    assert!(fte(&strict, "phone") > fte(&base_staff, "phone"));
    assert_eq!(fte(&strict, "email"), fte(&base_staff, "email"));
    // Agents per hour add up over the channels.
    let agents = base_staff["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 168);
    for c in base_staff["channels"].as_array().unwrap() {
        for h in c["hours"].as_array().unwrap() {
            let hour = h["hour_of_week"].as_u64().unwrap() as usize;
            assert!(h["agents"].as_u64().unwrap() <= agents[hour].as_u64().unwrap());
            assert!(h["occupancy"].as_f64().unwrap() <= 0.85 + 1e-12);
        }
    }
    for (uri, name) in [
        ("/v1/cost?volume_change=-100", "volume_change"),
        ("/v1/cost?service_level=150", "service_level"),
        (
            "/v1/staffing?answer_within_seconds=-5",
            "answer_within_seconds",
        ),
        ("/v1/staffing?volume_change=lots", "volume_change"),
        ("/v1/cost?colour=red", "colour"),
    ] {
        let (status, e) = call(&app, "GET", uri, None, String::new()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {e}");
        assert_eq!(e["error"]["code"], "invalid_parameter", "{uri}: {e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(name),
            "{uri}: {e}"
        );
    }
    // The monitor publishes the same month as gauges (refresh every second; bounded wait).
    let want = format!(
        "deskwatch_cost_monthly_dollars{{model=\"outsourced\"}} {}",
        month["outsourced"].as_f64().unwrap()
    );
    let mut text = String::new();
    for _ in 0..100 {
        let (_, v) = call(&app, "GET", "/metrics", None, String::new()).await;
        text = v.as_str().unwrap_or_default().to_string();
        if text.contains(&want) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(text.contains(&want), "{want} not in /metrics");
    for series in [
        "deskwatch_cost_monthly_dollars{model=\"in_house\"}",
        "deskwatch_cost_per_ticket_dollars{model=\"outsourced\"}",
        "deskwatch_staffing_required_agents{channel=\"phone\"}",
        "deskwatch_staffing_fte{channel=\"email\"}",
        "deskwatch_cost_break_even_monthly_tickets",
    ] {
        assert!(text.contains(series), "{series} not in /metrics");
    }
}

#[tokio::test]
async fn replay_compares_policies_without_touching_the_live_state() {
    let (_dir, app, service) = setup(Vec::new());
    let body = ndjson(1500);
    let lines: Vec<&str> = body.lines().collect();
    for chunk in lines.chunks(100) {
        let (status, v) = call(&app, "POST", "/v1/events", None, chunk.join("\n")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let policy = |fr: &str, res: &str| {
        format!(
            "[[sla.policies]]\nname = \"all\"\nmatch = {{}}\ntargets = {{ first-response = {{ within = \"{fr}\", calendar = \"24x7\" }}, resolution = {{ within = \"{res}\", calendar = \"24x7\" }} }}\n"
        )
    };
    let replay = |config: String| {
        let app = app.clone();
        async move {
            let body = json!({ "config": config }).to_string();
            let (status, v) = call(&app, "POST", "/v1/replay", None, body).await;
            assert_eq!(status, StatusCode::OK, "{v}");
            v
        }
    };
    let live = |s: &Service| {
        let snap = s.query.current();
        (
            snap.tickets.iter().map(|b| b.num_rows()).sum::<usize>(),
            snap.events.iter().map(|b| b.rows()).sum::<usize>(),
        )
    };
    let (_, before_clocks) = call(
        &app,
        "POST",
        "/v1/query",
        None,
        r#"{"sql": "select count(*) as n, count(breached_at) as b from sla_clocks"}"#.into(),
    )
    .await;
    let before_live = live(&service);
    let strict = replay(policy("15m", "2h")).await;
    let loose = replay(policy("24h", "240h")).await;
    assert_eq!(strict["tickets"], 1500);
    // The base side is the same history under the running configuration, both times.
    assert_eq!(strict["before"], loose["before"]);
    let breached = |v: &Value, side: &str, p: &str, c: &str| {
        v[side]["sla"][p][c]["breached"].as_u64().unwrap_or(0)
    };
    for p in ["P1", "P2", "P3", "P4"] {
        for c in ["first_response", "resolution"] {
            assert!(
                breached(&strict, "after", p, c) >= breached(&loose, "after", p, c),
                "{p} {c}"
            );
        }
    }
    let total = |v: &Value| v["after"]["sla_total"]["breached"].as_u64().unwrap();
    assert!(
        total(&strict) > total(&loose),
        "{} vs {}",
        total(&strict),
        total(&loose)
    );
    // Stricter targets: more SLA credits from the provider.
    assert!(
        strict["after"]["cost"]["sla_breach_credits"]
            .as_f64()
            .unwrap()
            >= loose["after"]["cost"]["sla_breach_credits"]
                .as_f64()
                .unwrap()
    );
    // Deterministic, and the live state is untouched.
    assert_eq!(replay(policy("15m", "2h")).await, strict);
    assert_eq!(live(&service), before_live);
    let (_, after_clocks) = call(
        &app,
        "POST",
        "/v1/query",
        None,
        r#"{"sql": "select count(*) as n, count(breached_at) as b from sla_clocks"}"#.into(),
    )
    .await;
    assert_eq!(after_clocks["rows"][0]["n"], before_clocks["rows"][0]["n"]);
    // A range replays the tickets created in it.
    let first = replay_range(&app, "2026-01-05T00:00:00Z", "2026-01-07T00:00:00Z").await;
    let n = first["tickets"].as_u64().unwrap();
    assert!(n > 0 && n < 1500, "{n}");
    assert_eq!(first["as_of"], "2026-01-07T00:00:00.000Z");
    for (body, code) in [
        (
            json!({"config": "[sla]\nwarnings = [90, 50]\n"}),
            "invalid_config",
        ),
        (
            json!({"config": "[cost]\nshrinkage = 2.0\n"}),
            "invalid_config",
        ),
        (json!({"config": "", "from": "monday"}), "invalid_parameter"),
        (json!({"policy": "strict"}), "invalid_request"),
    ] {
        let (status, e) = call(&app, "POST", "/v1/replay", None, body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");
        assert_eq!(e["error"]["code"], code, "{e}");
    }
}

async fn replay_range(app: &Router, from: &str, to: &str) -> Value {
    let body = json!({"config": "", "from": from, "to": to}).to_string();
    let (status, v) = call(app, "POST", "/v1/replay", None, body).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v
}

#[tokio::test]
async fn webhooks_take_an_ingest_token_or_the_desks_signature() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let mut config = Config::from_toml(&format!(
        r#"
[[sources]]
name = "servicenow"
kind = "webhook"
mapping = "{root}/examples/mappings/webhooks/servicenow.toml"

[[sources]]
name = "zammad"
kind = "webhook"
mapping = "{root}/examples/mappings/webhooks/zammad.toml"
secret = "zammad-token"
"#
    ))
    .unwrap();
    config.storage.data_dir = dir.path().to_path_buf();
    let (ingest, read) = ("ingest-token-0123456789", "read-token-0123456789ab");
    let tokens = vec![
        token("desk", ingest, vec![Role::Ingest]),
        token("grafana", read, vec![Role::Read]),
    ];
    let service = Arc::new(Service::start(&config, Metrics::new().unwrap()).unwrap());
    let app = router(
        AppState {
            service: service.clone(),
            tokens: Arc::new(tokens),
            hooks: Arc::new(crate::source::hook::hooks(&config.sources)),
        },
        &config,
    );
    let fixture =
        |p: &str| std::fs::read_to_string(format!("{root}/tests/fixtures/webhooks/{p}")).unwrap();
    let sn = fixture("servicenow/01-insert.json");
    let url = "/v1/hooks/servicenow";
    let (status, _) = call(&app, "POST", url, None, sn.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(&app, "POST", url, Some(read), sn.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, v) = call(&app, "POST", url, Some(ingest), sn).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["accepted"], 1);
    assert_eq!(v["ticket_id"], "SN-INC0010042");
    // A signed source: an ingest token stands in for the signature; a read token does not.
    let zm = fixture("zammad/01-created.json");
    let url = "/v1/hooks/zammad";
    let (status, v) = call(&app, "POST", url, Some(read), zm.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "bad_signature");
    let (status, v) = call(&app, "POST", url, Some(ingest), zm).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["event_ids"].as_array().unwrap().len(), 1);
}
