//! `deskwatch export`.

use std::path::PathBuf;
use std::process::ExitCode;

use deskwatch::query::export_parquet;

use super::DataDir;

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// Directory to write tickets.parquet and ticket_events.parquet into.
    #[arg(long)]
    parquet: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let snapshot = super::query::load_snapshot(&args.data)?;
    for (table, rows) in export_parquet(&snapshot, &args.parquet)? {
        println!(
            "{table}: {rows} rows → {}",
            args.parquet.join(format!("{table}.parquet")).display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
