//! `deskwatch sla`: at-risk and breached clocks of a data directory.

use std::process::ExitCode;

use deskwatch::query::sla_listing::{Listing, SlaFilter, list};
use deskwatch::query::{OutputFormat, QueryEngine, render};

use super::DataDir;
use super::query::load_snapshot;

/// Arguments of `sla`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataDir,
    /// List breached clocks instead of at-risk ones.
    #[arg(long)]
    breaches: bool,
    /// Value the clocks at this instant (RFC 3339) instead of now.
    #[arg(long)]
    at: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this assignment group.
    #[arg(long)]
    group: Option<String>,
    /// Only this priority (P1–P4).
    #[arg(long)]
    priority: Option<String>,
    /// Only this clock (time_to_own, first_response, next_reply, resolution).
    #[arg(long)]
    clock: Option<String>,
    /// From this instant (RFC 3339): breach time, or deadline for at-risk clocks.
    #[arg(long)]
    from: Option<String>,
    /// Before this instant (RFC 3339).
    #[arg(long)]
    to: Option<String>,
    /// Most rows.
    #[arg(long, default_value_t = 1000)]
    limit: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let at = match &args.at {
        Some(t) => Some(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| anyhow::anyhow!("--at `{t}` is not RFC 3339: {e}"))?
                .timestamp_millis(),
        ),
        None => None,
    };
    let snapshot = load_snapshot(&args.data)?;
    let query = QueryEngine::valued_at(at)?;
    query.publish(snapshot);
    let filter = SlaFilter {
        tenant: args.tenant,
        group: args.group,
        priority: args.priority,
        clock: args.clock,
        from: args.from,
        to: args.to,
        limit: Some(args.limit),
    };
    let listing = if args.breaches {
        Listing::Breaches
    } else {
        Listing::AtRisk
    };
    let batches = super::runtime()?.block_on(list(&query, listing, &filter))?;
    let batches: Vec<_> = batches
        .iter()
        .map(|b| {
            let keep = [
                "ticket_id",
                "tenant",
                "priority",
                "assignment_group",
                "clock",
                "policy",
                "state",
                "level",
                "percent",
                "remaining_seconds",
                "deadline",
                "breached_at",
                "title",
            ];
            let idx: Vec<usize> = keep
                .iter()
                .filter_map(|k| b.schema().index_of(k).ok())
                .collect();
            b.project(&idx).unwrap_or_else(|_| b.clone())
        })
        .collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 && args.format == OutputFormat::Table {
        println!(
            "no {} clocks",
            if args.breaches { "breached" } else { "at-risk" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render(&batches, args.format)?);
    if args.format == OutputFormat::Table {
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
