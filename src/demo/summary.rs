//! The demo's summary: per team, what the nightly run produced, read back from the store; the
//! data-quality findings; the run's outcome. Printed as a table or as one JSON object.

use crate::domain::{CourseKind, Pseudonym, Track};
use crate::mapping::Mappings;
use crate::model::{
    CitizenHistory, Course, Finding, Payee, YearMonth, income, round_money, team_on,
};
use crate::run::Report;
use crate::sinks::finance::VoucherState;
use crate::store::{Outcome, RunCounts, Store};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

/// How many findings are shown as examples.
pub const FINDING_EXAMPLES: usize = 5;

/// The name of the row of course-days without a team (paid to the fallback cost centre).
pub const UNASSIGNED: &str = "unassigned";

/// What the demo did, for a person (a table) or a program (JSON).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Simulated citizens.
    pub citizens: usize,
    /// Simulated days.
    pub days: u32,
    /// The first simulated day.
    pub start: NaiveDate,
    /// The last simulated day: the nightly run's as-of date.
    pub as_of: NaiveDate,
    /// The as-of date's month: the month of [`TeamSummary::income_this_month`].
    pub month: YearMonth,
    /// One row per team of the mappings, in their order.
    pub teams: Vec<TeamSummary>,
    /// Course-days without a team (paid to the fallback cost centre), if there were any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unassigned: Option<TeamSummary>,
    /// The run's data-quality findings.
    pub findings: FindingSummary,
    /// The nightly run.
    pub run: RunSummary,
    /// Where the demo's files are, if they were kept.
    pub kept: Option<PathBuf>,
    /// Wall time of the whole demo in seconds (set at its very end).
    pub wall_time_secs: f64,
}

/// One team's row.
///
/// - `citizens` and `courses`: citizens with a course running on the as-of day (its first
///   paid day on or before it, its last paid day on or after it), counted under the team they
///   belong to that day ([`team_on`]). A citizen counts once in `citizens`, and once under each
///   kind of course it has running (a citizen with a care course and a nursing course of
///   different kinds counts under both kinds), so the kinds may add up to more than `citizens`.
/// - `income_this_month`: the team's income of the as-of day's month up to the as-of day,
///   rounded to øre per track ([`round_money`], as each posting is) and summed over the
///   tracks: what the vouchers of that month post to the team.
/// - `vouchers_sent` / `vouchers_accepted`: the team's vouchers in the outbox that were
///   delivered (state sent, accepted or rejected) / that the finance system accepted.
/// - `decisions_written`: ChargeItems written to the care system for the team's courses, the
///   team of a course being the team on its first day (the day its tariff was decided).
#[derive(Debug, Clone, Serialize)]
pub struct TeamSummary {
    /// The team's id (or `unassigned`).
    pub team: String,
    /// The team's name.
    pub name: String,
    /// The team's cost centre (for `unassigned`: the fallback cost centre).
    pub cost_centre: String,
    /// Distinct citizens with a course running on the as-of day.
    pub citizens: usize,
    /// Of those, by kind of course.
    pub courses: KindCounts,
    /// Income of the as-of month up to the as-of day, rounded per track, DKK.
    pub income_this_month: Decimal,
    /// The same per track (`care`, `nursing`), each rounded to øre.
    pub income_this_month_by_track: BTreeMap<String, Decimal>,
    /// Vouchers delivered to the finance system.
    pub vouchers_sent: usize,
    /// Vouchers the finance system accepted.
    pub vouchers_accepted: usize,
    /// ChargeItems written for the team's courses.
    pub decisions_written: usize,
}

/// Citizens by kind of running course.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    /// With a stabilisation course running.
    pub stabilisation: usize,
    /// With a development course running.
    pub development: usize,
    /// With an individual course running.
    pub individual: usize,
}

/// The run's data-quality findings: counts by kind and a few examples (citizens by
/// pseudonym only).
#[derive(Debug, Clone, Default, Serialize)]
pub struct FindingSummary {
    /// All findings.
    pub total: usize,
    /// By kind (`unknown_code`, `no_tariff_table`, `no_need_group`, `no_individual_rule`,
    /// `days_without_team`).
    pub by_kind: BTreeMap<String, usize>,
    /// The first [`FINDING_EXAMPLES`], as sentences.
    pub examples: Vec<String>,
}

/// The nightly run, as journaled.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Its number in the journal.
    pub id: i64,
    /// How it went.
    pub outcome: Outcome,
    /// What it did.
    pub counts: RunCounts,
    /// What went wrong.
    pub errors: Vec<String>,
}

/// The kind name of a finding (its serde tag).
pub fn finding_kind(f: &Finding) -> &'static str {
    f.kind()
}

/// What the summary is computed for.
pub(crate) struct Scope {
    pub(crate) citizens: usize,
    pub(crate) days: u32,
    pub(crate) start: NaiveDate,
    pub(crate) as_of: NaiveDate,
}

#[derive(Default)]
struct Acc {
    citizens: HashSet<Pseudonym>,
    by_kind: HashMap<CourseKind, HashSet<Pseudonym>>,
    income: BTreeMap<Track, Decimal>,
    sent: usize,
    accepted: usize,
    decisions: usize,
}

impl Acc {
    fn is_empty(&self) -> bool {
        self.citizens.is_empty()
            && self.income.is_empty()
            && self.sent == 0
            && self.accepted == 0
            && self.decisions == 0
    }
}

/// Reads what the run left in the store and sums it up per team.
pub(crate) async fn collect(
    store: &Store,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    report: &Report,
    scope: Scope,
) -> anyhow::Result<Summary> {
    let as_of = scope.as_of;
    // The same pipeline as the run: the recorded decisions read back as of the run's date.
    let eval = crate::pipeline::evaluate(store, mappings, tz, as_of).await?;
    let mut histories: HashMap<Pseudonym, CitizenHistory> = HashMap::new();
    let mut courses: HashMap<Pseudonym, Vec<Course>> = HashMap::new();
    for (h, cs) in eval.histories.into_iter().zip(eval.courses) {
        if let Some(who) = h.citizen.clone() {
            if !cs.is_empty() {
                courses.insert(who.clone(), cs);
            }
            histories.insert(who, h);
        }
    }
    let payee_name = |p: Option<crate::domain::TeamId>| {
        p.map_or_else(|| UNASSIGNED.to_owned(), |t| t.as_str().to_owned())
    };
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();

    for (who, list) in &courses {
        let Some(history) = histories.get(who) else {
            anyhow::bail!(
                "the store holds courses of citizen {} without records",
                who.short()
            );
        };
        for c in list {
            if c.start <= as_of && as_of <= c.end {
                let a = acc
                    .entry(payee_name(team_on(history, mappings, as_of)))
                    .or_default();
                a.citizens.insert(who.clone());
                a.by_kind.entry(c.kind).or_default().insert(who.clone());
            }
            if store.decision_hash(&c.id.0).await?.is_some() {
                acc.entry(payee_name(team_on(history, mappings, c.start)))
                    .or_default()
                    .decisions += 1;
            }
        }
    }

    let month = YearMonth::of(as_of);
    let pairs: Vec<(&CitizenHistory, &[Course])> = histories
        .iter()
        .map(|(who, h)| (h, courses.get(who).map_or(&[][..], Vec::as_slice)))
        .collect();
    let report_income = income(pairs, mappings, month.first_day(), as_of);
    for (key, line) in &report_income.lines {
        if key.month != month {
            continue;
        }
        let name = match &key.payee {
            Payee::Team(t) => t.as_str().to_owned(),
            Payee::Unassigned => UNASSIGNED.to_owned(),
        };
        *acc.entry(name)
            .or_default()
            .income
            .entry(key.track)
            .or_default() += round_money(line.amount);
    }

    for v in store.vouchers().await? {
        let a = acc.entry(v.voucher.team.clone()).or_default();
        if v.state != VoucherState::Pending {
            a.sent += 1;
        }
        if v.state == VoucherState::Accepted {
            a.accepted += 1;
        }
    }

    let row = |id: &str, name: &str, cost_centre: &str, a: Acc| {
        let kind = |k: CourseKind| a.by_kind.get(&k).map_or(0, HashSet::len);
        TeamSummary {
            team: id.to_owned(),
            name: name.to_owned(),
            cost_centre: cost_centre.to_owned(),
            citizens: a.citizens.len(),
            courses: KindCounts {
                stabilisation: kind(CourseKind::Stabilisation),
                development: kind(CourseKind::Development),
                individual: kind(CourseKind::Individual),
            },
            income_this_month: round_money(a.income.values().copied().sum()),
            income_this_month_by_track: a
                .income
                .iter()
                .map(|(t, v)| (t.as_str().to_owned(), round_money(*v)))
                .collect(),
            vouchers_sent: a.sent,
            vouchers_accepted: a.accepted,
            decisions_written: a.decisions,
        }
    };
    let teams: Vec<TeamSummary> = mappings
        .teams
        .iter()
        .map(|t| {
            let id = t.team.id.as_str();
            let a = acc.remove(id).unwrap_or_default();
            row(id, &t.team.name, t.team.cost_centre.as_str(), a)
        })
        .collect();
    let fallback = mappings.accounts.as_ref().map_or(String::new(), |a| {
        a.fallback_cost_centre.as_str().to_owned()
    });
    let unassigned = acc
        .remove(UNASSIGNED)
        .filter(|a| !a.is_empty())
        .map(|a| row(UNASSIGNED, "no team", &fallback, a));
    if let Some(other) = acc.keys().next() {
        anyhow::bail!("the store names a team `{other}` that is not in the mappings");
    }

    let mut findings = FindingSummary {
        total: report.findings.len(),
        ..FindingSummary::default()
    };
    for f in &report.findings {
        *findings
            .by_kind
            .entry(finding_kind(f).to_owned())
            .or_default() += 1;
    }
    findings.examples = report
        .findings
        .iter()
        .take(FINDING_EXAMPLES)
        .map(ToString::to_string)
        .collect();

    Ok(Summary {
        citizens: scope.citizens,
        days: scope.days,
        start: scope.start,
        as_of,
        month,
        teams,
        unassigned,
        findings,
        run: RunSummary {
            id: report.id,
            outcome: report.outcome,
            counts: report.counts.clone(),
            errors: report.errors.clone(),
        },
        kept: None,
        wall_time_secs: 0.0,
    })
}

/// The last line of the demo's output.
pub fn wall_time_line(secs: f64) -> String {
    format!("demo finished in {secs:.1} s")
}

/// Writes the summary as one JSON object and a newline.
pub fn write_json(summary: &Summary, out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, summary)?;
    writeln!(out)
}

/// Writes the summary as a table for people, ending with the wall time line.
pub fn write_table(summary: &Summary, out: &mut impl Write) -> std::io::Result<()> {
    let s = summary;
    let last_sim = s.start + chrono::Days::new(u64::from(s.days.saturating_sub(1)));
    writeln!(
        out,
        "Simulated municipality: {} citizens, {} days ({} to {}); nightly run as of {}.",
        s.citizens, s.days, s.start, last_sim, s.as_of
    )?;
    writeln!(out)?;
    let income_head = format!("income {} (DKK)", s.month);
    let header = [
        "team",
        "name",
        "cost centre",
        "citizens",
        "stabilisation",
        "development",
        "individual",
        income_head.as_str(),
        "vouchers sent",
        "accepted",
        "decisions",
    ];
    let mut rows: Vec<[String; 11]> = Vec::new();
    let mut cells = |t: &TeamSummary| {
        rows.push([
            t.team.clone(),
            t.name.clone(),
            t.cost_centre.clone(),
            t.citizens.to_string(),
            t.courses.stabilisation.to_string(),
            t.courses.development.to_string(),
            t.courses.individual.to_string(),
            t.income_this_month.to_string(),
            t.vouchers_sent.to_string(),
            t.vouchers_accepted.to_string(),
            t.decisions_written.to_string(),
        ]);
    };
    for t in s.teams.iter().chain(s.unassigned.iter()) {
        cells(t);
    }
    let all: Vec<&TeamSummary> = s.teams.iter().chain(s.unassigned.iter()).collect();
    let sum = |f: &dyn Fn(&TeamSummary) -> usize| all.iter().map(|t| f(t)).sum::<usize>();
    rows.push([
        "total".to_owned(),
        String::new(),
        String::new(),
        sum(&|t| t.citizens).to_string(),
        sum(&|t| t.courses.stabilisation).to_string(),
        sum(&|t| t.courses.development).to_string(),
        sum(&|t| t.courses.individual).to_string(),
        round_money(all.iter().map(|t| t.income_this_month).sum()).to_string(),
        sum(&|t| t.vouchers_sent).to_string(),
        sum(&|t| t.vouchers_accepted).to_string(),
        sum(&|t| t.decisions_written).to_string(),
    ]);
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Text columns to the left, numbers to the right.
    let line = |cells: &[&str]| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 3 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    writeln!(out, "{}", line(&header))?;
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "citizens: with a course running on {}, under the team they belong to that day; the kinds \
         count each citizen once per kind of running course (care and nursing may differ).",
        s.as_of
    )?;
    writeln!(
        out,
        "income: {} up to {}, rounded per track as posted; decisions: ChargeItems written, by the \
         team on each course's first day.",
        s.month, s.as_of
    )?;
    writeln!(out)?;
    if s.findings.total == 0 {
        writeln!(out, "Data-quality findings: none.")?;
    } else {
        let kinds: Vec<String> = s
            .findings
            .by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        writeln!(
            out,
            "Data-quality findings: {} ({}). For example:",
            s.findings.total,
            kinds.join(", ")
        )?;
        for e in &s.findings.examples {
            writeln!(out, "  - {e}")?;
        }
    }
    writeln!(out)?;
    let c = &s.run.counts;
    writeln!(
        out,
        "Nightly run {}: {} ({} record versions pulled, {} courses, {} vouchers created, {} sent, \
         {} accepted, {} rejected, {} decisions written).",
        s.run.id,
        s.run.outcome,
        c.records_pulled,
        c.courses,
        c.vouchers_created,
        c.vouchers_sent,
        c.vouchers_accepted,
        c.vouchers_rejected,
        c.decisions_written
    )?;
    for e in &s.run.errors {
        writeln!(out, "  error: {e}")?;
    }
    if let Some(dir) = &s.kept {
        writeln!(
            out,
            "Files kept in {} (configuration gateway.toml, store gateway.db).",
            dir.display()
        )?;
    }
    writeln!(out, "{}", wall_time_line(s.wall_time_secs))
}
