//! The dashboards and deployment files: valid, consistent, and using only metrics deskwatch
//! really exports (checked against a running service's `/metrics`).

mod common;

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::process::Command;

use common::{Server, tool, wait_for, webhook_sink};
use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    out
}

/// `deskwatch_*` metric names in a text (recording rules, `deskwatch:…`, are not metrics).
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("deskwatch_") {
        let start = i + at;
        let ok_before = start == 0
            || !(b[start - 1].is_ascii_alphanumeric()
                || b[start - 1] == b'_'
                || b[start - 1] == b':');
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        if ok_before {
            let name = &text[start..end];
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            out.insert(base.to_string());
        }
        i = end;
    }
    out
}

fn exprs_of_dashboard(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "expr" {
                    out.push(x.as_str().unwrap_or_default().to_string());
                } else {
                    exprs_of_dashboard(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| exprs_of_dashboard(x, out)),
        _ => {}
    }
}

#[test]
fn dashboards_are_valid_with_stable_unique_uids_and_a_datasource_variable() {
    let mut uids = HashSet::new();
    let dashboards = files("dashboards", "json");
    assert_eq!(
        dashboards.len(),
        4,
        "three personas and the service's health"
    );
    for path in dashboards {
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let uid = v["uid"].as_str().unwrap();
        assert_eq!(
            Some(uid),
            path.file_stem().and_then(|s| s.to_str()),
            "uid = file name"
        );
        assert!(uids.insert(uid.to_string()), "duplicate uid {uid}");
        let vars = v["templating"]["list"].as_array().unwrap();
        assert!(
            vars.iter()
                .any(|t| t["type"] == "datasource" && t["name"] == "datasource")
        );
        let panels = v["panels"].as_array().unwrap();
        assert!(panels.len() >= 6, "{uid}");
        let mut ids = HashSet::new();
        for p in panels {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{uid}: duplicate panel id"
            );
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{uid}: {}",
                p["title"]
            );
            assert!(!p["targets"].as_array().unwrap().is_empty());
        }
    }
    let provisioning =
        std::fs::read_to_string(repo().join("dashboards/provisioning/dashboards.yml")).unwrap();
    assert!(provisioning.contains("/var/lib/grafana/dashboards/deskwatch"));
}

#[test]
fn the_kubernetes_rules_are_the_prometheus_rules() {
    let k8s =
        std::fs::read_to_string(repo().join("deploy/kubernetes/deskwatch-rules.yaml")).unwrap();
    for name in ["deskwatch-sla.rules.yml", "deskwatch-ops.rules.yml"] {
        let text = std::fs::read_to_string(repo().join("deploy/prometheus").join(name)).unwrap();
        let body = &text[text.find("groups:\n").unwrap() + "groups:\n".len()..];
        let indented: String = body
            .lines()
            .map(|l| {
                if l.trim().is_empty() {
                    "\n".to_string()
                } else {
                    format!("  {l}\n")
                }
            })
            .collect();
        assert!(
            k8s.contains(&indented),
            "{name} is not in deskwatch-rules.yaml: run scripts/dashboards.py"
        );
    }
    let manifests =
        std::fs::read_to_string(repo().join("deploy/kubernetes/deskwatch.yaml")).unwrap();
    for part in [
        "kind: StatefulSet",
        "livenessProbe",
        "path: /healthz",
        "readinessProbe",
        "path: /readyz",
        "kind: Service",
        "kind: ConfigMap",
    ] {
        assert!(manifests.contains(part), "{part}");
    }
}

#[test]
fn prometheus_configs_and_alertmanager_example_pass_their_tools() {
    let Some(promtool) = tool("promtool") else {
        return;
    };
    // The compose stack's config, with the rule files beside it as they are mounted.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo().join("deploy/compose/prometheus.yml"),
        dir.path().join("prometheus.yml"),
    )
    .unwrap();
    for r in ["deskwatch-sla.rules.yml", "deskwatch-ops.rules.yml"] {
        std::fs::copy(repo().join("deploy/prometheus").join(r), dir.path().join(r)).unwrap();
    }
    for (args, cwd) in [
        (
            vec!["check", "config", "prometheus.yml"],
            dir.path().to_path_buf(),
        ),
        (
            vec!["check", "config", "prometheus.yml"],
            repo().join("deploy/prometheus"),
        ),
    ] {
        let out = Command::new(&promtool)
            .args(&args)
            .current_dir(&cwd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?} in {}: {}{}",
            cwd.display(),
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

/// Families that exist only with `[log] kind = "kafka"`; tests/kafka.rs checks them there.
const KAFKA_ONLY: &[&str] = &[
    "deskwatch_dead_letters_total",
    "deskwatch_kafka_consumer_lag_records",
    "deskwatch_kafka_errors_total",
];

#[test]
fn every_metric_in_dashboards_and_rules_is_exported() {
    let mut used = BTreeSet::new();
    for path in files("dashboards", "json") {
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut exprs = Vec::new();
        exprs_of_dashboard(&v, &mut exprs);
        for e in exprs {
            used.extend(metric_names(&e));
        }
    }
    for path in files("deploy/prometheus", "yml")
        .into_iter()
        .chain(files("deploy/kubernetes", "yaml"))
    {
        if path.to_string_lossy().contains(".test.") {
            continue;
        }
        used.extend(metric_names(&std::fs::read_to_string(&path).unwrap()));
    }
    assert!(used.len() > 30, "{used:?}");
    // A service with everything moving: simulated history with breaches and recurring problems,
    // a rejected event, and alert receivers (a live webhook and a dead one).
    let tmp = tempfile::tempdir().unwrap();
    let data = common::ingested(tmp.path(), 6000, 170, 5);
    let (sink, _received) = webhook_sink();
    let sink = format!("http://{sink}/hook");
    let dead = format!("http://127.0.0.1:{}/nobody", common::free_port());
    let config = tmp.path().join("deploy.toml");
    std::fs::write(
        &config,
        format!("[cost]\nrefresh-seconds = 1\n[recurring]\nrefresh-seconds = 1\n[sla.alerts]\nwebhooks = [\"{sink}\", \"{dead}\"]\ntimeout-seconds = 1\n"),
    )
    .unwrap();
    let server = Server::start(&config, &data);
    let (status, _) = server.post("/v1/events", "{\"event_id\": \"x\"}\n");
    assert_eq!(status, 200);
    let missing = |text: &str| -> Vec<String> {
        let exported = metric_names(text);
        used.iter()
            .filter(|n| !exported.contains(*n) && !KAFKA_ONLY.contains(&n.as_str()))
            .cloned()
            .collect()
    };
    let result = wait_for(60, || {
        let text = server.get("/metrics")?.1;
        missing(&text).is_empty().then_some(())
    });
    if result.is_none() {
        let text = server.get("/metrics").map(|r| r.1).unwrap_or_default();
        panic!(
            "used in dashboards or rules but not exported: {:?}",
            missing(&text)
        );
    }
    server.stop();
}

#[test]
fn the_kubernetes_config_map_is_a_valid_configuration() {
    let manifests =
        std::fs::read_to_string(repo().join("deploy/kubernetes/deskwatch.yaml")).unwrap();
    let start = manifests.find("deskwatch.toml: |\n").unwrap() + "deskwatch.toml: |\n".len();
    let toml: String = manifests[start..]
        .lines()
        .take_while(|l| l.starts_with("    ") || l.trim().is_empty())
        .map(|l| format!("{}\n", l.strip_prefix("    ").unwrap_or(l)))
        .collect();
    assert!(toml.contains("kind = \"kafka\""), "{toml}");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("deskwatch.toml");
    std::fs::write(&path, &toml).unwrap();
    // Any command that loads the configuration validates it (keys, ranges, Kafka settings),
    // with the tokens the Secret puts in the environment.
    let out = common::deskwatch()
        .env("DESKWATCH_ADMIN_TOKEN", "0123456789abcdef0123")
        .env("DESKWATCH_READ_TOKEN", "fedcba9876543210fedc")
        .args([
            "query",
            "--data-dir",
            tmp.path().join("data").to_str().unwrap(),
            "--config",
            path.to_str().unwrap(),
            "select 1 as one",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{toml}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_container_requires_tokens_from_the_environment() {
    let config = repo().join("deploy/deskwatch.toml");
    let dockerfile = std::fs::read_to_string(repo().join("deploy/Dockerfile")).unwrap();
    assert!(dockerfile.contains("COPY deploy/deskwatch.toml /etc/deskwatch/deskwatch.toml"));
    assert!(dockerfile.contains(r#"CMD ["serve", "--config", "/etc/deskwatch/deskwatch.toml"]"#));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Without the variables, the container does not start and names what is missing.
    let out = common::deskwatch()
        .env_remove("DESKWATCH_ADMIN_TOKEN")
        .env_remove("DESKWATCH_READ_TOKEN")
        .args(["serve", "--config", config.to_str().unwrap(), "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("DESKWATCH_ADMIN_TOKEN"), "{err}");
    // With them, the configuration loads (a query command validates it).
    let out = common::deskwatch()
        .env("DESKWATCH_ADMIN_TOKEN", "0123456789abcdef0123")
        .env("DESKWATCH_READ_TOKEN", "fedcba9876543210fedc")
        .args(["query", "--config", config.to_str().unwrap(), "--data-dir"])
        .arg(&data)
        .arg("select 1 as one")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The compose file refuses to start without the tokens in the environment.
    let compose =
        std::fs::read_to_string(repo().join("deploy/compose/docker-compose.yml")).unwrap();
    assert!(compose.contains("${DESKWATCH_ADMIN_TOKEN:?"), "{compose}");
}

#[test]
fn the_compose_load_balancer_sends_traffic_to_ready_replicas() {
    let cfg = repo().join("deploy/compose/haproxy.cfg");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("option httpchk GET /readyz"), "{text}");
    let compose =
        std::fs::read_to_string(repo().join("deploy/compose/docker-compose.yml")).unwrap();
    for replica in ["deskwatch-1", "deskwatch-2"] {
        assert!(
            text.contains(&format!("server {replica} {replica}:8080 check")),
            "{replica} is not balanced"
        );
        assert!(
            compose.contains(&format!("  {replica}:")),
            "{replica} is not in compose"
        );
    }
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| common::tool("haproxy"));
    let Some(haproxy) = haproxy else { return };
    let out = std::process::Command::new(haproxy)
        .args(["-c", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
