//! Courses: when they start, their kind, group and locked tariff, and when they end.

use crate::domain::{CourseKind, Pseudonym, TerminationReason, Track};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A course id: deterministic from citizen, track and start, so recomputing gives the same id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CourseId(pub String);

impl fmt::Display for CourseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The daily tariff of a course.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DailyTariff {
    /// Read once at the start from the tariff table and locked for the whole course.
    Locked {
        /// DKK per day, exact.
        #[serde(with = "rust_decimal::serde::str")]
        amount: Decimal,
    },
    /// Individual course: `weekly minutes / 60 * hourly rate / 7`, recomputed every day from
    /// the active grants; the hourly rate is locked at the start.
    Individual {
        /// DKK per visitated hour.
        #[serde(with = "rust_decimal::serde::str")]
        hourly_rate: Decimal,
    },
}

/// Why a course ended when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// It ran its full length (or, for an individual course, to the end of the month).
    Planned,
    /// A termination event: the event day is the last paid day.
    Terminated(TerminationReason),
}

impl EndReason {
    /// The name shown and stored: `planned`, `death`, `moved_out`, `nursing_home`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Planned => "planned",
            EndReason::Terminated(r) => r.as_str(),
        }
    }
}

/// A period in which one daily tariff applies to one citizen in one track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Course {
    /// Deterministic id.
    pub id: CourseId,
    /// The citizen.
    pub citizen: Pseudonym,
    /// The track.
    pub track: Track,
    /// Kind, decided once at the start.
    pub kind: CourseKind,
    /// The need score at the start.
    pub need_score: u32,
    /// The need group at the start; `None` for an individual course.
    pub group: Option<u8>,
    /// The tariff year of the table in force at the start.
    pub tariff_year: i32,
    /// The daily tariff.
    pub tariff: DailyTariff,
    /// First paid day.
    pub start: NaiveDate,
    /// Last day by the course length.
    pub planned_end: NaiveDate,
    /// Last paid day: the planned end, or the day of a termination event.
    pub end: NaiveDate,
    /// Why it ends on `end`.
    pub end_reason: EndReason,
}
