//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The deskwatch binary built for these tests.
pub fn deskwatch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_deskwatch"));
    c.env("RUST_LOG", "warn");
    c
}

/// Runs deskwatch with `args`, returning its output (whatever the exit code).
pub fn run(args: &[&str]) -> Output {
    deskwatch().args(args).output().expect("deskwatch runs")
}

/// Runs a query and returns stdout.
pub fn query(data_dir: &Path, format: &str, sql: &str) -> String {
    let out = run(&[
        "query",
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--format",
        format,
        sql,
    ]);
    assert!(
        out.status.success(),
        "query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Simulates `tickets` tickets with `seed` into `path`.
pub fn simulate(path: &Path, tickets: u64, seed: u64) {
    let out = run(&[
        "simulate",
        "--tickets",
        &tickets.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Simulated events with their JSON bytes.
pub fn simulated(tickets: u64, seed: u64) -> Vec<(deskwatch::event::TicketEvent, Vec<u8>)> {
    deskwatch::simulate::Simulator::new(deskwatch::simulate::Params {
        tickets,
        seed,
        ..Default::default()
    })
    .map(|e| {
        let raw = e.to_json();
        (e, raw)
    })
    .collect()
}

/// Submissions borrowing `events`, for `Engine::submit`.
pub fn submissions(
    events: &[(deskwatch::event::TicketEvent, Vec<u8>)],
) -> Vec<deskwatch::engine::Submission<'_>> {
    events
        .iter()
        .map(|(event, raw)| deskwatch::engine::Submission { event, raw })
        .collect()
}
