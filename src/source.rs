//! Live sources: help desks that deskwatch follows as they work (`[[sources]]`).
//!
//! A source reads the desk's history from a cursor, turns what it reads into events through the
//! import derivation ([`crate::import::derive`], the same rules as for exports: a reopen only
//! follows a resolution, nothing follows a closure), submits them like `POST /v1/events`, and
//! only then saves its cursor and derivation state (`<data-dir>/sources/<name>.json`, written to
//! a temporary file, fsynced and renamed). Event ids are a function of the desk's own ticket and
//! transaction order, so after a crash between the submit and the save the same events come
//! again and the projection drops them as duplicates: kill -9 at any moment loses and doubles
//! nothing. A desk that is down or answers errors is retried with backoff (1 s doubling to
//! 60 s) and never stops the service.

pub mod hook;
pub mod rt;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::base::Secret;
use crate::service::Service;
use crate::telemetry::Metrics;

/// A `[[sources]]` value that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` {problem}")]
pub struct SourceConfigError {
    /// Dotted key (`sources[0].url`).
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

/// The kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// Request Tracker 4.4/5, through its REST 2 API.
    Rt,
    /// A desk that pushes JSON to `POST /v1/hooks/{name}`, read through a mapping.
    Webhook,
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SourceConfig {
    /// Names the source: its metrics label, its state file, part of its event ids.
    pub name: String,
    /// What kind of desk.
    pub kind: SourceKind,
    /// Base URL of the desk (RT: the web root, e.g. `http://127.0.0.1:8080`).
    #[serde(default)]
    pub url: String,
    /// Webhook: the mapping file (`format = "json"`) of the desk's payloads.
    pub mapping: Option<PathBuf>,
    /// Webhook: the key the desk signs its requests with (see the mapping's
    /// `[json.signature]`); `env:NAME` reads it from the environment.
    pub secret: Option<Secret>,
    /// Webhook: the mapping, loaded and checked.
    #[serde(skip)]
    pub loaded: Option<Arc<crate::import::mapping::Mapping>>,
    /// API token (RT: an auth token); `env:NAME` reads it from the environment.
    pub token: Option<Secret>,
    /// User for basic authentication (with `password`).
    pub user: Option<String>,
    /// Password; `env:NAME` reads it from the environment.
    pub password: Option<Secret>,
    /// Only these queues (all when empty).
    #[serde(default)]
    pub queues: Vec<String>,
    /// Seconds between polls once caught up.
    #[serde(default = "default_poll")]
    pub poll_seconds: f64,
    /// Prepended to the desk's ticket numbers.
    #[serde(default = "default_prefix")]
    pub ticket_prefix: String,
    /// Lowest desk priority of P1, P2 and P3 (RT's 0–99 scale); below the last is P4.
    #[serde(default = "default_priorities")]
    pub priorities: [u32; 3],
    /// A custom field whose values give the priority instead (with `priority-values`).
    pub priority_field: Option<String>,
    /// Values of `priority-field` → P1–P4.
    #[serde(default)]
    pub priority_values: HashMap<String, String>,
    /// Desk statuses → deskwatch statuses, over the defaults (RT: new, open, stalled →
    /// pending_customer, resolved, rejected and deleted → cancelled).
    #[serde(default)]
    pub statuses: HashMap<String, String>,
    /// The channel of tickets (RT does not record it).
    #[serde(default = "default_channel")]
    pub channel: String,
}

fn default_poll() -> f64 {
    30.0
}

fn default_prefix() -> String {
    "RT-".into()
}

fn default_priorities() -> [u32; 3] {
    [75, 50, 25]
}

fn default_channel() -> String {
    "email".into()
}

impl SourceConfig {
    /// Checks what the types cannot (`env:` secrets are read by the configuration loader).
    pub fn resolve(&mut self, i: usize) -> Result<(), SourceConfigError> {
        let key = |k: &str| format!("sources[{i}].{k}");
        let invalid = |k: &str, problem: String| SourceConfigError {
            key: key(k),
            problem,
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            return Err(invalid(
                "name",
                "must be 1–64 letters, digits, `-` or `_`".into(),
            ));
        }
        match self.kind {
            SourceKind::Rt => self.resolve_rt(&invalid),
            SourceKind::Webhook => self.resolve_webhook(&invalid),
        }
    }

    /// The keys of a webhook source: its mapping loads and is for JSON, and a `secret` comes
    /// with the mapping's `[json.signature]`.
    fn resolve_webhook(
        &mut self,
        invalid: &dyn Fn(&str, String) -> SourceConfigError,
    ) -> Result<(), SourceConfigError> {
        if self.token.is_some() || self.user.is_some() || self.password.is_some() {
            return Err(invalid(
                "token",
                "a webhook source takes `secret` (the desk's signing key), not `token`, `user` or `password`".into(),
            ));
        }
        let Some(path) = &self.mapping else {
            return Err(invalid(
                "mapping",
                "a webhook source needs a mapping file (`format = \"json\"`)".into(),
            ));
        };
        let mapping = crate::import::mapping::Mapping::load(path)
            .map_err(|e| invalid("mapping", e.to_string()))?;
        if mapping.format != crate::import::mapping::Format::Json {
            return Err(invalid(
                "mapping",
                format!("{} is not for JSON (`format = \"json\"`)", path.display()),
            ));
        }
        if self.secret.is_some() && mapping.json.signature.is_none() {
            return Err(invalid(
                "secret",
                format!(
                    "{} has no `[json.signature]`: it does not say how the desk signs",
                    path.display()
                ),
            ));
        }
        self.loaded = Some(Arc::new(mapping));
        Ok(())
    }

    /// The keys of a Request Tracker source.
    fn resolve_rt(
        &self,
        invalid: &dyn Fn(&str, String) -> SourceConfigError,
    ) -> Result<(), SourceConfigError> {
        if self.mapping.is_some() || self.secret.is_some() {
            return Err(invalid(
                "mapping",
                "`mapping` and `secret` are for webhook sources".into(),
            ));
        }
        if reqwest::Url::parse(&self.url).is_err() {
            return Err(invalid("url", format!("`{}` is not a URL", self.url)));
        }
        match (&self.token, &self.user, &self.password) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            _ => {
                return Err(invalid(
                    "token",
                    "give either `token`, or `user` and `password`".into(),
                ));
            }
        }
        if !(self.poll_seconds >= 0.1 && self.poll_seconds <= 86_400.0) {
            return Err(invalid(
                "poll-seconds",
                "must be between 0.1 and 86400".into(),
            ));
        }
        let [p1, p2, p3] = self.priorities;
        if !(p1 > p2 && p2 > p3) {
            return Err(invalid(
                "priorities",
                "must be decreasing: the lowest priority of P1, of P2, of P3".into(),
            ));
        }
        for (from, to) in &self.priority_values {
            if crate::event::Priority::parse(to).is_none() {
                return Err(invalid(
                    "priority-values",
                    format!("maps `{from}` to `{to}`, not one of P1–P4"),
                ));
            }
        }
        for (from, to) in &self.statuses {
            if crate::event::Status::parse(to).is_none() && to != "skip" {
                return Err(invalid(
                    "statuses",
                    format!("maps `{from}` to `{to}`, not a deskwatch status"),
                ));
            }
        }
        if crate::event::Channel::parse(&self.channel).is_none() {
            return Err(invalid(
                "channel",
                format!("`{}` is not a deskwatch channel", self.channel),
            ));
        }
        Ok(())
    }
}

/// Checks every source; names must be unique.
pub fn resolve(sources: &mut [SourceConfig]) -> Result<(), SourceConfigError> {
    for (i, s) in sources.iter_mut().enumerate() {
        s.resolve(i)?;
    }
    let mut names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(SourceConfigError {
            key: "sources".into(),
            problem: format!("name `{}` is used twice", w[0]),
        });
    }
    Ok(())
}

/// Why a poll failed, by kind (the `kind` label of `deskwatch_source_errors_total`).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The desk could not be reached.
    #[error("cannot reach the desk: {0}")]
    Unreachable(String),
    /// The desk refused the credentials.
    #[error("the desk refused the credentials (HTTP {0})")]
    Auth(u16),
    /// The desk answered an error.
    #[error("the desk answered HTTP {status} for {what}")]
    Http {
        /// Status.
        status: u16,
        /// The request.
        what: String,
    },
    /// The desk's answer is not what its API documents.
    #[error("unexpected answer for {what}: {detail}")]
    Decode {
        /// The request.
        what: String,
        /// Why.
        detail: String,
    },
    /// deskwatch could not store the events (the poll is retried).
    #[error("cannot store the events: {0}")]
    Store(String),
    /// The state file could not be written.
    #[error("cannot save the source state {path}: {detail}")]
    State {
        /// File.
        path: PathBuf,
        /// Why.
        detail: String,
    },
}

impl SourceError {
    /// The metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceError::Unreachable(_) => "unreachable",
            SourceError::Auth(_) => "auth",
            SourceError::Http { .. } => "http",
            SourceError::Decode { .. } => "decode",
            SourceError::Store(_) => "store",
            SourceError::State { .. } => "state",
        }
    }
}

/// Reads a source's saved state; `None` when there is none or it cannot be read (then the
/// source starts from the beginning: the events it derives again are duplicates).
pub fn load_state<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(state) => Some(state),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable source state; reading the desk from the beginning");
            None
        }
    }
}

/// Saves a source's state durably (temporary file, fsync, rename).
pub fn save_state<T: Serialize>(path: &Path, state: &T) -> Result<(), SourceError> {
    let fail = |detail: String| SourceError::State {
        path: path.to_path_buf(),
        detail,
    };
    let bytes = serde_json::to_vec(state).map_err(|e| fail(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| fail(e.to_string()))
}

/// Runs every configured source until `stop`. Each runs on its own task; a failing poll is
/// logged, counted and retried with backoff.
pub fn spawn_all(
    sources: &[SourceConfig],
    data_dir: &Path,
    service: Arc<Service>,
    metrics: Metrics,
    stop: CancellationToken,
) -> tokio::task::JoinSet<()> {
    let mut set = tokio::task::JoinSet::new();
    for config in sources {
        let state_path = data_dir
            .join("sources")
            .join(format!("{}.json", config.name));
        match config.kind {
            SourceKind::Rt => {
                let source = rt::RtSource::new(config.clone(), state_path);
                set.spawn(run(source, service.clone(), metrics.clone(), stop.clone()));
            }
            // Webhooks are pushed to the API (`POST /v1/hooks/{name}`).
            SourceKind::Webhook => {}
        }
    }
    set
}

/// What a source does on each poll.
pub trait Poll: Send {
    /// The source's name.
    fn name(&self) -> &str;
    /// Seconds between polls once caught up.
    fn interval(&self) -> Duration;
    /// Reads what is new, submits it and saves the cursor; `Ok(true)` when there may be more
    /// to read right away.
    fn poll<'a>(
        &'a mut self,
        service: &'a Service,
        metrics: &'a Metrics,
    ) -> impl std::future::Future<Output = Result<bool, SourceError>> + Send + 'a;
}

async fn run<P: Poll>(
    mut source: P,
    service: Arc<Service>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let name = source.name().to_string();
    let mut backoff = Duration::from_secs(1);
    loop {
        let wait = match source.poll(&service, &metrics).await {
            Ok(more) => {
                backoff = Duration::from_secs(1);
                metrics.source_up.with_label_values(&[&name]).set(1);
                if more {
                    Duration::ZERO
                } else {
                    source.interval()
                }
            }
            Err(e) => {
                metrics
                    .source_errors
                    .with_label_values(&[&name, e.kind()])
                    .inc();
                metrics.source_up.with_label_values(&[&name]).set(0);
                tracing::warn!(source = %name, error = %e, retry_in = ?backoff, "source poll failed");
                let wait = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                wait
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(extra: &str) -> Result<Vec<SourceConfig>, String> {
        let text = format!(
            "[[sources]]\nname = \"rt\"\nkind = \"rt\"\nurl = \"http://127.0.0.1:8099\"\n{extra}"
        );
        crate::config::Config::from_toml(&text)
            .map(|c| c.sources)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_source_is_checked_when_the_configuration_loads() {
        let ok = rt("user = \"root\"\npassword = \"password\"\npoll-seconds = 1\n").unwrap();
        assert_eq!(ok[0].priorities, [75, 50, 25]);
        assert_eq!(ok[0].ticket_prefix, "RT-");
        for (extra, expected) in [
            ("", "give either `token`, or `user` and `password`"),
            ("token = \"t\"\nuser = \"u\"\n", "give either"),
            (
                "token = \"env:DESKWATCH_TEST_NO_SUCH_VAR\"\n",
                "DESKWATCH_TEST_NO_SUCH_VAR",
            ),
            (
                "token = \"t\"\npriorities = [10, 50, 75]\n",
                "must be decreasing",
            ),
            (
                "token = \"t\"\nstatuses = { stalled = \"waiting\" }\n",
                "not a deskwatch status",
            ),
            (
                "token = \"t\"\npriority-values = { urgent = \"P0\" }\n",
                "not one of P1–P4",
            ),
            (
                "token = \"t\"\nchannel = \"fax\"\n",
                "not a deskwatch channel",
            ),
            ("token = \"t\"\npoll-seconds = 0\n", "between 0.1 and 86400"),
            ("token = \"t\"\nlogin = \"x\"\n", "unknown field"),
        ] {
            let e = rt(extra).unwrap_err();
            assert!(e.contains(expected), "{extra:?}: {e}");
        }
        let mut twice = rt("token = \"t\"\n").unwrap();
        twice.push(twice[0].clone());
        assert!(
            resolve(&mut twice)
                .unwrap_err()
                .to_string()
                .contains("used twice")
        );
    }

    #[test]
    fn state_is_saved_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources").join("rt.json");
        assert_eq!(load_state::<u64>(&path), None);
        save_state(&path, &42u64).unwrap();
        assert_eq!(load_state::<u64>(&path), Some(42));
        std::fs::write(&path, b"{ torn").unwrap();
        assert_eq!(
            load_state::<u64>(&path),
            None,
            "an unreadable state starts over"
        );
    }
}
