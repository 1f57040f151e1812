//! State is a function of the log: checkpoint + tail replay equals a clean replay.

mod common;

use common::{simulated, submissions};

use datafusion::arrow::compute::concat_batches;
use deskwatch::engine::Engine;
use deskwatch::event::TicketEvent;
use deskwatch::projection::Snapshot;
use deskwatch::projection::history::EventChunk;
use deskwatch::projection::tables::{EVENTS_SCHEMA, TICKETS_SCHEMA};
use deskwatch::recurring::view::{ViewSettings, clusters_batch};

/// `tickets`, `ticket_events` and `ticket_clusters` (every ticket's text cluster id).
fn tables(engine: &mut Engine) -> [datafusion::arrow::array::RecordBatch; 3] {
    let s = engine.snapshot(&Snapshot::default());
    [
        concat_batches(&TICKETS_SCHEMA, &s.tickets).unwrap(),
        concat_batches(&EVENTS_SCHEMA, &s.event_batches().unwrap()).unwrap(),
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

#[test]
fn history_on_disk_still_refuses_duplicates_and_answers_queries() {
    let events = simulated(6_000, 5);
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Engine::open(dir.path(), rules()).unwrap();
    submit_all(&mut engine, &events);
    let before = tables(&mut engine);
    engine.checkpoint().unwrap();
    // The sealed chunks left the heap: their rows are read back from their files.
    let history = engine.projection().history();
    assert!(history.sealed().len() >= 1, "the test needs a sealed chunk");
    assert!(
        history
            .sealed()
            .all(|(chunk, _)| matches!(chunk, EventChunk::Stored { .. })),
        "a written chunk is still on the heap"
    );
    assert_eq!(before, tables(&mut engine));
    // Every event again: each is a duplicate, confirmed against the ids on disk.
    let duplicates = engine.projection().counters().duplicates;
    submit_all(&mut engine, &events);
    assert_eq!(
        engine.projection().counters().duplicates - duplicates,
        events.len() as u64
    );
    assert_eq!(before, tables(&mut engine));
    // And after a restart from that checkpoint.
    drop(engine);
    let mut restarted = Engine::open(dir.path(), rules()).unwrap();
    assert!(restarted.recovery().checkpoint.is_some());
    assert!(restarted.projection().has_event(&events[0].0.event_id));
    assert!(!restarted.projection().has_event("no-such-event"));
    assert_eq!(before, tables(&mut restarted));
}

#[test]
fn a_damaged_history_chunk_makes_its_checkpoint_unusable() {
    let events = simulated(6_000, 6);
    let dir = tempfile::tempdir().unwrap();
    {
        let mut engine = Engine::open(dir.path(), rules()).unwrap();
        submit_all(&mut engine, &events);
        engine.checkpoint().unwrap();
    }
    let chunks = dir.path().join("checkpoints").join("chunks");
    let first = std::fs::read_dir(&chunks)
        .unwrap()
        .map(|e| e.unwrap().path())
        .min()
        .unwrap();
    let mut bytes = std::fs::read(&first).unwrap();
    for b in &mut bytes[100..400] {
        *b ^= 0x5A;
    }
    std::fs::write(&first, bytes).unwrap();
    let engine = Engine::open(dir.path(), rules()).unwrap();
    assert!(engine.recovery().checkpoint.is_none());
    assert_eq!(engine.projection().event_count(), events.len() as u64);
}
