//! The web page in headless Chromium against a running `deskwatch serve` fed by the simulator:
//! every view loads, the numbers it shows are the API's, and a screenshot of each is saved.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Server, tool};
use serde_json::Value;

/// Renders `url` in headless Chromium, waiting for its requests; the DOM after scripts ran.
fn render(chromium: &Path, url: &str, screenshot: &Path, profile: &Path) -> String {
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--hide-scrollbars",
        "--window-size=1400,1700",
        "--virtual-time-budget=20000",
    ];
    let profile = format!("--user-data-dir={}", profile.display());
    let shot = Command::new(chromium)
        .args(common)
        .arg(&profile)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        screenshot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let out = Command::new(chromium)
        .args(common)
        .arg(&profile)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `data-value` of the element with `id`.
fn value(dom: &str, id: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| {
        panic!(
            "#{id} missing from the page:\n{}",
            &dom[..dom.len().min(3000)]
        )
    });
    let rest = &dom[at..];
    let v = rest.find("data-value=\"").expect("data-value") + "data-value=\"".len();
    rest[v..v + rest[v..].find('"').unwrap()]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn num(dom: &str, id: &str) -> f64 {
    value(dom, id)
        .parse()
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
}

fn api(server: &Server, path: &str) -> Value {
    let (status, text) = server.get(path).expect("the server answers");
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_view_shows_what_the_api_says() {
    let Some(chromium) = tool("chromium") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data = common::ingested(tmp.path(), 6000, 170, 5);
    let config = tmp.path().join("web.toml");
    std::fs::write(&config, "[cost]\nrefresh-seconds = 1\n").unwrap();
    let server = Server::start(&config, &data);
    let base = format!("http://{}/", server.addr);
    let dir = shots();
    let profile = tmp.path().join("chromium-profile");

    // IT manager.
    let dom = render(
        &chromium,
        &format!("{base}#/manager"),
        &dir.join("manager.png"),
        &profile,
    );
    let rec = api(&server, "/v1/recurring?limit=25");
    assert_eq!(
        num(&dom, "m-fingerprints"),
        rec["fingerprints"].as_f64().unwrap()
    );
    assert_eq!(
        num(&dom, "m-problems"),
        rec["problem_candidates"].as_f64().unwrap()
    );
    assert_eq!(num(&dom, "m-kb"), rec["kb_candidates"].as_f64().unwrap());
    assert!(
        rec["problem_candidates"].as_u64().unwrap() > 0,
        "the simulator injects problems"
    );
    let calls = api(&server, "/v1/top-calls?n=10");
    assert_eq!(
        value(&dom, "m-top-call"),
        calls["calls"][0]["label"].as_str().unwrap()
    );
    assert!(dom.contains("<svg"), "charts, not only tables");
    assert!(
        dom.contains("class=\"tag prb\""),
        "the problem candidates are listed"
    );

    // On-call lead: counts (the clocks move with the wall clock, so compare within a margin
    // only for the open ones: a clock can cross a threshold between the two reads).
    let dom = render(
        &chromium,
        &format!("{base}#/oncall"),
        &dir.join("oncall.png"),
        &profile,
    );
    let risk = api(&server, "/v1/sla/at-risk?limit=50")["count"]
        .as_f64()
        .unwrap();
    let shown = num(&dom, "o-at-risk");
    assert!((shown - risk).abs() <= 5.0, "page {shown}, API {risk}");
    let breaches = api(&server, "/v1/sla/breaches?limit=50")["count"]
        .as_f64()
        .unwrap();
    assert!((num(&dom, "o-breaches") - breaches).abs() <= 5.0);
    assert!(dom.contains("data-remaining="), "time left is shown");

    // Executive, with and without a what-if.
    let dom = render(
        &chromium,
        &format!("{base}#/executive"),
        &dir.join("executive.png"),
        &profile,
    );
    let cost = api(&server, "/v1/cost");
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-6 * b.abs().max(1.0);
    assert!(close(
        num(&dom, "e-in-house"),
        cost["month"]["in_house"].as_f64().unwrap()
    ));
    assert!(close(
        num(&dom, "e-outsourced"),
        cost["month"]["outsourced"].as_f64().unwrap()
    ));
    assert!(close(
        num(&dom, "e-fte"),
        cost["month"]["fte"].as_f64().unwrap()
    ));
    // Where each handle time comes from, and the results to check, as the API says.
    assert!(dom.contains("work logged "), "AHT source shown");
    let flags = cost["flags"].as_array().unwrap();
    assert_eq!(dom.contains("id=\"e-flags\""), !flags.is_empty());
    for f in flags {
        assert!(
            dom.contains(&format!("({})", f["subject"].as_str().unwrap())),
            "{f}"
        );
    }
    let dom = render(
        &chromium,
        &format!("{base}#/executive?volume_change=30&service_level=90"),
        &dir.join("executive-what-if.png"),
        &profile,
    );
    let what_if = api(&server, "/v1/cost?volume_change=30&service_level=90");
    assert!(close(
        num(&dom, "e-in-house"),
        what_if["month"]["in_house"].as_f64().unwrap()
    ));
    assert!(num(&dom, "e-in-house") > cost["month"]["in_house"].as_f64().unwrap());

    // A ticket with a breach: its page and SLA timeline.
    let id = server.sql(
        "select ticket_id from sla_clocks where breached_at is not null and stopped_at is not null order by ticket_id limit 1",
    )[0]["ticket_id"]
        .as_str()
        .unwrap()
        .to_string();
    let dom = render(
        &chromium,
        &format!("{base}#/ticket/{id}"),
        &dir.join("ticket.png"),
        &profile,
    );
    let t = api(&server, &format!("/v1/tickets/{id}"));
    assert_eq!(value(&dom, "t-id"), id);
    assert_eq!(
        value(&dom, "t-status"),
        t["ticket"]["status"].as_str().unwrap()
    );
    assert_eq!(
        num(&dom, "t-clocks"),
        t["sla"].as_array().unwrap().len() as f64
    );
    assert!(dom.contains("SLA timeline"));
    eprintln!("screenshots in {}", dir.display());
    server.stop();
}
