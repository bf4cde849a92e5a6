//! The one pipeline every command and step uses: stored versions → histories → the course
//! ledger (recorded decisions read back, new ones decided) → income → deltas → findings.
//!
//! `evaluate` reads the store and runs the model; it changes nothing. `record` appends the new
//! ledger rows and stores the courses. The model stays pure: everything here that touches the
//! store is in this module, nothing in `crate::model`.

pub mod calibrate;
pub mod figures;
pub mod incremental;
pub mod reprice;
pub mod whatif;

pub use figures::{QualityFinding, Snapshot, figures};

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

/// What the pipeline computed as of a horizon: every citizen's courses, the ledger rows to
/// append, the findings, and what the [`Options`] asked for.
#[derive(Debug, Clone, Default)]
pub struct Evaluation {
    /// Every citizen's resolved history, index for index with `courses`: kept only when
    /// [`Options::keep_histories`] (the pure [`evaluate_with`] and [`evaluate`] keep them; the
    /// streaming [`evaluate_streaming`] does not, so memory does not grow with the store).
    pub histories: Vec<CitizenHistory>,
    /// Every citizen's courses, by citizen (ordered by pseudonym).
    pub courses: Vec<Vec<Course>>,
    /// New ledger rows: decisions made now and supersessions.
    pub changes: Vec<LedgerEntry>,
    /// Data-quality findings.
    pub findings: Vec<Finding>,
    /// The horizon: courses start on or before it.
    pub horizon: NaiveDate,
    /// The care system's Patient id of each citizen that has one.
    pub patient_ids: HashMap<Pseudonym, String>,
    /// The income [`Options::income`] asked for, computed citizen by citizen.
    pub income: Option<IncomeReport>,
    /// The latest day any citizen's data reports something on (see
    /// [`CitizenHistory::latest_known_day`]).
    pub latest_day: Option<NaiveDate>,
    /// Citizens evaluated.
    pub citizens: u64,
    /// The date of [`IncomeWanted::ToDate`], when that income was computed.
    pub income_to: Option<NaiveDate>,
}

/// Which income an evaluation computes while it has each citizen's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncomeWanted {
    /// None.
    #[default]
    None,
    /// Over `from..=to` (a budget).
    Period(NaiveDate, NaiveDate),
    /// Each citizen's from its first course day to the date (the nightly deltas).
    ToDate(NaiveDate),
}

/// What an evaluation keeps besides courses, changes and findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// The income to compute.
    pub income: IncomeWanted,
    /// Keep every citizen's resolved history (memory grows with the store: tests, the demo).
    pub keep_histories: bool,
}

/// Reads every stored version and the ledger and computes as of `horizon`, keeping the
/// histories (for [`Evaluation::income`] over any period). Changes nothing.
pub async fn evaluate(
    store: &Store,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    horizon: NaiveDate,
) -> anyhow::Result<Evaluation> {
    let options = Options {
        keep_histories: true,
        ..Options::default()
    };
    evaluate_streaming(store, mappings, tz, horizon, options).await
}

/// Reads the store citizen by citizen (one citizen's versions in memory at a time) and the
/// ledger, and computes as of `horizon` what `options` ask for. Changes nothing.
pub async fn evaluate_streaming(
    store: &Store,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    horizon: NaiveDate,
    options: Options,
) -> anyhow::Result<Evaluation> {
    let ledger = store.ledger_latest().await?;
    let mut evaluator = Evaluator::new(ledger, mappings, tz, horizon, options);
    store
        .for_each_citizen(&crate::model::MODEL_KINDS, |who, versions| {
            evaluator.add(&who, &versions)
        })
        .await?;
    Ok(evaluator.finish())
}

/// The pure part of [`evaluate`]: the model over given versions and ledger rows, keeping the
/// histories.
pub fn evaluate_with(
    versions: Vec<(Pseudonym, Vec<Versioned>)>,
    ledger: Vec<LedgerEntry>,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    horizon: NaiveDate,
) -> Evaluation {
    let options = Options {
        keep_histories: true,
        ..Options::default()
    };
    let mut evaluator = Evaluator::new(ledger, mappings, tz, horizon, options);
    for (who, vs) in &versions {
        evaluator.add(who, vs);
    }
    evaluator.finish()
}

/// The pipeline fed one citizen at a time: pure (the caller reads the store).
pub struct Evaluator<'m> {
    ledger: HashMap<Pseudonym, Vec<LedgerEntry>>,
    mappings: &'m Mappings,
    tz: chrono_tz::Tz,
    options: Options,
    stale: BTreeMap<(Track, i32), u32>,
    eval: Evaluation,
}

impl<'m> Evaluator<'m> {
    /// An evaluator over the recorded `ledger` (its latest rows).
    pub fn new(
        ledger: Vec<LedgerEntry>,
        mappings: &'m Mappings,
        tz: chrono_tz::Tz,
        horizon: NaiveDate,
        options: Options,
    ) -> Self {
        let mut by_citizen: HashMap<Pseudonym, Vec<LedgerEntry>> = HashMap::new();
        for e in ledger {
            by_citizen.entry(e.citizen.clone()).or_default().push(e);
        }
        Evaluator {
            ledger: by_citizen,
            mappings,
            tz,
            options,
            stale: BTreeMap::new(),
            eval: Evaluation {
                horizon,
                income_to: match options.income {
                    IncomeWanted::ToDate(d) => Some(d),
                    _ => None,
                },
                ..Evaluation::default()
            },
        }
    }

    /// Evaluates one citizen's versions (all of them, in receipt order).
    pub fn add(&mut self, who: &Pseudonym, versions: &[Versioned]) {
        let history = resolve_history(versions, self.tz);
        let recorded = self.ledger.remove(who).unwrap_or_default();
        let out = assess(&history, self.mappings, self.eval.horizon, &recorded);
        for t in out.stale_tables {
            *self.stale.entry(t).or_default() += 1;
        }
        for v in versions {
            if let crate::model::Record::Citizen(c) = &v.record
                && let Some(id) = &c.patient_id
            {
                self.eval.patient_ids.insert(who.clone(), id.to_string());
            }
        }
        self.eval.latest_day = self.eval.latest_day.max(history.latest_known_day());
        let period = match self.options.income {
            IncomeWanted::None => None,
            IncomeWanted::Period(from, to) => Some((from, to)),
            IncomeWanted::ToDate(to) => {
                let first = out.courses.iter().map(|c| c.start).min();
                first.map(|f| (f.min(to), to))
            }
        };
        if let Some((from, to)) = period {
            let part = income(
                std::iter::once((&history, out.courses.as_slice())),
                self.mappings,
                from,
                to,
            );
            self.eval
                .income
                .get_or_insert_with(IncomeReport::default)
                .merge(part);
        } else if self.options.income != IncomeWanted::None {
            self.eval.income.get_or_insert_with(IncomeReport::default);
        }
        self.eval.findings.extend(out.findings);
        self.eval.changes.extend(out.changes);
        self.eval.courses.push(out.courses);
        self.eval.citizens += 1;
        if self.options.keep_histories {
            self.eval.histories.push(history);
        }
    }

    /// The evaluation, with the findings about edited tariff tables.
    pub fn finish(mut self) -> Evaluation {
        for ((track, year), decisions) in std::mem::take(&mut self.stale) {
            self.eval.findings.push(Finding::TariffTableChanged {
                track,
                year,
                decisions,
            });
        }
        if self.options.income != IncomeWanted::None {
            self.eval.income.get_or_insert_with(IncomeReport::default);
        }
        self.eval
    }
}

impl Evaluation {
    /// Every course, by citizen, track and start.
    pub fn all_courses(&self) -> Vec<Course> {
        self.courses.iter().flatten().cloned().collect()
    }

    /// The citizens' histories with their courses (only when the histories were kept).
    pub fn pairs(&self) -> impl Iterator<Item = (&CitizenHistory, &[Course])> {
        self.histories
            .iter()
            .zip(self.courses.iter().map(Vec::as_slice))
    }

    /// Team income over `from..=to`, exact, with each line's course shares. Needs the
    /// histories ([`Options::keep_histories`]); a streaming evaluation asks for its income in
    /// its [`Options`] instead.
    ///
    /// # Panics
    /// If the histories were not kept (a programming error: the income would be empty).
    pub fn income(&self, mappings: &Mappings, from: NaiveDate, to: NaiveDate) -> IncomeReport {
        assert!(
            self.histories.len() == self.courses.len(),
            "Evaluation::income needs the histories: evaluate with keep_histories, or ask for the income in Options"
        );
        income(self.pairs(), mappings, from, to)
    }

    /// The care system's Patient id of each citizen that has one.
    pub fn patients(&self) -> HashMap<Pseudonym, String> {
        self.patient_ids.clone()
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
    /// report they come from (for the vouchers' bases). Uses the income computed while
    /// streaming when it was asked for up to `as_of`, else the kept histories.
    pub async fn deltas(
        &self,
        store: &Store,
        mappings: &Mappings,
        as_of: NaiveDate,
    ) -> anyhow::Result<(Vec<PostingDelta>, IncomeReport)> {
        let report = match (&self.income, self.histories.len() == self.courses.len()) {
            (Some(report), _) if self.income_to == Some(as_of) => report.clone(),
            (_, true) => {
                let first = self
                    .courses
                    .iter()
                    .flatten()
                    .map(|c| c.start)
                    .min()
                    .unwrap_or(as_of);
                self.income(mappings, first.min(as_of), as_of)
            }
            _ => anyhow::bail!(
                "the evaluation holds no income up to {as_of}: evaluate with IncomeWanted::ToDate({as_of})"
            ),
        };
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
