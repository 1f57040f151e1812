//! State is a function of the log: checkpoint + tail replay equals a clean replay.

mod common;

use common::{simulated, submissions};

use datafusion::arrow::compute::concat_batches;
use deskwatch::engine::Engine;
use deskwatch::event::TicketEvent;
use deskwatch::projection::Snapshot;
use deskwatch::projection::tables::{EVENTS_SCHEMA, TICKETS_SCHEMA};
use deskwatch::recurring::view::{ViewSettings, clusters_batch};

/// `tickets`, `ticket_events` and `ticket_clusters` (every ticket's text cluster id).
fn tables(engine: &mut Engine) -> [datafusion::arrow::array::RecordBatch; 3] {
    let s = engine.snapshot(&Snapshot::default());
    [
        concat_batches(&TICKETS_SCHEMA, &s.tickets).unwrap(),
        concat_batches(&EVENTS_SCHEMA, &s.events).unwrap(),
        clusters_batch(&s, &ViewSettings::default()),
    ]
}

fn submit_all(engine: &mut Engine, events: &[(TicketEvent, Vec<u8>)]) {
    for chunk in events.chunks(5000) {
        engine.submit(submissions(chunk)).unwrap();
    }
}

#[test]
fn restart_from_checkpoint_and_tail_equals_clean_replay() {
    let events = simulated(12_000, 4);
    let (first, second) = events.split_at(events.len() * 2 / 3);
    let dir = tempfile::tempdir().unwrap();
    {
        let mut engine = Engine::open(dir.path(), rules()).unwrap();
        submit_all(&mut engine, first);
        engine.checkpoint().unwrap();
        submit_all(&mut engine, second);
        // No checkpoint for the tail: it must be replayed from the log.
    }
    let mut restarted = Engine::open(dir.path(), rules()).unwrap();
    assert!(restarted.recovery().checkpoint.is_some());
    assert_eq!(restarted.recovery().replayed, second.len() as u64);
    let after_restart = tables(&mut restarted);
    assert!(after_restart[2].num_rows() == 12_000);
    drop(restarted);

    // A clean replay of the same log, without any checkpoint.
    std::fs::remove_dir_all(dir.path().join("checkpoints")).unwrap();
    let mut replayed = Engine::open(dir.path(), rules()).unwrap();
    assert_eq!(replayed.recovery().replayed, events.len() as u64);
    assert_eq!(after_restart, tables(&mut replayed));

    // And equal to applying the events in memory directly.
    let direct_dir = tempfile::tempdir().unwrap();
    let mut direct = Engine::open(direct_dir.path(), rules()).unwrap();
    submit_all(&mut direct, &events);
    assert_eq!(after_restart, tables(&mut direct));
}

#[test]
fn a_damaged_checkpoint_is_skipped_and_the_log_replayed() {
    let events = simulated(500, 8);
    let dir = tempfile::tempdir().unwrap();
    let path = {
        let mut engine = Engine::open(dir.path(), rules()).unwrap();
        submit_all(&mut engine, &events);
        engine.checkpoint().unwrap()
    };
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let engine = Engine::open(dir.path(), rules()).unwrap();
    assert!(engine.recovery().checkpoint.is_none());
    assert_eq!(engine.projection().ticket_count(), 500);
    assert_eq!(engine.projection().event_count(), events.len() as u64);
}

fn rules() -> std::sync::Arc<deskwatch::sla::Rules> {
    deskwatch::config::Config::load(None).unwrap().sla_rules()
}
