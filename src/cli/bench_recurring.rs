//! `deskwatch bench --recurring`: ticket texts analysed and clustered per second.
//!
//! The simulator's ticket titles and descriptions go through the text analysis (masking,
//! language detection, glossary, stemming) and the incremental MinHash/LSH clusterer. The
//! reference, measured on the same texts in the same run, is a naive tokenizer (lower-case,
//! split on non-alphanumerics, a hash set of the words): the least any text comparison costs.

use std::collections::HashSet;
use std::time::Instant;

use deskwatch::event::Payload;
use deskwatch::recurring::cluster::Clusterer;
use deskwatch::recurring::text::Analyzer;
use deskwatch::simulate::{Params, Simulator};

/// Runs the measurement over `tickets` simulated tickets.
pub fn run(tickets: u64) -> anyhow::Result<()> {
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
    let tokens: Vec<Vec<String>> = texts
        .iter()
        .map(|(t, d)| analyzer.tokens(t, d.as_deref()))
        .collect();
    let analysed = started.elapsed().as_secs_f64();

    let mut clusterer = Clusterer::new(0.5);
    let started = Instant::now();
    for t in &tokens {
        clusterer.assign(t);
    }
    let clustered = started.elapsed().as_secs_f64();

    let both = analysed + clustered;
    println!(
        "  naive tokenizer (reference)       {:>10.0} tickets/s ({words} words)",
        n / naive
    );
    println!(
        "  text analysis                     {:>10.0} tickets/s",
        n / analysed
    );
    println!(
        "  incremental clustering            {:>10.0} tickets/s ({} clusters)",
        n / clustered,
        clusterer.len()
    );
    println!(
        "  analysis + clustering             {:>10.0} tickets/s   {:.3} of the reference",
        n / both,
        naive / both
    );
    Ok(())
}
