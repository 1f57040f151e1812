//! `deskwatch recurring`: the recurring issues of a data directory, with problem and
//! knowledge-base candidates and the top calls of the same window.

use std::fmt::Write as _;
use std::process::ExitCode;

use deskwatch::recurring::request::{self, RecurringRequest, TopCallsRequest};
use deskwatch::recurring::view::Report;

use super::query::load_snapshot;
use super::{DataDir, Format};

/// Arguments of `recurring`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// Window length (7d, 24h, 2w); default from `[recurring] window`.
    #[arg(long)]
    window: Option<String>,
    /// Window end (RFC 3339); default: the newest ticket's creation.
    #[arg(long)]
    to: Option<String>,
    /// Tickets a fingerprint needs in the window to be listed.
    #[arg(long)]
    min_tickets: Option<u32>,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this category.
    #[arg(long)]
    category: Option<String>,
    /// Only this channel.
    #[arg(long)]
    channel: Option<String>,
    /// Only problem or knowledge-base candidates.
    #[arg(long, value_parser = ["problem", "kb"])]
    candidates: Option<String>,
    /// Most fingerprints listed.
    #[arg(long, default_value_t = 50)]
    limit: usize,
    /// Top calls listed.
    #[arg(long, default_value_t = 10)]
    top_calls: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

fn table(report: &Report, calls: &request::TopCalls) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "window {} – {} ({} tickets, {} fingerprints; baseline {:.0} days from {})",
        report.from,
        report.to,
        report.tickets_in_window,
        report.fingerprints,
        report.baseline_days,
        report.baseline_from
    );
    let _ = writeln!(
        out,
        "{} problem candidates, {} knowledge-base candidates\n",
        report.problem_candidates, report.kb_candidates
    );
    let _ = writeln!(
        out,
        "{:<16} {:>7} {:>6} {:>6} {:>7} {:>6} {:>9} {:<7} {:<10} {:<14} label",
        "fingerprint",
        "tickets",
        "users",
        "spike",
        "mttr_h",
        "reopen",
        "cost_usd",
        "flags",
        "tenant",
        "item"
    );
    for i in &report.issues {
        let flags = match (i.problem_candidate, i.kb_candidate) {
            (true, true) => "PRB,KB",
            (true, false) => "PRB",
            (false, true) => "KB",
            (false, false) => "",
        };
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>6} {:>6} {:>7} {:>6.2} {:>9.2} {:<7} {:<10} {:<14} {}",
            i.fingerprint,
            i.tickets,
            i.requesters,
            i.spike_score.map_or("-".into(), |s| format!("{s:.1}")),
            i.mttr_hours.map_or("-".into(), |m| format!("{m:.1}")),
            i.reopen_rate,
            i.handle_cost,
            flags,
            i.tenant.as_deref().unwrap_or("-"),
            i.configuration_item.as_deref().unwrap_or("-"),
            i.label
        );
    }
    let _ = writeln!(
        out,
        "\ntop calls {} – {} ({} tickets)",
        calls.from, calls.to, calls.tickets
    );
    for c in &calls.calls {
        let _ = writeln!(
            out,
            "{:>3}. {:>6} {:>5.1}%  kb {:>4}  {}",
            c.rank,
            c.tickets,
            c.share * 100.0,
            c.kb_share
                .map_or("-".into(), |k| format!("{:.0}%", k * 100.0)),
            c.label
        );
    }
    out
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.data.config()?;
    let settings = config.recurring.view();
    let snapshot = load_snapshot(&args.data)?;
    let recurring = RecurringRequest {
        window: args.window.clone(),
        to: args.to.clone(),
        min_tickets: args.min_tickets,
        tenant: args.tenant.clone(),
        category: args.category.clone(),
        channel: args.channel.clone(),
        candidates: args.candidates.clone(),
        limit: Some(args.limit),
    };
    let report = request::recurring(&snapshot, &settings, &recurring)?;
    // The top calls cover the same window.
    let mut calls_settings = settings.clone();
    if let Some(w) = &args.window {
        calls_settings.window_ms = deskwatch::recurring::view::parse_window(w)
            .map_err(|e| anyhow::anyhow!("--window: {e}"))?;
    }
    let calls = request::top_calls(
        &snapshot,
        &calls_settings,
        &TopCallsRequest {
            n: Some(args.top_calls.max(1)),
            from: None,
            to: args.to.clone(),
            tenant: args.tenant,
            category: args.category,
            channel: args.channel,
        },
    )?;
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "recurring": report,
                "top_calls": calls,
            }))?
        ),
        Format::Table => print!("{}", table(&report, &calls)),
    }
    Ok(ExitCode::SUCCESS)
}
