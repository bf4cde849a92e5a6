//! `explain`: why a course is paid what it is, and what a voucher's amount is made of.
//!
//! Reads the course ledger and the vouchers' recorded bases; changes nothing. A citizen is
//! named by pseudonym (and in text by its short form) and by the care system's Patient id,
//! never by CPR: a CPR given to `explain --citizen-stdin` is pseudonymised on read.

use crate::domain::{Pseudonym, Track};
use crate::model::{DailyTariff, Evidence, LedgerEntry};
use crate::pipeline::VoucherBasis;
use crate::store::{LedgerRow, Store};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use std::fmt::Write as _;

/// One revision of a course's decision, for people and machines.
#[derive(Debug, Clone, Serialize)]
pub struct Revision {
    /// 1 for the first decision.
    pub revision: u32,
    /// Why the row was written (`decided`, `end_moved`, ...).
    pub change: &'static str,
    /// The same, for people.
    pub reason: String,
    /// The as-of date of the run that recorded it (a `reprice`: the day it was run).
    pub recorded_on: NaiveDate,
    /// When it was recorded (wall clock).
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    /// The ledger row.
    pub entry: LedgerEntry,
}

/// A course's explanation: the decision in force, its rule, table cell and evidence, and every
/// supersession.
#[derive(Debug, Clone, Serialize)]
pub struct CourseExplanation {
    /// The course.
    pub course_id: String,
    /// The citizen's pseudonym.
    pub citizen: Pseudonym,
    /// The track.
    pub track: Track,
    /// First paid day.
    pub start: NaiveDate,
    /// The revision in force (the last).
    pub in_force: Revision,
    /// Every revision, oldest first (the last is `in_force`).
    pub revisions: Vec<Revision>,
}

fn revision(row: LedgerRow) -> Revision {
    Revision {
        revision: row.entry.revision,
        change: row.entry.change.as_str(),
        reason: row.entry.change.to_string(),
        recorded_on: row.recorded_on,
        recorded_at: row.recorded_at,
        entry: row.entry,
    }
}

/// Explains one course from the ledger; `None` when the ledger does not know it.
pub async fn course(store: &Store, course_id: &str) -> anyhow::Result<Option<CourseExplanation>> {
    let rows = store.ledger_of_course(course_id).await?;
    Ok(from_rows(rows))
}

fn from_rows(rows: Vec<LedgerRow>) -> Option<CourseExplanation> {
    let first = rows.first()?.entry.clone();
    let revisions: Vec<Revision> = rows.into_iter().map(revision).collect();
    Some(CourseExplanation {
        course_id: first.course_id.0.clone(),
        citizen: first.citizen.clone(),
        track: first.track,
        start: first.start,
        in_force: revisions.last()?.clone(),
        revisions,
    })
}

/// Explains every recorded course of a citizen, by track and start.
pub async fn citizen(store: &Store, who: &Pseudonym) -> anyhow::Result<Vec<CourseExplanation>> {
    let rows = store.ledger_of_citizen(who).await?;
    let mut out = Vec::new();
    let mut group: Vec<LedgerRow> = Vec::new();
    for row in rows {
        if group
            .last()
            .is_some_and(|g| g.entry.course_id != row.entry.course_id)
        {
            out.extend(from_rows(std::mem::take(&mut group)));
        }
        group.push(row);
    }
    out.extend(from_rows(group));
    Ok(out)
}

/// A voucher's explanation: its key and amount, the course-days its amount was computed from
/// (recorded with it), the vouchers before it for the same key, and the check that they add up.
#[derive(Debug, Clone, Serialize)]
pub struct VoucherExplanation {
    /// The voucher number.
    pub number: String,
    /// The team (or `unassigned`).
    pub team: String,
    /// The track.
    pub track: Track,
    /// The month, `YYYY-MM`.
    pub month: String,
    /// Its amount.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    /// Its state in the outbox.
    pub state: String,
    /// What the amount was computed from; `None` for a voucher created before bases were
    /// recorded.
    pub basis: Option<VoucherBasis>,
    /// The earlier vouchers of the same team, track and month: number and amount.
    pub earlier: Vec<(String, String)>,
    /// Whether the course-days' exact sum, rounded, minus what was posted before, is the
    /// voucher's amount to the øre.
    pub adds_up: Option<bool>,
}

/// Explains one voucher; `None` when the outbox does not hold it.
pub async fn voucher(store: &Store, number: &str) -> anyhow::Result<Option<VoucherExplanation>> {
    let all = store.vouchers().await?;
    let Some(pos) = all.iter().position(|v| v.voucher.number.0 == number) else {
        return Ok(None);
    };
    let v = &all[pos];
    let earlier = all[..pos]
        .iter()
        .filter(|o| {
            o.voucher.team == v.voucher.team
                && o.voucher.track == v.voucher.track
                && o.voucher.month == v.voucher.month
        })
        .map(|o| (o.voucher.number.0.clone(), o.voucher.amount.to_string()))
        .collect();
    let basis: Option<VoucherBasis> = match store.voucher_basis(number).await? {
        Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
            anyhow::anyhow!("the basis stored with voucher {number} is unreadable: {e}")
        })?),
        None => None,
    };
    let adds_up = basis.as_ref().map(|b| {
        let sum: Decimal = b.courses.iter().map(|c| c.amount).sum();
        sum == b.month_to_date_exact
            && crate::model::round_money(sum) == b.month_to_date
            && crate::model::round_money(b.month_to_date - b.already_posted) == v.voucher.amount
    });
    Ok(Some(VoucherExplanation {
        number: v.voucher.number.0.clone(),
        team: v.voucher.team.clone(),
        track: v.voucher.track,
        month: v.voucher.month.to_string(),
        amount: v.voucher.amount,
        state: v.state.as_str().to_owned(),
        basis,
        earlier,
        adds_up,
    }))
}

/// An exact amount the Danish way, every decimal kept (at least two): `3.827,1577`.
pub fn danish_exact(amount: Decimal) -> String {
    let mut a = amount.normalize();
    if a.scale() < 2 {
        a.rescale(2);
    }
    if a.is_zero() {
        a = Decimal::ZERO;
        a.rescale(2);
    }
    let text = a.abs().to_string();
    let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(c);
    }
    let sign = if a.is_sign_negative() && !a.is_zero() {
        "-"
    } else {
        ""
    };
    format!("{sign}{grouped},{frac}")
}

/// An amount the Danish way: `1.552.635,00 kr.` (rounded half away from zero to øre).
pub fn kroner(amount: Decimal) -> String {
    let mut rounded = crate::model::round_money(amount);
    rounded.rescale(2);
    format!("{} kr.", danish_exact(rounded))
}

fn tariff_text(t: &DailyTariff) -> String {
    match t {
        DailyTariff::Locked { amount } => {
            format!("{} per day (locked; exact {amount})", kroner(*amount))
        }
        DailyTariff::Individual { hourly_rate } => format!(
            "individual: weekly minutes / 60 x {} per hour / 7, each day",
            kroner(*hourly_rate)
        ),
    }
}

fn evidence_line(e: &Evidence) -> String {
    let hash = if e.hash.is_empty() {
        String::new()
    } else {
        format!("  sha256 {}", &e.hash[..e.hash.len().min(16)])
    };
    let source = if e.source.is_empty() {
        String::new()
    } else {
        format!(" ({})", e.source)
    };
    format!(
        "{:<11} {:<40} version {}{source}{hash}",
        e.kind.as_str(),
        e.id,
        e.version_at.format("%Y-%m-%dT%H:%M:%S%.3fZ")
    )
}

/// A course's explanation as text for people.
pub fn course_text(c: &CourseExplanation) -> String {
    let mut s = String::new();
    let e = &c.in_force.entry;
    let _ = writeln!(s, "course {}", c.course_id);
    let _ = writeln!(s, "  citizen       {}", c.citizen.short());
    let _ = writeln!(s, "  track         {}", c.track);
    let _ = writeln!(s, "  start         {}", c.start);
    match &e.decision {
        None => {
            let _ = writeln!(s, "  in force      cancelled (revision {})", e.revision);
        }
        Some(d) => {
            let _ = writeln!(s, "  kind          {}", d.kind);
            let _ = writeln!(s, "  need score    {}", d.need_score);
            let _ = writeln!(
                s,
                "  table cell    {} {}, group {}",
                d.table,
                d.kind,
                d.group.map_or_else(|| "-".to_owned(), |g| g.to_string())
            );
            let _ = writeln!(
                s,
                "  table hash    {}",
                &d.table.hash[..d.table.hash.len().min(16)]
            );
            let _ = writeln!(s, "  tariff        {}", tariff_text(&d.tariff));
            let _ = writeln!(s, "  planned end   {}", d.planned_end);
            if let (Some(end), Some(reason)) = (e.end, e.end_reason) {
                let _ = writeln!(s, "  end           {end} ({})", reason.as_str());
            }
            let _ = writeln!(s, "  rule          {}", d.rule);
            let _ = writeln!(s, "  evidence      {} record version(s):", d.evidence.len());
            for ev in &d.evidence {
                let _ = writeln!(s, "    {}", evidence_line(ev));
            }
        }
    }
    let _ = writeln!(s, "  ledger:");
    for r in &c.revisions {
        let _ = writeln!(
            s,
            "    rev {:>2}  as of {}, recorded {}  {}",
            r.revision,
            r.recorded_on,
            r.recorded_at.format("%Y-%m-%d %H:%M UTC"),
            r.reason
        );
    }
    s
}

/// A voucher's explanation as text for people: the course-days line up, their sum and the
/// subtraction that gives the voucher's amount.
pub fn voucher_text(v: &VoucherExplanation) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "voucher {}  {} {} {}  {}  ({})",
        v.number,
        v.team,
        v.track,
        v.month,
        kroner(v.amount),
        v.state
    );
    let Some(b) = &v.basis else {
        let _ = writeln!(
            s,
            "  no basis was recorded with this voucher (created before the ledger)"
        );
        return s;
    };
    let _ = writeln!(
        s,
        "  as of {}: the course-days of the month so far (kr., exact)",
        b.as_of
    );
    let _ = writeln!(
        s,
        "  {:<32} {:<14} {:>4} {:<10} {:<10} {:>20} {:>20}",
        "course", "citizen", "rev", "from", "to", "daily tariff", "amount"
    );
    for c in &b.courses {
        let daily = c
            .daily_tariff
            .map_or_else(|| "individual".to_owned(), danish_exact);
        let _ = writeln!(
            s,
            "  {:<32} {:<14} {:>4} {:<10} {:<10} {:>20} {:>20}",
            c.course.0,
            c.citizen.short(),
            c.revision,
            c.first_day,
            c.last_day,
            format!("{} x {daily}", c.days),
            danish_exact(c.amount)
        );
    }
    let width = 32 + 14 + 4 + 10 + 10 + 20 + 5;
    let _ = writeln!(
        s,
        "  {:<width$} {:>20}",
        "sum, exact",
        danish_exact(b.month_to_date_exact)
    );
    let _ = writeln!(
        s,
        "  {:<width$} {:>20}",
        "month to date, rounded",
        danish_exact(b.month_to_date)
    );
    let _ = writeln!(
        s,
        "  {:<width$} {:>20}",
        format!("posted before ({} voucher(s))", v.earlier.len()),
        danish_exact(-b.already_posted)
    );
    let _ = writeln!(
        s,
        "  {:<width$} {:>20}",
        "this voucher",
        danish_exact(v.amount)
    );
    if v.adds_up == Some(false) {
        let _ = writeln!(
            s,
            "  ! the recorded basis does not add up to the voucher's amount"
        );
    }
    for (n, a) in &v.earlier {
        let shown = a
            .parse::<Decimal>()
            .map_or_else(|_| a.clone(), danish_exact);
        let _ = writeln!(s, "    earlier {n}: {shown}");
    }
    s
}
