//! A citizen's history as the model sees it, resolved from every stored version.

use crate::domain::{
    Assessment, CitizenRecord, Goal, Grant, Pseudonym, TeamAssignment, Termination, Visit,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One received record of any kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "record", rename_all = "snake_case")]
pub enum Record {
    /// What the care system says about the citizen.
    Citizen(CitizenRecord),
    /// A grant.
    Grant(Grant),
    /// A visit.
    Visit(Visit),
    /// An assessment (a version of a Condition with a level).
    Assessment(Assessment),
    /// A goal.
    Goal(Goal),
    /// A termination event.
    Termination(Termination),
    /// A team assignment from a roster.
    Assignment(TeamAssignment),
}

/// The kind of a [`Record`], as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// [`Record::Citizen`]
    Citizen,
    /// [`Record::Grant`]
    Grant,
    /// [`Record::Visit`]
    Visit,
    /// [`Record::Assessment`]
    Assessment,
    /// [`Record::Goal`]
    Goal,
    /// [`Record::Termination`]
    Termination,
    /// [`Record::Assignment`]
    Assignment,
}

impl RecordKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Citizen => "citizen",
            Self::Grant => "grant",
            Self::Visit => "visit",
            Self::Assessment => "assessment",
            Self::Goal => "goal",
            Self::Termination => "termination",
            Self::Assignment => "assignment",
        }
    }
}

impl Record {
    /// The record's kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Citizen(_) => RecordKind::Citizen,
            Record::Grant(_) => RecordKind::Grant,
            Record::Visit(_) => RecordKind::Visit,
            Record::Assessment(_) => RecordKind::Assessment,
            Record::Goal(_) => RecordKind::Goal,
            Record::Termination(_) => RecordKind::Termination,
            Record::Assignment(_) => RecordKind::Assignment,
        }
    }

    /// The citizen the record is about.
    pub fn citizen(&self) -> &Pseudonym {
        match self {
            Record::Citizen(r) => &r.citizen,
            Record::Grant(r) => &r.citizen,
            Record::Visit(r) => &r.citizen,
            Record::Assessment(r) => &r.citizen,
            Record::Goal(r) => &r.citizen,
            Record::Termination(r) => &r.citizen,
            Record::Assignment(r) => &r.citizen,
        }
    }

    /// The identity of the thing this record is a version of, unique within its kind and
    /// source: the source id, or for a citizen or a roster line the fields that identify it.
    pub fn key(&self) -> String {
        match self {
            Record::Citizen(r) => r.citizen.to_string(),
            Record::Grant(r) => r.source_id.to_string(),
            Record::Visit(r) => r.source_id.to_string(),
            Record::Assessment(r) => r.condition_id.to_string(),
            Record::Goal(r) => r.source_id.to_string(),
            Record::Termination(r) => r.source_id.to_string(),
            Record::Assignment(r) => format!("{}|{}|{}", r.citizen, r.team, r.from),
        }
    }
}

/// One version of a record as received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The configured source it came from (e.g. `klgateway-files`).
    pub source: String,
    /// The version instant: `meta.lastUpdated`, else the Bundle timestamp. A version with an
    /// older instant than a stored one never replaces it.
    pub version_at: DateTime<Utc>,
    /// This version withdraws the record (FHIR `entered-in-error`).
    pub withdrawn: bool,
    /// The record.
    pub record: Record,
}

/// A citizen's history resolved for the model: the current version of each record, every
/// version of each assessment, withdrawn records left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CitizenHistory {
    /// The citizen.
    pub citizen: Option<Pseudonym>,
    /// Latest version of the citizen record.
    pub profile: Option<CitizenRecord>,
    /// Current version of each grant.
    pub grants: Vec<Grant>,
    /// Every assessment (each version of each condition), oldest first.
    pub assessments: Vec<Assessment>,
    /// Current version of each goal.
    pub goals: Vec<Goal>,
    /// Current version of each visit.
    pub visits: Vec<Visit>,
    /// Termination events, earliest first.
    pub terminations: Vec<Termination>,
    /// Team assignments from rosters.
    pub assignments: Vec<TeamAssignment>,
}

/// Resolves a citizen's stored versions into the history the model computes from.
///
/// - the current version of a record is the one with the latest `version_at` (on a tie, the
///   one later in `versions`, i.e. received later);
/// - a record whose current version is withdrawn is left out;
/// - every version of an assessment is kept (a re-assessment never overwrites the level before
///   it), unless that version itself is withdrawn or the current version of its condition is;
/// - if the citizen's current record says `active = false`, the citizen's reported data is
///   withdrawn and the history is empty but for that record.
pub fn resolve_history(versions: &[Versioned]) -> CitizenHistory {
    use std::collections::BTreeMap;

    // Current version per (kind, source, key): the index of the winner.
    let mut current: BTreeMap<(RecordKind, &str, String), usize> = BTreeMap::new();
    for (i, v) in versions.iter().enumerate() {
        let k = (v.record.kind(), v.source.as_str(), v.record.key());
        match current.get(&k) {
            Some(&j) if versions[j].version_at > v.version_at => {}
            _ => {
                current.insert(k, i);
            }
        }
    }

    let mut h = CitizenHistory {
        citizen: versions.first().map(|v| v.record.citizen().clone()),
        ..CitizenHistory::default()
    };
    let mut profile_at = None;
    for (&(kind, source, ref key), &i) in &current {
        let v = &versions[i];
        if v.withdrawn {
            continue;
        }
        match &v.record {
            Record::Citizen(r) => {
                if profile_at.is_none_or(|at| v.version_at >= at) {
                    profile_at = Some(v.version_at);
                    h.profile = Some(r.clone());
                }
            }
            Record::Grant(r) => h.grants.push(r.clone()),
            Record::Visit(r) => h.visits.push(r.clone()),
            Record::Goal(r) => h.goals.push(r.clone()),
            Record::Termination(r) => h.terminations.push(r.clone()),
            Record::Assignment(r) => h.assignments.push(r.clone()),
            Record::Assessment(_) => {
                // Every non-withdrawn version of a live condition.
                for w in versions.iter() {
                    if !w.withdrawn
                        && w.record.kind() == kind
                        && w.source == source
                        && &w.record.key() == key
                        && let Record::Assessment(a) = &w.record
                        && !h.assessments.contains(a)
                    {
                        h.assessments.push(a.clone());
                    }
                }
            }
        }
    }
    if h.profile.as_ref().is_some_and(|p| !p.active) {
        return CitizenHistory {
            citizen: h.citizen,
            profile: h.profile,
            ..CitizenHistory::default()
        };
    }
    h.assessments
        .sort_by(|a, b| (a.assessed_at, &a.condition_id).cmp(&(b.assessed_at, &b.condition_id)));
    h.grants.sort_by(|a, b| (a.start, &a.source_id).cmp(&(b.start, &b.source_id)));
    h.terminations.sort_by_key(|t| t.on);
    h.assignments.sort_by_key(|a| a.from);
    h.goals.sort_by(|a, b| (a.set_on, &a.source_id).cmp(&(b.set_on, &b.source_id)));
    h.visits.sort_by_key(|v| v.start);
    h
}
