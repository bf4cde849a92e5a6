//! The nightly run's incremental computation: only the citizens that changed are read and
//! decided again; every other citizen's evaluation is taken from what the previous night kept.
//!
//! A citizen's kept evaluation (`citizen_cache`) holds its courses, its Patient id, the latest
//! day its data reports on and its income as [`DayRun`]s up to a `valid_until` date. It is used
//! for a night as of `as_of` only when all of these hold, else the citizen is computed afresh:
//! - no version of the citizen was stored since (`citizen_versions.last_version_id`);
//! - its recorded decisions are the same (a digest of its latest ledger rows);
//! - the mappings are the same ([`Mappings::fingerprint`]);
//! - `as_of` lies between the night it was computed for and `valid_until`.
//!
//! Only a *quiet* citizen is kept: one without a stale tariff table whose courses and findings
//! computed as of `valid_until`, over its ledger as it is once the night's rows are recorded,
//! are exactly those of the night, with no further ledger rows (so no course starts, ends or is
//! re-decided, and no finding comes or goes, in between without new data). It is kept under
//! the digest of that ledger, so it is used only once the night's rows are in the store. Its
//! findings are kept with it and reported again each night. Keeping is always only
//! a shortcut: [`evaluate_incremental`] gives the same courses, ledger rows, findings and income
//! as [`super::evaluate_streaming`] (tested on a generated municipality with late data,
//! withdrawals, terminations and an edited tariff table), and deleting kept rows is safe.

use super::Evaluation;
use crate::domain::{Pseudonym, Track};
use crate::mapping::Mappings;
use crate::model::{
    Course, DayRun, Finding, IncomeReport, LedgerEntry, add_runs, assess, day_runs, resolve_history,
};
use crate::store::Store;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// How far ahead a quiet citizen's evaluation is checked and kept, in days (tried in turn).
const LOOKAHEAD_DAYS: [u64; 3] = [31, 7, 1];

/// One citizen's kept evaluation.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Kept {
    last_version_id: i64,
    ledger: String,
    mappings: String,
    computed_as_of: NaiveDate,
    valid_until: NaiveDate,
    courses: Vec<Course>,
    patient_id: Option<String>,
    latest_day: Option<NaiveDate>,
    runs: Vec<DayRun>,
    /// The citizen's findings, the same every night up to `valid_until`.
    #[serde(default)]
    findings: Vec<Finding>,
}

/// An incremental evaluation and what to keep for the next night.
#[derive(Debug, Default)]
pub struct Incremental {
    /// The evaluation as of the night, with the income up to it
    /// ([`IncomeWanted::ToDate`]).
    pub eval: Evaluation,
    /// Citizen evaluations to keep (JSON), for [`Store::put_citizen_caches`].
    pub keep: Vec<(Pseudonym, String)>,
    /// Citizens whose kept evaluation is no longer valid.
    pub forget: Vec<Pseudonym>,
    /// Citizens read and computed afresh.
    pub recomputed: u64,
    /// Citizens taken from what was kept.
    pub reused: u64,
    /// Of those, citizens whose kept evaluation has findings (reported again).
    pub reused_with_findings: u64,
}

impl Incremental {
    /// Keeps the new citizen evaluations (after the night's ledger rows are recorded).
    pub async fn keep(&self, store: &Store) -> anyhow::Result<()> {
        store.put_citizen_caches(&self.keep, &self.forget).await?;
        Ok(())
    }
}

fn ledger_digest(rows: &[LedgerEntry]) -> String {
    let mut ids: Vec<(String, u32)> = rows
        .iter()
        .map(|e| (e.course_id.0.clone(), e.revision))
        .collect();
    ids.sort();
    let mut h = Sha256::new();
    for (id, rev) in ids {
        h.update(id.as_bytes());
        h.update(b":");
        h.update(rev.to_string().as_bytes());
        h.update(b"\n");
    }
    hex::encode(&h.finalize()[..16])
}

/// A citizen's latest ledger rows once `changes` are recorded: each change replaces the row of
/// its course (a higher revision) or adds a course.
fn ledger_after(recorded: &[LedgerEntry], changes: &[LedgerEntry]) -> Vec<LedgerEntry> {
    let mut out: Vec<LedgerEntry> = recorded
        .iter()
        .filter(|r| !changes.iter().any(|c| c.course_id == r.course_id))
        .cloned()
        .collect();
    out.extend(changes.iter().cloned());
    out
}

/// What one citizen contributes to the night.
struct Part {
    courses: Vec<Course>,
    changes: Vec<LedgerEntry>,
    findings: Vec<Finding>,
    stale: Vec<(Track, i32)>,
    patient_id: Option<String>,
    latest_day: Option<NaiveDate>,
    income: Option<IncomeReport>,
}

/// The income to `as_of` of a citizen's runs (from its first course day).
fn income_of(
    who: &Pseudonym,
    courses: &[Course],
    runs: &[DayRun],
    as_of: NaiveDate,
) -> Option<IncomeReport> {
    let first = courses.iter().map(|c| c.start).min()?;
    let mut report = IncomeReport::default();
    add_runs(&mut report, Some(who), runs, first.min(as_of), as_of);
    Some(report)
}

/// The night as of `as_of`, computing afresh only the citizens whose kept evaluation is not
/// valid. Changes nothing; [`Incremental::keep`] stores what it would keep.
pub async fn evaluate_incremental(
    store: &Store,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    as_of: NaiveDate,
) -> anyhow::Result<Incremental> {
    let mut ledger: HashMap<Pseudonym, Vec<LedgerEntry>> = HashMap::new();
    for e in store.ledger_latest().await? {
        ledger.entry(e.citizen.clone()).or_default().push(e);
    }
    let latest = store.citizen_versions().await?;
    let kept = store.citizen_caches().await?;
    // The time zone decides local dates: part of what a kept evaluation depends on.
    let fingerprint = format!("{}/{}", mappings.fingerprint(), tz.name());
    let mut citizens: Vec<&Pseudonym> = latest.keys().collect();
    citizens.sort();

    let mut parts: BTreeMap<Pseudonym, Part> = BTreeMap::new();
    let mut dirty: Vec<Pseudonym> = Vec::new();
    let mut out = Incremental::default();
    for who in citizens {
        let recorded = ledger.get(who).map_or(&[][..], Vec::as_slice);
        let valid = kept
            .get(who)
            .and_then(|text| serde_json::from_str::<Kept>(text).ok())
            .filter(|k| {
                k.last_version_id == latest[who]
                    && k.mappings == fingerprint
                    && k.ledger == ledger_digest(recorded)
                    && k.computed_as_of <= as_of
                    && as_of <= k.valid_until
            });
        match valid {
            Some(k) => {
                let income = income_of(who, &k.courses, &k.runs, as_of);
                if !k.findings.is_empty() {
                    out.reused_with_findings += 1;
                }
                parts.insert(
                    who.clone(),
                    Part {
                        courses: k.courses,
                        changes: Vec::new(),
                        findings: k.findings,
                        stale: Vec::new(),
                        patient_id: k.patient_id,
                        latest_day: k.latest_day,
                        income,
                    },
                );
                out.reused += 1;
            }
            None => dirty.push(who.clone()),
        }
    }

    store
        .for_each_of_citizens(&dirty, &crate::model::MODEL_KINDS, |who, versions| {
            let history = resolve_history(&versions, tz);
            let recorded = ledger.get(&who).map_or(&[][..], Vec::as_slice);
            let night = assess(&history, mappings, as_of, recorded);
            let patient_id = versions.iter().rev().find_map(|v| match &v.record {
                crate::model::Record::Citizen(c) => c.patient_id.as_ref().map(|p| p.to_string()),
                _ => None,
            });
            let latest_day = history.latest_known_day();
            // The citizen's ledger once the night's rows are recorded: what the next night
            // reads, and what a kept evaluation is valid under.
            let after = ledger_after(recorded, &night.changes);
            let quiet = night.stale_tables.is_empty();
            // How far ahead the same courses hold without new data.
            let valid_until = quiet
                .then(|| {
                    LOOKAHEAD_DAYS.iter().find_map(|&n| {
                        let until = as_of.checked_add_days(Days::new(n))?;
                        let ahead = assess(&history, mappings, until, &after);
                        (ahead.courses == night.courses
                            && ahead.changes.is_empty()
                            && ahead.findings == night.findings
                            && ahead.stale_tables.is_empty())
                        .then_some(until)
                    })
                })
                .flatten();
            let first = night.courses.iter().map(|c| c.start).min();
            let runs = first.map_or_else(Vec::new, |f| {
                day_runs(
                    &history,
                    &night.courses,
                    mappings,
                    f.min(as_of),
                    valid_until.unwrap_or(as_of),
                )
            });
            let income = income_of(&who, &night.courses, &runs, as_of);
            match (valid_until, latest.get(&who)) {
                (Some(valid_until), Some(&last_version_id)) => {
                    let k = Kept {
                        last_version_id,
                        ledger: ledger_digest(&after),
                        mappings: fingerprint.clone(),
                        computed_as_of: as_of,
                        valid_until,
                        courses: night.courses.clone(),
                        patient_id: patient_id.clone(),
                        latest_day,
                        runs,
                        findings: night.findings.clone(),
                    };
                    if let Ok(text) = serde_json::to_string(&k) {
                        out.keep.push((who.clone(), text));
                    }
                }
                _ => {
                    if kept.contains_key(&who) {
                        out.forget.push(who.clone());
                    }
                }
            }
            out.recomputed += 1;
            parts.insert(
                who,
                Part {
                    courses: night.courses,
                    changes: night.changes,
                    findings: night.findings,
                    stale: night.stale_tables,
                    patient_id,
                    latest_day,
                    income,
                },
            );
        })
        .await?;

    // Merged in pseudonym order, as the full computation reads the store.
    let mut eval = Evaluation {
        horizon: as_of,
        income_to: Some(as_of),
        income: Some(IncomeReport::default()),
        ..Evaluation::default()
    };
    let mut stale: BTreeMap<(Track, i32), u32> = BTreeMap::new();
    for (who, part) in parts {
        for t in part.stale {
            *stale.entry(t).or_default() += 1;
        }
        if let Some(id) = part.patient_id {
            eval.patient_ids.insert(who.clone(), id);
        }
        eval.latest_day = eval.latest_day.max(part.latest_day);
        if let (Some(total), Some(income)) = (eval.income.as_mut(), part.income) {
            total.merge(income);
        }
        eval.findings.extend(part.findings);
        eval.changes.extend(part.changes);
        eval.courses.push(part.courses);
        eval.citizens += 1;
    }
    for ((track, year), decisions) in stale {
        eval.findings.push(Finding::TariffTableChanged {
            track,
            year,
            decisions,
        });
    }
    out.eval = eval;
    Ok(out)
}
