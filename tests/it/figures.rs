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

// ---------------------------------------------------------------------------------------------
// Money: costs from the finance system's actuals, balance and the run-rate forecast, in the
// both-tracks cells; and the nightly export of the figures per cost centre.
// ---------------------------------------------------------------------------------------------

/// nord's income, both tracks (by hand): citizen 1 care 28 × 250.00 in January, February and
/// March (4 January to 28 March); citizen 3 nursing at 200.00 for 21 days in January, 28 in
/// February, 31 in March and 4 in April: January 11,200.00, February 12,600.00, March
/// 13,200.00, April 800.00. The finance system books nord (1001) 10,000.00 in January,
/// 12,000.00 in February and 5,000.00 in April (none in March), the fallback cost centre 9999
/// 100.00 in March, an unknown cost centre 4444, and one month before the period.
fn with_costs() -> (Figures, std::collections::BTreeSet<String>) {
    use progression_gateway::model::figures::Actual;
    let m = worked_example_mappings();
    let mut f = computed();
    let actual = |cc: &str, month: &str, amount: &str| Actual {
        cost_centre: cc.into(),
        month: YearMonth::of(d(&format!("{month}-01"))),
        amount: dec(amount),
    };
    let unknown = f.add_costs(
        &[
            actual("1001", "2027-01", "10000.00"),
            actual("1001", "2027-02", "12000.00"),
            actual("1001", "2027-04", "5000.00"),
            actual("9999", "2027-03", "100.00"),
            actual("4444", "2027-01", "1.00"),
            actual("1001", "2026-12", "99.00"),
        ],
        &m,
        d("2027-01-01"),
        d(AS_OF),
    );
    f.set_run_rates(d(AS_OF));
    (f, unknown)
}

fn both(scope: Scope, month: &str) -> Cell {
    Cell {
        scope,
        month: YearMonth::of(d(&format!("{month}-01"))),
        track: None,
    }
}

#[test]
fn income_in_both_tracks_costs_and_balance_per_team_and_month() {
    let (f, unknown) = with_costs();
    assert_eq!(unknown.into_iter().collect::<Vec<_>>(), vec!["4444"]);
    let v = |id: &str, c: Cell| figures::value(id, &f.tally(&c)).unwrap().value;
    let nord = team("nord");
    assert_eq!(
        v("income", both(nord.clone(), "2027-01")),
        Some(dec("11200.00"))
    );
    assert_eq!(
        v("costs", both(nord.clone(), "2027-01")),
        Some(dec("10000.00"))
    );
    assert_eq!(
        v("balance", both(nord.clone(), "2027-01")),
        Some(dec("1200.00"))
    );
    assert_eq!(
        v("balance", both(nord.clone(), "2027-02")),
        Some(dec("600.00"))
    );
    assert_eq!(
        v("balance", both(nord.clone(), "2027-04")),
        Some(dec("-4200.00"))
    );
    // No actuals for March: no costs and no balance (not 0).
    assert_eq!(v("costs", both(nord.clone(), "2027-03")), None);
    assert_eq!(v("balance", both(nord.clone(), "2027-03")), None);
    // The fallback cost centre is the days without a team; both are in the municipality.
    assert_eq!(
        v("costs", both(Scope::Unassigned, "2027-03")),
        Some(dec("100.00"))
    );
    assert_eq!(
        v("costs", both(Scope::Municipality, "2027-01")),
        Some(dec("10000.00"))
    );
    assert_eq!(
        v("costs", both(Scope::Municipality, "2027-03")),
        Some(dec("100.00"))
    );
    // Costs are not split by track: a track's cell has none.
    assert_eq!(
        f.tally(&cell(nord.clone(), "2027-01", Track::Care)).costs,
        None
    );
    assert!(!figures::definition("costs").unwrap().per_track);
    // Both tracks' income is the two tracks' sum, in every cell.
    for (c, t) in &f.cells {
        if c.track.is_some() {
            continue;
        }
        let parts: Decimal = [Track::Care, Track::Nursing]
            .iter()
            .map(|tr| {
                f.tally(&Cell {
                    track: Some(*tr),
                    ..c.clone()
                })
                .income
            })
            .sum();
        assert_eq!(parts, t.income, "{c:?}");
    }
}

#[test]
fn the_run_rate_forecast_extends_the_balance_of_the_months_with_actuals_to_the_year() {
    let (f, _) = with_costs();
    // nord: January (31 days), February (28) and April up to the 30th (30): 89 days with a
    // balance of 1,200.00 + 600.00 - 4,200.00 = -2,400.00; over 365 days -9,842.70.
    let t = f.tally(&both(team("nord"), "2027-04"));
    let r = t.run_rate.expect("a run rate in the as-of month");
    assert_eq!((r.balance, r.days, r.year_days), (dec("-2400.00"), 89, 365));
    let forecast = figures::value("forecast_balance", &t)
        .unwrap()
        .value
        .unwrap();
    assert_eq!(
        progression_gateway::model::round_money(forecast),
        dec("-9842.70")
    );
    // syd has no actuals: no forecast.
    let syd = f.tally(&both(team("syd"), "2027-04"));
    assert_eq!(
        figures::value("forecast_balance", &syd).unwrap().value,
        None
    );
}

fn export_settings(toml_text: &str) -> progression_gateway::sinks::figures::FiguresExportSettings {
    toml::from_str(toml_text).unwrap()
}

#[test]
fn the_export_has_a_row_per_cost_centre_figure_and_month_with_the_configured_columns() {
    use progression_gateway::sinks::figures::file;
    let (f, _) = with_costs();
    let m = worked_example_mappings();
    let s = export_settings(
        r#"
        columns = ["cost_centre", "month", "figure", "value", "numerator", "denominator"]
        [transport]
        kind = "folder"
        dir = "out"
        reply_dir = "out"
    "#,
    );
    assert!(s.problems(false).is_empty(), "{:?}", s.problems(false));
    let out = file(&s, &f, &m, d(AS_OF)).unwrap();
    let text = String::from_utf8(out.content.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "cost_centre;month;figure;value;numerator;denominator"
    );
    for row in [
        "1001;2027-01;income;11200,00;11200,00;",
        "1001;2027-01;costs;10000,00;10000,00;",
        "1001;2027-02;balance;600,00;600,00;",
        "1001;2027-03;costs;;0,00;",
        "1001;2027-04;balance;-4200,00;-4200,00;",
        "1001;2027-04;forecast_balance;-9842,70;-2400,00;89",
        "9999;2027-03;costs;100,00;100,00;",
        "1002;2027-03;income;7330,00;7330,00;",
        // A ratio: nursing's clinic share in January over both tracks, 3 of 6 visits... as
        // computed per track above: care 1 of 4, nursing 1 of 2: 2 of 6.
        "1001;2027-01;clinic_share;0,3333;2;6",
    ] {
        assert!(lines.contains(&row), "{row} not in\n{text}");
    }
    // One row per cost centre (1001, 1002, 9999), figure and month; no municipality rows.
    let figures_n = figures::CATALOGUE.len();
    assert_eq!(out.rows, 3 * 4 * figures_n, "{text}");
    assert_eq!(lines.len(), out.rows + 1);
    assert!(out.name.starts_with("styringstal-2027-04-30-") && out.name.ends_with(".csv"));
    assert_eq!(&out.name[23..35], &out.hash[..12]);

    // Headers renamed, some figures only, plain numbers with a comma delimiter.
    let s = export_settings(
        r#"
        columns = ["cost_centre", "team", "month_start", "figure_name", "value", "as_of"]
        headers = ["Omkostningssted", "Team", "Periode", "Nøgletal", "Værdi", "Opgjort"]
        figures = ["income", "inflow"]
        delimiter = ","
        decimal_comma = false
    "#,
    );
    assert!(s.problems(true).is_empty());
    assert_eq!(
        s.problems(false),
        vec!["figures_export: give [figures_export.transport] or configure [finance]"]
    );
    let out = file(&s, &f, &m, d(AS_OF)).unwrap();
    let text = String::from_utf8(out.content).unwrap();
    assert!(text.starts_with("Omkostningssted,Team,Periode,Nøgletal,Værdi,Opgjort\n"));
    assert!(
        text.contains("\n1001,nord,2027-01-01,Indtægt,11200.00,2027-04-30\n"),
        "{text}"
    );
    assert_eq!(out.rows, 3 * 4 * 2);
}

#[test]
fn export_settings_name_what_is_wrong() {
    let s = export_settings(
        r#"
        columns = ["cost_centre", "value"]
        headers = ["only one"]
        figures = ["income", "nope"]
        delimiter = "x"
        file_prefix = "../up"
    "#,
    );
    let p = s.problems(true).join("\n");
    for m in [
        "headers has 1 names for 2 columns",
        "no figure `nope`",
        "delimiter `x`",
        "file_prefix `../up`",
    ] {
        assert!(p.contains(m), "{m} in {p}");
    }
    assert!(
        toml::from_str::<progression_gateway::sinks::figures::FiguresExportSettings>(
            "columns = [\"cpr\"]"
        )
        .is_err()
    );
}

#[tokio::test]
async fn the_export_is_delivered_once_to_a_folder_and_by_http_with_its_hash() {
    use progression_gateway::sinks::figures::{Sent, deliver, file};
    use progression_gateway::sinks::finance::transport::{HttpConfig, TransportConfig};
    let (f, _) = with_costs();
    let m = worked_example_mappings();
    let s = export_settings("");
    let out = file(&s, &f, &m, d(AS_OF)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let folder = TransportConfig::Folder {
        dir: dir.path().to_path_buf(),
        reply_dir: dir.path().to_path_buf(),
    };
    assert_eq!(deliver(&folder, &out).await.unwrap(), Sent::Delivered);
    assert_eq!(deliver(&folder, &out).await.unwrap(), Sent::AlreadyThere);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec![out.name.clone()]);
    assert_eq!(
        std::fs::read(dir.path().join(&out.name)).unwrap(),
        out.content
    );

    // HTTP: the CSV as text/csv with the content's hash as the idempotency key.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let app = {
        let seen = seen.clone();
        axum::Router::new().route(
            "/figures",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let h = |n: &str| headers[n].to_str().unwrap().to_owned();
                    seen.lock()
                        .unwrap()
                        .push((h("content-type"), h("idempotency-key"), body));
                    "ok"
                }
            }),
        )
    };
    let addr = spawn_server(app).await;
    let http = TransportConfig::Http(HttpConfig {
        url: format!("http://{addr}/figures"),
        bearer_token: None,
        timeout_secs: 5,
    });
    assert_eq!(deliver(&http, &out).await.unwrap(), Sent::Delivered);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].0, "text/csv; charset=utf-8");
    assert_eq!(seen[0].1, out.hash);
    assert_eq!(seen[0].2.as_bytes(), out.content.as_slice());
}
