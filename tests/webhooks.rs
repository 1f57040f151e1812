//! Webhook sources end to end: `deskwatch serve` with the shipped mappings of Zammad, GLPI
//! (tickets and followups), Jira Service Management and ServiceNow receives each product's
//! payloads (fixtures built from its published webhook documentation, in
//! `tests/fixtures/webhooks/`), signed as the product signs them. The tickets come out with
//! the statuses, owners, priorities, first responses and reopens the desk had; a payload sent
//! again adds nothing; an older one is refused; a bad signature writes nothing; after kill -9 the
//! restarted service carries on from its log.

mod common;

use std::path::{Path, PathBuf};

use common::{Server, wait_for};
use hmac::{Hmac, Mac};
use serde_json::Value;

const ZAMMAD_SECRET: &str = "zammad-signature-token";
const GLPI_SECRET: &str = "glpi-webhook-secret";
const JSM_SECRET: &str = "jira-webhook-secret";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn config(dir: &Path) -> PathBuf {
    let m = |f: &str| {
        root()
            .join("examples/mappings/webhooks")
            .join(f)
            .display()
            .to_string()
    };
    let text = format!(
        r#"
[[sources]]
name = "zammad"
kind = "webhook"
mapping = "{}"
secret = "{ZAMMAD_SECRET}"

[[sources]]
name = "glpi"
kind = "webhook"
mapping = "{}"
secret = "{GLPI_SECRET}"

[[sources]]
name = "glpi-followups"
kind = "webhook"
mapping = "{}"
secret = "{GLPI_SECRET}"

[[sources]]
name = "jsm"
kind = "webhook"
mapping = "{}"
secret = "{JSM_SECRET}"

[[sources]]
name = "servicenow"
kind = "webhook"
mapping = "{}"
"#,
        m("zammad.toml"),
        m("glpi-tickets.toml"),
        m("glpi-followups.toml"),
        m("jsm.toml"),
        m("servicenow.toml"),
    );
    let path = dir.join("deskwatch.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The fixtures of a product, in order.
fn fixtures(product: &str) -> Vec<(String, String)> {
    let dir = root().join("tests/fixtures/webhooks").join(product);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

fn hmac_hex<M: Mac + hmac::digest::KeyInit>(key: &str, parts: &[&[u8]]) -> String {
    let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key.as_bytes()).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The headers each product signs its requests with.
fn signed(source: &str, body: &str) -> Vec<(String, String)> {
    match source {
        "zammad" => vec![(
            "X-Hub-Signature".into(),
            format!(
                "sha1={}",
                hmac_hex::<Hmac<sha1::Sha1>>(ZAMMAD_SECRET, &[body.as_bytes()])
            ),
        )],
        "glpi" | "glpi-followups" => {
            let stamp = "1793610000";
            vec![
                (
                    "X-GLPI-signature".into(),
                    hmac_hex::<Hmac<sha2::Sha256>>(
                        GLPI_SECRET,
                        &[body.as_bytes(), stamp.as_bytes()],
                    ),
                ),
                ("X-GLPI-timestamp".into(), stamp.into()),
            ]
        }
        "jsm" => vec![(
            "X-Hub-Signature".into(),
            format!(
                "sha256={}",
                hmac_hex::<Hmac<sha2::Sha256>>(JSM_SECRET, &[body.as_bytes()])
            ),
        )],
        _ => Vec::new(),
    }
}

/// POST with extra headers; the status and the body as JSON.
fn post(server: &Server, path: &str, headers: &[(String, String)], body: &str) -> (u16, Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(&server.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The source a fixture goes to.
fn source_of(product: &str, fixture: &str) -> String {
    if product == "glpi" && fixture.contains("followup") {
        "glpi-followups".into()
    } else {
        product.into()
    }
}

/// Sends a product's fixtures in order; every one makes events.
fn deliver(server: &Server, product: &str) {
    for (name, body) in fixtures(product) {
        let source = source_of(product, &name);
        let (status, reply) = post(
            server,
            &format!("/v1/hooks/{source}"),
            &signed(&source, &body),
            &body,
        );
        assert_eq!(status, 200, "{product}/{name}: {reply}");
        assert_eq!(reply["outcome"], "events", "{product}/{name}: {reply}");
        assert_eq!(reply["rejected"], 0, "{product}/{name}: {reply}");
    }
}

/// The ticket's row of `tickets`.
fn ticket(server: &Server, id: &str) -> Value {
    let rows = server.sql(&format!(
        "select status, priority, channel, category, requester, assignment_group, agent, \
         cast(first_response_at as varchar) as first_response, reopen_count, \
         resolution_code, handle_minutes from tickets where ticket_id = '{id}'"
    ));
    rows[0].clone()
}

/// Comments of a ticket by public flag and author role.
fn comments(server: &Server, id: &str) -> Vec<(bool, String)> {
    let rows = server.sql(&format!(
        "select public, actor_role from ticket_events where ticket_id = '{id}' \
         and event_type = 'ticket.commented' order by occurred_at"
    ));
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["public"].as_bool().unwrap(),
                r["actor_role"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A ticket's events in log order: `type:status after`, and for comments `:public:role`.
fn events(server: &Server, id: &str) -> Vec<String> {
    let rows = server.sql(&format!(
        "select replace(event_type, 'ticket.', '') || ':' || status_after \
         || coalesce(':' || cast(public as varchar) || ':' || actor_role, '') as e \
         from ticket_events where ticket_id = '{id}' order by log_offset"
    ));
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["e"].as_str().unwrap().to_string())
        .collect()
}

/// Each mapping turns its fixtures into exactly these events.
fn check_events(server: &Server) {
    let expected: [(&str, &[&str]); 4] = [
        (
            "ZM-10081",
            &[
                "created:new",
                "assigned:open",
                "status_changed:in_progress",
                "commented:in_progress:true:agent",
                "work_logged:in_progress",
                "commented:in_progress:false:agent",
                "work_logged:in_progress",
                "status_changed:pending_customer",
                "status_changed:in_progress",
                "commented:in_progress:true:requester",
                "priority_changed:in_progress",
                "resolved:resolved",
                "commented:resolved:true:agent",
                "reopened:open",
                "status_changed:in_progress",
                "commented:in_progress:true:requester",
                "resolved:resolved",
            ],
        ),
        (
            "GLPI-42",
            &[
                "created:new",
                "assigned:open",
                "status_changed:in_progress",
                "commented:in_progress:true:agent",
                "status_changed:pending_customer",
                "commented:pending_customer:false:agent",
                "status_changed:in_progress",
                "resolved:resolved",
                "closed:closed",
            ],
        ),
        (
            "IT-12",
            &[
                "created:new",
                "status_changed:open",
                "assigned:open",
                "status_changed:in_progress",
                "commented:in_progress:true:agent",
                "status_changed:pending_customer",
                "commented:pending_customer:true:requester",
                "status_changed:in_progress",
                "commented:in_progress:false:agent",
                "resolved:resolved",
                "reopened:open",
                "status_changed:in_progress",
                "priority_changed:in_progress",
                "resolved:resolved",
                "closed:closed",
            ],
        ),
        (
            "SN-INC0010042",
            &[
                "created:new",
                "assigned:open",
                "status_changed:in_progress",
                "commented:in_progress:true:agent",
                "status_changed:pending_customer",
                "status_changed:in_progress",
                "commented:in_progress:true:requester",
                "commented:in_progress:false:agent",
                "resolved:resolved",
                "closed:closed",
            ],
        ),
    ];
    for (id, want) in expected {
        assert_eq!(events(server, id), want, "{id}");
    }
}

fn check_products(server: &Server) {
    check_events(server);
    let z = ticket(server, "ZM-10081");
    assert_eq!(z["status"], "resolved", "{z}");
    assert_eq!(z["handle_minutes"], 15, "time accounted on two articles");
    assert_eq!(z["priority"], "P2");
    assert_eq!(z["channel"], "portal");
    assert_eq!(z["requester"], "emily@example.com");
    assert_eq!(z["assignment_group"], "Service Desk");
    assert_eq!(z["agent"], "emma@desk.example");
    assert_eq!(z["reopen_count"], 1);
    assert!(
        z["first_response"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-02T08:41:00"),
        "the first public agent article is the first response: {z}"
    );
    let agent = |public| (public, "agent".to_string());
    let requester = (true, "requester".to_string());
    assert_eq!(
        comments(server, "ZM-10081"),
        vec![
            agent(true),
            agent(false),
            requester.clone(),
            agent(true),
            requester.clone()
        ],
        "the first article is the description, not a comment"
    );

    let g = ticket(server, "GLPI-42");
    assert_eq!(g["status"], "closed", "{g}");
    assert_eq!(g["priority"], "P2");
    assert_eq!(g["category"], "Réseau > VPN");
    assert_eq!(g["requester"], "jdupont");
    assert_eq!(g["assignment_group"], "Réseau");
    assert_eq!(g["agent"], "mmartin");
    assert!(
        g["first_response"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-02T08:49:00"),
        "{g}"
    );
    assert_eq!(comments(server, "GLPI-42"), vec![agent(true), agent(false)]);

    let j = ticket(server, "IT-12");
    assert_eq!(j["status"], "closed", "{j}");
    assert_eq!(j["priority"], "P2");
    assert_eq!(j["category"], "[System] Incident");
    assert_eq!(j["assignment_group"], "IT Support");
    assert_eq!(j["agent"], "Bob Agent");
    assert_eq!(j["reopen_count"], 1);
    assert_eq!(j["resolution_code"], "Done");
    assert!(
        j["first_response"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-02T08:44:00"),
        "{j}"
    );
    assert_eq!(
        comments(server, "IT-12"),
        vec![agent(true), requester.clone(), agent(false)]
    );

    let s = ticket(server, "SN-INC0010042");
    assert_eq!(s["status"], "closed", "{s}");
    assert_eq!(s["priority"], "P3");
    assert_eq!(s["channel"], "portal");
    assert_eq!(s["assignment_group"], "Service Desk");
    assert_eq!(s["agent"], "Beth Anglin");
    assert_eq!(s["resolution_code"], "Solved (Permanently)");
    assert!(
        s["first_response"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-02T08:40:00"),
        "{s}"
    );
    assert_eq!(
        comments(server, "SN-INC0010042"),
        vec![agent(true), requester, agent(false)]
    );
}

#[test]
fn desks_that_push_are_followed_through_their_webhooks() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let data = dir.path().join("data");
    let server = Server::start(&config, &data);
    wait_for(30, || server.ready().then_some(())).expect("ready");
    for product in ["zammad", "glpi", "jsm", "servicenow"] {
        deliver(&server, product);
    }
    check_products(&server);
    let events = server.count("ticket_events");

    // A payload sent again derives nothing; an older one than the ticket's last is refused.
    let zammad = fixtures("zammad");
    let (last_name, last) = zammad.last().unwrap().clone();
    let (status, reply) = post(&server, "/v1/hooks/zammad", &signed("zammad", &last), &last);
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (200, Some("unchanged")),
        "{last_name}: {reply}"
    );
    // The reply of 03 sent again with a later update: its comment and time count once.
    let mut resent: Value = serde_json::from_str(&last).unwrap();
    let reply_03: Value = serde_json::from_str(&zammad[2].1).unwrap();
    resent["article"] = reply_03["article"].clone();
    resent["ticket"]["updated_at"] = "2026-11-02T12:45:00.000Z".into();
    let resent = resent.to_string();
    let (status, reply) = post(
        &server,
        "/v1/hooks/zammad",
        &signed("zammad", &resent),
        &resent,
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["accepted"].as_u64(), reply["duplicates"].as_u64()),
        (Some(0), Some(2)),
        "{reply}"
    );
    assert_eq!(ticket(&server, "ZM-10081")["handle_minutes"], 15);
    let older = &zammad[2].1;
    let (status, reply) = post(&server, "/v1/hooks/zammad", &signed("zammad", older), older);
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"]["code"], "out_of_order");

    // A wrong or missing signature is refused before anything is read; nothing is written.
    let tampered = last.replace("\"closed\"", "\"open\"");
    let (status, reply) = post(
        &server,
        "/v1/hooks/zammad",
        &signed("zammad", &last),
        &tampered,
    );
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (401, Some("bad_signature")),
        "{reply}"
    );
    let (status, _) = post(&server, "/v1/hooks/jsm", &[], &fixtures("jsm")[0].1);
    assert_eq!(status, 401);
    let glpi = &fixtures("glpi")[1].1;
    let mut headers = signed("glpi", glpi);
    headers[1].1 = "1793610001".into();
    let (status, _) = post(&server, "/v1/hooks/glpi", &headers, glpi);
    assert_eq!(status, 401, "the timestamp is signed with the body");
    // Not JSON, no such source, a payload without a ticket.
    let (status, reply) = post(&server, "/v1/hooks/servicenow", &[], "{not json");
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (400, Some("invalid_body"))
    );
    let (status, _) = post(&server, "/v1/hooks/nope", &[], "{}");
    assert_eq!(status, 404);
    let (status, reply) = post(&server, "/v1/hooks/servicenow", &[], r#"{"state": "New"}"#);
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (422, Some("missing_ticket_id"))
    );
    // A followup of a ticket deskwatch does not know creates nothing.
    let orphan = fixtures("glpi")[2]
        .1
        .replace("\"items_id\": 42", "\"items_id\": 4242");
    let (status, reply) = post(
        &server,
        "/v1/hooks/glpi-followups",
        &signed("glpi-followups", &orphan),
        &orphan,
    );
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (422, Some("unknown_ticket"))
    );
    assert_eq!(
        server.count("ticket_events"),
        events,
        "refused payloads write nothing"
    );

    let (_, metrics) = server.get("/metrics").unwrap();
    assert!(
        metrics.contains(r#"deskwatch_source_errors_total{kind="signature",source="zammad"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"deskwatch_source_events_total{source="jsm"} 15"#),
        "{metrics}"
    );
    let (_, ready) = server.get("/readyz").unwrap();
    assert!(ready.contains("source zammad: webhook"), "{ready}");

    // kill -9, restart: what deskwatch knows of each ticket comes back from its log.
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let server = Server::start(&config, &data);
    wait_for(60, || server.ready().then_some(())).expect("ready after restart");
    assert_eq!(server.count("ticket_events"), events);
    let (status, reply) = post(&server, "/v1/hooks/zammad", &signed("zammad", &last), &last);
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (200, Some("unchanged")),
        "{reply}"
    );
    // The customer writes once more: a reopen, derived from the state read back.
    let again = last
        .replace("\"state\": \"closed\"", "\"state\": \"open\"")
        .replace("2026-11-02T12:30:00.000Z\"", "2026-11-02T13:00:00.000Z\"");
    assert_ne!(again, last);
    let (status, reply) = post(
        &server,
        "/v1/hooks/zammad",
        &signed("zammad", &again),
        &again,
    );
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["accepted"], 2, "reopened and in progress: {reply}");
    let z = ticket(&server, "ZM-10081");
    assert_eq!(
        (z["status"].as_str(), z["reopen_count"].as_u64()),
        (Some("in_progress"), Some(2))
    );
    check_remaining(&server);
}

/// The other products' tickets are as they were before the restart.
fn check_remaining(server: &Server) {
    for (id, status) in [
        ("GLPI-42", "closed"),
        ("IT-12", "closed"),
        ("SN-INC0010042", "closed"),
    ] {
        assert_eq!(ticket(server, id)["status"], status, "{id}");
    }
}
