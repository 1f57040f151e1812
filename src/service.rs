//! The running service: the engine on its own writer thread, a channel of submissions, and the
//! published snapshots that queries read.
//!
//! The writer takes every submission waiting in the channel, decides and appends them with one
//! durable write (group commit), publishes a new snapshot, then answers each submitter. It also
//! checkpoints on a schedule and once more at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::oneshot;

use crate::config::Storage;
use crate::engine::{Engine, EngineError, Submission};
use crate::event::TicketEvent;
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
    Durability(String),
    /// The writer thread could not be started.
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
}

/// One event to submit, with its JSON bytes.
pub type Item = (TicketEvent, Vec<u8>);

enum Command {
    Submit {
        items: Vec<Item>,
        reply: oneshot::Sender<Result<Vec<Outcome>, String>>,
    },
    Shutdown,
}

/// Handle to the running writer and the query engine.
#[derive(Debug)]
pub struct Service {
    tx: SyncSender<Command>,
    /// SQL over the published snapshots.
    pub query: QueryEngine,
    /// Metrics.
    pub metrics: Metrics,
    ready: Arc<AtomicBool>,
    writer: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl Service {
    /// Opens the data directory (recovering from checkpoint and log) and starts the writer.
    pub fn start(storage: &Storage, metrics: Metrics) -> Result<Service, ServiceError> {
        let mut engine = Engine::open(&storage.data_dir)?;
        let query = QueryEngine::new()?;
        let snapshot = engine.snapshot(&query.current());
        query.publish(snapshot);
        update_gauges(&metrics, &engine);
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
            .spawn(move || writer_loop(engine, rx, q, m, r, s))
            .map_err(ServiceError::Thread)?;
        Ok(Service {
            tx,
            query,
            metrics,
            ready,
            writer: std::sync::Mutex::new(Some(writer)),
        })
    }

    /// True while the writer runs and the projection is caught up with the log.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Submits events; resolves once they are durable and visible to queries.
    pub async fn submit(&self, items: Vec<Item>) -> Result<Vec<Outcome>, ServiceError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Command::Submit { items, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(ServiceError::Busy),
            Err(TrySendError::Disconnected(_)) => return Err(ServiceError::Stopped),
        }
        match answer.await {
            Ok(Ok(outcomes)) => Ok(outcomes),
            Ok(Err(e)) => Err(ServiceError::Durability(e)),
            Err(_) => Err(ServiceError::Stopped),
        }
    }

    /// Stops the writer after a final checkpoint.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown);
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
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

fn writer_loop(
    mut engine: Engine,
    rx: mpsc::Receiver<Command>,
    query: QueryEngine,
    metrics: Metrics,
    ready: Arc<AtomicBool>,
    storage: Storage,
) {
    let interval = Duration::from_secs(storage.checkpoint_interval_seconds);
    let mut last_checkpoint = Instant::now();
    loop {
        let first = match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(Command::Submit { items, reply }) => (items, reply),
            Ok(Command::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                if engine.events_since_checkpoint() > 0 && last_checkpoint.elapsed() >= interval {
                    checkpoint(&mut engine, &metrics);
                    last_checkpoint = Instant::now();
                }
                continue;
            }
        };
        let mut group = vec![first];
        let mut total = group[0].0.len();
        let mut stop = false;
        while total < MAX_GROUP_EVENTS {
            match rx.try_recv() {
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
        let submissions: Vec<Submission<'_>> = group
            .iter()
            .flat_map(|(items, _)| items.iter())
            .map(|(event, raw)| Submission { event, raw })
            .collect();
        let started = Instant::now();
        let result = engine.submit(&submissions);
        metrics
            .log_append_seconds
            .observe(started.elapsed().as_secs_f64());
        metrics.log_appends.inc();
        match result {
            Ok(outcomes) => {
                let snapshot = engine.snapshot(&query.current());
                query.publish(snapshot);
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
                let c = &metrics.ingest_events;
                c.with_label_values(&["applied"]).inc_by(applied);
                c.with_label_values(&["duplicate"]).inc_by(dup);
                c.with_label_values(&["rejected"]).inc_by(rej);
                update_gauges(&metrics, &engine);
                let mut rest = outcomes.into_iter();
                for (items, reply) in group {
                    let mine: Vec<Outcome> = rest.by_ref().take(items.len()).collect();
                    let _ = reply.send(Ok(mine));
                }
            }
            Err(e) => {
                let text = e.to_string();
                for (_, reply) in group {
                    let _ = reply.send(Err(text.clone()));
                }
            }
        }
        if engine.events_since_checkpoint() >= storage.checkpoint_every_events
            || (engine.events_since_checkpoint() > 0 && last_checkpoint.elapsed() >= interval)
        {
            checkpoint(&mut engine, &metrics);
            last_checkpoint = Instant::now();
        }
        if stop {
            break;
        }
    }
    ready.store(false, Ordering::Relaxed);
    if engine.events_since_checkpoint() > 0 {
        checkpoint(&mut engine, &metrics);
    }
    tracing::info!("writer stopped");
}
