//! The worked examples A-G of `progression-model.md`, one test each, with exact amounts and
//! dates, and the edge cases the document asks a good suite to add.

use crate::common::*;
use progression_gateway::domain::{CourseKind, TerminationReason, Track};
use progression_gateway::mapping::{Mappings, NeedGroup, TariffTable};
use progression_gateway::model::{
    CitizenHistory, Course, DailyTariff, EndReason, Finding, IncomeLine, Payee, YearMonth,
    compute_courses, income, nightly_deltas, round_money,
};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

const HORIZON: &str = "2028-12-31";

fn courses(h: &CitizenHistory, m: &Mappings) -> Vec<Course> {
    let out = compute_courses(h, m, d(HORIZON));
    assert!(
        out.findings.is_empty(),
        "unexpected findings: {:?}",
        out.findings
    );
    out.courses
}

fn track_courses(h: &CitizenHistory, m: &Mappings, track: Track) -> Vec<Course> {
    courses(h, m)
        .into_iter()
        .filter(|c| c.track == track)
        .collect()
}

/// Income per (team, month) of one track over a period, rounded to øre.
fn monthly(
    h: &CitizenHistory,
    m: &Mappings,
    track: Track,
    from: &str,
    to: &str,
) -> BTreeMap<(String, String), Decimal> {
    let cs = courses(h, m);
    let report = income([(h, cs.as_slice())], m, d(from), d(to));
    report
        .lines
        .into_iter()
        .filter(|(k, _)| k.track == track)
        .map(|(k, l)| {
            (
                (k.payee.to_string(), k.month.to_string()),
                round_money(l.amount),
            )
        })
        .collect()
}

fn amount(map: &BTreeMap<(String, String), Decimal>, team: &str, month: &str) -> String {
    map.get(&(team.to_string(), month.to_string()))
        .map(|a| a.to_string())
        .unwrap_or_else(|| "none".into())
}

fn locked(c: &Course) -> Decimal {
    match c.tariff {
        DailyTariff::Locked { amount } => amount,
        DailyTariff::Individual { .. } => panic!("not a locked tariff: {c:?}"),
    }
}

#[test]
fn example_a_development_course_keeps_its_tariff_when_the_citizen_gets_worse() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(1)
        .team("nord", "2026-01-01", None)
        .grant(REHAB, "2027-01-04", Some("2027-02-28"))
        .levels(&[2, 2, 2], "2027-01-02")
        .level("condition-0", 4, "2027-02-10")
        .build();
    let cs = track_courses(&h, &m, Track::Care);
    assert_eq!(cs.len(), 1, "no course after 2027-03-28: {cs:?}");
    let c = &cs[0];
    assert_eq!(c.kind, CourseKind::Development);
    assert_eq!(c.group, Some(2));
    assert_eq!(c.need_score, 6);
    assert_eq!(locked(c).to_string(), "250.00");
    assert_eq!((c.start, c.end), (d("2027-01-04"), d("2027-03-28")));
    assert_eq!(c.end_reason, EndReason::Planned);
    let money = monthly(&h, &m, Track::Care, "2027-01-01", "2027-12-31");
    assert_eq!(amount(&money, "nord", "2027-01"), "7000.00");
    assert_eq!(amount(&money, "nord", "2027-02"), "7000.00");
    assert_eq!(amount(&money, "nord", "2027-03"), "7000.00");
    assert_eq!(amount(&money, "nord", "2027-04"), "none");
}

#[test]
fn example_b_death_ends_the_course_on_the_day_of_death() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(2)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[3, 3, 3], "2026-12-20")
        .terminated(TerminationReason::Death, "2027-01-20")
        .build();
    let cs = track_courses(&h, &m, Track::Care);
    assert_eq!(cs.len(), 1, "no course after death: {cs:?}");
    let c = &cs[0];
    assert_eq!(c.kind, CourseKind::Stabilisation);
    assert_eq!(c.group, Some(3));
    assert_eq!(locked(c).to_string(), "260.00");
    assert_eq!(c.end, d("2027-01-20"));
    assert_eq!(c.planned_end, d("2027-07-01"));
    assert_eq!(
        c.end_reason,
        EndReason::Terminated(TerminationReason::Death)
    );
    let money = monthly(&h, &m, Track::Care, "2027-01-01", "2027-12-31");
    assert_eq!(amount(&money, "nord", "2027-01"), "5200.00");
    assert_eq!(money.len(), 1);
}

#[test]
fn example_c_each_day_is_paid_to_the_team_of_that_day() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(3)
        .team("nord", "2026-06-01", Some("2027-01-15"))
        .team("syd", "2027-01-16", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[2, 3], "2026-12-20")
        .build();
    let cs = track_courses(&h, &m, Track::Care);
    assert_eq!(cs[0].kind, CourseKind::Stabilisation);
    assert_eq!(cs[0].group, Some(2));
    let money = monthly(&h, &m, Track::Care, "2027-01-01", "2027-01-31");
    assert_eq!(amount(&money, "nord", "2027-01"), "2700.00");
    assert_eq!(amount(&money, "syd", "2027-01"), "2880.00");
}

#[test]
fn example_d_successor_course_is_judged_afresh() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(4)
        .team("nord", "2026-01-01", None)
        .grant(REHAB, "2027-01-01", Some("2027-03-10"))
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[1, 1, 1], "2026-12-28")
        .levels(&[3, 3, 3], "2027-03-01")
        .build();
    let cs = track_courses(&h, &m, Track::Care);
    assert_eq!(cs[0].kind, CourseKind::Development);
    assert_eq!(cs[0].group, Some(1));
    assert_eq!((cs[0].start, cs[0].end), (d("2027-01-01"), d("2027-03-25")));
    assert_eq!(cs[1].kind, CourseKind::Stabilisation);
    assert_eq!(cs[1].group, Some(3));
    assert_eq!(cs[1].need_score, 9);
    assert_eq!(locked(&cs[1]).to_string(), "260.00");
    assert_eq!(cs[1].start, d("2027-03-26"));
    let money = monthly(&h, &m, Track::Care, "2027-03-01", "2027-03-31");
    assert_eq!(amount(&money, "nord", "2027-03"), "6810.00");
}

#[test]
fn example_e_individual_tariff_follows_the_minutes_every_day() {
    let m = worked_example_mappings();
    // 420 + 420 norm minutes a week from 1 January; the cleaning grant ends 15 January.
    let h = HistoryBuilder::new(5)
        .team("syd", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .grant(CLEANING, "2027-01-01", Some("2027-01-15"))
        .levels(&[4, 4, 4, 4, 1], "2026-12-30")
        .build();
    let cs = track_courses(&h, &m, Track::Care);
    let jan = &cs[0];
    assert_eq!(jan.kind, CourseKind::Individual);
    assert_eq!(jan.need_score, 17);
    assert_eq!(jan.group, None);
    assert_eq!((jan.start, jan.end), (d("2027-01-01"), d("2027-01-31")));
    assert_eq!(jan.daily_amount(d("2027-01-15"), &h, &m), dec("900.00"));
    assert_eq!(jan.daily_amount(d("2027-01-16"), &h, &m), dec("450.00"));
    // An individual course runs to the end of the month; the next one is judged afresh.
    assert_eq!(cs[1].start, d("2027-02-01"));
    assert_eq!(cs[1].kind, CourseKind::Individual);
    let money = monthly(&h, &m, Track::Care, "2027-01-01", "2027-01-31");
    assert_eq!(amount(&money, "syd", "2027-01"), "20700.00");
}

#[test]
fn example_f_nightly_deltas_sum_to_the_rounded_month() {
    let mut tables = worked_example_tables();
    tables[0].groups[1] = NeedGroup {
        stabilisation: dec("123.4567"),
        ..tables[0].groups[1].clone()
    };
    let m = mappings_with(tables);
    let h = HistoryBuilder::new(6)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[2, 2], "2026-12-01")
        .build();
    let cs = courses(&h, &m);
    assert_eq!(locked(&cs[0]).to_string(), "123.4567");
    let mut posted: BTreeMap<_, Decimal> = BTreeMap::new();
    let mut nightly = Vec::new();
    for day in 1..=31 {
        let as_of = d(&format!("2027-01-{day:02}"));
        let mtd = income([(&h, cs.as_slice())], &m, d("2027-01-01"), as_of).lines;
        let deltas = nightly_deltas(&mtd, &posted);
        assert_eq!(deltas.len(), 1);
        for delta in deltas {
            *posted.entry(delta.key).or_default() += delta.amount;
            nightly.push(delta.amount.to_string());
        }
    }
    assert_eq!(&nightly[..4], ["123.46", "123.45", "123.46", "123.46"]);
    let total: Decimal = posted.values().sum();
    assert_eq!(total.to_string(), "3827.16");
    // A second run on the last night posts nothing.
    let mtd = income([(&h, cs.as_slice())], &m, d("2027-01-01"), d("2027-01-31")).lines;
    assert!(nightly_deltas(&mtd, &posted).is_empty());
}

#[test]
fn example_g_nursing_course_paid_to_its_end_although_the_wound_healed() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(7)
        .team("nord", "2026-01-01", None)
        .grant(WOUND_CARE, "2027-01-11", Some("2027-02-14"))
        .build();
    let cs = track_courses(&h, &m, Track::Nursing);
    assert_eq!(cs.len(), 1);
    let c = &cs[0];
    assert_eq!(c.kind, CourseKind::Development);
    assert_eq!(c.group, Some(2));
    assert_eq!(c.need_score, 3);
    assert_eq!(locked(c).to_string(), "200.00");
    assert_eq!((c.start, c.end), (d("2027-01-11"), d("2027-04-04")));
    let money = monthly(&h, &m, Track::Nursing, "2027-01-01", "2027-12-31");
    assert_eq!(amount(&money, "nord", "2027-01"), "4200.00");
    assert_eq!(amount(&money, "nord", "2027-04"), "800.00");
    assert!(track_courses(&h, &m, Track::Care).is_empty());
}

// ---- edge cases beyond the worked examples ----

#[test]
fn a_course_over_29_february_counts_the_leap_day() {
    let mut tables = worked_example_tables();
    for t in &mut tables {
        t.year = 2028;
    }
    let m = mappings_with(tables);
    let h = HistoryBuilder::new(10)
        .team("nord", "2027-01-01", None)
        .grant(REHAB, "2028-02-01", Some("2028-02-10"))
        .levels(&[1], "2028-01-01")
        .build();
    let cs = courses(&h, &m);
    // 84 days from 1 February 2028 end on 24 April (29 days in February).
    assert_eq!(cs[0].end, d("2028-04-24"));
    let money = monthly(&h, &m, Track::Care, "2028-02-01", "2028-02-29");
    assert_eq!(amount(&money, "nord", "2028-02"), "6090.00"); // 29 x 210.00
}

#[test]
fn a_course_starting_on_a_dst_day_has_whole_days() {
    // 28 March 2027 is the spring DST change in Europe/Copenhagen: days are local dates.
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(11)
        .team("nord", "2027-01-01", None)
        .grant(REHAB, "2027-03-28", Some("2027-03-28"))
        .build();
    let cs = courses(&h, &m);
    assert_eq!((cs[0].start, cs[0].end), (d("2027-03-28"), d("2027-06-19")));
    assert_eq!(cs[0].days(), 84);
    let money = monthly(&h, &m, Track::Care, "2027-03-01", "2027-03-31");
    assert_eq!(amount(&money, "nord", "2027-03"), "840.00"); // 4 x 210.00
}

#[test]
fn a_grant_ending_on_the_last_course_day_leaves_no_successor() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(12)
        .grant(REHAB, "2027-01-04", Some("2027-03-28"))
        .build();
    let cs = courses(&h, &m);
    assert_eq!(cs.len(), 1);
    assert_eq!(cs[0].end, d("2027-03-28"));
    // One day more and a successor starts on 29 March.
    let h2 = HistoryBuilder::new(12)
        .grant(REHAB, "2027-01-04", Some("2027-03-29"))
        .build();
    let cs2 = courses(&h2, &m);
    assert_eq!(cs2.len(), 2);
    assert_eq!(
        (cs2[1].start, cs2[1].kind),
        (d("2027-03-29"), CourseKind::Development)
    );
}

#[test]
fn a_citizen_in_both_tracks_has_independent_courses() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(13)
        .team("syd", "2027-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .grant(MEDICINE, "2027-01-05", Some("2027-01-31"))
        .levels(&[2, 2], "2026-12-01")
        .build();
    let care = track_courses(&h, &m, Track::Care);
    let nursing = track_courses(&h, &m, Track::Nursing);
    assert_eq!((care[0].start, care[0].group), (d("2027-01-01"), Some(2)));
    assert_eq!(nursing.len(), 1);
    assert_eq!(
        (nursing[0].start, nursing[0].kind),
        (d("2027-01-05"), CourseKind::Stabilisation)
    );
    assert_eq!(locked(&nursing[0]).to_string(), "60.00");
    let care_money = monthly(&h, &m, Track::Care, "2027-01-01", "2027-01-31");
    let nursing_money = monthly(&h, &m, Track::Nursing, "2027-01-01", "2027-01-31");
    assert_eq!(amount(&care_money, "syd", "2027-01"), "5580.00"); // 31 x 180
    assert_eq!(amount(&nursing_money, "syd", "2027-01"), "1620.00"); // 27 x 60
}

#[test]
fn a_team_change_on_the_first_day_pays_the_new_team_from_the_first_day() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(14)
        .team("nord", "2026-01-01", Some("2026-12-31"))
        .team("syd", "2027-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[1], "2026-12-01")
        .build();
    let money = monthly(&h, &m, Track::Care, "2027-01-01", "2027-01-31");
    assert_eq!(amount(&money, "syd", "2027-01"), "2945.00"); // 31 x 95
    assert_eq!(amount(&money, "nord", "2027-01"), "none");
}

#[test]
fn a_locked_tariff_survives_the_year_end_and_a_new_tariff_year() {
    let mut tables = worked_example_tables();
    let mut next = tables[0].clone();
    next.year = 2028;
    for g in &mut next.groups {
        g.stabilisation += dec("10.00");
    }
    tables.push(next);
    let m = mappings_with(tables);
    let h = HistoryBuilder::new(15)
        .team("nord", "2027-01-01", None)
        .grant(PERSONAL_CARE, "2027-12-01", None)
        .levels(&[1], "2027-11-01")
        .build();
    let cs = courses(&h, &m);
    assert_eq!(
        (cs[0].tariff_year, locked(&cs[0]).to_string()),
        (2027, "95.00".into())
    );
    assert_eq!(cs[1].start, d("2028-05-31"));
    assert_eq!(
        (cs[1].tariff_year, locked(&cs[1]).to_string()),
        (2028, "105.00".into())
    );
    let money = monthly(&h, &m, Track::Care, "2028-01-01", "2028-01-31");
    assert_eq!(amount(&money, "nord", "2028-01"), "2945.00");
}

#[test]
fn withdrawn_grants_never_were_and_meals_bear_no_tariff() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(16)
        .withdrawn_grant(PERSONAL_CARE, "2027-01-01")
        .grant(MEALS, "2027-01-01", None)
        .build();
    assert!(courses(&h, &m).is_empty());
}

#[test]
fn an_active_goal_below_the_current_level_makes_a_development_course() {
    let m = worked_example_mappings();
    let base = HistoryBuilder::new(17)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .level("mobility", 3, "2026-12-01");
    let without = base.build();
    assert_eq!(courses(&without, &m)[0].kind, CourseKind::Stabilisation);
    let with = HistoryBuilder::new(17)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .level("mobility", 3, "2026-12-01")
        .goal("mobility", 1, "2026-12-15")
        .build();
    assert_eq!(courses(&with, &m)[0].kind, CourseKind::Development);
    // A goal set after the start does not change the course.
    let late = HistoryBuilder::new(17)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .level("mobility", 3, "2026-12-01")
        .goal("mobility", 1, "2027-01-02")
        .build();
    assert_eq!(courses(&late, &m)[0].kind, CourseKind::Stabilisation);
}

#[test]
fn moving_out_ends_the_course_and_a_later_grant_starts_a_new_one() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(18)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .terminated(TerminationReason::MovedOut, "2027-02-10")
        .grant(PERSONAL_CARE, "2027-06-01", None)
        .build();
    let cs = courses(&h, &m);
    // The open grant of June goes on, so stabilisation courses follow each other from June.
    assert!(cs.len() >= 2, "{cs:?}");
    assert_eq!(
        (cs[0].end, cs[0].end_reason),
        (
            d("2027-02-10"),
            EndReason::Terminated(TerminationReason::MovedOut)
        )
    );
    assert_eq!(cs[1].start, d("2027-06-01"));
}

#[test]
fn days_without_a_team_go_to_the_fallback_and_are_reported() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(19)
        .team("nord", "2027-01-11", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .build();
    let cs = courses(&h, &m);
    let report = income([(&h, cs.as_slice())], &m, d("2027-01-01"), d("2027-01-31"));
    let unassigned = report
        .lines
        .iter()
        .find(|(k, _)| k.payee == Payee::Unassigned)
        .map(|(_, l)| l.clone());
    assert_eq!(
        unassigned,
        Some(IncomeLine {
            course_days: 10,
            amount: dec("950.00")
        })
    );
    assert!(matches!(
        report.findings.as_slice(),
        [Finding::DaysWithoutTeam {
            days: 10,
            month: YearMonth {
                year: 2027,
                month: 1
            },
            ..
        }]
    ));
}

#[test]
fn the_custodian_sor_code_assigns_the_team_when_there_is_no_roster() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(20)
        .custodian("543210987654321")
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .build();
    let money = monthly(&h, &m, Track::Care, "2027-01-01", "2027-01-31");
    assert_eq!(amount(&money, "syd", "2027-01"), "2945.00");
}

#[test]
fn unknown_codes_and_missing_tariff_years_are_reported_not_dropped() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(21)
        .grant("not-a-code", "2027-01-01", None)
        .grant(PERSONAL_CARE, "2026-06-01", Some("2026-12-31"))
        .build();
    let out = compute_courses(&h, &m, d("2027-12-31"));
    assert!(out.courses.is_empty());
    assert!(
        out.findings
            .iter()
            .any(|f| matches!(f, Finding::UnknownCode { code, .. } if code == "not-a-code"))
    );
    assert!(out.findings.iter().any(|f| matches!(
        f,
        Finding::NoTariffTable {
            track: Track::Care,
            ..
        }
    )));
    for f in &out.findings {
        assert!(!f.to_string().is_empty());
    }
}

#[test]
fn a_late_death_report_lowers_the_month_and_the_delta_is_a_correction() {
    let m = worked_example_mappings();
    let alive = HistoryBuilder::new(22)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[3, 3, 3], "2026-12-20")
        .build();
    let cs = courses(&alive, &m);
    let mtd = income(
        [(&alive, cs.as_slice())],
        &m,
        d("2027-01-01"),
        d("2027-01-27"),
    )
    .lines;
    let posted: BTreeMap<_, _> = nightly_deltas(&mtd, &BTreeMap::new())
        .into_iter()
        .map(|p| (p.key, p.amount))
        .collect();
    let dead = HistoryBuilder::new(22)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[3, 3, 3], "2026-12-20")
        .terminated(TerminationReason::Death, "2027-01-20")
        .build();
    let cs = courses(&dead, &m);
    let mtd = income(
        [(&dead, cs.as_slice())],
        &m,
        d("2027-01-01"),
        d("2027-01-28"),
    )
    .lines;
    let deltas = nightly_deltas(&mtd, &posted);
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].amount.to_string(), "-1820.00"); // 7 days x 260 paid too much
    assert_eq!(deltas[0].month_to_date.to_string(), "5200.00");
}
#[test]
fn shipped_example_configuration_holds_the_worked_example_tables() {
    let loaded = progression_gateway::config::load(std::path::Path::new("config/example.toml"))
        .expect("config/example.toml loads");
    let tables: Vec<TariffTable> = loaded.mappings.tariffs.tables().to_vec();
    let mut expected = worked_example_tables();
    expected.sort_by_key(|t| (t.track, t.year));
    assert_eq!(tables, expected);
    // Wound care in both code forms: nursing, weight 3, development (example G).
    for code in [WOUND_CARE, "G1.39"] {
        let w = loaded
            .mappings
            .interventions
            .get(code)
            .expect("wound care mapped");
        assert_eq!(w.track, Some(Track::Nursing));
        assert_eq!(w.nursing_weight, 3);
        assert_eq!(
            w.course_hint,
            progression_gateway::mapping::CourseHint::Development
        );
    }
    let _ = YearMonth::of(d("2027-01-01"));
}

#[test]
fn a_new_custodian_pays_the_new_team_from_the_day_it_is_reported() {
    let m = worked_example_mappings();
    let mut h = HistoryBuilder::new(23)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[1], "2026-12-01")
        .build();
    h.custodians = vec![
        (Some(d("2026-12-10")), Some("123456789012345".into())),
        (Some(d("2027-01-16")), Some("543210987654321".into())),
    ];
    let money = monthly(&h, &m, Track::Care, "2027-01-01", "2027-01-31");
    assert_eq!(amount(&money, "nord", "2027-01"), "1425.00"); // 15 x 95
    assert_eq!(amount(&money, "syd", "2027-01"), "1520.00"); // 16 x 95
    // Before the first report, the first reported custodian applies.
    let mut early = h.clone();
    early.custodians.remove(1);
    early.custodians[0].0 = Some(d("2027-01-20"));
    let money = monthly(&early, &m, Track::Care, "2027-01-01", "2027-01-31");
    assert_eq!(amount(&money, "nord", "2027-01"), "2945.00");
}

#[test]
fn days_without_a_team_name_the_unmapped_custodian_sor_code() {
    let m = worked_example_mappings();
    let h = HistoryBuilder::new(42)
        .custodian("999999999999999")
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[0, 1], "2026-12-01")
        .build();
    let cs = courses(&h, &m);
    let report = income([(&h, cs.as_slice())], &m, d("2027-01-01"), d("2027-01-31"));
    let [f] = report.findings.as_slice() else {
        panic!("{:?}", report.findings);
    };
    assert!(matches!(
        f,
        Finding::DaysWithoutTeam { days: 31, unmapped_sor: Some(sor), .. } if sor == "999999999999999"
    ));
    assert!(
        f.to_string()
            .ends_with("(the custodian SOR code `999999999999999` is not in teams.toml)"),
        "{f}"
    );
}
