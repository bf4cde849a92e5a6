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
        f.pad(&self.0)
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
    /// A recorded course starts the day after: a course never runs into a recorded one.
    BeforeRecordedCourse,
}

impl EndReason {
    /// The name shown and stored: `planned`, `death`, `moved_out`, `nursing_home`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Planned => "planned",
            EndReason::Terminated(r) => r.as_str(),
            EndReason::BeforeRecordedCourse => "before_recorded_course",
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
    /// The rule that decided its kind, for people.
    #[serde(default)]
    pub rule: String,
    /// The ledger revision it stands for (1: as first decided).
    #[serde(default)]
    pub revision: u32,
}

use super::history::{CitizenHistory, Evidence};
use super::income::Finding;
use crate::domain::{Assessment, Grant, SourceId, Termination};
use crate::mapping::{CourseHint, InterventionMapping, Law, Mappings, NeedBasis, TariffTable};
use chrono::{DateTime, Datelike, Days, Utc};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// The tariff table a decision read: track, year and a content hash of the table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableRef {
    /// The track.
    pub track: Track,
    /// The tariff year.
    pub year: i32,
    /// sha256 of the table's content (see [`TariffTable::content_hash`]).
    pub hash: String,
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.track, self.year)
    }
}

/// A course's decision, made once on its first day: kind, need score and group, the table
/// and the locked tariff, the planned end, the rule that fired and the evidence it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The course.
    pub course_id: CourseId,
    /// The citizen.
    pub citizen: Pseudonym,
    /// The track.
    pub track: Track,
    /// First paid day.
    pub start: NaiveDate,
    /// The kind.
    pub kind: CourseKind,
    /// The need score on the start day.
    pub need_score: u32,
    /// The need group; `None` for an individual course.
    pub group: Option<u8>,
    /// The tariff table it used.
    pub table: TableRef,
    /// The locked daily tariff, or the hourly rate of an individual course.
    pub tariff: DailyTariff,
    /// Last day by the course length.
    pub planned_end: NaiveDate,
    /// The rule that fired, for people: `development: active §83a grant g1`.
    pub rule: String,
    /// The record versions the decision read, sorted.
    pub evidence: Vec<Evidence>,
}

/// Why a row of the ledger was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// The course started and was decided.
    Decided,
    /// Its end moved: a termination event (earlier) or one withdrawn (back).
    EndMoved {
        /// The end before.
        from: NaiveDate,
        /// The end now.
        to: NaiveDate,
        /// Why, for people.
        why: String,
    },
    /// Its evidence changed (withdrawn, or a version dated on or before the start day arrived
    /// late): decided afresh for the same start day.
    DecidedAfresh {
        /// What changed, for people.
        why: String,
    },
    /// A person re-priced it with a new table (`reprice`).
    Repriced {
        /// The table, `track/year`.
        table: String,
        /// The person's reason.
        why: String,
    },
    /// The course no longer exists (no grant active on its start day any more).
    Cancelled {
        /// Why, for people.
        why: String,
    },
}

impl Change {
    /// The name stored in the ledger's `change` column.
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::Decided => "decided",
            Change::EndMoved { .. } => "end_moved",
            Change::DecidedAfresh { .. } => "decided_afresh",
            Change::Repriced { .. } => "repriced",
            Change::Cancelled { .. } => "cancelled",
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Decided => f.write_str("decided"),
            Change::EndMoved { from, to, why } => write!(f, "end moved from {from} to {to}: {why}"),
            Change::DecidedAfresh { why } => write!(f, "decided afresh: {why}"),
            Change::Repriced { table, why } => write!(f, "repriced with table {table}: {why}"),
            Change::Cancelled { why } => write!(f, "cancelled: {why}"),
        }
    }
}

/// One row of the course ledger: a course's decision as of a revision. Rows are appended,
/// never changed; a course's latest revision is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The course.
    pub course_id: CourseId,
    /// The citizen.
    pub citizen: Pseudonym,
    /// The track.
    pub track: Track,
    /// First paid day.
    pub start: NaiveDate,
    /// 1 for the first decision, one more for each supersession.
    pub revision: u32,
    /// Why this row was written.
    pub change: Change,
    /// The decision in force from this revision; `None` when the course was cancelled.
    pub decision: Option<Decision>,
    /// Last paid day (`None` when cancelled).
    pub end: Option<NaiveDate>,
    /// Why it ends on `end`.
    pub end_reason: Option<EndReason>,
}

impl LedgerEntry {
    /// The course this row stands for, if it was not cancelled.
    pub fn course(&self) -> Option<Course> {
        let d = self.decision.as_ref()?;
        Some(Course {
            id: d.course_id.clone(),
            citizen: d.citizen.clone(),
            track: d.track,
            kind: d.kind,
            need_score: d.need_score,
            group: d.group,
            tariff_year: d.table.year,
            tariff: d.tariff,
            start: d.start,
            planned_end: d.planned_end,
            end: self.end?,
            end_reason: self.end_reason?,
            rule: d.rule.clone(),
            revision: self.revision,
        })
    }
}

/// The courses of one citizen in both tracks, the ledger rows to append, and what was found
/// wrong on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CourseOutcome {
    /// Courses, by track and start.
    pub courses: Vec<Course>,
    /// Data-quality findings (unknown codes, no tariff table in force, ...).
    pub findings: Vec<Finding>,
    /// New ledger rows: decisions made now and supersessions of recorded ones.
    pub changes: Vec<LedgerEntry>,
    /// Recorded decisions whose tariff table has changed since (track, year): kept as
    /// recorded, counted for the `TariffTableChanged` finding.
    pub stale_tables: Vec<(Track, i32)>,
}

/// A grant in a track, with its mapping and the last day it counts (its end, or the first
/// termination event on or after its start, whichever comes first).
#[derive(Debug, Clone)]
struct TrackGrant<'a> {
    grant: &'a Grant,
    mapping: &'a InterventionMapping,
    last_day: Option<NaiveDate>,
    /// The version read, for the evidence.
    evidence: Evidence,
    /// When the grant was first reported.
    first_reported_at: Option<DateTime<Utc>>,
}

impl TrackGrant<'_> {
    fn active_on(&self, day: NaiveDate) -> bool {
        self.grant.status.counts()
            && self.grant.start <= day
            && self.grant.end.is_none_or(|end| day <= end)
            && self.last_day.is_none_or(|last| day <= last)
    }

    fn weekly_minutes(&self) -> u32 {
        self.grant
            .weekly_minutes
            .unwrap_or(self.mapping.norm_minutes_per_week)
    }
}

/// Computes a citizen's courses in both tracks, for courses starting on or before `horizon`,
/// deciding every course afresh (no recorded decisions). See [`assess`].
pub fn compute_courses(
    history: &CitizenHistory,
    mappings: &Mappings,
    horizon: NaiveDate,
) -> CourseOutcome {
    assess(history, mappings, horizon, &[])
}

/// Computes a citizen's courses in both tracks, for courses starting on or before `horizon`,
/// reading the recorded decisions (`recorded`: the latest ledger row of each of the citizen's
/// courses) and deciding only courses that have none.
///
/// The rules are those of `progression-model.md`: a course starts on the first day with an
/// active tariff-bearing grant and no running course; its kind, need group and tariff are
/// decided once, at the start, from the versions in force that day; it runs its length
/// (development, stabilisation) or to the end of the month (individual) whatever happens to
/// grants and levels, and ends early only on a termination event, which is the last paid day.
/// The day after, a successor course starts if a grant is still active. A course never runs
/// into a recorded course after it: it ends the day before.
///
/// A recorded decision is kept as recorded, whatever the tariff files say now; it changes only
/// by a new ledger row in `changes`: its end moved by a termination (or its withdrawal), its
/// evidence changed (decided afresh for the same start day), or it is cancelled when no grant
/// is active on its start day any more.
pub fn assess(
    history: &CitizenHistory,
    mappings: &Mappings,
    horizon: NaiveDate,
    recorded: &[LedgerEntry],
) -> CourseOutcome {
    let mut out = CourseOutcome::default();
    let Some(citizen) = history.citizen.clone() else {
        return out;
    };
    for grant in &history.grants {
        if grant.status.counts() && mappings.interventions.get(&grant.code).is_none() {
            out.findings.push(Finding::UnknownCode {
                citizen: citizen.clone(),
                grant: grant.source_id.clone(),
                code: grant.code.clone(),
            });
        }
    }
    for track in Track::ALL {
        let grants = track_grants(history, mappings, track);
        let mine: Vec<&LedgerEntry> = recorded
            .iter()
            .filter(|r| r.track == track && r.citizen == citizen)
            .collect();
        if grants.is_empty() && mine.iter().all(|r| r.decision.is_none()) {
            continue;
        }
        assess_track(
            history, mappings, &citizen, track, &grants, horizon, &mine, &mut out,
        );
    }
    out
}

/// Computes every citizen's courses up to `horizon` afresh, in the order of `histories`, and
/// gathers their findings.
pub fn compute_all(
    histories: &[CitizenHistory],
    mappings: &Mappings,
    horizon: NaiveDate,
) -> (Vec<Vec<Course>>, Vec<Finding>) {
    let mut all = Vec::with_capacity(histories.len());
    let mut findings = Vec::new();
    for h in histories {
        let out = compute_courses(h, mappings, horizon);
        findings.extend(out.findings);
        all.push(out.courses);
    }
    (all, findings)
}

/// The tariff-bearing grants of a track, each cut at the first termination on or after its
/// start (a citizen who dies, moves out or into a nursing home has no grant running past it).
fn track_grants<'a>(
    history: &'a CitizenHistory,
    mappings: &'a Mappings,
    track: Track,
) -> Vec<TrackGrant<'a>> {
    let death = first_death(&history.terminations);
    history
        .grants
        .iter()
        .filter(|g| g.status.counts())
        .filter_map(|grant| {
            let mapping = mappings.interventions.get(&grant.code)?;
            if mapping.track != Some(track) {
                return None;
            }
            if death.is_some_and(|d| grant.start > d) {
                return None;
            }
            let cut = history
                .terminations
                .iter()
                .map(|t| t.on)
                .filter(|&on| on >= grant.start)
                .min();
            let last_day = match (grant.end, cut) {
                (Some(end), Some(cut)) => Some(end.min(cut)),
                (end, cut) => end.or(cut),
            };
            let current = history
                .grant_versions
                .iter()
                .rev()
                .find(|v| v.grant.source_id == grant.source_id);
            Some(TrackGrant {
                grant,
                mapping,
                last_day,
                evidence: current.map_or_else(
                    || Evidence {
                        kind: super::RecordKind::Grant,
                        source: String::new(),
                        id: grant.source_id.to_string(),
                        version_at: DateTime::<Utc>::MIN_UTC,
                        version_on: None,
                        hash: String::new(),
                    },
                    |v| v.evidence.clone(),
                ),
                first_reported_at: current.map(|v| v.first_reported_at),
            })
        })
        .collect()
}

/// The grants active on `day` as they were known on `day`: for each grant active that day,
/// its latest version dated on or before the day, else (a back-dated grant) its first version.
fn known_grants<'a>(
    history: &'a CitizenHistory,
    mappings: &'a Mappings,
    track: Track,
    grants: &[TrackGrant<'a>],
    day: NaiveDate,
) -> Vec<TrackGrant<'a>> {
    let mut out = Vec::new();
    for g in grants.iter().filter(|g| g.active_on(day)) {
        let versions: Vec<&super::history::GrantVersion> = history
            .grant_versions
            .iter()
            .filter(|v| v.grant.source_id == g.grant.source_id)
            .collect();
        let known = versions
            .iter()
            .rev()
            .find(|v| v.version_on <= day)
            .or(versions.first());
        let Some(known) = known else {
            out.push(g.clone());
            continue;
        };
        let mapping = mappings
            .interventions
            .get(&known.grant.code)
            .filter(|m| m.track == Some(track));
        match mapping {
            Some(mapping) if known.grant.is_active_on(day) => out.push(TrackGrant {
                grant: &known.grant,
                mapping,
                last_day: g.last_day,
                evidence: known.evidence.clone(),
                first_reported_at: Some(known.first_reported_at),
            }),
            // As known on the day, the grant was not active then (a later version extended it
            // back over the day): the decision does not read it.
            _ => {}
        }
    }
    if out.is_empty() {
        // Only later versions make any grant active that day: read those.
        return grants
            .iter()
            .filter(|g| g.active_on(day))
            .cloned()
            .collect();
    }
    out
}

/// Whether a recorded decision's evidence no longer stands: a version it read is withdrawn or
/// no longer in force, or a version dated on or before the start day that it did not read is
/// known now (it arrived late). A version dated after the start day (a back-dated grant first
/// reported after the decision) never changes a recorded decision.
fn evidence_changed(recorded: &[Evidence], now: &[Evidence], start: NaiveDate) -> bool {
    let recorded_set: BTreeSet<&Evidence> = recorded.iter().collect();
    let now_set: BTreeSet<&Evidence> = now.iter().collect();
    recorded_set.difference(&now_set).next().is_some()
        || now_set
            .difference(&recorded_set)
            .any(|e| e.version_on.is_none_or(|on| on <= start))
}

fn first_death(terminations: &[Termination]) -> Option<NaiveDate> {
    terminations
        .iter()
        .filter(|t| t.reason == TerminationReason::Death)
        .map(|t| t.on)
        .min()
}

/// The first day on or after `from` on which a grant is active, if any.
fn next_active_day(grants: &[TrackGrant<'_>], from: NaiveDate) -> Option<NaiveDate> {
    grants
        .iter()
        .filter(|g| {
            g.grant.status.counts()
                && g.last_day.is_none_or(|last| last >= from)
                && g.grant.end.is_none_or(|end| end >= from)
        })
        .map(|g| g.grant.start.max(from))
        .filter(|&day| grants.iter().any(|g| g.active_on(day)))
        .min()
}

#[allow(clippy::too_many_arguments)]
fn assess_track(
    history: &CitizenHistory,
    mappings: &Mappings,
    citizen: &Pseudonym,
    track: Track,
    grants: &[TrackGrant<'_>],
    horizon: NaiveDate,
    recorded: &[&LedgerEntry],
    out: &mut CourseOutcome,
) {
    let revisions: HashMap<&CourseId, u32> = recorded
        .iter()
        .map(|r| (&r.course_id, r.revision))
        .collect();
    let mut live: Vec<&LedgerEntry> = recorded
        .iter()
        .copied()
        .filter(|r| r.decision.is_some())
        .collect();
    live.sort_by_key(|r| r.start);
    let mut pending: VecDeque<&LedgerEntry> = live.into();
    let cancel = |r: &LedgerEntry, why: String, out: &mut CourseOutcome| {
        out.changes.push(LedgerEntry {
            course_id: r.course_id.clone(),
            citizen: r.citizen.clone(),
            track: r.track,
            start: r.start,
            revision: r.revision + 1,
            change: Change::Cancelled { why },
            decision: None,
            end: None,
            end_reason: None,
        });
    };
    let mut from = NaiveDate::MIN;
    let mut skip_fresh_before = NaiveDate::MIN;
    loop {
        while let Some(r) = pending.front().copied().filter(|r| r.start < from) {
            pending.pop_front();
            cancel(
                r,
                format!(
                    "its start day {} now lies inside the course before it",
                    r.start
                ),
                out,
            );
        }
        let fresh_start = next_active_day(grants, from.max(skip_fresh_before));
        let next_recorded = pending.front().copied();
        let start = match (fresh_start, next_recorded) {
            (Some(f), Some(r)) => f.min(r.start),
            (Some(f), None) => f,
            (None, Some(r)) => r.start,
            (None, None) => break,
        };
        if start > horizon {
            break;
        }
        let recorded_here = next_recorded.filter(|r| r.start == start);
        if recorded_here.is_some() {
            pending.pop_front();
        }
        let cap = pending.front().map(|r| r.start);
        let table = mappings.tariffs.in_force(track, start);
        let active_today = grants.iter().any(|g| g.active_on(start));
        let fresh = match table {
            Some(table) if active_today => Some(decide(
                history, mappings, citizen, track, table, grants, start,
            )),
            _ => None,
        };
        let id = course_id(citizen, track, start);
        let (decision, change, before) = match recorded_here {
            Some(r) => {
                let rd = r.decision.as_ref().expect("live rows have a decision");
                if !active_today {
                    cancel(
                        r,
                        "no tariff-bearing grant is active on its start day any more".into(),
                        out,
                    );
                    from = start + Days::new(1);
                    continue;
                }
                match fresh {
                    Some(Ok((d, warning)))
                        if evidence_changed(&rd.evidence, &d.evidence, start) =>
                    {
                        out.findings.extend(warning);
                        let why = evidence_change(&rd.evidence, &d.evidence, start);
                        (
                            d,
                            Some(Change::DecidedAfresh { why }),
                            r.end.zip(r.end_reason),
                        )
                    }
                    _ => {
                        if table.is_some_and(|t| {
                            t.year == rd.table.year
                                && t.track == rd.table.track
                                && t.content_hash() != rd.table.hash
                        }) || mappings
                            .tariffs
                            .table(rd.table.track, rd.table.year)
                            .is_some_and(|t| t.content_hash() != rd.table.hash)
                        {
                            out.stale_tables.push((rd.table.track, rd.table.year));
                        }
                        (rd.clone(), None, r.end.zip(r.end_reason))
                    }
                }
            }
            None => {
                if table.is_none() {
                    out.findings.push(Finding::NoTariffTable {
                        citizen: citizen.clone(),
                        track,
                        day: start,
                    });
                    // No table this year: try again from 1 January next year.
                    match NaiveDate::from_ymd_opt(start.year() + 1, 1, 1) {
                        Some(next) => {
                            skip_fresh_before = next;
                            continue;
                        }
                        None => break,
                    }
                }
                match fresh {
                    Some(Ok((d, warning))) => {
                        out.findings.extend(warning);
                        (d, Some(Change::Decided), None)
                    }
                    Some(Err(finding)) => {
                        out.findings.push(finding);
                        skip_fresh_before = start + Days::new(1);
                        continue;
                    }
                    None => {
                        skip_fresh_before = start + Days::new(1);
                        continue;
                    }
                }
            }
        };
        let (end, end_reason) = end_of(history, &decision, cap);
        let mut change = change;
        if change.is_none()
            && let Some((was, was_reason)) = before
            && (was, was_reason) != (end, end_reason)
        {
            let why = match end_reason {
                EndReason::Terminated(r) => format!("termination event: {} on {end}", r.as_str()),
                EndReason::Planned if was_reason != EndReason::Planned => {
                    "the termination event was withdrawn".to_owned()
                }
                EndReason::Planned => "the planned end".to_owned(),
                EndReason::BeforeRecordedCourse => {
                    "a recorded course starts the day after".to_owned()
                }
            };
            change = Some(Change::EndMoved {
                from: was,
                to: end,
                why,
            });
        }
        let revision = match recorded_here {
            Some(r) if change.is_some() => r.revision + 1,
            Some(r) => r.revision,
            None => revisions.get(&id).map_or(1, |r| r + 1),
        };
        let entry = LedgerEntry {
            course_id: decision.course_id.clone(),
            citizen: citizen.clone(),
            track,
            start,
            revision,
            change: change
                .clone()
                .or_else(|| recorded_here.map(|r| r.change.clone()))
                .unwrap_or(Change::Decided),
            decision: Some(decision),
            end: Some(end),
            end_reason: Some(end_reason),
        };
        out.courses
            .push(entry.course().expect("a live entry is a course"));
        if change.is_some() {
            out.changes.push(entry);
        }
        from = end + Days::new(1);
        skip_fresh_before = from;
    }
    // Recorded courses never reached (beyond the horizon) stay as they are.
}

/// The last paid day of a decided course: its planned end, or the first termination event
/// within it; never into a recorded course that starts later (`cap`).
fn end_of(
    history: &CitizenHistory,
    d: &Decision,
    cap: Option<NaiveDate>,
) -> (NaiveDate, EndReason) {
    let termination = history
        .terminations
        .iter()
        .filter(|t| d.start <= t.on && t.on <= d.planned_end)
        .min_by_key(|t| t.on);
    let (end, reason) = match termination {
        Some(t) => (t.on, EndReason::Terminated(t.reason)),
        None => (d.planned_end, EndReason::Planned),
    };
    match cap {
        Some(next) if end >= next && next > d.start => {
            (next - Days::new(1), EndReason::BeforeRecordedCourse)
        }
        _ => (end, reason),
    }
}

/// What changed between a recorded decision's evidence and today's, for people.
fn evidence_change(old: &[Evidence], new: &[Evidence], start: NaiveDate) -> String {
    let old_set: BTreeSet<&Evidence> = old.iter().collect();
    let new_set: BTreeSet<&Evidence> = new.iter().collect();
    let describe = |e: &Evidence| {
        format!(
            "{} {} version {}",
            e.kind.as_str(),
            e.id,
            e.version_at.format("%Y-%m-%dT%H:%M:%SZ")
        )
    };
    let added: Vec<String> = new_set
        .difference(&old_set)
        .filter(|e| e.version_on.is_none_or(|on| on <= start))
        .map(|e| describe(e))
        .collect();
    let gone: Vec<String> = old_set.difference(&new_set).map(|e| describe(e)).collect();
    let mut parts = Vec::new();
    if !added.is_empty() {
        parts.push(format!(
            "dated on or before the start day and read now: {}",
            added.join(", ")
        ));
    }
    if !gone.is_empty() {
        parts.push(format!(
            "withdrawn or no longer in force: {}",
            gone.join(", ")
        ));
    }
    parts.join("; ")
}

/// Decides kind, group and tariff of a course starting on `start`, from what was known that
/// day.
fn decide(
    history: &CitizenHistory,
    mappings: &Mappings,
    citizen: &Pseudonym,
    track: Track,
    table: &TariffTable,
    grants: &[TrackGrant<'_>],
    start: NaiveDate,
) -> Result<(Decision, Option<Finding>), Finding> {
    let active = known_grants(history, mappings, track, grants, start);
    // A back-dated grant: its first report may carry the first levels.
    let reported_with = active
        .iter()
        .filter(|g| g.grant.start == start)
        .filter_map(|g| g.first_reported_at)
        .max();
    let levels = levels_on(&history.assessments, start, reported_with);
    let score = match table.basis {
        NeedBasis::FunctionalLevel => levels
            .values()
            .filter(|a| a.in_focus)
            .filter_map(|a| a.level.and_then(|l| l.score()))
            .sum(),
        NeedBasis::WeeklyMinutes => active.iter().map(|g| g.weekly_minutes()).sum(),
        NeedBasis::InterventionWeight => active.iter().map(|g| g.mapping.nursing_weight).sum(),
    };
    let mut evidence: BTreeSet<Evidence> = active.iter().map(|g| g.evidence.clone()).collect();
    let reads_levels = table.basis == NeedBasis::FunctionalLevel || track == Track::Care;
    if reads_levels {
        evidence.extend(levels.values().map(|a| history.assessment_evidence(a)));
    }
    let goals = if track == Track::Care {
        goals_on(history, start)
    } else {
        Vec::new()
    };
    evidence.extend(goals.iter().map(|&i| history.goal_evidence(i)));
    let individual_hint = active
        .iter()
        .find(|g| g.mapping.course_hint == CourseHint::Individual);
    let individual_rule = table
        .individual
        .filter(|rule| score >= rule.threshold || individual_hint.is_some());
    let warning = (individual_hint.is_some() && table.individual.is_none()).then(|| {
        Finding::NoIndividualRule {
            citizen: citizen.clone(),
            track,
            day: start,
        }
    });
    let development = || -> Option<String> {
        if let Some(g) = active.iter().find(|g| g.mapping.law == Law::Sel83a) {
            return Some(format!(
                "development: active §83a grant {}",
                g.grant.source_id
            ));
        }
        if let Some(g) = active
            .iter()
            .find(|g| g.mapping.course_hint == CourseHint::Development)
        {
            return Some(format!(
                "development: grant {} ({}) is mapped development",
                g.grant.source_id, g.grant.code
            ));
        }
        if track == Track::Care {
            return goal_below_level(history, &goals, &levels).map(|(goal, target, level)| {
                format!(
                    "development: goal {} expects condition {} to reach level {target}, below its level {level}",
                    goal.source_id, goal.condition_id
                )
            });
        }
        None
    };
    let (kind, group, tariff, rule) = if let Some(ind) = individual_rule {
        let rule = match individual_hint {
            Some(g) => format!(
                "individual: grant {} ({}) is mapped individual",
                g.grant.source_id, g.grant.code
            ),
            None => format!(
                "individual: need score {score} is at or above the threshold {}",
                ind.threshold
            ),
        };
        (
            CourseKind::Individual,
            None,
            DailyTariff::Individual {
                hourly_rate: ind.hourly_rate,
            },
            rule,
        )
    } else {
        let (kind, rule) = match development() {
            Some(rule) => (CourseKind::Development, rule),
            None => (
                CourseKind::Stabilisation,
                "stabilisation: no development rule held".to_owned(),
            ),
        };
        let group = table.group_for(score).ok_or_else(|| Finding::NoNeedGroup {
            citizen: citizen.clone(),
            track,
            day: start,
            score,
        })?;
        let amount = group
            .daily_tariff(kind)
            .expect("development and stabilisation have a group tariff");
        (
            kind,
            Some(group.group),
            DailyTariff::Locked { amount },
            format!("{rule}; need score {score}, group {}", group.group),
        )
    };
    let planned_end = planned_end(table, kind, start);
    let decision = Decision {
        course_id: course_id(citizen, track, start),
        citizen: citizen.clone(),
        track,
        start,
        kind,
        need_score: score,
        group,
        table: TableRef {
            track: table.track,
            year: table.year,
            hash: table.content_hash(),
        },
        tariff,
        planned_end,
        rule,
        evidence: evidence.into_iter().collect(),
    };
    Ok((decision, warning))
}

/// The last day of a course of `kind` starting on `start` by `table`'s lengths.
pub fn planned_end(table: &TariffTable, kind: CourseKind, start: NaiveDate) -> NaiveDate {
    match kind {
        CourseKind::Development => start + Days::new(u64::from(table.lengths.development_days) - 1),
        CourseKind::Stabilisation => {
            start + Days::new(u64::from(table.lengths.stabilisation_days) - 1)
        }
        CourseKind::Individual => last_day_of_month(start),
    }
}

/// Re-prices a recorded decision with `table` (a person's `reprice`): the same kind and need
/// score, the group and tariff of the new table. `None` when the score falls in no group.
pub fn reprice(decision: &Decision, table: &TariffTable) -> Option<Decision> {
    let mut d = decision.clone();
    d.table = TableRef {
        track: table.track,
        year: table.year,
        hash: table.content_hash(),
    };
    match decision.kind {
        CourseKind::Individual => {
            d.tariff = DailyTariff::Individual {
                hourly_rate: table.individual?.hourly_rate,
            };
        }
        kind => {
            let group = table.group_for(decision.need_score)?;
            d.group = Some(group.group);
            d.tariff = DailyTariff::Locked {
                amount: group.daily_tariff(kind)?,
            };
        }
    }
    Some(d)
}

/// The latest assessment of each condition assessed on or before `day`. A condition with no
/// level assessed on or before `day` counts with its first level reported no later than
/// `reported_with` (the first report of the grant that starts the course: a back-dated grant
/// arrives with the levels it was visitated on).
fn levels_on(
    assessments: &[Assessment],
    day: NaiveDate,
    reported_with: Option<DateTime<Utc>>,
) -> BTreeMap<&SourceId, &Assessment> {
    let mut latest: BTreeMap<&SourceId, &Assessment> = BTreeMap::new();
    for a in assessments.iter().filter(|a| a.assessed_on <= day) {
        match latest.get(&a.condition_id) {
            Some(prev) if prev.assessed_at > a.assessed_at => {}
            _ => {
                latest.insert(&a.condition_id, a);
            }
        }
    }
    if let Some(limit) = reported_with {
        for a in assessments.iter().filter(|a| a.assessed_at <= limit) {
            match latest.get(&a.condition_id) {
                Some(prev) if prev.assessed_on <= day || prev.assessed_at <= a.assessed_at => {}
                _ => {
                    latest.insert(&a.condition_id, a);
                }
            }
        }
    }
    latest
}

/// The goal versions in force on `day` (indexes into `history.goals`): of each goal, the
/// latest version reported on or before the day.
fn goals_on(history: &CitizenHistory, day: NaiveDate) -> Vec<usize> {
    let mut latest: BTreeMap<&SourceId, usize> = BTreeMap::new();
    for (i, g) in history.goals.iter().enumerate() {
        if g.set_on <= day {
            // `goals` is sorted by `set_on`, then version instant: a later one replaces.
            latest.insert(&g.source_id, i);
        }
    }
    latest.into_values().collect()
}

/// An active goal in force that expects a condition to reach a level below its current one
/// (the citizen is expected to regain abilities): the goal, its target and the level.
fn goal_below_level<'h>(
    history: &'h CitizenHistory,
    goals: &[usize],
    levels: &BTreeMap<&SourceId, &Assessment>,
) -> Option<(&'h crate::domain::Goal, u32, u32)> {
    goals
        .iter()
        .map(|&i| &history.goals[i])
        .filter(|g| g.active)
        .find_map(|g| {
            let current = levels
                .get(&g.condition_id)
                .and_then(|a| a.level)
                .and_then(|l| l.score());
            let target = g.target_level.and_then(|l| l.score());
            match (target, current) {
                (Some(t), Some(c)) if t < c => Some((g, t, c)),
                _ => None,
            }
        })
}

/// A citizen's need score in a track on `day` by a table's basis, from what was known that
/// day: the latest assessment of each condition assessed on or before it (functional levels
/// in focus), or the grants active that day (weekly minutes, intervention weight). The sum a
/// decision on that day starts from.
pub fn need_score_on(
    history: &CitizenHistory,
    mappings: &Mappings,
    track: Track,
    basis: NeedBasis,
    day: NaiveDate,
) -> u32 {
    match basis {
        NeedBasis::FunctionalLevel => levels_on(&history.assessments, day, None)
            .values()
            .filter(|a| a.in_focus)
            .filter_map(|a| a.level.and_then(|l| l.score()))
            .sum(),
        NeedBasis::WeeklyMinutes | NeedBasis::InterventionWeight => {
            let grants = track_grants(history, mappings, track);
            let active = known_grants(history, mappings, track, &grants, day);
            if basis == NeedBasis::WeeklyMinutes {
                active.iter().map(|g| g.weekly_minutes()).sum()
            } else {
                active.iter().map(|g| g.mapping.nursing_weight).sum()
            }
        }
    }
}

/// Whether the citizen has a grant in the track that counts and is active on `day` (as the
/// course rules see grants: within its start and end, and before any termination).
pub fn has_active_grant(
    history: &CitizenHistory,
    mappings: &Mappings,
    track: Track,
    day: NaiveDate,
) -> bool {
    track_grants(history, mappings, track)
        .iter()
        .any(|g| g.active_on(day))
}

/// The visitated minutes per week of the citizen's active grants in `track` on `day` (the
/// grant's own minutes where the source gives them, such as Nexus; else the intervention's
/// norm minutes).
pub fn visitated_minutes_on(
    history: &CitizenHistory,
    mappings: &Mappings,
    track: Track,
    day: NaiveDate,
) -> u32 {
    track_grants(history, mappings, track)
        .iter()
        .filter(|g| g.active_on(day))
        .map(|g| g.weekly_minutes())
        .sum()
}

fn last_day_of_month(day: NaiveDate) -> NaiveDate {
    let (y, m) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).expect("first of a month exists") - Days::new(1)
}

/// The deterministic id of a course: citizen, track and start.
pub fn course_id(citizen: &Pseudonym, track: Track, start: NaiveDate) -> CourseId {
    let mut h = Sha256::new();
    h.update(citizen.as_str().as_bytes());
    h.update(b"|");
    h.update(track.as_str().as_bytes());
    h.update(b"|");
    h.update(start.to_string().as_bytes());
    CourseId(hex::encode(&h.finalize()[..16]))
}

impl Course {
    /// The tariff paid for `day`, or zero outside the course. A locked tariff is the same every
    /// day; an individual one is recomputed from the grants active that day.
    pub fn daily_amount(
        &self,
        day: NaiveDate,
        history: &CitizenHistory,
        mappings: &Mappings,
    ) -> Decimal {
        if day < self.start || day > self.end {
            return Decimal::ZERO;
        }
        match self.tariff {
            DailyTariff::Locked { amount } => amount,
            DailyTariff::Individual { hourly_rate } => {
                let minutes: u32 = track_grants(history, mappings, self.track)
                    .iter()
                    .filter(|g| g.active_on(day))
                    .map(|g| g.weekly_minutes())
                    .sum();
                // weekly minutes / 60 * hourly rate / 7, with a single division.
                Decimal::from(minutes) * hourly_rate / Decimal::from(60 * 7)
            }
        }
    }

    /// Number of paid days.
    pub fn days(&self) -> i64 {
        (self.end - self.start).num_days() + 1
    }
}
