//! `deskwatch simulate`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use deskwatch::simulate::{Params, Simulator};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Number of tickets to create.
    #[arg(long, default_value_t = 1000)]
    tickets: u64,
    /// Random seed; the same seed gives the same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output NDJSON file; the ground truth goes to FILE.truth.json.
    #[arg(long)]
    out: PathBuf,
    /// Average tickets per day (sets the simulated time span).
    #[arg(long, default_value_t = 400.0)]
    per_day: f64,
    /// Simulated start (RFC 3339); default 2026-01-05T00:00:00Z, a Monday.
    #[arg(long)]
    start: Option<DateTime<Utc>>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.per_day > 0.0, "--per-day must be positive");
    let mut params = Params {
        tickets: args.tickets,
        seed: args.seed,
        per_day: args.per_day,
        ..Params::default()
    };
    if let Some(start) = args.start {
        params.start = start;
    }
    let file =
        File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let bar = ProgressBar::new(args.tickets).with_style(
        ProgressStyle::with_template(
            "{spinner} simulate [{bar:40}] {pos}/{len} tickets {per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut sim = Simulator::new(params);
    let mut lines = 0u64;
    for event in sim.by_ref() {
        if event.event_type() == deskwatch::event::EventType::Created {
            bar.inc(1);
        }
        out.write_all(&event.to_json())?;
        out.write_all(b"\n")?;
        lines += 1;
    }
    out.flush()?;
    bar.finish_and_clear();
    let truth = sim.truth();
    let truth_path = PathBuf::from(format!("{}.truth.json", args.out.display()));
    std::fs::write(&truth_path, serde_json::to_vec_pretty(&truth)?)
        .with_context(|| format!("cannot write {}", truth_path.display()))?;
    println!(
        "wrote {lines} events for {} tickets to {} ({} recurring problems, {} expected breaches in {})",
        truth.tickets,
        args.out.display(),
        truth.recurring_problems.len(),
        truth.expected_breaches.len(),
        truth_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
