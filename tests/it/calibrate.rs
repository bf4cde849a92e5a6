//! Tariff calibration and what-if: a municipality whose true cost per cell is known recovered
//! from a real SQLite store, both from this file's own history generator and from the FHIR care
//! simulator with a delivered-minutes profile (`sim::care::deliver_profile`); thin-cell
//! merging, the premium and the overhead with exact expected tables; `whatif` with the table in
//! force (no difference) and a draft 10 % higher in one cell (exactly that cell's course-days
//! times the difference); neither changes the ledger.

use crate::common::*;
use progression_gateway::domain::{CourseKind, DeliveryMode, Track};
use progression_gateway::mapping::{Mappings, TariffTable};
use progression_gateway::model::calibrate::{self, CourseCost, Params};
use progression_gateway::model::{CitizenHistory, Record, Versioned};
use progression_gateway::sim::care::DeliveredProfile;
use progression_gateway::store::Store;
use rust_decimal::Decimal;

fn care_2027(m: &Mappings) -> TariffTable {
    m.tariffs.table(Track::Care, 2027).unwrap().clone()
}

fn params(frame: &str, premium: &str, overhead: &str, min_courses: u64) -> Params {
    Params {
        track: Track::Care,
        from: d("2027-01-01"),
        to: d("2027-06-30"),
        frame: dec(frame),
        premium_pct: dec(premium),
        overhead_pct: dec(overhead),
        min_courses,
        year: 2028,
        hourly_rate: None,
    }
}

/// `n` courses of `days` days each, `minutes` delivered in each, in one cell (a need score in
/// the group: 1 → group 1, 5 → 2, 9 → 3).
fn courses(
    kind: CourseKind,
    need_score: u32,
    n: usize,
    days: u64,
    minutes: u64,
) -> Vec<CourseCost> {
    (0..n)
        .map(|_| CourseCost {
            track: Track::Care,
            kind,
            need_score,
            days,
            visits: 10,
            delivered_minutes: minutes,
            visitated_minutes: Decimal::ZERO,
        })
        .collect()
}

/// At 450.00 kr. an hour (7.50 kr. a minute): development group 1 costs 150.00 a day (2
/// courses), group 2 180.00 (3), group 3 300.00 (1); stabilisation 90.00 (4), 150.00 (2),
/// 240.00 (2); one individual course 4,500.00. Development and stabilisation cost 147,000.00.
fn hand_costs() -> Vec<CourseCost> {
    use CourseKind::*;
    let mut c = Vec::new();
    c.extend(courses(Development, 1, 2, 50, 1000));
    c.extend(courses(Development, 5, 3, 50, 1200));
    c.extend(courses(Development, 9, 1, 50, 2000));
    c.extend(courses(Stabilisation, 1, 4, 100, 1200));
    c.extend(courses(Stabilisation, 5, 2, 100, 2000));
    c.extend(courses(Stabilisation, 9, 2, 50, 1600));
    c.extend(courses(Individual, 16, 1, 20, 600));
    c
}

fn tariffs(c: &calibrate::Calibration) -> Vec<(CourseKind, u8, Decimal)> {
    c.cells
        .iter()
        .map(|x| (x.kind, x.group, x.tariff))
        .collect()
}

fn table(dev: [&str; 4], stab: [&str; 4]) -> Vec<(CourseKind, u8, Decimal)> {
    let mut out = Vec::new();
    for (kind, values) in [
        (CourseKind::Development, dev),
        (CourseKind::Stabilisation, stab),
    ] {
        for (i, v) in values.iter().enumerate() {
            out.push((kind, i as u8 + 1, dec(v)));
        }
    }
    out
}

#[test]
fn a_thin_cell_is_merged_with_the_group_below_and_shares_its_unit_cost() {
    let m = worked_example_mappings();
    // Frame 151,500.00 = 147,000.00 + the individual course's 4,500.00: factor 1.
    let c = calibrate::calibrate(
        &hand_costs(),
        &care_2027(&m),
        &params("151500.00", "0", "0", 2),
    )
    .unwrap();
    assert_eq!(c.factor, Decimal::ONE);
    assert_eq!(c.individual_cost, dec("4500.00"));
    // Development group 3 (1 course) pooled with group 2: 42,000.00 / 200 days = 210.00. Group
    // 4 had no course: pooled into group 3's pool as well, with the same unit cost.
    assert_eq!(
        tariffs(&c),
        table(
            ["150.00", "210.00", "210.00", "210.00"],
            ["90.00", "150.00", "240.00", "240.00"]
        )
    );
    assert_eq!(
        c.merged,
        vec![
            "development group 3 (1 course) merged with group 2",
            "development group 4 (0 courses) merged with group 2+3",
            "stabilisation group 4 (0 courses) merged with group 3",
        ]
    );
    assert_eq!(c.scaled_total, dec("151500.00"));

    // At least 3 courses: development 1 goes into 2 (the first group into the one above),
    // then 3 and 4 into 1+2: all 57,000.00 / 300 days = 190.00; stabilisation 2 into 1, 3
    // into 1+2, 4 into 1+2+3: 90,000.00 / 700 days = 128.571... = 128.57.
    let c = calibrate::calibrate(
        &hand_costs(),
        &care_2027(&m),
        &params("151500.00", "0", "0", 3),
    )
    .unwrap();
    assert_eq!(
        tariffs(&c),
        table(
            ["190.00", "190.00", "190.00", "190.00"],
            ["128.57", "128.57", "128.57", "128.57"]
        )
    );
    assert!(c.cells.iter().all(|x| x.pooled_with == vec![1, 2, 3, 4]));
}

#[test]
fn the_premium_goes_on_development_and_the_overhead_on_every_cell() {
    let m = worked_example_mappings();
    let c = calibrate::calibrate(
        &hand_costs(),
        &care_2027(&m),
        &params("151500.00", "10", "6", 2),
    )
    .unwrap();
    // 150.00 × 1.10 × 1.06 = 174.90; 210.00 × 1.166 = 244.86; stabilisation × 1.06.
    assert_eq!(
        tariffs(&c),
        table(
            ["174.90", "244.86", "244.86", "244.86"],
            ["95.40", "159.00", "254.40", "254.40"]
        )
    );
    // The frame is the scaled total; premium and overhead come on top.
    assert_eq!(c.scaled_total, dec("151500.00"));
    let expected = dec("4500.00")
        + dec("150.00") * dec("1.166") * dec("100")
        + dec("210.00") * dec("1.166") * dec("200")
        + dec("90.00") * dec("1.06") * dec("400")
        + dec("150.00") * dec("1.06") * dec("200")
        + dec("240.00") * dec("1.06") * dec("100");
    assert_eq!(c.marked_up_total, expected);
    assert_eq!(
        c.rounding_residue,
        Decimal::ZERO,
        "every tariff is exact here"
    );
}

#[test]
fn the_factor_scales_every_cell_so_the_expected_total_is_the_frame() {
    let m = worked_example_mappings();
    // Frame 100,000.00: factor 95,500 / 147,000 = 0.649659...; with 6 % overhead: 150.00 →
    // 103.30, 210.00 → 144.61, 90.00 → 61.98, 240.00 → 165.27 (half away from zero).
    let c = calibrate::calibrate(
        &hand_costs(),
        &care_2027(&m),
        &params("100000.00", "0", "6", 2),
    )
    .unwrap();
    assert_eq!(
        tariffs(&c),
        table(
            ["103.30", "144.61", "144.61", "144.61"],
            ["61.98", "103.30", "165.27", "165.27"]
        )
    );
    // The scaled table's expected total is the frame to the øre before rounding the tariffs.
    assert!(
        (c.scaled_total - dec("100000.00")).abs() < dec("0.000001"),
        "{}",
        c.scaled_total
    );
    // The rounding residue is what the rounded tariffs add over the exact ones, day by day.
    assert_eq!(c.rounding_residue, c.rounded_total - c.marked_up_total);
    assert!(
        c.rounding_residue.abs() <= dec("0.005") * dec("1050"),
        "{}",
        c.rounding_residue
    );
    // The table written loads as a tariff file, with the template's groups and rules.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("care-2028.toml");
    std::fs::write(&path, calibrate::to_toml(&c)).unwrap();
    let loaded = progression_gateway::mapping::load::load_tariffs_file(&path).unwrap();
    assert_eq!(loaded, vec![c.table.clone()]);
    assert_eq!(loaded[0].year, 2028);
    assert_eq!(loaded[0].groups[0].development, dec("103.30"));
}

#[test]
fn bad_parameters_are_refused_with_the_reason() {
    let m = worked_example_mappings();
    let t = care_2027(&m);
    let e = calibrate::calibrate(&hand_costs(), &t, &params("4000.00", "0", "0", 2)).unwrap_err();
    assert!(
        e.to_string()
            .contains("does not exceed the individual courses' cost 4500"),
        "{e}"
    );
    let e = calibrate::calibrate(&hand_costs(), &t, &params("151500", "120", "0", 2)).unwrap_err();
    assert_eq!(e.to_string(), "--premium must be between 0 and 100");
    let only_stab: Vec<_> = hand_costs()
        .into_iter()
        .filter(|c| c.kind != CourseKind::Development)
        .collect();
    let e = calibrate::calibrate(&only_stab, &t, &params("151500", "0", "0", 2)).unwrap_err();
    assert_eq!(e.to_string(), "no development courses in the period");
    // A table without an hourly rate (nursing here) needs one given.
    let nursing = m.tariffs.table(Track::Nursing, 2027).unwrap().clone();
    let mut p = params("151500.00", "0", "0", 2);
    if nursing.individual.is_none() {
        let e = calibrate::calibrate(&hand_costs(), &nursing, &p).unwrap_err();
        assert!(e.to_string().ends_with("give --hourly-rate"), "{e}");
    }
    // At 900.00 kr. an hour every cost doubles, the individual course's too: with a frame
    // twice as large the factor is 1 and development group 1 costs 300.00 a day.
    p.hourly_rate = Some(dec("900.00"));
    p.frame = dec("303000.00");
    let c = calibrate::calibrate(&hand_costs(), &t, &p).unwrap();
    assert_eq!(
        (c.factor, c.individual_cost),
        (Decimal::ONE, dec("9000.00"))
    );
    assert_eq!(c.cells[0].tariff, dec("300.00"));
}

// ---------------------------------------------------------------------------------------------
// A generated municipality with a known cost per cell, through a real store.
// ---------------------------------------------------------------------------------------------

/// The delivered minutes a day of each cell (the profile the generator delivers by).
fn profile(kind: CourseKind, group: u8) -> i64 {
    match (kind, group) {
        (CourseKind::Development, 1) => 40,
        (CourseKind::Development, 2) => 55,
        (CourseKind::Development, _) => 75,
        (CourseKind::Stabilisation, 1) => 20,
        (CourseKind::Stabilisation, 2) => 35,
        _ => 50,
    }
}

/// Citizen `n` in a cell: a grant (rehabilitation for development) from `start` to the
/// course's last day, levels giving a score in the group, and every day of the course one visit
/// of the profile's minutes, 5 minutes longer or shorter on alternate days (so each course's
/// mean is the profile's, give or take 5/days).
fn citizen(n: u32, kind: CourseKind, group: u8, start: &str) -> CitizenHistory {
    let levels: &[u8] = match group {
        1 => &[1, 1],
        2 => &[2, 3],
        _ => &[3, 3, 3],
    };
    let (code, days) = match kind {
        CourseKind::Development => (REHAB, 84),
        _ => (PERSONAL_CARE, 182),
    };
    let first = d(start);
    let last = first + chrono::Days::new(days - 1);
    let mut b = HistoryBuilder::new(n)
        .team("nord", "2026-01-01", None)
        .grant(code, start, Some(&last.to_string()))
        .levels(levels, "2026-12-01");
    let mut day = first;
    let mut i = 0;
    while day <= last {
        let minutes = profile(kind, group) + if i % 2 == 0 { 5 } else { -5 };
        b = b.visit(
            "grant-1",
            &format!("{day}T09:00:00Z"),
            minutes,
            Some("e1"),
            DeliveryMode::Home,
        );
        day = day + chrono::Days::new(1);
        i += 1;
    }
    b.build()
}

async fn store_with(dir: &std::path::Path, histories: &[CitizenHistory]) -> Store {
    let store = Store::connect(&format!("sqlite://{}", dir.join("gw.db").display()))
        .await
        .unwrap();
    for h in histories {
        let mut versions = versions_of(h);
        let base = versions.last().map(|v| v.version_at).unwrap();
        versions.extend(h.visits.iter().enumerate().map(|(i, v)| Versioned {
            source: "test".into(),
            version_at: base + chrono::Duration::seconds(i as i64 + 1),
            withdrawn: false,
            record: Record::Visit(v.clone()),
        }));
        store.put_batch(&versions, None).await.unwrap();
    }
    store
}

#[tokio::test]
async fn a_generated_municipality_s_cost_per_cell_is_recovered_within_one_percent() {
    let m = worked_example_mappings();
    let cells = [
        (CourseKind::Development, 1u8, 4u32),
        (CourseKind::Development, 2, 6),
        (CourseKind::Development, 3, 3),
        (CourseKind::Stabilisation, 1, 5),
        (CourseKind::Stabilisation, 2, 4),
        (CourseKind::Stabilisation, 3, 3),
    ];
    let mut histories = Vec::new();
    let mut n = 0;
    for (kind, group, count) in cells {
        for k in 0..count {
            n += 1;
            let start = format!("2027-01-{:02}", 1 + (k * 3 + u32::from(group)) % 20);
            histories.push(citizen(n, kind, group, &start));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let store = store_with(dir.path(), &histories).await;
    let costs = progression_gateway::pipeline::calibrate::collect(
        &store,
        &m,
        chrono_tz::Europe::Copenhagen,
        Track::Care,
        d("2027-01-01"),
        d("2027-12-31"),
    )
    .await
    .unwrap();
    assert_eq!(costs.len(), n as usize, "one course per citizen");
    assert!(costs.iter().all(|c| c.visits > 0), "{costs:#?}");
    let mut p = params("2000000.00", "0", "0", 1);
    p.to = d("2027-12-31");
    let c = calibrate::calibrate(&costs, &care_2027(&m), &p).unwrap();
    assert!(
        c.merged.iter().all(|x| x.contains("group 4 (0 courses)")),
        "{:?}",
        c.merged
    );
    for (kind, group, count) in cells {
        let cell = c
            .cells
            .iter()
            .find(|x| x.kind == kind && x.group == group)
            .unwrap();
        assert_eq!(cell.courses, u64::from(count));
        // The true cost: the profile's minutes a day at 450.00 kr. an hour.
        let truth = Decimal::from(profile(kind, group)) * dec("7.50");
        let off = ((cell.unit_cost - truth) / truth).abs();
        assert!(
            off < dec("0.01"),
            "{kind:?} {group}: {} against {truth}",
            cell.unit_cost
        );
    }
    // Scaled to the frame exactly, before the tariffs are rounded.
    assert!((c.scaled_total - dec("2000000.00")).abs() < dec("0.000001"));
}

// ---------------------------------------------------------------------------------------------
// The FHIR simulator with a delivered-minutes profile, imported like any delivery, calibrated.
// ---------------------------------------------------------------------------------------------

/// Minutes per course-day of each cell the simulator delivers (every group of both tracks;
/// individual courses too, whatever their group).
fn sim_profile() -> DeliveredProfile {
    let mut p = DeliveredProfile::default();
    for group in 1..=4u8 {
        let g = u32::from(group);
        p = p
            .with(Track::Care, CourseKind::Development, group, 30 + 15 * g)
            .with(Track::Care, CourseKind::Stabilisation, group, 10 + 15 * g)
            .with(Track::Care, CourseKind::Individual, group, 150)
            .with(Track::Nursing, CourseKind::Development, group, 10 + 5 * g)
            .with(Track::Nursing, CourseKind::Stabilisation, group, 5 + 5 * g)
            .with(Track::Nursing, CourseKind::Individual, group, 60);
    }
    p
}

/// The Bundle with every Encounter's `period.end` taken from `like` (to compare the rest).
fn ends_from(bundle: &serde_json::Value, like: &serde_json::Value) -> serde_json::Value {
    let mut out = bundle.clone();
    let ends: std::collections::HashMap<String, serde_json::Value> = like["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["resource"]["resourceType"] == "Encounter")
        .map(|e| {
            (
                e["resource"]["id"].as_str().unwrap().to_owned(),
                e["resource"]["period"]["end"].clone(),
            )
        })
        .collect();
    for e in out["entry"].as_array_mut().unwrap() {
        if e["resource"]["resourceType"] == "Encounter" {
            let id = e["resource"]["id"].as_str().unwrap().to_owned();
            e["resource"]["period"]["end"] = ends[&id].clone();
        }
    }
    out
}

#[tokio::test]
async fn the_simulator_s_delivered_minutes_profile_is_recovered_per_cell_and_scaled_to_the_frame() {
    use progression_gateway::sim::care::{SimConfig, deliver_profile, generate};
    use progression_gateway::sources::Format;
    use progression_gateway::sources::ingest::Ingestor;
    let loaded = progression_gateway::config::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml"),
    )
    .unwrap();
    let tz = loaded.settings.time_zone;
    let m = &loaded.mappings;
    let (from, days) = (d("2027-01-01"), 150u32);
    let to = from + chrono::Days::new(u64::from(days) - 1);
    let generated = generate(&SimConfig {
        seed: 13,
        citizens: 300,
        start: from,
        days,
        sor_codes: m
            .teams
            .iter()
            .flat_map(|t| t.sor_codes.iter().cloned())
            .collect(),
        time_zone: tz,
    });
    let profile = sim_profile();
    let profiled = deliver_profile(&generated, m, tz, &profile, from, to).unwrap();
    assert_eq!(
        profiled.shared_visits, 0,
        "the simulator's visit slots are per track"
    );
    assert_eq!(profiled.unprofiled_courses, 0);
    assert!(
        profiled.visits_profiled > 10_000,
        "{}",
        profiled.visits_profiled
    );

    // Only Encounter.period.end changed: same Bundles, ids, order and lastUpdated; a Bundle
    // without a visit keeps its bytes.
    let sim = &profiled.municipality;
    assert_eq!(sim.citizens, generated.citizens);
    assert_eq!(sim.bundles.len(), generated.bundles.len());
    let mut rewritten = 0;
    for (new, old) in sim.bundles.iter().zip(&generated.bundles) {
        assert_eq!(
            (&new.id, new.citizen, new.last_updated),
            (&old.id, old.citizen, old.last_updated)
        );
        if new.json != old.json {
            rewritten += 1;
            let (new, old) = (new.resource(), old.resource());
            assert_eq!(ends_from(&new, &old), old);
        }
    }
    assert!(rewritten > sim.bundles.len() / 2, "{rewritten}");

    // Imported through the reader into a real SQLite store, as `import` does.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("gw.db").display()))
        .await
        .unwrap();
    let ingestor = Ingestor::new(
        store.clone(),
        loaded.settings.pseudonym_key.clone(),
        tz,
        std::sync::Arc::new(m.clone()),
        "import",
    );
    let mut batch = ingestor.batch();
    for b in &sim.bundles {
        let out = ingestor.read(&b.json, Format::Json, &b.id, &mut batch);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        batch.push(out, None).await.unwrap();
    }
    let summary = batch.finish().await.unwrap();
    assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
    assert_eq!(
        summary.visits,
        profiled.visits_profiled + profiled.visits_left
    );

    let costs =
        progression_gateway::pipeline::calibrate::collect(&store, m, tz, Track::Care, from, to)
            .await
            .unwrap();
    let truth: Vec<_> = profiled
        .cells
        .iter()
        .filter(|c| c.cell.track == Track::Care)
        .collect();
    assert_eq!(
        costs.len() as u64,
        truth.iter().map(|c| c.courses).sum::<u64>(),
        "the profile and calibrate decide the same courses"
    );
    let template = calibrate::template_of(m, Track::Care, to).unwrap().clone();
    let rate = template.individual.as_ref().unwrap().hourly_rate;
    assert_eq!(rate, dec("450.00"));
    let frame = dec("6000000.00");
    let p = Params {
        track: Track::Care,
        from,
        to,
        frame,
        premium_pct: dec("10"),
        overhead_pct: dec("6"),
        min_courses: 1,
        year: 2028,
        hourly_rate: None,
    };
    let c = calibrate::calibrate(&costs, &template, &p).unwrap();
    assert!(
        c.merged.iter().all(|x| x.contains("(0 courses)")),
        "only empty cells merge: {:?}",
        c.merged
    );

    // Before scaling: every cell's cost per course-day is the profile's (within 1 %; exactly
    // where every course of the cell has a visit in the period).
    let mut checked = 0;
    for t in truth
        .iter()
        .filter(|t| t.cell.kind != CourseKind::Individual)
    {
        let cell = c
            .cells
            .iter()
            .find(|x| x.kind == t.cell.kind && x.group == t.cell.group)
            .unwrap();
        assert_eq!((cell.courses, cell.days), (t.courses, t.course_days));
        let expected = t.cost_per_day.unwrap();
        assert_eq!(
            expected,
            Decimal::from(t.minutes_per_day) * dec("7.50"),
            "the profile's minutes at 450.00 kr. an hour"
        );
        let off = (cell.unit_cost - expected) / expected;
        println!(
            "{:<13} group {}: {:>3} courses, {:>5} course-days, {} without a visit: true {} kr., calibrated {} kr. ({:+.4} %)",
            t.cell.kind.as_str(),
            t.cell.group,
            t.courses,
            t.course_days,
            t.courses_without_visit,
            expected,
            cell.unit_cost.round_dp(4),
            (off * dec("100")).round_dp(4)
        );
        assert!(off.abs() < dec("0.01"), "{:?}: {}", t.cell, cell.unit_cost);
        if t.exact() {
            assert_eq!(cell.unit_cost, expected, "{:?}", t.cell);
        }
        checked += 1;
    }
    assert!(checked >= 6, "cells with courses: {checked}");
    // Individual courses keep their hourly rate: their cost is the profile's minutes too.
    let individual: u64 = truth
        .iter()
        .filter(|t| t.cell.kind == CourseKind::Individual)
        .map(|t| u64::from(t.minutes_per_day) * t.course_days)
        .sum();
    if truth
        .iter()
        .filter(|t| t.cell.kind == CourseKind::Individual)
        .all(|t| t.exact())
    {
        assert_eq!(c.individual_cost, Decimal::from(individual) * dec("7.50"));
    }

    // Scaled: the expected total is the frame to the øre before the tariffs are rounded.
    assert!(
        (c.scaled_total - frame).abs() < dec("0.005"),
        "{}",
        c.scaled_total
    );
    // The rounding residue is what the rounded tariffs add over the exact ones, day by day: at
    // most half an øre per course-day.
    let course_days: u64 = c.cells.iter().map(|x| x.days).sum();
    assert_eq!(c.rounding_residue, c.rounded_total - c.marked_up_total);
    assert!(
        c.rounding_residue.abs() <= dec("0.005") * Decimal::from(course_days),
        "{}",
        c.rounding_residue
    );
    println!(
        "factor {}, scaled total {}, with premium and overhead {}, rounded {}, rounding residue {} over {} course-days",
        c.factor.round_dp(6),
        c.scaled_total,
        c.marked_up_total.round_dp(4),
        c.rounded_total,
        c.rounding_residue.round_dp(4),
        course_days
    );
}

// ---------------------------------------------------------------------------------------------
// What if
// ---------------------------------------------------------------------------------------------

async fn abc_store(dir: &std::path::Path, record: bool) -> Store {
    let store = Store::connect(&format!("sqlite://{}", dir.join("gw.db").display()))
        .await
        .unwrap();
    for h in examples_abc() {
        store.put_batch(&versions_of(&h), None).await.unwrap();
    }
    if record {
        let m = worked_example_mappings();
        let eval = progression_gateway::pipeline::evaluate(
            &store,
            &m,
            chrono_tz::Europe::Copenhagen,
            d("2027-03-31"),
        )
        .await
        .unwrap();
        eval.record(&store, d("2027-03-31")).await.unwrap();
    }
    store
}

#[tokio::test]
async fn whatif_with_the_table_in_force_shows_no_difference_and_a_draft_cell_exactly_its_days() {
    use progression_gateway::pipeline::whatif::whatif;
    let m = worked_example_mappings();
    for record in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = abc_store(dir.path(), record).await;
        let ledger_before = store.ledger_latest().await.unwrap();
        let tz = chrono_tz::Europe::Copenhagen;
        let (from, to) = (d("2027-01-01"), d("2027-03-31"));

        // The table in force as the draft: nothing changes anywhere.
        let same = whatif(&store, &m, tz, &[care_2027(&m)], from, to)
            .await
            .unwrap();
        assert!(!same.months.is_empty());
        assert!(
            same.months.iter().all(|x| x.difference.is_zero()),
            "{:?}",
            same.months
        );
        assert!(same.cells.iter().all(|x| x.difference.is_zero()));
        assert_eq!(same.total_in_force, same.total_draft);
        assert_eq!(same.recorded_repriced, 0);

        // Development group 2 10 % higher: 250.00 → 275.00. A (the only such course) has 84
        // days in the period (4 January to 28 March): 84 × 25.00 = 2,100.00, all of it nord's.
        let mut draft = care_2027(&m);
        draft.groups[1].development = dec("275.00");
        let w = whatif(&store, &m, tz, &[draft], from, to).await.unwrap();
        let cell = w
            .cells
            .iter()
            .find(|x| x.kind == CourseKind::Development && x.group == Some(2))
            .unwrap();
        assert_eq!((cell.courses, cell.course_days), (1, 84));
        assert_eq!(cell.difference, dec("2100.00"));
        assert!(
            w.cells
                .iter()
                .filter(|x| x != &cell)
                .all(|x| x.difference.is_zero()),
            "{:?}",
            w.cells
        );
        let by_month: Vec<(String, String, Decimal)> = w
            .months
            .iter()
            .filter(|x| !x.difference.is_zero())
            .map(|x| (x.team.clone(), x.month.clone(), x.difference))
            .collect();
        // January 28 days, February 28, March 28.
        assert_eq!(
            by_month,
            vec![
                ("nord".into(), "2027-01".into(), dec("700.00")),
                ("nord".into(), "2027-02".into(), dec("700.00")),
                ("nord".into(), "2027-03".into(), dec("700.00")),
            ]
        );
        assert_eq!(w.total_draft - w.total_in_force, dec("2100.00"));
        assert_eq!(w.recorded_repriced, if record { 3 } else { 0 });
        // Nothing recorded.
        assert_eq!(store.ledger_latest().await.unwrap(), ledger_before);
    }
}

#[test]
fn a_course_without_visits_is_costed_by_its_visitated_minutes_and_counted() {
    let m = worked_example_mappings();
    let mut costs = hand_costs();
    // A fourth stabilisation group-1 course with no visit: 1,200 visitated minutes (9,000.00).
    costs.push(CourseCost {
        visits: 0,
        delivered_minutes: 0,
        visitated_minutes: dec("1200"),
        ..courses(CourseKind::Stabilisation, 1, 1, 100, 0).remove(0)
    });
    let c =
        calibrate::calibrate(&costs, &care_2027(&m), &params("160500.00", "0", "0", 2)).unwrap();
    assert_eq!(c.costed_by_visitation, 1);
    let cell = c
        .cells
        .iter()
        .find(|x| x.kind == CourseKind::Stabilisation && x.group == 1)
        .unwrap();
    assert_eq!(
        (cell.courses, cell.days, cell.cost),
        (5, 500, dec("45000.00"))
    );
    assert_eq!(cell.tariff, dec("90.00"));
}

#[test]
fn a_reader_loads_a_configuration_that_serves_the_cockpit() {
    // `figures`, `calibrate`, `whatif` read with Purpose::Reader, which leaves [http] out: the
    // [cockpit] beside it must not make the configuration invalid.
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/example.toml"))
        .unwrap()
        .replace(
            "dir = \"../mappings\"",
            &format!("dir = {:?}", root.join("mappings").display().to_string()),
        );
    std::fs::write(dir.path().join("token"), "a-token-of-twenty-characters").unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "{text}\n[http]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n[cockpit]\n[[cockpit.principal]]\nname = \"ledelse\"\ntoken_sha256 = \"{}\"\nall = true\n",
            "a".repeat(64)
        ),
    )
    .unwrap();
    let reader =
        progression_gateway::config::load_for(&path, progression_gateway::config::Purpose::Reader);
    assert!(reader.is_ok(), "{:?}", reader.err().map(|e| e.to_string()));
}
