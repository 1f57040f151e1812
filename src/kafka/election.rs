//! Who sends webhook alerts. Every replica evaluates every clock; Alertmanager deduplicates what
//! they send, webhook receivers cannot. So the replicas join the consumer group (`group` of
//! `[log.kafka]`) only to be elected: the partitions the group assigns to an instance are the
//! ones whose webhook alerts it sends. It reads nothing through the group (the partitions are
//! paused the moment they are assigned; the projector reads every partition by itself). When
//! an instance dies, the group gives its partitions to the others after `session.timeout.ms`,
//! and the next resend of active alerts (`[sla.alerts] resend-seconds`) goes out from them.
//! Kafka's group protocol is the only membership there is: no gossip, no RPC between
//! instances.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;

use super::{KafkaLogError, client_config};
use crate::config;
use crate::telemetry::Metrics;

/// Consumer properties that only make sense for the group member (the projector is none).
pub const GROUP_ONLY: &[&str] = &["group.id", "group.instance.id", "enable.auto.commit"];

/// The partitions this instance is elected for.
#[derive(Debug, Default)]
struct Led(RwLock<BTreeSet<u32>>);

impl Led {
    fn set(&self) -> std::sync::RwLockWriteGuard<'_, BTreeSet<u32>> {
        self.0.write().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self) -> std::sync::RwLockReadGuard<'_, BTreeSet<u32>> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// The group member's callbacks.
struct Elector {
    topic: String,
    led: Arc<Led>,
    metrics: Metrics,
    /// What the last assignment gave, and when this member last rejoined as a new one.
    last: Mutex<(BTreeSet<u32>, Option<Instant>)>,
    /// Set by a rebalance that changed nothing: the election thread rejoins as a new member.
    rejoin: Arc<AtomicBool>,
}

/// Rejoin as a new member at most this often (see [`Elector::stale`]).
const REJOIN_EVERY: Duration = Duration::from_secs(60);

impl Elector {
    /// A rebalance that gives back exactly the partitions this member had, and not all of
    /// them: on tansu 0.6 that is what follows the eviction of a dead member — the group stays
    /// at its generation and answers the rejoin from the stored assignment, so the dead
    /// member's partitions are never handed over. Rejoining as a new member re-forms the group.
    /// At most once per [`REJOIN_EVERY`], so live members that are rightly given the same
    /// partitions settle after one round.
    fn stale(&self, assigned: &BTreeSet<u32>, partitions: usize) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let same = !assigned.is_empty() && *assigned == last.0 && assigned.len() < partitions;
        last.0 = assigned.clone();
        let due = last.1.is_none_or(|at| at.elapsed() >= REJOIN_EVERY);
        if same && due {
            last.1 = Some(Instant::now());
            return true;
        }
        false
    }
}

impl ClientContext for Elector {}

impl ConsumerContext for Elector {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let ours = |tpl: &TopicPartitionList| -> Vec<u32> {
            tpl.elements()
                .iter()
                .filter(|e| e.topic() == self.topic && e.partition() >= 0)
                .map(|e| e.partition() as u32)
                .collect()
        };
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let result = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                // Elected, not reading: the projector reads every partition itself.
                let paused = consumer.pause(tpl);
                if let Err(e) = result.and(paused) {
                    tracing::error!(error = %e, "cannot take the elected partitions");
                }
                let mut led = self.led.set();
                if !cooperative {
                    led.clear();
                }
                led.extend(ours(tpl));
                tracing::info!(partitions = ?*led, "elected to send the webhook alerts of these partitions");
                let partitions = consumer
                    .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
                    .ok()
                    .and_then(|m| m.topics().first().map(|t| t.partitions().len()))
                    .unwrap_or(usize::MAX);
                if self.stale(&led, partitions) {
                    tracing::warn!(partitions = ?*led, "the group gave back the same partitions after a rebalance; rejoining as a new member so it re-forms");
                    self.rejoin.store(true, Ordering::Relaxed);
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let mut led = self.led.set();
                for p in ours(tpl) {
                    led.remove(&p);
                }
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    tracing::error!(error = %e, "cannot release the revoked partitions");
                }
                tracing::info!(partitions = ?*led, "webhook partitions revoked");
            }
            other => {
                tracing::error!(error = ?other, "election rebalance failed; sending no webhook alerts until the next one");
                self.led.set().clear();
                let _ = consumer.unassign();
            }
        }
        self.metrics
            .kafka_webhook_partitions
            .set(self.led.get().len() as i64);
    }
}

/// A running election; [`crate::alert::Leader`] for the alert dispatcher.
#[derive(Debug)]
pub struct Election {
    led: Arc<Led>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl crate::alert::Leader for Election {
    fn leads(&self, partition: u32) -> bool {
        self.led.get().contains(&partition)
    }
}

impl Election {
    /// Leaves the group (the others take this instance's partitions at once) and stops.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Joins the group of `settings` to be elected.
pub fn start(settings: &config::Kafka, metrics: Metrics) -> Result<Arc<Election>, KafkaLogError> {
    let mut config = client_config(settings);
    config
        .set("group.id", &settings.group)
        .set("enable.auto.commit", "false")
        .set("partition.assignment.strategy", "roundrobin")
        .set("max.poll.interval.ms", "10000");
    for (key, value) in settings
        .properties
        .iter()
        .chain(&settings.consumer_properties)
    {
        if key != "group.id" && key != "enable.auto.commit" {
            config.set(key, super::resolve(value));
        }
    }
    let led = Arc::new(Led::default());
    let rejoin = Arc::new(AtomicBool::new(false));
    let consumer: BaseConsumer<Elector> = config
        .create_with_context(Elector {
            topic: settings.topic.clone(),
            led: led.clone(),
            metrics,
            last: Mutex::new((BTreeSet::new(), None)),
            rejoin: rejoin.clone(),
        })
        .map_err(KafkaLogError::Client)?;
    let topic = settings.topic.clone();
    consumer
        .subscribe(&[&settings.topic])
        .map_err(KafkaLogError::Client)?;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let thread = std::thread::Builder::new()
        .name("deskwatch-election".into())
        .spawn(move || {
            while !s.load(Ordering::Relaxed) {
                // Keeps the membership alive and runs the rebalance callbacks; the partitions
                // are paused, so nothing is read.
                let _ = consumer.poll(Duration::from_millis(200));
                if rejoin.swap(false, Ordering::Relaxed) {
                    consumer.unsubscribe();
                    if let Err(e) = consumer.subscribe(&[&topic]) {
                        tracing::error!(error = %e, "cannot rejoin the election group");
                    }
                }
            }
            consumer.unsubscribe();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && consumer.assignment().is_ok_and(|a| a.count() > 0) {
                let _ = consumer.poll(Duration::from_millis(50));
            }
        })
        .map_err(|e| KafkaLogError::Client(KafkaError::Subscription(e.to_string())))?;
    Ok(Arc::new(Election {
        led,
        stop,
        thread: Mutex::new(Some(thread)),
    }))
}
