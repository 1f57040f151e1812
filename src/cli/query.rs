//! `deskwatch query`.

use std::process::ExitCode;

use anyhow::Context;
use deskwatch::engine::Engine;
use deskwatch::projection::Snapshot;
use deskwatch::query::{OutputFormat, QueryEngine, render};

use super::DataDir;

/// Arguments of `query`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// The SQL (SELECT only). Tables: tickets, ticket_events, sla_clocks, ticket_clusters,
    /// recurring_issues.
    sql: String,
}

/// Opens the data directory and returns its current snapshot.
pub fn load_snapshot(data: &DataDir) -> anyhow::Result<Snapshot> {
    let setup = data.setup()?;
    let mut engine = Engine::open_with(&data.data_dir, setup.rules, setup.text).with_context(|| {
        format!(
            "cannot open data directory {} (if `deskwatch serve` runs on it, query it with POST /v1/query)",
            data.data_dir.display()
        )
    })?;
    Ok(engine.snapshot(&Snapshot::default()))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let snapshot = load_snapshot(&args.data)?;
    let query = QueryEngine::new()?;
    query.set_recurring(args.data.config()?.recurring.view());
    query.publish(snapshot);
    let batches = super::runtime()?.block_on(query.sql(&args.sql))?;
    print!("{}", render(&batches, args.format)?);
    if args.format == OutputFormat::Table {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
