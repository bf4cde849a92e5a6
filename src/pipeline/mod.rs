//! The one pipeline every command and step uses: stored versions → histories → the course
//! ledger (recorded decisions read back, new ones decided) → income → deltas → findings.
//!
//! `evaluate` reads the store and runs the model; it changes nothing. `record` appends the new
//! ledger rows and stores the courses. The model stays pure: everything here that touches the
//! store is in this module, nothing in `crate::model`.

pub mod reprice;

use crate::domain::{Pseudonym, TeamId, Track};
use crate::mapping::Mappings;
use crate::model::{
    CitizenHistory, Course, CourseShare, Finding, IncomeKey, IncomeReport, LedgerEntry, Payee,
    PostingDelta, Versioned, YearMonth, assess, income, nightly_deltas, resolve_history,
    round_money,
};
use crate::store::Store;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// What the pipeline computed as of a horizon: every citizen's history and courses, the
/// ledger rows to append, and the findings.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Every stored version, by citizen (for the citizens' Patient ids).
    pub versions: Vec<(Pseudonym, Vec<Versioned>)>,
    /// Every citizen's resolved history, in the order of `versions`.
    pub histories: Vec<CitizenHistory>,
    /// Every citizen's courses, index for index with `histories`.
    pub courses: Vec<Vec<Course>>,
    /// New ledger rows: decisions made now and supersessions.
    pub changes: Vec<LedgerEntry>,
    /// Data-quality findings.
    pub findings: Vec<Finding>,
    /// The horizon: courses start on or before it.
    pub horizon: NaiveDate,
}

/// Reads every stored version and the ledger and computes as of `horizon`. Changes nothing.
pub async fn evaluate(
    store: &Store,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    horizon: NaiveDate,
) -> anyhow::Result<Evaluation> {
    let versions = store.all_versions().await?;
    let ledger = store.ledger_latest().await?;
    Ok(evaluate_with(versions, ledger, mappings, tz, horizon))
}

/// The pure part of [`evaluate`]: the model over given versions and ledger rows.
pub fn evaluate_with(
    versions: Vec<(Pseudonym, Vec<Versioned>)>,
    ledger: Vec<LedgerEntry>,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    horizon: NaiveDate,
) -> Evaluation {
    let mut by_citizen: HashMap<Pseudonym, Vec<LedgerEntry>> = HashMap::new();
    for e in ledger {
        by_citizen.entry(e.citizen.clone()).or_default().push(e);
    }
    let mut eval = Evaluation {
        horizon,
        ..Evaluation::default()
    };
    let mut stale: BTreeMap<(Track, i32), u32> = BTreeMap::new();
    for (who, vs) in &versions {
        let history = resolve_history(vs, tz);
        let recorded = by_citizen.remove(who).unwrap_or_default();
        let out = assess(&history, mappings, horizon, &recorded);
        for t in out.stale_tables {
            *stale.entry(t).or_default() += 1;
        }
        eval.findings.extend(out.findings);
        eval.changes.extend(out.changes);
        eval.courses.push(out.courses);
        eval.histories.push(history);
    }
    for ((track, year), decisions) in stale {
        eval.findings.push(Finding::TariffTableChanged {
            track,
            year,
            decisions,
        });
    }
    eval.versions = versions;
    eval
}

impl Evaluation {
    /// Every course, by citizen, track and start.
    pub fn all_courses(&self) -> Vec<Course> {
        self.courses.iter().flatten().cloned().collect()
    }

    /// The citizens' histories with their courses.
    pub fn pairs(&self) -> impl Iterator<Item = (&CitizenHistory, &[Course])> {
        self.histories
            .iter()
            .zip(self.courses.iter().map(Vec::as_slice))
    }

    /// Team income over `from..=to`, exact, with each line's course shares.
    pub fn income(&self, mappings: &Mappings, from: NaiveDate, to: NaiveDate) -> IncomeReport {
        income(self.pairs(), mappings, from, to)
    }

    /// The care system's Patient id of each citizen that has one.
    pub fn patients(&self) -> HashMap<Pseudonym, String> {
        crate::sources::roster::patients(&self.versions)
            .into_iter()
            .map(|(id, who)| (who, id))
            .collect()
    }

    /// Appends the new ledger rows (recorded as of `recorded_on`) and stores the courses.
    /// Returns how many rows were appended.
    pub async fn record(&self, store: &Store, recorded_on: NaiveDate) -> anyhow::Result<u64> {
        let n = store.append_ledger(&self.changes, recorded_on).await?;
        // Courses starting after the horizon are not computed here: those stored stay.
        store
            .replace_courses_until(&self.all_courses(), self.horizon)
            .await?;
        Ok(n)
    }

    /// The nightly deltas as of `as_of`: the income from the first course day to `as_of` per
    /// team, track and month, rounded, minus what the outbox already holds; with the income
    /// report they come from (for the vouchers' bases).
    pub async fn deltas(
        &self,
        store: &Store,
        mappings: &Mappings,
        as_of: NaiveDate,
    ) -> anyhow::Result<(Vec<PostingDelta>, IncomeReport)> {
        let first = self
            .courses
            .iter()
            .flatten()
            .map(|c| c.start)
            .min()
            .unwrap_or(as_of);
        let report = self.income(mappings, first.min(as_of), as_of);
        let posted = posted(store).await?;
        Ok((nightly_deltas(&report.lines, &posted), report))
    }
}

/// What the outbox holds per team, track and month.
pub async fn posted(store: &Store) -> anyhow::Result<BTreeMap<IncomeKey, Decimal>> {
    let mut posted: BTreeMap<IncomeKey, Decimal> = BTreeMap::new();
    for ((team, track, month), amount) in store.posted_totals().await? {
        let key = key_of(&team, &track, &month).ok_or_else(|| {
            anyhow::anyhow!("the outbox holds an unreadable key {team}/{track}/{month}")
        })?;
        posted.insert(key, amount);
    }
    Ok(posted)
}

/// The key of a stored voucher: team (or `unassigned`), track, `YYYY-MM`.
pub fn key_of(team: &str, track: &str, month: &str) -> Option<IncomeKey> {
    let payee = if team == "unassigned" {
        Payee::Unassigned
    } else {
        Payee::Team(TeamId::parse(team).ok()?)
    };
    let track = Track::parse(track).ok()?;
    let (y, m) = month.split_once('-')?;
    Some(IncomeKey {
        payee,
        track,
        month: YearMonth {
            year: y.parse().ok()?,
            month: m.parse().ok()?,
        },
    })
}

/// What a voucher's amount is made of, recorded with it: the course-days of its team, track
/// and month up to the as-of date, their exact sum, the rounded month-to-date, what was posted
/// before, and the amount (`month_to_date - already_posted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct VoucherBasis {
    /// The as-of date of the run that made the voucher.
    pub as_of: NaiveDate,
    /// The course shares of the month up to `as_of`.
    pub courses: Vec<CourseShare>,
    /// Their sum, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub month_to_date_exact: Decimal,
    /// Rounded half away from zero to øre.
    #[serde(with = "rust_decimal::serde::str")]
    pub month_to_date: Decimal,
    /// What earlier vouchers posted for the key.
    #[serde(with = "rust_decimal::serde::str")]
    pub already_posted: Decimal,
    /// This voucher's amount.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// The basis of a delta, from the income report it was computed from.
pub fn basis_of(report: &IncomeReport, delta: &PostingDelta, as_of: NaiveDate) -> VoucherBasis {
    let courses = report.shares.get(&delta.key).cloned().unwrap_or_default();
    let exact = report
        .lines
        .get(&delta.key)
        .map_or(Decimal::ZERO, |l| l.amount);
    VoucherBasis {
        as_of,
        courses,
        month_to_date_exact: exact,
        month_to_date: round_money(exact),
        already_posted: delta.already_posted,
        amount: delta.amount,
    }
}
