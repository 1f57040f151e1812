//! The `deskwatch` binary: parses the command line, starts logging, runs the subcommand.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    deskwatch::telemetry::init_logging(if args.is_service() { "info" } else { "warn" });
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
