//! The steering figures (`model::figures`) on a small history computed by hand: three
//! citizens in two teams, both tracks, with visits, as of 30 April 2027.
//!
//! - Citizen 1, team nord, care: worked example A (development group 2, 250.00/day,
//!   4 January to 28 March; the score rises from 6 to 8; the §83a grant ended in February, so
//!   no grant on 29 March). Visits in January: 5th 30 min by e1 at home, 6th 30 min by e2 at
//!   home, 7th 15 min by no one known at home, 20th 45 min by e1 in the clinic.
//! - Citizen 2, team syd, care: a §83a grant in January and personal care from 1 January;
//!   levels 3+3 (score 6), one falls to 1 on 15 February (score 4): development group 2
//!   (250.00/day) 1 January to 25 March, then stabilisation group 2 (180.00/day) from 26 March.
//! - Citizen 3, team nord, nursing: worked example G (wound care, weight 3, development group 2,
//!   200.00/day, 11 January to 4 April; no grant after 14 February). Visits: 12 January 20 min in
//!   the clinic, 13 January 20 min at home, neither with an employee.

use crate::common::*;
use progression_gateway::domain::{CourseKind, DeliveryMode, TeamId, Track};
use progression_gateway::mapping::Mappings;
use progression_gateway::model::figures::{self, Cell, Figures, Scope, Tally, add_citizen};
use progression_gateway::model::{CitizenHistory, Course, YearMonth, compute_courses};
use rust_decimal::Decimal;

const AS_OF: &str = "2027-04-30";

fn histories() -> Vec<CitizenHistory> {
    vec![
        HistoryBuilder::new(1)
            .team("nord", "2026-01-01", None)
            .grant(REHAB, "2027-01-04", Some("2027-02-28"))
            .levels(&[2, 2, 2], "2027-01-02")
            .level("condition-0", 4, "2027-02-10")
            .visit(
                "grant-1",
                "2027-01-05T09:00:00Z",
                30,
                Some("e1"),
                DeliveryMode::Home,
            )
            .visit(
                "grant-1",
                "2027-01-06T09:00:00Z",
                30,
                Some("e2"),
                DeliveryMode::Home,
            )
            .visit(
                "grant-1",
                "2027-01-07T09:00:00Z",
                15,
                None,
                DeliveryMode::Home,
            )
            .visit(
                "grant-1",
                "2027-01-20T09:00:00Z",
                45,
                Some("e1"),
                DeliveryMode::Clinic,
            )
            .build(),
        HistoryBuilder::new(2)
            .team("syd", "2026-01-01", None)
            .grant(REHAB, "2027-01-01", Some("2027-01-31"))
            .grant(PERSONAL_CARE, "2027-01-01", None)
            .levels(&[3, 3], "2026-12-30")
            .level("condition-0", 1, "2027-02-15")
            .build(),
        HistoryBuilder::new(3)
            .team("nord", "2026-01-01", None)
            .grant(WOUND_CARE, "2027-01-11", Some("2027-02-14"))
            .visit(
                "grant-1",
                "2027-01-12T09:00:00Z",
                20,
                None,
                DeliveryMode::Clinic,
            )
            .visit(
                "grant-1",
                "2027-01-13T09:00:00Z",
                20,
                None,
                DeliveryMode::Home,
            )
            .build(),
    ]
}

fn courses_of(h: &CitizenHistory, m: &Mappings) -> Vec<Course> {
    let out = compute_courses(h, m, d(AS_OF));
    assert!(out.findings.is_empty(), "{:?}", out.findings);
    out.courses
}

fn computed() -> Figures {
    let m = worked_example_mappings();
    let mut f = Figures::default();
    for h in histories() {
        let cs = courses_of(&h, &m);
        add_citizen(
            &mut f,
            &h,
            &cs,
            &m,
            chrono_tz::Europe::Copenhagen,
            d("2027-01-01"),
            d(AS_OF),
        );
    }
    f
}

fn team(id: &str) -> Scope {
    Scope::Team(TeamId::parse(id).unwrap())
}

fn cell(scope: Scope, month: &str, track: Track) -> Cell {
    let day = d(&format!("{month}-01"));
    Cell {
        scope,
        month: YearMonth::of(day),
        track: Some(track),
    }
}

fn tally(scope: Scope, month: &str, track: Track) -> Tally {
    computed().tally(&cell(scope, month, track))
}

fn value(id: &str, scope: Scope, month: &str, track: Track) -> Option<Decimal> {
    figures::value(id, &tally(scope, month, track))
        .unwrap()
        .value
}

#[test]
fn the_hand_computed_courses_are_the_ones_the_model_decides() {
    let m = worked_example_mappings();
    let got: Vec<Vec<(Track, CourseKind, String, String)>> = histories()
        .iter()
        .map(|h| {
            courses_of(h, &m)
                .into_iter()
                .filter(|c| c.start <= d(AS_OF))
                .map(|c| (c.track, c.kind, c.start.to_string(), c.end.to_string()))
                .collect()
        })
        .collect();
    let s = |x: &str| x.to_owned();
    assert_eq!(
        got[0],
        [(
            Track::Care,
            CourseKind::Development,
            s("2027-01-04"),
            s("2027-03-28")
        )]
    );
    assert_eq!(
        got[1][0],
        (
            Track::Care,
            CourseKind::Development,
            s("2027-01-01"),
            s("2027-03-25")
        )
    );
    assert_eq!(got[1][1].0, Track::Care);
    assert_eq!(got[1][1].1, CourseKind::Stabilisation);
    assert_eq!(got[1][1].2, "2027-03-26");
    assert_eq!(
        got[2],
        [(
            Track::Nursing,
            CourseKind::Development,
            s("2027-01-11"),
            s("2027-04-04")
        )]
    );
}

#[test]
fn citizens_and_course_days_by_team_month_and_kind() {
    let jan = tally(team("nord"), "2027-01", Track::Care);
    assert_eq!(jan.citizens, 1);
    assert_eq!(jan.course_days[&CourseKind::Development], 28);
    // March in syd: 25 development days and 6 stabilisation days, one citizen in both kinds.
    let mar = tally(team("syd"), "2027-03", Track::Care);
    assert_eq!(mar.citizens, 1);
    assert_eq!(mar.citizens_by_kind[&CourseKind::Development], 1);
    assert_eq!(mar.citizens_by_kind[&CourseKind::Stabilisation], 1);
    assert_eq!(mar.course_days[&CourseKind::Development], 25);
    assert_eq!(mar.course_days[&CourseKind::Stabilisation], 6);
    // The municipality: both care citizens in January (28 + 31 days).
    let all = tally(Scope::Municipality, "2027-01", Track::Care);
    assert_eq!(all.citizens, 2);
    assert_eq!(all.course_days[&CourseKind::Development], 59);
    assert_eq!(
        value("course_days", Scope::Municipality, "2027-01", Track::Care),
        Some(Decimal::from(59))
    );
}

#[test]
fn inflow_outflow_and_transitions() {
    assert_eq!(
        value("inflow", team("nord"), "2027-01", Track::Care),
        Some(1.into())
    );
    assert_eq!(
        value("inflow", team("syd"), "2027-03", Track::Care),
        Some(1.into())
    );
    let nord = tally(team("nord"), "2027-03", Track::Care);
    assert_eq!(nord.ended[&CourseKind::Development], 1);
    assert_eq!(nord.ended_by_reason["planned"], 1);
    assert_eq!(nord.transitions[&(CourseKind::Development, None)], 1);
    let syd = tally(team("syd"), "2027-03", Track::Care);
    assert_eq!(
        syd.transitions[&(CourseKind::Development, Some(CourseKind::Stabilisation))],
        1
    );
    // The stabilisation course has not ended by 30 April: no outflow in April.
    assert_eq!(
        value("outflow", team("syd"), "2027-04", Track::Care),
        Some(0.into())
    );
    assert_eq!(
        value("outflow", Scope::Municipality, "2027-03", Track::Care),
        Some(2.into())
    );
}

#[test]
fn progression_and_self_reliance_of_ended_development_courses() {
    // March, care, municipality: one score rose (6 -> 8), one fell (6 -> 4).
    let m = Scope::Municipality;
    assert_eq!(
        value("progression_rose", m.clone(), "2027-03", Track::Care),
        Some(dec("0.5"))
    );
    assert_eq!(
        value("progression_fell", m.clone(), "2027-03", Track::Care),
        Some(dec("0.5"))
    );
    assert_eq!(
        value("progression_stayed", m.clone(), "2027-03", Track::Care),
        Some(dec("0"))
    );
    assert_eq!(
        value("progression_mean_change", m.clone(), "2027-03", Track::Care),
        Some(dec("0"))
    );
    assert_eq!(
        value(
            "progression_mean_change",
            team("nord"),
            "2027-03",
            Track::Care
        ),
        Some(dec("2"))
    );
    // Citizen 1 has no grant on 29 March; citizen 2 still has personal care on 26 March.
    assert_eq!(
        value("self_reliance", m.clone(), "2027-03", Track::Care),
        Some(dec("0.5"))
    );
    assert_eq!(
        value("self_reliance", team("syd"), "2027-03", Track::Care),
        Some(dec("0"))
    );
    // Nursing, by intervention weight: 3 at the start, no grant on 4 April (weight 0).
    assert_eq!(
        value(
            "progression_mean_change",
            team("nord"),
            "2027-04",
            Track::Nursing
        ),
        Some(dec("-3"))
    );
    assert_eq!(
        value("self_reliance", team("nord"), "2027-04", Track::Nursing),
        Some(dec("1"))
    );
    // No development course ended in February: no data, not 0.
    assert_eq!(value("progression_fell", m, "2027-02", Track::Care), None);
}

#[test]
fn continuity_counts_distinct_employees_per_citizen_and_14_days() {
    // Block 1-14: e1 and e2 (the visit without an employee does not count); block 15-28: e1.
    let t = tally(team("nord"), "2027-01", Track::Care);
    assert_eq!((t.block_employees, t.blocks_with_performer), (3, 2));
    assert_eq!(
        value("continuity", team("nord"), "2027-01", Track::Care),
        Some(dec("1.5"))
    );
    // The nursing visits carry no employee: no data from the source, never 0.
    assert_eq!(
        value("continuity", team("nord"), "2027-01", Track::Nursing),
        None
    );
}

#[test]
fn delivered_time_against_the_time_the_income_pays_for() {
    let t = tally(team("nord"), "2027-01", Track::Care);
    assert_eq!(t.delivered_minutes, 120);
    assert_eq!(t.income, dec("7000.00"));
    // 7,000.00 kr. at 450.00 kr. an hour pays for 933 1/3 minutes: 120 / 933.33 = 0.1286.
    assert!(
        (t.paid_minutes - dec("933.3333")).abs() < dec("0.0001"),
        "{}",
        t.paid_minutes
    );
    assert_eq!(
        value("time_ratio", team("nord"), "2027-01", Track::Care),
        Some(dec("0.1286"))
    );
}

#[test]
fn nursing_courses_ended_and_the_clinic_share() {
    assert_eq!(
        value("nursing_ended", team("nord"), "2027-04", Track::Nursing),
        Some(1.into())
    );
    assert_eq!(
        value("clinic_share", team("nord"), "2027-01", Track::Nursing),
        Some(dec("0.5"))
    );
    // Care in January: one of the four visits in the clinic.
    assert_eq!(
        value("clinic_share", team("nord"), "2027-01", Track::Care),
        Some(dec("0.25"))
    );
}

#[test]
fn income_per_team_month_and_track_adds_up_to_the_municipality() {
    assert_eq!(
        value("income", team("nord"), "2027-02", Track::Care),
        Some(dec("7000.00"))
    );
    // Syd in March: 25 × 250.00 + 6 × 180.00.
    assert_eq!(
        value("income", team("syd"), "2027-03", Track::Care),
        Some(dec("7330.00"))
    );
    let f = computed();
    for (cell, t) in &f.cells {
        if cell.scope != Scope::Municipality {
            continue;
        }
        let parts: Decimal = f
            .cells
            .iter()
            .filter(|(c, _)| {
                c.scope != Scope::Municipality && c.month == cell.month && c.track == cell.track
            })
            .map(|(_, t)| t.income)
            .sum();
        assert_eq!(parts, t.income, "{cell:?}");
    }
}
