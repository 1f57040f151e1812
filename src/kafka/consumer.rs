//! The projector: every instance is a full replica. It reads every partition of the event
//! topic (assigned by hand, not balanced by a consumer group) into one [`Projection`] per
//! partition, with exactly-once effect, so every instance answers every query, view and
//! dashboard for the whole desk, and any instance can serve behind a plain load balancer.
//!
//! Each partition has its own checkpoints (`<data-dir>/kafka/<topic>/partition-<n>/`). A
//! checkpoint holds that partition's state and the next offset to read; it is the truth. At
//! start each partition's newest checkpoint is loaded and the partition assigned at its offset
//! (from the beginning when there is none); partitions added to the topic later are picked up
//! within seconds. A record is applied only when its offset is at or past the partition's
//! position, so a restart or a redelivery never counts anything twice, and since the state is a
//! function of the partition's records, nothing is lost either. Replicas commit no group
//! offsets: `deskwatch_kafka_lag{partition}` is each one's lag.
//!
//! A record that is not a valid event (class `parse`), or an event the ticket's state refuses
//! (class `state`), goes to the dead-letter topic with its key, bytes and headers naming where it
//! came from and why; the projection carries on. A partition is checkpointed only once every
//! dead letter it produced is acknowledged: one the broker does not take is kept and sent again
//! with backoff, the partition stays behind its last checkpoint (and `/readyz` fails) until the
//! broker takes it. A crash meanwhile replays the partition from that checkpoint and produces
//! the dead letters again, so a dead letter can be repeated but never lost. Each replica sends
//! its own: with N replicas a dead letter is in the topic N times, with the same origin headers
//! (`deskwatch-topic`, `-partition`, `-offset`) to deduplicate on.
//!
//! Ticket texts are not clustered per partition: every replica places the tickets of all
//! partitions in one order, a function of the topic ([`TextOrder`]), saved with the offset each
//! partition's texts were read to (`<data-dir>/kafka/<topic>/text/`). A partition is read from
//! the earlier of its checkpoint and that offset. Caught-up replicas append ticks to quiet
//! partitions so the order moves on.
//!
//! The snapshot published for queries is the merge of the partitions' snapshots, with the text
//! order's clusters. SLA alerts
//! go from every replica to Alertmanager, which deduplicates them; webhook alerts only from the
//! instance the consumer group elects for the partition ([`super::election`]).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureRecord};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientContext, Message};

use super::{
    EventProducer, HEADER_ERROR_CLASS, HEADER_ERROR_MESSAGE, HEADER_ERROR_REASON, HEADER_OFFSET,
    HEADER_PARTITION, HEADER_TICK, HEADER_TOPIC, KafkaLogError, client_config,
};
use crate::alert::AlertSink;
use crate::checkpoint::{Checkpoints, TextOrderFile};
use crate::clustering::order::TextOrder;
use crate::config;
use crate::event::TicketEvent;
use crate::log::LogPosition;
use crate::projection::{Outcome, Projection, Setup, Snapshot, tables};
use crate::query::QueryEngine;
use crate::telemetry::Metrics;

/// Longest wait for a partition's dead letters to be acknowledged before its checkpoint.
const DEAD_LETTER_FLUSH: Duration = Duration::from_secs(5);
/// Longest wait between two attempts to send dead letters the broker did not take.
const DEAD_LETTER_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Publish a new snapshot at least this often while records stream in.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// A partition whose position has not moved for this long while the broker has records after
/// it is read again from its start.
const STALL: Duration = Duration::from_secs(15);

/// A partition that created no ticket and had no tick for this long gets a tick.
const TICK_EVERY: Duration = Duration::from_secs(5);

/// How often the topic's partitions are looked up (partitions added later are read too).
const DISCOVER_EVERY: Duration = Duration::from_secs(5);

/// The projection of one partition.
struct PartitionState {
    projection: Projection,
    /// Next offset to apply.
    next: u64,
    checkpoints: Checkpoints,
    /// Records applied since the last checkpoint.
    since_checkpoint: u64,
    /// When the state on disk was written (or the partition assigned, when it never was).
    checkpointed_at: SystemTime,
    /// Expected offset of the latest gap and how many times it was read again.
    gap_seen_at: Option<(u64, u8)>,
    /// Position and time it was last seen to move (stall detection).
    progress: (u64, SystemTime),
    /// The partition was re-read from its start because it stalled at this position.
    stall_reread_at: Option<u64>,
    /// Housekeeping rounds in a row that found the position past the partition's end.
    ahead_seen: u8,
    /// When a ticket creation or a tick was last read from it, or a tick sent to it.
    heard_at: Instant,
    /// `deskwatch_kafka_consumed_records_total` of this partition (looked up once).
    consumed: prometheus::IntCounter,
    snapshot: Arc<Snapshot>,
    dirty: bool,
    /// Caught up once: SLA time follows the wall clock and transitions become alerts. Before
    /// that, replayed history moves the clocks by event time only and alerts nothing.
    alerting: bool,
    /// Where its alerts go, marked with the partition (webhooks go from its elected sender).
    alerts: AlertSink,
    /// Text cluster indices of the snapshot's ticket blocks (see [`TextOrder`]).
    clusters: Vec<Arc<[u32]>>,
}

/// A record bound for the dead-letter topic, kept until the broker acknowledges it.
struct DeadLetter {
    partition: u32,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    /// (header, value) in order.
    headers: Vec<(&'static str, String)>,
    /// `topic/partition@offset`.
    origin: String,
    /// Attempts the broker did not take.
    failures: u32,
}

/// Dead letters on their way, and those the broker did not take (sent again with backoff).
struct DeadLetters {
    in_flight: Vec<(DeliveryFuture, DeadLetter)>,
    failed: Vec<DeadLetter>,
    retry_at: Instant,
    backoff: Duration,
}

impl Default for DeadLetters {
    fn default() -> DeadLetters {
        DeadLetters {
            in_flight: Vec::new(),
            failed: Vec::new(),
            retry_at: Instant::now(),
            backoff: Duration::from_secs(1),
        }
    }
}

impl DeadLetters {
    /// Whether `partition` has a dead letter not yet acknowledged.
    fn holds(&self, partition: u32) -> bool {
        self.in_flight.iter().any(|(_, d)| d.partition == partition)
            || self.failed.iter().any(|d| d.partition == partition)
    }
}

struct Owned {
    parts: BTreeMap<u32, PartitionState>,
    /// Set once the topic's partitions are known and assigned.
    assigned: bool,
    /// Ticket texts of every partition, placed in one order (the same on every replica).
    text: TextOrder,
    /// The partitions' read positions summed when the text order was last saved, and when.
    text_saved: (u64, SystemTime),
}

/// Shared by the polling thread and librdkafka's callbacks (which run inside `poll`).
struct Projector {
    topic: String,
    dir: PathBuf,
    owned: Mutex<Owned>,
    dead_letters: EventProducer,
    /// Sends ticks to the event topic.
    ticks: EventProducer,
    /// Dead letters not yet acknowledged by the broker.
    undelivered: Mutex<DeadLetters>,
    /// Last stable offset per partition, from librdkafka's statistics.
    high_watermarks: Mutex<HashMap<u32, i64>>,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    ready_max_lag: u64,
    ready: Arc<AtomicBool>,
    query: QueryEngine,
    metrics: Metrics,
    /// SLA rules and text settings every partition's projection runs under.
    setup: Setup,
    /// Where SLA alerts go.
    alerts: AlertSink,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl ClientContext for Projector {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let mut highs = lock(&self.high_watermarks);
        for p in topic.partitions.values() {
            if p.partition >= 0 {
                let high = if p.ls_offset >= 0 {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                if high >= 0 {
                    highs.insert(p.partition as u32, high);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let kind = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => "all_brokers_down",
            Some(RDKafkaErrorCode::BrokerTransportFailure) => "transport",
            Some(RDKafkaErrorCode::Authentication) => "authentication",
            _ => "other",
        };
        self.metrics.kafka_errors.with_label_values(&[kind]).inc();
        tracing::warn!(%error, reason, "Kafka client error");
    }
}

impl ConsumerContext for Projector {}

impl Projector {
    fn partition_dir(&self, partition: u32) -> PathBuf {
        self.dir.join(format!("partition-{partition}"))
    }

    /// Looks up the topic's partitions and assigns those not read yet, each from its
    /// checkpoint's offset (the start without one).
    fn take_partitions(&self, consumer: &BaseConsumer<Self>) {
        let metadata = match consumer.fetch_metadata(Some(&self.topic), Duration::from_secs(5)) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, topic = %self.topic, "cannot read the topic's partitions; trying again");
                return;
            }
        };
        let known: Vec<u32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == self.topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .filter(|p| *p >= 0)
            .map(|p| p as u32)
            .collect();
        if known.is_empty() {
            tracing::debug!(topic = %self.topic, "the topic has no partitions yet");
            return;
        }
        let mut owned = lock(&self.owned);
        let fresh: Vec<u32> = known
            .into_iter()
            .filter(|p| !owned.parts.contains_key(p))
            .collect();
        if fresh.is_empty() {
            return;
        }
        for p in fresh {
            let state = self.load(p);
            owned.parts.insert(p, state);
            owned.text.add_partition(p);
        }
        // A hand-made assignment is replaced whole: every partition from where its state is,
        // or from where its texts were read to when that is earlier.
        let mut tpl = TopicPartitionList::new();
        for (p, state) in &owned.parts {
            let from = state.next.min(owned.text.fed(*p));
            let offset = if from == 0 {
                Offset::Beginning
            } else {
                Offset::Offset(from as i64)
            };
            if let Err(e) = tpl.add_partition_offset(&self.topic, *p as i32, offset) {
                tracing::error!(partition = p, error = %e, "cannot set the start offset");
            }
        }
        if let Err(e) = consumer.assign(&tpl) {
            tracing::error!(error = %e, "cannot assign the partitions");
            return;
        }
        owned.assigned = true;
        self.metrics
            .kafka_assigned_partitions
            .set(owned.parts.len() as i64);
        drop(owned);
        // What the checkpoints hold is answered at once, before any record arrives.
        self.publish();
    }

    /// The partition's newest usable checkpoint, or an empty state.
    fn load(&self, p: u32) -> PartitionState {
        let dir = self.partition_dir(p);
        let checkpoints = Checkpoints::new(&dir);
        // A checkpoint past the partition's end belongs to another incarnation of the topic.
        // That is checked against the high watermark the fetches report (see `housekeeping`),
        // not here: tansu 0.6 answers ListOffsets(latest) with the next record *batch* (1 for a
        // partition written in one batch), which made every restart ignore its checkpoints.
        let end = u64::MAX;
        let started = Instant::now();
        let loaded = match checkpoints.load_newest(&LogPosition(BTreeMap::from([(p, end)]))) {
            Ok(loaded) => loaded,
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "cannot list checkpoints; rebuilding the partition from the topic");
                None
            }
        };
        let loaded = loaded.and_then(|mut l| match l
            .projection
            .attach(self.setup.rules.clone(), self.setup.text.clone())
        {
            Ok(()) => Some(l),
            Err(reason) => {
                tracing::warn!(partition = p, %reason, "rebuilding the partition from the topic");
                None
            }
        });
        let (projection, next, checkpointed_at) = match loaded {
            Some(l) => {
                let at = std::fs::metadata(&l.path)
                    .and_then(|m| m.modified())
                    .unwrap_or_else(|_| SystemTime::now());
                (l.projection, l.position.next_offset(p), at)
            }
            None => {
                // Chunk files without a checkpoint may be from another topic incarnation.
                let _ = std::fs::remove_dir_all(dir.join("chunks"));
                (
                    Projection::with_setup(self.setup.rules.clone(), self.setup.text.clone()),
                    0,
                    SystemTime::now(),
                )
            }
        };
        let mut projection = projection;
        projection.place_text_elsewhere();
        // SLA time follows the records only until the partition has caught up (see
        // `housekeeping`); then the wall clock drives it and alerts start.
        tracing::info!(
            partition = p,
            next_offset = next,
            partition_end = end,
            tickets = projection.ticket_count(),
            seconds = started.elapsed().as_secs_f64(),
            "partition assigned"
        );
        PartitionState {
            projection,
            next,
            checkpoints,
            since_checkpoint: 0,
            checkpointed_at,
            gap_seen_at: None,
            progress: (next, SystemTime::now()),
            stall_reread_at: None,
            ahead_seen: 0,
            heard_at: Instant::now(),
            consumed: self
                .metrics
                .kafka_records
                .with_label_values(&[&p.to_string()]),
            snapshot: Arc::new(Snapshot::default()),
            dirty: true,
            alerting: false,
            alerts: self.alerts.for_partition(p),
            clusters: Vec::new(),
        }
    }

    /// Writes the partition's checkpoint once its dead letters are acknowledged; with `wait`,
    /// waits for them a bounded time (revocation, shutdown), else only looks.
    fn checkpoint_with(&self, p: u32, state: &mut PartitionState, wait: bool) -> bool {
        if !self.settle_dead_letters(p, wait) {
            tracing::debug!(
                partition = p,
                "checkpoint postponed: the partition has dead letters the broker has not acknowledged"
            );
            return false;
        }
        let position = LogPosition(BTreeMap::from([(p, state.next)]));
        match state.checkpoints.write(&mut state.projection, &position) {
            Ok(path) => {
                state.since_checkpoint = 0;
                state.checkpointed_at = SystemTime::now();
                let now = state
                    .checkpointed_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                self.metrics
                    .checkpoint_last_success_timestamp_seconds
                    .set(now as i64);
                tracing::debug!(partition = p, path = %path.display(), "checkpoint written");
                true
            }
            Err(e) => {
                self.metrics.checkpoint_failures.inc();
                tracing::error!(partition = p, error = %e, "checkpoint failed; the topic still has every event");
                false
            }
        }
    }

    /// Writes the partition's checkpoint once its dead letters are acknowledged.
    fn checkpoint(&self, p: u32, state: &mut PartitionState) -> bool {
        self.checkpoint_with(p, state, false)
    }

    /// True when the broker acknowledged every dead letter of `partition`, so a checkpoint may
    /// pass them; with `wait`, waits for those in flight a bounded time first.
    fn settle_dead_letters(&self, partition: u32, wait: bool) -> bool {
        let in_flight = {
            let d = lock(&self.undelivered);
            if !d.holds(partition) {
                return true;
            }
            !d.in_flight.is_empty()
        };
        if wait
            && in_flight
            && let Err(e) = self.dead_letters.flush(DEAD_LETTER_FLUSH)
        {
            tracing::debug!(error = %e, "dead letters not yet acknowledged");
        }
        self.check_dead_letters();
        !lock(&self.undelivered).holds(partition)
    }

    /// Collects the delivery reports that have arrived, keeps what failed for another attempt,
    /// sends the failed ones again when their backoff is over, and updates the gauge.
    fn check_dead_letters(&self) {
        let mut d = lock(&self.undelivered);
        let mut still = Vec::with_capacity(d.in_flight.len());
        let mut failed = Vec::new();
        for (mut delivery, letter) in std::mem::take(&mut d.in_flight) {
            match (&mut delivery).now_or_never() {
                None => still.push((delivery, letter)),
                Some(Ok(Ok(_))) => {}
                Some(Ok(Err((e, _)))) => failed.push((letter, e.to_string())),
                Some(Err(_)) => failed.push((letter, "the producer dropped it".into())),
            }
        }
        d.in_flight = still;
        for (mut letter, error) in failed {
            letter.failures += 1;
            self.metrics.dead_letter_failures.inc();
            tracing::error!(
                origin = %letter.origin,
                %error,
                "the broker did not take a dead letter; it is kept and sent again, and its partition is not checkpointed past it"
            );
            d.failed.push(letter);
        }
        if !d.failed.is_empty() && Instant::now() >= d.retry_at {
            let retry = std::mem::take(&mut d.failed);
            tracing::info!(count = retry.len(), "sending dead letters again");
            for letter in retry {
                match self.send_dead_letter(letter) {
                    Ok(delivery) => d.in_flight.push(delivery),
                    Err(mut letter) => {
                        letter.failures += 1;
                        self.metrics.dead_letter_failures.inc();
                        d.failed.push(letter);
                    }
                }
            }
            let wait = d.backoff;
            d.backoff = (d.backoff * 2).min(DEAD_LETTER_BACKOFF_MAX);
            // Jitter: 50 % to 100 % of the backoff.
            let nanos = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |t| t.subsec_nanos());
            d.retry_at = Instant::now() + wait.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0);
        }
        if d.failed.is_empty() && d.in_flight.is_empty() {
            d.backoff = Duration::from_secs(1);
        }
        self.metrics
            .dead_letters_undelivered
            .set((d.failed.len() + d.in_flight.len()) as i64);
    }

    /// Dead letters the broker refused at least once and has not taken yet.
    fn failing_dead_letters(&self) -> usize {
        let d = lock(&self.undelivered);
        d.failed.iter().filter(|l| l.failures > 0).count()
            + d.in_flight.iter().filter(|(_, l)| l.failures > 0).count()
    }

    /// Applies one record of an owned partition.
    fn handle(&self, consumer: &BaseConsumer<Self>, msg: &BorrowedMessage<'_>) {
        if msg.topic() != self.topic || msg.partition() < 0 || msg.offset() < 0 {
            return;
        }
        let p = msg.partition() as u32;
        let offset = msg.offset() as u64;
        let mut owned = lock(&self.owned);
        let Owned { parts, text, .. } = &mut *owned;
        let Some(state) = parts.get_mut(&p) else {
            return; // not assigned
        };
        // The projection and the text order each read from their own position.
        let expected = state.next.min(text.fed(p));
        if offset < expected {
            return; // already in the state (redelivered after a seek)
        }
        if offset > expected && !self.gap(consumer, p, state, expected, offset) {
            return;
        }
        if let Some(at) = tick_time(msg) {
            if offset >= state.next {
                state.next = offset + 1;
                state.since_checkpoint += 1;
                state.consumed.inc();
            }
            if offset >= text.fed(p) {
                text.tick(p, offset, at);
            }
            state.heard_at = Instant::now();
            return;
        }
        let payload = msg.payload().unwrap_or_default();
        let event = TicketEvent::from_json(payload);
        if matches!(&event, Ok(e) if matches!(e.payload, crate::event::Payload::Created(_))) {
            state.heard_at = Instant::now();
        }
        if offset >= state.next {
            match &event {
                Ok(event) => match state.projection.apply(event, offset) {
                    Outcome::Applied => self.count("applied"),
                    Outcome::Duplicate => self.count("duplicate"),
                    Outcome::Rejected(r) => {
                        self.count("rejected");
                        self.dead_letter(
                            msg,
                            "state",
                            r.reason,
                            &format!("{}: {}", r.field, r.message),
                        );
                    }
                },
                Err(e) => {
                    self.count("invalid");
                    self.dead_letter(msg, "parse", e.reason, &e.to_string());
                }
            }
            state.next = offset + 1;
            state.since_checkpoint += 1;
            state.dirty = true;
            state.consumed.inc();
        }
        if offset >= text.fed(p) {
            state
                .projection
                .hand_text(text, p, offset, event.as_ref().ok());
        }
        if state.since_checkpoint >= self.checkpoint_every {
            self.checkpoint(p, state);
        }
    }

    /// Records missing between `expected` and `offset`: whether to apply the record anyway.
    /// First read again from the position; if the broker skips them again (tansu 0.6 cannot
    /// serve a fetch that starts inside a record batch, which a resume from a checkpoint often
    /// does), read the partition from its start, skipping what the state has. Only a gap that
    /// survives both is accepted: offsets that hold no record (transaction markers) or records
    /// removed by retention.
    fn gap(
        &self,
        consumer: &BaseConsumer<Self>,
        p: u32,
        state: &mut PartitionState,
        expected: u64,
        offset: u64,
    ) -> bool {
        let stage = match state.gap_seen_at {
            Some((at, stage)) if at == expected => stage,
            _ => 0,
        };
        let from = match stage {
            0 => Some(Offset::Offset(expected as i64)),
            1 if offset - expected > 1 => Some(Offset::Beginning),
            _ => None,
        };
        if let Some(from) = from {
            tracing::warn!(
                partition = p,
                expected,
                got = offset,
                from = ?from,
                "gap in the partition; reading again"
            );
            self.metrics.kafka_errors.with_label_values(&["gap"]).inc();
            state.gap_seen_at = Some((expected, stage + 1));
            self.seek(consumer, p, from);
            return false;
        }
        tracing::error!(
            partition = p,
            expected,
            got = offset,
            "offsets missing from the partition even when read from its start; continuing after them"
        );
        self.metrics
            .kafka_errors
            .with_label_values(&["gap_accepted"])
            .inc();
        true
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .ingest_events
            .with_label_values(&[outcome])
            .inc();
    }

    /// Sends a record to the dead-letter topic with its origin and the reason; it is kept
    /// until the broker acknowledges it.
    fn dead_letter(&self, msg: &BorrowedMessage<'_>, class: &str, reason: &str, message: &str) {
        self.metrics.dead_letters.with_label_values(&[reason]).inc();
        self.metrics
            .ingest_rejected
            .with_label_values(&[reason])
            .inc();
        let partition = msg.partition().to_string();
        let offset = msg.offset().to_string();
        let origin = format!("{}/{}@{}", msg.topic(), partition, offset);
        tracing::warn!(%origin, class, reason, message, "record dead-lettered");
        let letter = DeadLetter {
            partition: msg.partition().max(0) as u32,
            key: msg.key().map(<[u8]>::to_vec),
            payload: msg.payload().unwrap_or_default().to_vec(),
            headers: vec![
                (HEADER_TOPIC, msg.topic().to_string()),
                (HEADER_PARTITION, partition),
                (HEADER_OFFSET, offset),
                (HEADER_ERROR_CLASS, class.to_string()),
                (HEADER_ERROR_REASON, reason.to_string()),
                (HEADER_ERROR_MESSAGE, message.to_string()),
            ],
            origin,
            failures: 0,
        };
        let sent = self.send_dead_letter(letter);
        let mut d = lock(&self.undelivered);
        match sent {
            Ok(delivery) => d.in_flight.push(delivery),
            Err(mut letter) => {
                letter.failures += 1;
                self.metrics.dead_letter_failures.inc();
                d.failed.push(letter);
            }
        }
    }

    /// Hands a dead letter to the producer; gives it back when the producer refuses it.
    fn send_dead_letter(
        &self,
        letter: DeadLetter,
    ) -> Result<(DeliveryFuture, DeadLetter), DeadLetter> {
        let producer = self.dead_letters.inner();
        let result = loop {
            let mut headers = OwnedHeaders::new_with_capacity(letter.headers.len());
            for (key, value) in &letter.headers {
                headers = headers.insert(Header {
                    key,
                    value: Some(value.as_str()),
                });
            }
            let mut record = FutureRecord::to(self.dead_letters.topic())
                .payload(&letter.payload)
                .headers(headers);
            if let Some(key) = &letter.key {
                record = record.key(key);
            }
            match producer.send_result(record) {
                Ok(delivery) => break Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => break Err(e),
            }
        };
        match result {
            Ok(delivery) => Ok((delivery, letter)),
            Err(e) => {
                tracing::error!(origin = %letter.origin, error = %e, "cannot send a dead letter; it is kept and sent again");
                Err(letter)
            }
        }
    }

    /// Publishes the merge of the owned partitions' snapshots, with the text clusters of the
    /// text order, and updates the gauges.
    fn publish(&self) {
        let mut owned = lock(&self.owned);
        let (mut tickets, mut events) = (0, 0);
        let mut bytes = std::collections::BTreeMap::new();
        owned.text.release();
        let Owned { parts, text, .. } = &mut *owned;
        let mut clusters = Vec::new();
        for (&p, state) in parts.iter_mut() {
            if state.dirty {
                state.snapshot = Arc::new(state.projection.snapshot(&state.snapshot));
                state.dirty = false;
            }
            cluster_blocks(text, p, state);
            clusters.extend(state.clusters.iter().cloned());
            tickets += state.projection.ticket_count();
            events += state.projection.event_count();
            for (part, n) in state.projection.memory() {
                *bytes.entry(part).or_insert(0) += n;
            }
        }
        *bytes.entry("text").or_insert(0) += text.heap_bytes();
        for (part, n) in bytes {
            self.metrics
                .state_bytes
                .with_label_values(&[part])
                .set(n as i64);
        }
        self.metrics.text_waiting.set(text.waiting() as i64);
        if text.waiting() > 0 {
            tracing::debug!(waiting = text.waiting(), horizons = ?text.horizons(), "text order");
        }
        self.metrics.text_reordered.set(text.reordered() as i64);
        self.query.publish(Snapshot::merge(
            parts.values().map(|s| s.snapshot.as_ref()),
            clusters,
            text.catalog(),
        ));
        self.metrics.tickets.set(tickets as i64);
        self.metrics.events.set(events as i64);
    }

    /// Gives the owned partitions that are live their beat (see [`crate::clock::Pulse`]).
    fn beat(&self, pulse: &mut crate::clock::Pulse) {
        let mut owned = lock(&self.owned);
        let live = owned
            .parts
            .values_mut()
            .filter(|s| s.alerting)
            .map(|s| (&mut s.projection, &s.alerts));
        pulse.beat(live, &self.metrics);
    }

    /// Time-based checkpoints, group commits, lag, checkpoint age, stalls, readiness.
    fn housekeeping(&self, consumer: &BaseConsumer<Self>) {
        let highs = lock(&self.high_watermarks).clone();
        let mut owned = lock(&self.owned);
        let owned_ready = owned.assigned;
        let mut total_lag = 0u64;
        let mut lag_known = true;
        let mut position = 0u64;
        let now = SystemTime::now();
        let parts: Vec<u32> = owned.parts.keys().copied().collect();
        let mut rebuilt = false;
        for p in parts {
            let text_fed = owned.text.fed(p);
            let Some(state) = owned.parts.get_mut(&p) else {
                continue;
            };
            let age = now
                .duration_since(state.checkpointed_at)
                .unwrap_or_default();
            if state.since_checkpoint > 0 && age >= self.checkpoint_interval {
                self.checkpoint(p, state);
            }
            let label = p.to_string();
            self.metrics
                .kafka_checkpoint_age
                .with_label_values(&[&label])
                .set(
                    now.duration_since(state.checkpointed_at)
                        .unwrap_or_default()
                        .as_secs_f64(),
                );
            position += state.next;
            let followed = highs.get(&p).and_then(|&high| {
                let next = state.next;
                let lag = self.follow(consumer, p, state, high, text_fed, now);
                rebuilt |= state.next < next;
                lag
            });
            match followed {
                Some(lag) => {
                    total_lag += lag;
                    self.metrics
                        .kafka_lag
                        .with_label_values(&[&label])
                        .set(lag as i64);
                }
                None => lag_known = false,
            }
        }
        if rebuilt {
            self.read_texts_again(consumer, &mut owned);
        }
        self.metrics.projection_position.set(position as i64);
        self.metrics.projection_lag_records.set(total_lag as i64);
        self.tick_quiet_partitions(&mut owned);
        self.save_text_order(&mut owned, false);
        drop(owned);
        self.check_dead_letters();
        let failing = self.failing_dead_letters();
        let ready = owned_ready && lag_known && total_lag <= self.ready_max_lag && failing == 0;
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// A partition was rebuilt from the topic (a new topic under the old name): the text order
    /// holds its old tickets, so it starts afresh and every partition's texts are read again.
    fn read_texts_again(&self, consumer: &BaseConsumer<Self>, owned: &mut Owned) {
        tracing::warn!("a partition was rebuilt; reading every partition's ticket texts again");
        TextOrderFile::new(&self.text_dir()).remove();
        owned.text = TextOrder::new(self.setup.text.clone());
        owned.text_saved = (0, SystemTime::now());
        let parts: Vec<u32> = owned.parts.keys().copied().collect();
        for p in parts {
            owned.text.add_partition(p);
            if let Some(state) = owned.parts.get_mut(&p) {
                state.clusters.clear();
            }
            self.seek(consumer, p, Offset::Beginning);
        }
    }

    fn text_dir(&self) -> PathBuf {
        self.dir.join("text")
    }

    /// Saves the text order when it read records since it was last saved, and the checkpoint
    /// interval has passed (`force`: at once).
    fn save_text_order(&self, owned: &mut Owned, force: bool) {
        let fed: u64 = owned.parts.keys().map(|&p| owned.text.fed(p)).sum();
        let age = SystemTime::now()
            .duration_since(owned.text_saved.1)
            .unwrap_or_default();
        if fed == owned.text_saved.0 || !(force || age >= self.checkpoint_interval) {
            return;
        }
        match TextOrderFile::new(&self.text_dir()).save(&owned.text) {
            Ok(path) => {
                owned.text_saved = (fed, SystemTime::now());
                tracing::debug!(path = %path.display(), "text order saved");
            }
            Err(e) => {
                self.metrics.checkpoint_failures.inc();
                tracing::error!(error = %e, "cannot save the text order; the topic still has every event");
            }
        }
    }

    /// Appends a tick to every caught-up partition that neither created a ticket nor had a
    /// tick for [`TICK_EVERY`], so the tickets of the other partitions can be placed. Every
    /// replica does so; a tick sent twice only says the same thing twice.
    fn tick_quiet_partitions(&self, owned: &mut Owned) {
        let now = unix_ms(SystemTime::now()).to_string();
        for (&p, state) in owned.parts.iter_mut() {
            if !state.alerting || state.heard_at.elapsed() < TICK_EVERY {
                continue;
            }
            state.heard_at = Instant::now();
            let headers = OwnedHeaders::new().insert(Header {
                key: HEADER_TICK,
                value: Some(now.as_str()),
            });
            let record = FutureRecord::to(self.ticks.topic())
                .partition(p as i32)
                .key(HEADER_TICK)
                .payload(&[][..])
                .headers(headers);
            // Not awaited: a tick lost is sent again after the next quiet spell.
            if let Err((e, _)) = self.ticks.inner().send_result(record) {
                tracing::debug!(partition = p, error = %e, "cannot send a tick");
            }
        }
    }

    /// Reads partition `p` again from `from` (errors are logged: the next round retries).
    fn seek(&self, consumer: &BaseConsumer<Self>, p: u32, from: Offset) {
        if let Err(e) = consumer.seek(&self.topic, p as i32, from, Duration::from_secs(5)) {
            tracing::error!(partition = p, error = %e, ?from, "cannot seek in the partition");
        }
    }

    /// Follows one partition against its high watermark: rebuilds a state past the end, goes
    /// live once caught up, reads a stalled partition again. Its lag, when known.
    fn follow(
        &self,
        consumer: &BaseConsumer<Self>,
        p: u32,
        state: &mut PartitionState,
        high: i64,
        text_fed: u64,
        now: SystemTime,
    ) -> Option<u64> {
        if (high.max(0) as u64) < state.next {
            // Past the end: a new topic under the old name (or a fetch not reported
            // yet). Five rounds in a row: the state is not this topic's; rebuild it.
            state.ahead_seen += 1;
            if state.ahead_seen >= 5 {
                tracing::error!(
                    partition = p,
                    position = state.next,
                    end = high,
                    "the state is past the partition's end (a new topic under the old name?); rebuilding the partition from the topic"
                );
                let _ = std::fs::remove_dir_all(self.partition_dir(p));
                *state = self.load(p);
                self.seek(consumer, p, Offset::Beginning);
            }
            return None;
        }
        state.ahead_seen = 0;
        let end = high.max(0) as u64;
        if end <= state.next && !state.alerting {
            // Caught up: clocks to now, what is active to the dispatcher, then
            // follow changes live.
            crate::clock::go_live(&mut state.projection, &state.alerts);
            state.alerting = true;
            tracing::info!(partition = p, "partition caught up; SLA alerts live");
        }
        // Where the partition is read: its texts may be read again behind the projection.
        let position = state.next.min(text_fed);
        let lag = end.saturating_sub(position);
        if state.progress.0 != position || lag == 0 {
            state.progress = (position, now);
        } else if now.duration_since(state.progress.1).unwrap_or_default() >= STALL
            && state.stall_reread_at != Some(position)
        {
            // Records exist after the position but none arrive: a broker that
            // cannot start a fetch inside a record batch (tansu 0.6) serves
            // nothing. Read from the start, skipping what the state has.
            tracing::warn!(
                partition = p,
                position,
                high,
                "partition stalled; reading it again from its start"
            );
            self.metrics
                .kafka_errors
                .with_label_values(&["stall"])
                .inc();
            state.stall_reread_at = Some(position);
            state.progress = (position, now);
            self.seek(consumer, p, Offset::Beginning);
        }
        Some(lag)
    }

    /// Checkpoints every partition (at shutdown).
    fn checkpoint_all(&self) {
        let mut owned = lock(&self.owned);
        let parts: Vec<u32> = owned.parts.keys().copied().collect();
        for p in parts {
            if let Some(state) = owned.parts.get_mut(&p)
                && state.since_checkpoint > 0
            {
                self.checkpoint_with(p, state, true);
            }
        }
        self.save_text_order(&mut owned, true);
    }
}

/// The writer's time of a tick record, `None` for any other record.
fn tick_time(msg: &BorrowedMessage<'_>) -> Option<i64> {
    let headers = msg.headers()?;
    headers
        .iter()
        .find(|h| h.key == HEADER_TICK)
        .and_then(|h| std::str::from_utf8(h.value?).ok()?.parse().ok())
}

/// Milliseconds since the Unix epoch.
fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Brings the cluster indices of partition `p`'s snapshot blocks up to date: blocks that
/// are new, have grown, or hold tickets the text order placed since.
fn cluster_blocks(text: &mut TextOrder, p: u32, state: &mut PartitionState) {
    let changed: std::collections::BTreeSet<usize> = text
        .take_changed(p)
        .into_iter()
        .map(|t| t as usize / tables::TICKET_BLOCK)
        .collect();
    let blocks = &state.snapshot.tickets;
    state.clusters.truncate(blocks.len());
    for (b, batch) in blocks.iter().enumerate() {
        let rows = batch.num_rows();
        let stale = state
            .clusters
            .get(b)
            .is_none_or(|c| c.len() != rows || changed.contains(&b));
        if stale {
            let start = b * tables::TICKET_BLOCK;
            let fresh = text.clusters_of(p, start..start + rows);
            if b < state.clusters.len() {
                state.clusters[b] = fresh;
            } else {
                state.clusters.push(fresh);
            }
        }
    }
}

/// Handle to the running projector thread.
#[derive(Debug)]
pub struct ProjectorHandle {
    stop: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl ProjectorHandle {
    /// True once partitions are assigned and loaded and the lag is under the bound.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Checkpoints the partitions and stops.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProjectorHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Assigns every partition of the topic and starts projecting on a thread of its own.
pub fn start(
    settings: &config::Kafka,
    storage: &config::Storage,
    setup: Setup,
    alerts: AlertSink,
    query: QueryEngine,
    metrics: Metrics,
) -> Result<ProjectorHandle, KafkaLogError> {
    let ready = Arc::new(AtomicBool::new(false));
    // Every error kind exists from zero, so rate() and alerts see the first one.
    for kind in [
        "all_brokers_down",
        "transport",
        "authentication",
        "other",
        "gap",
        "stall",
        "gap_accepted",
    ] {
        metrics.kafka_errors.with_label_values(&[kind]);
    }
    let dir = storage.data_dir.join("kafka").join(&settings.topic);
    let text_dir = dir.join("text");
    let projector = Projector {
        topic: settings.topic.clone(),
        dir,
        owned: Mutex::new(Owned {
            parts: BTreeMap::new(),
            assigned: false,
            text: TextOrderFile::new(&text_dir)
                .load(setup.text.clone())
                .unwrap_or_else(|| TextOrder::new(setup.text.clone())),
            text_saved: (0, SystemTime::now()),
        }),
        dead_letters: EventProducer::to_topic(settings, &settings.dead_letter_topic)?,
        ticks: EventProducer::to_topic(settings, &settings.topic)?,
        undelivered: Mutex::new(DeadLetters::default()),
        high_watermarks: Mutex::new(HashMap::new()),
        checkpoint_every: storage.checkpoint_every_events,
        checkpoint_interval: Duration::from_secs(storage.checkpoint_interval_seconds),
        ready_max_lag: settings.ready_max_lag,
        ready: ready.clone(),
        query,
        metrics,
        setup,
        alerts,
    };
    // Not a group member: the partitions are assigned by hand, every one of them. librdkafka
    // wants a group id all the same; this one is never joined and nothing is committed to it.
    let mut config = client_config(settings);
    config
        .set("group.id", format!("{}.replica", settings.group))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("statistics.interval.ms", "1000")
        .set("isolation.level", "read_committed");
    for (key, value) in settings
        .properties
        .iter()
        .chain(&settings.consumer_properties)
    {
        if !super::election::GROUP_ONLY.contains(&key.as_str()) {
            config.set(key, super::resolve(value));
        }
    }
    let consumer: BaseConsumer<Projector> = config
        .create_with_context(projector)
        .map_err(KafkaLogError::Client)?;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::Builder::new()
        .name("deskwatch-projector".into())
        .spawn(move || run(consumer, s))
        .map_err(|e| KafkaLogError::Client(KafkaError::Subscription(e.to_string())))?;
    Ok(ProjectorHandle {
        stop,
        ready,
        thread: Mutex::new(Some(thread)),
    })
}

fn run(consumer: BaseConsumer<Projector>, stop: Arc<AtomicBool>) {
    let ctx = consumer.context().clone();
    ctx.take_partitions(&consumer);
    crate::clock::drive(&mut KafkaDriver {
        consumer,
        ctx,
        stop,
        unpublished: false,
        idle: true,
        last_publish: Instant::now(),
        last_housekeeping: Instant::now(),
        last_discovery: Instant::now(),
    });
}

/// The Kafka backend's driver: a replica projecting every partition of the topic.
struct KafkaDriver {
    consumer: BaseConsumer<Projector>,
    ctx: Arc<Projector>,
    stop: Arc<AtomicBool>,
    /// Records applied since the last snapshot was published.
    unpublished: bool,
    /// The last poll found nothing.
    idle: bool,
    last_publish: Instant,
    last_housekeeping: Instant,
    last_discovery: Instant,
}

impl crate::clock::Driver for KafkaDriver {
    fn step(&mut self, wait: Duration) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        self.idle = match self.consumer.poll(wait) {
            Some(Ok(msg)) => {
                self.ctx.handle(&self.consumer, &msg);
                self.unpublished = true;
                false
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "consumer error");
                true
            }
            None => true,
        };
        true
    }

    fn upkeep(&mut self) {
        if self.unpublished && (self.idle || self.last_publish.elapsed() >= PUBLISH_EVERY) {
            self.ctx.publish();
            self.unpublished = false;
            self.last_publish = Instant::now();
        }
        if self.last_housekeeping.elapsed() >= Duration::from_secs(1) {
            self.ctx.housekeeping(&self.consumer);
            self.last_housekeeping = Instant::now();
        }
        if self.last_discovery.elapsed() >= DISCOVER_EVERY {
            self.ctx.take_partitions(&self.consumer);
            self.last_discovery = Instant::now();
        }
    }

    fn beat(&mut self, pulse: &mut crate::clock::Pulse) {
        self.ctx.beat(pulse);
    }

    fn finish(&mut self) {
        self.ctx.publish();
        self.ctx.checkpoint_all();
        self.ctx.ready.store(false, Ordering::Relaxed);
        let _ = self.consumer.unassign();
        tracing::info!("projector stopped");
    }
}
