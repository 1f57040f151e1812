//! Apache Kafka as the event log: client settings, topic creation, the event producer, and the
//! headers of dead-lettered records.
//!
//! Records are keyed by ticket id, so one ticket's events stay in one partition, in order. The
//! producer is idempotent with `acks=all`; an append returns only once the broker acknowledged
//! every record. The consumer side (a consumer-group member projecting the partitions it owns)
//! lives in [`consumer`]; [`log`] puts both behind the [`crate::log::EventLog`]
//! trait.

pub mod consumer;
pub mod election;
pub mod log;

use std::time::Duration;

use futures_util::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};

use crate::config::{self, Secret};
use crate::log::{AppendRecord, Placement};

/// Header naming the topic a dead-lettered record was read from.
pub const HEADER_TOPIC: &str = "deskwatch.original.topic";
/// Header naming its partition (decimal).
pub const HEADER_PARTITION: &str = "deskwatch.original.partition";
/// Header naming its offset (decimal).
pub const HEADER_OFFSET: &str = "deskwatch.original.offset";
/// Header naming the error class: `parse` (not an event) or `state` (an event the ticket's
/// state refuses).
pub const HEADER_ERROR_CLASS: &str = "deskwatch.error.class";
/// Header with the machine-readable reason (`invalid_json`, `unknown_type`, `unknown_ticket`…).
pub const HEADER_ERROR_REASON: &str = "deskwatch.error.reason";
/// Header with the human-readable message, naming the field at fault.
pub const HEADER_ERROR_MESSAGE: &str = "deskwatch.error.message";
/// Header of a tick: a record (empty payload) a replica appends to a quiet partition of the
/// event topic, with the writer's clock in milliseconds since the epoch (decimal). It tells
/// every replica the partition's time has moved on, so the tickets of the other partitions
/// can be placed in order (see [`crate::clustering::order`]); it is no event.
pub const HEADER_TICK: &str = "deskwatch.tick";

/// Properties deskwatch always sets on its producers; a `[log.kafka.properties]` entry cannot
/// weaken them.
const PRODUCER_GUARANTEES: [(&str, &str); 3] = [
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("max.in.flight.requests.per.connection", "5"),
];

/// Errors of the Kafka side.
#[derive(Debug, thiserror::Error)]
pub enum KafkaLogError {
    /// A client could not be created (bad property, unknown mechanism…).
    #[error("cannot create the Kafka client: {0}")]
    Client(KafkaError),
    /// The broker did not acknowledge some records in time.
    #[error(
        "Kafka did not acknowledge {failed} of {total} events ({first}); retrying is safe: events already stored are recognised by event_id"
    )]
    NotAcknowledged {
        /// Records not acknowledged.
        failed: usize,
        /// Records sent.
        total: usize,
        /// The first error.
        first: KafkaError,
    },
    /// Topics could not be created.
    #[error("cannot create Kafka topic {topic}: {reason}")]
    CreateTopic {
        /// Topic.
        topic: String,
        /// Why.
        reason: String,
    },
}

impl From<KafkaLogError> for crate::log::LogError {
    fn from(e: KafkaLogError) -> crate::log::LogError {
        crate::log::LogError::Broker(Box::new(e))
    }
}

/// A property value, with `env:NAME` read from the environment.
pub(crate) fn resolve(value: &Secret) -> String {
    match value.expose().strip_prefix("env:") {
        Some(var) => std::env::var(var).unwrap_or_default(),
        None => value.expose().to_owned(),
    }
}

/// The settings every client shares: brokers, client id, and the pass-through properties.
pub fn client_config(settings: &config::Kafka) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &settings.brokers)
        .set("client.id", "deskwatch")
        .set_log_level(RDKafkaLogLevel::Warning);
    for (key, value) in &settings.properties {
        c.set(key, resolve(value));
    }
    c
}

/// Producer settings: shared settings, batching defaults, then the guarantees.
pub fn producer_config(settings: &config::Kafka) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("compression.type", "lz4")
        .set(
            "message.timeout.ms",
            settings.delivery_timeout_ms.to_string(),
        );
    for (key, value) in client_config(settings).config_map() {
        c.set(key, value);
    }
    for (key, value) in &settings.producer_properties {
        c.set(key, resolve(value));
    }
    for (key, value) in PRODUCER_GUARANTEES {
        c.set(key, value);
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    c
}

/// Creates the event and dead-letter topics when they do not exist.
pub async fn ensure_topics(settings: &config::Kafka) -> Result<(), KafkaLogError> {
    let admin: AdminClient<DefaultClientContext> = client_config(settings)
        .create()
        .map_err(KafkaLogError::Client)?;
    let replication = TopicReplication::Fixed(settings.replication_factor as i32);
    let topics = [
        NewTopic::new(&settings.topic, settings.partitions as i32, replication),
        NewTopic::new(
            &settings.dead_letter_topic,
            settings.partitions as i32,
            TopicReplication::Fixed(settings.replication_factor as i32),
        ),
    ];
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(topics.iter(), &options)
        .await
        .map_err(|e| KafkaLogError::CreateTopic {
            topic: settings.topic.clone(),
            reason: e.to_string(),
        })?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(%topic, "Kafka topic created"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(KafkaLogError::CreateTopic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Appends events to the topic, keyed by ticket id.
#[derive(Clone)]
pub struct EventProducer {
    producer: FutureProducer,
    topic: String,
}

impl std::fmt::Debug for EventProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventProducer")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl EventProducer {
    /// A producer for `settings.topic`. Connects lazily: works while the broker is down.
    pub fn new(settings: &config::Kafka) -> Result<EventProducer, KafkaLogError> {
        Self::to_topic(settings, &settings.topic)
    }

    /// A producer for another topic (the dead letters, a benchmark's topic).
    pub fn to_topic(settings: &config::Kafka, topic: &str) -> Result<EventProducer, KafkaLogError> {
        let producer = producer_config(settings)
            .create()
            .map_err(KafkaLogError::Client)?;
        Ok(EventProducer {
            producer,
            topic: topic.to_owned(),
        })
    }

    /// The underlying producer.
    pub fn inner(&self) -> &FutureProducer {
        &self.producer
    }

    /// The topic written to.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Puts every record on the producer's queue, waiting while the queue is full.
    fn enqueue(&self, records: &[AppendRecord<'_>]) -> Result<Vec<DeliveryFuture>, KafkaError> {
        let mut pending = Vec::with_capacity(records.len());
        for r in records {
            let mut record = FutureRecord::to(&self.topic).key(r.key).payload(r.payload);
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(10));
                    }
                    Err((e, _)) => return Err(e),
                }
            }
        }
        Ok(pending)
    }

    /// Appends `records` and resolves once the broker acknowledged every one of them.
    pub async fn append(
        &self,
        records: &[AppendRecord<'_>],
    ) -> Result<Vec<Placement>, KafkaLogError> {
        let total = records.len();
        let pending = self
            .enqueue(records)
            .map_err(|first| KafkaLogError::NotAcknowledged {
                failed: total,
                total,
                first,
            })?;
        collect(join_all(pending).await, total)
    }

    /// [`EventProducer::append`] for callers outside an async runtime.
    pub fn append_blocking(
        &self,
        records: &[AppendRecord<'_>],
    ) -> Result<Vec<Placement>, KafkaLogError> {
        futures_executor::block_on(self.append(records))
    }

    /// Waits until every queued record is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}

fn collect<E>(
    results: Vec<Result<OwnedDeliveryResult, E>>,
    total: usize,
) -> Result<Vec<Placement>, KafkaLogError> {
    let mut placements = Vec::with_capacity(results.len());
    let mut failed = 0;
    let mut first = None;
    for result in results {
        match result {
            Ok(Ok(d)) => placements.push(Placement {
                partition: d.partition as u32,
                offset: d.offset as u64,
            }),
            Ok(Err((e, _))) => {
                failed += 1;
                first.get_or_insert(e);
            }
            Err(_) => {
                failed += 1;
                first.get_or_insert(KafkaError::Canceled);
            }
        }
    }
    match first {
        None => Ok(placements),
        Some(first) => Err(KafkaLogError::NotAcknowledged {
            failed,
            total,
            first,
        }),
    }
}
