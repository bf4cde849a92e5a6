//! Teams (borgerteams), their cost centres, and which citizen belongs to which team when.

use super::{InvalidValue, Pseudonym};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A team id as written in the mappings: lower-case letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TeamId(String);

impl TeamId {
    /// Validates a team id (1-32 characters of `a-z0-9-_`).
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(
                "team id",
                format!("`{s}` must be 1-32 characters of a-z, 0-9, - and _"),
            ))
        }
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype!(TeamId);

/// A cost centre (omkostningssted) in the finance system: 1-10 digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CostCentre(String);

impl CostCentre {
    /// Validates a cost centre (1-10 digits).
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(
                "cost centre",
                format!("`{s}` must be 1-10 digits"),
            ))
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype!(CostCentre);

/// A self-managing team that receives the tariffs of its citizens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// Stable id, used in postings and figures.
    pub id: TeamId,
    /// Name shown to people.
    pub name: String,
    /// The team's cost centre: where its income is posted.
    pub cost_centre: CostCentre,
}

/// A citizen belongs to a team from `from` through `to` (inclusive; `None` = open).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamAssignment {
    /// The citizen.
    pub citizen: Pseudonym,
    /// The team.
    pub team: TeamId,
    /// First day.
    pub from: NaiveDate,
    /// Last day, inclusive; `None` while it lasts.
    pub to: Option<NaiveDate>,
}

impl TeamAssignment {
    /// Validates that `to` is not before `from`.
    pub fn new(
        citizen: Pseudonym,
        team: TeamId,
        from: NaiveDate,
        to: Option<NaiveDate>,
    ) -> Result<Self, InvalidValue> {
        if let Some(to) = to
            && to < from
        {
            return Err(InvalidValue::new(
                "team assignment",
                format!("ends {to} before it starts {from}"),
            ));
        }
        Ok(Self {
            citizen,
            team,
            from,
            to,
        })
    }

    /// Whether the assignment covers `day`.
    pub fn covers(&self, day: NaiveDate) -> bool {
        self.from <= day && self.to.is_none_or(|to| day <= to)
    }
}
