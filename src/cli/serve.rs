//! `deskwatch serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use deskwatch::api::{AppState, router};
use deskwatch::config::Config;
use deskwatch::service::Service;
use deskwatch::telemetry::Metrics;
use tokio_util::sync::CancellationToken;

/// Arguments of `serve`.
#[derive(Debug, clap::Args)]
#[group(id = "serve-args")]
pub struct Args {
    /// Data directory (overrides storage.data-dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (overrides server.listen).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// TOML configuration file (see deskwatch.example.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serve a non-loopback address without [auth] tokens: anyone who reaches the port may
    /// ingest, query and replay (sets server.insecure-no-auth).
    #[arg(long)]
    pub insecure_no_auth: bool,
}

/// Loads the configuration and applies the command-line overrides.
pub fn load_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(d) = &args.data_dir {
        config.storage.data_dir = d.clone();
    }
    if let Some(l) = args.listen {
        config.server.listen = l;
    }
    if args.insecure_no_auth {
        config.server.insecure_no_auth = true;
    }
    config.check_exposure()?;
    Ok(config)
}

/// Starts the service and serves HTTP until `cancel`; `extra` runs beside it (the demo feeder).
pub async fn serve<F, Fut>(
    config: Config,
    cancel: CancellationToken,
    extra: F,
) -> anyhow::Result<()>
where
    F: FnOnce(Arc<Service>, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let metrics = Metrics::new().context("cannot register metrics")?;
    let c = config.clone();
    let service = tokio::task::spawn_blocking(move || Service::start(&c, metrics))
        .await?
        .with_context(|| format!("cannot start on {}", config.storage.data_dir.display()))?;
    let service = Arc::new(service);
    if config.auth.tokens.is_empty() {
        if config.server.listen.ip().is_loopback() {
            tracing::warn!(
                "no [auth] tokens configured: the API accepts unauthenticated requests from this machine"
            );
        } else {
            tracing::warn!(listen = %config.server.listen, "INSECURE: no [auth] tokens and a non-loopback address (--insecure-no-auth): anyone who reaches the port may ingest, query and replay");
            eprintln!(
                "WARNING: deskwatch serves {} without authentication (--insecure-no-auth): anyone who reaches the port may ingest, query and replay",
                config.server.listen
            );
        }
    }
    let state = AppState {
        service: service.clone(),
        tokens: Arc::new(config.auth.tokens.clone()),
        hooks: Arc::new(deskwatch::source::hook::hooks(&config.sources)),
    };
    let app = router(state, &config);
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data_dir = %config.storage.data_dir.display(), "deskwatch listening");
    println!("deskwatch listening on http://{addr}  (metrics: http://{addr}/metrics)");
    let mut tasks = tokio::task::JoinSet::new();
    let c = cancel.clone();
    tasks.spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { c.cancelled().await })
            .await
            .context("HTTP server failed")
    });
    tasks.spawn(extra(service.clone(), cancel.clone()));
    // Live sources run until cancelled; a failing poll is retried, never fatal.
    let mut sources = deskwatch::source::spawn_all(
        &config.sources,
        &config.storage.data_dir,
        service.clone(),
        service.metrics.clone(),
        cancel.clone(),
    );
    tasks.spawn(async move {
        while sources.join_next().await.is_some() {}
        Ok(())
    });
    // A monitor that fails ends the service with its error.
    let (s, c) = (service.clone(), cancel.clone());
    tasks.spawn(async move { s.watch(&c).await.context("a background task failed") });
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        let outcome = done.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = outcome {
            tracing::error!(error = %e, "task failed; stopping");
            if result.is_ok() {
                result = Err(e);
            }
            cancel.cancel();
        }
    }
    let alerts = service.alerts.clone();
    tokio::task::spawn_blocking(move || service.shutdown()).await?;
    // The projection has stopped: deliver what it left queued, within the grace period.
    alerts.close().await;
    result
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = load_config(&args)?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let cancel = CancellationToken::new();
        deskwatch::shutdown::on_signals(cancel.clone());
        serve(config, cancel, |_, _| async { Ok(()) }).await
    })?;
    Ok(ExitCode::SUCCESS)
}
