//! Business calendars: a time zone, working windows per weekday, holidays.
//!
//! Two operations, both exact to the millisecond and both pure:
//! [`Calendar::business_ms`] (working time between two instants) and [`Calendar::add_business`]
//! (the instant at which a given amount of working time has passed). Windows are written in
//! local wall-clock time and converted day by day, so daylight-saving transitions count the
//! hours that really pass: a window across the spring-forward gap is an hour shorter, one
//! across the autumn fall-back an hour longer. A local time that does not exist (inside the
//! gap) maps to the instant the clocks jumped.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use chrono::{Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::base::Millis;

/// Longest stretch searched for working time before giving up (a calendar whose windows are
/// all holidays for ten years).
const MAX_DAYS: i64 = 3660;

/// One business calendar.
#[derive(Debug, Clone)]
pub struct Calendar {
    /// Name in the configuration.
    pub name: String,
    /// Time zone the windows are written in.
    pub tz: Tz,
    /// Working windows per weekday (Monday first), minutes since local midnight, `[start, end)`,
    /// sorted and disjoint.
    pub week: [Vec<(u32, u32)>; 7],
    /// Local dates without working time.
    pub holidays: BTreeSet<NaiveDate>,
    /// Every minute of every day works and there are no holidays: plain arithmetic.
    always: bool,
    /// Working intervals of each day of the years [`FIRST_YEAR`, `FIRST_YEAR` + `YEARS`),
    /// computed on first use, one year at a time: the time-zone conversions are the costly part.
    years: Arc<[OnceLock<Year>]>,
}

/// First year the interval cache covers.
const FIRST_YEAR: i32 = 2000;
/// Years the interval cache covers.
const YEARS: usize = 100;

/// The working intervals of every day of one year.
#[derive(Debug, Default)]
struct Year {
    /// Per day of the year (0-based): start and end index into `intervals`.
    days: Vec<(u32, u32)>,
    intervals: Vec<(Millis, Millis)>,
}

impl Calendar {
    /// A calendar; `week` must be sorted and disjoint (the configuration checks it).
    pub fn new(
        name: &str,
        tz: Tz,
        week: [Vec<(u32, u32)>; 7],
        holidays: BTreeSet<NaiveDate>,
    ) -> Calendar {
        let always = holidays.is_empty() && week.iter().all(|d| d.as_slice() == [(0, 1440)]);
        Calendar {
            name: name.to_string(),
            tz,
            week,
            holidays,
            always,
            years: (0..YEARS).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Around the clock, every day.
    pub fn always(name: &str) -> Calendar {
        Calendar::new(
            name,
            Tz::UTC,
            std::array::from_fn(|_| vec![(0, 1440)]),
            BTreeSet::new(),
        )
    }

    /// Whether this is a 24×7 calendar.
    pub fn is_always(&self) -> bool {
        self.always
    }

    fn local_date(&self, at: Millis) -> NaiveDate {
        let utc = chrono::DateTime::<Utc>::from_timestamp_millis(at).unwrap_or_default();
        utc.with_timezone(&self.tz).date_naive()
    }

    /// The instant of a local wall-clock time; a time inside a spring-forward gap maps to the
    /// end of the gap, an ambiguous one to its first (`first = true`) or second occurrence.
    fn instant(&self, date: NaiveDate, minute: u32, first: bool) -> Millis {
        let base = if minute >= 1440 {
            NaiveDateTime::new(date + Duration::days(1), NaiveTime::MIN)
        } else {
            let t = NaiveTime::from_num_seconds_from_midnight_opt(minute * 60, 0)
                .unwrap_or(NaiveTime::MIN);
            NaiveDateTime::new(date, t)
        };
        let mut local = base;
        for _ in 0..=240 {
            match self.tz.from_local_datetime(&local) {
                LocalResult::Single(t) => return t.timestamp_millis(),
                LocalResult::Ambiguous(a, b) => {
                    return if first { a } else { b }.timestamp_millis();
                }
                LocalResult::None => local += Duration::minutes(1),
            }
        }
        // No zone has a gap this long; fall back to reading the time as UTC.
        base.and_utc().timestamp_millis()
    }

    /// Calls `f` with the working intervals of one local date, as instants (cached per year,
    /// so the common case neither converts time zones nor allocates).
    fn with_day<R>(&self, date: NaiveDate, f: impl FnOnce(&[(Millis, Millis)]) -> R) -> R {
        let y = date.year() - FIRST_YEAR;
        if (0..YEARS as i32).contains(&y) {
            let year = self.years[y as usize].get_or_init(|| self.compute_year(date.year()));
            let (s, e) = year.days[date.ordinal0() as usize];
            return f(&year.intervals[s as usize..e as usize]);
        }
        let mut day = Vec::with_capacity(4);
        self.compute_day(date, &mut day);
        f(&day)
    }

    fn compute_year(&self, year: i32) -> Year {
        let mut y = Year::default();
        let mut day = Vec::with_capacity(4);
        let mut date = NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or_default();
        while date.year() == year {
            self.compute_day(date, &mut day);
            let start = y.intervals.len() as u32;
            y.intervals.extend_from_slice(&day);
            y.days.push((start, y.intervals.len() as u32));
            date += Duration::days(1);
        }
        y
    }

    fn compute_day(&self, date: NaiveDate, out: &mut Vec<(Millis, Millis)>) {
        out.clear();
        if self.holidays.contains(&date) {
            return;
        }
        let weekday = date.weekday().num_days_from_monday() as usize;
        for &(s, e) in &self.week[weekday] {
            let start = self.instant(date, s, true);
            let end = self.instant(date, e, false);
            if end > start {
                out.push((start, end));
            }
        }
    }

    /// Working milliseconds in `[from, to)`; 0 when `to <= from`.
    pub fn business_ms(&self, from: Millis, to: Millis) -> i64 {
        if to <= from {
            return 0;
        }
        if self.always {
            return to - from;
        }
        let mut total = 0;
        let mut date = self.local_date(from) - Duration::days(1);
        let last = self.local_date(to) + Duration::days(1);
        while date <= last {
            total += self.with_day(date, |day| {
                day.iter()
                    .map(|&(s, e)| (e.min(to) - s.max(from)).max(0))
                    .sum::<i64>()
            });
            date += Duration::days(1);
        }
        total
    }

    /// The first instant at or after `from` by which `ms` working milliseconds have passed
    /// since `from`. `ms <= 0` gives `from`. `Millis::MAX` if the calendar has no working time
    /// in the next ten years.
    pub fn add_business(&self, from: Millis, ms: i64) -> Millis {
        if ms <= 0 {
            return from;
        }
        if self.always {
            return from.saturating_add(ms);
        }
        let mut left = ms;
        let first = self.local_date(from) - Duration::days(1);
        for n in 0..MAX_DAYS {
            let found = self.with_day(first + Duration::days(n), |day| {
                for &(s, e) in day {
                    if e <= from {
                        continue;
                    }
                    let s = s.max(from);
                    if e - s >= left {
                        return Some(s + left);
                    }
                    left -= e - s;
                }
                None
            });
            if let Some(at) = found {
                return at;
            }
        }
        Millis::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const M: i64 = 60_000;

    fn at(text: &str) -> Millis {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_millis()
    }

    /// Mon–Fri 09:00–12:00 and 13:00–17:00 in Paris; 2026-12-25 (a Friday) is a holiday.
    fn office() -> Calendar {
        let day = vec![(9 * 60, 12 * 60), (13 * 60, 17 * 60)];
        let mut week: [Vec<(u32, u32)>; 7] = Default::default();
        for w in week.iter_mut().take(5) {
            *w = day.clone();
        }
        let holidays = [NaiveDate::from_ymd_opt(2026, 12, 25).unwrap()].into();
        Calendar::new("office", "Europe/Paris".parse().unwrap(), week, holidays)
    }

    #[test]
    fn always_is_plain_arithmetic() {
        let c = Calendar::always("24x7");
        assert!(c.is_always());
        assert_eq!(c.business_ms(1000, 5000), 4000);
        assert_eq!(c.business_ms(5000, 1000), 0);
        assert_eq!(c.add_business(1000, 4000), 5000);
    }

    #[test]
    fn lunch_break_and_end_of_day() {
        let c = office();
        // Tuesday 2026-11-24, Paris is UTC+1. 11:00 → 14:00 local: 1 h before lunch, 1 h after.
        assert_eq!(
            c.business_ms(at("2026-11-24T10:00:00Z"), at("2026-11-24T13:00:00Z")),
            2 * H
        );
        // 2 h from 11:00 local: 1 h to noon, lunch, 1 h from 13:00 → 14:00 local (13:00 UTC).
        assert_eq!(
            c.add_business(at("2026-11-24T10:00:00Z"), 2 * H),
            at("2026-11-24T13:00:00Z")
        );
        // 30 min from 16:45 local: 15 min today, 15 min tomorrow from 09:00.
        assert_eq!(
            c.add_business(at("2026-11-24T15:45:00Z"), 30 * M),
            at("2026-11-25T08:15:00Z")
        );
    }

    #[test]
    fn weekends_and_holidays_do_not_count() {
        let c = office();
        // Thursday 2026-12-24 16:00 local + 2 h: 1 h Thursday, Friday is Christmas, the
        // weekend, so 1 h on Monday 2026-12-28 from 09:00 → 10:00 local (09:00 UTC).
        assert_eq!(
            c.add_business(at("2026-12-24T15:00:00Z"), 2 * H),
            at("2026-12-28T09:00:00Z")
        );
        assert_eq!(
            c.business_ms(at("2026-12-24T15:00:00Z"), at("2026-12-28T09:00:00Z")),
            2 * H
        );
        // Saturday to Sunday: nothing.
        assert_eq!(
            c.business_ms(at("2026-11-28T00:00:00Z"), at("2026-11-29T23:00:00Z")),
            0
        );
    }

    #[test]
    fn created_outside_working_hours_starts_at_the_next_window() {
        let c = office();
        // Saturday night + 15 min → Monday 09:15 local.
        assert_eq!(
            c.add_business(at("2026-11-28T22:00:00Z"), 15 * M),
            at("2026-11-30T08:15:00Z")
        );
    }

    #[test]
    fn target_shorter_than_a_window() {
        let c = office();
        assert_eq!(
            c.add_business(at("2026-11-24T08:10:00Z"), 5 * M),
            at("2026-11-24T08:15:00Z")
        );
    }

    #[test]
    fn dst_spring_forward_and_fall_back() {
        // A 24×7 calendar in Paris: the day of the spring change has 23 hours, the autumn one 25.
        let week: [Vec<(u32, u32)>; 7] = std::array::from_fn(|_| vec![(0, 1440)]);
        let paris = Calendar::new(
            "paris",
            "Europe/Paris".parse().unwrap(),
            week,
            [NaiveDate::from_ymd_opt(2000, 1, 1).unwrap()].into(),
        );
        assert!(!paris.is_always());
        // 2026-03-29: 00:00 local = 23:00 UTC the day before; midnight to midnight is 23 h.
        assert_eq!(
            paris.business_ms(at("2026-03-28T23:00:00Z"), at("2026-03-29T22:00:00Z")),
            23 * H
        );
        // 2026-10-25: midnight (22:00 UTC the day before) to midnight (23:00 UTC) is 25 h.
        assert_eq!(
            paris.business_ms(at("2026-10-24T22:00:00Z"), at("2026-10-25T23:00:00Z")),
            25 * H
        );
        // A night-shift window 01:00–04:00 local on both days.
        let mut night: [Vec<(u32, u32)>; 7] = Default::default();
        night[6] = vec![(60, 240)]; // Sundays
        let c = Calendar::new(
            "night",
            "Europe/Paris".parse().unwrap(),
            night,
            BTreeSet::new(),
        );
        // Spring: 02:00–03:00 does not exist, so the window is 2 h.
        assert_eq!(
            c.business_ms(at("2026-03-28T12:00:00Z"), at("2026-03-29T12:00:00Z")),
            2 * H
        );
        // Autumn: 02:00–03:00 happens twice, so the window is 4 h.
        assert_eq!(
            c.business_ms(at("2026-10-24T12:00:00Z"), at("2026-10-25T12:00:00Z")),
            4 * H
        );
        // 3 h of work from the start of the autumn window: 01:00 CEST (23:00 UTC) + 3 h real.
        assert_eq!(
            c.add_business(at("2026-10-24T12:00:00Z"), 3 * H),
            at("2026-10-25T02:00:00Z")
        );
    }

    #[test]
    fn no_working_time_at_all_gives_max() {
        let c = Calendar::new("never", Tz::UTC, Default::default(), BTreeSet::new());
        assert_eq!(c.add_business(0, 1), Millis::MAX);
        assert_eq!(c.business_ms(0, 10 * H), 0);
    }
}
