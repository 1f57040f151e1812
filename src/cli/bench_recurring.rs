//! `deskwatch bench --recurring`: ticket texts analysed and clustered per second, and the time
//! to compute the recurring view over a million tickets.
//!
//! 1. The simulator's ticket titles and descriptions go through the text analysis (masking,
//!    language detection, glossary, stemming) and the incremental clusterer (IDF-weighted vectors, inverted index). The
//!    reference, measured on the same texts in the same run, is a naive tokenizer (lower-case,
//!    split on non-alphanumerics, a hash set of the words): the least any text comparison
//!    costs.
//! 2. `--view-tickets` simulated tickets are projected (clusters placed as they are created)
//!    and the recurring view of the newest week is computed from the snapshot. The reference
//!    is DataFusion running a plain `GROUP BY tenant, category, configuration_item` with the
//!    same counts over the same snapshot: what the view costs beyond an ordinary aggregate.

use std::collections::HashSet;
use std::time::Instant;

use deskwatch::clustering::cluster::Clusterer;
use deskwatch::clustering::text::Analyzer;
use deskwatch::event::Payload;
use deskwatch::simulate::{Params, Simulator};

use super::bench::best;

/// Runs the measurements: text over `tickets` simulated tickets, the view over
/// `view_tickets`.
pub fn run(tickets: u64, view_tickets: u64) -> anyhow::Result<()> {
    text(tickets)?;
    view(view_tickets)
}

fn view(tickets: u64) -> anyhow::Result<()> {
    use deskwatch::projection::{Projection, Snapshot};
    use deskwatch::query::QueryEngine;
    use deskwatch::recurring::view::{self, Filter, ViewSettings};

    println!("recurring view: {tickets} simulated tickets");
    let mut projection = Projection::new();
    let started = Instant::now();
    let mut events = 0u64;
    for (offset, e) in Simulator::new(Params {
        tickets,
        seed: 11,
        ..Params::default()
    })
    .enumerate()
    {
        projection.apply(&e, offset as u64);
        events += 1;
    }
    let projected = started.elapsed().as_secs_f64();
    let snapshot = projection.snapshot(&Snapshot::default());
    let text_bytes = projection.text().heap_bytes();
    println!(
        "  projected {events} events in {projected:.1} s ({:.0} events/s, clusters placed on creation: {} clusters)",
        events as f64 / projected,
        projection.text().len()
    );
    println!(
        "  text cluster state                {:>10.1} bytes/ticket ({:.1} MiB)",
        text_bytes as f64 / tickets as f64,
        text_bytes as f64 / (1024.0 * 1024.0)
    );
    let settings = ViewSettings::default();
    let (t_view, report) = best(3, || {
        view::compute(&snapshot, &settings, None, &Filter::default())
    });
    let (t_calls, _) = best(3, || {
        view::top_calls(&snapshot, &settings, None, None, 10, &Filter::default())
    });
    let (t_clusters, _) = best(3, || view::clusters_batch(&snapshot, &settings));
    let query = QueryEngine::new()?;
    let to = view::latest_created(&snapshot).unwrap_or(0);
    query.publish(snapshot);
    let sql = format!(
        "select tenant, category, configuration_item, count(*) as tickets, \
         count(distinct requester) as requesters, avg(handle_minutes) as handle \
         from tickets where created_at > to_timestamp_millis({}) \
         group by tenant, category, configuration_item",
        to - settings.window_ms
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (t_sql, rows) = best(3, || {
        rt.block_on(query.sql(&sql))
            .map(|b| b.iter().map(|b| b.num_rows()).sum::<usize>())
    });
    let rows = rows?;
    println!(
        "  plain SQL GROUP BY (reference)    {:>10.1} ms ({rows} groups)",
        t_sql * 1000.0
    );
    println!(
        "  recurring view, window 7d         {:>10.1} ms ({} fingerprints, {} listed, {} problem candidates)   {:.2} of the reference",
        t_view * 1000.0,
        report.fingerprints,
        report.issues.len(),
        report.problem_candidates,
        t_sql / t_view
    );
    println!(
        "  top 10 calls, window 7d           {:>10.1} ms",
        t_calls * 1000.0
    );
    println!(
        "  ticket_clusters table (all)       {:>10.1} ms",
        t_clusters * 1000.0
    );
    Ok(())
}

fn text(tickets: u64) -> anyhow::Result<()> {
    let texts: Vec<(String, Option<String>)> = Simulator::new(Params {
        tickets,
        seed: 9,
        ..Params::default()
    })
    .filter_map(|e| match e.payload {
        Payload::Created(c) => Some((c.title, c.description)),
        _ => None,
    })
    .collect();
    let n = texts.len() as f64;
    println!("recurring: {} ticket texts", texts.len());

    let started = Instant::now();
    let mut words = 0usize;
    for (title, description) in &texts {
        let lower = format!("{title} {}", description.as_deref().unwrap_or("")).to_lowercase();
        let set: HashSet<&str> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        words += set.len();
    }
    let naive = started.elapsed().as_secs_f64();

    let analyzer = Analyzer::default();
    let started = Instant::now();
    let mut chars = 0usize;
    for (t, d) in &texts {
        chars += analyzer
            .normalize(&format!("{t} . {}", d.as_deref().unwrap_or("")))
            .len();
    }
    let normalized = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let tokens: Vec<deskwatch::clustering::text::Analysis> = texts
        .iter()
        .map(|(t, d)| analyzer.analyze(t, d.as_deref()))
        .collect();
    let analysed = started.elapsed().as_secs_f64();

    let mut clusterer = Clusterer::default();
    let started = Instant::now();
    for t in &tokens {
        clusterer.assign(t, 0);
    }
    let clustered = started.elapsed().as_secs_f64();

    let both = analysed + clustered;
    println!(
        "  naive tokenizer (reference)       {:>10.0} tickets/s ({words} words)",
        n / naive
    );
    println!(
        "  of which normalising and masking  {:>10.0} tickets/s ({chars} chars)",
        n / normalized
    );
    println!(
        "  text analysis                     {:>10.0} tickets/s",
        n / analysed
    );
    println!(
        "  incremental clustering            {:>10.0} tickets/s ({} clusters, {:.1} µs per ticket placed)",
        n / clustered,
        clusterer.len(),
        clustered * 1e6 / n
    );
    println!(
        "  analysis + clustering             {:>10.0} tickets/s   {:.3} of the reference",
        n / both,
        naive / both
    );
    Ok(())
}

/// `bench --clusters`: pair precision, recall and F1 of deskwatch's clusters and of the TF-IDF
/// reference on each labelled file, and the placement cost per ticket.
pub fn clusters(files: &[std::path::PathBuf], similarity: Option<f64>) -> anyhow::Result<()> {
    use deskwatch::clustering::state::TextSetup;
    use deskwatch::quality;

    let similarity = similarity.unwrap_or(deskwatch::clustering::cluster::DEFAULT_SIMILARITY);
    for file in files {
        let input =
            std::fs::File::open(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let rows = quality::read_csv(std::io::BufReader::new(input))
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        let e = quality::evaluate(&rows, TextSetup::new(similarity, Default::default()))?;
        println!(
            "{}: {} tickets, {} groups of 2+, {} same-group pairs",
            file.display(),
            e.tickets,
            e.groups,
            e.pairs
        );
        println!(
            "  {:<34} {:>9} {:>9} {:>9} {:>9}",
            "method", "pair P", "pair R", "pair F1", "clusters"
        );
        let line = |name: &str, s: &quality::Scores| {
            println!(
                "  {name:<34} {:>9.3} {:>9.3} {:>9.3} {:>9}",
                s.precision, s.recall, s.f1, s.clusters
            );
        };
        line(
            &format!("deskwatch (similarity {similarity})"),
            &e.deskwatch,
        );
        for (t, s) in &e.reference {
            line(&format!("TF-IDF cosine ≥ {t} (reference)"), s);
        }
        let (t, best) = e.best_reference();
        println!(
            "  deskwatch F1 / best reference F1 (≥ {t}): {:.2}",
            e.deskwatch.f1 / best.f1.max(1e-12)
        );
        println!(
            "  placing a ticket: {:.1} µs (text analysis {:.1} µs, done in parallel on replay)",
            e.place_micros, e.analyse_micros
        );
    }
    Ok(())
}
