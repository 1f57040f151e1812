//! `GET /v1/openapi.json` validates with a real validator (`openapi-spec-validator` from PyPI,
//! which scripts/test.sh installs) and lists every route of the router, with the error shape
//! the API really answers.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::Server;
use serde_json::Value;

/// The routes `api::router` registers, read from its source.
fn router_routes() -> BTreeSet<String> {
    let source =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api.rs")).unwrap();
    source
        .lines()
        .filter_map(|l| l.trim().strip_prefix(".route(\""))
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

fn validator_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("DESKWATCH_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "openapi-spec-validator (PyPI) is required with DESKWATCH_REQUIRE_TOOLS=1; run scripts/test.sh"
        );
        eprintln!(
            "NOTICE: openapi-spec-validator not installed; skipping (scripts/test.sh installs it)"
        );
    }
    ok
}

#[test]
fn the_openapi_description_validates_and_lists_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("deskwatch.toml");
    std::fs::write(&config, "").unwrap();
    let server = Server::start(&config, &dir.path().join("data"));
    let (status, text) = server.get("/v1/openapi.json").unwrap();
    assert_eq!(status, 200, "{text}");
    let spec: Value = serde_json::from_str(&text).unwrap();

    let paths: BTreeSet<String> = spec["paths"].as_object().unwrap().keys().cloned().collect();
    let routes = router_routes();
    assert!(
        routes.len() >= 15,
        "routes read from src/api.rs: {routes:?}"
    );
    assert_eq!(
        paths, routes,
        "the description and the router list different routes"
    );

    // Every /v1 route but this one documents the error shape, and the shape is what the API
    // answers.
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(
                op["responses"]["200"].is_object(),
                "{method} {path}: no 200"
            );
            if path.starts_with("/v1/") && path != "/v1/openapi.json" {
                let refs = op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .unwrap_or_default();
                assert_eq!(refs, "#/components/schemas/ErrorBody", "{method} {path}");
            }
        }
    }
    let detail = &spec["components"]["schemas"]["ErrorDetail"]["properties"];
    assert!(detail["code"].is_object() && detail["message"].is_object());
    let (status, answer) = server.post("/v1/query", r#"{"sql": "select nonsense from nowhere"}"#);
    assert_eq!(status, 400, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert!(answer["error"]["code"].is_string() && answer["error"]["message"].is_string());
    // Query parameters come from the request types.
    let at_risk: BTreeSet<&str> = spec["paths"]["/v1/sla/at-risk"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in [
        "tenant", "group", "priority", "clock", "from", "to", "limit",
    ] {
        assert!(at_risk.contains(name), "{name} missing from {at_risk:?}");
    }

    if !validator_available() {
        return;
    }
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
