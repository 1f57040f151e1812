//! [`EventLog`] over a Kafka topic: appends are acknowledged by the broker (`acks=all`,
//! idempotent producer), the end is the partitions' high watermarks, and a reader reads every
//! partition from a position up to the end it had when it was made.
//!
//! The service's projection does not read through this trait but as a consumer-group member
//! ([`crate::kafka::consumer`]), so that instances can split the partitions; this is the log as
//! the command-line tools and benchmarks see it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{EventProducer, KafkaLogError, client_config};
use crate::config;
use crate::log::{AppendRecord, EventLog, LogError, LogPosition, LogReader, Placement, Record};

/// How long a metadata or watermark request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A reader gives up when no record arrives for this long before its end.
const READ_STALL: Duration = Duration::from_secs(60);

/// The event topic as a log.
pub struct KafkaLog {
    settings: Box<config::Kafka>,
    producer: EventProducer,
    metadata: BaseConsumer,
}

impl std::fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaLog")
            .field("topic", &self.settings.topic)
            .finish_non_exhaustive()
    }
}

fn client_error(e: rdkafka::error::KafkaError) -> LogError {
    LogError::from(KafkaLogError::Client(e))
}

impl KafkaLog {
    /// Connects lazily to the brokers of `settings`.
    pub fn open(settings: &config::Kafka) -> Result<KafkaLog, LogError> {
        let producer = EventProducer::new(settings)?;
        let metadata: BaseConsumer = client_config(settings).create().map_err(client_error)?;
        Ok(KafkaLog {
            settings: Box::new(settings.clone()),
            producer,
            metadata,
        })
    }

    /// The producer (for callers that append asynchronously).
    pub fn producer(&self) -> &EventProducer {
        &self.producer
    }

    /// Partitions of the topic.
    pub fn partitions(&self) -> Result<Vec<u32>, LogError> {
        partitions(&self.metadata, &self.settings.topic)
    }
}

fn partitions(consumer: &BaseConsumer, topic: &str) -> Result<Vec<u32>, LogError> {
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(client_error)?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(Vec::new());
    };
    if let Some(e) = t.error() {
        return Err(LogError::from(KafkaLogError::CreateTopic {
            topic: topic.to_owned(),
            reason: format!("{:?}", rdkafka::error::RDKafkaErrorCode::from(e)),
        }));
    }
    Ok(t.partitions().iter().map(|p| p.id() as u32).collect())
}

fn end(consumer: &BaseConsumer, topic: &str) -> Result<LogPosition, LogError> {
    let mut position = LogPosition::default();
    for p in partitions(consumer, topic)? {
        let (_, high) = consumer
            .fetch_watermarks(topic, p as i32, REQUEST_TIMEOUT)
            .map_err(client_error)?;
        position.0.insert(p, high.max(0) as u64);
    }
    Ok(position)
}

impl EventLog for KafkaLog {
    fn append(&mut self, records: &[AppendRecord<'_>]) -> Result<Vec<Placement>, LogError> {
        Ok(self.producer.append_blocking(records)?)
    }

    fn end(&self) -> Result<LogPosition, LogError> {
        end(&self.metadata, &self.settings.topic)
    }

    fn reader(&self, from: &LogPosition) -> Result<Box<dyn LogReader>, LogError> {
        let consumer: BaseConsumer = client_config(&self.settings)
            .set("group.id", format!("{}-reader", self.settings.group))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .map_err(client_error)?;
        let end = end(&consumer, &self.settings.topic)?;
        let mut tpl = TopicPartitionList::new();
        let mut next = BTreeMap::new();
        for (&p, &high) in &end.0 {
            let start = from.next_offset(p);
            if start < high {
                tpl.add_partition_offset(
                    &self.settings.topic,
                    p as i32,
                    Offset::Offset(start as i64),
                )
                .map_err(client_error)?;
                next.insert(p, start);
            }
        }
        consumer.assign(&tpl).map_err(client_error)?;
        Ok(Box::new(KafkaReader {
            consumer,
            end,
            next,
            current: None,
        }))
    }
}

/// Reads every partition from a position up to the end captured when it was made.
struct KafkaReader {
    consumer: BaseConsumer,
    end: LogPosition,
    /// Partitions not yet read to their end, with the next offset expected.
    next: BTreeMap<u32, u64>,
    current: Option<OwnedMessage>,
}

impl LogReader for KafkaReader {
    fn next_record(&mut self) -> Result<Option<Record<'_>>, LogError> {
        let mut last_progress = Instant::now();
        loop {
            if self.next.is_empty() {
                return Ok(None);
            }
            if last_progress.elapsed() > READ_STALL {
                return Err(LogError::from(KafkaLogError::Client(
                    rdkafka::error::KafkaError::MessageConsumption(
                        rdkafka::error::RDKafkaErrorCode::OperationTimedOut,
                    ),
                )));
            }
            let msg = match self.consumer.poll(Duration::from_millis(200)) {
                None => {
                    // The end may be a transaction marker, which is never delivered.
                    if let Ok(positions) = self.consumer.position() {
                        for e in positions.elements() {
                            if let Offset::Offset(o) = e.offset() {
                                let p = e.partition() as u32;
                                if o as u64 >= self.end.next_offset(p) {
                                    self.next.remove(&p);
                                }
                            }
                        }
                    }
                    continue;
                }
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "reader poll error");
                    continue;
                }
                Some(Ok(msg)) => msg,
            };
            last_progress = Instant::now();
            let p = msg.partition() as u32;
            let offset = msg.offset() as u64;
            let high = self.end.next_offset(p);
            let Some(next) = self.next.get_mut(&p) else {
                continue;
            };
            if offset < *next || offset >= high {
                continue;
            }
            *next = offset + 1;
            if *next >= high {
                self.next.remove(&p);
            }
            let tick = msg
                .headers()
                .is_some_and(|h| h.iter().any(|h| h.key == super::HEADER_TICK));
            if tick {
                continue; // a replica's tick, not an event (see `super::HEADER_TICK`)
            }
            self.current = Some(msg.detach());
            let current = self
                .current
                .as_ref()
                .map_or(&[][..], |m| m.payload().unwrap_or_default());
            return Ok(Some(Record {
                partition: p,
                offset,
                payload: current,
            }));
        }
    }
}
