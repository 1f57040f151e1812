//! `deskwatch import`: another help desk's export into the configured log, through a mapping.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use deskwatch::import::derive::RowError;
use deskwatch::import::mapping::Mapping;
use deskwatch::import::{Counts, Derived, Importer};
use deskwatch::projection::Outcome;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use super::DataDir;
use super::sink::Sink;

/// Arguments of `import`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// The mapping file (TOML; see examples/mappings/).
    #[arg(long)]
    mapping: PathBuf,
    /// Input files: CSV, XES or JSON (one document per line, or arrays), gzip or plain.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Events per durable append.
    #[arg(long, default_value_t = 8192)]
    batch: usize,
    /// Write a checkpoint after this many events (and always at the end), spaced so that
    /// checkpoints take at most a tenth of the time.
    #[arg(long, default_value_t = 500_000)]
    checkpoint_every: u64,
    /// Rejected rows printed on stderr (all are counted).
    #[arg(long, default_value_t = 50)]
    show_rejected: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Read and map everything and decide every event in memory, but write nothing: what the
    /// import would do, with the values the mapping does not map and their counts.
    #[arg(long)]
    dry_run: bool,
}

/// One file's result.
#[derive(Debug, Serialize)]
struct FileSummary {
    file: String,
    #[serde(flatten)]
    counts: Counts,
    seconds: f64,
    rows_per_second: f64,
}

/// What the log decided.
#[derive(Debug, Default, Serialize)]
struct LogSummary {
    /// Embedded: applied events.
    applied: u64,
    /// Embedded: events already in the log (a re-import).
    duplicates: u64,
    /// Embedded: events the projection refused (a state conflict with what the log holds).
    rejected: u64,
    /// Kafka: events acknowledged by the broker.
    appended: u64,
}

#[derive(Debug, Serialize)]
struct Summary {
    mapping: String,
    /// Nothing was written.
    dry_run: bool,
    /// Values a map of `[values]` lacks (`status `Escalated``), with their rows.
    unmapped: std::collections::BTreeMap<String, u64>,
    files: Vec<FileSummary>,
    tickets: usize,
    #[serde(flatten)]
    totals: Counts,
    log: LogSummary,
    seconds: f64,
    rows_per_second: f64,
}

fn add(total: &mut Counts, c: &Counts) {
    total.rows += c.rows;
    total.imported_rows += c.imported_rows;
    total.unchanged_rows += c.unchanged_rows;
    total.skipped_rows += c.skipped_rows;
    total.events += c.events;
    for (k, v) in &c.rejected_rows {
        *total.rejected_rows.entry(k.clone()).or_default() += v;
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mapping = Mapping::load(&args.mapping)?;
    let name = mapping.name.clone();
    let config = args.data.config()?;
    let sink = if args.dry_run {
        Sink::dry_run(&config)
    } else {
        Sink::open(&config, &args.data.data_dir)?
    };
    let mut run = Run {
        sink,
        bar: progress_bar(&args.inputs)?,
        importer: Importer::new(mapping),
        log: LogSummary::default(),
        unmapped: Default::default(),
        shown: 0,
        done_bytes: 0,
        args: &args,
    };
    let started = Instant::now();
    let mut files = Vec::new();
    for path in &args.inputs {
        files.push(run.file(path)?);
    }
    run.sink.checkpoint_every(0)?;
    run.bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let mut totals = Counts::default();
    for f in &files {
        add(&mut totals, &f.counts);
    }
    if run.shown > args.show_rejected {
        eprintln!(
            "… {} more rejected rows not shown (--show-rejected)",
            run.shown - args.show_rejected
        );
    }
    let failed = totals.rejected() > 0 || run.log.rejected > 0;
    let summary = Summary {
        mapping: name,
        dry_run: args.dry_run,
        unmapped: run.unmapped,
        files,
        tickets: run.importer.tickets(),
        rows_per_second: totals.rows as f64 / seconds.max(1e-9),
        totals,
        log: run.log,
        seconds,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let topic = run
            .sink
            .is_kafka()
            .then_some(config.log.kafka.topic.as_str());
        print_summary(&summary, args.dry_run, topic);
    }
    Ok(if failed {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    })
}

/// A progress bar over the bytes of every input.
fn progress_bar(inputs: &[PathBuf]) -> anyhow::Result<ProgressBar> {
    let mut total_bytes = 0;
    for p in inputs {
        total_bytes += std::fs::metadata(p)
            .with_context(|| format!("cannot read {}", p.display()))?
            .len();
    }
    Ok(ProgressBar::new(total_bytes).with_style(
        ProgressStyle::with_template(
            "{spinner} import {msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    ))
}

/// One import in progress: where events go and what has been counted so far.
struct Run<'a> {
    sink: Sink,
    bar: ProgressBar,
    importer: Importer,
    log: LogSummary,
    /// Values a map of `[values]` lacks, with their rows.
    unmapped: std::collections::BTreeMap<String, u64>,
    /// Rejected rows so far (the first `--show-rejected` are printed).
    shown: u64,
    /// Bytes of the files already imported.
    done_bytes: u64,
    args: &'a Args,
}

impl Run<'_> {
    /// Imports one file.
    fn file(&mut self, path: &std::path::Path) -> anyhow::Result<FileSummary> {
        let Run {
            sink,
            bar,
            importer,
            log,
            unmapped,
            shown,
            done_bytes,
            args,
        } = self;
        let file = path.display().to_string();
        bar.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        let progress = Arc::new(AtomicU64::new(0));
        let before = importer.counts.clone();
        let t0 = Instant::now();
        let mut report = |e: &RowError| {
            if e.reason.starts_with("unknown_")
                && let Some(value) = e.message.split('`').nth(1)
            {
                let field = e.reason.trim_start_matches("unknown_");
                *unmapped.entry(format!("{field} `{value}`")).or_default() += 1;
            }
            *shown += 1;
            if *shown <= args.show_rejected {
                bar.suspend(|| eprintln!("{file}: {}", rejected_row(e)));
            }
        };
        let mut write = |batch: Vec<Derived>| -> anyhow::Result<()> {
            let outcomes = sink.write_events(batch.iter().map(|(_, e)| e))?;
            for ((row, _), outcome) in batch.iter().zip(outcomes) {
                match outcome {
                    None => log.appended += 1,
                    Some(Outcome::Applied) => log.applied += 1,
                    Some(Outcome::Duplicate) => log.duplicates += 1,
                    Some(Outcome::Rejected(r)) => {
                        log.rejected += 1;
                        bar.suspend(|| {
                            eprintln!(
                                "{file}: row {row}: event refused by the projection ({}) {}: {}",
                                r.reason, r.field, r.message
                            )
                        });
                    }
                }
            }
            bar.set_position(*done_bytes + progress.load(Ordering::Relaxed));
            sink.checkpoint_every(args.checkpoint_every)
        };
        importer
            .file(
                path,
                progress.clone(),
                args.batch.max(1),
                &mut write,
                &mut report,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        *done_bytes += progress.load(Ordering::Relaxed);
        bar.set_position(*done_bytes);
        let counts = since(&importer.counts, &before);
        let seconds = t0.elapsed().as_secs_f64();
        Ok(FileSummary {
            file,
            rows_per_second: counts.rows as f64 / seconds.max(1e-9),
            counts,
            seconds,
        })
    }
}

/// A rejected row as one line: `row N: rejected (reason) ticket T: message`.
fn rejected_row(e: &RowError) -> String {
    format!(
        "row {}: rejected ({}){} {}",
        e.row,
        e.reason,
        e.ticket
            .as_deref()
            .map(|t| format!(" ticket {t}:"))
            .unwrap_or_default(),
        e.message
    )
}

/// The summary as text: per file, the unmapped values, and what the log did.
fn print_summary(summary: &Summary, dry_run: bool, kafka_topic: Option<&str>) {
    for f in &summary.files {
        println!(
            "{}: {} rows → {} imported, {} unchanged, {} skipped, {} rejected; {} events ({:.0} rows/s)",
            f.file,
            f.counts.rows,
            f.counts.imported_rows,
            f.counts.unchanged_rows,
            f.counts.skipped_rows,
            f.counts.rejected(),
            f.counts.events,
            f.rows_per_second
        );
        for (reason, n) in &f.counts.rejected_rows {
            println!("    rejected {reason}: {n}");
        }
    }
    for (value, rows) in &summary.unmapped {
        println!("    unmapped {value}: {rows} rows (add it to the mapping's [values])");
    }
    let l = &summary.log;
    if dry_run {
        println!(
            "dry run, nothing written: {} tickets; {} events would be applied, {} duplicate, {} refused",
            summary.tickets, l.applied, l.duplicates, l.rejected
        );
    } else if let Some(topic) = kafka_topic {
        println!(
            "{} tickets, {} events appended to Kafka topic {topic}",
            summary.tickets, l.appended
        );
    } else {
        println!(
            "{} tickets; log: {} applied, {} duplicate, {} refused",
            summary.tickets, l.applied, l.duplicates, l.rejected
        );
    }
}

/// The counts added since `before`.
fn since(now: &Counts, before: &Counts) -> Counts {
    let mut counts = now.clone();
    counts.rows -= before.rows;
    counts.imported_rows -= before.imported_rows;
    counts.unchanged_rows -= before.unchanged_rows;
    counts.skipped_rows -= before.skipped_rows;
    counts.events -= before.events;
    for (k, v) in &before.rejected_rows {
        if let Some(n) = counts.rejected_rows.get_mut(k) {
            *n -= v;
        }
    }
    counts.rejected_rows.retain(|_, n| *n > 0);
    counts
}
