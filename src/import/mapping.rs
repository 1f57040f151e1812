//! Mapping files: how the columns of another help desk's export (CSV) or the attributes of an
//! event log (XES) become deskwatch events. See the README ("Import") for every key.

use std::collections::HashMap;
use std::path::Path;

use figment::Figment;
use figment::providers::{Format as _, Toml};
use serde::Deserialize;

use crate::event::{Channel, Priority, Status};

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Delimited text with a header row.
    Csv,
    /// IEEE 1849 eXtensible Event Stream.
    Xes,
    /// JSON documents (webhook payloads; for `import`, one per line or a JSON array): fields
    /// are JSON pointers (`/ticket/state`) or names defined under `[json.select]`.
    Json,
}

/// What one row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Each row is one thing that happened: its `activity` says what.
    Event,
    /// Each row is the whole ticket after an update: events come from the differences.
    Snapshot,
}

/// Where a field's value comes from: a column (attribute) name, a constant, a template with
/// `{column}` placeholders, or a column with a default for empty values.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Source {
    /// The value of this column.
    Column(String),
    /// A constant.
    Value {
        /// The constant.
        value: String,
    },
    /// Text with `{column}` placeholders.
    Template {
        /// The template.
        template: String,
    },
    /// The value of a column, or `default` where it is empty or null
    /// (`{ column = "category", default = "uncategorised" }`).
    ColumnOr {
        /// The column.
        column: String,
        /// The value for rows where the column is empty or null.
        default: String,
    },
}

/// `[csv]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CsvOptions {
    /// One character (`","`, `";"`, `"\t"`, `"|"`).
    #[serde(default = "comma")]
    pub delimiter: String,
    /// The quote character.
    #[serde(default = "double_quote")]
    pub quote: String,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: comma(),
            quote: double_quote(),
        }
    }
}

fn comma() -> String {
    ",".into()
}

fn double_quote() -> String {
    "\"".into()
}

/// `[time]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TimeSpec {
    /// The column holding the instant of the row.
    pub field: String,
    /// `rfc3339`, `epoch-seconds`, `epoch-millis`, or a chrono `strftime` pattern
    /// (`%d/%m/%Y %H:%M`).
    #[serde(default = "rfc3339")]
    pub format: String,
    /// IANA zone of times written without an offset.
    #[serde(default = "utc")]
    pub time_zone: String,
}

fn rfc3339() -> String {
    "rfc3339".into()
}

fn utc() -> String {
    "UTC".into()
}

/// `[fields]`: the event fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Fields {
    /// The ticket id (required).
    pub ticket_id: Source,
    /// Snapshot mode: the ticket's status after the row, mapped by `[values.status]`.
    pub status: Option<Source>,
    /// Event mode: what happened, mapped by `[activities]`.
    pub activity: Option<Source>,
    /// Priority, mapped by `[values.priority]` (required when rows create tickets: a constant
    /// if the export has none).
    pub priority: Option<Source>,
    /// Channel, mapped by `[values.channel]` (required when rows create tickets).
    pub channel: Option<Source>,
    /// Category (required when rows create tickets).
    pub category: Option<Source>,
    /// Requester (required when rows create tickets).
    pub requester: Option<Source>,
    /// Title (required when rows create tickets).
    pub title: Option<Source>,
    /// Description.
    pub description: Option<Source>,
    /// Subcategory.
    pub subcategory: Option<Source>,
    /// Configuration item.
    pub configuration_item: Option<Source>,
    /// Business service.
    pub service: Option<Source>,
    /// Tenant.
    pub tenant: Option<Source>,
    /// Assignment group.
    pub group: Option<Source>,
    /// Agent.
    pub agent: Option<Source>,
    /// Support tier, mapped by `[values.tier]` to 1–3.
    pub tier: Option<Source>,
    /// Resolution code of a resolving row.
    pub resolution_code: Option<Source>,
    /// Who made the change when no agent is known (default `import`).
    pub actor: Option<Source>,
    /// What the row adds as a comment besides its status, mapped by `[values.comment]` to
    /// `comment`, `public-comment`, `requester-comment` or `skip` (a webhook payload carrying
    /// the article that triggered it).
    pub comment: Option<Source>,
    /// The desk's id of that comment: the comment's event id comes from it, so a comment sent
    /// again with a later update of the ticket is recognised as the same one.
    pub comment_id: Option<Source>,
    /// Time worked on the ticket in this row, in `derive.work-unit`s: a `work_logged` event
    /// (RT's `TimeTaken`, an article's accounted time).
    pub work_time: Option<Source>,
}

/// `[values]`: value maps (source value → deskwatch value). A value missing from a map is
/// taken as is when it is already a deskwatch value, and is an error otherwise.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Values {
    /// To a status, or `skip` (the row is counted and ignored).
    #[serde(default)]
    pub status: HashMap<String, String>,
    /// To P1–P4.
    #[serde(default)]
    pub priority: HashMap<String, String>,
    /// To a channel.
    #[serde(default)]
    pub channel: HashMap<String, String>,
    /// To 1, 2 or 3.
    #[serde(default)]
    pub tier: HashMap<String, String>,
    /// `fields.comment` values to `comment`, `public-comment`, `requester-comment` or `skip`.
    #[serde(default)]
    pub comment: HashMap<String, String>,
}

/// `[json]`: what JSON documents need besides pointers.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct JsonOptions {
    /// Named values a pointer cannot reach: an element of an array chosen by its members
    /// (GLPI's team: the member whose `type` is `Group` and `role` is `assigned`), or a value
    /// taken only when another is present. Fields refer to them by name.
    #[serde(default)]
    pub select: std::collections::BTreeMap<String, Select>,
    /// How the desk signs its webhook requests (with the source's `secret`).
    pub signature: Option<Signature>,
}

/// One `[json.select]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Select {
    /// The pointer of the value; relative to the chosen element with `array`.
    pub value: String,
    /// An array whose first element matching `where` is the base of `value`.
    pub array: Option<String>,
    /// Pointers and the text they must equal: relative to the element with `array`, else a
    /// condition on the document.
    #[serde(default, rename = "where")]
    pub matching: std::collections::BTreeMap<String, String>,
    /// The value is taken only when this pointer has a value.
    pub present: Option<String>,
    /// The value is not taken when one of these pointers (from the document's root) has the
    /// text given (Zammad's unowned tickets: `owner_id` 1).
    #[serde(default)]
    pub unless: std::collections::BTreeMap<String, String>,
}

/// `[json.signature]`: HMAC of the request body, as the desk sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Signature {
    /// The header carrying the signature (`X-Hub-Signature`).
    pub header: String,
    /// `sha1` or `sha256`.
    pub algorithm: String,
    /// Text before the digest in the header (`sha1=`).
    #[serde(default)]
    pub prefix: String,
    /// `hex` or `base64`.
    #[serde(default = "hex")]
    pub encoding: String,
    /// A header whose value is signed with the body (GLPI's `X-GLPI-timestamp`).
    pub timestamp_header: Option<String>,
    /// Where that value goes: `after` the body (GLPI) or `before` it (Zendesk).
    #[serde(default = "after")]
    pub timestamp_position: String,
}

fn hex() -> String {
    "hex".into()
}

fn after() -> String {
    "after".into()
}

/// `[derive]`: how events are derived.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DeriveOptions {
    /// Entering one of these statuses the first time is also the first response (a public
    /// agent comment), for exports that record no comments.
    #[serde(default)]
    pub first_response_statuses: Vec<String>,
    /// Tier of an assignment when the row gives none.
    #[serde(default = "one")]
    pub default_tier: u8,
    /// Some desks reopen closed tickets. deskwatch treats a closure as final, so with this a
    /// closure that later rows of the same ticket (next to it in the file) continue is imported
    /// as a resolution, and what follows as a reopen. Without it those later rows are rejected
    /// (`after_close`).
    #[serde(default)]
    pub reopen_after_close: bool,
    /// Rows may create tickets (default). Without, a row of a ticket deskwatch does not know
    /// is refused (`unknown_ticket`): for sources that only add to tickets another creates
    /// (GLPI's followups).
    #[serde(default = "yes")]
    pub create: bool,
    /// The unit of `fields.work-time`: `minutes`, `seconds` or `hours`.
    #[serde(default = "minutes")]
    pub work_unit: String,
}

fn minutes() -> String {
    "minutes".into()
}

fn yes() -> bool {
    true
}

impl Default for DeriveOptions {
    fn default() -> Self {
        DeriveOptions {
            first_response_statuses: Vec::new(),
            default_tier: 1,
            reopen_after_close: false,
            create: true,
            work_unit: minutes(),
        }
    }
}

fn one() -> u8 {
    1
}

/// A mapping file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Mapping {
    /// Names the source; part of every event id, so importing the same rows again adds nothing.
    pub name: String,
    /// `csv` or `xes`.
    pub format: Format,
    /// `event` or `snapshot`.
    pub mode: Mode,
    /// Prepended to every ticket id.
    #[serde(default)]
    pub ticket_prefix: String,
    /// Values that mean "no value" (compared after trimming).
    #[serde(default = "default_nulls")]
    pub null_values: Vec<String>,
    /// CSV options.
    #[serde(default)]
    pub csv: CsvOptions,
    /// The instant of each row.
    pub time: TimeSpec,
    /// The event fields.
    pub fields: Fields,
    /// Value maps.
    #[serde(default)]
    pub values: Values,
    /// Event mode: activity → a status, or `comment` (internal agent note), `public-comment`
    /// (agent reply), `requester-comment`, `skip`.
    #[serde(default)]
    pub activities: HashMap<String, String>,
    /// Derivation options.
    #[serde(default)]
    pub derive: DeriveOptions,
    /// JSON options.
    #[serde(default)]
    pub json: JsonOptions,
}

fn default_nulls() -> Vec<String> {
    vec![String::new(), "?".into(), "NULL".into(), "null".into()]
}

/// What an activity or a status value means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// The ticket is in this status after the row.
    Status(Status),
    /// An internal agent note.
    Comment,
    /// A reply to the requester.
    PublicComment,
    /// The requester wrote.
    RequesterComment,
    /// Counted and ignored.
    Skip,
}

impl Meaning {
    fn parse(text: &str) -> Option<Meaning> {
        Some(match text {
            "comment" => Meaning::Comment,
            "public-comment" => Meaning::PublicComment,
            "requester-comment" => Meaning::RequesterComment,
            "skip" => Meaning::Skip,
            other => Meaning::Status(Status::parse(other)?),
        })
    }
}

/// What is wrong inside a mapping, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MappingProblem(pub String);

/// A mapping that failed to load or check; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("mapping {path}: {message}")]
pub struct MappingError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl Mapping {
    /// Loads and checks a mapping file.
    pub fn load(path: &Path) -> Result<Mapping, MappingError> {
        let err = |message: String| MappingError {
            path: path.display().to_string(),
            message,
        };
        if !path.exists() {
            return Err(err("does not exist".into()));
        }
        let m: Mapping = Figment::from(Toml::file(path))
            .extract()
            .map_err(|e| err(e.to_string()))?;
        m.check().map_err(|p| err(p.0))?;
        Ok(m)
    }

    /// Parses a mapping from TOML text (tests, the API).
    pub fn from_toml(text: &str) -> Result<Mapping, MappingError> {
        let err = |message: String| MappingError {
            path: "(inline)".into(),
            message,
        };
        let m: Mapping = Figment::from(Toml::string(text))
            .extract()
            .map_err(|e| err(e.to_string()))?;
        m.check().map_err(|p| err(p.0))?;
        Ok(m)
    }

    /// Checks what the types cannot; the message names the key.
    pub fn check(&self) -> Result<(), MappingProblem> {
        if self.name.trim().is_empty() || self.name.len() > 40 {
            return Err(MappingProblem("`name` must be 1–40 characters".into()));
        }
        match self.mode {
            Mode::Snapshot if self.fields.status.is_none() => {
                return Err(MappingProblem("snapshot mode needs `fields.status`".into()));
            }
            Mode::Event if self.fields.activity.is_none() => {
                return Err(MappingProblem("event mode needs `fields.activity`".into()));
            }
            _ => {}
        }
        self.check_values()?;
        for s in &self.derive.first_response_statuses {
            if Status::parse(s).is_none() {
                return Err(MappingProblem(format!(
                    "`derive.first-response-statuses`: `{s}` is not a status"
                )));
            }
        }
        if !matches!(
            self.derive.work_unit.as_str(),
            "minutes" | "seconds" | "hours"
        ) {
            return Err(MappingProblem(
                "`derive.work-unit` must be minutes, seconds or hours".into(),
            ));
        }
        if !(1..=3).contains(&self.derive.default_tier) {
            return Err(MappingProblem(
                "`derive.default-tier` must be 1, 2 or 3".into(),
            ));
        }
        if self.csv.delimiter.len() != 1 && self.csv.delimiter != "\\t" {
            return Err(MappingProblem(
                "`csv.delimiter` must be one ASCII character".into(),
            ));
        }
        if self.csv.quote.len() != 1 {
            return Err(MappingProblem(
                "`csv.quote` must be one ASCII character".into(),
            ));
        }
        if self.time.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(MappingProblem(format!(
                "`time.time-zone`: `{}` is not an IANA time zone",
                self.time.time_zone
            )));
        }
        Ok(())
    }

    /// The value maps and activities name deskwatch values.
    fn check_values(&self) -> Result<(), MappingProblem> {
        for (k, v) in &self.values.status {
            match Meaning::parse(v) {
                Some(Meaning::Status(_) | Meaning::Skip) => {}
                _ => {
                    return Err(MappingProblem(format!(
                        "`values.status.\"{k}\"`: `{v}` is not a status or `skip`"
                    )));
                }
            }
        }
        for (k, v) in &self.activities {
            if Meaning::parse(v).is_none() {
                return Err(MappingProblem(format!(
                    "`activities.\"{k}\"`: `{v}` is not a status, comment, public-comment, requester-comment or skip"
                )));
            }
        }
        let f = &self.fields;
        if self.derive.create {
            for (name, s) in [
                ("priority", &f.priority),
                ("channel", &f.channel),
                ("category", &f.category),
                ("requester", &f.requester),
                ("title", &f.title),
            ] {
                if s.is_none() {
                    return Err(MappingProblem(format!(
                        "`fields.{name}` is required (rows create tickets; a constant if the export has none)"
                    )));
                }
            }
        }
        for (k, v) in &self.values.comment {
            match Meaning::parse(v) {
                Some(Meaning::Status(_)) | None => {
                    return Err(MappingProblem(format!(
                        "`values.comment.\"{k}\"`: `{v}` is not comment, public-comment, requester-comment or skip"
                    )));
                }
                Some(_) => {}
            }
        }
        for (k, v) in &self.values.priority {
            if Priority::parse(v).is_none() {
                return Err(MappingProblem(format!(
                    "`values.priority.\"{k}\"`: `{v}` is not P1–P4"
                )));
            }
        }
        for (k, v) in &self.values.channel {
            if Channel::parse(v).is_none() {
                return Err(MappingProblem(format!(
                    "`values.channel.\"{k}\"`: `{v}` is not a channel"
                )));
            }
        }
        for (k, v) in &self.values.tier {
            if !matches!(v.as_str(), "1" | "2" | "3") {
                return Err(MappingProblem(format!(
                    "`values.tier.\"{k}\"`: `{v}` is not 1, 2 or 3"
                )));
            }
        }
        self.check_json()
    }

    /// The `[json]` part: only with `format = "json"`; names and pointers well formed.
    fn check_json(&self) -> Result<(), MappingProblem> {
        let j = &self.json;
        if self.format != Format::Json {
            if !j.select.is_empty() || j.signature.is_some() {
                return Err(MappingProblem(
                    "`[json]` is only for `format = \"json\"`".into(),
                ));
            }
            return Ok(());
        }
        let pointer = |key: String, p: &str| {
            if p.is_empty() || p.starts_with('/') {
                Ok(())
            } else {
                Err(MappingProblem(format!(
                    "`{key}`: `{p}` is not a JSON pointer (it starts with `/`)"
                )))
            }
        };
        for (name, s) in &j.select {
            if name.starts_with('/') || name.is_empty() {
                return Err(MappingProblem(format!(
                    "`json.select.\"{name}\"`: a name, not a pointer"
                )));
            }
            pointer(format!("json.select.{name}.value"), &s.value)?;
            if let Some(a) = &s.array {
                pointer(format!("json.select.{name}.array"), a)?;
            }
            for k in s.matching.keys() {
                pointer(format!("json.select.{name}.where"), k)?;
            }
            for k in s.unless.keys() {
                pointer(format!("json.select.{name}.unless"), k)?;
            }
            if let Some(p) = &s.present {
                pointer(format!("json.select.{name}.present"), p)?;
            }
        }
        if let Some(s) = &j.signature {
            if !matches!(s.algorithm.as_str(), "sha1" | "sha256") {
                return Err(MappingProblem(
                    "`json.signature.algorithm` must be sha1 or sha256".into(),
                ));
            }
            if !matches!(s.encoding.as_str(), "hex" | "base64") {
                return Err(MappingProblem(
                    "`json.signature.encoding` must be hex or base64".into(),
                ));
            }
            if !matches!(s.timestamp_position.as_str(), "after" | "before") {
                return Err(MappingProblem(
                    "`json.signature.timestamp-position` must be after or before".into(),
                ));
            }
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if s.header.is_empty() || !s.header.chars().all(token) {
                return Err(MappingProblem(format!(
                    "`json.signature.header`: `{}` is not a header name",
                    s.header
                )));
            }
        }
        Ok(())
    }

    /// What a `fields.comment` value means; `None` when unmapped.
    pub fn comment_meaning(&self, value: &str) -> Option<Meaning> {
        self.values
            .comment
            .get(value)
            .and_then(|v| Meaning::parse(v))
            .filter(|m| !matches!(m, Meaning::Status(_)))
    }

    /// The CSV delimiter byte.
    pub fn delimiter(&self) -> u8 {
        if self.csv.delimiter == "\\t" {
            b'\t'
        } else {
            self.csv.delimiter.as_bytes()[0]
        }
    }

    /// What a status value (snapshot mode) means; `None` when unmapped and not a status.
    pub fn status_meaning(&self, value: &str) -> Option<Meaning> {
        match self.values.status.get(value) {
            Some(v) => Meaning::parse(v),
            None => Status::parse(value).map(Meaning::Status),
        }
    }

    /// What an activity (event mode) means; `None` when unmapped.
    pub fn activity_meaning(&self, value: &str) -> Option<Meaning> {
        match self.activities.get(value) {
            Some(v) => Meaning::parse(v),
            None => Status::parse(value).map(Meaning::Status),
        }
    }

    /// A priority value mapped.
    pub fn priority(&self, value: &str) -> Option<Priority> {
        Priority::parse(
            self.values
                .priority
                .get(value)
                .map_or(value, String::as_str),
        )
    }

    /// A channel value mapped.
    pub fn channel(&self, value: &str) -> Option<Channel> {
        Channel::parse(self.values.channel.get(value).map_or(value, String::as_str))
    }

    /// A tier value mapped.
    pub fn tier(&self, value: &str) -> Option<u8> {
        match self.values.tier.get(value).map_or(value, String::as_str) {
            "1" => Some(1),
            "2" => Some(2),
            "3" => Some(3),
            _ => None,
        }
    }

    /// Whether `value` means "no value".
    pub fn is_null(&self, value: &str) -> bool {
        let v = value.trim();
        self.null_values.iter().any(|n| n == v)
    }
}
