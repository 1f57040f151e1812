//! `deskwatch ingest`.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, mpsc};

use anyhow::Context;
use deskwatch::clustering::state::TextSetup;
use deskwatch::clustering::text::Analysis;
use deskwatch::config::Config;
use deskwatch::event::{EventError, Payload, TicketEvent};
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
    /// Write a checkpoint after this many events (and always at the end), spaced so that
    /// checkpoints take at most a tenth of the time.
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
    let (reader, size): (Box<dyn Read + Send>, u64) = if args.input.as_os_str() == "-" {
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
    let mut summary = Summary::default();
    let setup = sink.text_setup();
    let batch = args.batch.max(1);
    // Reading, parsing and text analysis run on a reader thread; this one decides, applies
    // and appends in line order.
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (tx, rx) = mpsc::sync_channel::<std::io::Result<Chunk>>(4);
        // Written events go back to be freed where they were allocated: freeing them here
        // contends with the reader's allocations on the allocator's locks.
        let (spent_tx, spent_rx) = mpsc::sync_channel::<Spent>(4);
        let progress = bar.clone();
        scope.spawn(move || read(reader, batch, setup, &tx, &spent_rx, &progress));
        for chunk in rx {
            let chunk = chunk.context("cannot read the input")?;
            summary.lines += chunk.lines;
            for (line, e) in &chunk.rejected {
                summary.rejected += 1;
                bar.suspend(|| eprintln!("line {line}: rejected ({}) {e}", e.reason));
            }
            if !chunk.events.is_empty() {
                let spent = write(&mut sink, chunk.events, &mut summary, &bar)?;
                let _ = spent_tx.try_send(spent);
                sink.checkpoint_every(args.checkpoint_every)?;
            }
        }
        Ok(())
    })?;
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

/// Lines read, parsed and analysed by the reader thread.
struct Chunk {
    /// Lines read (blank ones included).
    lines: u64,
    /// Events with their line number, JSON and analysed text.
    events: Vec<(u64, TicketEvent, Vec<u8>, Option<Analysis>)>,
    /// Lines that are not events, with the reason.
    rejected: Vec<(u64, EventError)>,
}

/// Reads `input` line by line into chunks of `batch` events, parsing each line and analysing
/// the text of created tickets under `setup`; stops at the end, on an error, or when the
/// receiver is gone.
fn read(
    input: Box<dyn Read + Send>,
    batch: usize,
    setup: Option<Arc<TextSetup>>,
    tx: &mpsc::SyncSender<std::io::Result<Chunk>>,
    spent: &mpsc::Receiver<Spent>,
    bar: &ProgressBar,
) {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let (mut line, mut number) = (Vec::new(), 0u64);
    let empty = || Chunk {
        lines: 0,
        events: Vec::with_capacity(batch),
        rejected: Vec::new(),
    };
    let mut chunk = empty();
    loop {
        while let Ok(events) = spent.try_recv() {
            drop(events);
        }
        line.clear();
        let n = match input.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        if n > 0 {
            bar.inc(n as u64);
            number += 1;
            chunk.lines += 1;
            let text = line.trim_ascii();
            if !text.is_empty() {
                match TicketEvent::from_json(text) {
                    Ok(event) => {
                        let analysis = match (&event.payload, &setup) {
                            (Payload::Created(c), Some(setup)) => {
                                Some(setup.analyzer.analyze(&c.title, c.description.as_deref()))
                            }
                            _ => None,
                        };
                        chunk.events.push((number, event, text.to_vec(), analysis));
                    }
                    Err(e) => chunk.rejected.push((number, e)),
                }
            }
        }
        if (chunk.events.len() >= batch || n == 0)
            && tx.send(Ok(std::mem::replace(&mut chunk, empty()))).is_err()
        {
            return;
        }
        if n == 0 {
            return;
        }
    }
}

/// Writes a chunk's events and counts what the log decided; returns the events (for the
/// reader thread that allocated them to free them).
fn write(
    sink: &mut Sink,
    events: Vec<(u64, TicketEvent, Vec<u8>, Option<Analysis>)>,
    summary: &mut Summary,
    bar: &ProgressBar,
) -> anyhow::Result<Spent> {
    let n = events.len();
    let (mut lines, mut kept, mut texts) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (line, event, raw, text) in events {
        lines.push(line);
        kept.push((event, raw));
        texts.push(text);
    }
    let prepared = kept
        .iter()
        .zip(texts)
        .map(|((event, raw), text)| (event, raw.as_slice(), text))
        .collect();
    let outcomes = sink.write_prepared(prepared)?;
    for (line_no, outcome) in lines.iter().zip(outcomes) {
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
    Ok(kept)
}

/// Events written, handed back to the reader thread that allocated them.
type Spent = Vec<(TicketEvent, Vec<u8>)>;
