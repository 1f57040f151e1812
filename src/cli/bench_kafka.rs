//! `deskwatch bench --kafka BROKERS`: Kafka throughput, each against a raw rdkafka client
//! measured in the same run on the same broker.
//!
//! 1. produce: the `deskwatch ingest` path (parse, validate, append in batches acknowledged by
//!    the broker) against a raw producer sending the same bytes with the same keys and settings;
//! 2. project: the replica projector (every partition; decode, validate, dedup, apply, publish) draining
//!    the topic, against a raw consumer draining it without decoding.

use std::time::{Duration, Instant};

use anyhow::Context;
use deskwatch::config::{Config, Storage};
use deskwatch::event::TicketEvent;
use deskwatch::kafka::{EventProducer, ensure_topics, producer_config};
use deskwatch::log::AppendRecord;
use deskwatch::query::QueryEngine;
use deskwatch::simulate::{Params, Simulator};
use deskwatch::telemetry::Metrics;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

fn rate(n: u64, secs: f64) -> String {
    format!("{:.0}/s", n as f64 / secs.max(1e-9))
}

/// Runs the benchmark against `brokers` with `events` simulated events.
pub fn run(brokers: &str, events: u64, batch: usize) -> anyhow::Result<()> {
    let mut config = Config::load(None)?;
    let run_id = std::process::id();
    let settings = &mut config.log.kafka;
    settings.brokers = brokers.to_owned();
    settings.topic = format!("bench-events-{run_id}");
    settings.dead_letter_topic = format!("bench-events-{run_id}.dead-letters");
    settings.group = format!("bench-{run_id}");
    let settings = config.log.kafka.clone();
    let raw_topic = format!("bench-raw-{run_id}");
    let rt = super::runtime()?;
    rt.block_on(ensure_topics(&settings))
        .context("cannot create the benchmark topics")?;
    let mut raw_settings = settings.clone();
    raw_settings.topic = raw_topic.clone();
    raw_settings.dead_letter_topic = format!("{raw_topic}.dead-letters");
    rt.block_on(ensure_topics(&raw_settings))?;
    let n = produce(&settings, &raw_topic, events, batch)?;
    consume(&config, &settings, n, run_id)
}

/// Part 1: the ingest path against a raw producer. Returns the events produced.
fn produce(
    settings: &deskwatch::config::Kafka,
    raw_topic: &str,
    events: u64,
    batch: usize,
) -> anyhow::Result<u64> {
    let tickets = (events as f64 / 8.45).ceil() as u64;
    let lines: Vec<(String, Vec<u8>)> = Simulator::new(Params {
        tickets,
        seed: 1,
        per_day: 2000.0,
        ..Params::default()
    })
    .map(|e| (e.ticket_id.clone(), e.to_json()))
    .collect();
    let n = lines.len() as u64;
    let bytes: usize = lines.iter().map(|(_, p)| p.len()).sum();
    println!(
        "deskwatch bench --kafka {}: {n} events ({:.1} MB), 8 partitions, batch {batch}",
        settings.brokers,
        bytes as f64 / 1e6
    );
    let raw: ThreadedProducer<DefaultProducerContext> = producer_config(settings).create()?;
    let t = Instant::now();
    for (key, payload) in &lines {
        let mut record = BaseRecord::to(raw_topic).key(key).payload(payload);
        loop {
            match raw.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    raw.poll(Duration::from_millis(5));
                }
            }
        }
    }
    raw.flush(Duration::from_secs(300))?;
    let t_raw = t.elapsed().as_secs_f64();

    let producer = EventProducer::new(settings)?;
    let t = Instant::now();
    for chunk in lines.chunks(batch) {
        let parsed: Vec<TicketEvent> = chunk
            .iter()
            .map(|(_, p)| TicketEvent::from_json(p))
            .collect::<Result<_, _>>()?;
        let records: Vec<AppendRecord<'_>> = parsed
            .iter()
            .zip(chunk)
            .map(|(e, (_, p))| AppendRecord {
                key: &e.ticket_id,
                payload: p,
            })
            .collect();
        producer.append_blocking(&records)?;
    }
    let t_ingest = t.elapsed().as_secs_f64();
    println!("\n1. produce (idempotent, acks=all, lz4)");
    println!("   raw rdkafka producer (same bytes): {}", rate(n, t_raw));
    println!(
        "   deskwatch ingest path:             {}  (parse + append, acknowledged per batch)",
        rate(n, t_ingest)
    );
    println!("   ratio ingest / raw: {:.2}", t_raw / t_ingest);
    Ok(n)
}

/// Part 2: the projector draining the topic against a raw consumer.
fn consume(
    config: &Config,
    settings: &deskwatch::config::Kafka,
    n: u64,
    run_id: u32,
) -> anyhow::Result<()> {
    // Consume the deskwatch topic: raw drain before and after the projector (the faster of
    // the two is the reference, so a cold or warm broker cache favours the reference).
    let (t_drain_before, seen_bytes) = raw_drain(settings, n, &format!("bench-raw-a-{run_id}"))?;
    let dir = std::env::temp_dir().join(format!("deskwatch-bench-kafka-{run_id}"));
    let storage = Storage {
        data_dir: dir.clone(),
        ..config.storage.clone()
    };
    let metrics = Metrics::new()?;
    let query = QueryEngine::new()?;
    let t = Instant::now();
    let projector = deskwatch::kafka::consumer::start(
        settings,
        &storage,
        deskwatch::config::Config::load(None)?.setup(),
        deskwatch::alert::AlertSink::disabled(),
        query.clone(),
        metrics.clone(),
    )?;
    let consumed = |m: &Metrics| -> u64 {
        (0..settings.partitions)
            .map(|p| m.kafka_records.with_label_values(&[&p.to_string()]).get())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    while consumed(&metrics) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Time from the first record on, so looking up and assigning the partitions is not counted.
    let t_join = t.elapsed().as_secs_f64();
    let t = Instant::now();
    while consumed(&metrics) < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Then until the texts are placed: the tickets of partitions read early wait until every
    // partition has passed them, and are placed at a publish (which can take a second when
    // many wait). The span ends when the number waiting last moved (then still for 3 s);
    // those left wait for the ticks of a caught-up replica.
    let mut t_project = t.elapsed().as_secs_f64();
    let mut waiting = metrics.text_waiting.get();
    let mut still_since = Instant::now();
    while still_since.elapsed() < Duration::from_secs(3) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        let now_waiting = metrics.text_waiting.get();
        if now_waiting != waiting {
            waiting = now_waiting;
            t_project = t.elapsed().as_secs_f64();
            still_since = Instant::now();
        }
    }
    let projected = consumed(&metrics);
    projector.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
    // Once caught up, the replica appends ticks to quiet partitions: records beyond `n`.
    anyhow::ensure!(projected >= n, "projected {projected} of {n} records");
    let (t_drain_after, _) = raw_drain(settings, n, &format!("bench-raw-b-{run_id}"))?;
    let t_drain = t_drain_before.min(t_drain_after);
    let applied = metrics.ingest_events.with_label_values(&["applied"]).get();
    println!("\n2. consume ({seen_bytes} bytes)");
    println!(
        "   raw rdkafka consumer (no decoding): {}",
        rate(n, t_drain)
    );
    println!(
        "   deskwatch projector:                {}  (decode, validate, dedup, apply, texts placed in one order; {applied} applied, {waiting} tickets' texts left for the ticks)",
        rate(n, t_project)
    );
    println!("   ratio projector / raw: {:.2}", t_drain / t_project);
    println!(
        "   (assigning the partitions took {t_join:.2} s before the first record, not counted)"
    );
    Ok(())
}

/// Drains the topic with a plain consumer, counting records and bytes; returns the seconds taken.
fn raw_drain(
    settings: &deskwatch::config::Kafka,
    n: u64,
    group: &str,
) -> anyhow::Result<(f64, usize)> {
    let consumer: BaseConsumer = deskwatch::kafka::client_config(settings)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..settings.partitions as i32 {
        tpl.add_partition_offset(&settings.topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    // Timed from the first record on, like the projector.
    let mut t = None;
    let (mut seen, mut bytes) = (0u64, 0usize);
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < n && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            t.get_or_insert_with(Instant::now);
            seen += 1;
            bytes += m.payload().map_or(0, <[u8]>::len);
        }
    }
    let secs = t.map_or(0.0, |t| t.elapsed().as_secs_f64());
    anyhow::ensure!(seen == n, "raw consumer saw {seen} of {n} records");
    Ok((secs, bytes))
}
