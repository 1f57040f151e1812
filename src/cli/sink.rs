//! Where `ingest` and `import` write: the embedded log (through the engine, which decides each
//! event) or the Kafka topic (decided later by the projection).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use deskwatch::clustering::state::TextSetup;
use deskwatch::clustering::text::Analysis;
use deskwatch::config::{Config, LogKind};
use deskwatch::engine::{Engine, Submission};
use deskwatch::event::TicketEvent;
use deskwatch::kafka::log::KafkaLog;
use deskwatch::log::{AppendRecord, EventLog};
use deskwatch::projection::{Outcome, Projection};

/// When the embedded engine was last checkpointed, and how long that took.
#[derive(Debug, Default)]
pub struct Pace {
    last: Option<Instant>,
    took: Duration,
}

/// The configured log.
pub enum Sink {
    /// The embedded log in a data directory, and when it was last checkpointed.
    Embedded(Box<Engine>, Pace),
    /// The Kafka topic of `[log.kafka]`.
    Kafka(KafkaLog),
    /// Nothing written: an in-memory projection decides each event as the log would (a dry
    /// run), with the next offset to give.
    DryRun(Box<Projection>, u64),
}

impl Sink {
    /// Opens the log `config` names (`data_dir` for the embedded one).
    pub fn open(config: &Config, data_dir: &Path) -> anyhow::Result<Sink> {
        Ok(match config.log.kind {
            LogKind::Embedded => Sink::Embedded(
                Box::new(
                    Engine::open_with(data_dir, config.sla_rules(), config.setup().text)
                        .with_context(|| {
                            format!("cannot open data directory {}", data_dir.display())
                        })?,
                ),
                Pace::default(),
            ),
            LogKind::Kafka => {
                let settings = &config.log.kafka;
                if settings.create_topics {
                    let rt = super::runtime()?;
                    if let Err(e) = rt.block_on(deskwatch::kafka::ensure_topics(settings)) {
                        eprintln!("warning: {e}");
                    }
                }
                Sink::Kafka(KafkaLog::open(settings)?)
            }
        })
    }

    /// A sink that writes nothing: events are decided by an in-memory projection under the
    /// configuration's rules.
    pub fn dry_run(config: &Config) -> Sink {
        Sink::DryRun(
            Box::new(Projection::with_setup(
                config.sla_rules(),
                config.setup().text,
            )),
            0,
        )
    }

    /// Writes events with their JSON; the outcome of each (embedded), or `None` for each
    /// (Kafka: appended, decided by the projection).
    pub fn write(
        &mut self,
        events: &[(&TicketEvent, &[u8])],
    ) -> anyhow::Result<Vec<Option<Outcome>>> {
        self.write_prepared(
            events
                .iter()
                .map(|&(event, raw)| (event, raw, None))
                .collect(),
        )
    }

    /// The text settings of the projection that decides events (`None` for Kafka): with
    /// them, text is analysed on the caller's threads and given to [`Sink::write_prepared`].
    pub fn text_setup(&mut self) -> Option<Arc<TextSetup>> {
        match self {
            Sink::Embedded(engine, _) => Some(engine.text_setup()),
            Sink::DryRun(projection, _) => Some(projection.text_setup()),
            Sink::Kafka(_) => None,
        }
    }

    /// Like [`Sink::write`], with the text of created tickets already analysed under
    /// [`Sink::text_setup`].
    pub fn write_prepared(
        &mut self,
        events: Vec<(&TicketEvent, &[u8], Option<Analysis>)>,
    ) -> anyhow::Result<Vec<Option<Outcome>>> {
        match self {
            Sink::Embedded(engine, _) => {
                let batch: Vec<Submission<'_>> = events
                    .into_iter()
                    .map(|(event, raw, text)| Submission { event, raw, text })
                    .collect();
                Ok(engine.submit(batch)?.into_iter().map(Some).collect())
            }
            Sink::Kafka(log) => {
                let records: Vec<AppendRecord<'_>> = events
                    .iter()
                    .map(|(event, raw, _)| AppendRecord {
                        key: &event.ticket_id,
                        payload: raw,
                    })
                    .collect();
                log.append(&records)?;
                Ok(vec![None; events.len()])
            }
            Sink::DryRun(projection, next) => Ok(events
                .into_iter()
                .map(|(event, _, text)| {
                    *next += 1;
                    Some(projection.apply_prepared(event, *next - 1, text))
                })
                .collect()),
        }
    }

    /// Writes events, serialising them first; the outcome of each as [`Sink::write`].
    pub fn write_events<'e>(
        &mut self,
        events: impl IntoIterator<Item = &'e TicketEvent>,
    ) -> anyhow::Result<Vec<Option<Outcome>>> {
        let events: Vec<&TicketEvent> = events.into_iter().collect();
        let raws: Vec<Vec<u8>> = events.iter().map(|e| e.to_json()).collect();
        let refs: Vec<(&TicketEvent, &[u8])> = events
            .iter()
            .zip(&raws)
            .map(|(e, r)| (*e, r.as_slice()))
            .collect();
        self.write(&refs)
    }

    /// Checkpoints the embedded engine when `every` events were written since the last one
    /// (`0`: whenever anything was), and at least nine times as long as the last checkpoint
    /// took has passed since it: a checkpoint holds the whole ticket state, so at the size of
    /// a large desk a fixed event count would spend most of an import writing them. The log
    /// holds every event either way; a checkpoint only shortens the replay after a crash.
    pub fn checkpoint_every(&mut self, every: u64) -> anyhow::Result<()> {
        if let Sink::Embedded(engine, pace) = self {
            let since = engine.events_since_checkpoint();
            let due = every == 0 || pace.last.is_none_or(|t| t.elapsed() >= pace.took * 9);
            if since > 0 && since >= every && due {
                let started = Instant::now();
                engine.checkpoint()?;
                pace.took = started.elapsed();
                pace.last = Some(Instant::now());
            }
        }
        Ok(())
    }

    /// Whether this is Kafka.
    pub fn is_kafka(&self) -> bool {
        matches!(self, Sink::Kafka(_))
    }
}
