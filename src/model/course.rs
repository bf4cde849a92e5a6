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

use super::history::CitizenHistory;
use super::income::Finding;
use crate::domain::{Assessment, Grant, SourceId, Termination};
use crate::mapping::{CourseHint, InterventionMapping, Law, Mappings, NeedBasis, TariffTable};
use chrono::{Datelike, Days};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The courses of one citizen in both tracks, and what was found wrong on the way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CourseOutcome {
    /// Courses, by track and start.
    pub courses: Vec<Course>,
    /// Data-quality findings (unknown codes, no tariff table in force, ...).
    pub findings: Vec<Finding>,
}

/// A grant in a track, with its mapping and the last day it counts (its end, or the first
/// termination event on or after its start, whichever comes first).
#[derive(Debug, Clone, Copy)]
struct TrackGrant<'a> {
    grant: &'a Grant,
    mapping: &'a InterventionMapping,
    last_day: Option<NaiveDate>,
}

impl TrackGrant<'_> {
    fn active_on(&self, day: NaiveDate) -> bool {
        self.grant.status.counts()
            && self.grant.start <= day
            && self.last_day.is_none_or(|last| day <= last)
    }

    fn weekly_minutes(&self) -> u32 {
        self.grant
            .weekly_minutes
            .unwrap_or(self.mapping.norm_minutes_per_week)
    }
}

/// Computes a citizen's courses in both tracks, for courses starting on or before `horizon`.
///
/// The rules are those of `progression-model.md`: a course starts on the first day with an
/// active tariff-bearing grant and no running course; its kind, need group and tariff are
/// decided once, at the start, from what is known about that day and before; it runs its
/// length (development, stabilisation) or to the end of the month (individual) whatever
/// happens to grants and levels, and ends early only on a termination event, which is the
/// last paid day. The day after, a successor course starts if a grant is still active.
pub fn compute_courses(
    history: &CitizenHistory,
    mappings: &Mappings,
    horizon: NaiveDate,
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
        if grants.is_empty() {
            continue;
        }
        compute_track(
            history, mappings, &citizen, track, &grants, horizon, &mut out,
        );
    }
    out
}

/// Computes every citizen's courses up to `horizon`, in the order of `histories`, and gathers
/// their findings.
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
            Some(TrackGrant {
                grant,
                mapping,
                last_day,
            })
        })
        .collect()
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
        .filter(|g| g.grant.status.counts() && g.last_day.is_none_or(|last| last >= from))
        .map(|g| g.grant.start.max(from))
        .min()
}

fn compute_track(
    history: &CitizenHistory,
    mappings: &Mappings,
    citizen: &Pseudonym,
    track: Track,
    grants: &[TrackGrant<'_>],
    horizon: NaiveDate,
    out: &mut CourseOutcome,
) {
    let mut from = NaiveDate::MIN;
    while let Some(start) = next_active_day(grants, from) {
        if start > horizon {
            break;
        }
        let Some(table) = mappings.tariffs.in_force(track, start) else {
            out.findings.push(Finding::NoTariffTable {
                citizen: citizen.clone(),
                track,
                day: start,
            });
            // No table this year: try again from 1 January next year.
            match NaiveDate::from_ymd_opt(start.year() + 1, 1, 1) {
                Some(next) => {
                    from = next;
                    continue;
                }
                None => break,
            }
        };
        let active: Vec<&TrackGrant<'_>> = grants.iter().filter(|g| g.active_on(start)).collect();
        let course = match start_course(history, citizen, track, table, &active, start) {
            Ok((course, warning)) => {
                out.findings.extend(warning);
                course
            }
            Err(finding) => {
                out.findings.push(finding);
                from = start + Days::new(1);
                continue;
            }
        };
        from = course.end + Days::new(1);
        out.courses.push(course);
    }
}

/// Decides kind, group and tariff of a course starting on `start`, and its end.
fn start_course(
    history: &CitizenHistory,
    citizen: &Pseudonym,
    track: Track,
    table: &TariffTable,
    active: &[&TrackGrant<'_>],
    start: NaiveDate,
) -> Result<(Course, Option<Finding>), Finding> {
    let levels = levels_on(&history.assessments, start);
    let score = match table.basis {
        NeedBasis::FunctionalLevel => levels
            .values()
            .filter(|a| a.in_focus)
            .filter_map(|a| a.level.and_then(|l| l.score()))
            .sum(),
        NeedBasis::WeeklyMinutes => active.iter().map(|g| g.weekly_minutes()).sum(),
        NeedBasis::InterventionWeight => active.iter().map(|g| g.mapping.nursing_weight).sum(),
    };
    let individual_hint = active
        .iter()
        .any(|g| g.mapping.course_hint == CourseHint::Individual);
    let individual_rule = table
        .individual
        .filter(|rule| score >= rule.threshold || individual_hint);
    let warning =
        (individual_hint && table.individual.is_none()).then(|| Finding::NoIndividualRule {
            citizen: citizen.clone(),
            track,
            day: start,
        });
    let development = || {
        active.iter().any(|g| {
            g.mapping.law == Law::Sel83a || g.mapping.course_hint == CourseHint::Development
        }) || (track == Track::Care && goal_below_level(history, &levels, start))
    };
    let (kind, group, tariff) = if let Some(rule) = individual_rule {
        (
            CourseKind::Individual,
            None,
            DailyTariff::Individual {
                hourly_rate: rule.hourly_rate,
            },
        )
    } else {
        let kind = if development() {
            CourseKind::Development
        } else {
            CourseKind::Stabilisation
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
        (kind, Some(group.group), DailyTariff::Locked { amount })
    };
    let planned_end = match kind {
        CourseKind::Development => start + Days::new(u64::from(table.lengths.development_days) - 1),
        CourseKind::Stabilisation => {
            start + Days::new(u64::from(table.lengths.stabilisation_days) - 1)
        }
        CourseKind::Individual => last_day_of_month(start),
    };
    let termination = history
        .terminations
        .iter()
        .filter(|t| start <= t.on && t.on <= planned_end)
        .min_by_key(|t| t.on);
    let (end, end_reason) = match termination {
        Some(t) => (t.on, EndReason::Terminated(t.reason)),
        None => (planned_end, EndReason::Planned),
    };
    let course = Course {
        id: course_id(citizen, track, start),
        citizen: citizen.clone(),
        track,
        kind,
        need_score: score,
        group,
        tariff_year: table.year,
        tariff,
        start,
        planned_end,
        end,
        end_reason,
    };
    Ok((course, warning))
}

/// The latest assessment of each condition assessed on or before `day`.
fn levels_on(assessments: &[Assessment], day: NaiveDate) -> BTreeMap<&SourceId, &Assessment> {
    let mut latest: BTreeMap<&SourceId, &Assessment> = BTreeMap::new();
    for a in assessments.iter().filter(|a| a.assessed_on <= day) {
        match latest.get(&a.condition_id) {
            Some(prev) if prev.assessed_at > a.assessed_at => {}
            _ => {
                latest.insert(&a.condition_id, a);
            }
        }
    }
    latest
}

/// Whether an active goal known on `day` expects a condition to reach a level below its
/// current one (the citizen is expected to regain abilities).
fn goal_below_level(
    history: &CitizenHistory,
    levels: &BTreeMap<&SourceId, &Assessment>,
    day: NaiveDate,
) -> bool {
    history
        .goals
        .iter()
        .filter(|g| g.active && g.set_on <= day)
        .any(|g| {
            let current = levels
                .get(&g.condition_id)
                .and_then(|a| a.level)
                .and_then(|l| l.score());
            let target = g.target_level.and_then(|l| l.score());
            matches!((target, current), (Some(t), Some(c)) if t < c)
        })
}

fn last_day_of_month(day: NaiveDate) -> NaiveDate {
    let (y, m) = if day.month() == 12 {
        (day.year() + 1, 1)
    } else {
        (day.year(), day.month() + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1).expect("first of a month exists") - Days::new(1)
}

fn course_id(citizen: &Pseudonym, track: Track, start: NaiveDate) -> CourseId {
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
