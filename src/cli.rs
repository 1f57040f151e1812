//! Command-line interface: one file per subcommand under `cli/`.

mod bench;
mod bench_cost;
mod bench_import;
mod bench_kafka;
mod bench_recurring;
mod bench_sla;
mod cost;
mod demo;
mod erlang;
mod export;
mod import;
mod ingest;
mod query;
mod recurring;
mod replay;
mod serve;
mod simulate;
mod sink;
mod sla;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// deskwatch — event-sourced analytics and SLA monitoring for IT help desks.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a realistic simulated event stream (NDJSON) and its ground truth.
    Simulate(simulate::Args),
    /// Append events from an NDJSON file (or stdin) to the data directory.
    Ingest(ingest::Args),
    /// Import another help desk's export (CSV or XES, gzip or plain) through a mapping file.
    Import(import::Args),
    /// Run a read-only SQL query over the projected tables.
    Query(query::Args),
    /// List at-risk (or, with --breaches, breached) SLA clocks.
    Sla(sla::Args),
    /// Recurring issues of a window: problem and knowledge-base candidates, top calls.
    Recurring(recurring::Args),
    /// Agents needed for a queue (Erlang C): P(wait), service level, ASA, occupancy.
    Erlang(erlang::Args),
    /// This month in-house against outsourced, from the observed workload, with what-ifs.
    Cost(cost::Args),
    /// Replay the stored history under another configuration and compare: SLA, recurring, cost.
    Replay(replay::Args),
    /// Write the projected tables as Parquet files.
    Export(export::Args),
    /// Print the JSON Schema of one event.
    Schema,
    /// Run the HTTP service (API, /metrics, health).
    Serve(serve::Args),
    /// Run the service with a live simulated help desk feeding it.
    Demo(demo::Args),
    /// Measure append, replay, memory and SQL (build with --release).
    Bench(bench::Args),
}

/// Output of the commands that print one report (`erlang`, `cost`, `recurring`, `replay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text.
    Table,
    /// One JSON object.
    Json,
}

/// Data directory argument shared by the commands that read or write one.
#[derive(Debug, clap::Args)]
pub struct DataDir {
    /// Data directory (event log and checkpoints).
    #[arg(long, env = "DESKWATCH_DATA_DIR", default_value = "./deskwatch-data")]
    pub data_dir: PathBuf,
    /// TOML configuration file: its SLA policies value the clocks; for `ingest`, with
    /// `[log] kind = "kafka"` the events are produced to the topic instead.
    #[arg(long, env = "DESKWATCH_CONFIG")]
    pub config: Option<PathBuf>,
}

impl DataDir {
    /// The configuration of `--config` (or the defaults).
    pub fn config(&self) -> anyhow::Result<deskwatch::config::Config> {
        Ok(deskwatch::config::Config::load(self.config.as_deref())?)
    }

    /// The SLA rules and text settings of `--config` (or the defaults).
    pub fn setup(&self) -> anyhow::Result<deskwatch::projection::Setup> {
        Ok(self.config()?.setup())
    }
}

impl Cli {
    /// Long-running service commands log at info; one-shot commands only warn.
    pub fn is_service(&self) -> bool {
        matches!(self.command, Command::Serve(_) | Command::Demo(_))
    }
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Simulate(a) => simulate::run(a),
        Command::Ingest(a) => ingest::run(a),
        Command::Import(a) => import::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Query(a) => query::run(a),
        Command::Export(a) => export::run(a),
        Command::Sla(a) => sla::run(a),
        Command::Recurring(a) => recurring::run(a),
        Command::Erlang(a) => erlang::run(a),
        Command::Cost(a) => cost::run(a),
        Command::Schema => {
            print!("{}", deskwatch::event::SCHEMA_JSON);
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(a) => serve::run(a),
        Command::Demo(a) => demo::run(a),
        Command::Bench(a) => bench::run(a),
    }
}

/// A multi-threaded tokio runtime for the async commands.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        // SQL planning recurses over expressions: room for the deepest a statement may be
        // (query::MAX_OPERATORS) even in a debug build.
        .thread_stack_size(8 << 20)
        .build()?)
}

#[cfg(test)]
mod tests {
    /// clap's own consistency checks (unique ids and groups, valid defaults) for every
    /// subcommand; they only run in debug builds, so a release demo would not notice.
    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
