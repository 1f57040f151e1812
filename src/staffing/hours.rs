//! The hours a channel is open: a business calendar of `[sla.calendars]`, named per channel
//! in `[cost] open-hours` or, by default, the calendar of the SLA targets most of the
//! channel's tickets run on (their first-response target, or their resolution target when
//! the policy has none).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::event::{Channel, Priority};
use crate::sla::calendar::Calendar;
use crate::sla::{ClockKind, Rules, Subject};

const HOUR_MS: i64 = 3_600_000;

/// Where a channel's opening hours come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoursSource {
    /// `[cost] open-hours` names the calendar.
    Configured,
    /// The SLA calendar of most of the channel's tickets.
    Sla,
    /// No calendar applies (no SLA policy matches the tickets): around the clock.
    AroundTheClock,
}

/// A channel's calendar and its open hours of the week.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenHours {
    /// Calendar name (`24x7` when around the clock).
    pub calendar: String,
    /// Where it comes from.
    pub source: HoursSource,
    /// Open in each hour of the week (168, Monday 00:00 UTC first).
    #[serde(skip)]
    pub open: Vec<bool>,
}

impl OpenHours {
    /// Around the clock.
    pub fn always(source: HoursSource) -> OpenHours {
        OpenHours {
            calendar: "24x7".into(),
            source,
            open: vec![true; 168],
        }
    }
}

/// The UTC hours of the week (Monday 00:00 UTC first) in which `calendar` has at least half
/// an hour of working time, in the week that starts on the Monday (UTC) on or before
/// `reference_ms`. Holidays are left out: staffing plans a normal week.
pub fn open_hours(calendar: &Calendar, reference_ms: i64) -> Vec<bool> {
    let plain = Calendar::new(
        &calendar.name,
        calendar.tz,
        calendar.week.clone(),
        BTreeSet::new(),
    );
    // 1970-01-01 was a Thursday: Mondays are 3 days (72 h) before each multiple of a week.
    let week_ms = 168 * HOUR_MS;
    let monday = (reference_ms + 72 * HOUR_MS).div_euclid(week_ms) * week_ms - 72 * HOUR_MS;
    (0..168)
        .map(|h| {
            let from = monday + h * HOUR_MS;
            plain.business_ms(from, from + HOUR_MS) >= HOUR_MS / 2
        })
        .collect()
}

/// Tickets of one kind, as `SELECT channel, priority, tenant, category, service, count(*)`
/// gives them.
#[derive(Debug, Clone)]
pub struct TicketGroup {
    /// Channel.
    pub channel: String,
    /// Priority.
    pub priority: String,
    /// Tenant.
    pub tenant: Option<String>,
    /// Category.
    pub category: String,
    /// Service.
    pub service: Option<String>,
    /// Tickets.
    pub tickets: u64,
}

/// The calendar of each channel: `configured` (channel → calendar name) first, otherwise the
/// calendar most of the channel's tickets' SLA targets run on. Channels without tickets are
/// not listed.
pub fn channel_hours(
    groups: &[TicketGroup],
    configured: &BTreeMap<String, String>,
    rules: Option<&Rules>,
    reference_ms: i64,
) -> BTreeMap<String, OpenHours> {
    let calendar = |name: &str| rules.and_then(|r| r.calendars.iter().find(|c| c.name == name));
    let mut votes: BTreeMap<&str, BTreeMap<u16, u64>> = BTreeMap::new();
    let mut channels: BTreeSet<&str> = BTreeSet::new();
    for g in groups {
        channels.insert(&g.channel);
        if configured.contains_key(&g.channel) {
            continue;
        }
        let (Some(rules), Some(channel), Some(priority)) = (
            rules,
            Channel::parse(&g.channel),
            Priority::parse(&g.priority),
        ) else {
            continue;
        };
        let subject = Subject {
            priority,
            tenant: g.tenant.as_deref(),
            category: &g.category,
            channel,
            service: g.service.as_deref(),
        };
        let Some(policy) = rules.policy_for(&subject) else {
            continue;
        };
        let targets = &rules.policies[policy as usize].targets;
        let target = targets[ClockKind::FirstResponse as usize]
            .or(targets[ClockKind::Resolution as usize])
            .or_else(|| targets.iter().flatten().next().copied());
        if let Some(t) = target {
            *votes
                .entry(&g.channel)
                .or_default()
                .entry(t.calendar)
                .or_default() += g.tickets;
        }
    }
    channels
        .into_iter()
        .map(|channel| {
            let hours = if let Some(name) = configured.get(channel) {
                match calendar(name) {
                    Some(c) => OpenHours {
                        calendar: name.clone(),
                        source: HoursSource::Configured,
                        open: open_hours(c, reference_ms),
                    },
                    None => OpenHours {
                        calendar: name.clone(),
                        ..OpenHours::always(HoursSource::Configured)
                    },
                }
            } else {
                let best = votes.get(channel).and_then(|v| {
                    v.iter()
                        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                        .map(|(&c, _)| c)
                });
                match best.and_then(|i| rules.and_then(|r| r.calendars.get(i as usize))) {
                    Some(c) => OpenHours {
                        calendar: c.name.clone(),
                        source: HoursSource::Sla,
                        open: open_hours(c, reference_ms),
                    },
                    None => OpenHours::always(HoursSource::AroundTheClock),
                }
            };
            (channel.to_string(), hours)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// 2026-03-04T10:30:00Z, a Wednesday.
    const WEDNESDAY: i64 = 1_772_620_200_000;

    fn rules() -> Rules {
        let config = Config::from_toml(
            r#"
            [sla]
            policies = [
              { name = "vip", match = { channel = ["phone"], priority = ["P1"] }, targets = { resolution = { within = "4h", calendar = "24x7" } } },
              { name = "std", targets = { first-response = { within = "4h", calendar = "office" }, resolution = { within = "24h", calendar = "24x7" } } },
            ]
            [sla.calendars.office]
            time-zone = "Europe/Paris"
            hours = { weekdays = ["09:00-12:00", "13:00-17:30"] }
            holidays = ["2026-03-04"]
            "#,
        )
        .unwrap();
        config.sla_rules().as_ref().clone()
    }

    fn group(channel: &str, priority: &str, tickets: u64) -> TicketGroup {
        TicketGroup {
            channel: channel.into(),
            priority: priority.into(),
            tenant: None,
            category: "c".into(),
            service: None,
            tickets,
        }
    }

    #[test]
    fn a_paris_office_week_in_utc_hours() {
        let r = rules();
        let office = r.calendars.iter().find(|c| c.name == "office").unwrap();
        let open = open_hours(office, WEDNESDAY);
        // March, before the clocks change: Paris is UTC+1. 09:00–12:00 and 13:00–17:30 local
        // are 08:00–11:00 and 12:00–16:30 UTC: hours 8, 9, 10, 12, 13, 14, 15 and 16 (half
        // an hour counts), Monday to Friday. The holiday is ignored: a normal week.
        let monday: Vec<usize> = (0..24).filter(|&h| open[h]).collect();
        assert_eq!(monday, vec![8, 9, 10, 12, 13, 14, 15, 16]);
        assert_eq!(open.iter().filter(|&&o| o).count(), 40);
        assert!(open[2 * 24 + 9], "the holiday is a normal Wednesday");
        assert!(!open[5 * 24 + 9], "Saturday is closed");
    }

    #[test]
    fn channels_take_the_calendar_of_most_of_their_tickets() {
        let r = rules();
        let groups = [
            // Phone: 30 P1 (24x7, resolution target only) and 20 P3 (office): 24x7 wins.
            group("phone", "P1", 30),
            group("phone", "P3", 20),
            // E-mail: only the standard policy, whose first response runs on office hours.
            group("email", "P3", 5),
            group("email", "P2", 1),
            // Chat is configured.
            group("chat", "P3", 9),
        ];
        let configured = BTreeMap::from([("chat".to_string(), "24x7".to_string())]);
        let h = channel_hours(&groups, &configured, Some(&r), WEDNESDAY);
        assert_eq!(
            (h["phone"].calendar.as_str(), h["phone"].source),
            ("24x7", HoursSource::Sla)
        );
        assert!(h["phone"].open.iter().all(|&o| o));
        assert_eq!(
            (h["email"].calendar.as_str(), h["email"].source),
            ("office", HoursSource::Sla)
        );
        assert_eq!(h["email"].open.iter().filter(|&&o| o).count(), 40);
        assert_eq!(h["chat"].source, HoursSource::Configured);
        // Without rules, everything is open around the clock.
        let none = channel_hours(&groups, &BTreeMap::new(), None, WEDNESDAY);
        assert_eq!(none["email"].source, HoursSource::AroundTheClock);
        assert_eq!(none.len(), 3);
    }
}
