//! Request Tracker (RT 4.4/5) as a live source, through its REST 2 API.
//!
//! Every ticket transaction is read in id order (`/transactions?query=ObjectType = 'RT::Ticket'
//! AND id > N`, 100 per page: RT's cap), and each one that changes the ticket becomes a row for
//! the import derivation: `Create` (with the subject, requestor, queue, owner and priority the
//! ticket had then, read from the ticket and its history, and the first message as the
//! description), `Status`, `Correspond` (a reply to the requestor; the first one is the first
//! response; a requestor's own reply is a requester comment), `Comment` (internal), `Set` of
//! Owner, Priority and Queue, and a custom field chosen as the priority. `EmailRecord`,
//! `SetWatcher` (it repeats each owner change) and the like change nothing and are skipped.
//! RT answers user and queue ids in `Set` transactions: they are resolved to names once and
//! cached.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Poll, SourceConfig, SourceError, load_state, save_state};
use crate::base::Secret;
use crate::event::{Priority, TicketEvent};
use crate::import::derive::{Deriver, RowOutcome, Track};
use crate::import::mapping::Mapping;
use crate::import::source::Record;
use crate::projection::Outcome;
use crate::service::{Receipt, Service};
use crate::telemetry::Metrics;

/// RT's largest page.
const PAGE: usize = 100;
/// Longest description kept (characters).
const DESCRIPTION_CHARS: usize = 4000;

/// What deskwatch knows of one RT ticket, as of the last transaction read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RtTicket {
    /// Not followed (its queue is not in `queues`).
    ignored: bool,
    status: String,
    priority: String,
    queue: String,
    owner: String,
    requestors: Vec<String>,
    subject: String,
    description: String,
}

/// What is saved after submitted pages.
#[derive(Debug, Default, Deserialize)]
struct State {
    /// The last transaction read.
    cursor: u64,
    tickets: HashMap<u64, RtTicket>,
    tracks: HashMap<String, Track>,
}

/// [`State`] as saved, borrowing the deriver's tracks.
#[derive(Serialize)]
struct Saved<'a> {
    cursor: u64,
    tickets: &'a HashMap<u64, RtTicket>,
    tracks: &'a HashMap<String, Track>,
}

/// During a backfill the state is saved at most this often (a crash re-reads at most this
/// much, and the events come again as duplicates).
const SAVE_EVERY: Duration = Duration::from_secs(5);

/// One transaction, as the collection endpoint returns it.
#[derive(Debug, Clone)]
struct Txn {
    id: u64,
    kind: String,
    field: String,
    new: String,
    created: String,
    creator: String,
    ticket: u64,
    /// Minutes worked, recorded on the transaction (a reply or comment with time, or a change
    /// of the ticket's TimeWorked: the difference).
    minutes: String,
}

/// A ticket's values at its creation, being rolled back from today's.
struct Initial<'a> {
    status: &'a mut String,
    queue: &'a mut String,
    owner: &'a mut String,
    priority: &'a mut String,
}

/// A Request Tracker source.
#[derive(Debug)]
pub struct RtSource {
    config: SourceConfig,
    state_path: PathBuf,
    client: reqwest::Client,
    api: String,
    state: State,
    deriver: Deriver,
    /// Names of users, queues and custom fields by id.
    names: HashMap<(&'static str, String), String>,
    /// When the state was last saved.
    saved: std::time::Instant,
}

/// The built-in mapping of the rows this source builds.
fn mapping(config: &SourceConfig) -> Mapping {
    let mut statuses = vec![
        ("new", "new"),
        ("open", "open"),
        ("stalled", "pending_customer"),
        ("resolved", "resolved"),
        ("rejected", "cancelled"),
        ("deleted", "cancelled"),
        ("comment", "comment"),
        ("public-comment", "public-comment"),
        ("requester-comment", "requester-comment"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect::<HashMap<_, _>>();
    for (from, to) in &config.statuses {
        statuses.insert(from.clone(), to.clone());
    }
    let activities: String = statuses
        .iter()
        .map(|(a, b)| format!("{a:?} = {b:?}\n"))
        .collect();
    let text = format!(
        r#"
name = {name:?}
format = "xes"
mode = "event"
ticket-prefix = {prefix:?}
null-values = [""]

[time]
field = "time"
format = "rfc3339"

[fields]
ticket-id = "ticket"
activity = "activity"
priority = "priority"
channel = {{ value = {channel:?} }}
category = "queue"
requester = "requester"
title = "subject"
description = "description"
group = "group"
agent = "owner"
actor = "actor"
work-time = "minutes"

[activities]
{activities}
"#,
        name = config.name,
        prefix = config.ticket_prefix,
        channel = config.channel,
    );
    // The text is built from checked values: it always parses.
    Mapping::from_toml(&text).unwrap_or_else(|e| panic!("built-in RT mapping: {e}"))
}

fn text(v: &Value, key: &str) -> String {
    match &v[key] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Object(o) => o
            .get("id")
            .map(|id| match id {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

impl RtSource {
    /// A source for `config`, carrying on from the state saved at `state_path`.
    pub fn new(config: SourceConfig, state_path: PathBuf) -> RtSource {
        let mut state: State = load_state(&state_path).unwrap_or_default();
        let deriver = Deriver::new(mapping(&config)).with_tracks(std::mem::take(&mut state.tracks));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        let api = format!("{}/REST/2.0", config.url.trim_end_matches('/'));
        RtSource {
            config,
            state_path,
            client,
            api,
            state,
            deriver,
            names: HashMap::new(),
            saved: std::time::Instant::now(),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, SourceError> {
        let mut request = self.client.get(format!("{}{path}", self.api)).query(query);
        request = match (&self.config.token, &self.config.user) {
            (Some(token), _) => {
                request.header("Authorization", format!("token {}", token.expose()))
            }
            (None, Some(user)) => {
                request.basic_auth(user, self.config.password.as_ref().map(Secret::expose))
            }
            (None, None) => request,
        };
        let response = request
            .send()
            .await
            .map_err(|e| SourceError::Unreachable(e.to_string()))?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(SourceError::Auth(status));
        }
        if status != 200 {
            return Err(SourceError::Http {
                status,
                what: path.to_string(),
            });
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| SourceError::Unreachable(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| SourceError::Decode {
            what: path.to_string(),
            detail: e.to_string(),
        })
    }

    /// The name of a user, queue or custom field by id (cached).
    async fn name(&mut self, kind: &'static str, id: &str) -> Result<String, SourceError> {
        if id.is_empty() || id == "0" {
            return Ok(String::new());
        }
        if let Some(n) = self.names.get(&(kind, id.to_string())) {
            return Ok(n.clone());
        }
        let v = self.get(&format!("/{kind}/{id}"), &[]).await?;
        let name = text(&v, "Name");
        self.names.insert((kind, id.to_string()), name.clone());
        Ok(name)
    }

    fn level(&self, priority: &str) -> String {
        let p: u32 = priority.trim().parse().unwrap_or(0);
        let [p1, p2, p3] = self.config.priorities;
        let level = if p >= p1 {
            Priority::P1
        } else if p >= p2 {
            Priority::P2
        } else if p >= p3 {
            Priority::P3
        } else {
            Priority::P4
        };
        level.as_str().to_string()
    }

    fn level_of_field(&self, value: &str) -> Option<String> {
        self.config.priority_values.get(value).cloned()
    }

    async fn transactions(&self, after: u64) -> Result<Vec<Txn>, SourceError> {
        let v = self
            .get(
                "/transactions",
                &[
                    (
                        "query",
                        format!("ObjectType = 'RT::Ticket' AND id > {after}"),
                    ),
                    ("orderby", "id".into()),
                    ("order", "ASC".into()),
                    ("per_page", PAGE.to_string()),
                    (
                        "fields",
                        "Type,Field,NewValue,Created,Creator,ObjectId,ObjectType,TimeTaken".into(),
                    ),
                ],
            )
            .await?;
        let items = v["items"].as_array().ok_or_else(|| SourceError::Decode {
            what: "/transactions".into(),
            detail: "no `items` array".into(),
        })?;
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let id: u64 = text(item, "id").parse().map_err(|_| SourceError::Decode {
                what: "/transactions".into(),
                detail: format!("a transaction without a numeric id: {item}"),
            })?;
            if text(item, "ObjectType") != "RT::Ticket" {
                continue;
            }
            out.push(Txn {
                id,
                kind: text(item, "Type"),
                field: text(item, "Field"),
                new: text(item, "NewValue"),
                created: text(item, "Created"),
                creator: text(item, "Creator"),
                ticket: text(item, "ObjectId").parse().unwrap_or(0),
                minutes: text(item, "TimeTaken"),
            });
        }
        Ok(out)
    }

    /// The ticket as it was created: its current record, rolled back through its history.
    async fn created(&mut self, txn: &Txn) -> Result<RtTicket, SourceError> {
        let id = txn.ticket;
        let v = self.get(&format!("/ticket/{id}"), &[]).await?;
        let mut queue_id = text(&v, "Queue");
        let mut owner = text(&v, "Owner");
        let mut status = text(&v, "Status");
        let mut priority = self.level(&text(&v, "Priority"));
        let requestors = v["Requestor"]
            .as_array()
            .map(|a| a.iter().map(|r| text(r, "id")).collect())
            .unwrap_or_default();
        let field_value = self.config.priority_field.as_ref().and_then(|f| {
            v["CustomFields"].as_array().and_then(|cfs| {
                cfs.iter()
                    .find(|cf| cf["name"].as_str() == Some(f))
                    .and_then(|cf| cf["values"][0].as_str().map(str::to_string))
            })
        });
        if let Some(level) = field_value.as_deref().and_then(|v| self.level_of_field(v)) {
            priority = level;
        }
        let mut then = Initial {
            status: &mut status,
            queue: &mut queue_id,
            owner: &mut owner,
            priority: &mut priority,
        };
        self.roll_back(id, &v, &mut then).await?;
        let queue = self.name("queue", &queue_id).await?;
        // Owners are names in the ticket record and ids in transactions.
        let owner = if owner.chars().all(|c| c.is_ascii_digit()) {
            self.name("user", &owner).await?
        } else {
            owner
        };
        let description = self.description(txn.id).await?;
        let ignored = !self.config.queues.is_empty() && !self.config.queues.contains(&queue);
        Ok(RtTicket {
            ignored,
            status,
            priority,
            queue,
            owner: if owner == "Nobody" {
                String::new()
            } else {
                owner
            },
            requestors,
            subject: text(&v, "Subject"),
            description,
        })
    }

    /// Rolls `then` back from the ticket's current values (`current`) to those at its creation:
    /// the first change of each field in its history tells what it was before.
    async fn roll_back(
        &mut self,
        id: u64,
        current: &Value,
        then: &mut Initial<'_>,
    ) -> Result<(), SourceError> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut page = 1;
        loop {
            let h = self
                .get(
                    &format!("/ticket/{id}/history"),
                    &[
                        ("fields", "Type,Field,OldValue".into()),
                        ("per_page", PAGE.to_string()),
                        ("page", page.to_string()),
                    ],
                )
                .await?;
            let items = h["items"].as_array().cloned().unwrap_or_default();
            for item in &items {
                let (kind, field, old) = (
                    text(item, "Type"),
                    text(item, "Field"),
                    text(item, "OldValue"),
                );
                let key = if kind == "CustomField" {
                    format!("cf:{field}")
                } else {
                    field.clone()
                };
                if field.is_empty() || !seen.insert(key) {
                    continue;
                }
                match (kind.as_str(), field.as_str()) {
                    ("Status", _) => *then.status = old,
                    ("Set", "Queue") => *then.queue = old,
                    ("Set", "Owner") => *then.owner = old,
                    ("Set", "Priority") if self.config.priority_field.is_none() => {
                        *then.priority = self.level(&old);
                    }
                    ("CustomField", cf) => {
                        let name = self.name("customfield", cf).await?;
                        if Some(&name) == self.config.priority_field.as_ref() {
                            *then.priority = self
                                .level_of_field(&old)
                                .unwrap_or_else(|| self.level(&text(current, "Priority")));
                        }
                    }
                    _ => {}
                }
            }
            if items.len() < PAGE {
                return Ok(());
            }
            page += 1;
        }
    }

    /// The first plain-text message of transaction `txn` (a ticket's description).
    async fn description(&self, txn: u64) -> Result<String, SourceError> {
        let attachments = self
            .get(
                &format!("/transaction/{txn}/attachments"),
                &[("fields", "ContentType,Content".into())],
            )
            .await?;
        Ok(attachments["items"]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .find(|a| text(a, "ContentType").starts_with("text/plain"))
                    .map(|a| text(a, "Content"))
            })
            .unwrap_or_default()
            .chars()
            .take(DESCRIPTION_CHARS)
            .collect())
    }

    /// What a transaction does to the ticket: the row's activity, or `None` when it changes
    /// nothing deskwatch follows.
    async fn apply(&mut self, txn: &Txn) -> Result<Option<String>, SourceError> {
        if txn.kind == "Create" {
            let ticket = self.created(txn).await?;
            let activity = (!ticket.ignored).then(|| ticket.status.clone());
            self.state.tickets.insert(txn.ticket, ticket);
            return Ok(activity);
        }
        let Some(ticket) = self.state.tickets.get(&txn.ticket).cloned() else {
            // Created before this source started reading (a cursor set by hand) or filtered.
            return Ok(None);
        };
        if ticket.ignored {
            return Ok(None);
        }
        let mut t = ticket;
        let activity = match (txn.kind.as_str(), txn.field.as_str()) {
            ("Status", _) => {
                t.status = txn.new.clone();
                txn.new.clone()
            }
            ("Correspond", _) if t.requestors.contains(&txn.creator) => "requester-comment".into(),
            ("Correspond", _) => "public-comment".into(),
            ("Comment", _) => "comment".into(),
            ("Set", "Owner") => {
                let owner = self.name("user", &txn.new).await?;
                t.owner = if owner == "Nobody" {
                    String::new()
                } else {
                    owner
                };
                t.status.clone()
            }
            ("Set", "Queue") => {
                t.queue = self.name("queue", &txn.new).await?;
                t.status.clone()
            }
            ("Set", "Priority") if self.config.priority_field.is_none() => {
                t.priority = self.level(&txn.new);
                t.status.clone()
            }
            ("CustomField", cf) => {
                let name = self.name("customfield", cf).await?;
                match self.level_of_field(&txn.new) {
                    Some(level) if Some(&name) == self.config.priority_field.as_ref() => {
                        t.priority = level;
                        t.status.clone()
                    }
                    _ => return Ok(None),
                }
            }
            // Time worked on its own (Set TimeWorked, or any other transaction with time).
            _ if txn.minutes.parse::<i64>().is_ok_and(|m| m > 0) => t.status.clone(),
            _ => return Ok(None),
        };
        self.state.tickets.insert(txn.ticket, t);
        Ok(Some(activity))
    }

    fn record(&self, txn: &Txn, activity: String) -> Option<Record> {
        let t = self.state.tickets.get(&txn.ticket)?;
        // A ticket waiting in its queue, untouched and unowned, is not assigned yet: RT calls
        // it `new`, and an assignment would open it in deskwatch.
        let group = if t.status == "new" && t.owner.is_empty() {
            String::new()
        } else {
            t.queue.clone()
        };
        let values: HashMap<String, String> = [
            ("ticket", txn.ticket.to_string()),
            ("time", txn.created.clone()),
            ("activity", activity),
            ("priority", t.priority.clone()),
            ("queue", t.queue.clone()),
            ("group", group),
            (
                "requester",
                t.requestors.first().cloned().unwrap_or_default(),
            ),
            ("subject", t.subject.clone()),
            ("description", t.description.clone()),
            ("owner", t.owner.clone()),
            ("actor", txn.creator.clone()),
            ("minutes", txn.minutes.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Some(Record::from_map(txn.id, values))
    }
}

impl Poll for RtSource {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(self.config.poll_seconds)
    }

    async fn poll(&mut self, service: &Service, metrics: &Metrics) -> Result<bool, SourceError> {
        let name = self.config.name.clone();
        let txns = self.transactions(self.state.cursor).await?;
        let more = txns.len() >= PAGE;
        let mut events: Vec<TicketEvent> = Vec::new();
        for txn in &txns {
            let Some(activity) = self.apply(txn).await? else {
                continue;
            };
            let Some(record) = self.record(txn, activity) else {
                continue;
            };
            let derived = self
                .deriver
                .key(&record)
                .and_then(|key| self.deriver.row(&record, &key, false));
            match derived {
                Ok(RowOutcome::Events(e)) => events.extend(e),
                Ok(_) => {}
                Err(e) => {
                    metrics
                        .source_errors
                        .with_label_values(&[&name, "refused"])
                        .inc();
                    tracing::warn!(source = %name, transaction = txn.id, reason = e.reason, message = %e.message, "an RT transaction was not turned into events");
                }
            }
        }
        let items: Vec<(TicketEvent, Vec<u8>)> = events
            .into_iter()
            .filter_map(|e| serde_json::to_vec(&e).ok().map(|raw| (e, raw)))
            .collect();
        let count = items.len() as u64;
        let receipts = service
            .submit(items)
            .await
            .map_err(|e| SourceError::Store(e.to_string()))?;
        for receipt in receipts {
            if let Receipt::Decided(Outcome::Rejected(r)) = receipt {
                tracing::warn!(source = %name, reason = r.reason, message = %r.message, "deskwatch rejected an event derived from RT");
            }
        }
        metrics
            .source_events
            .with_label_values(&[&name])
            .inc_by(count);
        if let Some(last) = txns.last() {
            self.state.cursor = last.id;
            let lag = if more {
                chrono::DateTime::parse_from_rfc3339(&last.created)
                    .map(|t| (chrono::Utc::now() - t.to_utc()).num_seconds().max(0))
                    .unwrap_or(0)
            } else {
                0
            };
            metrics.source_lag.with_label_values(&[&name]).set(lag);
        } else {
            metrics.source_lag.with_label_values(&[&name]).set(0);
        }
        if !txns.is_empty() && (!more || self.saved.elapsed() >= SAVE_EVERY) {
            let saved = Saved {
                cursor: self.state.cursor,
                tickets: &self.state.tickets,
                tracks: self.deriver.tracks(),
            };
            save_state(&self.state_path, &saved)?;
            self.saved = std::time::Instant::now();
        }
        Ok(more)
    }
}
