//! `deskwatch erlang`: agents needed for a queue, by Erlang C.

use std::process::ExitCode;

use deskwatch::staffing::erlang::Demand;

use super::Format;

/// Arguments of `erlang`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Calls (or tickets) arriving per hour.
    #[arg(long)]
    calls_per_hour: f64,
    /// Average handle time, seconds.
    #[arg(long)]
    aht_seconds: f64,
    /// Target: answer within this many seconds…
    #[arg(long)]
    answer_within_seconds: f64,
    /// …for this share of calls (0.8 or 80 for 80 %).
    #[arg(long)]
    service_level: f64,
    /// Share of paid time off the queue (0.3 or 30 for 30 %).
    #[arg(long, default_value_t = 0.0)]
    shrinkage: f64,
    /// Highest occupancy allowed (0.85 or 85 for 85 %).
    #[arg(long, default_value_t = 1.0)]
    max_occupancy: f64,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// A share given as 0–1 or as a percentage.
fn share(v: f64) -> f64 {
    if v > 1.0 { v / 100.0 } else { v }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let demand = Demand {
        calls_per_hour: args.calls_per_hour,
        aht_seconds: args.aht_seconds,
        answer_within_seconds: args.answer_within_seconds,
        service_level: share(args.service_level),
        shrinkage: share(args.shrinkage),
        max_occupancy: share(args.max_occupancy),
    };
    let s = demand.required().map_err(|e| anyhow::anyhow!(e))?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&s)?),
        Format::Table => {
            println!("load            {:.3} erlangs", s.load_erlangs);
            println!("agents          {}", s.agents);
            println!("scheduled FTE   {:.2}", s.scheduled_fte);
            println!("P(wait)         {:.5}", s.p_wait);
            println!(
                "service level   {:.5} within {} s",
                s.service_level, args.answer_within_seconds
            );
            println!("ASA             {:.3} s", s.asa_seconds);
            println!("occupancy       {:.3}", s.occupancy);
        }
    }
    Ok(ExitCode::SUCCESS)
}
