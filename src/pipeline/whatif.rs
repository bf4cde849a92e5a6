//! `whatif`: the budget effect of a draft tariff table before anyone adopts it. The same
//! history is evaluated twice in one pass over the store: with the tables in force, and with
//! each draft in place of the table of its track and year. In the second, a recorded decision
//! that used a draft's track and year is priced by the draft as `reprice` would (the same kind
//! and need score, the draft's group and tariff), and a course not yet recorded is decided
//! with the draft. Nothing is stored or sent: adopting a table is putting it in `mappings/`,
//! and re-pricing recorded courses stays `reprice`'s.

use super::{Evaluation, Evaluator, IncomeWanted, Options};
use crate::domain::{CourseKind, Track};
use crate::mapping::{Mappings, TariffBook, TariffTable};
use crate::model::{Change, CourseId, LedgerEntry, reprice, round_money};
use crate::store::Store;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The difference of one team, track and month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthEffect {
    /// Team id (or `unassigned`).
    pub team: String,
    /// Track.
    pub track: Track,
    /// `YYYY-MM`.
    pub month: String,
    /// Course-days paid (the same in both).
    pub course_days: u64,
    /// Income with the tables in force, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub in_force: Decimal,
    /// Income with the drafts, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub draft: Decimal,
    /// `draft - in_force`, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub difference: Decimal,
}

/// The difference of one tariff cell: track, tariff year, kind and need group (as decided
/// with the tables in force).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellEffect {
    /// Track.
    pub track: Track,
    /// The tariff year of the courses' table.
    pub year: i32,
    /// Course kind.
    pub kind: CourseKind,
    /// Need group (`None`: an individual course).
    pub group: Option<u8>,
    /// Courses with a day in the period.
    pub courses: u64,
    /// Their course-days in the period.
    pub course_days: u64,
    /// Income with the tables in force, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub in_force: Decimal,
    /// Income with the drafts, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub draft: Decimal,
    /// `draft - in_force`, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub difference: Decimal,
}

/// What `whatif` found.
#[derive(Debug, Clone, Serialize)]
pub struct WhatIf {
    /// First day.
    pub from: NaiveDate,
    /// Last day.
    pub to: NaiveDate,
    /// The drafts, `track/year`, each with whether it replaces a table in force (`false`: a
    /// table for a year that has none yet).
    pub drafts: Vec<(String, bool)>,
    /// Per team, track and month (every line of either evaluation, zero differences too).
    pub months: Vec<MonthEffect>,
    /// Per tariff cell.
    pub cells: Vec<CellEffect>,
    /// Recorded decisions priced by a draft.
    pub recorded_repriced: usize,
    /// The whole period, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub total_in_force: Decimal,
    /// The whole period with the drafts, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub total_draft: Decimal,
}

/// The mappings with `drafts` in place of the tables of their track and year.
pub fn with_drafts(mappings: &Mappings, drafts: &[TariffTable]) -> Mappings {
    let mut tables: Vec<TariffTable> = mappings
        .tariffs
        .tables()
        .iter()
        .filter(|t| {
            !drafts
                .iter()
                .any(|d| d.track == t.track && d.year == t.year)
        })
        .cloned()
        .collect();
    tables.extend(drafts.iter().cloned());
    let mut m = mappings.clone();
    m.tariffs = TariffBook::new(tables);
    m
}

/// The ledger as it would be with the drafts: each recorded decision that used a draft's
/// track and year priced by the draft. Fails naming the course when its need score falls in
/// no group of the draft.
pub fn draft_ledger(
    ledger: &[LedgerEntry],
    drafts: &[TariffTable],
) -> anyhow::Result<(Vec<LedgerEntry>, usize)> {
    let mut repriced = 0;
    let mut out = Vec::with_capacity(ledger.len());
    for e in ledger {
        let draft = e.decision.as_ref().and_then(|d| {
            drafts
                .iter()
                .find(|t| t.track == d.table.track && t.year == d.table.year)
        });
        match (draft, &e.decision) {
            (Some(t), Some(d)) if d.table.hash != t.content_hash() => {
                let new = reprice(d, t).ok_or_else(|| {
                    anyhow::anyhow!(
                        "course {}: need score {} falls in no group of the draft {} table {}",
                        d.course_id,
                        d.need_score,
                        t.track,
                        t.year
                    )
                })?;
                repriced += 1;
                out.push(LedgerEntry {
                    revision: e.revision + 1,
                    change: Change::Repriced {
                        table: format!("{}/{}", t.track, t.year),
                        why: "whatif".into(),
                    },
                    decision: Some(new),
                    ..e.clone()
                });
            }
            _ => out.push(e.clone()),
        }
    }
    Ok((out, repriced))
}

/// Evaluates the store's history over `from..=to` with the tables in force and with `drafts`,
/// in one pass, and gives the differences. Reads only; changes nothing.
pub async fn whatif(
    store: &Store,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    drafts: &[TariffTable],
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<WhatIf> {
    anyhow::ensure!(from <= to, "--from {from} is after --to {to}");
    anyhow::ensure!(!drafts.is_empty(), "the draft file holds no table");
    let ledger = store.ledger_latest().await?;
    let (after_ledger, recorded_repriced) = draft_ledger(&ledger, drafts)?;
    let draft_mappings = with_drafts(mappings, drafts);
    let options = Options {
        income: IncomeWanted::Period(from, to),
        keep_histories: false,
    };
    let mut before = Evaluator::new(ledger, mappings, tz, to, options);
    let mut after = Evaluator::new(after_ledger, &draft_mappings, tz, to, options);
    store
        .for_each_citizen(&crate::model::MODEL_KINDS, |who, versions| {
            before.add(&who, &versions);
            after.add(&who, &versions);
        })
        .await?;
    let (before, after) = (before.finish(), after.finish());
    Ok(compare(
        mappings,
        drafts,
        from,
        to,
        &before,
        &after,
        recorded_repriced,
    ))
}

/// The differences of two evaluations of the same history (pure).
pub fn compare(
    mappings: &Mappings,
    drafts: &[TariffTable],
    from: NaiveDate,
    to: NaiveDate,
    before: &Evaluation,
    after: &Evaluation,
    recorded_repriced: usize,
) -> WhatIf {
    let empty = Default::default();
    let b = before.income.as_ref().unwrap_or(&empty);
    let a = after.income.as_ref().unwrap_or(&empty);
    let keys: BTreeSet<_> = b.lines.keys().chain(a.lines.keys()).collect();
    let months: Vec<MonthEffect> = keys
        .into_iter()
        .map(|k| {
            let lb = b.lines.get(k);
            let la = a.lines.get(k);
            let in_force = lb.map_or(Decimal::ZERO, |l| l.amount);
            let draft = la.map_or(Decimal::ZERO, |l| l.amount);
            MonthEffect {
                team: k.payee.to_string(),
                track: k.track,
                month: k.month.to_string(),
                course_days: u64::from(lb.or(la).map_or(0, |l| l.course_days)),
                in_force,
                draft,
                difference: draft - in_force,
            }
        })
        .collect();
    // Cells by the course as decided with the tables in force.
    let cell_of: HashMap<&CourseId, (Track, i32, CourseKind, Option<u8>)> = before
        .courses
        .iter()
        .flatten()
        .map(|c| (&c.id, (c.track, c.tariff_year, c.kind, c.group)))
        .collect();
    type Acc = (BTreeSet<CourseId>, u64, Decimal, Decimal);
    let mut cells: BTreeMap<(Track, i32, CourseKind, Option<u8>), Acc> = BTreeMap::new();
    for (report, is_after) in [(b, false), (a, true)] {
        for shares in report.shares.values() {
            for s in shares {
                let Some(key) = cell_of.get(&s.course) else {
                    continue;
                };
                let e = cells.entry(*key).or_default();
                if is_after {
                    e.3 += s.amount;
                } else {
                    e.0.insert(s.course.clone());
                    e.1 += u64::from(s.days);
                    e.2 += s.amount;
                }
            }
        }
    }
    let cells = cells
        .into_iter()
        .map(
            |((track, year, kind, group), (ids, days, in_force, draft))| CellEffect {
                track,
                year,
                kind,
                group,
                courses: ids.len() as u64,
                course_days: days,
                in_force,
                draft,
                difference: draft - in_force,
            },
        )
        .collect();
    let total_in_force = months.iter().map(|m| m.in_force).sum();
    let total_draft = months.iter().map(|m| m.draft).sum();
    WhatIf {
        from,
        to,
        drafts: drafts
            .iter()
            .map(|d| {
                (
                    format!("{}/{}", d.track, d.year),
                    mappings.tariffs.table(d.track, d.year).is_some(),
                )
            })
            .collect(),
        months,
        cells,
        recorded_repriced,
        total_in_force,
        total_draft,
    }
}

/// Rounded to øre for people (the exact values are in the JSON).
pub fn shown(d: Decimal) -> Decimal {
    round_money(d)
}
