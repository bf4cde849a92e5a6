//! `reprice`: a person applies a tariff table as it is now to the recorded decisions that used
//! an earlier content of it. The only way an edited table reaches recorded courses.

use super::{Evaluation, Evaluator, IncomeWanted, Options};
use crate::domain::Track;
use crate::mapping::{Mappings, TariffTable};
use crate::model::{Change, IncomeKey, LedgerEntry, reprice};
use crate::store::Store;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Recorded decisions whose tariff table has changed since: (track, year) → how many.
pub fn stale_tables(ledger: &[LedgerEntry], mappings: &Mappings) -> BTreeMap<(Track, i32), u32> {
    let mut out = BTreeMap::new();
    for d in ledger.iter().filter_map(|e| e.decision.as_ref()) {
        if let Some(t) = mappings.tariffs.table(d.table.track, d.table.year)
            && t.content_hash() != d.table.hash
        {
            *out.entry((d.table.track, d.table.year)).or_default() += 1;
        }
    }
    out
}

/// Parses `TRACK/YEAR`.
pub fn parse_table(text: &str) -> anyhow::Result<(Track, i32)> {
    let (track, year) = text
        .split_once('/')
        .ok_or_else(|| anyhow::anyhow!("--table `{text}` is not TRACK/YEAR (e.g. care/2027)"))?;
    let track = Track::parse(track).map_err(|e| anyhow::anyhow!("--table `{text}`: {e}"))?;
    let year: i32 = year
        .parse()
        .map_err(|_| anyhow::anyhow!("--table `{text}`: `{year}` is not a year"))?;
    Ok((track, year))
}

/// The effect of a re-pricing on one team, track and month.
#[derive(Debug, Clone, Serialize)]
pub struct Effect {
    /// Team (or `unassigned`).
    pub team: String,
    /// Track.
    pub track: Track,
    /// Month, `YYYY-MM`.
    pub month: String,
    /// Income with the recorded decisions, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub before: Decimal,
    /// Income with the re-priced decisions, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub after: Decimal,
    /// `after - before`, rounded to øre.
    #[serde(with = "rust_decimal::serde::str")]
    pub difference: Decimal,
}

/// What `reprice` would do (or did).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The table, `track/year`.
    pub table: String,
    /// The person's reason.
    pub reason: String,
    /// The new ledger rows (one per re-priced course).
    pub rows: Vec<LedgerEntry>,
    /// How many of them get another group or tariff (the others only take the table's new
    /// content hash).
    pub changed_tariffs: usize,
    /// The effect per team, track and month over the courses' whole periods.
    pub effects: Vec<Effect>,
    /// Whether the rows were recorded.
    pub applied: bool,
}

/// Plans the re-pricing of every recorded decision that used `table`'s track and year with
/// another content: the same kind and need score, the group and tariff of `table`. Fails
/// naming the course when a need score falls in no group of the new table (nothing applied).
pub async fn plan(
    store: &Store,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    table: &TariffTable,
    reason: &str,
    today: NaiveDate,
) -> anyhow::Result<Plan> {
    anyhow::ensure!(
        !reason.trim().is_empty(),
        "--reason must say why (it is recorded)"
    );
    let ledger = store.ledger_latest().await?;
    let hash = table.content_hash();
    let mut rows = Vec::new();
    for e in &ledger {
        let Some(d) = &e.decision else { continue };
        if d.table.track != table.track || d.table.year != table.year || d.table.hash == hash {
            continue;
        }
        let new = reprice(d, table).ok_or_else(|| {
            anyhow::anyhow!(
                "course {} (citizen {}): need score {} falls in no group of the {} table {}; nothing was re-priced",
                d.course_id,
                d.citizen.short(),
                d.need_score,
                table.track,
                table.year
            )
        })?;
        rows.push(LedgerEntry {
            revision: e.revision + 1,
            change: Change::Repriced {
                table: format!("{}/{}", table.track, table.year),
                why: reason.trim().to_owned(),
            },
            decision: Some(new),
            ..e.clone()
        });
    }
    let changed_tariffs = rows
        .iter()
        .filter(|r| {
            let old = ledger
                .iter()
                .find(|e| e.course_id == r.course_id)
                .and_then(|e| e.decision.as_ref());
            let new = r.decision.as_ref();
            old.map(|o| (o.group, o.tariff)) != new.map(|n| (n.group, n.tariff))
        })
        .count();
    let affected: BTreeSet<&str> = rows.iter().map(|r| r.course_id.0.as_str()).collect();
    let from = rows.iter().map(|r| r.start).min();
    let to = rows.iter().filter_map(|r| r.end).max();
    let mut effects = Vec::new();
    if let (Some(from), Some(to)) = (from, to) {
        let mut after_ledger: Vec<LedgerEntry> = ledger
            .iter()
            .filter(|e| !affected.contains(e.course_id.0.as_str()))
            .cloned()
            .collect();
        after_ledger.extend(rows.iter().cloned());
        // Every re-priced course must be in both evaluations: up to the latest start.
        let latest_start = rows.iter().map(|r| r.start).max().unwrap_or(from);
        let horizon = today.max(latest_start);
        // Both evaluations in one pass over the store, citizen by citizen.
        let options = Options {
            income: IncomeWanted::Period(from, to),
            keep_histories: false,
        };
        let mut before = Evaluator::new(ledger, mappings, tz, horizon, options);
        let mut after = Evaluator::new(after_ledger, mappings, tz, horizon, options);
        store
            .for_each_citizen(&crate::model::MODEL_KINDS, |who, versions| {
                before.add(&who, &versions);
                after.add(&who, &versions);
            })
            .await?;
        effects = diff(&before.finish(), &after.finish());
    }
    Ok(Plan {
        table: format!("{}/{}", table.track, table.year),
        reason: reason.trim().to_owned(),
        rows,
        changed_tariffs,
        effects,
        applied: false,
    })
}

fn diff(before: &Evaluation, after: &Evaluation) -> Vec<Effect> {
    let empty = BTreeMap::new();
    let b = before.income.as_ref().map_or(&empty, |r| &r.lines);
    let a = after.income.as_ref().map_or(&empty, |r| &r.lines);
    let keys: BTreeSet<&IncomeKey> = b.keys().chain(a.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let before = b.get(k).map_or(Decimal::ZERO, |l| l.amount);
            let after = a.get(k).map_or(Decimal::ZERO, |l| l.amount);
            let difference = crate::model::round_money(after - before);
            (!difference.is_zero()).then(|| Effect {
                team: k.payee.to_string(),
                track: k.track,
                month: k.month.to_string(),
                before,
                after,
                difference,
            })
        })
        .collect()
}

/// Records a plan's rows (the re-pricing), as of `today`.
pub async fn apply(store: &Store, plan: &mut Plan, today: NaiveDate) -> anyhow::Result<u64> {
    let n = store.append_ledger(&plan.rows, today).await?;
    plan.applied = true;
    Ok(n)
}
