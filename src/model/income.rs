//! Team income per day and period, and the nightly posting deltas.

use super::course::{Course, CourseId};
use super::history::CitizenHistory;
use super::money::round_money;
use crate::domain::{Pseudonym, SourceId, TeamId, Track};
use crate::mapping::Mappings;
use chrono::{Datelike, Days, NaiveDate};
use rust_decimal::Decimal;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// Who is paid for a course-day.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Payee {
    /// The team the citizen is assigned to that day.
    Team(TeamId),
    /// No team assignment that day: the configured fallback cost centre.
    Unassigned,
}

impl Payee {
    /// The team id, or `unassigned`.
    pub fn as_str(&self) -> &str {
        match self {
            Payee::Team(id) => id.as_str(),
            Payee::Unassigned => "unassigned",
        }
    }
}

impl fmt::Display for Payee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    /// Year.
    pub year: i32,
    /// Month, 1-12.
    pub month: u32,
}

impl YearMonth {
    /// The month a day falls in.
    pub fn of(day: NaiveDate) -> Self {
        Self {
            year: day.year(),
            month: day.month(),
        }
    }

    /// The first day of the month.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("valid month")
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for YearMonth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for YearMonth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bad = || serde::de::Error::custom("a month is written YYYY-MM");
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        let (year, month) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)?;
        Ok(YearMonth { year, month })
    }
}

/// What a line of income is about: who, which track, which month.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IncomeKey {
    /// The team (or the fallback).
    pub payee: Payee,
    /// The track.
    pub track: Track,
    /// The month.
    pub month: YearMonth,
}

/// Income of one team, track and month, exact (not rounded).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IncomeLine {
    /// Number of course-days paid.
    pub course_days: u32,
    /// Sum of their daily tariffs, exact.
    pub amount: Decimal,
}

/// A data-quality finding: something in the data the model could not use as it stands.
/// Findings are reported, never silently dropped.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(tag = "finding", rename_all = "snake_case")]
pub enum Finding {
    /// A grant's intervention code is not in the mappings: it bears no tariff until mapped.
    UnknownCode {
        /// The citizen.
        citizen: Pseudonym,
        /// The grant.
        grant: SourceId,
        /// The unknown code.
        code: String,
    },
    /// No tariff table is in force for the track on the day a course would start.
    NoTariffTable {
        /// The citizen.
        citizen: Pseudonym,
        /// The track.
        track: Track,
        /// The day.
        day: NaiveDate,
    },
    /// The need score falls in no group of the table (and the table has no individual rule).
    NoNeedGroup {
        /// The citizen.
        citizen: Pseudonym,
        /// The track.
        track: Track,
        /// The day.
        day: NaiveDate,
        /// The need score.
        score: u32,
    },
    /// A grant's code is mapped `individual`, but the track's table has no individual rule:
    /// the course was judged as development or stabilisation instead.
    NoIndividualRule {
        /// The citizen.
        citizen: Pseudonym,
        /// The track.
        track: Track,
        /// The day.
        day: NaiveDate,
    },
    /// A tariff table changed after recorded decisions used it: they keep their locked
    /// tariffs; `reprice` applies the new table to them.
    TariffTableChanged {
        /// The track.
        track: Track,
        /// The tariff year.
        year: i32,
        /// How many recorded decisions used the table as it was.
        decisions: u32,
    },
    /// Course-days without a team assignment, paid to the fallback cost centre.
    DaysWithoutTeam {
        /// The citizen.
        citizen: Pseudonym,
        /// The track.
        track: Track,
        /// The month.
        month: YearMonth,
        /// How many days.
        days: u32,
        /// The custodian SOR code reported for those days that no team in `teams.toml` has
        /// (`None`: no roster line and no custodian at all).
        #[serde(skip_serializing_if = "Option::is_none")]
        unmapped_sor: Option<String>,
    },
}

impl Finding {
    /// Every kind's name.
    pub const KINDS: [&'static str; 6] = [
        "unknown_code",
        "no_tariff_table",
        "no_need_group",
        "no_individual_rule",
        "tariff_table_changed",
        "days_without_team",
    ];

    /// The kind's name (its serde tag): `unknown_code`, `tariff_table_changed`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Finding::UnknownCode { .. } => "unknown_code",
            Finding::NoTariffTable { .. } => "no_tariff_table",
            Finding::NoNeedGroup { .. } => "no_need_group",
            Finding::NoIndividualRule { .. } => "no_individual_rule",
            Finding::TariffTableChanged { .. } => "tariff_table_changed",
            Finding::DaysWithoutTeam { .. } => "days_without_team",
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::UnknownCode {
                citizen,
                grant,
                code,
            } => write!(
                f,
                "citizen {}: grant {grant} has intervention code `{code}`, which is not in the mappings; it bears no tariff until it is mapped",
                citizen.short()
            ),
            Finding::NoTariffTable {
                citizen,
                track,
                day,
            } => write!(
                f,
                "citizen {}: no {track} tariff table is in force on {day}; no course could start",
                citizen.short()
            ),
            Finding::NoNeedGroup {
                citizen,
                track,
                day,
                score,
            } => write!(
                f,
                "citizen {}: need score {score} on {day} falls in no {track} need group",
                citizen.short()
            ),
            Finding::NoIndividualRule {
                citizen,
                track,
                day,
            } => write!(
                f,
                "citizen {}: a grant is mapped individual on {day}, but the {track} tariff table has no individual rule",
                citizen.short()
            ),
            Finding::TariffTableChanged {
                track,
                year,
                decisions,
            } => write!(
                f,
                "the {track} tariff table {year} has changed since {decisions} recorded decision(s) used it; they keep their locked tariffs. To apply the new table to them: progression-gateway reprice --table {track}/{year} --reason \"...\""
            ),
            Finding::DaysWithoutTeam {
                citizen,
                track,
                month,
                days,
                unmapped_sor,
            } => {
                write!(
                    f,
                    "citizen {}: {days} {track} course-days in {month} without a team, paid to the fallback cost centre",
                    citizen.short()
                )?;
                match unmapped_sor {
                    Some(sor) => {
                        write!(f, " (the custodian SOR code `{sor}` is not in teams.toml)")
                    }
                    None => f.write_str(" (no roster line and no custodian SOR code)"),
                }
            }
        }
    }
}

/// The custodian SOR code in force on `day` (the same rule as [`team_on`] uses), if any.
fn custodian_on(history: &CitizenHistory, day: NaiveDate) -> Option<&str> {
    let custodians = &history.custodians;
    custodians
        .iter()
        .rev()
        .find(|(on, _)| on.is_none_or(|on| on <= day))
        .or_else(|| custodians.first())
        .map(|(_, sor)| sor.as_deref())
        .or_else(|| Some(history.profile.as_ref()?.custodian_sor.as_deref()))?
}

/// The team a citizen is assigned to on `day`: the roster assignment covering the day that
/// started last, else the team of the custodian SOR code reported last on or before the day
/// (before the first report, the first reported custodian).
pub fn team_on(history: &CitizenHistory, mappings: &Mappings, day: NaiveDate) -> Option<TeamId> {
    history
        .assignments
        .iter()
        .filter(|a| a.covers(day))
        .max_by_key(|a| a.from)
        .map(|a| a.team.clone())
        .or_else(|| {
            let custodians = &history.custodians;
            let sor = custodians
                .iter()
                .rev()
                .find(|(on, _)| on.is_none_or(|on| on <= day))
                .or_else(|| custodians.first())
                .map(|(_, sor)| sor.as_deref())
                .or_else(|| Some(history.profile.as_ref()?.custodian_sor.as_deref()))??;
            mappings.team_for_sor(sor).map(|t| t.id.clone())
        })
}

/// What one course contributes to one line of income: its days in the line and their sum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CourseShare {
    /// The course.
    pub course: CourseId,
    /// The ledger revision it was paid at.
    pub revision: u32,
    /// The citizen.
    pub citizen: Pseudonym,
    /// First day of the course in the line.
    pub first_day: NaiveDate,
    /// Last day of the course in the line.
    pub last_day: NaiveDate,
    /// Number of its days in the line.
    pub days: u32,
    /// The locked daily tariff (`None` for an individual course, paid by the day's grants).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub daily_tariff: Option<Decimal>,
    /// Sum of its days' tariffs, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// Income report: lines per team, track and month, and the days without a team.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncomeReport {
    /// Exact income per key.
    pub lines: BTreeMap<IncomeKey, IncomeLine>,
    /// Each line's course shares, by course.
    pub shares: BTreeMap<IncomeKey, Vec<CourseShare>>,
    /// Days without a team, per citizen, track and month.
    pub findings: Vec<Finding>,
}

impl IncomeReport {
    /// Adds `other` (the income of other citizens over the same period): lines are summed,
    /// shares and findings appended. Merging the reports of citizens one by one gives the
    /// report of all of them at once.
    pub fn merge(&mut self, other: IncomeReport) {
        for (key, line) in other.lines {
            let l = self.lines.entry(key).or_default();
            l.course_days += line.course_days;
            l.amount += line.amount;
        }
        for (key, shares) in other.shares {
            self.shares.entry(key).or_default().extend(shares);
        }
        self.findings.extend(other.findings);
    }
}

/// Team income over `from..=to`: every day of every course is paid to the team the citizen is
/// assigned to that day, at the course's daily tariff for that day. Exact decimals.
pub fn income<'a>(
    citizens: impl IntoIterator<Item = (&'a CitizenHistory, &'a [Course])>,
    mappings: &Mappings,
    from: NaiveDate,
    to: NaiveDate,
) -> IncomeReport {
    let mut report = IncomeReport::default();
    for (history, courses) in citizens {
        let runs = day_runs(history, courses, mappings, from, to);
        add_runs(&mut report, history.citizen.as_ref(), &runs, from, to);
    }
    report
}

/// Consecutive days of one course paid alike: to the same payee (and, for days without a
/// team, under the same custodian SOR code), at the same daily amount. What a citizen's
/// income is made of; [`add_runs`] turns runs into lines, shares and findings, so runs kept
/// from an earlier computation give the same report as computing afresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DayRun {
    /// The course.
    pub course: CourseId,
    /// Its ledger revision.
    pub revision: u32,
    /// The citizen.
    pub citizen: Pseudonym,
    /// The course's track.
    pub track: Track,
    /// Who is paid: a team id, or `None` for days without a team.
    pub team: Option<TeamId>,
    /// For days without a team: the custodian SOR code those days.
    pub custodian: Option<String>,
    /// The first day.
    pub first_day: NaiveDate,
    /// The last day.
    pub last_day: NaiveDate,
    /// The locked daily tariff (`None` for an individual course).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub daily_tariff: Option<Decimal>,
    /// Each day's amount, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// A citizen's courses over `from..=to` as [`DayRun`]s, course by course, day by day.
pub fn day_runs(
    history: &CitizenHistory,
    courses: &[Course],
    mappings: &Mappings,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<DayRun> {
    let mut runs: Vec<DayRun> = Vec::new();
    for course in courses {
        let first = course.start.max(from);
        let last = course.end.min(to);
        let daily_tariff = match course.tariff {
            super::course::DailyTariff::Locked { amount } => Some(amount),
            super::course::DailyTariff::Individual { .. } => None,
        };
        let mut day = first;
        let mut open = false;
        while day <= last {
            let team = team_on(history, mappings, day);
            let custodian = match team {
                Some(_) => None,
                None => custodian_on(history, day).map(str::to_owned),
            };
            let amount = course.daily_amount(day, history, mappings);
            match runs.last_mut() {
                Some(r)
                    if open
                        && r.team == team
                        && r.custodian == custodian
                        && r.amount == amount
                        && r.last_day + Days::new(1) == day =>
                {
                    r.last_day = day;
                }
                _ => runs.push(DayRun {
                    course: course.id.clone(),
                    revision: course.revision,
                    citizen: course.citizen.clone(),
                    track: course.track,
                    team,
                    custodian,
                    first_day: day,
                    last_day: day,
                    daily_tariff,
                    amount,
                }),
            }
            open = true;
            day = day + Days::new(1);
        }
    }
    runs
}

/// Adds one citizen's runs, clipped to `from..=to`, to `report`: course-days to their lines,
/// shares and days-without-team findings, exactly as if computed day by day.
pub fn add_runs(
    report: &mut IncomeReport,
    citizen: Option<&Pseudonym>,
    runs: &[DayRun],
    from: NaiveDate,
    to: NaiveDate,
) {
    let mut unassigned: BTreeMap<(Track, YearMonth), (u32, Option<String>)> = BTreeMap::new();
    for run in runs {
        let mut day = run.first_day.max(from);
        let last = run.last_day.min(to);
        while day <= last {
            // One month of the run at a time.
            let month = YearMonth::of(day);
            let month_last = month
                .first_day()
                .checked_add_months(chrono::Months::new(1))
                .and_then(|d| d.pred_opt())
                .unwrap_or(NaiveDate::MAX);
            let seg_last = last.min(month_last);
            let days = (seg_last - day).num_days() as u32 + 1;
            let payee = match &run.team {
                Some(team) => Payee::Team(team.clone()),
                None => {
                    let e = unassigned.entry((run.track, month)).or_default();
                    e.0 += days;
                    if e.1.is_none() {
                        e.1 = run.custodian.clone();
                    }
                    Payee::Unassigned
                }
            };
            let key = IncomeKey {
                payee,
                track: run.track,
                month,
            };
            // Summed day by day, as the days are paid (an individual course's amounts are not
            // round numbers: the same additions give the same digits).
            let shares = report.shares.entry(key.clone()).or_default();
            match shares.last_mut() {
                Some(s) if s.course == run.course && s.last_day + Days::new(1) == day => {
                    s.last_day = seg_last;
                    s.days += days;
                    for _ in 0..days {
                        s.amount += run.amount;
                    }
                }
                _ => {
                    let mut amount = Decimal::ZERO;
                    for _ in 0..days {
                        amount += run.amount;
                    }
                    shares.push(CourseShare {
                        course: run.course.clone(),
                        revision: run.revision,
                        citizen: run.citizen.clone(),
                        first_day: day,
                        last_day: seg_last,
                        days,
                        daily_tariff: run.daily_tariff,
                        amount,
                    });
                }
            }
            let line = report.lines.entry(key).or_default();
            line.course_days += days;
            for _ in 0..days {
                line.amount += run.amount;
            }
            day = seg_last + Days::new(1);
        }
    }
    if let Some(citizen) = citizen {
        for ((track, month), (days, unmapped_sor)) in unassigned {
            report.findings.push(Finding::DaysWithoutTeam {
                citizen: citizen.clone(),
                track,
                month,
                days,
                unmapped_sor,
            });
        }
    }
}

/// One nightly posting amount: the rounded month-to-date income minus what was already posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostingDelta {
    /// Team, track and month.
    pub key: IncomeKey,
    /// Month-to-date income rounded to øre.
    pub month_to_date: Decimal,
    /// Sum of what was already posted for the key.
    pub already_posted: Decimal,
    /// What to post now (negative: a correction).
    pub amount: Decimal,
}

/// The nightly deltas: for each team, track and month, the month-to-date income rounded half
/// away from zero to øre, minus what was already posted. Keys whose income vanished (a
/// withdrawn grant, an earlier death) get a correction of everything posted. Zero deltas are
/// left out. The sum of all postings of a month therefore equals its rounded total exactly.
pub fn nightly_deltas(
    month_to_date: &BTreeMap<IncomeKey, IncomeLine>,
    posted: &BTreeMap<IncomeKey, Decimal>,
) -> Vec<PostingDelta> {
    let keys: std::collections::BTreeSet<&IncomeKey> =
        month_to_date.keys().chain(posted.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let mtd = round_money(month_to_date.get(key).map_or(Decimal::ZERO, |l| l.amount));
            let already = posted.get(key).copied().unwrap_or(Decimal::ZERO);
            let amount = round_money(mtd - already);
            (!amount.is_zero()).then(|| PostingDelta {
                key: key.clone(),
                month_to_date: mtd,
                already_posted: round_money(already),
                amount,
            })
        })
        .collect()
}
