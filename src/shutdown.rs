//! Shutdown: one cancellation token for every task; SIGINT/SIGTERM cancel it, a second signal
//! exits at once.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGINT or SIGTERM; exits the process on the second.
pub fn on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down (send the signal again to exit at once)");
        token.cancel();
        wait_for_signal().await;
        tracing::warn!("second signal: exiting without draining");
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
