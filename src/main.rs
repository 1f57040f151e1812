//! The `deskwatch` binary: parses the command line, starts logging, runs the subcommand.

mod cli;

use clap::Parser;

/// mimalloc rather than glibc's allocator: the reader and applier threads of `ingest` allocate
/// and free millions of small strings, and glibc spent a quarter of the applier's time in
/// malloc, free and their arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
