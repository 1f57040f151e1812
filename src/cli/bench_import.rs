//! `deskwatch bench --import FILE --mapping M`: import rate, against reading the same file's
//! records alone (decompression and CSV/XML parsing, no mapping, no log) in the same run.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use deskwatch::import::mapping::Mapping;
use deskwatch::import::{Derived, Importer, source};

use super::sink::Sink;

/// Measures `input` through `mapping`, best of 3 for the reference, one import into a fresh
/// embedded log.
pub fn run(input: &Path, mapping: &Path) -> anyhow::Result<()> {
    let mapping = Mapping::load(mapping)?;
    let (t_read, rows) = super::bench::best(3, || {
        source::open(input, &mapping, Arc::new(AtomicU64::new(0))).map(|r| r.count())
    });
    let rows = rows?;
    let dir = std::env::temp_dir().join(format!("deskwatch-bench-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = deskwatch::config::Config::load(None)?;
    let mut sink = Sink::open(&config, &dir)?;
    let mut importer = Importer::new(mapping);
    let started = Instant::now();
    let mut write = |batch: Vec<Derived>| -> anyhow::Result<()> {
        sink.write_events(batch.iter().map(|(_, e)| e)).map(|_| ())
    };
    importer
        .file(
            input,
            Arc::new(AtomicU64::new(0)),
            8192,
            &mut write,
            &mut |_e| {},
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    sink.checkpoint_every(0)?;
    let t_import = started.elapsed().as_secs_f64();
    drop(sink);
    let _ = std::fs::remove_dir_all(&dir);
    let c = &importer.counts;
    println!("import: {} ({rows} rows)", input.display());
    println!(
        "  read and parse only (reference)   {:>10.0} rows/s",
        rows as f64 / t_read
    );
    println!(
        "  import into the embedded log      {:>10.0} rows/s   {:.2} of the reference ({} tickets, {} events, {:.2} s, fsync per 8,192 events, checkpoint included)",
        c.rows as f64 / t_import,
        t_read / t_import,
        importer.tickets(),
        c.events,
        t_import
    );
    Ok(())
}
