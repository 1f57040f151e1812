//! Kafka as the event log, against a real Kafka-protocol broker (tansu 0.6.0, started here on
//! 127.0.0.1 with a free port): identical results to the embedded log, two replicas that each
//! answer for the whole desk (and alert Alertmanager together, webhooks from one elected
//! instance), kill -9 while producing, dead letters with their headers, a broker restart, and
//! `POST /v1/events` acknowledged by the broker.
//!
//! `scripts/test.sh` installs tansu and sets DESKWATCH_TANSU; without it these tests are
//! skipped with a message, unless DESKWATCH_REQUIRE_KAFKA=1 (CI), where they fail.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Server, free_port, run, simulate, wait_for};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;

/// The tansu binary, or `None` (skip) when it is not installed and not required.
fn tansu() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("DESKWATCH_TANSU").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/deskwatch/tools/bin/tansu")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("DESKWATCH_REQUIRE_KAFKA").as_deref() != Ok("1"),
            "tansu is required (DESKWATCH_REQUIRE_KAFKA=1) but not installed; run scripts/test.sh"
        );
        eprintln!("skipping: tansu is not installed (run scripts/test.sh to install it)");
    }
    found
}

/// A tansu broker on 127.0.0.1, killed when dropped.
struct Broker {
    child: Child,
    port: u16,
    storage: String,
    binary: PathBuf,
    /// tansu resolves `sqlite://` paths against its working directory.
    cwd: PathBuf,
}

impl Broker {
    fn start(binary: &Path, storage: &str, cwd: &Path) -> Broker {
        let port = free_port();
        let child = spawn_tansu(binary, port, storage, cwd);
        let broker = Broker {
            child,
            port,
            storage: storage.to_owned(),
            binary: binary.to_path_buf(),
            cwd: cwd.to_path_buf(),
        };
        broker.wait_listening();
        broker
    }

    fn wait_listening(&self) {
        let addr = self.addr();
        wait_for(20, || std::net::TcpStream::connect(&addr).ok())
            .expect("tansu listens within 20 s");
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn restart(&mut self) {
        self.kill();
        self.child = spawn_tansu(&self.binary, self.port, &self.storage, &self.cwd);
        self.wait_listening();
    }
}

fn spawn_tansu(binary: &Path, port: u16, storage: &str, cwd: &Path) -> Child {
    let url = format!("tcp://127.0.0.1:{port}");
    Command::new(binary)
        .current_dir(cwd)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", storage])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu starts")
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A deskwatch config for `broker`, with quick failure detection for the tests.
fn kafka_config(dir: &Path, broker: &Broker, topic: &str, group: &str) -> PathBuf {
    let path = dir.join(format!("{group}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"[storage]
checkpoint-interval-seconds = 2
checkpoint-every-events = 5000
[log]
kind = "kafka"
[log.kafka]
brokers = "{}"
topic = "{topic}"
group = "{group}"
dead-letter-topic = "{topic}.dead-letters"
partitions = 8
ready-max-lag = 0
delivery-timeout-ms = 3000
[log.kafka.properties]
"topic.metadata.refresh.interval.ms" = "1000"
"reconnect.backoff.max.ms" = "1000"
[log.kafka.consumer-properties]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
"#,
            broker.addr()
        ),
    )
    .unwrap();
    path
}

fn ingest_kafka(config: &Path, file: &Path) {
    let out = run(&[
        "ingest",
        "--config",
        config.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "ingest to Kafka failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn lines(file: &Path) -> u64 {
    std::fs::read_to_string(file).unwrap().lines().count() as u64
}

/// Waits until `server` is ready and has projected `events` events.
fn wait_projected(server: &Server, events: u64, seconds: u64) {
    let reached = wait_for(seconds, || {
        // Every ticket's text placed too (the last ones wait for the partitions' ticks).
        (server.ready()
            && server.count("ticket_events") == events
            && metric(server, "deskwatch_text_waiting_tickets ") == 0.0)
            .then_some(())
    });
    if reached.is_none() {
        let log = std::fs::read_to_string(server.log_path()).unwrap_or_default();
        panic!(
            "{} projected {} of {events} events within {seconds} s (ready: {}); its log:\n{log}",
            server.log_path().display(),
            server.count("ticket_events"),
            server.ready()
        );
    }
}

/// `file` ingested into an embedded log under `dir`, served: the reference for Kafka.
fn embedded(dir: &Path, file: &Path) -> Server {
    let data = dir.join("embedded-data");
    let out = run(&[
        "ingest",
        "--data-dir",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let config = dir.join("embedded.toml");
    std::fs::write(&config, "[log]\nkind = \"embedded\"\n").unwrap();
    Server::start(&config, &data)
}

/// Queries whose answers must not depend on the log (no offsets).
const QUERIES: &[&str] = &[
    "select * from tickets order by ticket_id",
    "select event_type, count(*) n, count(distinct ticket_id) t from ticket_events group by event_type order by event_type",
    "select priority, status, count(*) n, sum(reopen_count) r from tickets group by priority, status order by priority, status",
    "select assignment_group, count(*) n from tickets group by assignment_group order by assignment_group",
    "select event_id, ticket_id, occurred_at, actor_id, status_after, minutes from ticket_events order by event_id",
    // Clocks whose values do not depend on when the query runs.
    "select ticket_id, clock, policy, state, target_seconds, elapsed_seconds, paused_seconds, started_at, breached_at, stopped_at from sla_clocks where stopped_at is not null order by ticket_id, clock",
];

fn answers(server: &Server) -> Vec<Value> {
    QUERIES.iter().map(|q| server.sql(q)).collect()
}

#[test]
fn kafka_and_embedded_logs_give_identical_results() {
    let Some(tansu) = tansu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, "memory://tansu/", dir.path());
    let file = dir.path().join("events.ndjson");
    simulate(&file, 12_500, 11);
    let n = lines(&file);
    assert!(n >= 100_000, "only {n} events");

    let config = kafka_config(dir.path(), &broker, "same-stream", "g-same");
    ingest_kafka(&config, &file);
    let via_kafka = Server::start(&config, &dir.path().join("kafka-data"));
    wait_projected(&via_kafka, n, 300);
    // Every partition got a share of the stream.
    let metrics = via_kafka.get("/metrics").unwrap().1;
    let busy = metrics
        .lines()
        .filter(|l| l.starts_with("deskwatch_kafka_consumed_records_total{"))
        .filter(|l| !l.ends_with(" 0"))
        .count();
    assert_eq!(busy, 8, "records spread over 8 partitions:\n{metrics}");

    let via_embedded = embedded(dir.path(), &file);
    let (a, b) = (answers(&via_kafka), answers(&via_embedded));
    for ((q, a), b) in QUERIES.iter().zip(&a).zip(&b) {
        assert!(a.as_array().is_some_and(|r| !r.is_empty()), "{q}: no rows");
        assert!(a == b, "{q}: Kafka and embedded differ");
    }
    // Every replica places the tickets of all partitions in creation order: the clusters are
    // the embedded log's, ticket for ticket, and every injected problem is one cluster.
    let truth: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("events.ndjson.truth.json")).unwrap(),
    )
    .unwrap();
    let cluster_of = |server: &Server| -> BTreeMap<String, String> {
        let rows = server.sql("select ticket_id, cluster_id from ticket_clusters");
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["ticket_id"].as_str().unwrap().to_string(),
                    r["cluster_id"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (k, e) = (cluster_of(&via_kafka), cluster_of(&via_embedded));
    assert_eq!(k.len(), e.len());
    let differ = k.iter().filter(|(t, c)| e.get(*t) != Some(*c)).count();
    assert_eq!(
        differ,
        0,
        "{differ} of {} tickets in another cluster",
        k.len()
    );
    let problems = truth["recurring_problems"].as_array().unwrap();
    assert!(!problems.is_empty());
    for p in problems {
        let ids: BTreeSet<&String> = p["ticket_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| &k[t.as_str().unwrap()])
            .collect();
        assert_eq!(ids.len(), 1, "{}: {ids:?}", p["problem_id"]);
    }
    assert_eq!(metric(&via_kafka, "deskwatch_text_reordered_tickets "), 0.0);
    assert_eq!(whole_desk(&via_kafka).1, whole_desk(&via_embedded).1);
}

/// A metric's value on `server` (0 when absent).
fn metric(server: &Server, line_prefix: &str) -> f64 {
    let m = server.get("/metrics").map(|(_, b)| b).unwrap_or_default();
    m.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// What the whole desk looks like from one instance: every table query, the recurring view
/// (fingerprints and candidates) and the cost month.
fn whole_desk(server: &Server) -> (Vec<Value>, Value, Value) {
    let recurring: Value = serde_json::from_str(&server.get("/v1/recurring").unwrap().1).unwrap();
    let issues: Vec<Value> = recurring["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            serde_json::json!([
                i["fingerprint"],
                i["tickets"],
                i["problem_candidate"],
                i["kb_candidate"]
            ])
        })
        .collect();
    let cost: Value = serde_json::from_str(&server.get("/v1/cost").unwrap().1).unwrap();
    (answers(server), Value::Array(issues), cost)
}

/// The config of `kafka_config` with librdkafka's defaults for the consumer (no properties).
fn default_consumer_config(dir: &Path, broker: &Broker, topic: &str, group: &str) -> PathBuf {
    let path = kafka_config(dir, broker, topic, group);
    let text = std::fs::read_to_string(&path).unwrap();
    let cut = text.find("[log.kafka.consumer-properties]").unwrap();
    std::fs::write(&path, &text[..cut]).unwrap();
    path
}

#[test]
fn every_instance_answers_for_the_whole_desk_and_a_killed_one_catches_up() {
    let Some(tansu) = tansu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, "memory://tansu/", dir.path());
    let file = dir.path().join("events.ndjson");
    simulate(&file, 3_000, 5);
    let n = lines(&file);
    let config = default_consumer_config(dir.path(), &broker, "replicas", "g-replicas");
    ingest_kafka(&config, &file);

    // The same events through the embedded log: the reference.
    let reference = whole_desk(&embedded(dir.path(), &file));

    let a = Server::start(&config, &dir.path().join("a"));
    let b = Server::start(&config, &dir.path().join("b"));
    wait_projected(&a, n, 300);
    wait_projected(&b, n, 300);
    for server in [&a, &b] {
        assert_eq!(
            metric(server, "deskwatch_kafka_assigned_partitions "),
            8.0,
            "every instance reads every partition"
        );
        let desk = whole_desk(server);
        assert!(desk.0 == reference.0, "tables differ from the embedded log");
        assert_eq!(desk.2, reference.2, "cost month differs");
    }
    // Tickets are placed in one order across partitions: the recurring view is the embedded
    // log's on every replica.
    let recurring = whole_desk(&a).1;
    assert_eq!(
        recurring, reference.1,
        "the recurring view differs from the embedded log"
    );
    assert_eq!(
        whole_desk(&b).1,
        recurring,
        "the replicas' recurring views differ"
    );
    assert!(recurring.as_array().is_some_and(|r| !r.is_empty()));

    // kill -9 one once it has checkpointed: the other still answers for the whole desk.
    wait_for(30, || {
        (metric(&b, "deskwatch_checkpoint_last_success_timestamp_seconds ") > 0.0).then_some(())
    })
    .expect("b checkpoints within 30 s");
    let mut b = b;
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    drop(b);
    let same = |x: &(Vec<Value>, Value, Value)| {
        x.0 == reference.0 && x.1 == recurring && x.2 == reference.2
    };
    assert!(same(&whole_desk(&a)));
    // Restarted on its data directory with librdkafka's default consumer settings, it answers
    // again within a minute, from its own checkpoints (it joins no group to read). Its text
    // order is lost too: the partitions' texts are read again from their start, nothing else.
    let order = dir.path().join("b/kafka/replicas/text/text-order.bin");
    assert!(order.is_file(), "{} missing", order.display());
    std::fs::remove_file(&order).unwrap();
    let started = std::time::Instant::now();
    let b = Server::start(&config, &dir.path().join("b"));
    wait_projected(&b, n, 60);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "answered after {:?}",
        started.elapsed()
    );
    assert!(same(&whole_desk(&b)));
    let log = std::fs::read_to_string(b.log_path()).unwrap_or_default();
    let resumed = log
        .lines()
        .filter(|l| l.contains("partition assigned") && !l.contains("next_offset=0"))
        .count();
    assert!(
        resumed >= 8 * 2 - 8,
        "the restart resumes from checkpoints:\n{log}"
    );
}

/// The projection of an instance, for comparison: tickets row by row, event aggregates.
fn fingerprint(server: &Server) -> (Value, Value, Value) {
    (
        server.sql("select * from tickets order by ticket_id"),
        server.sql("select event_type, count(*) n, count(distinct event_id) d, sum(minutes) m from ticket_events group by event_type order by event_type"),
        server.sql("select ticket_id, cluster_id from ticket_clusters order by ticket_id"),
    )
}

#[test]
fn kill_9_the_consumer_while_producing_loses_and_doubles_nothing() {
    let Some(tansu) = tansu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, "memory://tansu/", dir.path());
    let file = dir.path().join("events.ndjson");
    simulate(&file, 8_000, 21);
    let text = std::fs::read_to_string(&file).unwrap();
    let all: Vec<&str> = text.lines().collect();
    let config = kafka_config(dir.path(), &broker, "kill", "g-kill");
    let data = dir.path().join("victim");

    // Produce in eight parts while the consumer is killed and restarted at varying points.
    let parts: Vec<PathBuf> = all
        .chunks(all.len().div_ceil(8))
        .enumerate()
        .map(|(i, chunk)| {
            let p = dir.path().join(format!("part-{i}.ndjson"));
            std::fs::write(&p, chunk.join("\n") + "\n").unwrap();
            p
        })
        .collect();
    let assigned = |s: &Server| {
        s.get("/metrics").is_some_and(|(_, m)| {
            m.lines()
                .find_map(|l| l.strip_prefix("deskwatch_kafka_assigned_partitions "))
                .is_some_and(|v| v != "0")
        })
    };
    let mut victim = Server::start(&config, &data);
    let pauses = [700u64, 1900, 300, 2600, 1200, 50, 1500, 900];
    let mut kills = 0;
    for (part, pause) in parts.iter().zip(pauses) {
        // Once the (re)started consumer owns its partitions, produce and kill it mid-stream.
        wait_for(60, || assigned(&victim).then_some(()))
            .expect("the restarted consumer is assigned the partitions");
        ingest_kafka(&config, part);
        std::thread::sleep(Duration::from_millis(pause));
        victim.child.kill().unwrap(); // SIGKILL
        victim.child.wait().unwrap();
        kills += 1;
        victim = Server::start(&config, &data);
    }
    assert_eq!(kills, 8);
    wait_projected(&victim, all.len() as u64, 300);
    let survived = fingerprint(&victim);

    let clean_config = kafka_config(dir.path(), &broker, "kill", "g-clean");
    let clean = Server::start(&clean_config, &dir.path().join("clean"));
    wait_projected(&clean, all.len() as u64, 300);
    let reference = fingerprint(&clean);
    assert!(
        survived.0 == reference.0 && survived.1 == reference.1,
        "the killed consumer's projection differs from a clean run"
    );
    // The text order is a function of the topic (ticks included): the same clusters.
    let differ = (survived.2.as_array().unwrap().iter())
        .zip(reference.2.as_array().unwrap())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(
        differ, 0,
        "tickets in another cluster than after a clean run"
    );
    // The restarts resumed from checkpoints, not only from the start of the topic.
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    let resumed = log
        .lines()
        .filter(|l| l.contains("partition assigned") && !l.contains("next_offset=0 "))
        .count();
    assert!(resumed > 0, "no restart resumed from a checkpoint:\n{log}");
    assert_eq!(victim.count("tickets"), 8_000);
}

fn raw_producer(broker: &Broker) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("enable.idempotence", "true")
        .create()
        .unwrap()
}

#[test]
fn malformed_records_are_dead_lettered_with_their_origin() {
    let Some(tansu) = tansu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, "memory://tansu/", dir.path());
    let file = dir.path().join("events.ndjson");
    simulate(&file, 40, 3);
    let good = std::fs::read_to_string(&file).unwrap();
    let good: Vec<&str> = good.lines().collect();
    let config = kafka_config(dir.path(), &broker, "dlq", "g-dlq");
    // The first run creates the topics.
    let server = Server::start(&config, &dir.path().join("data"));
    wait_for(30, || server.ready().then_some(())).expect("ready on an empty topic");

    let first = serde_json::from_str::<Value>(good[0]).unwrap();
    let mut wrong_type = first.clone();
    wrong_type["type"] = "teleported".into();
    wrong_type["event_id"] = "bad-type-1".into();
    let mut missing = first.clone();
    missing.as_object_mut().unwrap().remove("occurred_at");
    missing["event_id"] = "bad-schema-1".into();
    let bad: Vec<(String, String, &str)> = vec![
        ("INC-BAD-1".into(), "{not json".into(), "invalid_json"),
        ("INC-BAD-2".into(), missing.to_string(), "missing_field"),
        ("INC-BAD-3".into(), wrong_type.to_string(), "unknown_type"),
    ];
    let producer = raw_producer(&broker);
    let (before, after) = good.split_at(good.len() / 2);
    let send = |key: &str, payload: &str| {
        producer
            .send(BaseRecord::<str, str>::to("dlq").key(key).payload(payload))
            .map_err(|(e, _)| e)
            .unwrap();
    };
    let key_of = |line: &str| {
        serde_json::from_str::<Value>(line).unwrap()["ticket_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for line in before {
        send(&key_of(line), line);
    }
    for (key, payload, _) in &bad {
        send(key, payload);
    }
    for line in after {
        send(&key_of(line), line);
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    wait_projected(&server, good.len() as u64, 60);
    assert_eq!(server.count("tickets"), 40);

    let metrics = server.get("/metrics").unwrap().1;
    for (_, _, reason) in &bad {
        let line = format!("deskwatch_dead_letters_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "missing {line}:\n{metrics}");
    }
    // The Kafka-only families the dashboards and rules use (tests/deploy.rs checks the rest).
    for family in [
        "deskwatch_dead_letters_total",
        "deskwatch_kafka_consumer_lag_records",
        "deskwatch_kafka_errors_total",
    ] {
        assert!(
            metrics.contains(&format!("\n{family}{{")),
            "{family} not exported"
        );
    }

    // Read the dead-letter topic back.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("group.id", "dlq-reader")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..8 {
        tpl.add_partition_offset("dlq.dead-letters", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut letters: BTreeMap<String, (String, BTreeMap<String, String>)> = BTreeMap::new();
    wait_for(30, || {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let payload = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            let mut headers = BTreeMap::new();
            if let Some(h) = m.headers() {
                for header in h.iter() {
                    headers.insert(
                        header.key.to_owned(),
                        String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned(),
                    );
                }
            }
            letters.insert(key, (payload, headers));
        }
        (letters.len() >= bad.len()).then_some(())
    })
    .expect("every malformed record reaches the dead-letter topic");
    assert_eq!(
        letters.len(),
        bad.len(),
        "only the malformed records: {letters:?}"
    );
    for (key, payload, reason) in &bad {
        let (bytes, headers) = &letters[key];
        assert_eq!(bytes, payload, "original bytes kept");
        assert_eq!(headers["deskwatch.original.topic"], "dlq");
        assert!(
            headers["deskwatch.original.partition"]
                .parse::<u32>()
                .unwrap()
                < 8
        );
        assert!(headers["deskwatch.original.offset"].parse::<u64>().is_ok());
        assert_eq!(headers["deskwatch.error.class"], "parse");
        assert_eq!(&headers["deskwatch.error.reason"], reason);
        assert!(!headers["deskwatch.error.message"].is_empty());
    }
}

#[test]
fn the_consumer_recovers_from_a_broker_restart_by_itself() {
    let Some(tansu) = tansu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(&tansu, "sqlite://tansu.db", dir.path());
    let file = dir.path().join("events.ndjson");
    simulate(&file, 1_000, 8);
    let text = std::fs::read_to_string(&file).unwrap();
    let all: Vec<&str> = text.lines().collect();
    let (one, two) = all.split_at(all.len() / 2);
    let (f1, f2) = (dir.path().join("one.ndjson"), dir.path().join("two.ndjson"));
    std::fs::write(&f1, one.join("\n") + "\n").unwrap();
    std::fs::write(&f2, two.join("\n") + "\n").unwrap();
    let config = kafka_config(dir.path(), &broker, "restart", "g-restart");
    ingest_kafka(&config, &f1);
    let server = Server::start(&config, &dir.path().join("data"));
    wait_projected(&server, one.len() as u64, 60);

    broker.kill();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        server.get("/healthz").map(|(s, _)| s),
        Some(200),
        "alive while the broker is down"
    );
    assert_eq!(
        server.count("ticket_events"),
        one.len() as u64,
        "queries still answer"
    );
    broker.restart();
    ingest_kafka(&config, &f2);
    wait_projected(&server, all.len() as u64, 120);
    assert_eq!(server.count("tickets"), 1_000);
}

#[test]
fn post_events_is_acknowledged_by_the_broker_and_projected() {
    let Some(tansu) = tansu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, "memory://tansu/", dir.path());
    let file = dir.path().join("events.ndjson");
    simulate(&file, 30, 4);
    let body = std::fs::read_to_string(&file).unwrap();
    let n = body.lines().count();
    let config = kafka_config(dir.path(), &broker, "http", "g-http");
    let server = Server::start(&config, &dir.path().join("data"));
    let bad = "{\"event_id\": 1}\n";
    let (status, text) = server.post("/v1/events", &format!("{body}{bad}"));
    assert_eq!(status, 200, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["appended"], n);
    assert_eq!(v["rejected"], 1, "the invalid line is refused before Kafka");
    let first = &v["results"][0];
    assert_eq!(first["outcome"], "appended");
    assert!(first["partition"].as_u64().unwrap() < 8);
    assert!(first["offset"].is_u64());
    wait_projected(&server, n as u64, 60);
    // The same events again: acknowledged, then ignored as duplicates by the projection.
    let (status, _) = server.post("/v1/events", &body);
    assert_eq!(status, 200);
    let dups = wait_for(30, || {
        let m = server.get("/metrics").unwrap().1;
        m.lines()
            .find_map(|l| l.strip_prefix("deskwatch_ingest_events_total{outcome=\"duplicate\"} "))
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|d| *d == n)
    });
    assert_eq!(dups, Some(n));
    assert_eq!(server.count("ticket_events"), n as u64);
}

/// Sends one event to `server`, stamped now.
fn post_now(server: &Server, id: &str, ticket: &str, kind: &str, payload: &str, role: &str) {
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let event = format!(
        r#"{{"event_id":"{id}","ticket_id":"{ticket}","type":"{kind}","occurred_at":"{at}","actor":{{"id":"x","role":"{role}"}},"schema_version":1,"payload":{payload}}}"#
    );
    let (status, body) = server.post("/v1/events", &event);
    assert_eq!(status, 200, "{body}");
}

#[test]
fn replicas_alert_alertmanager_together_and_webhooks_from_one_elected_instance() {
    let Some(tansu) = tansu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, "memory://tansu/", dir.path());
    let Some((_am, am)) = common::start_alertmanager(dir.path()) else {
        return;
    };
    let (hook, seen) = common::webhook_sink();
    let config = kafka_config(dir.path(), &broker, "sla", "g-sla");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        r#"
[sla]
policies = [
  {{ name = "fast", match = {{ priority = ["P1"] }}, targets = {{ first-response = {{ within = "3s", calendar = "24x7" }} }} }},
]
[sla.alerts]
alertmanager = ["http://{am}"]
webhooks = ["http://{hook}/hook"]
resend-seconds = 1
"#
    ));
    std::fs::write(&config, text).unwrap();
    let a = Server::start(&config, &dir.path().join("a"));
    let b = Server::start(&config, &dir.path().join("b"));
    wait_for(60, || (a.ready() && b.ready()).then_some(())).expect("both ready");
    // The group elects one sender per partition: together they hold all 8.
    let elected = wait_for(60, || {
        let (x, y) = (
            metric(&a, "deskwatch_kafka_webhook_partitions "),
            metric(&b, "deskwatch_kafka_webhook_partitions "),
        );
        (x + y == 8.0 && x > 0.0 && y > 0.0).then_some(())
    });
    assert!(elected.is_some(), "the group splits the webhook partitions");
    let webhook = r#"deskwatch_alerts_sent_total{receiver="webhook-0"} "#;
    let am_sent = r#"deskwatch_alerts_sent_total{receiver="alertmanager-0"} "#;
    post_now(
        &a,
        "k-1",
        "INC-K-1",
        "ticket.created",
        r#"{"channel":"chat","priority":"P1","category":"network","requester":"r","title":"Site down"}"#,
        "requester",
    );
    let listed = wait_for(60, || {
        let alerts: Vec<Value> = common::am_alerts(&am)
            .into_iter()
            .filter(|x| x["labels"]["ticket_id"] == "INC-K-1" && x["labels"]["level"] == "100")
            .collect();
        (!alerts.is_empty()).then_some(alerts)
    })
    .expect("the breach reaches Alertmanager");
    assert_eq!(listed.len(), 1, "Alertmanager lists it once: {listed:?}");
    // Both replicas sent it to Alertmanager; only one sent webhooks.
    let both = wait_for(30, || {
        (metric(&a, am_sent) > 0.0 && metric(&b, am_sent) > 0.0).then_some(())
    });
    assert!(both.is_some(), "every replica alerts Alertmanager");
    wait_for(60, || {
        common::received_alert(&seen, "INC-K-1", "100", "firing")
    })
    .expect("the webhook receives the breach");
    let (wa, wb) = (metric(&a, webhook), metric(&b, webhook));
    assert!(
        (wa > 0.0) != (wb > 0.0),
        "webhook alerts from exactly one instance: {wa} and {wb}"
    );
    let (sender, survivor) = if wa > 0.0 { (a, b) } else { (b, a) };

    // kill -9 the sender: the survivor is elected for its partitions once the group notices
    // (session timeout; on tansu 0.6 after rejoining as a new member, see the README) and the
    // alert, still active, comes from it; Alertmanager keeps it active.
    let mut sender = sender;
    sender.child.kill().unwrap();
    sender.child.wait().unwrap();
    drop(sender);
    let took_over = wait_for(90, || (metric(&survivor, webhook) > 0.0).then_some(()));
    assert!(
        took_over.is_some(),
        "the survivor sends the webhook alerts after the kill; its log:\n{}",
        std::fs::read_to_string(survivor.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.contains("partition assigned") && !l.contains("caught up"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(
        metric(&survivor, "deskwatch_kafka_webhook_partitions "),
        8.0
    );
    let active = common::am_alerts(&am)
        .into_iter()
        .any(|x| x["labels"]["ticket_id"] == "INC-K-1" && x["status"]["state"] == "active");
    assert!(active, "the alert stays active in Alertmanager");
    // Answered: resolved at the webhook and in Alertmanager.
    post_now(
        &survivor,
        "k-2",
        "INC-K-1",
        "ticket.commented",
        r#"{"public":true,"author_role":"agent"}"#,
        "agent",
    );
    wait_for(60, || {
        common::received_alert(&seen, "INC-K-1", "100", "resolved")
    })
    .expect("the webhook receives the resolution from the survivor");
    let gone = wait_for(60, || {
        (!common::am_alerts(&am)
            .into_iter()
            .any(|x| x["labels"]["ticket_id"] == "INC-K-1" && x["status"]["state"] == "active"))
        .then_some(())
    });
    assert!(gone.is_some(), "Alertmanager resolves it");
    let rows = survivor.sql("select state from sla_clocks where ticket_id = 'INC-K-1'");
    assert_eq!(rows[0]["state"], "breached");
}

#[test]
fn import_goes_to_the_topic_and_projects_like_the_embedded_log() {
    let Some(tansu) = tansu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, "memory://tansu/", dir.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mapping = root.join("examples/mappings/servicenow-incidents.toml");
    let input = root.join("tests/fixtures/import/servicenow-audit.csv");
    let config = kafka_config(dir.path(), &broker, "import", "g-import");
    let import = |extra: &[&str]| {
        let mut args = vec!["import", "--mapping", mapping.to_str().unwrap(), "--json"];
        args.extend_from_slice(extra);
        args.push(input.to_str().unwrap());
        let out = run(&args);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        v
    };
    let kafka = import(&["--config", config.to_str().unwrap()]);
    assert_eq!(kafka["log"]["appended"], 17, "{kafka:#}");
    assert_eq!(kafka["events"], 17);
    // The same file into an embedded log, to compare the projections.
    let embedded_dir = dir.path().join("embedded");
    let embedded = import(&["--data-dir", embedded_dir.to_str().unwrap()]);
    assert_eq!(embedded["log"]["applied"], 17);
    let server = Server::start(&config, &dir.path().join("data"));
    wait_projected(&server, 17, 60);
    let q = "select ticket_id, status, priority, reopen_count, escalation_count, first_response_at, closed_at from tickets order by ticket_id";
    let from_kafka = server.sql(q);
    server.stop();
    let reference = common::query(&embedded_dir, "json", q);
    let reference: Value = serde_json::from_str(&reference).unwrap();
    assert_eq!(from_kafka, reference, "Kafka and embedded agree");
}

/// Creates `topic` and `dead_letters` on `broker` the way deskwatch does (8 partitions).
fn create_topics(broker: &Broker, topic: &str, dead_letters: &str) {
    let config = deskwatch::config::Config::from_toml(&format!(
        "[log]\nkind = \"kafka\"\n[log.kafka]\nbrokers = \"{}\"\ntopic = \"{topic}\"\ndead-letter-topic = \"{dead_letters}\"\n",
        broker.addr()
    ))
    .unwrap();
    futures_executor::block_on(deskwatch::kafka::ensure_topics(&config.log.kafka)).unwrap();
}

/// Keys of the records of `topic` (8 partitions), read from the start for `seconds`.
fn keys_of(broker: &Broker, topic: &str, want: usize, seconds: u64) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.addr())
        .set("group.id", format!("{topic}-reader"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..8 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut keys = Vec::new();
    wait_for(seconds, || {
        while let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            keys.push(String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned());
        }
        (keys.len() >= want).then_some(())
    });
    keys
}

#[test]
fn a_dead_letter_the_broker_refuses_holds_the_checkpoint_until_it_is_taken() {
    let Some(tansu) = tansu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, "memory://tansu/", dir.path());
    // The event topic exists; the dead-letter topic does not, and deskwatch may not create it.
    create_topics(&broker, "dlr", "dlr-unused");
    let config = kafka_config(dir.path(), &broker, "dlr", "g-dlr");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = text.replace("[log.kafka]\n", "[log.kafka]\ncreate-topics = false\n");
    text = text.replace(
        "[log.kafka.properties]\n",
        "[log.kafka.properties]\n\"allow.auto.create.topics\" = \"false\"\n",
    );
    text = text.replace(
        "checkpoint-every-events = 5000",
        "checkpoint-every-events = 10",
    );
    std::fs::write(&config, text).unwrap();
    let file = dir.path().join("events.ndjson");
    simulate(&file, 60, 5);
    let good = std::fs::read_to_string(&file).unwrap();
    let good: Vec<&str> = good.lines().collect();
    let data = dir.path().join("data");
    let mut server = Server::start(&config, &data);

    let producer = raw_producer(&broker);
    let send = |key: &str, payload: &str| {
        producer
            .send(BaseRecord::<str, str>::to("dlr").key(key).payload(payload))
            .map_err(|(e, _)| e)
            .unwrap();
    };
    let key_of = |line: &str| {
        serde_json::from_str::<Value>(line).unwrap()["ticket_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (before, after) = good.split_at(good.len() / 2);
    for line in before {
        send(&key_of(line), line);
    }
    send("INC-REFUSED-1", "{not json");
    for line in after {
        send(&key_of(line), line);
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    // Every valid record is projected; the dead letter cannot be delivered.
    wait_for(60, || {
        (server.count("ticket_events") == good.len() as u64).then_some(())
    })
    .expect("the valid records are projected");
    let metric = |server: &Server, name: &str| -> f64 {
        let (_, m) = server.get("/metrics").unwrap();
        m.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(-1.0)
    };
    wait_for(60, || {
        (metric(&server, "deskwatch_dead_letter_failures_total") >= 1.0).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the broker took the dead letter (does it create topics on produce?):\n{}",
            std::fs::read_to_string(server.log_path()).unwrap_or_default()
        )
    });
    assert!(metric(&server, "deskwatch_dead_letters_undelivered") >= 1.0);
    assert!(
        !server.ready(),
        "/readyz fails while a dead letter is undelivered"
    );
    // kill -9 while the dead letter is undelivered: its only copy is the topic record, and the
    // partition's checkpoint did not pass it.
    let _ = server.child.kill();
    let _ = server.child.wait();
    drop(server);
    // The broker takes dead letters again; a new process replays and delivers it.
    create_topics(&broker, "dlr", "dlr.dead-letters");
    let server = Server::start(&config, &data);
    wait_for(90, || {
        (server.ready() && metric(&server, "deskwatch_dead_letters_undelivered") == 0.0)
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "not ready after the dead-letter topic exists:\n{}",
            std::fs::read_to_string(server.log_path()).unwrap_or_default()
        )
    });
    let keys = keys_of(&broker, "dlr.dead-letters", 1, 30);
    assert!(
        keys.iter().any(|k| k == "INC-REFUSED-1"),
        "the dead letter arrived: {keys:?}"
    );
    assert!(keys.iter().all(|k| k == "INC-REFUSED-1"), "{keys:?}");
    assert_eq!(server.count("ticket_events"), good.len() as u64);
    assert_eq!(server.count("tickets"), 60);
    if let Some(promtool) = common::tool("promtool") {
        let (_, text) = server.get("/metrics").unwrap();
        common::check_metrics(&promtool, &text);
    }
    server.stop();
}

/// Reading the topic as a log (`EventLog::reader`) hands on the events and skips the ticks
/// replicas append to quiet partitions.
#[test]
fn the_log_reader_skips_ticks() {
    use deskwatch::log::{EventLog, LogPosition};
    use rdkafka::message::{Header, OwnedHeaders};
    let Some(tansu) = tansu() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&tansu, "memory://tansu/", dir.path());
    create_topics(&broker, "ticks", "ticks.dead-letters");
    let config = kafka_config(dir.path(), &broker, "ticks", "g-ticks");
    let file = dir.path().join("events.ndjson");
    simulate(&file, 5, 2);
    let text = std::fs::read_to_string(&file).unwrap();
    let events: Vec<&str> = text.lines().collect();
    let producer = raw_producer(&broker);
    for (i, line) in events.iter().enumerate() {
        let record = BaseRecord::<str, str>::to("ticks").key("INC").payload(line);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
        let tick = OwnedHeaders::new().insert(Header {
            key: deskwatch::kafka::HEADER_TICK,
            value: Some(&format!("{}", 1_800_000_000_000u64 + i as u64)),
        });
        let record = BaseRecord::<str, str>::to("ticks")
            .key("INC")
            .payload("")
            .headers(tick);
        producer.send(record).map_err(|(e, _)| e).unwrap();
        // One record per batch: tansu 0.6 reports a partition's end as the start of its last
        // batch plus one (see the projector's `load`), which the log reader's end relies on.
        producer.flush(Duration::from_secs(10)).unwrap();
    }
    let settings = deskwatch::config::Config::load(Some(&config))
        .unwrap()
        .log
        .kafka;
    let log = deskwatch::kafka::log::KafkaLog::open(&settings).unwrap();
    let mut reader = log.reader(&LogPosition::default()).unwrap();
    let mut read = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        read.push(String::from_utf8(record.payload.to_vec()).unwrap());
    }
    assert_eq!(read, events, "every event in order, no tick");
}
