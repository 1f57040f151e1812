//! Webhook sources (`kind = "webhook"`): desks that push. `POST /v1/hooks/{source}` takes the
//! desk's JSON payload, checks its HMAC signature when the source has a `secret`, reads the
//! mapping's fields out of it by JSON pointer, and derives events from the difference between
//! the payload and what deskwatch knows of the ticket — the import derivation, with the same
//! rules and the same reasons for refusals.
//!
//! What deskwatch knows of a ticket comes from the projection the first time a hook names it
//! (after a restart, that is the replayed log), then from what the hook derived since. Event ids
//! are a function of the ticket, the payload's instant and the event (a comment's, of the desk's
//! comment id), and nothing is answered before the events are durable: a payload sent again,
//! after a crash or a timeout, derives nothing new or the same ids, which the projection drops.

use std::collections::HashMap;

use datafusion::prelude::{col, lit};
use hmac::{Hmac, Mac};
use serde::Serialize;
use tokio::sync::Mutex;

use super::SourceConfig;
use crate::base::Secret;
use crate::event::{Priority, Status, TicketEvent};
use crate::import::derive::{Deriver, RowError, RowOutcome, Track};
use crate::import::json::JsonRows;
use crate::import::mapping::{Mapping, Signature};
use crate::projection::Outcome;
use crate::service::{Receipt, Service, ServiceError};

/// Tickets a hook remembers between payloads; past this, finished tickets are forgotten first,
/// then the least recently changed half (they are read from the projection again when named).
const REMEMBERED: usize = 100_000;

/// One webhook source.
#[derive(Debug)]
pub struct Hook {
    name: String,
    rows: JsonRows,
    signature: Option<Signature>,
    secret: Option<Secret>,
    deriver: Mutex<Deriver>,
}

/// Why a payload was not taken.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The signature is missing or wrong (HTTP 401).
    #[error("{0}")]
    Signature(String),
    /// The body is not a JSON document (HTTP 400).
    #[error("the body is not JSON: {0}")]
    Body(String),
    /// The payload does not make events (HTTP 422), with the import's reason.
    #[error("{}: {}", .0.reason, .0.message)]
    Refused(RowError),
    /// deskwatch is catching up with its log: what it knows of tickets is not current yet
    /// (HTTP 503; the desk retries).
    #[error("deskwatch is catching up with its log; retry shortly")]
    NotReady,
    /// The events could not be stored (as `POST /v1/events`).
    #[error(transparent)]
    Store(#[from] ServiceError),
    /// What deskwatch knows of the ticket could not be read.
    #[error("cannot read the ticket from the projection: {0}")]
    Lookup(String),
}

/// What a payload became.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HookReply {
    /// The ticket, as deskwatch names it.
    pub ticket_id: String,
    /// `events`, `unchanged` (the payload repeats what deskwatch knows) or `skipped` (its status
    /// maps to `skip`).
    pub outcome: String,
    /// Applied (embedded log) or appended (Kafka).
    pub accepted: usize,
    /// Already stored: the payload came again.
    pub duplicates: usize,
    /// Refused by the projection (see the service log and `deskwatch_source_errors_total`).
    pub rejected: usize,
    /// The ids of the derived events.
    pub event_ids: Vec<String>,
}

impl Hook {
    /// The hook of a checked `[[sources]]` entry and its loaded mapping.
    pub fn new(config: &SourceConfig, mapping: Mapping) -> Hook {
        let deriver = Deriver::new(mapping).with_content_ids();
        let rows = JsonRows::new(deriver.mapping(), deriver.columns());
        Hook {
            name: config.name.clone(),
            signature: deriver.mapping().json.signature.clone(),
            secret: config.secret.clone(),
            rows,
            deriver: Mutex::new(deriver),
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether requests must be signed (the source has a `secret`).
    pub fn signed(&self) -> bool {
        self.secret.is_some()
    }

    /// Checks the signature of `body`; `header` reads a request header.
    pub fn verify<'a>(
        &self,
        header: impl Fn(&str) -> Option<&'a str>,
        body: &[u8],
    ) -> Result<(), HookError> {
        let (Some(secret), Some(spec)) = (&self.secret, &self.signature) else {
            return Ok(());
        };
        let presented = header(&spec.header)
            .ok_or_else(|| HookError::Signature(format!("no {} header", spec.header)))?;
        let digest = presented
            .trim()
            .strip_prefix(spec.prefix.as_str())
            .ok_or_else(|| {
                HookError::Signature(format!(
                    "the {} header does not start with `{}`",
                    spec.header, spec.prefix
                ))
            })?;
        let stamp = match &spec.timestamp_header {
            Some(h) => header(h)
                .ok_or_else(|| HookError::Signature(format!("no {h} header")))?
                .trim()
                .as_bytes(),
            None => &[],
        };
        let (first, second) = if spec.timestamp_position == "before" {
            (stamp, body)
        } else {
            (body, stamp)
        };
        let expected = sign(&spec.algorithm, secret.expose().as_bytes(), first, second);
        let presented = match spec.encoding.as_str() {
            "base64" => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(digest)
                    .ok()
            }
            _ => decode_hex(digest),
        };
        let ok = presented.is_some_and(|p| {
            use subtle::ConstantTimeEq;
            bool::from(p.as_slice().ct_eq(&expected))
        });
        if ok {
            Ok(())
        } else {
            Err(HookError::Signature(format!(
                "the {} signature does not match the body",
                spec.header
            )))
        }
    }

    /// Derives the payload's events and submits them; answers once they are durable.
    pub async fn receive(&self, service: &Service, body: &[u8]) -> Result<HookReply, HookError> {
        if !service.is_ready() {
            return Err(HookError::NotReady);
        }
        let doc: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| HookError::Body(e.to_string()))?;
        let record = self.rows.record(1, &doc);
        // One payload at a time per source: each is derived from the state the previous made.
        let mut deriver = self.deriver.lock().await;
        let key = deriver.key(&record).map_err(HookError::Refused)?;
        if !deriver.knows(&key.ticket)
            && let Some(track) = known(service, &key.ticket).await?
        {
            deriver.seed(&key.ticket, track);
        }
        let before = deriver.tracks().get(&key.ticket).cloned();
        let outcome = deriver.row(&record, &key, false);
        let mut reply = HookReply {
            ticket_id: key.ticket.clone(),
            ..HookReply::default()
        };
        let events = match outcome {
            Err(e) => return Err(HookError::Refused(e)),
            Ok(RowOutcome::Unchanged) => {
                reply.outcome = "unchanged".into();
                return Ok(reply);
            }
            Ok(RowOutcome::Skipped) => {
                reply.outcome = "skipped".into();
                return Ok(reply);
            }
            Ok(RowOutcome::Events(events)) => events,
        };
        reply.outcome = "events".into();
        reply.event_ids = events.iter().map(|e| e.event_id.clone()).collect();
        let submitted = submit(service, events).await;
        let receipts = match submitted {
            Ok(r) => r,
            Err(e) => {
                // Not stored: the desk retries, and the ticket is as it was.
                restore(&mut deriver, &key.ticket, before);
                return Err(e.into());
            }
        };
        for receipt in receipts {
            match receipt {
                Receipt::Appended(_) | Receipt::Decided(Outcome::Applied) => reply.accepted += 1,
                Receipt::Decided(Outcome::Duplicate) => reply.duplicates += 1,
                Receipt::Decided(Outcome::Rejected(r)) => {
                    reply.rejected += 1;
                    tracing::warn!(source = %self.name, ticket = %key.ticket, reason = r.reason, message = %r.message, "deskwatch rejected an event derived from a webhook");
                }
            }
        }
        if reply.rejected > 0 {
            // The projection disagrees with what the hook derived: read it again next time.
            deriver.retain(|t, _| *t != key.ticket);
        }
        bound(&mut deriver);
        Ok(reply)
    }
}

/// Submits derived events like `POST /v1/events`.
async fn submit(service: &Service, events: Vec<TicketEvent>) -> Result<Vec<Receipt>, ServiceError> {
    let items: Vec<(TicketEvent, Vec<u8>)> = events
        .into_iter()
        .filter_map(|e| serde_json::to_vec(&e).ok().map(|raw| (e, raw)))
        .collect();
    service.submit(items).await
}

/// Puts a ticket back as it was before a payload that was not stored.
fn restore(deriver: &mut Deriver, ticket: &str, before: Option<Track>) {
    match before {
        Some(t) => deriver.seed(ticket, t),
        None => deriver.retain(|t, _| t != ticket),
    }
}

/// Keeps the remembered tickets under [`REMEMBERED`].
fn bound(deriver: &mut Deriver) {
    if deriver.tickets() <= REMEMBERED {
        return;
    }
    deriver.retain(|_, t| !t.status.is_final());
    if deriver.tickets() > REMEMBERED {
        let mut times: Vec<i64> = deriver.tracks().values().map(|t| t.last_at).collect();
        let mid = times.len() / 2;
        let (_, cut, _) = times.select_nth_unstable(mid);
        let cut = *cut;
        deriver.retain(|_, t| t.last_at > cut);
    }
}

/// What the projection knows of `ticket`, as the derivation tracks it; `None` when it has no
/// such ticket.
async fn known(service: &Service, ticket: &str) -> Result<Option<Track>, HookError> {
    let q = &service.query;
    let batches = q
        .filtered("tickets", col("ticket_id").eq(lit(ticket)), None)
        .await
        .map_err(|e| HookError::Lookup(e.to_string()))?;
    let rows =
        crate::query::to_json_rows(&batches).map_err(|e| HookError::Lookup(e.to_string()))?;
    Ok(rows.first().and_then(track_of))
}

/// A `tickets` row (as JSON) as a derivation track.
fn track_of(row: &serde_json::Value) -> Option<Track> {
    let s = |k: &str| row.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let n = |k: &str| row.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let last_at = s("last_event_at").and_then(|t| millis(&t)).unwrap_or(0);
    Some(Track {
        status: Status::parse(&s("status")?)?,
        priority: Priority::parse(&s("priority")?)?,
        tenant: s("tenant"),
        group: s("assignment_group"),
        agent: s("agent"),
        tier: n("tier") as u8,
        last_at,
        rows: 0,
        detours: (n("reopen_count") + n("reassignment_count")) as u32,
        responded: row.get("first_response_at").is_some_and(|v| !v.is_null()),
    })
}

/// An instant as Arrow's JSON writer prints it (RFC 3339, or without a zone: UTC).
fn millis(text: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// HMAC of `first` then `second`.
fn sign(algorithm: &str, key: &[u8], first: &[u8], second: &[u8]) -> Vec<u8> {
    fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], first: &[u8], second: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .expect("HMAC takes keys of any length");
        m.update(first);
        m.update(second);
        m.finalize().into_bytes().to_vec()
    }
    match algorithm {
        "sha1" => mac::<Hmac<sha1::Sha1>>(key, first, second),
        _ => mac::<Hmac<sha2::Sha256>>(key, first, second),
    }
}

/// Hex digits as bytes (either case); `None` when not hex.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Every webhook source of a configuration, by name.
pub type Hooks = HashMap<String, std::sync::Arc<Hook>>;

/// The hooks of the configured `kind = "webhook"` sources.
pub fn hooks(sources: &[SourceConfig]) -> Hooks {
    sources
        .iter()
        .filter_map(|c| {
            let mapping = c.loaded.clone()?;
            Some((
                c.name.clone(),
                std::sync::Arc::new(Hook::new(c, (*mapping).clone())),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_published_test_vectors() {
        // RFC 2202 test case 2 (SHA-1) and RFC 4231 test case 2 (SHA-256): key "Jefe".
        let data = b"what do ya want for nothing?";
        let sha1 = sign("sha1", b"Jefe", &data[..10], &data[10..]);
        assert_eq!(
            sha1,
            decode_hex("effcdf6ae5eb2fa2d27416d5f184df9c259a7c79").unwrap()
        );
        let sha256 = sign("sha256", b"Jefe", data, b"");
        assert_eq!(
            sha256,
            decode_hex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843").unwrap()
        );
        assert_eq!(decode_hex("0g"), None);
        assert_eq!(decode_hex("abc"), None);
    }

    #[test]
    fn a_tickets_row_becomes_a_track() {
        let row = serde_json::json!({
            "ticket_id": "ZM-1", "status": "in_progress", "priority": "P2",
            "assignment_group": "Service Desk", "agent": "emma", "tier": 1,
            "reopen_count": 1, "reassignment_count": 2, "first_response_at": "2020-11-13T14:40:00",
            "last_event_at": "2020-11-13T15:00:00.250"
        });
        let t = track_of(&row).unwrap();
        assert_eq!(t.status, Status::InProgress);
        assert_eq!(t.priority, Priority::P2);
        assert_eq!(t.group.as_deref(), Some("Service Desk"));
        assert_eq!((t.tier, t.detours, t.responded), (1, 3, true));
        assert_eq!(t.last_at, 1_605_279_600_250);
        assert!(track_of(&serde_json::json!({"status": "nonsense", "priority": "P2"})).is_none());
    }

    /// Every leaf of a document, as (pointer, value).
    fn leaves(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    leaves(v, format!("{at}/{k}"), out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    leaves(v, format!("{at}/{i}"), out);
                }
            }
            _ => out.push(at),
        }
    }

    fn shipped() -> Vec<(Mapping, Vec<serde_json::Value>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |dir: &str| -> Vec<serde_json::Value> {
            let mut files: Vec<_> =
                std::fs::read_dir(root.join("tests/fixtures/webhooks").join(dir))
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
            files.sort();
            files
                .iter()
                .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
                .collect()
        };
        let mapping =
            |f: &str| Mapping::load(&root.join("examples/mappings/webhooks").join(f)).unwrap();
        vec![
            (mapping("zammad.toml"), read("zammad")),
            (mapping("glpi-tickets.toml"), read("glpi")),
            (mapping("glpi-followups.toml"), read("glpi")),
            (mapping("jsm.toml"), read("jsm")),
            (mapping("servicenow.toml"), read("servicenow")),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Damaged payloads of every shipped mapping (leaves replaced by other strings, numbers,
        /// nulls, objects) are refused with a reason or derive events the contract accepts;
        /// nothing panics.
        #[test]
        fn damaged_payloads_are_refused_or_valid(
            edits in proptest::collection::vec((0usize..10_000, 0u8..5, "[a-zA-Z0-9 :/-]{0,12}"), 1..12),
        ) {
            for (mapping, docs) in shipped() {
                let mut d = Deriver::new(mapping).with_content_ids();
                let rows = JsonRows::new(d.mapping(), d.columns());
                for (n, doc) in docs.into_iter().enumerate() {
                    let mut doc = doc;
                    let mut paths = Vec::new();
                    leaves(&doc, String::new(), &mut paths);
                    for (i, kind, text) in &edits {
                        let p = &paths[i % paths.len()];
                        if let Some(v) = doc.pointer_mut(p) {
                            *v = match kind {
                                0 => serde_json::Value::String(text.clone()),
                                1 => serde_json::json!(i),
                                2 => serde_json::Value::Null,
                                3 => serde_json::json!({"x": text}),
                                _ => serde_json::json!(-1.5e300),
                            };
                        }
                    }
                    let r = rows.record(n as u64, &doc);
                    let Ok(key) = d.key(&r) else { continue };
                    if let Ok(RowOutcome::Events(events)) = d.row(&r, &key, false) {
                        for e in events {
                            proptest::prop_assert!(e.validate().is_ok(), "{e:?}");
                        }
                    }
                }
            }
        }
    }
}
