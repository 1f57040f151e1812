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
    /// Priority, mapped by `[values.priority]` (required: a constant if the export has none).
    pub priority: Source,
    /// Channel, mapped by `[values.channel]` (required).
    pub channel: Source,
    /// Category (required).
    pub category: Source,
    /// Requester (required).
    pub requester: Source,
    /// Title (required).
    pub title: Source,
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
}

impl Default for DeriveOptions {
    fn default() -> Self {
        DeriveOptions {
            first_response_statuses: Vec::new(),
            default_tier: 1,
            reopen_after_close: false,
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
        for s in &self.derive.first_response_statuses {
            if Status::parse(s).is_none() {
                return Err(MappingProblem(format!(
                    "`derive.first-response-statuses`: `{s}` is not a status"
                )));
            }
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
