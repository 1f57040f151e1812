//! `deskwatch ingest`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use deskwatch::config::Config;
use deskwatch::event::TicketEvent;
use deskwatch::projection::Outcome;
use indicatif::{ProgressBar, ProgressStyle};

use super::DataDir;
use super::sink::Sink;

/// Arguments of `ingest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// NDJSON file of events, or `-` for standard input.
    input: PathBuf,
    /// Events per durable append.
    #[arg(long, default_value_t = 8192)]
    batch: usize,
    /// Write a checkpoint after this many events (and always at the end).
    #[arg(long, default_value_t = 500_000)]
    checkpoint_every: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Default, serde::Serialize)]
struct Summary {
    lines: u64,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    /// Kafka: events the broker acknowledged (decided later by the projection).
    appended: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (reader, size): (Box<dyn Read>, u64) = if args.input.as_os_str() == "-" {
        (Box::new(std::io::stdin()), 0)
    } else {
        let f = File::open(&args.input)
            .with_context(|| format!("cannot open {}", args.input.display()))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), size)
    };
    let config = Config::load(args.data.config.as_deref())?;
    let mut sink = Sink::open(&config, &args.data.data_dir)?;
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template(
            "{spinner} ingest [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut input = BufReader::with_capacity(1 << 20, reader);
    let mut summary = Summary::default();
    let mut line = Vec::new();
    let mut pending: Vec<(u64, TicketEvent, Vec<u8>)> = Vec::with_capacity(args.batch);
    loop {
        line.clear();
        let n = input.read_until(b'\n', &mut line)?;
        if n > 0 {
            bar.inc(n as u64);
            summary.lines += 1;
            let text = line.trim_ascii();
            if !text.is_empty() {
                match TicketEvent::from_json(text) {
                    Ok(event) => pending.push((summary.lines, event, text.to_vec())),
                    Err(e) => {
                        summary.rejected += 1;
                        bar.suspend(|| {
                            eprintln!("line {}: rejected ({}) {}", summary.lines, e.reason, e)
                        });
                    }
                }
            }
        }
        if pending.len() >= args.batch || (n == 0 && !pending.is_empty()) {
            write(&mut sink, &mut pending, &mut summary, &bar)?;
            sink.checkpoint_every(args.checkpoint_every)?;
        }
        if n == 0 {
            break;
        }
    }
    sink.checkpoint_every(0)?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else if sink.is_kafka() {
        println!(
            "{} lines: {} appended to Kafka topic {}, {} rejected",
            summary.lines, summary.appended, config.log.kafka.topic, summary.rejected
        );
    } else {
        println!(
            "{} lines: {} accepted, {} duplicate, {} rejected",
            summary.lines, summary.accepted, summary.duplicates, summary.rejected
        );
    }
    Ok(if summary.rejected > 0 {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes the pending events and counts what the log decided; empties `pending`.
fn write(
    sink: &mut Sink,
    pending: &mut Vec<(u64, TicketEvent, Vec<u8>)>,
    summary: &mut Summary,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let refs: Vec<(&TicketEvent, &[u8])> = pending
        .iter()
        .map(|(_, event, raw)| (event, raw.as_slice()))
        .collect();
    let outcomes = sink.write(&refs)?;
    for ((line_no, _, _), outcome) in pending.iter().zip(outcomes) {
        match outcome {
            None => summary.appended += 1,
            Some(Outcome::Applied) => summary.accepted += 1,
            Some(Outcome::Duplicate) => summary.duplicates += 1,
            Some(Outcome::Rejected(r)) => {
                summary.rejected += 1;
                bar.suspend(|| {
                    eprintln!(
                        "line {line_no}: rejected ({}) {}: {}",
                        r.reason, r.field, r.message
                    )
                });
            }
        }
    }
    pending.clear();
    Ok(())
}
