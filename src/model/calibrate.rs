//! Tariff calibration (`progression-model.md`, "Tariff calibration"): from the courses of a
//! reference period and what they cost, a tariff table whose expected total is the budget
//! frame. Pure: the caller reads the store and writes the file.
//!
//! 1. Each course's cost in the period: its delivered minutes (visits in the track on its
//!    days) times the table's hourly rate; a course without a single visit in the period is
//!    costed by its visitated minutes (the active grants' weekly minutes, day by day) and
//!    counted.
//! 2. Per kind (development, stabilisation) and need group of the template table (by the
//!    course's need score): courses, course-days, cost; the unit cost is cost ÷ course-days.
//!    A cell with fewer than `min_courses` courses is merged with its neighbour (the group
//!    below; the first group with the one above), again until none is thin or one is left;
//!    merged groups share the pooled unit cost.
//! 3. Individual courses keep their hourly rate; their cost in the period is the expected
//!    individual-course cost.
//! 4. One factor scales every development and stabilisation unit cost so that the expected
//!    total over the period (course-days times scaled unit cost, summed) equals the frame
//!    minus the individual-course cost, exactly.
//! 5. On the scaled unit costs the development premium (development cells only) and the
//!    overhead (every cell) are added, and each tariff is rounded half away from zero to øre.
//!    The rounded table's expected total differs from the exact one by the rounding residue,
//!    which the report states.

use super::{CitizenHistory, Course, round_money, visitated_minutes_on};
use crate::domain::{CourseKind, Track};
use crate::mapping::{Mappings, NeedGroup, TariffTable};
use chrono::{Datelike, Days, NaiveDate};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Serialize;

/// What one course cost in the reference period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CourseCost {
    /// Track.
    pub track: Track,
    /// Kind.
    pub kind: CourseKind,
    /// Need score at the start.
    pub need_score: u32,
    /// Its days in the period.
    pub days: u64,
    /// Visits in the track on those days.
    pub visits: u64,
    /// Their delivered minutes (end minus start).
    pub delivered_minutes: u64,
    /// The visitated minutes of those days (weekly minutes ÷ 7, day by day), exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub visitated_minutes: Decimal,
}

impl CourseCost {
    /// The minutes it is costed by: delivered, or visitated where it has no visit.
    pub fn minutes(&self) -> Decimal {
        if self.visits > 0 {
            Decimal::from(self.delivered_minutes)
        } else {
            self.visitated_minutes
        }
    }
}

/// The cost of each of a citizen's courses in `track` with a day in `from..=to`.
pub fn course_costs(
    history: &CitizenHistory,
    courses: &[Course],
    mappings: &Mappings,
    tz: Tz,
    track: Track,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<CourseCost> {
    let track_grants = history.grants_in_track(mappings, track);
    let mut out = Vec::new();
    for c in courses.iter().filter(|c| c.track == track) {
        let first = c.start.max(from);
        let last = c.end.min(to);
        if first > last {
            continue;
        }
        let days = (last - first).num_days() as u64 + 1;
        let (mut visits, mut minutes) = (0u64, 0u64);
        for v in &history.visits {
            let day = v.start.with_timezone(&tz).date_naive();
            if (first..=last).contains(&day) && v.grants.iter().any(|g| track_grants.contains(g)) {
                visits += 1;
                minutes += u64::try_from((v.end - v.start).num_minutes()).unwrap_or(0);
            }
        }
        let mut weekly = 0u64;
        let mut day = first;
        while day <= last {
            weekly += u64::from(visitated_minutes_on(history, mappings, track, day));
            day = day + Days::new(1);
        }
        out.push(CourseCost {
            track,
            kind: c.kind,
            need_score: c.need_score,
            days,
            visits,
            delivered_minutes: minutes,
            visitated_minutes: Decimal::from(weekly) / Decimal::from(7),
        });
    }
    out
}

/// What a calibration is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Params {
    /// The track.
    pub track: Track,
    /// The reference period.
    pub from: NaiveDate,
    /// Its last day.
    pub to: NaiveDate,
    /// The budget frame for the period, kroner.
    #[serde(with = "rust_decimal::serde::str")]
    pub frame: Decimal,
    /// Development premium, percent (0 = none).
    #[serde(with = "rust_decimal::serde::str")]
    pub premium_pct: Decimal,
    /// Overhead, percent (the ministry's fixed rate; 0 = none).
    #[serde(with = "rust_decimal::serde::str")]
    pub overhead_pct: Decimal,
    /// Fewer courses than this in a cell: merged with its neighbour.
    pub min_courses: u64,
    /// The tariff year of the table written.
    pub year: i32,
    /// The hourly rate costs are computed at (`None`: the template table's).
    #[serde(with = "rust_decimal::serde::str_option")]
    pub hourly_rate: Option<Decimal>,
}

/// One cell of the calibrated table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellResult {
    /// Kind (development or stabilisation).
    pub kind: CourseKind,
    /// Need group.
    pub group: u8,
    /// Its own courses in the period.
    pub courses: u64,
    /// Its own course-days.
    pub days: u64,
    /// Its own cost, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub cost: Decimal,
    /// The groups its unit cost is pooled from (itself alone unless merged).
    pub pooled_with: Vec<u8>,
    /// Cost per course-day before scaling (of the pool), exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_cost: Decimal,
    /// After scaling, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub scaled: Decimal,
    /// The daily tariff written: scaled, with premium and overhead, rounded to øre.
    #[serde(with = "rust_decimal::serde::str")]
    pub tariff: Decimal,
}

/// A calibration's result: the table and how it was arrived at.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// What was asked.
    pub params: Params,
    /// The template the groups, basis, lengths and individual rule come from, `track/year`.
    pub template: String,
    /// The hourly rate costs were computed at.
    #[serde(with = "rust_decimal::serde::str")]
    pub hourly_rate: Decimal,
    /// Every cell, development then stabilisation, by group.
    pub cells: Vec<CellResult>,
    /// The merges, for people.
    pub merged: Vec<String>,
    /// Courses costed by their visitated minutes (no visit in the period).
    pub costed_by_visitation: u64,
    /// Courses in all.
    pub courses: u64,
    /// Individual courses and their cost in the period.
    pub individual_courses: u64,
    /// Their cost, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub individual_cost: Decimal,
    /// The factor, exact.
    #[serde(with = "rust_decimal::serde::str")]
    pub factor: Decimal,
    /// Course-days times scaled unit costs, plus the individual cost: the frame, exactly.
    #[serde(with = "rust_decimal::serde::str")]
    pub scaled_total: Decimal,
    /// With premium and overhead, exact (before rounding the tariffs).
    #[serde(with = "rust_decimal::serde::str")]
    pub marked_up_total: Decimal,
    /// With the rounded tariffs.
    #[serde(with = "rust_decimal::serde::str")]
    pub rounded_total: Decimal,
    /// `rounded_total - marked_up_total`: what rounding the tariffs to øre adds.
    #[serde(with = "rust_decimal::serde::str")]
    pub rounding_residue: Decimal,
    /// The table written.
    #[serde(skip)]
    pub table: TariffTable,
}

/// Why a calibration cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalibrationError {
    /// No table to take the groups from.
    #[error("no {0} tariff table in force on or before {1} to take the need groups from")]
    NoTemplate(Track, NaiveDate),
    /// Costs need an hourly rate.
    #[error(
        "the {0} tariff table {1} has no hourly_rate; costs are minutes times the hourly rate: give --hourly-rate"
    )]
    NoHourlyRate(Track, i32),
    /// Nothing to divide by.
    #[error("no {0} courses in the period")]
    NoCourses(CourseKind),
    /// The frame does not cover the individual courses.
    #[error("the frame {frame} does not exceed the individual courses' cost {individual}")]
    FrameTooSmall {
        /// The frame.
        frame: Decimal,
        /// The individual cost.
        individual: Decimal,
    },
    /// Percentages out of range.
    #[error("{0} must be between 0 and 100")]
    Percent(&'static str),
    /// Nothing costs anything.
    #[error(
        "the development and stabilisation courses cost nothing in the period (no visits and no visitated minutes)"
    )]
    NoCost,
}

/// The table in force on `to` for the track, else the latest before it.
pub fn template_of(mappings: &Mappings, track: Track, to: NaiveDate) -> Option<&TariffTable> {
    mappings.tariffs.in_force(track, to).or_else(|| {
        mappings
            .tariffs
            .tables()
            .iter()
            .filter(|t| t.track == track && t.year <= to.year())
            .max_by_key(|t| t.year)
    })
}

#[derive(Debug, Clone)]
struct Pool {
    groups: Vec<u8>,
    courses: u64,
    days: u64,
    cost: Decimal,
}

/// Calibrates a table from `costs` (every course of the track in the period).
pub fn calibrate(
    costs: &[CourseCost],
    template: &TariffTable,
    params: &Params,
) -> Result<Calibration, CalibrationError> {
    let hundred = Decimal::from(100);
    if !(Decimal::ZERO..=hundred).contains(&params.premium_pct) {
        return Err(CalibrationError::Percent("--premium"));
    }
    if !(Decimal::ZERO..=hundred).contains(&params.overhead_pct) {
        return Err(CalibrationError::Percent("--overhead"));
    }
    let rate = params
        .hourly_rate
        .or(template.individual.as_ref().map(|i| i.hourly_rate))
        .filter(|r| !r.is_zero())
        .ok_or(CalibrationError::NoHourlyRate(
            template.track,
            template.year,
        ))?;
    let cost_of = |c: &CourseCost| c.minutes() * rate / Decimal::from(60);
    let mut individual_courses = 0;
    let mut individual_cost = Decimal::ZERO;
    let mut own: Vec<(CourseKind, &NeedGroup, u64, u64, Decimal)> = Vec::new();
    for kind in [CourseKind::Development, CourseKind::Stabilisation] {
        for g in &template.groups {
            own.push((kind, g, 0, 0, Decimal::ZERO));
        }
    }
    for c in costs.iter().filter(|c| c.track == params.track) {
        if c.kind == CourseKind::Individual {
            individual_courses += 1;
            individual_cost += cost_of(c);
            continue;
        }
        let group = template
            .group_for(c.need_score)
            .map_or(template.groups.last().map_or(0, |g| g.group), |g| g.group);
        if let Some(cell) = own
            .iter_mut()
            .find(|(k, g, ..)| *k == c.kind && g.group == group)
        {
            cell.2 += 1;
            cell.3 += c.days;
            cell.4 += cost_of(c);
        }
    }
    // Pools per kind, merging thin cells into a neighbour.
    let mut merged = Vec::new();
    let mut pools_of: Vec<(CourseKind, Vec<Pool>)> = Vec::new();
    for kind in [CourseKind::Development, CourseKind::Stabilisation] {
        let mut pools: Vec<Pool> = own
            .iter()
            .filter(|(k, ..)| *k == kind)
            .map(|(_, g, n, d, c)| Pool {
                groups: vec![g.group],
                courses: *n,
                days: *d,
                cost: *c,
            })
            .collect();
        while pools.len() > 1 {
            let Some(i) = pools.iter().position(|p| p.courses < params.min_courses) else {
                break;
            };
            let into = if i > 0 { i - 1 } else { 1 };
            let thin = pools.remove(i);
            let target = &mut pools[if into > i { into - 1 } else { into }];
            merged.push(format!(
                "{} group {} ({} course{}) merged with group {}",
                kind.as_str(),
                thin.groups
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join("+"),
                thin.courses,
                if thin.courses == 1 { "" } else { "s" },
                target
                    .groups
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join("+"),
            ));
            target.groups.extend(thin.groups);
            target.groups.sort_unstable();
            target.courses += thin.courses;
            target.days += thin.days;
            target.cost += thin.cost;
        }
        if pools.iter().all(|p| p.days == 0) {
            return Err(CalibrationError::NoCourses(kind));
        }
        pools_of.push((kind, pools));
    }
    let pooled_cost: Decimal = pools_of
        .iter()
        .flat_map(|(_, ps)| ps.iter().map(|p| p.cost))
        .sum();
    if pooled_cost.is_zero() {
        return Err(CalibrationError::NoCost);
    }
    if params.frame <= individual_cost {
        return Err(CalibrationError::FrameTooSmall {
            frame: params.frame,
            individual: individual_cost,
        });
    }
    let factor = (params.frame - individual_cost) / pooled_cost;
    let overhead = Decimal::ONE + params.overhead_pct / hundred;
    let premium = Decimal::ONE + params.premium_pct / hundred;
    let mut cells = Vec::new();
    let (mut scaled_total, mut marked_up_total, mut rounded_total) =
        (individual_cost, individual_cost, individual_cost);
    for (kind, pools) in &pools_of {
        for p in pools {
            // A pool of groups none of which had a course (every group empty is refused above).
            let unit = if p.days == 0 {
                Decimal::ZERO
            } else {
                p.cost / Decimal::from(p.days)
            };
            let scaled = unit * factor;
            let markup = if *kind == CourseKind::Development {
                premium * overhead
            } else {
                overhead
            };
            let marked = scaled * markup;
            let tariff = round_money(marked);
            for g in &p.groups {
                let (_, _, n, d, c) = own
                    .iter()
                    .find(|(k, gg, ..)| k == kind && gg.group == *g)
                    .expect("a template group");
                scaled_total += scaled * Decimal::from(*d);
                marked_up_total += marked * Decimal::from(*d);
                rounded_total += tariff * Decimal::from(*d);
                cells.push(CellResult {
                    kind: *kind,
                    group: *g,
                    courses: *n,
                    days: *d,
                    cost: *c,
                    pooled_with: p.groups.clone(),
                    unit_cost: unit,
                    scaled,
                    tariff,
                });
            }
        }
    }
    cells.sort_by_key(|c| (c.kind != CourseKind::Development, c.group));
    let tariff_of = |kind: CourseKind, group: u8| {
        cells
            .iter()
            .find(|c| c.kind == kind && c.group == group)
            .map_or(Decimal::ZERO, |c| c.tariff)
    };
    let table = TariffTable {
        track: template.track,
        year: params.year,
        basis: template.basis,
        groups: template
            .groups
            .iter()
            .map(|g| NeedGroup {
                development: tariff_of(CourseKind::Development, g.group),
                stabilisation: tariff_of(CourseKind::Stabilisation, g.group),
                ..g.clone()
            })
            .collect(),
        individual: template.individual,
        lengths: template.lengths,
    };
    let track_courses: Vec<&CourseCost> =
        costs.iter().filter(|c| c.track == params.track).collect();
    Ok(Calibration {
        params: params.clone(),
        template: format!("{}/{}", template.track, template.year),
        hourly_rate: rate,
        cells,
        merged,
        costed_by_visitation: track_courses.iter().filter(|c| c.visits == 0).count() as u64,
        courses: track_courses.len() as u64,
        individual_courses,
        individual_cost,
        factor,
        scaled_total,
        marked_up_total,
        rounded_total,
        rounding_residue: rounded_total - marked_up_total,
        table,
    })
}

fn money_text(d: Decimal) -> String {
    format!("{:.2}", round_money(d))
}

/// The calibrated table in the format of `mappings/tariffs.toml`, its provenance in comments.
pub fn to_toml(c: &Calibration) -> String {
    let p = &c.params;
    let t = &c.table;
    let mut s = String::new();
    let line = |s: &mut String, text: &str| {
        s.push_str(text);
        s.push('\n');
    };
    line(
        &mut s,
        &format!(
            "# Calibrated by progression-gateway calibrate: the {} tariff table {}.",
            p.track, p.year
        ),
    );
    line(
        &mut s,
        &format!(
            "# Reference period {} to {}; frame {} kr.; {} courses ({} costed by visitated minutes: no visit).",
            p.from,
            p.to,
            money_text(p.frame),
            c.courses,
            c.costed_by_visitation
        ),
    );
    line(
        &mut s,
        &format!(
            "# Cost = minutes x {} kr./hour (template {}); individual courses: {} costing {} kr.",
            money_text(c.hourly_rate),
            c.template,
            c.individual_courses,
            money_text(c.individual_cost)
        ),
    );
    line(
        &mut s,
        &format!(
            "# Factor {} (frame minus individual cost / cost of development and stabilisation courses).",
            c.factor.round_dp(6)
        ),
    );
    line(
        &mut s,
        &format!(
            "# Development premium {} %, overhead {} %, cells with fewer than {} courses merged.",
            p.premium_pct.normalize(),
            p.overhead_pct.normalize(),
            p.min_courses
        ),
    );
    for m in &c.merged {
        line(&mut s, &format!("# Merged: {m}."));
    }
    line(
        &mut s,
        "# kind           group  courses  course-days              cost   unit cost  scaled    tariff",
    );
    for cell in &c.cells {
        line(
            &mut s,
            &format!(
                "# {:<14} {:>5} {:>8} {:>12} {:>17} {:>11} {:>7} {:>9}",
                cell.kind.as_str(),
                cell.group,
                cell.courses,
                cell.days,
                money_text(cell.cost),
                money_text(cell.unit_cost),
                money_text(cell.scaled),
                money_text(cell.tariff)
            ),
        );
    }
    line(
        &mut s,
        &format!(
            "# Expected total: {} kr. scaled (the frame), {} kr. with premium and overhead, {} kr. with the rounded tariffs (rounding residue {} kr.).",
            money_text(c.scaled_total),
            money_text(c.marked_up_total),
            money_text(c.rounded_total),
            c.rounding_residue.round_dp(4)
        ),
    );
    line(&mut s, "");
    line(&mut s, "[[table]]");
    line(&mut s, &format!("track = \"{}\"", t.track));
    line(&mut s, &format!("year = {}", t.year));
    line(&mut s, &format!("basis = \"{}\"", basis_name(t.basis)));
    if let Some(i) = &t.individual {
        line(&mut s, &format!("individual_threshold = {}", i.threshold));
        line(
            &mut s,
            &format!("hourly_rate = \"{}\"", money_text(i.hourly_rate)),
        );
    }
    line(
        &mut s,
        &format!("development_days = {}", t.lengths.development_days),
    );
    line(
        &mut s,
        &format!("stabilisation_days = {}", t.lengths.stabilisation_days),
    );
    for g in &t.groups {
        line(&mut s, "");
        line(&mut s, "[[table.group]]");
        line(&mut s, &format!("group = {}", g.group));
        line(&mut s, &format!("min = {}", g.min));
        if let Some(max) = g.max {
            line(&mut s, &format!("max = {max}"));
        }
        line(
            &mut s,
            &format!("development = \"{}\"", money_text(g.development)),
        );
        line(
            &mut s,
            &format!("stabilisation = \"{}\"", money_text(g.stabilisation)),
        );
    }
    s
}

fn basis_name(b: crate::mapping::NeedBasis) -> &'static str {
    match b {
        crate::mapping::NeedBasis::FunctionalLevel => "functional_level",
        crate::mapping::NeedBasis::WeeklyMinutes => "weekly_minutes",
        crate::mapping::NeedBasis::InterventionWeight => "intervention_weight",
    }
}
