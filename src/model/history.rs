//! A citizen's history as the model sees it, resolved from every stored version.

use crate::domain::{
    AcuteDelivery, Assessment, CitizenRecord, FollowUp, Goal, Grant, Pseudonym, TeamAssignment,
    Termination, Visit,
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
    /// An acute or unplanned delivery.
    Acute(AcuteDelivery),
    /// A planned follow-up date or a follow-up result.
    FollowUp(FollowUp),
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
    /// [`Record::Acute`]
    Acute,
    /// [`Record::FollowUp`]
    FollowUp,
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
            Self::Acute => "acute",
            Self::FollowUp => "follow_up",
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
            Record::Acute(_) => RecordKind::Acute,
            Record::FollowUp(_) => RecordKind::FollowUp,
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
            Record::Acute(r) => &r.citizen,
            Record::FollowUp(r) => &r.citizen,
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
            Record::Acute(r) => r.source_id.to_string(),
            Record::FollowUp(r) => r.source_id.to_string(),
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
    /// Current version of each acute delivery.
    pub acute: Vec<AcuteDelivery>,
    /// Current version of each follow-up.
    pub follow_ups: Vec<FollowUp>,
    /// Team assignments from rosters.
    pub assignments: Vec<TeamAssignment>,
    /// The custodian SOR code by the local date it was reported on, earliest first (`None`
    /// date: known without a date, applies from the start).
    pub custodians: Vec<(Option<chrono::NaiveDate>, Option<String>)>,
}

/// Resolves a citizen's stored versions into the history the model computes from.
///
/// - the current version of a record is the one with the latest `version_at` (on a tie, the
///   one later in `versions`, i.e. received later); a termination is the exception: its
///   *first* report counts (the day of death is the day it was first reported), so its current
///   version is the earliest one;
/// - a record whose current version is withdrawn is left out;
/// - every version of an assessment is kept (a re-assessment never overwrites the level before
///   it), unless that version itself is withdrawn or the current version of its condition is;
/// - if the citizen's current record says `active = false`, the citizen's reported data is
///   withdrawn and the history is empty but for that record.
pub fn resolve_history(versions: &[Versioned]) -> CitizenHistory {
    use std::collections::BTreeMap;

    // All versions per (kind, source, key), in receipt order; the current one is the latest
    // `version_at`, the later received on a tie.
    let mut things: BTreeMap<(RecordKind, &str, String), Vec<&Versioned>> = BTreeMap::new();
    for v in versions {
        things
            .entry((v.record.kind(), v.source.as_str(), v.record.key()))
            .or_default()
            .push(v);
    }
    let mut h = CitizenHistory {
        citizen: versions.first().map(|v| v.record.citizen().clone()),
        ..CitizenHistory::default()
    };
    let mut profile_at = None;
    for all in things.values() {
        // The latest version is current; for a termination the first report is.
        let first_report_counts = matches!(all[0].record, Record::Termination(_));
        let v = all
            .iter()
            .copied()
            .reduce(|best, v| {
                let replaces = if first_report_counts {
                    v.version_at < best.version_at
                } else {
                    v.version_at >= best.version_at
                };
                if replaces { v } else { best }
            })
            .expect("every entry has a version");
        if v.withdrawn {
            continue;
        }
        match &v.record {
            Record::Citizen(r) => {
                if profile_at.is_none_or(|at| v.version_at >= at) {
                    profile_at = Some(v.version_at);
                    h.profile = Some(r.clone());
                }
                for w in all.iter().filter(|w| !w.withdrawn) {
                    if let Record::Citizen(c) = &w.record {
                        h.custodians.push((c.reported_on, c.custodian_sor.clone()));
                    }
                }
            }
            Record::Grant(r) => h.grants.push(r.clone()),
            Record::Visit(r) => h.visits.push(r.clone()),
            Record::Goal(r) => h.goals.push(r.clone()),
            Record::Termination(r) => h.terminations.push(r.clone()),
            Record::Assignment(r) => h.assignments.push(r.clone()),
            Record::Acute(r) => h.acute.push(r.clone()),
            Record::FollowUp(r) => h.follow_ups.push(r.clone()),
            Record::Assessment(_) => {
                // Every non-withdrawn version of a live condition, each once.
                for w in all.iter().filter(|w| !w.withdrawn) {
                    if let Record::Assessment(a) = &w.record
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
    h.grants
        .sort_by(|a, b| (a.start, &a.source_id).cmp(&(b.start, &b.source_id)));
    h.terminations.sort_by_key(|t| t.on);
    h.custodians.sort();
    h.custodians.dedup();
    h.assignments.sort_by_key(|a| a.from);
    h.goals
        .sort_by(|a, b| (a.set_on, &a.source_id).cmp(&(b.set_on, &b.source_id)));
    h.visits.sort_by_key(|v| v.start);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{FunctionalLevel, GrantStatus, SourceId};
    use chrono::{NaiveDate, TimeZone};

    fn who() -> Pseudonym {
        Pseudonym::parse(&"cd".repeat(32)).unwrap()
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 1, hour, 0, 0).unwrap()
    }

    fn grant(end: &str) -> Record {
        Record::Grant(
            Grant::new(
                SourceId::parse("g1").unwrap(),
                who(),
                "H1.1".into(),
                "2027-01-01".parse().unwrap(),
                Some(end.parse().unwrap()),
                GrantStatus::Active,
                None,
            )
            .unwrap(),
        )
    }

    fn v(hour: u32, withdrawn: bool, record: Record) -> Versioned {
        Versioned {
            source: "s".into(),
            version_at: at(hour),
            withdrawn,
            record,
        }
    }

    fn assessment(level: u8, hour: u32) -> Record {
        Record::Assessment(Assessment {
            condition_id: SourceId::parse("c1").unwrap(),
            citizen: who(),
            condition_code: "x".into(),
            level_code: format!("B{}", level + 1),
            level: Some(FunctionalLevel::new(level).unwrap()),
            assessed_at: at(hour),
            assessed_on: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
            in_focus: true,
        })
    }

    #[test]
    fn an_older_version_arriving_late_does_not_replace_the_newer() {
        let h = resolve_history(&[
            v(10, false, grant("2027-03-01")),
            v(9, false, grant("2027-02-01")),
        ]);
        assert_eq!(h.grants.len(), 1);
        assert_eq!(h.grants[0].end, Some("2027-03-01".parse().unwrap()));
    }

    #[test]
    fn a_withdrawn_current_version_removes_the_record() {
        let h = resolve_history(&[
            v(9, false, grant("2027-02-01")),
            v(10, true, grant("2027-02-01")),
        ]);
        assert!(h.grants.is_empty());
        // ... but a withdrawal older than the current version does not.
        let h = resolve_history(&[
            v(11, false, grant("2027-02-01")),
            v(10, true, grant("2027-02-01")),
        ]);
        assert_eq!(h.grants.len(), 1);
    }

    #[test]
    fn every_assessment_version_is_kept_in_time_order() {
        let h = resolve_history(&[
            v(12, false, assessment(2, 12)),
            v(8, false, assessment(3, 8)),
        ]);
        let levels: Vec<u8> = h
            .assessments
            .iter()
            .map(|a| a.level.unwrap().value())
            .collect();
        assert_eq!(levels, [3, 2]);
    }

    #[test]
    fn an_inactive_patient_withdraws_the_citizens_data() {
        let profile = |active| {
            Record::Citizen(CitizenRecord {
                citizen: who(),
                patient_id: None,
                reported_on: None,
                custodian_sor: None,
                deceased: false,
                deceased_on: None,
                active,
            })
        };
        let h = resolve_history(&[
            v(8, false, profile(true)),
            v(9, false, grant("2027-02-01")),
            v(10, false, profile(false)),
        ]);
        assert!(h.grants.is_empty());
        assert_eq!(h.profile.map(|p| p.active), Some(false));
    }
}

#[cfg(test)]
mod termination_tests {
    use super::*;
    use crate::domain::{SourceId, TerminationReason};
    use chrono::TimeZone;

    #[test]
    fn the_first_report_of_a_death_gives_the_day() {
        let who = Pseudonym::parse(&"ef".repeat(32)).unwrap();
        let death = |day: u32| Versioned {
            source: "s".into(),
            version_at: Utc.with_ymd_and_hms(2027, 1, day, 12, 0, 0).unwrap(),
            withdrawn: false,
            record: Record::Termination(Termination {
                source_id: SourceId::parse("patient-1/death").unwrap(),
                citizen: who.clone(),
                on: chrono::NaiveDate::from_ymd_opt(2027, 1, day).unwrap(),
                reason: TerminationReason::Death,
            }),
        };
        // Reported again on the 22nd, and the report of the 20th arriving late: the 20th counts.
        let h = resolve_history(&[death(22), death(20)]);
        assert_eq!(h.terminations.len(), 1);
        assert_eq!(h.terminations[0].on.to_string(), "2027-01-20");
    }
}
