//! `deskwatch bench`: measured throughput and memory, each against a reference measured in the
//! same run. Build with `--release`.
//!
//! 1. append: simulated events into the embedded log in group commits of `--batch`, against
//!    writing the same bytes to a plain file with one fsync per batch;
//! 2. replay + projection: read the log, parse, validate and apply every event, against parsing
//!    the same bytes with serde_json alone (into `serde_json::Value`, and into `IgnoredAny`);
//! 3. memory: peak RSS of the replay phase (Linux `VmHWM`, reset before the phase) per event;
//! 4. SQL: three representative queries over the projected tables.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use deskwatch::log::embedded::EmbeddedLog;
use deskwatch::log::{AppendRecord, EventLog, LogPosition};
use deskwatch::projection::{Projection, Snapshot};
use deskwatch::query::QueryEngine;
use deskwatch::simulate::{Params, Simulator};

/// Arguments of `bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Events to generate (about 8.5 per ticket).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Events per durable append.
    #[arg(long, default_value_t = 8192)]
    batch: usize,
    /// Scratch directory (default: a temporary directory, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Benchmark Kafka on these brokers instead (creates topics `bench-*`).
    #[arg(long, value_name = "BROKERS")]
    kafka: Option<String>,
    /// Benchmark the SLA engine instead: cost per event, and alert delay with open clocks.
    #[arg(long)]
    sla: bool,
    /// Benchmark recurring-issue text analysis and clustering instead (over --events / 8.45
    /// tickets).
    #[arg(long)]
    recurring: bool,
    /// Benchmark the staffing and cost model instead: Erlang C against the textbook formula,
    /// and the model over --view-tickets tickets.
    #[arg(long)]
    cost: bool,
    /// Benchmark importing this file instead (with --mapping).
    #[arg(long, value_name = "FILE", requires = "mapping")]
    import: Option<PathBuf>,
    /// Score recurring-issue clustering on labelled real tickets instead: CSV files with
    /// `title`, `description`, `group_id` (and `created_at`); pair precision, recall and F1
    /// of deskwatch and of a TF-IDF cosine reference, in the same run.
    #[arg(long, value_name = "FILE.csv", num_args = 1..)]
    clusters: Vec<PathBuf>,
    /// With --clusters: the similarity to cluster at (default: the product's default).
    #[arg(long)]
    similarity: Option<f64>,
    /// With --import: the mapping file.
    #[arg(long)]
    mapping: Option<PathBuf>,
    /// With --recurring or --cost: tickets the view or model is computed over.
    #[arg(long, default_value_t = 1_000_000)]
    view_tickets: u64,
    /// With --sla: open clocks.
    #[arg(long, default_value_t = 1_000_000)]
    clocks: u64,
    /// With --sla: clocks that reach their deadline during the measurement.
    #[arg(long, default_value_t = 100_000)]
    due: u64,
}

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The best time of `runs` runs of `f`, in seconds, and the last result.
pub(super) fn best<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut out = None;
    for _ in 0..runs {
        let started = Instant::now();
        let v = f();
        best = best.min(started.elapsed().as_secs_f64());
        out = Some(v);
    }
    (best, out.expect("at least one run"))
}

fn rate(n: u64, secs: f64) -> String {
    format!("{:.0}/s", n as f64 / secs.max(1e-9))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !args.clusters.is_empty() {
        super::bench_recurring::clusters(&args.clusters, args.similarity)?;
    } else if args.recurring {
        super::bench_recurring::run(tickets_for(args.events), args.view_tickets)?;
    } else if let (Some(input), Some(mapping)) = (&args.import, &args.mapping) {
        super::bench_import::run(input, mapping)?;
    } else if args.cost {
        super::bench_cost::run(args.view_tickets)?;
    } else if args.sla {
        super::bench_sla::run(args.events, args.clocks, args.due)?;
    } else if let Some(brokers) = &args.kafka {
        super::bench_kafka::run(brokers, args.events, args.batch)?;
    } else {
        let dir = args.dir.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("deskwatch-bench-{}", std::process::id()))
        });
        std::fs::create_dir_all(&dir)?;
        let result = log_and_replay(&dir, args.events, args.batch);
        if args.dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Tickets of a simulated stream of about `events` events.
fn tickets_for(events: u64) -> u64 {
    (events as f64 / 8.45).ceil() as u64
}

/// The default benchmark: append, replay + projection, memory and SQL over `dir`.
fn log_and_replay(dir: &Path, events: u64, batch: usize) -> anyhow::Result<()> {
    let tickets = tickets_for(events);
    println!("deskwatch bench: target {events} events (~{tickets} tickets), batch {batch}");
    let n = append(dir, tickets, events, batch)?;
    let log = EmbeddedLog::open(&dir.join("log"))?;
    let parse = parse_references(&log)?;
    let mut projection = replay(&log, n, &parse)?;
    sql(&mut projection)
}

/// Phase 1: simulated events into the embedded log in group commits, against the same bytes
/// written raw with one fdatasync per batch. Returns the events written.
fn append(dir: &Path, tickets: u64, events: u64, batch_size: usize) -> anyhow::Result<u64> {
    let sim = Simulator::new(Params {
        tickets,
        seed: 1,
        per_day: 2000.0,
        ..Params::default()
    });
    let mut log = EmbeddedLog::open(&dir.join("log")).context("open log")?;
    let mut reference = std::fs::File::create(dir.join("reference.bin"))?;
    let mut batch: Vec<(String, Vec<u8>)> = Vec::with_capacity(batch_size);
    let (mut n, mut bytes) = (0u64, 0u64);
    let (mut t_log, mut t_ref) = (0f64, 0f64);
    let mut flush =
        |batch: &mut Vec<(String, Vec<u8>)>, log: &mut EmbeddedLog| -> anyhow::Result<()> {
            let records: Vec<AppendRecord<'_>> = batch
                .iter()
                .map(|(k, p)| AppendRecord { key: k, payload: p })
                .collect();
            let t = Instant::now();
            log.append(&records)?;
            t_log += t.elapsed().as_secs_f64();
            // Same bytes, one write and one fdatasync per batch, no framing or checksum.
            let joined: Vec<u8> = batch.iter().flat_map(|(_, p)| p.iter().copied()).collect();
            let t = Instant::now();
            reference.write_all(&joined)?;
            reference.sync_data()?;
            t_ref += t.elapsed().as_secs_f64();
            batch.clear();
            Ok(())
        };
    for event in sim.take(events as usize) {
        let payload = event.to_json();
        n += 1;
        bytes += payload.len() as u64;
        batch.push((event.ticket_id, payload));
        if batch.len() == batch_size {
            flush(&mut batch, &mut log)?;
        }
    }
    flush(&mut batch, &mut log)?;
    println!(
        "\n1. append ({n} events, {:.1} MB of JSON)",
        bytes as f64 / 1e6
    );
    println!(
        "   embedded log (framed, crc32, fdatasync per batch): {} ({:.1} MB/s)",
        rate(n, t_log),
        bytes as f64 / 1e6 / t_log
    );
    println!(
        "   reference: one raw write + fdatasync per batch:     {} ({:.1} MB/s)",
        rate(n, t_ref),
        bytes as f64 / 1e6 / t_ref
    );
    println!("   ratio log / raw: {:.2}", t_ref / t_log);
    Ok(n)
}

/// The references of phase 2, measured on the log's own bytes.
struct ParseReferences {
    /// Records parsed into `serde_json::Value`.
    parsed: u64,
    /// Seconds to parse every record into `serde_json::Value`.
    value: f64,
    /// Seconds to parse every record into `IgnoredAny`.
    ignored: f64,
}

fn parse_references(log: &EmbeddedLog) -> anyhow::Result<ParseReferences> {
    let t = Instant::now();
    let mut reader = log.reader(&LogPosition::default())?;
    let mut parsed = 0u64;
    while let Some(r) = reader.next_record()? {
        let v: serde_json::Value = serde_json::from_slice(r.payload)?;
        parsed += v.is_object() as u64;
    }
    let value = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut reader = log.reader(&LogPosition::default())?;
    while let Some(r) = reader.next_record()? {
        let _: serde::de::IgnoredAny = serde_json::from_slice(r.payload)?;
    }
    Ok(ParseReferences {
        parsed,
        value,
        ignored: t.elapsed().as_secs_f64(),
    })
}

/// Phases 2 and 3: replay + projection against the parse references, with the peak RSS of
/// the replay.
fn replay(log: &EmbeddedLog, n: u64, reference: &ParseReferences) -> anyhow::Result<Projection> {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = rss_kib("VmRSS:");
    let t = Instant::now();
    let mut projection = Projection::new();
    // The engine's recovery path: parsing and text analysis on a reader thread.
    deskwatch::engine::replay::replay(
        &mut projection,
        log.reader(&LogPosition::default())?,
        |_, _, _| {},
    )?;
    let t_replay = t.elapsed().as_secs_f64();
    let peak = rss_kib("VmHWM:");
    println!("\n2. replay + projection (read log, parse, validate, dedup, apply)");
    println!("   replay + projection:              {}", rate(n, t_replay));
    println!(
        "   reference serde_json -> Value:    {}  (ratio {:.2})",
        rate(reference.parsed, reference.value),
        reference.value / t_replay
    );
    println!(
        "   reference serde_json -> IgnoredAny: {}  (ratio {:.2})",
        rate(n, reference.ignored),
        reference.ignored / t_replay
    );
    println!(
        "\n3. memory after replay of {n} events, {} tickets",
        projection.ticket_count()
    );
    println!(
        "   RSS before replay {:.0} MiB, peak during replay {:.0} MiB",
        before as f64 / 1024.0,
        peak as f64 / 1024.0
    );
    println!(
        "   peak RSS per event: {:.0} bytes (whole process); state estimate {:.0} bytes/event",
        peak as f64 * 1024.0 / n as f64,
        projection.heap_bytes() as f64 / n as f64
    );
    for (part, bytes) in projection.memory() {
        println!(
            "     {part:<12} {:>6.1} bytes/event",
            bytes as f64 / n as f64
        );
    }
    for (column, bytes) in projection.history().column_bytes() {
        println!(
            "       ticket_events.{column:<18} {:>6.1}",
            bytes as f64 / n as f64
        );
    }
    Ok(projection)
}

/// Phase 4: representative queries over the projected tables.
fn sql(projection: &mut Projection) -> anyhow::Result<()> {
    let t = Instant::now();
    let snapshot = projection.snapshot(&Snapshot::default());
    let t_snap = t.elapsed().as_secs_f64();
    let query = QueryEngine::new()?;
    query.publish(snapshot);
    let rt = super::runtime()?;
    println!("\n4. SQL (snapshot built in {:.2} s)", t_snap);
    for (name, sql) in SQL {
        let t = Instant::now();
        let rows: usize = rt
            .block_on(query.sql(sql))?
            .iter()
            .map(|b| b.num_rows())
            .sum();
        println!(
            "   {:<55} {:>7.3} s  ({rows} rows)",
            name,
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The queries of phase 4.
const SQL: [(&str, &str); 3] = [
    (
        "open backlog by priority and group",
        "select priority, assignment_group, count(*) n, avg(handle_minutes) m from tickets where status not in ('closed','resolved','cancelled') or resolved_at > timestamp '2026-03-01T00:00:00Z' group by 1, 2 order by n desc",
    ),
    (
        "top 10 categories/CI by tickets, reopens, handle time",
        "select category, configuration_item, count(*) n, sum(reopen_count) reopens, sum(handle_minutes) minutes from tickets group by 1, 2 order by n desc limit 10",
    ),
    (
        "escalations per group and week over the history",
        "select assignment_group, date_trunc('week', occurred_at) wk, count(*) n from ticket_events where event_type = 'ticket.escalated' group by 1, 2 order by 2, 1",
    ),
];
