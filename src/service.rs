//! The running service: the event log, the projection that follows it, and the published
//! snapshots that queries read. Two backends, chosen by `[log] kind`:
//!
//! - **embedded**: the engine on its own writer thread. The writer takes every submission
//!   waiting in the channel, decides and appends them with one durable write (group commit),
//!   publishes a new snapshot, then answers each submitter. It checkpoints on a schedule and
//!   once more at shutdown.
//! - **kafka**: submissions are produced to the topic and answered once the broker acknowledged
//!   them; a consumer-group member ([`crate::kafka::consumer`]) projects the partitions this
//!   instance owns, whoever produced the records.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alert::AlertSink;
use crate::clock::Pulse;
use crate::config::{Config, LogKind, Storage};
use crate::engine::{Engine, EngineError, Submission};
use crate::event::TicketEvent;
use crate::kafka::consumer::ProjectorHandle;
use crate::kafka::{EventProducer, KafkaLogError};
use crate::log::{AppendRecord, Placement};
use crate::monitor::MonitorError;
use crate::projection::Outcome;
use crate::query::{QueryEngine, QueryError};
use crate::telemetry::Metrics;

/// Most events decided in one group commit.
const MAX_GROUP_EVENTS: usize = 50_000;

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The data directory could not be opened.
    #[error("cannot open the data directory: {0}")]
    Open(#[from] EngineError),
    /// The query engine could not be set up.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// Too many submissions are waiting; retry later.
    #[error("the service is busy; retry the request")]
    Busy,
    /// The writer has stopped.
    #[error("the service is shutting down")]
    Stopped,
    /// The log could not make the events durable; none of them were accepted.
    #[error("the events could not be made durable: {0}")]
    Durability(Arc<dyn std::error::Error + Send + Sync>),
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
    /// The Kafka clients could not be created.
    #[error(transparent)]
    Kafka(#[from] KafkaLogError),
}

/// What became of a submitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Receipt {
    /// Decided by the projection and, when applied, durable in the embedded log.
    Decided(Outcome),
    /// Acknowledged by Kafka; the instance owning the partition decides it.
    Appended(Placement),
}

/// One event to submit, with its JSON bytes.
pub type Item = (TicketEvent, Vec<u8>);

enum Command {
    Submit {
        items: Vec<Item>,
        reply: oneshot::Sender<Result<Vec<Outcome>, Arc<dyn std::error::Error + Send + Sync>>>,
    },
    Shutdown,
}

/// Handle to the running backend and the query engine.
#[derive(Debug)]
pub struct Service {
    backend: Backend,
    /// SQL over the published snapshots.
    pub query: QueryEngine,
    /// Metrics.
    pub metrics: Metrics,
    /// The cost model (`[cost]`).
    pub cost: crate::staffing::model::CostConfig,
    /// The configuration it runs with (the base of a what-if replay).
    pub config: Arc<Config>,
    /// One what-if replay at a time.
    pub replays: tokio::sync::Semaphore,
    /// Where SLA and problem alerts go; [`AlertSink::close`] flushes it after [`Service::shutdown`].
    pub alerts: AlertSink,
    /// The monitors (recurring view, cost and staffing), under `stop`.
    monitors: tokio::sync::Mutex<JoinSet<Result<(), MonitorError>>>,
    /// Cancelled by [`Service::shutdown`]: the monitors end.
    stop: CancellationToken,
}

/// Starts the monitors on the current tokio runtime (none: none are started, as in a CLI
/// command that only reads).
fn start_monitors(
    config: &Config,
    query: &QueryEngine,
    metrics: &Metrics,
    alerts: &AlertSink,
    stop: &CancellationToken,
) -> JoinSet<Result<(), MonitorError>> {
    let mut set = JoinSet::new();
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return set;
    };
    set.spawn_on(
        crate::monitor::recurring::run(
            query.clone(),
            metrics.clone(),
            alerts.clone(),
            config.recurring.clone(),
            stop.clone(),
        ),
        &handle,
    );
    set.spawn_on(
        crate::monitor::cost::run(
            query.clone(),
            metrics.clone(),
            config.cost.clone(),
            stop.clone(),
        ),
        &handle,
    );
    set
}

#[derive(Debug)]
enum Backend {
    Embedded {
        tx: SyncSender<Command>,
        ready: Arc<AtomicBool>,
        writer: std::sync::Mutex<Option<JoinHandle<()>>>,
    },
    Kafka {
        producer: EventProducer,
        projector: ProjectorHandle,
        /// Elects the sender of webhook alerts per partition (when there are webhooks).
        election: Option<Arc<crate::kafka::election::Election>>,
    },
}

impl Service {
    /// The embedded log's directory (`None` with Kafka).
    pub fn log_dir(&self) -> Option<std::path::PathBuf> {
        match self.backend {
            Backend::Embedded { .. } => Some(self.config.storage.data_dir.join("log")),
            Backend::Kafka { .. } => None,
        }
    }

    /// Starts the backend `config.log.kind` names.
    pub fn start(config: &Config, metrics: Metrics) -> Result<Service, ServiceError> {
        match config.log.kind {
            LogKind::Embedded => Service::start_embedded(config, metrics),
            LogKind::Kafka => Service::start_kafka(config, metrics),
        }
    }

    /// Reads every partition of `config.log.kafka`'s topic (a full replica), and joins its
    /// consumer group to be elected for webhook alerts. Does not wait for the broker: while it
    /// is down the service is alive (`/healthz`) but not ready.
    pub fn start_kafka(config: &Config, metrics: Metrics) -> Result<Service, ServiceError> {
        let settings = &config.log.kafka;
        if settings.create_topics
            && let Err(e) = futures_executor::block_on(crate::kafka::ensure_topics(settings))
        {
            tracing::warn!(error = %e, "cannot make sure the topics exist; continuing");
        }
        let query = QueryEngine::with_limits(None, &config.query)?;
        let producer = EventProducer::new(settings)?;
        let alerts = crate::alert::start(&config.sla.alerts, metrics.clone());
        // Every replica sends to Alertmanager, which deduplicates; webhooks go from the
        // instance the consumer group elects for each partition.
        let election = if config.sla.alerts.webhooks.is_empty() {
            None
        } else {
            let e = crate::kafka::election::start(settings, metrics.clone())?;
            alerts.elect_with(e.clone());
            Some(e)
        };
        query.set_recurring(config.recurring.view());
        let stop = CancellationToken::new();
        let monitors = start_monitors(config, &query, &metrics, &alerts, &stop);
        let projector = crate::kafka::consumer::start(
            settings,
            &config.storage,
            config.setup(),
            alerts.clone(),
            query.clone(),
            metrics.clone(),
        )?;
        tracing::info!(brokers = %settings.brokers, topic = %settings.topic, group = %settings.group, "reading every partition of the topic");
        Ok(Service {
            backend: Backend::Kafka {
                producer,
                projector,
                election,
            },
            query,
            metrics,
            cost: config.cost.clone(),
            config: Arc::new(config.clone()),
            replays: tokio::sync::Semaphore::new(1),
            alerts,
            monitors: tokio::sync::Mutex::new(monitors),
            stop,
        })
    }

    /// Opens the data directory (recovering from checkpoint and log) and starts the writer.
    /// SLA alerts go to the receivers of `[sla.alerts]` when a tokio runtime is running.
    pub fn start_embedded(config: &Config, metrics: Metrics) -> Result<Service, ServiceError> {
        let storage = &config.storage;
        let mut engine =
            Engine::open_with(&storage.data_dir, config.sla_rules(), config.setup().text)?;
        let query = QueryEngine::with_limits(None, &config.query)?;
        let snapshot = engine.snapshot(&query.current());
        query.publish(snapshot);
        update_gauges(&metrics, &engine);
        let alerts = crate::alert::start(&config.sla.alerts, metrics.clone());
        query.set_recurring(config.recurring.view());
        let stop = CancellationToken::new();
        let monitors = start_monitors(config, &query, &metrics, &alerts, &stop);
        // Bring the clocks to now, tell the dispatcher what is active, then follow changes.
        let projection = engine.projection_mut();
        let now = crate::clock::go_live(projection, &alerts);
        metrics.publish_sla(&projection.sla_report(now));
        let (tx, rx) = mpsc::sync_channel(1024);
        let ready = Arc::new(AtomicBool::new(true));
        let (q, m, r, s) = (
            query.clone(),
            metrics.clone(),
            ready.clone(),
            storage.clone(),
        );
        let writer = std::thread::Builder::new()
            .name("deskwatch-writer".into())
            .spawn({
                let alerts = alerts.clone();
                move || {
                    crate::clock::drive(&mut Writer {
                        interval: Duration::from_secs(s.checkpoint_interval_seconds),
                        last_checkpoint: Instant::now(),
                        engine,
                        rx,
                        query: q,
                        metrics: m,
                        ready: r,
                        storage: s,
                        alerts,
                    })
                }
            })
            .map_err(ServiceError::Thread)?;
        Ok(Service {
            backend: Backend::Embedded {
                tx,
                ready,
                writer: std::sync::Mutex::new(Some(writer)),
            },
            query,
            metrics,
            cost: config.cost.clone(),
            config: Arc::new(config.clone()),
            replays: tokio::sync::Semaphore::new(1),
            alerts,
            monitors: tokio::sync::Mutex::new(monitors),
            stop,
        })
    }

    /// Embedded: while the writer runs. Kafka: once the owned partitions are loaded and the
    /// lag is under `log.kafka.ready-max-lag`.
    pub fn is_ready(&self) -> bool {
        match &self.backend {
            Backend::Embedded { ready, .. } => ready.load(Ordering::Relaxed),
            Backend::Kafka { projector, .. } => projector.is_ready(),
        }
    }

    /// Submits events. Embedded: resolves once they are durable and visible to queries, with
    /// the projection's decision. Kafka: resolves once the broker acknowledged every one.
    pub async fn submit(&self, items: Vec<Item>) -> Result<Vec<Receipt>, ServiceError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let tx = match &self.backend {
            Backend::Embedded { tx, .. } => tx,
            Backend::Kafka { producer, .. } => {
                let records: Vec<AppendRecord<'_>> = items
                    .iter()
                    .map(|(event, raw)| AppendRecord {
                        key: &event.ticket_id,
                        payload: raw,
                    })
                    .collect();
                let started = Instant::now();
                let placements = producer
                    .append(&records)
                    .await
                    .map_err(|e| ServiceError::Durability(Arc::new(e)))?;
                self.metrics
                    .log_append_seconds
                    .observe(started.elapsed().as_secs_f64());
                self.metrics.log_appends.inc();
                self.metrics
                    .log_appended_events
                    .inc_by(placements.len() as u64);
                return Ok(placements.into_iter().map(Receipt::Appended).collect());
            }
        };
        let (reply, answer) = oneshot::channel();
        match tx.try_send(Command::Submit { items, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ServiceError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(ServiceError::Stopped),
        }
        match answer.await {
            Ok(Ok(outcomes)) => Ok(outcomes.into_iter().map(Receipt::Decided).collect()),
            Ok(Err(e)) => Err(ServiceError::Durability(e)),
            Err(_) => Err(ServiceError::Stopped),
        }
    }

    /// Waits until a monitor fails (its error) or `cancel` is cancelled (`Ok`). A monitor that
    /// ends without failing was stopped by [`Service::shutdown`].
    pub async fn watch(&self, cancel: &CancellationToken) -> Result<(), MonitorError> {
        let mut monitors = self.monitors.lock().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                done = monitors.join_next() => match done {
                    None => {
                        cancel.cancelled().await;
                        return Ok(());
                    }
                    Some(Ok(Ok(()))) => {}
                    Some(Ok(Err(e))) => return Err(e),
                    Some(Err(e)) => {
                        return Err(MonitorError::Failed {
                            monitor: "background",
                            detail: e.to_string(),
                        });
                    }
                },
            }
        }
    }

    /// Adds a task to the monitors (tests: a monitor that fails).
    #[cfg(test)]
    pub(crate) async fn add_monitor(
        &self,
        task: impl std::future::Future<Output = Result<(), MonitorError>> + Send + 'static,
    ) {
        self.monitors.lock().await.spawn(task);
    }

    /// Stops after a final checkpoint (Kafka: and leaves the consumer group).
    pub fn shutdown(&self) {
        self.stop.cancel();
        match &self.backend {
            Backend::Embedded { tx, writer, .. } => {
                let _ = tx.send(Command::Shutdown);
                let handle = writer.lock().ok().and_then(|mut w| w.take());
                if let Some(h) = handle {
                    let _ = h.join();
                }
            }
            Backend::Kafka {
                producer,
                projector,
                election,
            } => {
                let _ = producer.flush(Duration::from_secs(10));
                projector.shutdown();
                if let Some(e) = election {
                    e.shutdown();
                }
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn update_gauges(metrics: &Metrics, engine: &Engine) {
    let end = engine.log().next_offset();
    let pos = engine.position().next_offset(0);
    metrics.log_end_offset.set(end as i64);
    metrics.log_size_bytes.set(engine.log().size_bytes() as i64);
    metrics.projection_position.set(pos as i64);
    metrics
        .projection_lag_records
        .set(end.saturating_sub(pos) as i64);
    metrics
        .tickets
        .set(engine.projection().ticket_count() as i64);
    metrics.events.set(engine.projection().event_count() as i64);
    for (part, bytes) in engine.projection().memory() {
        metrics
            .state_bytes
            .with_label_values(&[part])
            .set(bytes as i64);
    }
}

fn checkpoint(engine: &mut Engine, metrics: &Metrics) {
    match engine.checkpoint() {
        Ok(path) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            metrics
                .checkpoint_last_success_timestamp_seconds
                .set(now as i64);
            tracing::debug!(path = %path.display(), "checkpoint written");
        }
        Err(e) => {
            metrics.checkpoint_failures.inc();
            tracing::error!(error = %e, "checkpoint failed; the log still has every event");
        }
    }
}

/// The embedded backend's driver: one thread owns the engine; submissions waiting in the
/// channel are decided and appended together (group commit).
struct Writer {
    engine: Engine,
    rx: mpsc::Receiver<Command>,
    query: QueryEngine,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    storage: Storage,
    alerts: AlertSink,
    interval: Duration,
    last_checkpoint: Instant,
}

/// A group of submissions and where to answer each.
type Group = Vec<(
    Vec<Item>,
    oneshot::Sender<Result<Vec<Outcome>, Arc<dyn std::error::Error + Send + Sync>>>,
)>;

impl crate::clock::Driver for Writer {
    fn step(&mut self, wait: Duration) -> bool {
        let first = match self.rx.recv_timeout(wait) {
            Ok(Command::Submit { items, reply }) => (items, reply),
            Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => return false,
            Err(RecvTimeoutError::Timeout) => return true,
        };
        let mut group = vec![first];
        let mut total = group[0].0.len();
        let mut stop = false;
        while total < MAX_GROUP_EVENTS {
            match self.rx.try_recv() {
                Ok(Command::Submit { items, reply }) => {
                    total += items.len();
                    group.push((items, reply));
                }
                Ok(Command::Shutdown) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        self.commit(group);
        if stop {
            // The last group is durable; checkpoint it like any other before stopping.
            self.upkeep();
        }
        !stop
    }

    fn upkeep(&mut self) {
        let since = self.engine.events_since_checkpoint();
        if since >= self.storage.checkpoint_every_events
            || (since > 0 && self.last_checkpoint.elapsed() >= self.interval)
        {
            checkpoint(&mut self.engine, &self.metrics);
            self.last_checkpoint = Instant::now();
        }
    }

    fn beat(&mut self, pulse: &mut Pulse) {
        pulse.beat(
            [(self.engine.projection_mut(), &self.alerts)],
            &self.metrics,
        );
    }

    fn finish(&mut self) {
        self.ready.store(false, Ordering::Relaxed);
        if self.engine.events_since_checkpoint() > 0 {
            checkpoint(&mut self.engine, &self.metrics);
        }
        tracing::info!("writer stopped");
    }
}

impl Writer {
    /// Decides and appends a group with one durable write, publishes the snapshot, then
    /// answers each submitter.
    fn commit(&mut self, group: Group) {
        let (engine, metrics) = (&mut self.engine, &self.metrics);
        let submissions: Vec<Submission<'_>> = group
            .iter()
            .flat_map(|(items, _)| items.iter())
            .map(|(event, raw)| Submission {
                event,
                raw,
                text: None,
            })
            .collect();
        let started = Instant::now();
        let result = engine.submit(submissions);
        metrics
            .log_append_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.log_appends.inc();
        match result {
            Ok(outcomes) => {
                let snapshot = engine.snapshot(&self.query.current());
                self.query.publish(snapshot);
                let (mut applied, mut dup, mut rej) = (0, 0, 0);
                for o in &outcomes {
                    match o {
                        Outcome::Applied => applied += 1,
                        Outcome::Duplicate => dup += 1,
                        Outcome::Rejected(r) => {
                            rej += 1;
                            metrics.ingest_rejected.with_label_values(&[r.reason]).inc();
                        }
                    }
                }
                metrics.log_appended_events.inc_by(applied);
                let c = &metrics.ingest_events;
                c.with_label_values(&["applied"]).inc_by(applied);
                c.with_label_values(&["duplicate"]).inc_by(dup);
                c.with_label_values(&["rejected"]).inc_by(rej);
                update_gauges(metrics, engine);
                let mut rest = outcomes.into_iter();
                for (items, reply) in group {
                    let mine: Vec<Outcome> = rest.by_ref().take(items.len()).collect();
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(e) => {
                // The engine rebuilt its state from disk; keep following SLA changes.
                engine.projection_mut().sla_mut().set_recording(true);
                let e: Arc<dyn std::error::Error + Send + Sync> = Arc::new(e);
                for (_, reply) in group {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> (tempfile::TempDir, Service) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::load(None).unwrap();
        config.storage.data_dir = dir.path().to_path_buf();
        let service = Service::start(&config, Metrics::new().unwrap()).unwrap();
        (dir, service)
    }

    #[tokio::test]
    async fn a_failing_monitor_ends_the_service_with_its_error() {
        let (_dir, service) = start();
        service
            .add_monitor(async {
                Err(MonitorError::Failed {
                    monitor: "test",
                    detail: "broken".into(),
                })
            })
            .await;
        let cancel = CancellationToken::new();
        let e = service.watch(&cancel).await.unwrap_err();
        assert_eq!(e.to_string(), "the test monitor failed: broken");
        // A panicking one too.
        service
            .add_monitor(async { panic!("the view's thread died") })
            .await;
        assert!(service.watch(&cancel).await.is_err());
        // Shut down, the real monitors end, and watching ends with the token.
        service.shutdown();
        cancel.cancel();
        assert!(service.watch(&cancel).await.is_ok());
        let mut monitors = service.monitors.lock().await;
        while let Some(done) = monitors.join_next().await {
            assert!(matches!(done, Ok(Ok(()))), "{done:?}");
        }
    }
}
