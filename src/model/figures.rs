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
use super::income::{Finding, YearMonth, day_runs, team_on};
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

impl Scope {
    /// The scope of a team, or of the days without one.
    pub fn of(team: Option<&TeamId>) -> Self {
        team.map_or(Scope::Unassigned, |t| Scope::Team(t.clone()))
    }

    /// Whether something paid to `team` (`None`: without a team) falls in this scope.
    pub fn holds(&self, team: Option<&TeamId>) -> bool {
        match self {
            Scope::Municipality => true,
            Scope::Unassigned => team.is_none(),
            Scope::Team(t) => team == Some(t),
        }
    }

    /// Its name in the API, files and the command: a team id, `unassigned` or `municipality`.
    pub fn name(&self) -> String {
        match self {
            Scope::Team(t) => t.to_string(),
            Scope::Unassigned => "unassigned".to_owned(),
            Scope::Municipality => "municipality".to_owned(),
        }
    }
}

/// One cell of the figures: a scope, a month and a track (`None`: both tracks together).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Cell {
    /// Team, unassigned or the municipality.
    pub scope: Scope,
    /// The month.
    pub month: YearMonth,
    /// The track; `None`: both tracks (a citizen in both counts once; costs are only here).
    pub track: Option<Track>,
}

/// The name of a cell's track: `care`, `nursing` or `all`.
pub fn track_name(track: Option<Track>) -> &'static str {
    track.map_or("all", Track::as_str)
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
    /// Costs the finance system booked on the cell's cost centres in the month (only in cells
    /// of both tracks; `None`: no actuals for it).
    pub costs: Option<Decimal>,
    /// The run-rate of the balance (only in the as-of month's cell of both tracks).
    pub run_rate: Option<RunRate>,
}

/// The balance of the months of the as-of year that have actuals, and their days: the run-rate
/// the year-end forecast extrapolates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RunRate {
    /// Income minus costs over the months with actuals, exact.
    pub balance: Decimal,
    /// The days of those months (the as-of month up to the as-of date).
    pub days: u32,
    /// The days of the whole year.
    pub year_days: u32,
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
        if let Some(c) = o.costs {
            self.costs = Some(self.costs.unwrap_or_default() + c);
        }
        if o.run_rate.is_some() {
            self.run_rate = o.run_rate;
        }
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

    /// Adds one citizen's facts (see [`citizen_facts`]).
    pub fn add(&mut self, facts: &CitizenFacts) {
        let mut present: BTreeSet<Cell> = BTreeSet::new();
        let mut present_by_kind: BTreeSet<(Cell, CourseKind)> = BTreeSet::new();
        for course in &facts.courses {
            let kind = course.kind;
            for part in &course.months {
                for cell in cells_of(part.team.as_ref(), part.month, course.track) {
                    let t = self.cells.entry(cell.clone()).or_default();
                    *t.course_days.entry(kind).or_default() += part.days;
                    t.income += part.income;
                    t.paid_minutes += part.paid_minutes;
                    if present.insert(cell.clone()) {
                        t.citizens += 1;
                    }
                    if present_by_kind.insert((cell, kind)) {
                        *t.citizens_by_kind.entry(kind).or_default() += 1;
                    }
                }
            }
            if let Some(team) = &course.started {
                for cell in cells_of(team.as_ref(), YearMonth::of(course.start), course.track) {
                    let t = self.cells.entry(cell).or_default();
                    *t.started.entry(kind).or_default() += 1;
                }
            }
            if let Some(e) = &course.ended {
                for cell in cells_of(e.team.as_ref(), YearMonth::of(course.end), course.track) {
                    let t = self.cells.entry(cell).or_default();
                    *t.ended.entry(kind).or_default() += 1;
                    *t.ended_by_reason
                        .entry(course.end_reason.to_owned())
                        .or_default() += 1;
                    *t.transitions.entry((kind, e.successor)).or_default() += 1;
                    if course.track == Track::Nursing {
                        t.nursing_ended += 1;
                    }
                    if let Some(p) = e.progression {
                        t.development_ended += 1;
                        t.score_change += p.change;
                        match p.change.signum() {
                            -1 => t.score_fell += 1,
                            0 => t.score_stayed += 1,
                            _ => t.score_rose += 1,
                        }
                        if p.self_reliant {
                            t.self_reliant += 1;
                        }
                    }
                }
            }
        }
        for ((team, month, track), v) in &facts.visits {
            for scope in [Scope::of(team.as_ref()), Scope::Municipality] {
                let t = self
                    .cells
                    .entry(Cell {
                        scope,
                        month: *month,
                        track: *track,
                    })
                    .or_default();
                t.visits += v.visits;
                t.visits_with_performer += v.with_performer;
                t.delivered_minutes += v.minutes;
                t.home_or_clinic_visits += v.home_or_clinic;
                t.clinic_visits += v.clinic;
                t.block_employees += v.block_employees;
                t.blocks_with_performer += v.blocks_with_performer;
            }
        }
    }

    /// Adds the finance system's actuals (costs per cost centre and month) to the cells of
    /// both tracks: a team's cost centre to the team, the fallback cost centre to the days
    /// without a team, both to the municipality. Only months of `from..=to` are taken. Returns
    /// the cost centres that are neither a team's nor the fallback (reported, not counted).
    pub fn add_costs(
        &mut self,
        actuals: &[Actual],
        mappings: &Mappings,
        from: NaiveDate,
        to: NaiveDate,
    ) -> BTreeSet<String> {
        let mut unknown = BTreeSet::new();
        let (first, last) = (YearMonth::of(from), YearMonth::of(to));
        for a in actuals {
            if a.month < first || a.month > last {
                continue;
            }
            let scope = if let Some(team) = mappings
                .teams
                .iter()
                .find(|t| t.team.cost_centre.as_str() == a.cost_centre)
            {
                Scope::Team(team.team.id.clone())
            } else if mappings
                .accounts
                .as_ref()
                .is_some_and(|acc| acc.fallback_cost_centre.as_str() == a.cost_centre)
            {
                Scope::Unassigned
            } else {
                unknown.insert(a.cost_centre.clone());
                continue;
            };
            for scope in [scope, Scope::Municipality] {
                let t = self
                    .cells
                    .entry(Cell {
                        scope,
                        month: a.month,
                        track: None,
                    })
                    .or_default();
                t.costs = Some(t.costs.unwrap_or_default() + a.amount);
            }
        }
        unknown
    }

    /// Sets the run-rate of every scope in the as-of month's cell of both tracks: the balance
    /// (income minus costs) of the months of `to`'s year in the period that have actuals, over
    /// their days (the as-of month counts up to `to`). Call after every citizen and the costs
    /// are added.
    pub fn set_run_rates(&mut self, to: NaiveDate) {
        let year = to.year();
        let year_days = if NaiveDate::from_ymd_opt(year, 2, 29).is_some() {
            366
        } else {
            365
        };
        let mut by_scope: BTreeMap<Scope, (Decimal, u32)> = BTreeMap::new();
        for (cell, t) in &self.cells {
            if cell.track.is_some() || cell.month.year != year || cell.month > YearMonth::of(to) {
                continue;
            }
            let Some(costs) = t.costs else { continue };
            let last = month_end(cell.month.first_day()).min(to);
            let days = (last - cell.month.first_day()).num_days() as u32 + 1;
            let e = by_scope.entry(cell.scope.clone()).or_default();
            e.0 += t.income - costs;
            e.1 += days;
        }
        for (scope, (balance, days)) in by_scope {
            self.cells
                .entry(Cell {
                    scope,
                    month: YearMonth::of(to),
                    track: None,
                })
                .or_default()
                .run_rate = Some(RunRate {
                balance,
                days,
                year_days,
            });
        }
    }
}

/// The four cells a contribution goes to: the team's (or unassigned) and the municipality's,
/// each in the track and in both tracks together.
fn cells_of(team: Option<&TeamId>, month: YearMonth, track: Track) -> [Cell; 4] {
    let cell = |scope, track| Cell {
        scope,
        month,
        track,
    };
    [
        cell(Scope::of(team), Some(track)),
        cell(Scope::of(team), None),
        cell(Scope::Municipality, Some(track)),
        cell(Scope::Municipality, None),
    ]
}

/// Costs the finance system booked: one cost centre, one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actual {
    /// The cost centre.
    pub cost_centre: String,
    /// The month.
    pub month: YearMonth,
    /// The costs, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
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
    /// Whether it has a value per track; `false`: only for both tracks together (costs).
    pub per_track: bool,
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

const LEVEL: &str = "team × måned × spor og begge spor, og hele kommunen";
const LEVEL_TEAM: &str = "team (omkostningssted) × måned, begge spor, og hele kommunen";

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
        per_track: true,
    },
    FigureDef {
        id: "course_days",
        name: "Forløbsdage",
        definition: "Antal betalte forløbsdage i måneden, alle forløbstyper.",
        numerator: "forløbsdage",
        denominator: None,
        level: LEVEL,
        unit: Unit::Count,
        per_track: true,
    },
    FigureDef {
        id: "inflow",
        name: "Tilgang",
        definition: "Forløb der starter i måneden (teamet på forløbets første dag).",
        numerator: "startede forløb",
        denominator: None,
        level: LEVEL,
        unit: Unit::Count,
        per_track: true,
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
        per_track: true,
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
        per_track: true,
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
        per_track: true,
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
        per_track: true,
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
        per_track: true,
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
        per_track: true,
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
        per_track: true,
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
        per_track: true,
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
        per_track: true,
    },
    FigureDef {
        id: "clinic_share",
        name: "Andel i klinik",
        definition: "Andel af besøgene i hjemmet eller klinikken der blev leveret i klinikken.",
        numerator: "besøg i klinik",
        denominator: Some("besøg i hjemmet eller i klinik"),
        level: LEVEL,
        unit: Unit::Share,
        per_track: true,
    },
    FigureDef {
        id: "income",
        name: "Indtægt",
        definition: "Summen af forløbenes daglige takster for månedens forløbsdage.",
        numerator: "indtægt i kroner",
        denominator: None,
        level: LEVEL,
        unit: Unit::Money,
        per_track: true,
    },
    FigureDef {
        id: "costs",
        name: "Omkostninger",
        definition: "Omkostninger bogført på teamets omkostningssted i måneden, som \
                     økonomisystemet leverer dem (regnskabsfil). Uden fil for måneden: ingen data.",
        numerator: "bogførte omkostninger i kroner",
        denominator: None,
        level: LEVEL_TEAM,
        unit: Unit::Money,
        per_track: false,
    },
    FigureDef {
        id: "balance",
        name: "Resultat",
        definition: "Indtægt (begge spor) minus omkostninger i måneden. Uden omkostninger \
                     for måneden: ingen data.",
        numerator: "indtægt minus omkostninger i kroner",
        denominator: None,
        level: LEVEL_TEAM,
        unit: Unit::Money,
        per_track: false,
    },
    FigureDef {
        id: "forecast_balance",
        name: "Prognose for årets resultat",
        definition: "Årets resultat hvis takten fortsætter: resultatet i årets måneder med \
                     omkostninger (opgørelsesmåneden til opgørelsesdagen) divideret med deres \
                     dage, gange årets dage. Vises i opgørelsesmåneden.",
        numerator: "resultat i måneder med omkostninger",
        denominator: Some("dage i de måneder (gange årets dage)"),
        level: "team × år, vist i opgørelsesmåneden; begge spor",
        unit: Unit::Money,
        per_track: false,
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
        "costs" => Value {
            numerator: t.costs.unwrap_or_default(),
            denominator: None,
            value: t.costs,
        },
        "balance" => Value {
            numerator: t.costs.map_or(Decimal::ZERO, |c| t.income - c),
            denominator: None,
            value: t.costs.map(|c| t.income - c),
        },
        "forecast_balance" => match t.run_rate {
            Some(r) if r.days > 0 => Value {
                numerator: r.balance,
                denominator: Some(Decimal::from(r.days)),
                value: Some(r.balance / Decimal::from(r.days) * Decimal::from(r.year_days)),
            },
            _ => Value {
                numerator: Decimal::ZERO,
                denominator: Some(Decimal::ZERO),
                value: None,
            },
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

/// How an ended development course went: the need score at the end against the start, and
/// whether the citizen had no active grant in the track the day after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progression {
    /// Score at the end minus score at the start (negative: the need fell).
    pub change: i64,
    /// No active grant in the track on the day after the course.
    pub self_reliant: bool,
}

/// What an ended course shows: the team on its last day, its successor's kind and, for a
/// development course, its progression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ending {
    /// The team on the last day (`None`: without a team).
    pub team: Option<TeamId>,
    /// The kind of the course starting the day after in the track (`None`: no successor).
    pub successor: Option<CourseKind>,
    /// For a development course.
    pub progression: Option<Progression>,
}

/// A course's days in one month paid to one team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthPart {
    /// The team paid (`None`: without a team).
    pub team: Option<TeamId>,
    /// The month.
    pub month: YearMonth,
    /// Course-days.
    pub days: u64,
    /// Their income, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub income: Decimal,
    /// The minutes that income pays for at the table's hourly rate (0 without one); exact,
    /// shown to two decimals.
    #[serde(serialize_with = "two_decimals")]
    pub paid_minutes: Decimal,
    /// For days without a team: the custodian SOR code no team in `teams.toml` has (`None`:
    /// no roster line and no custodian at all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unmapped_sor: Option<String>,
}

/// An exact quantity as text to two decimals, half away from zero (minutes people read).
fn two_decimals<S: serde::Serializer>(d: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(
        &d.round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
            .to_string(),
    )
}

/// What one course contributes to the figures of a period: the rows behind a figure (the
/// drill-down) and what the tallies are added from. Holds no citizen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CourseFacts {
    /// The course.
    pub id: super::CourseId,
    /// The track.
    pub track: Track,
    /// Its kind.
    pub kind: CourseKind,
    /// Need score at the start.
    pub need_score: u32,
    /// Need group (`None`: individual).
    pub group: Option<u8>,
    /// The daily tariff (locked) or the hourly rate of an individual course.
    pub tariff: super::DailyTariff,
    /// First paid day.
    pub start: NaiveDate,
    /// Last day by the course length.
    pub planned_end: NaiveDate,
    /// Last paid day.
    pub end: NaiveDate,
    /// Why it ends then (`planned`, `death`, ...).
    pub end_reason: &'static str,
    /// The ledger revision (0: not recorded yet, as it would be decided).
    pub revision: u32,
    /// Started in the period: the team on its first day (inner `None`: without a team).
    pub started: Option<Option<TeamId>>,
    /// Ended in the period (its last day on or before the as-of date).
    pub ended: Option<Ending>,
    /// Its days in the period, by month and team.
    pub months: Vec<MonthPart>,
    /// Running on the as-of date: the team that day (inner `None`: without a team).
    pub running: Option<Option<TeamId>>,
}

impl CourseFacts {
    /// Whether the course is behind figure `id` in `cell`: `None` if not; `Some(true)` if it
    /// counts in the figure (its numerator); `Some(false)` if only in its denominator (an
    /// ended development course whose score did not fall, for `progression_fell`). Figures
    /// from visits (`continuity`, `clinic_share`, `time_ratio`) and money are shown with the
    /// courses that have days in the cell.
    pub fn behind(&self, id: &str, cell: &Cell) -> Option<bool> {
        if cell.track.is_some_and(|t| t != self.track) {
            return None;
        }
        let in_month = |day: NaiveDate| YearMonth::of(day) == cell.month;
        let ended = self
            .ended
            .as_ref()
            .filter(|e| in_month(self.end) && cell.scope.holds(e.team.as_ref()));
        let progression = ended.and_then(|e| e.progression);
        match id {
            "inflow" => self
                .started
                .as_ref()
                .filter(|t| in_month(self.start) && cell.scope.holds(t.as_ref()))
                .map(|_| true),
            "outflow" => ended.map(|_| true),
            "nursing_ended" => ended.filter(|_| self.track == Track::Nursing).map(|_| true),
            "progression_fell" => progression.map(|p| p.change < 0),
            "progression_stayed" => progression.map(|p| p.change == 0),
            "progression_rose" => progression.map(|p| p.change > 0),
            "progression_mean_change" => progression.map(|_| true),
            "self_reliance" => progression.map(|p| p.self_reliant),
            _ => self
                .months
                .iter()
                .any(|p| p.month == cell.month && cell.scope.holds(p.team.as_ref()))
                .then_some(true),
        }
    }

    /// Whether anything of the course falls to `scope` (a team's courses for its leader).
    pub fn touches(&self, scope: &Scope) -> bool {
        self.months.iter().any(|p| scope.holds(p.team.as_ref()))
            || self
                .started
                .as_ref()
                .is_some_and(|t| scope.holds(t.as_ref()))
            || self
                .ended
                .as_ref()
                .is_some_and(|e| scope.holds(e.team.as_ref()))
            || self
                .running
                .as_ref()
                .is_some_and(|t| scope.holds(t.as_ref()))
    }
}

/// A citizen's visits in one team, month and track (`None`: both tracks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct VisitCounts {
    /// Visits.
    pub visits: u64,
    /// Of those, with an employee.
    pub with_performer: u64,
    /// Minutes delivered.
    pub minutes: u64,
    /// At home or in a clinic.
    pub home_or_clinic: u64,
    /// In a clinic.
    pub clinic: u64,
    /// Distinct employees summed over the citizen's 14-day blocks.
    pub block_employees: u64,
    /// The citizen's 14-day blocks with an employee.
    pub blocks_with_performer: u64,
}

/// One citizen's contribution to the figures of a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CitizenFacts {
    /// Each course with a day, start or end in the period, or running on the as-of date.
    pub courses: Vec<CourseFacts>,
    /// Visits by team, month and track.
    pub visits: BTreeMap<(Option<TeamId>, YearMonth, Option<Track>), VisitCounts>,
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
    figures.add(&citizen_facts(history, courses, mappings, tz, from, to));
}

/// What one citizen contributes to the figures over `from..=to` (`to`: the as-of date): each
/// course's days by team and month, its start and end, and the visits.
pub fn citizen_facts(
    history: &CitizenHistory,
    courses: &[Course],
    mappings: &Mappings,
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> CitizenFacts {
    let mut out = CitizenFacts::default();
    let index: BTreeMap<&super::CourseId, usize> = courses
        .iter()
        .enumerate()
        .map(|(i, k)| (&k.id, i))
        .collect();
    let mut months: Vec<Vec<MonthPart>> = vec![Vec::new(); courses.len()];

    // Course-days and income, by the team of each day, month by month (a run's days are
    // paid alike).
    for run in day_runs(history, courses, mappings, from, to) {
        let Some(&i) = index.get(&run.course) else {
            continue;
        };
        let course = &courses[i];
        let rate = mappings
            .tariffs
            .table(course.track, course.tariff_year)
            .and_then(|t| t.individual)
            .map(|i| i.hourly_rate)
            .filter(|r| !r.is_zero());
        let mut first = run.first_day;
        while first <= run.last_day {
            let month = YearMonth::of(first);
            let last = month_end(first).min(run.last_day);
            let days = (last - first).num_days() as u64 + 1;
            let amount = run.amount * Decimal::from(days);
            let paid = rate.map_or(Decimal::ZERO, |r| amount * Decimal::from(60) / r);
            let parts = &mut months[i];
            match parts
                .iter_mut()
                .find(|p| p.month == month && p.team == run.team && p.unmapped_sor == run.custodian)
            {
                Some(p) => {
                    p.days += days;
                    p.income += amount;
                    p.paid_minutes += paid;
                }
                None => parts.push(MonthPart {
                    team: run.team.clone(),
                    month,
                    days,
                    income: amount,
                    paid_minutes: paid,
                    unmapped_sor: run.custodian.clone(),
                }),
            }
            first = last + Days::new(1);
        }
    }

    // Start, end, successor, progression, self-reliance.
    for (course, months) in courses.iter().zip(months) {
        let started = (from..=to)
            .contains(&course.start)
            .then(|| team_on(history, mappings, course.start));
        let ended = (from..=to).contains(&course.end).then(|| {
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
                Progression {
                    change: end_score - i64::from(course.need_score),
                    self_reliant: !has_active_grant(history, mappings, course.track, next_day),
                }
            });
            Ending {
                team: team_on(history, mappings, course.end),
                successor,
                progression,
            }
        });
        let running =
            (course.start <= to && to <= course.end).then(|| team_on(history, mappings, to));
        if months.is_empty() && started.is_none() && ended.is_none() && running.is_none() {
            continue;
        }
        out.courses.push(CourseFacts {
            id: course.id.clone(),
            track: course.track,
            kind: course.kind,
            need_score: course.need_score,
            group: course.group,
            tariff: course.tariff,
            start: course.start,
            planned_end: course.planned_end,
            end: course.end,
            end_reason: course.end_reason.as_str(),
            revision: course.revision,
            started,
            ended,
            months,
            running,
        });
    }

    // Visits: delivered minutes, performers, clinic share, continuity.
    let track_of_grant: BTreeMap<&crate::domain::SourceId, Track> = history
        .grants
        .iter()
        .filter_map(|g| Some((&g.source_id, mappings.interventions.get(&g.code)?.track?)))
        .collect();
    let mut blocks: BTreeMap<(YearMonth, u32, Option<Track>), Block<'_>> = BTreeMap::new();
    let mut visits: Vec<_> = history.visits.iter().collect();
    visits.sort_by_key(|v| (v.start, v.source_id.as_str()));
    // Visits come in time order: a day's visits share the day's team, and a visit mostly
    // counts where the one before it did, so the counts are kept in a list searched from its
    // end and added to `out.visits` after the loop.
    let mut day_team: Option<(NaiveDate, Option<TeamId>)> = None;
    let mut counts: Vec<(VisitsKey, VisitCounts)> = Vec::new();
    for v in visits {
        let day = v.start.with_timezone(&tz).date_naive();
        if !(from..=to).contains(&day) {
            continue;
        }
        let Some(track) = v.grants.iter().find_map(|g| track_of_grant.get(g).copied()) else {
            continue;
        };
        let team = match &mut day_team {
            Some((d, team)) if *d == day => &*team,
            slot => &slot.insert((day, team_on(history, mappings, day))).1,
        };
        let month = YearMonth::of(day);
        let minutes = u64::try_from((v.end - v.start).num_minutes()).unwrap_or(0);
        for track in [Some(track), None] {
            let at = counts
                .iter()
                .rposition(|((te, m, tr), _)| *m == month && *tr == track && te == team);
            let at = at.unwrap_or_else(|| {
                counts.push(((team.clone(), month, track), VisitCounts::default()));
                counts.len() - 1
            });
            let t = &mut counts[at].1;
            t.visits += 1;
            t.minutes += minutes;
            if v.employee.is_some() {
                t.with_performer += 1;
            }
            if matches!(v.mode, DeliveryMode::Home | DeliveryMode::Clinic) {
                t.home_or_clinic += 1;
                if v.mode == DeliveryMode::Clinic {
                    t.clinic += 1;
                }
            }
            if let Some(e) = &v.employee {
                blocks
                    .entry((month, block_of(day), track))
                    .or_insert_with(|| (team.clone(), BTreeSet::new()))
                    .1
                    .insert(e);
            }
        }
    }
    for (key, c) in counts {
        let t = out.visits.entry(key).or_default();
        t.visits += c.visits;
        t.with_performer += c.with_performer;
        t.minutes += c.minutes;
        t.home_or_clinic += c.home_or_clinic;
        t.clinic += c.clinic;
    }
    for ((month, _, track), (team, employees)) in blocks {
        let t = out.visits.entry((team, month, track)).or_default();
        t.blocks_with_performer += 1;
        t.block_employees += employees.len() as u64;
    }
    out
}

/// A data-quality finding as the figures show it: its kind, the scope it belongs to and what
/// it is about (a code, a table, a SOR code), never a citizen. Findings are counted by this.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct QualityKey {
    /// The finding's kind ([`Finding::kind`]).
    pub kind: &'static str,
    /// Whose it is: the citizen's team on the as-of date, the days without a team, or the
    /// municipality (a tariff table).
    pub scope: Scope,
    /// What it is about.
    pub detail: String,
}

impl QualityKey {
    /// The key of a finding about a citizen whose team on the as-of date is `team`, and what
    /// it counts (days for days without a team, decisions for an edited table, else 1).
    pub fn of(finding: &Finding, team: Option<&TeamId>) -> (QualityKey, u64) {
        let key = |scope: Scope, detail: String| QualityKey {
            kind: finding.kind(),
            scope,
            detail,
        };
        match finding {
            Finding::UnknownCode { code, .. } => (key(Scope::of(team), code.clone()), 1),
            Finding::NoTariffTable { track, day, .. } => (
                key(
                    Scope::of(team),
                    format!("{} {}", track.as_str(), day.year()),
                ),
                1,
            ),
            Finding::NoNeedGroup { track, score, .. } => (
                key(Scope::of(team), format!("{} {score}", track.as_str())),
                1,
            ),
            Finding::NoIndividualRule { track, .. } => {
                (key(Scope::of(team), track.as_str().to_owned()), 1)
            }
            Finding::TariffTableChanged {
                track,
                year,
                decisions,
            } => (
                key(Scope::Municipality, format!("{}/{year}", track.as_str())),
                u64::from(*decisions),
            ),
            Finding::DaysWithoutTeam {
                track,
                days,
                unmapped_sor,
                ..
            } => (
                key(
                    Scope::Unassigned,
                    format!(
                        "{} {}",
                        track.as_str(),
                        unmapped_sor.as_deref().unwrap_or("-")
                    ),
                ),
                u64::from(*days),
            ),
        }
    }
}

/// The days-without-team findings of a citizen's facts, one per track, month and SOR code.
pub fn days_without_team(citizen: &Pseudonym, facts: &CitizenFacts) -> Vec<Finding> {
    let mut days: BTreeMap<(Track, YearMonth, Option<String>), u64> = BTreeMap::new();
    for c in &facts.courses {
        for p in c.months.iter().filter(|p| p.team.is_none()) {
            *days
                .entry((c.track, p.month, p.unmapped_sor.clone()))
                .or_default() += p.days;
        }
    }
    days.into_iter()
        .map(
            |((track, month, unmapped_sor), days)| Finding::DaysWithoutTeam {
                citizen: citizen.clone(),
                track,
                month,
                days: u32::try_from(days).unwrap_or(u32::MAX),
                unmapped_sor,
            },
        )
        .collect()
}

/// Where a citizen's visits count: team, month and track (`None`: both tracks).
type VisitsKey = (Option<TeamId>, YearMonth, Option<Track>);

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
