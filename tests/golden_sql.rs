//! Golden SQL: a fixed simulated stream, the queries in `tests/sql/*.sql`, and their expected
//! CSV output in `tests/sql/*.csv`. Run with `DESKWATCH_BLESS=1` to rewrite the expectations
//! after an intended change, and review the diff.

mod common;

use std::path::Path;

use common::{simulated, submissions};

use deskwatch::engine::Engine;
use deskwatch::projection::Snapshot;
use deskwatch::query::{OutputFormat, QueryEngine, render};

#[tokio::test]
async fn golden_queries() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(dir.path(), rules()).unwrap();
    let events = simulated(300, 21);
    engine.submit(submissions(&events)).unwrap();
    let query = QueryEngine::new().unwrap();
    query.publish(engine.snapshot(&Snapshot::default()));

    let cases = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let bless = std::env::var("DESKWATCH_BLESS").is_ok_and(|v| v == "1");
    let mut files: Vec<_> = std::fs::read_dir(&cases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 6);
    let mut failures = Vec::new();
    for sql_path in files {
        let sql = std::fs::read_to_string(&sql_path).unwrap();
        let batches = query.sql(&sql).await.unwrap();
        let got = render(&batches, OutputFormat::Csv).unwrap();
        let expected_path = sql_path.with_extension("csv");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}\n--- got\n{got}",
                sql_path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn rules() -> std::sync::Arc<deskwatch::sla::Rules> {
    deskwatch::config::Config::load(None).unwrap().sla_rules()
}
