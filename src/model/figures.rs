//! Steering figures (the cockpit): flow per team, month and track, and for the whole
//! municipality, from the courses and the citizen histories. Pure: no I/O, no clock.
//!
//! Every figure is defined once in [`CATALOGUE`] (id, name, definition, numerator,
//! denominator, level), the way national key-figure catalogues define theirs, and computed
//! from additive counts in a [`Tally`] per [`Cell`]: [`add_citizen`] adds one citizen's
//! contribution, so the figures of a municipality are computed citizen by citizen.
//!
//! Rules (`progression-model.md`, "Steering figures"):
//! - a course-day belongs to the team the citizen is assigned to that day ([`team_on`]);
//! - a course *starts* (inflow) in the month and team of its first day, and *ends* (outflow)
//!   in those of its last day, counted only once that day is on or before the as-of date;
//! - an ended course's *successor* is the citizen's course in the same track starting the day
//!   after it ended;
//! - *progression*: of the ended development courses, the need score at the start against the
//!   score from what was known on the last day ([`need_score_on`], by the basis of the
//!   course's tariff table);
//! - *self-reliance*: an ended development course after which the citizen has no active grant
//!   in the track on the day after;
//! - *continuity*: per citizen and 14-day block of a month (days 1-14, 15-28, 29 to the end),
//!   the distinct employees among the visits that carry one, at the team of the block's first
//!   such visit; blocks without a performer are "no data", never 0;
//! - *time*: delivered minutes (visit end minus start) against the minutes the income pays
//!   for at the hourly rate of the course's tariff table;
//! - a visit's track is the track of the first grant it delivered that the mappings know.

use super::course::{Course, has_active_grant, need_score_on};
use super::history::CitizenHistory;
use super::income::{YearMonth, day_runs, team_on};
use crate::domain::{CourseKind, DeliveryMode, Pseudonym, TeamId, Track};
use crate::mapping::Mappings;
use chrono::{Datelike, Days, NaiveDate};
use chrono_tz::Tz;
use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Decimals a share or mean is given with, rounded half away from zero.
pub const FIGURE_DECIMALS: u32 = 4;
/// How figures are rounded: half away from zero.
pub const FIGURE_ROUNDING: RoundingStrategy = RoundingStrategy::MidpointAwayFromZero;

/// Who a cell is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "scope", content = "team", rename_all = "snake_case")]
pub enum Scope {
    /// One team.
    Team(TeamId),
    /// Days without a team assignment.
    Unassigned,
    /// The whole municipality (every team and the unassigned days).
    Municipality,
}

/// One cell of the figures: a scope, a month and a track.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Cell {
    /// Team, unassigned or the municipality.
    pub scope: Scope,
    /// The month.
    pub month: YearMonth,
    /// The track.
    pub track: Track,
}

/// The additive counts of one cell; every figure is a ratio of two of them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Tally {
    /// Distinct citizens with a course-day in the cell.
    pub citizens: u64,
    /// Distinct citizens with a course-day, by kind.
    pub citizens_by_kind: BTreeMap<CourseKind, u64>,
    /// Course-days, by kind.
    pub course_days: BTreeMap<CourseKind, u64>,
    /// Courses started, by kind.
    pub started: BTreeMap<CourseKind, u64>,
    /// Courses ended, by kind.
    pub ended: BTreeMap<CourseKind, u64>,
    /// Courses ended, by end reason (`planned`, `death`, ...).
    pub ended_by_reason: BTreeMap<String, u64>,
    /// Ended courses by kind and the kind of the successor (`None`: no successor).
    pub transitions: BTreeMap<(CourseKind, Option<CourseKind>), u64>,
    /// Ended development courses.
    pub development_ended: u64,
    /// Of those, with a need score lower at the end than at the start.
    pub score_fell: u64,
    /// Of those, with the same need score.
    pub score_stayed: u64,
    /// Of those, with a higher need score.
    pub score_rose: u64,
    /// Sum over them of the score at the end minus the score at the start.
    pub score_change: i64,
    /// Ended development courses after which the citizen has no active grant in the track.
    pub self_reliant: u64,
    /// Sum over citizen-blocks (14 days) of distinct employees on visits that carry one.
    pub block_employees: u64,
    /// Citizen-blocks with at least one visit that carries an employee.
    pub blocks_with_performer: u64,
    /// Visits (of a known track).
    pub visits: u64,
    /// Of those, with an employee.
    pub visits_with_performer: u64,
    /// Minutes delivered (visit end minus start).
    pub delivered_minutes: u64,
    /// Minutes the income pays for at the hourly rate of the course's table (only days of
    /// courses whose table has an hourly rate).
    pub paid_minutes: Decimal,
    /// Income, exact.
    pub income: Decimal,
    /// Nursing courses ended (the nursing track's `ended`, for the nursing figure).
    pub nursing_ended: u64,
    /// Visits at home or in a clinic.
    pub home_or_clinic_visits: u64,
    /// Of those, in a clinic.
    pub clinic_visits: u64,
}

impl Tally {
    /// Adds another tally's counts.
    pub fn merge(&mut self, o: &Tally) {
        fn add<K: Ord + Clone>(a: &mut BTreeMap<K, u64>, b: &BTreeMap<K, u64>) {
            for (k, v) in b {
                *a.entry(k.clone()).or_default() += v;
            }
        }
        self.citizens += o.citizens;
        add(&mut self.citizens_by_kind, &o.citizens_by_kind);
        add(&mut self.course_days, &o.course_days);
        add(&mut self.started, &o.started);
        add(&mut self.ended, &o.ended);
        add(&mut self.ended_by_reason, &o.ended_by_reason);
        add(&mut self.transitions, &o.transitions);
        self.development_ended += o.development_ended;
        self.score_fell += o.score_fell;
        self.score_stayed += o.score_stayed;
        self.score_rose += o.score_rose;
        self.score_change += o.score_change;
        self.self_reliant += o.self_reliant;
        self.block_employees += o.block_employees;
        self.blocks_with_performer += o.blocks_with_performer;
        self.visits += o.visits;
        self.visits_with_performer += o.visits_with_performer;
        self.delivered_minutes += o.delivered_minutes;
        self.paid_minutes += o.paid_minutes;
        self.income += o.income;
        self.nursing_ended += o.nursing_ended;
        self.home_or_clinic_visits += o.home_or_clinic_visits;
        self.clinic_visits += o.clinic_visits;
    }
}

/// The figures of a period: a tally per cell.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Figures {
    /// The tallies, by cell.
    pub cells: BTreeMap<Cell, Tally>,
}

impl Figures {
    /// Adds another set of figures (of other citizens).
    pub fn merge(&mut self, other: &Figures) {
        for (cell, t) in &other.cells {
            self.cells.entry(cell.clone()).or_default().merge(t);
        }
    }

    /// The tally of a cell (empty when nothing fell in it).
    pub fn tally(&self, cell: &Cell) -> Tally {
        self.cells.get(cell).cloned().unwrap_or_default()
    }
}

/// How one figure is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FigureDef {
    /// Stable id (API, CSV, the finance export).
    pub id: &'static str,
    /// Name, in Danish.
    pub name: &'static str,
    /// What it says, in Danish.
    pub definition: &'static str,
    /// What is counted.
    pub numerator: &'static str,
    /// What it is divided by (`None`: a count or an amount).
    pub denominator: Option<&'static str>,
    /// The level it is computed at.
    pub level: &'static str,
    /// How it is shown.
    pub unit: Unit,
}

/// How a figure's value is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// A whole number.
    Count,
    /// A share, 0-1 (shown as a percentage).
    Share,
    /// A mean or ratio.
    Ratio,
    /// Kroner.
    Money,
    /// Minutes.
    Minutes,
}

const LEVEL: &str = "team × måned × spor, og hele kommunen";

/// Every figure, defined once.
pub const CATALOGUE: &[FigureDef] = &[
    FigureDef {
        id: "citizens",
        name: "Borgere i forløb",
        definition: "Antal forskellige borgere med mindst én forløbsdag i måneden.",
        numerator: "borgere med en forløbsdag",
        denominator: None,
        level: LEVEL,
        unit: Unit::Count,
    },
    FigureDef {
        id: "course_days",
        name: "Forløbsdage",
        definition: "Antal betalte forløbsdage i måneden, alle forløbstyper.",
        numerator: "forløbsdage",
        denominator: None,
        level: LEVEL,
        unit: Unit::Count,
    },
    FigureDef {
        id: "inflow",
        name: "Tilgang",
        definition: "Forløb der starter i måneden (teamet på forløbets første dag).",
        numerator: "startede forløb",
        denominator: None,
        level: LEVEL,
        unit: Unit::Count,
    },
    FigureDef {
        id: "outflow",
        name: "Afgang",
        definition: "Forløb hvis sidste dag ligger i måneden, senest på opgørelsesdagen \
                     (teamet på forløbets sidste dag).",
        numerator: "afsluttede forløb",
        denominator: None,
        level: LEVEL,
        unit: Unit::Count,
    },
    FigureDef {
        id: "progression_fell",
        name: "Progression: lavere behov",
        definition: "Andel af de afsluttede udviklingsforløb hvor behovsscoren ved slut \
                     (seneste vurdering på eller før sidste dag) er lavere end ved start.",
        numerator: "afsluttede udviklingsforløb med faldende score",
        denominator: Some("afsluttede udviklingsforløb"),
        level: LEVEL,
        unit: Unit::Share,
    },
    FigureDef {
        id: "progression_stayed",
        name: "Progression: uændret behov",
        definition: "Andel af de afsluttede udviklingsforløb med samme behovsscore ved slut \
                     som ved start.",
        numerator: "afsluttede udviklingsforløb med uændret score",
        denominator: Some("afsluttede udviklingsforløb"),
        level: LEVEL,
        unit: Unit::Share,
    },
    FigureDef {
        id: "progression_rose",
        name: "Progression: højere behov",
        definition: "Andel af de afsluttede udviklingsforløb med højere behovsscore ved slut \
                     end ved start.",
        numerator: "afsluttede udviklingsforløb med stigende score",
        denominator: Some("afsluttede udviklingsforløb"),
        level: LEVEL,
        unit: Unit::Share,
    },
    FigureDef {
        id: "progression_mean_change",
        name: "Progression: gennemsnitlig ændring",
        definition: "Gennemsnitlig ændring i behovsscore (slut minus start) for de afsluttede \
                     udviklingsforløb; negativ er fremgang.",
        numerator: "summen af scoreændringer",
        denominator: Some("afsluttede udviklingsforløb"),
        level: LEVEL,
        unit: Unit::Ratio,
    },
    FigureDef {
        id: "self_reliance",
        name: "Selvhjulpenhed",
        definition: "Andel af de afsluttede udviklingsforløb hvor borgeren dagen efter ikke \
                     har en aktiv bevilling i sporet.",
        numerator: "afsluttede udviklingsforløb uden aktiv bevilling dagen efter",
        denominator: Some("afsluttede udviklingsforløb"),
        level: LEVEL,
        unit: Unit::Share,
    },
    FigureDef {
        id: "continuity",
        name: "Kontinuitet",
        definition: "Gennemsnitligt antal forskellige medarbejdere pr. borger pr. 14 dage \
                     (dag 1-14, 15-28 og 29 til månedens slut), af besøg med udførende \
                     medarbejder. Uden sådanne besøg: ingen data fra kilden.",
        numerator: "forskellige medarbejdere summeret over borger-perioder",
        denominator: Some("borger-perioder med besøg med udførende medarbejder"),
        level: LEVEL,
        unit: Unit::Ratio,
    },
    FigureDef {
        id: "time_ratio",
        name: "Leveret tid mod betalt tid",
        definition: "Leverede minutter (besøgenes varighed) i forhold til de minutter \
                     indtægten betaler for ved timeprisen.",
        numerator: "leverede minutter",
        denominator: Some("betalte minutter (indtægt / timepris × 60)"),
        level: LEVEL,
        unit: Unit::Ratio,
    },
    FigureDef {
        id: "nursing_ended",
        name: "Afsluttede sygeplejeforløb",
        definition: "Sygeplejeforløb hvis sidste dag ligger i måneden, senest på \
                     opgørelsesdagen.",
        numerator: "afsluttede sygeplejeforløb",
        denominator: None,
        level: LEVEL,
        unit: Unit::Count,
    },
    FigureDef {
        id: "clinic_share",
        name: "Andel i klinik",
        definition: "Andel af besøgene i hjemmet eller klinikken der blev leveret i klinikken.",
        numerator: "besøg i klinik",
        denominator: Some("besøg i hjemmet eller i klinik"),
        level: LEVEL,
        unit: Unit::Share,
    },
    FigureDef {
        id: "income",
        name: "Indtægt",
        definition: "Summen af forløbenes daglige takster for månedens forløbsdage.",
        numerator: "indtægt i kroner",
        denominator: None,
        level: LEVEL,
        unit: Unit::Money,
    },
];

/// The definition of a figure by id.
pub fn definition(id: &str) -> Option<&'static FigureDef> {
    CATALOGUE.iter().find(|d| d.id == id)
}

/// A figure's value in a cell: its numerator, denominator and their ratio (`None` where the
/// denominator is zero: no data, never 0).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Value {
    /// What is counted.
    pub numerator: Decimal,
    /// What it is divided by, for a ratio.
    pub denominator: Option<Decimal>,
    /// The figure, rounded to [`FIGURE_DECIMALS`]; `None`: no data.
    pub value: Option<Decimal>,
}

impl Value {
    fn count(n: impl Into<Decimal>) -> Self {
        let n = n.into();
        Self {
            numerator: n,
            denominator: None,
            value: Some(n),
        }
    }

    fn ratio(numerator: impl Into<Decimal>, denominator: impl Into<Decimal>) -> Self {
        let (n, d) = (numerator.into(), denominator.into());
        Self {
            numerator: n,
            denominator: Some(d),
            value: (!d.is_zero())
                .then(|| (n / d).round_dp_with_strategy(FIGURE_DECIMALS, FIGURE_ROUNDING)),
        }
    }
}

/// The value of figure `id` from a cell's tally (`None`: no such figure).
pub fn value(id: &str, t: &Tally) -> Option<Value> {
    let sum = |m: &BTreeMap<CourseKind, u64>| m.values().sum::<u64>();
    Some(match id {
        "citizens" => Value::count(t.citizens),
        "course_days" => Value::count(sum(&t.course_days)),
        "inflow" => Value::count(sum(&t.started)),
        "outflow" => Value::count(sum(&t.ended)),
        "progression_fell" => Value::ratio(t.score_fell, t.development_ended),
        "progression_stayed" => Value::ratio(t.score_stayed, t.development_ended),
        "progression_rose" => Value::ratio(t.score_rose, t.development_ended),
        "progression_mean_change" => Value::ratio(t.score_change, t.development_ended),
        "self_reliance" => Value::ratio(t.self_reliant, t.development_ended),
        "continuity" => Value::ratio(t.block_employees, t.blocks_with_performer),
        "time_ratio" => Value::ratio(Decimal::from(t.delivered_minutes), t.paid_minutes),
        "nursing_ended" => Value::count(t.nursing_ended),
        "clinic_share" => Value::ratio(t.clinic_visits, t.home_or_clinic_visits),
        "income" => Value {
            numerator: t.income,
            denominator: None,
            value: Some(t.income),
        },
        _ => return None,
    })
}

/// The last day of the month of `day`.
fn month_end(day: NaiveDate) -> NaiveDate {
    let next = if day.month() == 12 {
        NaiveDate::from_ymd_opt(day.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(day.year(), day.month() + 1, 1)
    };
    next.expect("the first of a month exists") - Days::new(1)
}

/// The 14-day block of a day in its month: 0 (days 1-14), 1 (15-28), 2 (29 to the end).
fn block_of(day: NaiveDate) -> u32 {
    (day.day() - 1) / 14
}

/// One citizen's contribution before it is added: a tally per cell, and the cells the
/// citizen has course-days in (counted once each).
#[derive(Default)]
struct Contribution {
    cells: BTreeMap<Cell, Tally>,
    present: BTreeSet<Cell>,
    present_by_kind: BTreeSet<(Cell, CourseKind)>,
}

impl Contribution {
    /// Applies `f` to the cell of the citizen's team (or the unassigned cell) and to the
    /// municipality's cell.
    fn add(
        &mut self,
        team: Option<&TeamId>,
        month: YearMonth,
        track: Track,
        mut f: impl FnMut(&mut Tally),
    ) {
        for scope in [
            team.map_or(Scope::Unassigned, |t| Scope::Team(t.clone())),
            Scope::Municipality,
        ] {
            f(self
                .cells
                .entry(Cell {
                    scope,
                    month,
                    track,
                })
                .or_default());
        }
    }

    fn present(&mut self, team: Option<&TeamId>, month: YearMonth, track: Track, kind: CourseKind) {
        for scope in [
            team.map_or(Scope::Unassigned, |t| Scope::Team(t.clone())),
            Scope::Municipality,
        ] {
            let cell = Cell {
                scope,
                month,
                track,
            };
            if self.present.insert(cell.clone()) {
                self.cells.entry(cell.clone()).or_default().citizens += 1;
            }
            if self.present_by_kind.insert((cell.clone(), kind)) {
                *self
                    .cells
                    .entry(cell)
                    .or_default()
                    .citizens_by_kind
                    .entry(kind)
                    .or_default() += 1;
            }
        }
    }
}

/// Adds one citizen's contribution over `from..=to` (`to`: the as-of date) to `figures`.
/// `courses` are the citizen's courses (recorded decisions and those as they would be
/// decided), `tz` the municipality's time zone (visits are instants).
pub fn add_citizen(
    figures: &mut Figures,
    history: &CitizenHistory,
    courses: &[Course],
    mappings: &Mappings,
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
) {
    let mut c = Contribution::default();
    let kind_of: BTreeMap<&super::CourseId, (CourseKind, &Course)> =
        courses.iter().map(|k| (&k.id, (k.kind, k))).collect();

    // Course-days and income, by the team of each day.
    for run in day_runs(history, courses, mappings, from, to) {
        let Some(&(kind, course)) = kind_of.get(&run.course) else {
            continue;
        };
        let rate = mappings
            .tariffs
            .table(course.track, course.tariff_year)
            .and_then(|t| t.individual)
            .map(|i| i.hourly_rate)
            .filter(|r| !r.is_zero());
        // Month by month: a run's days are paid alike.
        let mut first = run.first_day;
        while first <= run.last_day {
            let month = YearMonth::of(first);
            let last = month_end(first).min(run.last_day);
            let days = (last - first).num_days() + 1;
            let amount = run.amount * Decimal::from(days);
            c.present(run.team.as_ref(), month, run.track, kind);
            c.add(run.team.as_ref(), month, run.track, |t| {
                *t.course_days.entry(kind).or_default() += days as u64;
                t.income += amount;
                if let Some(rate) = rate {
                    t.paid_minutes += amount * Decimal::from(60) / rate;
                }
            });
            first = last + Days::new(1);
        }
    }

    // Inflow, outflow, transitions, progression, self-reliance.
    for course in courses {
        if (from..=to).contains(&course.start) {
            let team = team_on(history, mappings, course.start);
            c.add(
                team.as_ref(),
                YearMonth::of(course.start),
                course.track,
                |t| {
                    *t.started.entry(course.kind).or_default() += 1;
                },
            );
        }
        if !(from..=to).contains(&course.end) {
            continue;
        }
        let next_day = course.end + Days::new(1);
        let successor = courses
            .iter()
            .find(|n| n.track == course.track && n.start == next_day)
            .map(|n| n.kind);
        let progression = (course.kind == CourseKind::Development).then(|| {
            let basis = mappings
                .tariffs
                .table(course.track, course.tariff_year)
                .map(|t| t.basis);
            let end_score = basis
                .map(|b| need_score_on(history, mappings, course.track, b, course.end))
                .map_or(i64::from(course.need_score), i64::from);
            let change = end_score - i64::from(course.need_score);
            let reliant = !has_active_grant(history, mappings, course.track, next_day);
            (change, reliant)
        });
        let team = team_on(history, mappings, course.end);
        c.add(
            team.as_ref(),
            YearMonth::of(course.end),
            course.track,
            |t| {
                *t.ended.entry(course.kind).or_default() += 1;
                *t.ended_by_reason
                    .entry(course.end_reason.as_str().to_owned())
                    .or_default() += 1;
                *t.transitions.entry((course.kind, successor)).or_default() += 1;
                if course.track == Track::Nursing {
                    t.nursing_ended += 1;
                }
                if let Some((change, reliant)) = progression {
                    t.development_ended += 1;
                    t.score_change += change;
                    match change.signum() {
                        -1 => t.score_fell += 1,
                        0 => t.score_stayed += 1,
                        _ => t.score_rose += 1,
                    }
                    if reliant {
                        t.self_reliant += 1;
                    }
                }
            },
        );
    }

    // Visits: delivered minutes, performers, clinic share, continuity.
    let track_of_grant: BTreeMap<&crate::domain::SourceId, Track> = history
        .grants
        .iter()
        .filter_map(|g| Some((&g.source_id, mappings.interventions.get(&g.code)?.track?)))
        .collect();
    let mut blocks: BTreeMap<(YearMonth, u32, Track), Block<'_>> = BTreeMap::new();
    let mut visits: Vec<_> = history.visits.iter().collect();
    visits.sort_by_key(|v| (v.start, v.source_id.as_str()));
    for v in visits {
        let day = v.start.with_timezone(&tz).date_naive();
        if !(from..=to).contains(&day) {
            continue;
        }
        let Some(track) = v.grants.iter().find_map(|g| track_of_grant.get(g).copied()) else {
            continue;
        };
        let team = team_on(history, mappings, day);
        let month = YearMonth::of(day);
        let minutes = u64::try_from((v.end - v.start).num_minutes()).unwrap_or(0);
        c.add(team.as_ref(), month, track, |t| {
            t.visits += 1;
            t.delivered_minutes += minutes;
            if v.employee.is_some() {
                t.visits_with_performer += 1;
            }
            if matches!(v.mode, DeliveryMode::Home | DeliveryMode::Clinic) {
                t.home_or_clinic_visits += 1;
                if v.mode == DeliveryMode::Clinic {
                    t.clinic_visits += 1;
                }
            }
        });
        if let Some(e) = &v.employee {
            blocks
                .entry((month, block_of(day), track))
                .or_insert_with(|| (team.clone(), BTreeSet::new()))
                .1
                .insert(e);
        }
    }
    for ((month, _, track), (team, employees)) in blocks {
        c.add(team.as_ref(), month, track, |t| {
            t.blocks_with_performer += 1;
            t.block_employees += employees.len() as u64;
        });
    }

    for (cell, t) in c.cells {
        figures.cells.entry(cell).or_default().merge(&t);
    }
}

/// A citizen's 14-day block of visits with a performer: the team of its first such visit and
/// the distinct employees.
type Block<'h> = (Option<TeamId>, BTreeSet<&'h Pseudonym>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_in_the_catalogue_has_a_value_and_a_danish_definition() {
        let t = Tally::default();
        for d in CATALOGUE {
            assert!(value(d.id, &t).is_some(), "{}", d.id);
            assert!(!d.definition.is_empty() && !d.name.is_empty());
        }
        let ids: BTreeSet<_> = CATALOGUE.iter().map(|d| d.id).collect();
        assert_eq!(ids.len(), CATALOGUE.len(), "ids are unique");
    }

    #[test]
    fn a_ratio_without_a_denominator_is_no_data_not_zero() {
        let t = Tally::default();
        assert_eq!(value("continuity", &t).unwrap().value, None);
        assert_eq!(value("inflow", &t).unwrap().value, Some(Decimal::ZERO));
    }

    #[test]
    fn months_end_on_their_last_day_across_the_year() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(month_end(d("2027-12-05")), d("2027-12-31"));
        assert_eq!(month_end(d("2028-02-01")), d("2028-02-29"));
        assert_eq!(month_end(d("2027-02-28")), d("2027-02-28"));
    }

    #[test]
    fn blocks_are_days_1_14_15_28_and_the_rest() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        assert_eq!(block_of(d("2027-01-01")), 0);
        assert_eq!(block_of(d("2027-01-14")), 0);
        assert_eq!(block_of(d("2027-01-15")), 1);
        assert_eq!(block_of(d("2027-01-28")), 1);
        assert_eq!(block_of(d("2027-01-29")), 2);
        assert_eq!(block_of(d("2027-01-31")), 2);
    }
}
