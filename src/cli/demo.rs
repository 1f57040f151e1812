//! `deskwatch demo`: the service plus a live simulated help desk.
//!
//! The simulator starts a week in the past, so the tables have history at once, then keeps
//! producing events in real time; each is submitted through the same path as `POST /v1/events`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use deskwatch::service::Service;
use deskwatch::simulate::{Params, Simulator, days_before};
use tokio_util::sync::CancellationToken;

use super::serve::{Args as ServeArgs, load_config, serve};

/// Arguments of `demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    serve: ServeArgs,
    /// Simulated tickets per day.
    #[arg(long, default_value_t = 1500.0)]
    per_day: f64,
    /// Days of history to generate before going live (recurring-problem detection compares
    /// the last week with the four before it).
    #[arg(long, default_value_t = 35)]
    history_days: i64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut serve_args = args.serve;
    if serve_args.data_dir.is_none() {
        serve_args.data_dir = Some("./deskwatch-demo-data".into());
    }
    let config = load_config(&serve_args)?;
    let now = Utc::now();
    let params = Params {
        tickets: u64::MAX / 4,
        seed: args.seed,
        start: days_before(now, args.history_days),
        per_day: args.per_day,
        // Ids unique to this start, so a second demo on the same directory adds new tickets.
        id_prefix: format!("D{}-", now.timestamp() / 60),
        // Recurring bursts land in the last week of history and the first day live, so the
        // view has weeks of baseline to find them against.
        horizon_days: Some(args.history_days as f64 + 1.0),
        problems_from_days: (args.history_days as f64 - 7.0).max(0.0),
    };
    super::runtime()?.block_on(async move {
        let cancel = CancellationToken::new();
        deskwatch::shutdown::on_signals(cancel.clone());
        serve(config, cancel, move |service, cancel| {
            feed(service, cancel, params)
        })
        .await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn feed(
    service: Arc<Service>,
    cancel: CancellationToken,
    params: Params,
) -> anyhow::Result<()> {
    let mut sim = Simulator::new(params);
    let mut batch = Vec::new();
    let mut next = sim.next();
    let mut backfilled = false;
    while let Some(event) = next.take() {
        if cancel.is_cancelled() {
            break;
        }
        let now = Utc::now();
        if event.occurred_at > now {
            if !batch.is_empty() {
                service.submit(std::mem::take(&mut batch)).await?;
            }
            if !backfilled {
                backfilled = true;
                tracing::info!("demo history loaded; now live");
            }
            let wait = (event.occurred_at - now).to_std().unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(wait.min(Duration::from_secs(5))) => {}
            }
            next = Some(event);
            continue;
        }
        let raw = event.to_json();
        batch.push((event, raw));
        if batch.len() >= 2000 {
            service.submit(std::mem::take(&mut batch)).await?;
        }
        next = sim.next();
    }
    if !batch.is_empty() {
        service.submit(batch).await?;
    }
    Ok(())
}
