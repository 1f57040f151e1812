//! `deskwatch cost`: this month in-house against outsourced, from the observed workload.

use std::process::ExitCode;

use deskwatch::query::QueryEngine;
use deskwatch::query::workload::observe;
use deskwatch::staffing::model::{AhtSource, ChannelPlan, CostReport, WhatIfRequest, report};

use super::query::load_snapshot;
use super::{DataDir, Format};

/// Arguments of `cost`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// What-if: volume change in percent (30 for +30 %).
    #[arg(long, allow_hyphen_values = true)]
    volume_change: Option<f64>,
    /// What-if: another service level (0.9 or 90).
    #[arg(long)]
    service_level: Option<f64>,
    /// What-if: another answer time, seconds.
    #[arg(long)]
    answer_within_seconds: Option<f64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.data.config()?;
    let snapshot = load_snapshot(&args.data)?;
    let query = QueryEngine::new()?;
    query.publish(snapshot);
    let observed = super::runtime()?
        .block_on(observe(&query, &config.cost))
        .map_err(|e| anyhow::anyhow!(e))?;
    let what_if = WhatIfRequest {
        volume_change: args.volume_change,
        service_level: args.service_level,
        answer_within_seconds: args.answer_within_seconds,
    }
    .what_if()
    .map_err(|(k, m)| anyhow::anyhow!("--{} {m}", k.replace('_', "-")))?;
    let r = report(&observed, &config.cost, what_if).map_err(|e| anyhow::anyhow!(e))?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&r)?),
        Format::Table => print_table(&r),
    }
    Ok(ExitCode::SUCCESS)
}

/// The report as the CLI's table.
fn print_table(r: &CostReport) {
    let m = &r.month;
    println!(
        "workload        {:.0} tickets/week, AHT {:.1} min, {:.3} SLA breaches per ticket",
        r.tickets_per_week,
        r.aht_seconds / 60.0,
        r.breaches_per_ticket
    );
    println!(
        "month           {:.0} tickets ({:+.0} % volume)",
        m.tickets,
        (m.scale - 1.0) * 100.0
    );
    println!(
        "channels        channel      tickets/wk   AHT min  AHT from           open (calendar)     target          peak agents    FTE  minimum"
    );
    for c in &r.channels {
        let target = target_text(c);
        let (source, share) = match c.aht.source {
            AhtSource::WorkLogged => ("work logged", c.aht.work_logged),
            AhtSource::Estimated => ("estimated", c.aht.estimated),
            AhtSource::Default => ("default", c.aht.default),
        };
        println!(
            "                {:<12} {:>10.0}  {:>8.1}  {:<18} {:<19} {:<15} {:>11}  {:>5.1}  {:>7.1}",
            c.channel,
            c.tickets_per_week,
            c.aht_seconds / 60.0,
            format!("{source} {:.0} %", share * 100.0),
            format!("{} h ({})", c.open_hours, c.calendar),
            target,
            c.peak_agents,
            c.fte,
            c.minimum_fte
        );
    }
    println!(
        "in-house        ${:>12.2}  ${:>7.2}/ticket  {:.1} FTE ({:.1} of it minimum staffing)",
        m.in_house, m.in_house_per_ticket, m.fte, r.minimum_fte
    );
    println!(
        "outsourced      ${:>12.2}  ${:>7.2}/ticket  (SLA credits ${:.2})",
        m.outsourced, m.outsourced_per_ticket, r.sla_breach_credits
    );
    match (r.break_even_scale, r.break_even_tickets_per_month) {
        (Some(s), Some(t)) => println!(
            "break-even      {t:.0} tickets/month ({:.0} % of the observed volume): in-house costs no more from there on",
            s * 100.0
        ),
        _ => println!("break-even      none between 1 % and 100× the observed volume"),
    }
    for f in &r.flags {
        println!("check           {} ({}): {}", f.check, f.subject, f.reason);
    }
    println!("sensitivity     volume     in-house   outsourced");
    for c in &r.sensitivity {
        println!(
            "                {:>+5.0} %  ${:>10.0}  ${:>10.0}",
            (c.scale / m.scale - 1.0) * 100.0,
            c.in_house,
            c.outsourced
        );
    }
}

/// A channel's service-level target as text: `80 % in 20 s`, `90 % in 8.0 h`.
fn target_text(c: &ChannelPlan) -> String {
    if c.answer_within_seconds >= 3600.0 {
        format!(
            "{:.0} % in {:.1} h",
            c.service_level * 100.0,
            c.answer_within_seconds / 3600.0
        )
    } else {
        format!(
            "{:.0} % in {:.0} s",
            c.service_level * 100.0,
            c.answer_within_seconds
        )
    }
}
