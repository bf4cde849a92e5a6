//! A citizen's history as the model sees it, resolved from every stored version.

use crate::domain::{
    AcuteDelivery, Assessment, CitizenRecord, FollowUp, Goal, Grant, Pseudonym, TeamAssignment,
    Termination, Visit,
};
use crate::domain::{GrantStatus, SourceId, TerminationReason};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
    /// Every kind.
    pub const ALL: [RecordKind; 9] = [
        RecordKind::Citizen,
        RecordKind::Grant,
        RecordKind::Visit,
        RecordKind::Assessment,
        RecordKind::Goal,
        RecordKind::Termination,
        RecordKind::Assignment,
        RecordKind::Acute,
        RecordKind::FollowUp,
    ];
}

/// The record kinds courses, decisions, income and findings are computed from. Visits, acute
/// deliveries and follow-ups are kept and shown, but no decision or amount depends on them, so
/// the nightly computation reads only these kinds, and only a new version of one of these
/// makes a citizen's kept evaluation stale (`pipeline::incremental`).
pub const MODEL_KINDS: [RecordKind; 6] = [
    RecordKind::Citizen,
    RecordKind::Grant,
    RecordKind::Assessment,
    RecordKind::Goal,
    RecordKind::Termination,
    RecordKind::Assignment,
];

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

    /// The kind of a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
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

/// One version of a record that a decision read: what `explain` shows and what the ledger
/// compares to see whether a recorded decision still stands on the same evidence.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Evidence {
    /// The record's kind.
    pub kind: RecordKind,
    /// The source it came from.
    pub source: String,
    /// The record's id in its source (a grant's or goal's id, a condition's id).
    pub id: String,
    /// The version's instant.
    pub version_at: DateTime<Utc>,
    /// Its local date (`None` where the history was built without versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_on: Option<NaiveDate>,
    /// sha256 of the version's content (as the store hashes it), shortened to 16 bytes; empty
    /// where the history was built without versions (tests).
    pub hash: String,
}

/// A version of a grant with when it was known: the ledger reads a grant as it was known on a
/// course's start day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantVersion {
    /// The grant as this version says.
    pub grant: Grant,
    /// The version's instant.
    pub version_at: DateTime<Utc>,
    /// Its local date.
    pub version_on: NaiveDate,
    /// Where the grant was first reported (the instant of its earliest version).
    pub first_reported_at: DateTime<Utc>,
    /// The evidence of this version.
    pub evidence: Evidence,
}

/// A citizen's history resolved for the model: the current version of each record, every
/// version of each assessment, goal and grant, withdrawn records left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CitizenHistory {
    /// The citizen.
    pub citizen: Option<Pseudonym>,
    /// Latest version of the citizen record.
    pub profile: Option<CitizenRecord>,
    /// Current version of each grant; a revoked or completed grant without an end ends on the
    /// local date of the first version that said so.
    pub grants: Vec<Grant>,
    /// Every live version of each live grant, by grant and version instant (empty for a
    /// history built by hand: the current versions then stand for themselves).
    pub grant_versions: Vec<GrantVersion>,
    /// Every assessment (each version of each condition), oldest first.
    pub assessments: Vec<Assessment>,
    /// Every version of each goal (a version's `set_on` is the local date it was reported on),
    /// by `set_on`; the version in force on a day is the latest one set on or before it.
    pub goals: Vec<Goal>,
    /// The evidence of each version in `goals`, index for index (empty for a history built
    /// by hand).
    pub goal_evidence: Vec<Evidence>,
    /// Current version of each visit.
    pub visits: Vec<Visit>,
    /// Termination events, earliest first: those of the events source and a death the
    /// citizen records report.
    pub terminations: Vec<Termination>,
    /// Current version of each acute delivery.
    pub acute: Vec<AcuteDelivery>,
    /// Current version of each follow-up.
    pub follow_ups: Vec<FollowUp>,
    /// Team assignments from rosters, by first day and then version instant (so of two
    /// assignments from the same day, the later reported comes last and wins).
    pub assignments: Vec<TeamAssignment>,
    /// The custodian SOR code by the local date it was reported on, in order of date and then
    /// version instant (`None` date: known without a date, applies from the start). Of two
    /// reports the same day, the later one comes last and wins.
    pub custodians: Vec<(Option<chrono::NaiveDate>, Option<String>)>,
    /// The evidence of every live version, by kind, record key and version instant.
    pub evidence: BTreeMap<(RecordKind, String, DateTime<Utc>), Evidence>,
}

impl CitizenHistory {
    /// The ids of the grants whose intervention belongs to `track` (a grant of an unmapped
    /// code belongs to none).
    pub fn grants_in_track(
        &self,
        mappings: &crate::mapping::Mappings,
        track: crate::domain::Track,
    ) -> std::collections::BTreeSet<&SourceId> {
        self.grants
            .iter()
            .filter(|g| {
                mappings
                    .interventions
                    .get(&g.code)
                    .is_some_and(|m| m.track == Some(track))
            })
            .map(|g| &g.source_id)
            .collect()
    }

    /// The latest day this history reports something on: a grant's start or version, an
    /// assessment, a termination or a team assignment (never a grant's end, such as the
    /// common 9999-12-31).
    pub fn latest_known_day(&self) -> Option<NaiveDate> {
        self.grants
            .iter()
            .map(|g| g.start)
            .chain(self.grant_versions.iter().map(|v| v.version_on))
            .chain(self.assessments.iter().map(|a| a.assessed_on))
            .chain(self.terminations.iter().map(|t| t.on))
            .chain(self.assignments.iter().map(|a| a.from))
            .max()
    }

    /// The evidence of an assessment (a condition's version).
    pub fn assessment_evidence(&self, a: &Assessment) -> Evidence {
        self.evidence_of(
            RecordKind::Assessment,
            a.condition_id.as_str(),
            a.assessed_at,
        )
    }

    /// The evidence of the goal version at `index` in `goals`.
    pub fn goal_evidence(&self, index: usize) -> Evidence {
        self.goal_evidence.get(index).cloned().unwrap_or_else(|| {
            let g = &self.goals[index];
            Evidence {
                kind: RecordKind::Goal,
                source: String::new(),
                id: g.source_id.to_string(),
                version_at: g
                    .set_on
                    .and_hms_opt(0, 0, 0)
                    .map_or(DateTime::<Utc>::MIN_UTC, |t| t.and_utc()),
                version_on: Some(g.set_on),
                hash: String::new(),
            }
        })
    }

    fn evidence_of(&self, kind: RecordKind, key: &str, at: DateTime<Utc>) -> Evidence {
        self.evidence
            .get(&(kind, key.to_owned(), at))
            .cloned()
            .unwrap_or_else(|| Evidence {
                kind,
                source: String::new(),
                id: key.to_owned(),
                version_at: at,
                version_on: None,
                hash: String::new(),
            })
    }
}

/// sha256 of a version as the store hashes it, shortened to 16 bytes of hex.
pub fn version_hash(v: &Versioned) -> String {
    use sha2::{Digest, Sha256};
    let payload = serde_json::to_string(&v.record).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(payload.as_bytes());
    h.update(if v.withdrawn {
        b"\nwithdrawn=true".as_slice()
    } else {
        b"\nwithdrawn=false".as_slice()
    });
    hex::encode(&h.finalize()[..16])
}

/// Resolves a citizen's stored versions into the history the model computes from. `tz` is
/// the municipality's time zone: a version's local date is its instant's date there.
///
/// - the current version of a record is the one with the latest `version_at` (on a tie, the
///   one later in `versions`, i.e. received later);
/// - a record whose current version is withdrawn is left out (it never was);
/// - every version of an assessment, a goal and a grant is kept (a decision reads the
///   version in force on its start day), unless that version itself is withdrawn or the
///   current version of its record is;
/// - a termination's first report counts (the day of an event is the day it was first
///   reported), so its current version is the earliest one, unless a later version
///   withdraws it;
/// - a death comes from the citizen record: while its current version says deceased, the
///   citizen died on `deceased_on` where the sender gave it, otherwise on the local date of
///   the first report (of the latest run of reports) saying so; a later report saying not
///   deceased undoes it;
/// - a revoked or completed grant without an end ends on the local date of the first version
///   that says so;
/// - if the citizen's current record says `active = false`, the citizen's reported data is
///   withdrawn and the history is empty but for that record.
pub fn resolve_history(versions: &[Versioned], tz: chrono_tz::Tz) -> CitizenHistory {
    // All versions per (kind, source, key), in order of version instant (ties: receipt order).
    let mut things: BTreeMap<(RecordKind, &str, String), Vec<&Versioned>> = BTreeMap::new();
    for v in versions {
        things
            .entry((v.record.kind(), v.source.as_str(), v.record.key()))
            .or_default()
            .push(v);
    }
    for all in things.values_mut() {
        all.sort_by_key(|v| v.version_at);
    }
    let local = |at: DateTime<Utc>| at.with_timezone(&tz).date_naive();
    let mut h = CitizenHistory {
        citizen: versions.first().map(|v| v.record.citizen().clone()),
        ..CitizenHistory::default()
    };
    let mut profile_at = None;
    let mut custodians: Vec<(Option<NaiveDate>, DateTime<Utc>, Option<String>)> = Vec::new();
    let mut assignments: Vec<(DateTime<Utc>, TeamAssignment)> = Vec::new();
    let mut citizen_versions: Vec<&Versioned> = Vec::new();
    let mut goals: Vec<(Goal, Evidence)> = Vec::new();
    for ((kind, source, key), all) in &things {
        let evidence = |v: &Versioned| Evidence {
            kind: *kind,
            source: (*source).to_owned(),
            id: key.clone(),
            version_at: v.version_at,
            version_on: Some(local(v.version_at)),
            hash: version_hash(v),
        };
        let current = *all.last().expect("every entry has a version");
        if current.withdrawn {
            continue;
        }
        let live = || all.iter().copied().filter(|w| !w.withdrawn);
        // Only what a decision reads is evidence: a visit's hash would cost a serialization
        // and a SHA-256 per visit, millions a year, for nothing.
        if MODEL_KINDS.contains(kind) {
            for w in live() {
                h.evidence
                    .insert((*kind, key.clone(), w.version_at), evidence(w));
            }
        }
        match &current.record {
            Record::Citizen(r) => {
                if profile_at.is_none_or(|at| current.version_at >= at) {
                    profile_at = Some(current.version_at);
                    h.profile = Some(r.clone());
                }
                for w in live() {
                    citizen_versions.push(w);
                    if let Record::Citizen(c) = &w.record {
                        custodians.push((
                            Some(local(w.version_at)),
                            w.version_at,
                            c.custodian_sor.clone(),
                        ));
                    }
                }
            }
            Record::Grant(_) => {
                let first_reported_at = all[0].version_at;
                let mut ended_on: Option<NaiveDate> = None;
                for w in live() {
                    if let Record::Grant(g) = &w.record {
                        // The first version saying revoked or completed gives the end.
                        if matches!(g.status, GrantStatus::Revoked | GrantStatus::Completed) {
                            ended_on.get_or_insert(local(w.version_at));
                        } else {
                            ended_on = None;
                        }
                        let mut g = g.clone();
                        if g.end.is_none()
                            && let Some(on) = ended_on
                        {
                            g.end = Some(on);
                        }
                        h.grant_versions.push(GrantVersion {
                            grant: g,
                            version_at: w.version_at,
                            version_on: local(w.version_at),
                            first_reported_at,
                            evidence: evidence(w),
                        });
                    }
                }
                if let Some(last) = h.grant_versions.last() {
                    h.grants.push(last.grant.clone());
                }
            }
            Record::Visit(r) => h.visits.push(r.clone()),
            Record::Goal(_) => {
                for w in live() {
                    if let Record::Goal(g) = &w.record {
                        goals.push((g.clone(), evidence(w)));
                    }
                }
            }
            Record::Termination(_) => {
                // The first live report counts.
                let first = live().next().expect("the current version is live");
                if let Record::Termination(t) = &first.record {
                    // Deaths reported by the care system come from the citizen record now;
                    // `*/death` events stored by earlier versions of the reader are ignored.
                    let derived_death = t.reason == TerminationReason::Death
                        && t.source_id.as_str().ends_with("/death");
                    if !derived_death {
                        h.terminations.push(t.clone());
                    }
                }
            }
            Record::Assignment(r) => assignments.push((current.version_at, r.clone())),
            Record::Acute(r) => h.acute.push(r.clone()),
            Record::FollowUp(r) => h.follow_ups.push(r.clone()),
            Record::Assessment(_) => {
                // Every non-withdrawn version of a live condition, each once.
                for w in live() {
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
    if let Some(death) = death_of(&mut citizen_versions, local) {
        h.terminations.push(death);
    }
    h.assessments
        .sort_by(|a, b| (a.assessed_at, &a.condition_id).cmp(&(b.assessed_at, &b.condition_id)));
    h.grants
        .sort_by(|a, b| (a.start, &a.source_id).cmp(&(b.start, &b.source_id)));
    h.terminations.sort_by_key(|t| t.on);
    custodians.sort_by_key(|(on, at, _)| (*on, *at));
    h.custodians = custodians
        .into_iter()
        .map(|(on, _, sor)| (on, sor))
        .collect();
    h.custodians.dedup();
    assignments.sort_by_key(|(at, a)| (a.from, *at));
    h.assignments = assignments.into_iter().map(|(_, a)| a).collect();
    goals.sort_by(|(a, ae), (b, be)| {
        (a.set_on, &a.source_id, ae.version_at).cmp(&(b.set_on, &b.source_id, be.version_at))
    });
    (h.goals, h.goal_evidence) = goals.into_iter().unzip();
    h.visits.sort_by_key(|v| v.start);
    h
}

/// [`resolve_history`] of versions the caller gives up: the same history, with the current
/// version of each visit moved into it instead of cloned (visits are most of a citizen's
/// versions, and no rule but the current-version one reads them).
pub fn resolve_history_owned(versions: Vec<Versioned>, tz: chrono_tz::Tz) -> CitizenHistory {
    let citizen = versions.first().map(|v| v.record.citizen().clone());
    let (mut visits, rest): (Vec<Versioned>, Vec<Versioned>) = versions
        .into_iter()
        .partition(|v| matches!(v.record, Record::Visit(_)));
    let mut h = resolve_history(&rest, tz);
    h.citizen = citizen;
    if h.profile.as_ref().is_some_and(|p| !p.active) {
        return h;
    }
    // As `resolve_history` groups them: by source and key, then by version instant (ties:
    // receipt order, which a stable sort keeps); the last of a group is its current version.
    fn id(v: &Versioned) -> &str {
        match &v.record {
            Record::Visit(r) => r.source_id.as_str(),
            _ => "",
        }
    }
    visits.sort_by(|a, b| {
        (a.source.as_str(), id(a), a.version_at).cmp(&(b.source.as_str(), id(b), b.version_at))
    });
    let mut visits = visits.into_iter().peekable();
    while let Some(v) = visits.next() {
        let superseded = visits
            .peek()
            .is_some_and(|n| n.source == v.source && id(n) == id(&v));
        if let (false, false, Record::Visit(r)) = (superseded, v.withdrawn, v.record) {
            h.visits.push(r);
        }
    }
    h.visits.sort_by_key(|v| v.start);
    h
}

/// The death the citizen records report, if their latest version says deceased: on the date
/// the sender gave, else the local date of the first report of the latest run saying so.
fn death_of(
    versions: &mut [&Versioned],
    local: impl Fn(DateTime<Utc>) -> NaiveDate,
) -> Option<Termination> {
    versions.sort_by_key(|v| v.version_at);
    let deceased = |v: &Versioned| matches!(&v.record, Record::Citizen(c) if c.deceased);
    let last = versions.last()?;
    if !deceased(last) {
        return None;
    }
    let run_start = versions
        .iter()
        .rposition(|v| !deceased(v))
        .map_or(0, |i| i + 1);
    let first = versions[run_start];
    let Record::Citizen(c) = &last.record else {
        return None;
    };
    let on = c
        .deceased_on
        .or_else(|| {
            versions[run_start..].iter().find_map(|v| match &v.record {
                Record::Citizen(c) => c.deceased_on,
                _ => None,
            })
        })
        .unwrap_or_else(|| local(first.version_at));
    let id = c
        .patient_id
        .as_ref()
        .map_or_else(|| c.citizen.short().to_owned(), |p| p.to_string());
    Some(Termination {
        source_id: SourceId::parse(&format!("{id}/death")).ok()?,
        citizen: c.citizen.clone(),
        on,
        reason: TerminationReason::Death,
    })
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
        let h = resolve_history(
            &[
                v(10, false, grant("2027-03-01")),
                v(9, false, grant("2027-02-01")),
            ],
            chrono_tz::Europe::Copenhagen,
        );
        assert_eq!(h.grants.len(), 1);
        assert_eq!(h.grants[0].end, Some("2027-03-01".parse().unwrap()));
    }

    #[test]
    fn a_withdrawn_current_version_removes_the_record() {
        let h = resolve_history(
            &[
                v(9, false, grant("2027-02-01")),
                v(10, true, grant("2027-02-01")),
            ],
            chrono_tz::Europe::Copenhagen,
        );
        assert!(h.grants.is_empty());
        // ... but a withdrawal older than the current version does not.
        let h = resolve_history(
            &[
                v(11, false, grant("2027-02-01")),
                v(10, true, grant("2027-02-01")),
            ],
            chrono_tz::Europe::Copenhagen,
        );
        assert_eq!(h.grants.len(), 1);
    }

    #[test]
    fn every_assessment_version_is_kept_in_time_order() {
        let h = resolve_history(
            &[
                v(12, false, assessment(2, 12)),
                v(8, false, assessment(3, 8)),
            ],
            chrono_tz::Europe::Copenhagen,
        );
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
                custodian_sor: None,
                deceased: false,
                deceased_on: None,
                active,
            })
        };
        let h = resolve_history(
            &[
                v(8, false, profile(true)),
                v(9, false, grant("2027-02-01")),
                v(10, false, profile(false)),
            ],
            chrono_tz::Europe::Copenhagen,
        );
        assert!(h.grants.is_empty());
        assert_eq!(h.profile.map(|p| p.active), Some(false));
    }

    #[test]
    fn the_owned_resolution_is_the_borrowed_one() {
        use crate::domain::{CitizenRecord, DeliveryMode, Visit};
        let visit = |id: &str, start_hour: u32| {
            Record::Visit(Visit {
                source_id: SourceId::parse(id).unwrap(),
                citizen: who(),
                start: at(start_hour),
                end: at(start_hour + 1),
                employee: None,
                mode: DeliveryMode::Home,
                grants: vec![SourceId::parse("g1").unwrap()],
            })
        };
        let profile = |active: bool| {
            Record::Citizen(CitizenRecord {
                citizen: who(),
                patient_id: None,
                custodian_sor: Some("123".into()),
                deceased: false,
                deceased_on: None,
                active,
            })
        };
        let mut versions = vec![
            v(1, false, visit("b", 9)),
            v(1, false, grant("2027-06-30")),
            // A visit moved by a later version, and one of its older versions arriving late.
            v(2, false, visit("a", 8)),
            v(5, false, visit("a", 12)),
            v(3, false, visit("a", 7)),
            // Two versions at the same instant: the one received later counts.
            v(4, false, visit("c", 8)),
            v(4, false, visit("c", 10)),
            // Withdrawn by its latest version, and withdrawn only in an older one.
            v(2, false, visit("d", 6)),
            v(6, true, visit("d", 6)),
            v(2, true, visit("e", 11)),
            v(3, false, visit("e", 11)),
            // The same id from another source is another visit; the same start orders by
            // source and id.
            Versioned {
                source: "r".into(),
                ..v(1, false, visit("b", 9))
            },
            v(1, false, visit("f", 9)),
            v(2, false, assessment(2, 2)),
            v(1, false, profile(true)),
        ];
        let owned =
            |vs: &[Versioned]| resolve_history_owned(vs.to_vec(), chrono_tz::Europe::Copenhagen);
        let h = resolve_history(&versions, chrono_tz::Europe::Copenhagen);
        assert_eq!(owned(&versions), h);
        let ids: Vec<(&str, u32)> = h
            .visits
            .iter()
            .map(|v| (v.source_id.as_str(), chrono::Timelike::hour(&v.start)))
            .collect();
        assert_eq!(
            ids,
            [
                ("b", 9),
                ("b", 9),
                ("f", 9),
                ("c", 10),
                ("e", 11),
                ("a", 12)
            ]
        );
        // Only visits, a visit first, and an inactive citizen.
        let visits: Vec<Versioned> = versions
            .iter()
            .filter(|v| matches!(v.record, Record::Visit(_)))
            .cloned()
            .collect();
        assert_eq!(
            owned(&visits),
            resolve_history(&visits, chrono_tz::Europe::Copenhagen)
        );
        versions.insert(0, v(1, false, visit("g", 1)));
        assert_eq!(
            owned(&versions),
            resolve_history(&versions, chrono_tz::Europe::Copenhagen)
        );
        versions.push(v(7, false, profile(false)));
        let inactive = owned(&versions);
        assert_eq!(
            inactive,
            resolve_history(&versions, chrono_tz::Europe::Copenhagen)
        );
        assert!(inactive.visits.is_empty());
        assert_eq!(
            owned(&[]),
            resolve_history(&[], chrono_tz::Europe::Copenhagen)
        );
    }
}

#[cfg(test)]
mod termination_tests {
    use super::*;
    use chrono::TimeZone;

    fn who() -> Pseudonym {
        Pseudonym::parse(&"ef".repeat(32)).unwrap()
    }

    fn report(day: u32, hour: u32, deceased: bool, on: Option<&str>) -> Versioned {
        Versioned {
            source: "klgateway".into(),
            version_at: Utc.with_ymd_and_hms(2027, 1, day, hour, 0, 0).unwrap(),
            withdrawn: false,
            record: Record::Citizen(CitizenRecord {
                citizen: who(),
                patient_id: Some(SourceId::parse("patient-1").unwrap()),
                custodian_sor: None,
                deceased,
                deceased_on: on.map(|d| d.parse().unwrap()),
                active: true,
            }),
        }
    }

    fn tz() -> chrono_tz::Tz {
        chrono_tz::Europe::Copenhagen
    }

    #[test]
    fn the_first_report_of_a_death_gives_the_day() {
        // Reported again on the 22nd, and the report of the 20th arriving late: the 20th counts.
        let h = resolve_history(
            &[report(22, 12, true, None), report(20, 12, true, None)],
            tz(),
        );
        assert_eq!(h.terminations.len(), 1);
        assert_eq!(h.terminations[0].on.to_string(), "2027-01-20");
        assert_eq!(h.terminations[0].reason, TerminationReason::Death);
        assert_eq!(h.terminations[0].source_id.as_str(), "patient-1/death");
        // 23:30 UTC is the next day in Copenhagen.
        let h = resolve_history(&[report(20, 23, true, None)], tz());
        assert_eq!(h.terminations[0].on.to_string(), "2027-01-21");
    }

    #[test]
    fn a_date_of_death_from_the_sender_wins_over_the_report_day() {
        let h = resolve_history(
            &[
                report(22, 12, true, Some("2027-01-18")),
                report(10, 12, false, None),
            ],
            tz(),
        );
        assert_eq!(h.terminations[0].on.to_string(), "2027-01-18");
    }

    #[test]
    fn a_later_report_saying_alive_undoes_a_death_reported_in_error() {
        let h = resolve_history(
            &[report(20, 12, true, None), report(21, 9, false, None)],
            tz(),
        );
        assert!(h.terminations.is_empty());
        // Reported deceased again later: the day of the new first report counts.
        let h = resolve_history(
            &[
                report(20, 12, true, None),
                report(21, 9, false, None),
                report(25, 9, true, None),
            ],
            tz(),
        );
        assert_eq!(h.terminations[0].on.to_string(), "2027-01-25");
    }

    #[test]
    fn death_events_stored_by_the_old_reader_are_left_to_the_citizen_record() {
        let old = Versioned {
            source: "klgateway".into(),
            version_at: Utc.with_ymd_and_hms(2027, 1, 20, 12, 0, 0).unwrap(),
            withdrawn: false,
            record: Record::Termination(Termination {
                source_id: SourceId::parse("patient-1/death").unwrap(),
                citizen: who(),
                on: chrono::NaiveDate::from_ymd_opt(2027, 1, 20).unwrap(),
                reason: TerminationReason::Death,
            }),
        };
        let h = resolve_history(
            &[old, report(20, 12, true, None), report(21, 9, false, None)],
            tz(),
        );
        assert!(h.terminations.is_empty());
    }
}
