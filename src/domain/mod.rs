//! Domain types: what the gateway knows about citizens, teams, grants, visits and assessments.
//!
//! Every type here is validated on construction (`parse`/`new`), so invalid data cannot travel
//! inward. Nothing in this module does I/O or reads the clock.

/// The conversions of a validated string newtype with a `parse(&str) -> Result<Self,
/// InvalidValue>`: `TryFrom<String>` (for serde), `From<T> for String` and `Display`.
macro_rules! string_newtype {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = $crate::domain::InvalidValue;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(&self.0)
            }
        }
    };
}

mod citizen;
mod records;
mod team;

pub use citizen::{
    Cpr, CprError, Pseudonym, PseudonymKey, SHOWN_CHARS, cut, holds_cpr, mask_cpr, short_form,
    shown,
};
pub use records::{
    AcuteDelivery, Assessment, CitizenRecord, DeliveryMode, FollowUp, FunctionalLevel, Goal, Grant,
    GrantStatus, SourceId, Termination, TerminationReason, Visit,
};
pub use team::{CostCentre, Team, TeamAssignment, TeamId};

use serde::{Deserialize, Serialize};
use std::fmt;

/// A domain value failed validation. The message never contains a CPR number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct InvalidValue {
    /// Which value, e.g. `team id`.
    pub what: &'static str,
    /// Why it was refused.
    pub reason: String,
}

impl InvalidValue {
    pub(crate) fn new(what: &'static str, reason: impl Into<String>) -> Self {
        Self {
            what,
            reason: reason.into(),
        }
    }
}

/// One of the two independent tracks a citizen can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    /// Personal care, practical help, rehabilitation (SEL §83, §83a, Ældrelov).
    Care,
    /// Home nursing (SUL §138).
    Nursing,
}

impl Track {
    /// Both tracks, in a fixed order.
    pub const ALL: [Track; 2] = [Track::Care, Track::Nursing];

    /// The name used in files, JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Care => "care",
            Track::Nursing => "nursing",
        }
    }

    /// Parses `care` or `nursing`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s {
            "care" => Ok(Track::Care),
            "nursing" => Ok(Track::Nursing),
            other => Err(InvalidValue::new(
                "track",
                format!("unknown track `{other}` (expected care or nursing)"),
            )),
        }
    }
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The kind of a course, decided once at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CourseKind {
    /// The citizen is expected to regain abilities (udviklingsforløb).
    Development,
    /// Stable needs (stabiliseringsforløb).
    Stabilisation,
    /// Needs beyond the standard groups, paid by time (individuel takst).
    Individual,
}

impl CourseKind {
    /// The name used in files, JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CourseKind::Development => "development",
            CourseKind::Stabilisation => "stabilisation",
            CourseKind::Individual => "individual",
        }
    }

    /// Parses the name written by [`CourseKind::as_str`].
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        match s {
            "development" => Ok(Self::Development),
            "stabilisation" => Ok(Self::Stabilisation),
            "individual" => Ok(Self::Individual),
            other => Err(InvalidValue::new(
                "course kind",
                format!("unknown course kind `{other}`"),
            )),
        }
    }
}

impl fmt::Display for CourseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}
