//! Job schedules: cron expressions evaluated on local wall-clock time, with a fixed rule for the
//! nights the clocks change. Pure: no I/O, no clock; the current instant is always an argument.
//!
//! # Expressions
//!
//! [`JobSchedule::parse`] accepts
//!
//! - the familiar five-field form `min hour dom month dow`, e.g. `30 2 * * *` (every night at
//!   02:30). Days of week are numbered as in classic cron: 0 or 7 = Sunday, 1 = Monday …
//!   6 = Saturday, or names (`mon-fri`). An expression restricting both the day of month and the
//!   day of week (`0 2 1 * 1`) is refused: classic cron runs on days matching either, the `cron`
//!   crate requires both, so it could only mean something unexpected;
//! - the `cron` crate's six- and seven-field forms `sec min hour dom month dow [year]`, e.g.
//!   `0 30 2 * * *`, with the crate's meaning: days of week 1 = Sunday … 7 = Saturday (use names,
//!   `MON-FRI`, to avoid the question), and day of month and day of week must both match;
//! - the shorthands `@hourly`, `@daily`, `@weekly` (Sunday midnight), `@monthly` and `@yearly`.
//!
//! # Daylight saving time
//!
//! A schedule is evaluated on local wall-clock time in the configured time zone: `30 2 * * *` means
//! "when the clocks in that zone show 02:30". Each matching wall-clock time is then mapped to an
//! instant:
//!
//! - A wall-clock time that occurs exactly once runs at that instant.
//! - A wall-clock time that does not exist (the spring gap; in Europe/Copenhagen on 2026-03-29 the
//!   clocks jump from 02:00 CET to 03:00 CEST) runs once, at the first instant after the gap, which
//!   is its end: 03:00 CEST = 01:00 UTC. Several scheduled times in the same gap (a job every 15
//!   minutes), and a scheduled time at the end of the gap itself, together make a single run at
//!   that instant.
//! - A wall-clock time that occurs twice (the repeated autumn hour; in Europe/Copenhagen on
//!   2026-10-25 the clocks go back from 03:00 CEST to 02:00 CET) runs once, at its first
//!   occurrence: 02:30 runs at 02:30 CEST = 00:30 UTC, not again at 02:30 CET.
//!   Exception: a job whose hour field matches all 24 hours (an interval job such as
//!   `*/15 * * * *`, `0 * * * *` or `@hourly`) is an interval, not a time of day, and runs at its
//!   wall-clock times in both passes of the repeated hour, so it does not pause for an hour.
//!
//! So a daily job runs exactly once every night, the nights the clocks change included, and
//! successive runs ([`JobSchedule::next_after`] applied to its own result) are strictly increasing
//! instants without duplicates. A daemon that was down catches up once, with the latest run it
//! missed ([`JobSchedule::last_missed`]), however many it missed.

mod five_field;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use cron::TimeUnitSpec;
use serde::{Deserialize, Deserializer};

/// A parsed job schedule: a cron expression together with the text it was written as.
///
/// See the [module documentation](self) for the accepted forms and for what happens on the nights
/// the clocks change.
#[derive(Clone, Debug)]
pub struct JobSchedule {
    /// The expression as written (surrounding whitespace trimmed).
    expression: String,
    /// The parsed schedule, always in the `cron` crate's six- or seven-field form or a shorthand.
    schedule: cron::Schedule,
    /// Whether the hour field matches all 24 hours: an interval job, which runs in both passes of
    /// a repeated autumn hour.
    interval: bool,
}

/// Why a schedule expression is invalid. Every message names the expression.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The expression is empty or only whitespace.
    #[error("invalid schedule `{expression}`: the expression is empty")]
    Empty {
        /// The expression as given.
        expression: String,
    },
    /// The expression has a number of fields no form accepts.
    #[error(
        "invalid schedule `{expression}`: {count} fields; expected 5 (`min hour dom month dow`), \
         6 or 7 (`sec min hour dom month dow [year]`), or one of @hourly, @daily, @weekly, \
         @monthly, @yearly"
    )]
    FieldCount {
        /// The expression as given.
        expression: String,
        /// How many whitespace-separated fields it has.
        count: usize,
    },
    /// A five-field expression restricts both the day of month and the day of week.
    #[error(
        "invalid schedule `{expression}`: it restricts both the day of month ({day_of_month}) and \
         the day of week ({day_of_week}); classic cron runs on days matching either, this \
         scheduler would require both, so it is refused: use two jobs, or the six-field form \
         `sec min hour dom month dow`, in which both must match"
    )]
    DayOfMonthAndDayOfWeek {
        /// The expression as given.
        expression: String,
        /// Its day-of-month field.
        day_of_month: String,
        /// Its day-of-week field.
        day_of_week: String,
    },
    /// A field is invalid (a value out of range, an unknown name, bad syntax).
    #[error("invalid schedule `{expression}`: {reason}")]
    Invalid {
        /// The expression as given.
        expression: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The longest stretch of non-existent local time searched when looking for the end of a spring
/// gap. Real gaps are an hour or two; the longest on record (Samoa, 2011) is a whole day.
const MAX_GAP: TimeDelta = TimeDelta::hours(48);

/// Instants outside these years are answered with `None` without consulting the schedule (the
/// `cron` crate only knows the years 1970–2100), which also keeps date arithmetic far from
/// chrono's limits.
const YEARS: std::ops::RangeInclusive<i32> = 1900..=2200;

impl JobSchedule {
    /// Parses a schedule expression.
    ///
    /// Accepts the familiar five-field form `min hour dom month dow` (a `0` seconds field is
    /// prepended; days of week numbered as in classic cron, 0 or 7 = Sunday), the `cron` crate's
    /// six- and seven-field forms `sec min hour dom month dow [year]` (days of week 1 = Sunday …
    /// 7 = Saturday, or names), and the shorthands `@hourly`, `@daily`, `@weekly`, `@monthly` and
    /// `@yearly`. See the [module documentation](self).
    ///
    /// # Errors
    ///
    /// [`ScheduleError`], naming the expression and what is wrong with it.
    pub fn parse(expr: &str) -> Result<JobSchedule, ScheduleError> {
        let text = expr.trim();
        let fields: Vec<&str> = text.split_whitespace().collect();
        let cron_text = if text.is_empty() {
            return Err(ScheduleError::Empty {
                expression: expr.to_owned(),
            });
        } else if text.starts_with('@') && fields.len() == 1 {
            text.to_owned()
        } else {
            match fields.len() {
                5 => five_field::to_six_fields(text, &fields)?,
                6 | 7 => fields.join(" "),
                count => {
                    return Err(ScheduleError::FieldCount {
                        expression: text.to_owned(),
                        count,
                    });
                }
            }
        };
        let schedule =
            cron::Schedule::from_str(&cron_text).map_err(|error| ScheduleError::Invalid {
                expression: text.to_owned(),
                reason: explain(&cron_text, fields.len() == 5, &error),
            })?;
        let interval = schedule.hours().count() == 24;
        Ok(JobSchedule {
            expression: text.to_owned(),
            schedule,
            interval,
        })
    }

    /// The expression as written (surrounding whitespace trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first run strictly after `after`, in time zone `tz`, by the daylight-saving rule of the
    /// [module documentation](self); `None` if the schedule has no further runs.
    ///
    /// Applied to its own result it gives strictly increasing instants without duplicates, through
    /// both daylight-saving transitions.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if !YEARS.contains(&after.year()) {
            return None;
        }
        let local = after.with_timezone(&tz).naive_local();
        // Every run is `first(n)` of a scheduled wall-clock time n (see `Occurrences`), and `first` is
        // non-decreasing in n with `first(local) <= after`, so the first scheduled time after
        // `local` whose `first` lies after `after` gives the earliest such run.
        let first = self.scan_forward(local, tz, after, |o| o.first);
        if !self.interval {
            return first;
        }
        // Interval jobs also run at `second(n)`, which is non-decreasing too. If `after` is the
        // first pass of a repeated wall-clock time, the second passes of the preceding
        // wall-clock times still lie ahead: start the scan one fold (the repeated stretch) earlier.
        let start = match tz.from_local_datetime(&local) {
            LocalResult::Ambiguous(earliest, latest) if earliest.to_utc() == after => {
                local - (latest.to_utc() - earliest.to_utc())
            }
            _ => local,
        };
        let second = self.scan_forward(start, tz, after, |o| o.second);
        match (first, second) {
            (Some(first), Some(second)) => Some(first.min(second)),
            (first, second) => first.or(second),
        }
    }

    /// The latest run in the half-open interval (`since`, `now`], if any: what a daemon that was
    /// down from `since` to `now` missed (caught up once, however many were missed).
    ///
    /// A run at exactly `since` is not missed (it is taken to have happened); a run at exactly
    /// `now` is.
    pub fn last_missed(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        if now <= since {
            return None;
        }
        self.last_at_or_before(now, tz).filter(|&run| run > since)
    }

    /// The latest run at or before `now`: the mirror image of [`JobSchedule::next_after`].
    fn last_at_or_before(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if !YEARS.contains(&now.year()) {
            return None;
        }
        let local = now.with_timezone(&tz).naive_local();
        // If `now` is the second pass of a repeated wall-clock time, the first passes of the
        // following wall-clock times already lie behind: start the scan one fold later.
        let start = match tz.from_local_datetime(&local) {
            LocalResult::Ambiguous(earliest, latest) if latest.to_utc() == now => {
                local + (latest.to_utc() - earliest.to_utc())
            }
            _ => local,
        };
        let first = self.scan_backward(start, tz, now, |o| o.first);
        if !self.interval {
            return first;
        }
        let second = self.scan_backward(local, tz, now, |o| o.second);
        match (first, second) {
            (Some(first), Some(second)) => Some(first.max(second)),
            (first, second) => first.or(second),
        }
    }

    /// Walks the scheduled wall-clock times after `start` (exclusive), in order, and returns the
    /// first whose `pick`ed instant lies after `after`.
    fn scan_forward(
        &self,
        start: NaiveDateTime,
        tz: Tz,
        after: DateTime<Utc>,
        pick: impl Fn(Occurrences) -> DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.schedule
            .after(&start.and_utc())
            .filter_map(|wall| Occurrences::of(wall.naive_utc(), tz))
            .map(pick)
            .find(|&run| run > after)
    }

    /// Walks the scheduled wall-clock times at or before `start` (inclusive), latest first, and
    /// returns the first whose `pick`ed instant lies at or before `now`.
    fn scan_backward(
        &self,
        start: NaiveDateTime,
        tz: Tz,
        now: DateTime<Utc>,
        pick: impl Fn(Occurrences) -> DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        // The `cron` crate's backward iteration excludes its starting point; one nanosecond later
        // includes `start` itself (scheduled times are whole seconds).
        let from = start.and_utc() + TimeDelta::nanoseconds(1);
        self.schedule
            .after(&from)
            .rev()
            .filter_map(|wall| Occurrences::of(wall.naive_utc(), tz))
            .map(pick)
            .find(|&run| run <= now)
    }
}

/// The fields of the `cron` crate's form: name and what they allow.
const CRON_FIELDS: [(&str, &str); 7] = [
    ("second", "0–59"),
    ("minute", "0–59"),
    ("hour", "0–23"),
    ("day-of-month", "1–31"),
    ("month", "1–12 or JAN–DEC"),
    ("day-of-week", "1–7 with 1 = Sunday, or SUN–SAT"),
    ("year", "1970–2100"),
];

/// Why the `cron` crate refused `cron_text` (the expression in its six- or seven-field form or a
/// shorthand; `five_fields` if it was written in the five-field form), naming the offending field.
/// The crate's own message echoes the whole (possibly rewritten) expression, so each field is
/// tried on its own to find the culprit.
fn explain(cron_text: &str, five_fields: bool, error: &cron::error::Error) -> String {
    if cron_text.starts_with('@') {
        return "unknown shorthand; expected one of @hourly, @daily, @weekly, @monthly, @yearly"
            .to_owned();
    }
    let fields: Vec<&str> = cron_text.split_whitespace().collect();
    for (index, field) in fields.iter().enumerate() {
        let mut probe = vec!["*"; fields.len()];
        probe[index] = field;
        if cron::Schedule::from_str(&probe.join(" ")).is_err() {
            let (name, allowed) = CRON_FIELDS[index];
            let allowed = if five_fields && index == 5 {
                "0–7 with 0 and 7 = Sunday, or SUN–SAT"
            } else {
                allowed
            };
            return format!(
                "the {name} field `{field}` is invalid (allowed: {allowed}, combined with `*`, `,`, \
                 `-` and `/`)"
            );
        }
    }
    // No single field is at fault: fall back on the last line of the crate's message.
    let message = error.to_string();
    message
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty() && *line != cron_text && !line.starts_with('^'))
        .unwrap_or("not a valid cron expression")
        .to_owned()
}

/// The instants a scheduled wall-clock time runs at, by the daylight-saving rule.
#[derive(Clone, Copy, Debug)]
struct Occurrences {
    /// The run of every job: the instant itself, the first occurrence of a repeated time, or the
    /// end of the gap for a time that does not exist. Non-decreasing in the wall-clock time.
    first: DateTime<Utc>,
    /// The additional run of an interval job: the second occurrence of a repeated time, otherwise
    /// equal to `first`. Non-decreasing in the wall-clock time.
    second: DateTime<Utc>,
}

impl Occurrences {
    /// Maps the wall-clock time `wall` in `tz` to its instants; `None` only if no valid local
    /// time follows within [`MAX_GAP`] (no real time zone does that).
    fn of(wall: NaiveDateTime, tz: Tz) -> Option<Occurrences> {
        let (first, second) = match tz.from_local_datetime(&wall) {
            LocalResult::Single(instant) => (instant.to_utc(), instant.to_utc()),
            LocalResult::Ambiguous(earliest, latest) => (earliest.to_utc(), latest.to_utc()),
            LocalResult::None => {
                let end = gap_end(wall, tz)?;
                (end, end)
            }
        };
        Some(Occurrences { first, second })
    }
}

/// The first instant after the spring gap containing the non-existent wall-clock time `wall`: the
/// earliest instant whose local time is `wall` or later.
fn gap_end(wall: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    // The first whole minute at or after `wall` that exists, at its earliest instant.
    let mut minute = wall.with_second(0)?.with_nanosecond(0)?;
    if minute < wall {
        minute += TimeDelta::minutes(1);
    }
    let limit = wall + MAX_GAP;
    let mut end = loop {
        match tz.from_local_datetime(&minute) {
            LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => {
                break instant.to_utc();
            }
            LocalResult::None if minute < limit => minute += TimeDelta::minutes(1),
            LocalResult::None => return None,
        }
    };
    // Real transitions fall on whole minutes; should one not, step back to its exact second.
    for _ in 0..60 {
        let earlier = end - TimeDelta::seconds(1);
        if earlier.with_timezone(&tz).naive_local() < wall {
            break;
        }
        end = earlier;
    }
    Some(end)
}

impl fmt::Display for JobSchedule {
    /// Writes the expression as written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expression)
    }
}

impl FromStr for JobSchedule {
    type Err = ScheduleError;

    /// Same as [`JobSchedule::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobSchedule::parse(s)
    }
}

impl<'de> Deserialize<'de> for JobSchedule {
    /// Reads a schedule from a string, e.g. `schedule = "30 2 * * *"` in the configuration; an
    /// invalid expression fails with the [`ScheduleError`] message.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        JobSchedule::parse(&text).map_err(serde::de::Error::custom)
    }
}
