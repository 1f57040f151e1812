//! `deskwatch replay`: the stored history under another configuration, compared.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use deskwatch::config::Config;
use deskwatch::replay::{Range, ReplayReport, SlaGroup, replay};

use super::Format;

/// Arguments of `replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Data directory whose event log is replayed (read only; a running service may use it).
    #[arg(long, env = "DESKWATCH_DATA_DIR", default_value = "./deskwatch-data")]
    data_dir: PathBuf,
    /// The other configuration (TOML over the defaults): SLA policies and calendars,
    /// `[recurring]`, `[cost]`.
    #[arg(long)]
    config: PathBuf,
    /// The configuration compared against (default: the built-in defaults, or
    /// DESKWATCH_CONFIG).
    #[arg(long, env = "DESKWATCH_CONFIG")]
    base: Option<PathBuf>,
    /// Only tickets created from this instant (RFC 3339).
    #[arg(long)]
    from: Option<String>,
    /// Only tickets created before this instant (RFC 3339); open clocks are valued there.
    #[arg(long)]
    to: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

fn instant(name: &str, t: &Option<String>) -> anyhow::Result<Option<i64>> {
    t.as_deref()
        .map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.timestamp_millis())
                .map_err(|e| anyhow::anyhow!("--{name} `{t}` is not RFC 3339: {e}"))
        })
        .transpose()
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |x| format!("{:.1} %", x * 100.0))
}

fn row(label: &str, b: &SlaGroup, a: &SlaGroup) {
    println!(
        "  {label:<28} {:>8} {:>9} {:>10}   {:>9} {:>10}   {:>+7}",
        b.clocks,
        b.breached,
        pct(b.compliance),
        a.breached,
        pct(a.compliance),
        a.breached as i64 - b.breached as i64
    );
}

fn print(r: &ReplayReport) {
    println!(
        "replayed {} tickets ({} events), open clocks valued at {}",
        r.tickets,
        r.events,
        r.as_of.as_deref().unwrap_or("-")
    );
    println!(
        "SLA                            clocks  breached compliance   breached compliance  change\n\
         {:<30} {:>8} {:>9} {:>10}   {:>9} {:>10}",
        "", "", "before", "", "after", ""
    );
    let empty = SlaGroup::default();
    let mut keys: Vec<(&String, &String)> = r
        .before
        .sla
        .iter()
        .chain(&r.after.sla)
        .flat_map(|(p, m)| m.keys().map(move |c| (p, c)))
        .collect();
    keys.sort();
    keys.dedup();
    for (p, c) in keys {
        let get = |s: &deskwatch::replay::Side| {
            s.sla
                .get(p)
                .and_then(|m| m.get(c))
                .cloned()
                .unwrap_or_else(|| empty.clone())
        };
        row(&format!("{p} {c}"), &get(&r.before), &get(&r.after));
    }
    row("all", &r.before.sla_total, &r.after.sla_total);
    let (b, a) = (&r.before.recurring, &r.after.recurring);
    println!(
        "recurring: fingerprints {} → {}, problem candidates {} → {}, KB candidates {} → {}",
        b.fingerprints,
        a.fingerprints,
        b.problem_candidates,
        a.problem_candidates,
        b.kb_candidates,
        a.kb_candidates
    );
    for p in &r.new_problems {
        println!("  + problem: {p}");
    }
    for p in &r.gone_problems {
        println!("  - problem: {p}");
    }
    let (b, a) = (&r.before.cost, &r.after.cost);
    println!(
        "cost per month: in-house ${:.0} → ${:.0} ({:.1} → {:.1} FTE), outsourced ${:.0} → ${:.0}, SLA credits ${:.0} → ${:.0}",
        b.in_house,
        a.in_house,
        b.fte,
        a.fte,
        b.outsourced,
        a.outsourced,
        b.sla_breach_credits,
        a.sla_breach_credits
    );
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let base = Arc::new(Config::load(args.base.as_deref())?);
    let other = Arc::new(Config::load(Some(&args.config))?);
    let range = Range {
        from: instant("from", &args.from)?,
        to: instant("to", &args.to)?,
    };
    if let (Some(f), Some(t)) = (range.from, range.to)
        && f >= t
    {
        anyhow::bail!("--from must be before --to");
    }
    let dir = args.data_dir.join("log");
    if !dir.is_dir() {
        anyhow::bail!("{} holds no event log", args.data_dir.display());
    }
    let report = super::runtime()?
        .block_on(replay(dir, base, other, range))
        .map_err(|e| anyhow::anyhow!(e))?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print(&report),
    }
    Ok(ExitCode::SUCCESS)
}
