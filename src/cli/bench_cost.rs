//! `deskwatch bench --cost`: what the staffing and cost model costs.
//!
//! 1. Erlang C: the agents needed for loads from 1 to 2,000 erlangs, by the Erlang B
//!    recursion deskwatch uses, against the textbook formula `Aᴺ/N! · N/(N−A) / (Σ Aᵏ/k! + …)`
//!    evaluated in log space for every candidate N (the straightforward way that does not
//!    overflow), measured in the same run; both must give the same agents.
//! 2. The model over `--view-tickets` simulated tickets: the workload read by SQL (`workload`,
//!    `handle_times`, the ticket groups that choose each channel's calendar, the newest ticket,
//!    breaches), then the month, break-even and sensitivity, and the week per
//!    hour. The reference is DataFusion's plain `GROUP BY channel` count over the same snapshot.

use deskwatch::projection::{Projection, Snapshot};
use deskwatch::query::QueryEngine;
use deskwatch::query::workload::observe;
use deskwatch::simulate::{Params, Simulator};
use deskwatch::staffing::erlang::Demand;
use deskwatch::staffing::model::{WhatIf, report, staffing};

use super::bench::best;

/// Runs both measurements.
pub fn run(tickets: u64) -> anyhow::Result<()> {
    erlang();
    model(tickets)
}

/// P(wait) the textbook way, in log space: ln(Aᵏ/k!) built term by term, then a log-sum-exp.
fn p_wait_textbook(n: u32, a: f64) -> f64 {
    let ln_a = a.ln();
    let mut terms = Vec::with_capacity(n as usize + 1);
    let mut t = 0.0;
    for k in 0..=n {
        if k > 0 {
            t += ln_a - f64::from(k).ln();
        }
        terms.push(t);
    }
    let top = terms.pop().unwrap_or(0.0) + (f64::from(n) / (f64::from(n) - a)).ln();
    let max = terms.iter().copied().fold(top, f64::max);
    let sum: f64 = terms.iter().map(|t| (t - max).exp()).sum();
    let top = (top - max).exp();
    top / (sum + top)
}

fn textbook_agents(d: &Demand) -> u32 {
    let a = d.load();
    let mut n = ((a / d.max_occupancy).ceil() as u32).max(a.floor() as u32 + 1);
    loop {
        let pw = p_wait_textbook(n, a);
        let sl = 1.0 - pw * (-(f64::from(n) - a) * d.answer_within_seconds / d.aht_seconds).exp();
        if sl >= d.service_level && a / f64::from(n) <= d.max_occupancy {
            return n;
        }
        n += 1;
    }
}

fn erlang() {
    let loads = [
        1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
    ];
    let demands: Vec<Demand> = loads
        .iter()
        .map(|a| Demand {
            calls_per_hour: a * 3600.0 / 300.0,
            aht_seconds: 300.0,
            answer_within_seconds: 20.0,
            service_level: 0.8,
            shrinkage: 0.3,
            max_occupancy: 0.95,
        })
        .collect();
    let (t_ours, ours) = best(5, || {
        demands
            .iter()
            .map(|d| d.required().map(|s| s.agents).unwrap_or(0))
            .collect::<Vec<_>>()
    });
    let (t_ref, reference) = best(3, || {
        demands.iter().map(textbook_agents).collect::<Vec<_>>()
    });
    println!(
        "erlang C: agents for {} loads, 1 to 2,000 erlangs (AHT 300 s, 80 % in 20 s)",
        loads.len()
    );
    println!(
        "  textbook formula in log space (reference) {:>10.3} ms",
        t_ref * 1000.0
    );
    println!(
        "  Erlang B recursion (deskwatch)            {:>10.3} ms   {:.0}× faster, agents {}",
        t_ours * 1000.0,
        t_ref / t_ours,
        if ours == reference {
            "identical".to_string()
        } else {
            format!("DIFFER: {ours:?} vs {reference:?}")
        }
    );
    println!("  agents: {ours:?}");
}

fn model(tickets: u64) -> anyhow::Result<()> {
    println!("cost model: {tickets} simulated tickets");
    let mut projection = Projection::new();
    for (offset, e) in Simulator::new(Params {
        tickets,
        seed: 13,
        ..Params::default()
    })
    .enumerate()
    {
        projection.apply(&e, offset as u64);
    }
    let query = QueryEngine::new()?;
    query.publish(projection.snapshot(&Snapshot::default()));
    drop(projection);
    let config = deskwatch::config::Config::load(None)?.cost;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (t_ref, groups) = best(3, || {
        rt.block_on(query.sql("select channel, count(*) from tickets group by channel"))
            .map(|b| b.iter().map(|b| b.num_rows()).sum::<usize>())
    });
    let groups = groups?;
    let (t_observe, observed) = best(3, || rt.block_on(observe(&query, &config)));
    let observed = observed.map_err(|e| anyhow::anyhow!(e))?;
    let (t_report, r) = best(3, || report(&observed, &config, WhatIf::default()));
    let r = r.map_err(|e| anyhow::anyhow!(e))?;
    let (t_week, _) = best(3, || staffing(&observed, &config, WhatIf::default(), 0));
    println!(
        "  plain SQL GROUP BY channel (reference)    {:>10.1} ms ({groups} groups)",
        t_ref * 1000.0
    );
    println!(
        "  workload read (5 SQL queries)             {:>10.1} ms   {:.2} of the reference",
        t_observe * 1000.0,
        t_ref / t_observe
    );
    println!(
        "  month + break-even + sensitivity          {:>10.1} ms ({} channels, {:.0} tickets/week, {:.1} FTE)",
        t_report * 1000.0,
        r.channels.len(),
        r.tickets_per_week,
        r.month.fte
    );
    println!(
        "  staffing per hour of the week             {:>10.1} ms",
        t_week * 1000.0
    );
    Ok(())
}
