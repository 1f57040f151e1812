//! `[sla]` in the configuration, and its compiled, validated form [`Rules`].
//!
//! ```toml
//! [sla]
//! pause-statuses = ["pending_customer", "pending_vendor"]
//! warnings = [50, 75, 90]                      # percent of the target → "at risk"
//!
//! [sla.calendars.office]
//! time-zone = "Europe/Paris"
//! hours = { weekdays = ["09:00-12:00", "13:00-17:30"] }
//! holidays = ["2026-12-25"]
//!
//! [[sla.policies]]
//! name = "vip-p1"
//! match = { priority = ["P1"], tenant = ["acme"] }
//! targets.first-response = { within = "15m", calendar = "24x7" }
//! targets.resolution = { within = "8h", calendar = "office" }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use chrono::NaiveDate;
use serde::Deserialize;

use super::ClockKind;
use super::calendar::Calendar;
use crate::base::ParseError;
use crate::event::{Channel, Priority, Status};

/// A problem with `[sla]`, naming the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{key}` {problem}")]
pub struct RulesError {
    /// Dotted key.
    pub key: String,
    /// What is wrong.
    pub problem: String,
}

fn err<T>(key: impl Into<String>, problem: impl Into<String>) -> Result<T, RulesError> {
    Err(RulesError {
        key: key.into(),
        problem: problem.into(),
    })
}

/// `[sla]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SlaConfig {
    /// Statuses that stop every clock of the ticket.
    pub pause_statuses: Vec<String>,
    /// Percentages of a target at which a clock is "at risk".
    pub warnings: Vec<u32>,
    /// Calendars by name.
    pub calendars: BTreeMap<String, CalendarConfig>,
    /// Policies, first match wins.
    pub policies: Vec<PolicyConfig>,
    /// Where alerts go.
    pub alerts: AlertsConfig,
}

/// `[sla.calendars.NAME]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CalendarConfig {
    /// IANA time zone, e.g. `Europe/Paris`.
    #[serde(default = "utc")]
    pub time_zone: String,
    /// Working windows per day: keys `mon` … `sun`, `weekdays` (Monday to Friday),
    /// `every-day`; values `"HH:MM-HH:MM"`.
    pub hours: BTreeMap<String, Vec<String>>,
    /// Dates (`YYYY-MM-DD`, local) without working time.
    #[serde(default)]
    pub holidays: Vec<String>,
}

fn utc() -> String {
    "UTC".into()
}

/// `[[sla.policies]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PolicyConfig {
    /// Name, shown in `sla_clocks` and alerts.
    pub name: String,
    /// Conditions; every one given must hold, each lists the accepted values.
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    /// Targets by clock: `time-to-own`, `first-response`, `next-reply`, `resolution`.
    pub targets: BTreeMap<String, TargetConfig>,
    /// Overrides `sla.warnings` for this policy.
    #[serde(default)]
    pub warnings: Option<Vec<u32>>,
}

/// Conditions of a policy.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MatchConfig {
    /// Priorities.
    #[serde(default)]
    pub priority: Vec<Priority>,
    /// Tenants.
    #[serde(default)]
    pub tenant: Vec<String>,
    /// Categories.
    #[serde(default)]
    pub category: Vec<String>,
    /// Channels.
    #[serde(default)]
    pub channel: Vec<Channel>,
    /// Services.
    #[serde(default)]
    pub service: Vec<String>,
}

/// One target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetConfig {
    /// Business time allowed: `15m`, `4h`, `1h30m`, `90s`.
    pub within: String,
    /// Calendar the time is counted on.
    pub calendar: String,
}

/// `[sla.alerts]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AlertsConfig {
    /// Alertmanager base URLs (`http://host:9093`); alerts go to `/api/v2/alerts` of each.
    pub alertmanager: Vec<String>,
    /// Generic JSON webhooks (POST).
    pub webhooks: Vec<String>,
    /// Active alerts are sent again this often.
    pub resend_seconds: u64,
    /// Base URL of this deskwatch for links in annotations.
    pub external_url: String,
    /// Alerts waiting for delivery per receiver; beyond it the oldest are dropped (counted).
    pub queue_limit: usize,
    /// Timeout of one delivery.
    pub timeout_seconds: u64,
    /// At shutdown, how long the receivers may take to deliver what is queued.
    pub shutdown_grace_seconds: u64,
}

/// One compiled policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Name.
    pub name: String,
    /// Conditions.
    pub matches: MatchConfig,
    /// Targets by [`ClockKind`] index.
    pub targets: [Option<Target>; 4],
    /// Warning percentages, ascending, each below 100.
    pub warnings: Vec<u8>,
}

/// One compiled target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Business milliseconds allowed.
    pub ms: i64,
    /// Index into [`Rules::calendars`].
    pub calendar: u16,
}

/// Validated SLA rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Calendars.
    pub calendars: Vec<Calendar>,
    /// Policies in match order.
    pub policies: Vec<Policy>,
    /// Statuses that pause the clocks.
    pub pause: Vec<Status>,
    /// A hash of everything that decides clock values; a checkpoint taken under other rules
    /// is not reused.
    pub fingerprint: u64,
}

/// What a policy is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Priority.
    pub priority: Priority,
    /// Tenant.
    pub tenant: Option<&'a str>,
    /// Category.
    pub category: &'a str,
    /// Channel.
    pub channel: Channel,
    /// Service.
    pub service: Option<&'a str>,
}

impl Rules {
    /// No policies: no clocks.
    pub fn none() -> Rules {
        Rules {
            calendars: Vec::new(),
            policies: Vec::new(),
            pause: Vec::new(),
            fingerprint: 0,
        }
    }

    /// Validates and compiles `[sla]`.
    pub fn compile(config: &SlaConfig) -> Result<Rules, RulesError> {
        let pause = compile_pause(&config.pause_statuses)?;
        let warnings = compile_warnings("sla.warnings", &config.warnings)?;
        let mut calendars = Vec::new();
        let mut calendar_index = BTreeMap::new();
        for (name, c) in &config.calendars {
            calendar_index.insert(name.clone(), calendars.len() as u16);
            calendars.push(compile_calendar(name, c)?);
        }
        let mut policies = Vec::new();
        let mut names = BTreeSet::new();
        for (i, p) in config.policies.iter().enumerate() {
            let key = format!("sla.policies[{i}]");
            if p.name.trim().is_empty() {
                return err(format!("{key}.name"), "must not be empty");
            }
            if !names.insert(p.name.clone()) {
                return err(
                    format!("{key}.name"),
                    format!("`{}` names two policies", p.name),
                );
            }
            policies.push(compile_policy(&key, p, &calendar_index, &warnings)?);
        }
        check_alerts(&config.alerts)?;
        Ok(Rules {
            fingerprint: fingerprint(&pause, &calendars, &policies),
            calendars,
            policies,
            pause,
        })
    }

    /// The first policy whose conditions hold.
    pub fn policy_for(&self, s: &Subject<'_>) -> Option<u16> {
        self.policies
            .iter()
            .position(|p| {
                let m = &p.matches;
                let has = |list: &[String], v: Option<&str>| {
                    list.is_empty() || v.is_some_and(|v| list.iter().any(|x| x == v))
                };
                (m.priority.is_empty() || m.priority.contains(&s.priority))
                    && (m.channel.is_empty() || m.channel.contains(&s.channel))
                    && has(&m.tenant, s.tenant)
                    && has(&m.category, Some(s.category))
                    && has(&m.service, s.service)
            })
            .map(|i| i as u16)
    }

    /// Warning percentages of a policy (none for an unknown index).
    pub fn warnings(&self, policy: u16) -> &[u8] {
        self.policies
            .get(policy as usize)
            .map_or(&[], |p| p.warnings.as_slice())
    }

    /// Whether `status` pauses the clocks.
    pub fn pauses(&self, status: Status) -> bool {
        self.pause.contains(&status)
    }
}

fn compile_warnings(key: &str, list: &[u32]) -> Result<Vec<u8>, RulesError> {
    let mut out = Vec::new();
    for (i, &w) in list.iter().enumerate() {
        if w == 0 || w >= 100 {
            return err(format!("{key}[{i}]"), "must be between 1 and 99 (percent)");
        }
        if out.last().is_some_and(|&l| l as u32 >= w) {
            return err(format!("{key}[{i}]"), "must be larger than the one before");
        }
        out.push(w as u8);
    }
    Ok(out)
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `sla.pause-statuses`: statuses that pause the clocks (not the ones that end them).
fn compile_pause(statuses: &[String]) -> Result<Vec<Status>, RulesError> {
    let mut pause = Vec::new();
    for (i, s) in statuses.iter().enumerate() {
        match Status::parse(s) {
            Some(Status::Resolved | Status::Closed | Status::Cancelled) => {
                return err(
                    format!("sla.pause-statuses[{i}]"),
                    format!("`{s}` ends the clocks; it cannot pause them"),
                );
            }
            Some(st) => pause.push(st),
            None => {
                return err(
                    format!("sla.pause-statuses[{i}]"),
                    format!("`{s}` is not a status"),
                );
            }
        }
    }
    Ok(pause)
}

/// One policy (`key` is where it is in the configuration).
fn compile_policy(
    key: &str,
    p: &PolicyConfig,
    calendar_index: &BTreeMap<String, u16>,
    default_warnings: &[u8],
) -> Result<Policy, RulesError> {
    if p.targets.is_empty() {
        return err(format!("{key}.targets"), "must set at least one target");
    }
    let mut targets = [None; 4];
    for (clock, t) in &p.targets {
        let tkey = format!("{key}.targets.{clock}");
        let Some(kind) = ClockKind::from_config(clock) else {
            return err(
                tkey,
                "is not a clock (time-to-own, first-response, next-reply, resolution)",
            );
        };
        let ms = parse_duration(&t.within).map_err(|e| RulesError {
            key: format!("{tkey}.within"),
            problem: e.to_string(),
        })?;
        let Some(&calendar) = calendar_index.get(&t.calendar) else {
            return err(
                format!("{tkey}.calendar"),
                format!("`{}` is not a calendar in sla.calendars", t.calendar),
            );
        };
        targets[kind as usize] = Some(Target { ms, calendar });
    }
    let warnings = match &p.warnings {
        Some(w) => compile_warnings(&format!("{key}.warnings"), w)?,
        None => default_warnings.to_vec(),
    };
    Ok(Policy {
        name: p.name.clone(),
        matches: p.matches.clone(),
        targets,
        warnings,
    })
}

/// `sla.alerts`: receiver URLs and the delivery settings.
fn check_alerts(a: &AlertsConfig) -> Result<(), RulesError> {
    for (i, url) in a.alertmanager.iter().chain(&a.webhooks).enumerate() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            let key = if i < a.alertmanager.len() {
                format!("sla.alerts.alertmanager[{i}]")
            } else {
                format!("sla.alerts.webhooks[{}]", i - a.alertmanager.len())
            };
            return err(key, "must be an http:// or https:// URL");
        }
    }
    if a.resend_seconds == 0 {
        return err("sla.alerts.resend-seconds", "must be at least 1");
    }
    if a.queue_limit == 0 {
        return err("sla.alerts.queue-limit", "must be at least 1");
    }
    if a.timeout_seconds == 0 {
        return err("sla.alerts.timeout-seconds", "must be at least 1");
    }
    Ok(())
}

/// A hash of everything that decides clock values: a checkpoint taken under other rules is
/// not reused.
fn fingerprint(pause: &[Status], calendars: &[Calendar], policies: &[Policy]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for s in pause {
        s.as_str().hash(&mut h);
    }
    for c in calendars {
        (c.name.as_str(), c.tz.name(), &c.week, &c.holidays).hash(&mut h);
    }
    for p in policies {
        p.name.hash(&mut h);
        format!("{:?}", p.matches).hash(&mut h);
        for t in &p.targets {
            t.map(|t| (t.ms, t.calendar)).hash(&mut h);
        }
        p.warnings.hash(&mut h);
    }
    h.finish() | 1
}

fn compile_calendar(name: &str, c: &CalendarConfig) -> Result<Calendar, RulesError> {
    let key = format!("sla.calendars.{name}");
    let tz: chrono_tz::Tz = match c.time_zone.parse() {
        Ok(tz) => tz,
        Err(_) => {
            return err(
                format!("{key}.time-zone"),
                format!(
                    "`{}` is not an IANA time zone (e.g. Europe/Paris)",
                    c.time_zone
                ),
            );
        }
    };
    let mut week: [Vec<(u32, u32)>; 7] = Default::default();
    // Specific days override the shortcuts, whatever the order they are written in.
    let mut entries: Vec<(&String, &Vec<String>)> = c.hours.iter().collect();
    entries.sort_by_key(|(k, _)| match k.as_str() {
        "every-day" => 0,
        "weekdays" => 1,
        _ => 2,
    });
    for (day, windows) in entries {
        let dkey = format!("{key}.hours.{day}");
        let days: Vec<usize> = match day.as_str() {
            "every-day" => (0..7).collect(),
            "weekdays" => (0..5).collect(),
            d => match DAYS.iter().position(|x| *x == d) {
                Some(i) => vec![i],
                None => {
                    return err(dkey, "is not a day (mon … sun, weekdays, every-day)");
                }
            },
        };
        let mut parsed = Vec::new();
        for (i, w) in windows.iter().enumerate() {
            let Some((s, e)) = parse_window(w) else {
                return err(
                    format!("{dkey}[{i}]"),
                    format!("`{w}` is not a window HH:MM-HH:MM with start before end"),
                );
            };
            parsed.push((s, e));
        }
        parsed.sort_unstable();
        for pair in parsed.windows(2) {
            if pair[1].0 < pair[0].1 {
                return err(dkey, "has overlapping windows");
            }
        }
        for d in days {
            week[d] = parsed.clone();
        }
    }
    if week.iter().all(Vec::is_empty) {
        return err(
            format!("{key}.hours"),
            "must have at least one working window",
        );
    }
    let mut holidays = BTreeSet::new();
    for (i, h) in c.holidays.iter().enumerate() {
        match NaiveDate::parse_from_str(h, "%Y-%m-%d") {
            Ok(d) => {
                holidays.insert(d);
            }
            Err(_) => return err(format!("{key}.holidays[{i}]"), "must be YYYY-MM-DD"),
        }
    }
    Ok(Calendar::new(name, tz, week, holidays))
}

fn parse_window(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.trim().split_once('-')?;
    let minute = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
    };
    let (s, e) = (minute(a)?, minute(b)?);
    (s < e).then_some((s, e))
}

/// Parses `1h30m`, `15m`, `90s`, `4h` into milliseconds; more than zero.
pub fn parse_duration(text: &str) -> Result<i64, ParseError> {
    let form = |expected| ParseError::Form {
        text: text.to_string(),
        expected,
    };
    const DURATION: &str = "a duration like 15m, 4h or 1h30m";
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3_600_000,
            'm' => 60_000,
            's' => 1_000,
            'd' | 'w' => {
                return Err(form(
                    "business time in h/m/s: a business day depends on the calendar, so days \
                     and weeks would be ambiguous",
                ));
            }
            _ => return Err(form(DURATION)),
        };
        let n: i64 = number.parse().map_err(|_| form(DURATION))?;
        total = total.saturating_add(n.saturating_mul(unit));
        number.clear();
        any = true;
    }
    if !number.is_empty() || !any {
        return Err(form("a duration like 15m, 4h or 1h30m (unit required)"));
    }
    if total <= 0 {
        return Err(ParseError::Range {
            text: text.to_string(),
            problem: "must be more than zero",
        });
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> String {
        r#"
        pause-statuses = ["pending_customer"]
        warnings = [50, 75, 90]
        [calendars."24x7"]
        hours = { every-day = ["00:00-24:00"] }
        [calendars.office]
        time-zone = "Europe/Paris"
        hours = { weekdays = ["09:00-12:00", "13:00-17:00"], fri = ["09:00-12:00"] }
        holidays = ["2026-12-25"]
        [[policies]]
        name = "p1"
        match = { priority = ["P1"] }
        targets.first-response = { within = "15m", calendar = "24x7" }
        targets.resolution = { within = "4h", calendar = "office" }
        "#
        .to_string()
    }

    fn compile(text: &str) -> Result<Rules, RulesError> {
        Rules::compile(&crate::config::sla_from_toml(text).expect("parses"))
    }

    #[test]
    fn compiles_and_matches_in_order() {
        let rules = compile(&base()).unwrap();
        assert_eq!(rules.calendars.len(), 2);
        let office = &rules.calendars[1];
        assert_eq!(office.week[0], vec![(540, 720), (780, 1020)]);
        assert_eq!(office.week[4], vec![(540, 720)], "fri overrides weekdays");
        assert!(office.week[5].is_empty());
        let s = Subject {
            priority: Priority::P1,
            tenant: None,
            category: "network",
            channel: Channel::Phone,
            service: None,
        };
        assert_eq!(rules.policy_for(&s), Some(0));
        assert_eq!(
            rules.policy_for(&Subject {
                priority: Priority::P2,
                ..s
            }),
            None
        );
        assert_eq!(
            rules.policies[0].targets[ClockKind::FirstResponse as usize]
                .unwrap()
                .ms,
            900_000
        );
    }

    #[test]
    fn refuses_bad_config_naming_the_key() {
        let cases = [
            (
                base().replace("\"13:00-17:00\"", "\"11:00-17:00\""),
                "sla.calendars.office.hours.weekdays",
            ),
            (
                base().replace("Europe/Paris", "Europe/Atlantis"),
                "sla.calendars.office.time-zone",
            ),
            (
                base().replace("within = \"15m\"", "within = \"0m\""),
                "sla.policies[0].targets.first-response.within",
            ),
            (
                base().replace("within = \"15m\"", "within = \"2d\""),
                "sla.policies[0].targets.first-response.within",
            ),
            (
                base().replace("calendar = \"office\"", "calendar = \"nope\""),
                "sla.policies[0].targets.resolution.calendar",
            ),
            (
                base().replace("[50, 75, 90]", "[50, 40]"),
                "sla.warnings[1]",
            ),
            (
                base().replace("[\"pending_customer\"]", "[\"closed\"]"),
                "sla.pause-statuses[0]",
            ),
            (
                base().replace("targets.first-response", "targets.first-answer"),
                "sla.policies[0].targets.first-answer",
            ),
            (
                base().replace("2026-12-25", "25/12/2026"),
                "sla.calendars.office.holidays[0]",
            ),
        ];
        for (text, key) in cases {
            let e = compile(&text).expect_err(key);
            assert_eq!(e.key, key, "{e}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(
            parse_duration("3d")
                .unwrap_err()
                .to_string()
                .contains("ambiguous")
        );
    }
}
