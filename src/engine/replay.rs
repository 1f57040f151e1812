//! Replay of a log into a projection in two stages: a reader thread reads and parses the
//! records and analyses the text of every created ticket (tokens depend only on the text), while
//! the calling thread applies them in log order. The result is exactly that of applying the
//! records one by one; on two cores it is faster, since parsing and text analysis are most of
//! the work.

use std::sync::mpsc;

use crate::event::{EventError, Payload, TicketEvent};
use crate::log::{LogError, LogReader};
use crate::projection::Projection;

/// Records handed from the reader to the projection at a time.
const BATCH: usize = 1024;

type Parsed = (
    u32,
    u64,
    Result<TicketEvent, EventError>,
    Option<crate::clustering::text::Analysis>,
);

/// Applies every record of `reader` to `projection` in order. `each(partition, offset, error)`
/// is called for every record after it was applied, with the parse error of a record that is
/// not a valid event (such a record is skipped).
pub fn replay(
    projection: &mut Projection,
    mut reader: Box<dyn LogReader>,
    mut each: impl FnMut(u32, u64, Option<&EventError>),
) -> Result<(), LogError> {
    let setup = projection.text_setup();
    let (tx, rx) = mpsc::sync_channel::<Vec<Parsed>>(4);
    // Applied events go back to be freed on the thread that allocated them: freeing them here
    // contends with the reader's allocations on the allocator's locks (glibc's arenas).
    let (spent_tx, spent_rx) = mpsc::sync_channel::<Vec<TicketEvent>>(4);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<(), LogError> {
            let mut batch = Vec::with_capacity(BATCH);
            while let Some(r) = reader.next_record()? {
                while let Ok(spent) = spent_rx.try_recv() {
                    drop(spent);
                }
                let parsed = TicketEvent::from_json(r.payload);
                let tokens = match &parsed {
                    Ok(TicketEvent {
                        payload: Payload::Created(c),
                        ..
                    }) => Some(setup.analyzer.analyze(&c.title, c.description.as_deref())),
                    _ => None,
                };
                batch.push((r.partition, r.offset, parsed, tokens));
                if batch.len() == BATCH && tx.send(std::mem::take(&mut batch)).is_err() {
                    return Ok(());
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
            Ok(())
        });
        for batch in rx {
            let mut spent = Vec::with_capacity(batch.len());
            for (partition, offset, parsed, tokens) in batch {
                match parsed {
                    Ok(event) => {
                        projection.apply_prepared(&event, offset, tokens);
                        each(partition, offset, None);
                        spent.push(event);
                    }
                    Err(e) => each(partition, offset, Some(&e)),
                }
            }
            let _ = spent_tx.try_send(spent);
        }
        producer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}
