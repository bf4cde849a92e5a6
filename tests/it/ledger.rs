//! The course ledger (issue 9): a decision recorded at a course's start is read back, never
//! re-decided, and changes only by a recorded supersession (a termination moving its end, its
//! evidence withdrawn or a version dated on or before its start day arriving late, an explicit
//! re-pricing), each a new row with its reason and its money difference a correction voucher.
//!
//! Everything is driven as production does it: versions stored with `put_batch`, then the
//! pipeline (`pipeline::evaluate` + `record`, or the `post` steps with vouchers to a simulated
//! finance folder), night after night with increasing as-of dates. Every test runs on a fresh
//! SQLite file and on a fresh PostgreSQL database (`PROGRESSION_GATEWAY_TEST_PG`, see
//! `store.rs`; skipped with a printed line when it is not set).

use crate::common::*;
use chrono::{DateTime, Days, NaiveDate, Utc};
use progression_gateway::config::{self, Loaded};
use progression_gateway::domain::{
    Assessment, CitizenRecord, CourseKind, FunctionalLevel, Goal, Grant, GrantStatus, Pseudonym,
    SourceId, TeamAssignment, TeamId, Termination, TerminationReason, Track,
};
use progression_gateway::mapping::{Mappings, TariffBook, TariffTable};
use progression_gateway::model::{
    Change, CourseId, DailyTariff, Decision, EndReason, Finding, LedgerEntry, Record, Versioned,
    course_id, reprice, team_on,
};
use progression_gateway::pipeline::{self, Evaluation};
use progression_gateway::run::Report;
use progression_gateway::sinks::finance::opus::OpusSettings;
use progression_gateway::sinks::finance::transport::TransportConfig;
use progression_gateway::sinks::post::{FileFormat, FinanceSettings};
use progression_gateway::sources::events;
use progression_gateway::store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

const TZ: chrono_tz::Tz = chrono_tz::Europe::Copenhagen;
const SOURCE: &str = "care";
/// The custodian SOR codes of teams nord and syd (worked-example mappings).
const SOR_NORD: &str = "123456789012345";
const SOR_SYD: &str = "543210987654321";

// ---------------------------------------------------------------------------------------------
// Harness: every test on SQLite and on PostgreSQL
// ---------------------------------------------------------------------------------------------

macro_rules! ledger_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                crate::store::on_sqlite(|store, _url| super::$name(store)).await;
            }

            #[tokio::test]
            async fn postgres() {
                crate::store::on_postgres(|store, _url| super::$name(store)).await;
            }
        }
    };
    // A property test: it blocks on the store from proptest's runner thread. Every night
    // evaluates every citizen of the store (as production does), so a run costs about the
    // square of its cases: fewer on PostgreSQL, where each store call is a round trip.
    (property: $name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::store::on_sqlite(|store, _url| super::$name(store, 64)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::store::on_postgres(|store, _url| super::$name(store, 24)).await;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Records as a care system sends them: every instant local-dated in Copenhagen
// ---------------------------------------------------------------------------------------------

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// `day` at `hour`:00 UTC (one or two hours later in Copenhagen, the same local date).
fn on(day: NaiveDate, hour: u32) -> DateTime<Utc> {
    day.and_hms_opt(hour, 0, 0).unwrap().and_utc()
}

fn local(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&TZ).date_naive()
}

fn sid(s: &str) -> SourceId {
    SourceId::parse(s).unwrap()
}

fn v(version_at: DateTime<Utc>, record: Record) -> Versioned {
    Versioned {
        source: SOURCE.into(),
        version_at,
        withdrawn: false,
        record,
    }
}

fn withdrawn(version_at: DateTime<Utc>, record: Record) -> Versioned {
    Versioned {
        withdrawn: true,
        ..v(version_at, record)
    }
}

fn grant(who: &Pseudonym, id: &str, code: &str, start: NaiveDate, end: Option<NaiveDate>) -> Grant {
    Grant::new(
        sid(id),
        who.clone(),
        code.into(),
        start,
        end,
        GrantStatus::Active,
        None,
    )
    .unwrap()
}

/// A condition's version with `level`, assessed at its version instant.
fn level(who: &Pseudonym, condition: &str, level: u8, assessed_at: DateTime<Utc>) -> Record {
    Record::Assessment(Assessment {
        condition_id: sid(condition),
        citizen: who.clone(),
        condition_code: condition.into(),
        level_code: format!("B{}", if level == 9 { 6 } else { level + 1 }),
        level: Some(FunctionalLevel::new(level).unwrap()),
        assessed_at,
        assessed_on: local(assessed_at),
        in_focus: true,
    })
}

/// A goal's version: as the KL Gateway reader does, `set_on` is its version's local date.
fn goal(
    who: &Pseudonym,
    id: &str,
    condition: &str,
    target: u8,
    active: bool,
    version_at: DateTime<Utc>,
) -> Versioned {
    v(
        version_at,
        Record::Goal(Goal {
            source_id: sid(id),
            citizen: who.clone(),
            condition_id: sid(condition),
            target_level: Some(FunctionalLevel::new(target).unwrap()),
            set_on: local(version_at),
            active,
        }),
    )
}

fn person(who: &Pseudonym, patient: &str, sor: Option<&str>) -> Record {
    Record::Citizen(CitizenRecord {
        citizen: who.clone(),
        patient_id: Some(sid(patient)),
        custodian_sor: sor.map(str::to_owned),
        deceased: false,
        deceased_on: None,
        active: true,
    })
}

fn deceased(
    who: &Pseudonym,
    patient: &str,
    died: Option<NaiveDate>,
    version_at: DateTime<Utc>,
) -> Versioned {
    let Record::Citizen(mut c) = person(who, patient, None) else {
        unreachable!()
    };
    c.deceased = true;
    c.deceased_on = died;
    v(version_at, Record::Citizen(c))
}

fn assignment(who: &Pseudonym, team: &str, from: &str) -> Record {
    Record::Assignment(
        TeamAssignment::new(who.clone(), TeamId::parse(team).unwrap(), d(from), None).unwrap(),
    )
}

/// A termination event as the events source stores it.
fn event(who: &Pseudonym, reason: TerminationReason, day: NaiveDate) -> Record {
    Record::Termination(Termination {
        source_id: sid(&events::source_id("terminations.csv", who, reason, day)),
        citizen: who.clone(),
        on: day,
        reason,
    })
}

/// A citizen known to the care system as `patient`, on `team` since 2026, with a grant of
/// `code` from `start` (reported the day before) and levels assessed on `levels_on`.
fn simple_citizen(
    who: &Pseudonym,
    patient: &str,
    team: &str,
    code: &str,
    start: &str,
    end: Option<&str>,
    levels: &[u8],
) -> Vec<Versioned> {
    let start = d(start);
    let mut out = vec![
        v(at("2026-12-01T08:00:00Z"), person(who, patient, None)),
        v(
            at("2026-12-01T08:00:00Z"),
            assignment(who, team, "2026-01-01"),
        ),
        v(
            on(start - Days::new(1), 10),
            Record::Grant(grant(
                who,
                &format!("{patient}-grant"),
                code,
                start,
                end.map(d),
            )),
        ),
    ];
    for (i, &l) in levels.iter().enumerate() {
        out.push(v(
            on(start - Days::new(3), 9),
            level(
                who,
                &format!("{patient}-c{i}"),
                l,
                on(start - Days::new(3), 9),
            ),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Reading the ledger
// ---------------------------------------------------------------------------------------------

/// The latest row of each of a citizen's courses.
async fn latest_rows(store: &Store, who: &Pseudonym) -> BTreeMap<CourseId, LedgerEntry> {
    let mut out = BTreeMap::new();
    for row in store.ledger_of_citizen(who).await.unwrap() {
        out.insert(row.entry.course_id.clone(), row.entry);
    }
    out
}

/// Every row of one course, oldest first.
async fn rows_of(store: &Store, id: &CourseId) -> Vec<LedgerEntry> {
    store
        .ledger_of_course(&id.0)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.entry)
        .collect()
}

fn decision(e: &LedgerEntry) -> &Decision {
    e.decision.as_ref().expect("a live row")
}

fn locked(d: &Decision) -> String {
    match d.tariff {
        DailyTariff::Locked { amount } => amount.to_string(),
        DailyTariff::Individual { hourly_rate } => format!("{hourly_rate}/h"),
    }
}

/// The pipeline as the nightly compute step runs it: evaluate as of `as_of`, record.
async fn compute(store: &Store, m: &Mappings, as_of: NaiveDate) -> Evaluation {
    let eval = pipeline::evaluate(store, m, TZ, as_of).await.unwrap();
    eval.record(store, as_of).await.unwrap();
    eval
}

/// The decision the pipeline makes for course `id` from the stored versions, with no
/// recorded decisions (what "decided afresh for the same start day" must equal).
async fn fresh_decision(
    store: &Store,
    m: &Mappings,
    as_of: NaiveDate,
    id: &CourseId,
) -> Option<Decision> {
    let versions = store.all_versions().await.unwrap();
    let eval = pipeline::evaluate_with(versions, Vec::new(), m, TZ, as_of);
    eval.changes
        .into_iter()
        .find(|e| &e.course_id == id)
        .and_then(|e| e.decision)
}

/// The tariff tables of `m`, changed by `f`.
fn edit_tables(m: &mut Mappings, f: impl FnOnce(&mut Vec<TariffTable>)) {
    let mut tables = m.tariffs.tables().to_vec();
    f(&mut tables);
    m.tariffs = TariffBook::new(tables);
}

fn table_mut(tables: &mut [TariffTable], track: Track, year: i32) -> &mut TariffTable {
    tables
        .iter_mut()
        .find(|t| t.track == track && t.year == year)
        .expect("the table")
}

/// What `progression-gateway reprice --table TRACK/YEAR` would append: every recorded decision
/// that used `track/year` as it was before an edit, re-priced with the table as it is now.
async fn reprice_table(
    store: &Store,
    m: &Mappings,
    track: Track,
    year: i32,
    why: &str,
    recorded_on: NaiveDate,
    only: Option<&Pseudonym>,
) -> Vec<LedgerEntry> {
    let table = m.tariffs.table(track, year).expect("the table");
    let hash = table.content_hash();
    let rows: Vec<LedgerEntry> = store
        .ledger_latest()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| {
            let d = e.decision.as_ref()?;
            if only.is_some_and(|who| who != &e.citizen) {
                return None;
            }
            if d.table.track != track || d.table.year != year || d.table.hash == hash {
                return None;
            }
            let repriced = reprice(d, table).expect("the score has a group");
            Some(LedgerEntry {
                revision: e.revision + 1,
                change: Change::Repriced {
                    table: format!("{track}/{year}"),
                    why: why.into(),
                },
                decision: Some(repriced),
                ..e
            })
        })
        .collect();
    let stored = store.append_ledger(&rows, recorded_on).await.unwrap();
    assert_eq!(stored as usize, rows.len());
    rows
}

// ---------------------------------------------------------------------------------------------
// Nights with vouchers: the `post` steps against a simulated finance folder
// ---------------------------------------------------------------------------------------------

struct Night {
    store: Store,
    loaded: Loaded,
    dir: tempfile::TempDir,
    /// Vouchers already returned by `vouchers`.
    seen: usize,
}

impl Night {
    async fn new(store: Store) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut loaded =
            config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml"))
                .unwrap();
        loaded.mappings = worked_example_mappings();
        let inbox = dir.path().join("opus-in");
        let replies = dir.path().join("opus-out");
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::create_dir_all(&replies).unwrap();
        std::fs::create_dir_all(dir.path().join("events")).unwrap();
        loaded.settings.finance = Some(FinanceSettings {
            resend_after_hours: 24,
            duplicate_replies: vec!["already received".into()],
            format: FileFormat::Opus(OpusSettings {
                municipality_code: "0751".into(),
                data_provider_id: "PGW".into(),
                company_code: "0751".into(),
                sender: "PROGRESSION-GATEWAY".into(),
                receiver: "KMD-OPUS".into(),
            }),
            transport: TransportConfig::Folder {
                dir: inbox,
                reply_dir: replies,
            },
        });
        Night {
            store,
            loaded,
            dir,
            seen: 0,
        }
    }

    async fn put(&self, versions: &[Versioned]) {
        self.store.put_batch(versions, None).await.unwrap();
    }

    /// One `post` for `as_of`, run at 02:30 the next morning.
    async fn run(&self, as_of: &str) -> Report {
        let as_of: NaiveDate = as_of.parse().unwrap();
        let now = as_of.succ_opt().unwrap().and_hms_opt(2, 30, 0).unwrap();
        let ctx = progression_gateway::run::Context::new(
            self.store.clone(),
            std::sync::Arc::new(self.loaded.clone()),
        );
        let report = progression_gateway::run::post_now(&ctx, as_of, now, false)
            .await
            .unwrap()
            .expect("no other process holds the lease");
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        report
    }

    /// Runs the night and returns the vouchers it created, `team track month amount`, sorted;
    /// each one balances.
    async fn vouchers_of(&mut self, as_of: &str) -> Vec<String> {
        self.run(as_of).await;
        self.vouchers().await
    }

    /// The vouchers created since the last call, `team track month amount`, sorted.
    async fn vouchers(&mut self) -> Vec<String> {
        let all = self.store.vouchers().await.unwrap();
        let mut out: Vec<String> = all[self.seen..]
            .iter()
            .map(|o| {
                let v = &o.voucher;
                assert_eq!(v.balance(), Decimal::ZERO, "{v:?}");
                format!("{} {} {} {}", v.team, v.track, v.month, v.amount)
            })
            .collect();
        self.seen = all.len();
        out.sort();
        out
    }

    fn events_dir(&self) -> PathBuf {
        self.dir.path().join("events")
    }

    /// Writes the events file `name` with `lines` and reads the folder as the pull step does.
    async fn events_file(&self, name: &str, lines: &[&str]) -> events::EventsSummary {
        let mut text = String::from("citizen,event,date\n");
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(self.events_dir().join(name), text).unwrap();
        events::sync(
            &self.store,
            &self.events_dir(),
            &self.loaded.settings.pseudonym_key,
        )
        .await
        .unwrap()
    }

    async fn evaluate(&self, as_of: &str) -> Evaluation {
        pipeline::evaluate(&self.store, &self.loaded.mappings, TZ, d(as_of))
            .await
            .unwrap()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    out.sort();
    out
}

fn only_course(rows: &BTreeMap<CourseId, LedgerEntry>, track: Track) -> LedgerEntry {
    let of_track: Vec<&LedgerEntry> = rows.values().filter(|e| e.track == track).collect();
    assert_eq!(of_track.len(), 1, "{rows:#?}");
    of_track[0].clone()
}

// ---------------------------------------------------------------------------------------------
// Why (a): a goal re-sent or completed weeks after the start changes nothing
// ---------------------------------------------------------------------------------------------

ledger_test!(a_goal_re_sent_or_completed_after_the_start_keeps_the_development_course);

async fn a_goal_re_sent_or_completed_after_the_start_keeps_the_development_course(store: Store) {
    let mut night = Night::new(store).await;
    let who = citizen(11);
    // Levels 2+2+2 (score 6) and a goal expecting condition 0 to reach level 1: development by
    // the goal, group 2, 250.00 a day from 2027-01-04 to 2027-03-28.
    let mut base = simple_citizen(
        &who,
        "patient-a",
        "nord",
        PERSONAL_CARE,
        "2027-01-04",
        None,
        &[2, 2, 2],
    );
    base.push(goal(
        &who,
        "goal-1",
        "patient-a-c0",
        1,
        true,
        at("2027-01-02T09:30:00Z"),
    ));
    night.put(&base).await;
    assert_eq!(
        night.vouchers_of("2027-01-10").await,
        ["nord care 2027-01 1750.00"]
    );
    let first = only_course(&latest_rows(&night.store, &who).await, Track::Care);
    let d1 = decision(&first).clone();
    assert_eq!(
        (d1.kind, d1.need_score, d1.group),
        (CourseKind::Development, 6, Some(2))
    );
    assert_eq!(locked(&d1), "250.00");
    assert_eq!(d1.planned_end, d("2027-03-28"));
    assert!(
        d1.rule.starts_with("development: goal goal-1"),
        "{}",
        d1.rule
    );

    // Re-sent on 2027-01-18 with a target above the level, completed on 2027-01-25.
    night
        .put(&[goal(
            &who,
            "goal-1",
            "patient-a-c0",
            3,
            true,
            at("2027-01-18T10:00:00Z"),
        )])
        .await;
    assert_eq!(
        night.vouchers_of("2027-01-20").await,
        ["nord care 2027-01 2500.00"]
    );
    night
        .put(&[goal(
            &who,
            "goal-1",
            "patient-a-c0",
            1,
            false,
            at("2027-01-25T10:00:00Z"),
        )])
        .await;
    assert_eq!(
        night.vouchers_of("2027-01-31").await,
        ["nord care 2027-01 2750.00"]
    );
    assert_eq!(
        night.vouchers_of("2027-02-28").await,
        ["nord care 2027-02 7000.00"]
    );
    // Still development at 250.00 to 2027-03-28 (28 days: 7,000.00). The successor from
    // 2027-03-29 is judged afresh: the goal is completed by then, so stabilisation group 2,
    // 180.00 a day: 3 days, 540.00.
    assert_eq!(
        night.vouchers_of("2027-03-31").await,
        ["nord care 2027-03 7540.00"]
    );

    let rows = rows_of(&night.store, &first.course_id).await;
    assert_eq!(rows.len(), 1, "no supersession: {rows:#?}");
    assert_eq!(rows[0].change, Change::Decided);
    assert_eq!(decision(&rows[0]), &d1);
    let all = latest_rows(&night.store, &who).await;
    assert_eq!(all.len(), 2);
    let next = &all[&course_id(&who, Track::Care, d("2027-03-29"))];
    let d2 = decision(next);
    assert_eq!(
        (d2.kind, d2.group, locked(d2).as_str()),
        (CourseKind::Stabilisation, Some(2), "180.00")
    );
    // No correction: every voucher is positive, January adds up to 28 days of 250.00.
    let vouchers = night.store.vouchers().await.unwrap();
    assert!(vouchers.iter().all(|o| o.voucher.amount > Decimal::ZERO));
    let january: Decimal = vouchers
        .iter()
        .filter(|o| o.voucher.month.to_string() == "2027-01")
        .map(|o| o.voucher.amount)
        .sum();
    assert_eq!(january.to_string(), "7000.00");
}

// ---------------------------------------------------------------------------------------------
// Why (b): an edited tariff table reprices nothing by itself; `reprice` does, with corrections
// ---------------------------------------------------------------------------------------------

ledger_test!(editing_last_years_tariff_table_reprices_nothing_until_a_person_reprices);

async fn editing_last_years_tariff_table_reprices_nothing_until_a_person_reprices(store: Store) {
    let mut night = Night::new(store).await;
    let running = citizen(21); // nord: stabilisation group 3, 260.00, 2027-10-01 to 2028-03-30
    let ended = citizen(22); // syd: development group 2, 250.00, 2027-09-06 to 2027-11-28
    let newer = citizen(23); // syd: starts 2028-01-05, after the edit
    night
        .put(&simple_citizen(
            &running,
            "patient-r",
            "nord",
            PERSONAL_CARE,
            "2027-10-01",
            None,
            &[3, 3, 3],
        ))
        .await;
    night
        .put(&simple_citizen(
            &ended,
            "patient-e",
            "syd",
            REHAB,
            "2027-09-06",
            Some("2027-10-31"),
            &[2, 2, 2],
        ))
        .await;
    night
        .put(&simple_citizen(
            &newer,
            "patient-n",
            "syd",
            PERSONAL_CARE,
            "2028-01-05",
            None,
            &[3, 3, 3],
        ))
        .await;
    assert_eq!(
        night.vouchers_of("2027-09-30").await,
        ["syd care 2027-09 6250.00"]
    );
    assert_eq!(
        night.vouchers_of("2027-10-31").await,
        strings(&["nord care 2027-10 8060.00", "syd care 2027-10 7750.00"])
    );
    assert_eq!(
        night.vouchers_of("2027-11-30").await,
        strings(&["nord care 2027-11 7800.00", "syd care 2027-11 7000.00"])
    );
    assert_eq!(
        night.vouchers_of("2027-12-31").await,
        ["nord care 2027-12 8060.00"]
    );
    let before_running = only_course(&latest_rows(&night.store, &running).await, Track::Care);
    let before_ended = only_course(&latest_rows(&night.store, &ended).await, Track::Care);
    assert_eq!(decision(&before_running).planned_end, d("2028-03-30"));
    assert_eq!(before_ended.end, Some(d("2027-11-28")));

    // In January 2028 someone edits last year's table (group 2 development 250.00 -> 275.00,
    // group 3 stabilisation 260.00 -> 300.00) and adds an older one (2026).
    edit_tables(&mut night.loaded.mappings, |tables| {
        let t = table_mut(tables, Track::Care, 2027);
        t.groups[1].development = dec("275.00");
        t.groups[2].stabilisation = dec("300.00");
        let mut older = t.clone();
        older.year = 2026;
        for g in &mut older.groups {
            g.development -= dec("10.00");
            g.stabilisation -= dec("10.00");
        }
        tables.push(older);
    });
    let report = night.run("2028-01-10").await;
    // Only January 2028's income: the running course at its locked 260.00 (10 days), the new
    // course at the edited 300.00 (6 days). No correction of a closed month.
    assert_eq!(
        night.vouchers().await,
        strings(&["nord care 2028-01 2600.00", "syd care 2028-01 1800.00"])
    );
    let changed: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| matches!(f, Finding::TariffTableChanged { .. }))
        .collect();
    assert_eq!(
        changed,
        [&Finding::TariffTableChanged {
            track: Track::Care,
            year: 2027,
            decisions: 2
        }]
    );
    assert_eq!(
        latest_rows(&night.store, &running).await[&before_running.course_id],
        before_running
    );
    assert_eq!(
        latest_rows(&night.store, &ended).await[&before_ended.course_id],
        before_ended
    );
    let new_course = only_course(&latest_rows(&night.store, &newer).await, Track::Care);
    assert_eq!(locked(decision(&new_course)), "300.00");
    assert_eq!(decision(&new_course).table.year, 2027);

    // A person re-prices care/2027: both decisions get a `repriced` row, and the money
    // difference of every month becomes a correction voucher the next night.
    let repriced = reprice_table(
        &night.store,
        &night.loaded.mappings,
        Track::Care,
        2027,
        "the 2027 table was corrected",
        d("2028-01-10"),
        None,
    )
    .await;
    assert_eq!(repriced.len(), 2);
    let report = night.run("2028-01-11").await;
    assert_eq!(
        night.vouchers().await,
        strings(&[
            "syd care 2027-09 625.00",   // 25 days x 25.00
            "syd care 2027-10 775.00",   // 31 days x 25.00
            "syd care 2027-11 700.00",   // 28 days x 25.00
            "nord care 2027-10 1240.00", // 31 days x 40.00
            "nord care 2027-11 1200.00", // 30 days x 40.00
            "nord care 2027-12 1240.00", // 31 days x 40.00
            "nord care 2028-01 700.00",  // 11 x 300.00 - 2,600.00
            "syd care 2028-01 300.00",   // the new course's 11th January day
        ])
    );
    assert!(
        !report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::TariffTableChanged { .. })),
        "{:?}",
        report.findings
    );
    let rows = rows_of(&night.store, &before_running.course_id).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[1].change,
        Change::Repriced {
            table: "care/2027".into(),
            why: "the 2027 table was corrected".into()
        }
    );
    let d = decision(&rows[1]);
    assert_eq!(
        (d.kind, d.group, locked(d).as_str()),
        (CourseKind::Stabilisation, Some(3), "300.00")
    );
    assert_eq!(rows[1].end, before_running.end);
    let rows = rows_of(&night.store, &before_ended.course_id).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(locked(decision(&rows[1])), "275.00");
    // The next night changes nothing.
    assert!(night.vouchers_of("2028-01-11").await.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Why (c): two custodian reports the same day: the later instant wins
// ---------------------------------------------------------------------------------------------

ledger_test!(of_two_custodian_reports_on_one_day_the_later_instant_wins);

async fn of_two_custodian_reports_on_one_day_the_later_instant_wins(store: Store) {
    let mut night = Night::new(store).await;
    let x = citizen(31); // stabilisation group 2, 180.00
    let y = citizen(32); // stabilisation group 3, 260.00
    let mut batch = Vec::new();
    for (who, patient, sor, levels) in [
        (&x, "patient-x", SOR_SYD, [2, 2, 2]),
        (&y, "patient-y", SOR_NORD, [3, 3, 3]),
    ] {
        let t = at("2026-12-20T08:00:00Z");
        batch.push(v(t, person(who, patient, Some(sor))));
        batch.push(v(
            at("2026-12-31T10:00:00Z"),
            Record::Grant(grant(
                who,
                &format!("{patient}-grant"),
                PERSONAL_CARE,
                d("2027-01-01"),
                None,
            )),
        ));
        for (i, l) in levels.into_iter().enumerate() {
            let t = at("2026-12-28T09:00:00Z");
            batch.push(v(t, level(who, &format!("{patient}-c{i}"), l, t)));
        }
    }
    night.put(&batch).await;
    assert_eq!(
        night.vouchers_of("2027-01-10").await,
        strings(&["nord care 2027-01 2600.00", "syd care 2027-01 1800.00"])
    );
    // On 2027-01-16 two reports each, the later one received first. X: syd at 09:00, nord
    // (the smaller SOR text) at 15:00: nord from the 16th. Y: nord at 09:00, syd at 15:00.
    let (early, late) = (at("2027-01-16T08:00:00Z"), at("2027-01-16T14:00:00Z"));
    night
        .put(&[
            v(late, person(&x, "patient-x", Some(SOR_NORD))),
            v(late, person(&y, "patient-y", Some(SOR_SYD))),
        ])
        .await;
    night
        .put(&[
            v(early, person(&x, "patient-x", Some(SOR_SYD))),
            v(early, person(&y, "patient-y", Some(SOR_NORD))),
        ])
        .await;
    let eval = night.evaluate("2027-01-31").await;
    let m = &night.loaded.mappings;
    let team = |who: &Pseudonym, day: &str| {
        let h = eval
            .histories
            .iter()
            .find(|h| h.citizen.as_ref() == Some(who))
            .unwrap();
        team_on(h, m, d(day)).map(|t| t.to_string())
    };
    assert_eq!(team(&x, "2027-01-15").as_deref(), Some("syd"));
    assert_eq!(team(&x, "2027-01-16").as_deref(), Some("nord"));
    assert_eq!(team(&y, "2027-01-15").as_deref(), Some("nord"));
    assert_eq!(team(&y, "2027-01-16").as_deref(), Some("syd"));
    // January: nord = X 16 x 180.00 + Y 15 x 260.00 = 6,780.00; syd = X 15 x 180.00 + Y 16 x
    // 260.00 = 6,860.00; minus what the 10th posted.
    assert_eq!(
        night.vouchers_of("2027-01-31").await,
        strings(&["nord care 2027-01 4180.00", "syd care 2027-01 5060.00"])
    );
}

// ---------------------------------------------------------------------------------------------
// Why (d): a Bundle reporting the first levels with a CarePlan from the day before
// ---------------------------------------------------------------------------------------------

ledger_test!(levels_first_reported_with_a_back_dated_grant_count);

async fn levels_first_reported_with_a_back_dated_grant_count(store: Store) {
    let mut night = Night::new(store).await;
    let who = citizen(41);
    // One Bundle at 2027-01-05 10:00 local: the citizen, a CarePlan from 2027-01-04 and the
    // first levels (3+3+3) of three conditions, all with the Bundle's instant.
    let t = at("2027-01-05T09:00:00Z");
    let mut bundle = vec![
        v(t, person(&who, "patient-d", Some(SOR_NORD))),
        v(
            t,
            Record::Grant(grant(
                &who,
                "careplan-1",
                PERSONAL_CARE,
                d("2027-01-04"),
                None,
            )),
        ),
    ];
    for i in 0..3 {
        bundle.push(v(t, level(&who, &format!("condition-{i}"), 3, t)));
    }
    night.put(&bundle).await;
    assert_eq!(
        night.vouchers_of("2027-01-05").await,
        ["nord care 2027-01 520.00"]
    );
    let first = only_course(&latest_rows(&night.store, &who).await, Track::Care);
    let d1 = decision(&first).clone();
    assert_eq!(d1.start, d("2027-01-04"));
    assert_eq!(
        (d1.kind, d1.need_score, d1.group, locked(&d1).as_str()),
        (CourseKind::Stabilisation, 9, Some(3), "260.00")
    );
    assert_eq!(
        d1.evidence.len(),
        4,
        "the grant and three levels: {:#?}",
        d1.evidence
    );
    assert!(d1.evidence.iter().all(|e| e.version_at == t));

    // A day later: condition 0 re-assessed at 4, a fourth condition first reported at 2. Both
    // come after the grant's report: neither counts for the course of 2027-01-04.
    let t2 = at("2027-01-06T09:00:00Z");
    night
        .put(&[
            v(t2, level(&who, "condition-0", 4, t2)),
            v(t2, level(&who, "condition-3", 2, t2)),
        ])
        .await;
    assert_eq!(
        night.vouchers_of("2027-01-10").await,
        ["nord care 2027-01 1300.00"]
    );
    let rows = rows_of(&night.store, &first.course_id).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(decision(&rows[0]), &d1);
}

// ---------------------------------------------------------------------------------------------
// Why (e): death from the citizen record, undone; moving out and nursing home from events
// ---------------------------------------------------------------------------------------------

ledger_test!(a_death_ends_the_course_on_the_senders_date_and_an_error_undone_pays_it_back);

async fn a_death_ends_the_course_on_the_senders_date_and_an_error_undone_pays_it_back(
    store: Store,
) {
    let mut night = Night::new(store).await;
    let who = citizen(51);
    night
        .put(&simple_citizen(
            &who,
            "patient-b",
            "nord",
            PERSONAL_CARE,
            "2027-01-01",
            None,
            &[3, 3, 3],
        ))
        .await;
    assert_eq!(
        night.vouchers_of("2027-01-25").await,
        ["nord care 2027-01 6500.00"]
    );
    let id = course_id(&who, Track::Care, d("2027-01-01"));
    let decided = rows_of(&night.store, &id).await.remove(0);
    assert_eq!(decided.end, Some(d("2027-07-01")));

    // Reported on the 26th: deceased, `deceasedDateTime` 2027-01-20. The 20th is the last
    // paid day (not the report's day): 5 days x 260.00 come back.
    night
        .put(&[deceased(
            &who,
            "patient-b",
            Some(d("2027-01-20")),
            at("2027-01-26T08:00:00Z"),
        )])
        .await;
    assert_eq!(
        night.vouchers_of("2027-01-26").await,
        ["nord care 2027-01 -1300.00"]
    );
    let rows = rows_of(&night.store, &id).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[1].change,
        Change::EndMoved {
            from: d("2027-07-01"),
            to: d("2027-01-20"),
            why: "termination event: death on 2027-01-20".into()
        }
    );
    assert_eq!(
        rows[1].end_reason,
        Some(EndReason::Terminated(TerminationReason::Death))
    );
    assert_eq!(
        rows[1].decision, decided.decision,
        "the decision itself stands"
    );

    // The death was reported in error: a later report says not deceased. The end moves back
    // and the days come back: 28 x 260.00 - 5,200.00.
    let t = at("2027-01-28T08:00:00Z");
    night.put(&[v(t, person(&who, "patient-b", None))]).await;
    assert_eq!(
        night.vouchers_of("2027-01-28").await,
        ["nord care 2027-01 2080.00"]
    );
    let rows = rows_of(&night.store, &id).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[2].change,
        Change::EndMoved {
            from: d("2027-01-20"),
            to: d("2027-07-01"),
            why: "the termination event was withdrawn".into()
        }
    );
    assert_eq!(
        (rows[2].end, rows[2].end_reason),
        (Some(d("2027-07-01")), Some(EndReason::Planned))
    );
    assert_eq!(rows[2].decision, decided.decision);
    assert_eq!(
        night.vouchers_of("2027-01-31").await,
        ["nord care 2027-01 780.00"]
    );
}

ledger_test!(
    moving_out_and_nursing_home_from_the_events_folder_end_courses_and_a_removed_line_undoes_it
);

async fn moving_out_and_nursing_home_from_the_events_folder_end_courses_and_a_removed_line_undoes_it(
    store: Store,
) {
    let mut night = Night::new(store).await;
    let m = citizen(52); // nord, 260.00
    let n = citizen(53); // syd, 180.00
    night
        .put(&simple_citizen(
            &m,
            "patient-m",
            "nord",
            PERSONAL_CARE,
            "2027-01-01",
            None,
            &[3, 3, 3],
        ))
        .await;
    night
        .put(&simple_citizen(
            &n,
            "patient-n",
            "syd",
            PERSONAL_CARE,
            "2027-01-01",
            None,
            &[2, 2, 2],
        ))
        .await;
    assert_eq!(
        night.vouchers_of("2027-01-31").await,
        strings(&["nord care 2027-01 8060.00", "syd care 2027-01 5580.00"])
    );
    assert_eq!(
        night.vouchers_of("2027-02-10").await,
        strings(&["nord care 2027-02 2600.00", "syd care 2027-02 1800.00"])
    );
    // The municipality's export: M moved out on the 5th, N to a nursing home on the 8th.
    let read = night
        .events_file(
            "terminations.csv",
            &[
                "patient-m,moved_out,2027-02-05",
                "patient-n,nursing_home,2027-02-08",
            ],
        )
        .await;
    assert_eq!((read.events, read.stored), (2, 2));
    // February to date: M 5 x 260.00 = 1,300.00, N 8 x 180.00 = 1,440.00.
    assert_eq!(
        night.vouchers_of("2027-02-12").await,
        strings(&["nord care 2027-02 -1300.00", "syd care 2027-02 -360.00"])
    );
    let id_m = course_id(&m, Track::Care, d("2027-01-01"));
    let id_n = course_id(&n, Track::Care, d("2027-01-01"));
    let rows = rows_of(&night.store, &id_m).await;
    assert_eq!(
        rows.iter().map(|r| r.change.clone()).collect::<Vec<_>>(),
        [
            Change::Decided,
            Change::EndMoved {
                from: d("2027-07-01"),
                to: d("2027-02-05"),
                why: "termination event: moved_out on 2027-02-05".into()
            }
        ]
    );
    let rows = rows_of(&night.store, &id_n).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].end, Some(d("2027-02-08")));
    assert_eq!(
        rows[1].end_reason,
        Some(EndReason::Terminated(TerminationReason::NursingHome))
    );

    // The file is re-sent without M's line: withdrawn, M's end moves back, the money comes back
    // (14 x 260.00 - 1,300.00); N's event stands, nothing for syd.
    let read = night
        .events_file("terminations.csv", &["patient-n,nursing_home,2027-02-08"])
        .await;
    assert_eq!((read.stored, read.withdrawn), (1, 1));
    assert_eq!(
        night.vouchers_of("2027-02-14").await,
        ["nord care 2027-02 2340.00"]
    );
    let rows = rows_of(&night.store, &id_m).await;
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[2].change,
        Change::EndMoved {
            from: d("2027-02-05"),
            to: d("2027-07-01"),
            why: "the termination event was withdrawn".into()
        }
    );
    assert_eq!(rows_of(&night.store, &id_n).await.len(), 2);
    // After the nursing-home move N has no course: nothing for syd in March.
    // February's other 14 days (28 x 260.00 = 7,280.00 less 3,640.00 posted) and March.
    assert_eq!(
        night.vouchers_of("2027-03-31").await,
        strings(&["nord care 2027-02 3640.00", "nord care 2027-03 8060.00"])
    );
}

// ---------------------------------------------------------------------------------------------
// Why (f): a revoked or completed CarePlan without an end
// ---------------------------------------------------------------------------------------------

ledger_test!(a_grant_revoked_or_completed_without_an_end_ends_and_no_successor_starts);

async fn a_grant_revoked_or_completed_without_an_end_ends_and_no_successor_starts(store: Store) {
    let mut night = Night::new(store).await;
    let care = citizen(61); // §83a from 2027-01-04: development group 2, 250.00, to 2027-03-28
    let nursing = citizen(62); // wound care from 2027-01-11: development group 2, 200.00, to 2027-04-04
    night
        .put(&simple_citizen(
            &care,
            "patient-c",
            "nord",
            REHAB,
            "2027-01-04",
            None,
            &[2, 2, 2],
        ))
        .await;
    night
        .put(&simple_citizen(
            &nursing,
            "patient-w",
            "syd",
            WOUND_CARE,
            "2027-01-11",
            None,
            &[],
        ))
        .await;
    assert_eq!(
        night.vouchers_of("2027-01-31").await,
        strings(&["nord care 2027-01 7000.00", "syd nursing 2027-01 4200.00"])
    );
    let status =
        |who: &Pseudonym, id: &str, code: &str, start: &str, status: GrantStatus, t: &str| {
            let mut g = grant(who, id, code, d(start), None);
            g.status = status;
            v(at(t), Record::Grant(g))
        };
    // Revoked at 00:30 local on 2027-02-11 (23:30 UTC the day before), re-sent revoked on the
    // 20th; the wound care completed on 2027-02-14. Neither version gives `period.end`.
    night
        .put(&[
            status(
                &care,
                "patient-c-grant",
                REHAB,
                "2027-01-04",
                GrantStatus::Revoked,
                "2027-02-10T23:30:00Z",
            ),
            status(
                &care,
                "patient-c-grant",
                REHAB,
                "2027-01-04",
                GrantStatus::Revoked,
                "2027-02-20T10:00:00Z",
            ),
            status(
                &nursing,
                "patient-w-grant",
                WOUND_CARE,
                "2027-01-11",
                GrantStatus::Completed,
                "2027-02-14T10:00:00Z",
            ),
        ])
        .await;
    let eval = night.evaluate("2027-02-28").await;
    let end_of = |who: &Pseudonym| {
        eval.histories
            .iter()
            .find(|h| h.citizen.as_ref() == Some(who))
            .unwrap()
            .grants[0]
            .end
    };
    assert_eq!(end_of(&care), Some(d("2027-02-11")));
    assert_eq!(end_of(&nursing), Some(d("2027-02-14")));
    // The courses run to their planned ends (nothing during a course changes it), no correction.
    assert_eq!(
        night.vouchers_of("2027-02-28").await,
        strings(&["nord care 2027-02 7000.00", "syd nursing 2027-02 5600.00"])
    );
    assert_eq!(
        night.vouchers_of("2027-03-31").await,
        strings(&["nord care 2027-03 7000.00", "syd nursing 2027-03 6200.00"])
    );
    // ... and no successor starts: nothing after 2027-03-28 (care) and 2027-04-04 (nursing).
    assert_eq!(
        night.vouchers_of("2027-04-30").await,
        ["syd nursing 2027-04 800.00"]
    );
    assert!(night.vouchers_of("2027-07-31").await.is_empty());
    for who in [&care, &nursing] {
        let rows = latest_rows(&night.store, who).await;
        assert_eq!(rows.len(), 1, "{rows:#?}");
        let row = rows.values().next().unwrap();
        assert_eq!((row.revision, &row.change), (1, &Change::Decided));
    }
}

// ---------------------------------------------------------------------------------------------
// Property: later batches never change a recorded decision
// ---------------------------------------------------------------------------------------------

const CARE_CODES: [&str; 3] = [PERSONAL_CARE, CLEANING, REHAB];
const NURSING_CODES: [&str; 2] = [WOUND_CARE, MEDICINE];
const ALL_CODES: [&str; 5] = [PERSONAL_CARE, CLEANING, REHAB, WOUND_CARE, MEDICINE];

/// A citizen's history as first known: a care grant from `start` (and maybe a nursing grant),
/// levels, maybe a goal, every version dated on or before the start day.
#[derive(Debug, Clone)]
struct Base {
    /// Days after 2027-01-01.
    start: u32,
    care_code: usize,
    care_len: Option<u32>,
    minutes: Option<u32>,
    /// Level and days before the start of conditions 0, 1, ...
    levels: Vec<(u8, u32)>,
    /// Condition, target, days before the start.
    goal: Option<(usize, u8, u32)>,
    nursing: Option<(usize, Option<u32>)>,
    team: bool,
    /// Days after the start of the first night.
    first_night: u32,
}

fn base() -> impl Strategy<Value = Base> {
    (
        (
            0u32..60,
            0..CARE_CODES.len(),
            proptest::option::of(0u32..150),
        ),
        proptest::option::of(prop_oneof![Just(60u32), 120u32..1000]),
        proptest::collection::vec((prop_oneof![4 => 0u8..=4, 1 => Just(9u8)], 0u32..30), 0..5),
        proptest::option::of((0usize..5, 0u8..=4, 0u32..30)),
        proptest::option::of((0..NURSING_CODES.len(), proptest::option::of(0u32..150))),
        any::<bool>(),
        0u32..20,
    )
        .prop_map(
            |((start, care_code, care_len), minutes, levels, goal, nursing, team, first_night)| {
                Base {
                    start,
                    care_code,
                    care_len,
                    minutes,
                    levels,
                    goal,
                    nursing,
                    team,
                    first_night,
                }
            },
        )
}

impl Base {
    fn patient(&self, who: &Pseudonym) -> String {
        format!("patient-{}", &who.as_str()[56..])
    }

    fn start(&self) -> NaiveDate {
        d("2027-01-01") + Days::new(u64::from(self.start))
    }

    fn care_grant(&self, who: &Pseudonym) -> Grant {
        let s = self.start();
        let mut g = grant(
            who,
            "care-grant",
            CARE_CODES[self.care_code],
            s,
            self.care_len.map(|l| s + Days::new(u64::from(l))),
        );
        g.weekly_minutes = self.minutes;
        g
    }

    fn nursing_grant(&self, who: &Pseudonym) -> Option<Grant> {
        let s = self.start();
        self.nursing.map(|(code, len)| {
            grant(
                who,
                "nursing-grant",
                NURSING_CODES[code],
                s,
                len.map(|l| s + Days::new(u64::from(l))),
            )
        })
    }

    fn versions(&self, who: &Pseudonym) -> Vec<Versioned> {
        let s = self.start();
        let t0 = at("2026-12-01T08:00:00Z");
        let mut out = vec![
            v(t0, person(who, &self.patient(who), Some(SOR_NORD))),
            v(
                t0,
                assignment(who, if self.team { "nord" } else { "syd" }, "2026-01-01"),
            ),
            v(on(s - Days::new(1), 9), Record::Grant(self.care_grant(who))),
        ];
        if let Some(g) = self.nursing_grant(who) {
            out.push(v(on(s - Days::new(1), 9), Record::Grant(g)));
        }
        for (i, &(l, before)) in self.levels.iter().enumerate() {
            let t = on(s - Days::new(u64::from(before)), 7) + chrono::Duration::minutes(i as i64);
            out.push(v(t, level(who, &format!("condition-{i}"), l, t)));
        }
        if let Some((condition, target, before)) = self.goal {
            let t = on(s - Days::new(u64::from(before)), 7) + chrono::Duration::minutes(30);
            out.push(goal(
                who,
                "goal-0",
                &format!("condition-{condition}"),
                target,
                true,
                t,
            ));
        }
        out
    }
}

/// A record in a later batch, dated on that night's day (after every recorded start).
#[derive(Debug, Clone)]
enum Later {
    /// A new version of goal-0 (re-sent with another target, or completed).
    GoalResent { target: u8, active: bool },
    /// A running grant re-sent with a new end (days after the night) and weekly minutes.
    GrantResent {
        nursing: bool,
        end: Option<u32>,
        minutes: Option<u32>,
    },
    /// A condition re-assessed.
    Reassessed { condition: usize, level: u8 },
    /// The whole first batch put again, as it was.
    ResentIdentical,
    /// A record re-sent with the same content and a newer instant.
    SameContent { which: usize },
    /// A new grant starting after the night.
    NewGrant {
        code: usize,
        after: u32,
        len: Option<u32>,
    },
    /// A tariff amount edited in the mapping files.
    EditTariff {
        nursing: bool,
        group: usize,
        development: bool,
        delta: i64,
    },
    /// An older table (2026) added.
    OlderTable,
}

fn later() -> impl Strategy<Value = Later> {
    prop_oneof![
        (0u8..=4, any::<bool>()).prop_map(|(target, active)| Later::GoalResent { target, active }),
        (
            any::<bool>(),
            proptest::option::of(0u32..120),
            proptest::option::of(60u32..1000)
        )
            .prop_map(|(nursing, end, minutes)| Later::GrantResent {
                nursing,
                end,
                minutes
            }),
        (0usize..6, prop_oneof![0u8..=4, Just(9u8)])
            .prop_map(|(condition, level)| Later::Reassessed { condition, level }),
        Just(Later::ResentIdentical),
        (0usize..4).prop_map(|which| Later::SameContent { which }),
        (
            0..ALL_CODES.len(),
            1u32..60,
            proptest::option::of(0u32..100)
        )
            .prop_map(|(code, after, len)| Later::NewGrant { code, after, len }),
        (
            any::<bool>(),
            0usize..3,
            any::<bool>(),
            prop_oneof![-30i64..0, 1i64..30]
        )
            .prop_map(|(nursing, group, development, delta)| Later::EditTariff {
                nursing,
                group,
                development,
                delta
            }),
        Just(Later::OlderTable),
    ]
}

/// Gaps in days between nights, and each night's batch.
fn nights() -> impl Strategy<Value = Vec<(u32, Vec<Later>)>> {
    proptest::collection::vec((1u32..40, proptest::collection::vec(later(), 0..4)), 1..5)
}

static NEXT_CITIZEN: AtomicU32 = AtomicU32::new(1000);

/// Runs a property against the store: proptest's runner on a blocking thread, each case
/// blocking on the runtime for its store calls, each case a new citizen.
async fn run_property<M, S, F, Fut>(store: Store, cases: u32, strategy: M, case: F)
where
    M: FnOnce() -> S + Send + 'static,
    S: Strategy,
    F: Fn(Store, Pseudonym, S::Value) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), TestCaseError>>,
{
    let handle = tokio::runtime::Handle::current();
    let result = tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&strategy(), |value| {
                let who = citizen(NEXT_CITIZEN.fetch_add(1, Ordering::Relaxed));
                handle.block_on(case(store.clone(), who, value))
            })
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap();
    if let Err(e) = result {
        panic!("{e}");
    }
}

ledger_test!(property: later_batches_never_change_a_recorded_decision);

async fn later_batches_never_change_a_recorded_decision(store: Store, cases: u32) {
    run_property(store, cases, || (base(), nights()), |store, who, (base, nights)| async move {
        stability_case(&store, &who, &base, &nights).await
    })
    .await;
}

async fn stability_case(
    store: &Store,
    who: &Pseudonym,
    base: &Base,
    nights: &[(u32, Vec<Later>)],
) -> Result<(), TestCaseError> {
    let mut m = worked_example_mappings();
    let first = base.versions(who);
    store.put_batch(&first, None).await.unwrap();
    let s = base.start();
    let mut as_of = s + Days::new(u64::from(base.first_night));
    compute(store, &m, as_of).await;
    let mut recorded = latest_rows(store, who).await;
    let main = course_id(who, Track::Care, s);
    prop_assert!(
        recorded.contains_key(&main),
        "no care course from {s}: {recorded:#?}"
    );
    // The current end of each base grant (re-sent ones move it).
    let mut care_end = base.care_grant(who).end;
    let mut nursing_end = base.nursing_grant(who).map(|g| g.end);
    for (gap, batch) in nights {
        as_of = as_of + Days::new(u64::from(*gap));
        let mut versions = Vec::new();
        for (k, op) in batch.iter().enumerate() {
            let t = on(as_of, 10) + chrono::Duration::minutes(k as i64);
            match op {
                Later::GoalResent { target, active } => {
                    let condition = base.goal.map_or(0, |g| g.0);
                    versions.push(goal(
                        who,
                        "goal-0",
                        &format!("condition-{condition}"),
                        *target,
                        *active,
                        t,
                    ));
                }
                Later::GrantResent {
                    nursing,
                    end,
                    minutes,
                } => {
                    // Only a grant still running on this night is re-sent (with an end on or
                    // after it): one that had ended is not re-opened under recorded courses.
                    let nursing = *nursing && base.nursing.is_some();
                    let (mut g, current) = match base.nursing_grant(who) {
                        Some(g) if nursing => (g, nursing_end.flatten()),
                        _ => (base.care_grant(who), care_end),
                    };
                    if current.is_some_and(|e| e < as_of) {
                        continue;
                    }
                    g.end = end.map(|e| as_of + Days::new(u64::from(e)));
                    g.weekly_minutes = *minutes;
                    if nursing {
                        nursing_end = Some(g.end);
                    } else {
                        care_end = g.end;
                    }
                    versions.push(v(t, Record::Grant(g)));
                }
                Later::Reassessed {
                    condition,
                    level: l,
                } => {
                    versions.push(v(t, level(who, &format!("condition-{condition}"), *l, t)));
                }
                Later::ResentIdentical => versions.extend(first.iter().cloned()),
                Later::SameContent { which } => {
                    // The citizen, the roster line, or a grant as it stands, with a newer
                    // instant and the same content.
                    let record = match which {
                        0 => person(who, &base.patient(who), Some(SOR_NORD)),
                        1 => first[1].record.clone(),
                        2 => {
                            let mut g = base.care_grant(who);
                            g.end = care_end;
                            Record::Grant(g)
                        }
                        _ => match (base.nursing_grant(who), nursing_end) {
                            (Some(mut g), Some(end)) => {
                                g.end = end;
                                Record::Grant(g)
                            }
                            _ => continue,
                        },
                    };
                    versions.push(v(t, record));
                }
                Later::NewGrant { code, after, len } => {
                    let start = as_of + Days::new(u64::from(*after));
                    let id = format!("new-grant-{as_of}-{k}");
                    let g = grant(
                        who,
                        &id,
                        ALL_CODES[*code],
                        start,
                        len.map(|l| start + Days::new(u64::from(l))),
                    );
                    versions.push(v(t, Record::Grant(g)));
                }
                Later::EditTariff {
                    nursing,
                    group,
                    development,
                    delta,
                } => {
                    let track = if *nursing {
                        Track::Nursing
                    } else {
                        Track::Care
                    };
                    edit_tables(&mut m, |tables| {
                        let t = table_mut(tables, track, 2027);
                        let g = &mut t.groups[*group];
                        let cell = if *development {
                            &mut g.development
                        } else {
                            &mut g.stabilisation
                        };
                        *cell = (*cell + Decimal::from(*delta)).max(dec("1.00"));
                    });
                }
                Later::OlderTable => edit_tables(&mut m, |tables| {
                    if tables.iter().all(|t| t.year != 2026) {
                        let mut older = table_mut(tables, Track::Care, 2027).clone();
                        older.year = 2026;
                        older.groups[0].stabilisation += dec("1.00");
                        tables.push(older);
                    }
                }),
            }
        }
        store.put_batch(&versions, None).await.unwrap();
        let eval = compute(store, &m, as_of).await;
        let now = latest_rows(store, who).await;
        for (id, before) in &recorded {
            let after = now.get(id);
            prop_assert_eq!(
                after,
                Some(before),
                "night {} after {:?}: course {} changed",
                as_of,
                batch,
                id
            );
            prop_assert_eq!(rows_of(store, id).await.len() as u32, before.revision);
            // The course the pipeline pays is the recorded one.
            if let Some(course) = before.course() {
                let paid = eval.all_courses().into_iter().find(|c| &c.id == id);
                prop_assert_eq!(paid, Some(course));
            }
        }
        recorded = now;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Property: the three ways of change do change a decision, each a row with its reason
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Supersede {
    /// Reported deceased with the date `after` days into the course, then not deceased.
    Death { after: u32 },
    /// An events-source termination `after` days into the course, then withdrawn.
    Event { nursing_home: bool, after: u32 },
    /// A counted condition withdrawn (entered in error).
    WithdrawLevel { index: usize },
    /// A level of a new condition, dated on or before the start day, arriving late.
    LateLevel { level: u8, before: u32 },
    /// A goal dated on or before the start day arriving late.
    LateGoal {
        condition: usize,
        target: u8,
        before: u32,
    },
    /// A person re-prices with an edited table.
    Reprice { delta: i64 },
}

fn supersede() -> impl Strategy<Value = Supersede> {
    prop_oneof![
        (0u32..400).prop_map(|after| Supersede::Death { after }),
        (any::<bool>(), 0u32..400).prop_map(|(nursing_home, after)| Supersede::Event {
            nursing_home,
            after
        }),
        (0usize..5).prop_map(|index| Supersede::WithdrawLevel { index }),
        (0u8..=4, 0u32..10).prop_map(|(level, before)| Supersede::LateLevel { level, before }),
        (0usize..5, 0u8..=4, 0u32..10).prop_map(|(condition, target, before)| {
            Supersede::LateGoal {
                condition,
                target,
                before,
            }
        }),
        prop_oneof![-40i64..0, 1i64..40].prop_map(|delta| Supersede::Reprice { delta }),
    ]
}

ledger_test!(property: the_three_ways_of_change_each_leave_a_row_with_its_reason);

async fn the_three_ways_of_change_each_leave_a_row_with_its_reason(store: Store, cases: u32) {
    run_property(
        store,
        cases,
        || (base(), 1u32..30, supersede()),
        |store, who, (base, gap, change)| async move {
            supersession_case(&store, &who, &base, gap, &change).await
        },
    )
    .await;
}

async fn supersession_case(
    store: &Store,
    who: &Pseudonym,
    base: &Base,
    gap: u32,
    change: &Supersede,
) -> Result<(), TestCaseError> {
    let mut m = worked_example_mappings();
    store.put_batch(&base.versions(who), None).await.unwrap();
    let s = base.start();
    let night1 = s + Days::new(u64::from(base.first_night));
    compute(store, &m, night1).await;
    let id = course_id(who, Track::Care, s);
    let before = latest_rows(store, who)
        .await
        .remove(&id)
        .expect("a care course");
    prop_assert_eq!(before.revision, 1);
    let old = decision(&before).clone();
    let old_end = before.end.unwrap();
    let night2 = night1 + Days::new(u64::from(gap));
    let t = on(night2, 10);
    let patient = base.patient(who);
    let days = (old_end - s).num_days() as u32 + 1;
    let expect_row = |row: &LedgerEntry, revision: u32| -> Result<(), TestCaseError> {
        prop_assert_eq!(row.revision, revision);
        prop_assert_eq!(row.course_id.clone(), id.clone());
        prop_assert_eq!(row.start, s);
        Ok(())
    };
    match change {
        Supersede::Death { after } | Supersede::Event { after, .. } => {
            let died = s + Days::new(u64::from(after % days));
            let (report, undo, reason) = match change {
                Supersede::Death { .. } => (
                    deceased(who, &patient, Some(died), t),
                    v(
                        t + chrono::Duration::days(1),
                        person(who, &patient, Some(SOR_NORD)),
                    ),
                    TerminationReason::Death,
                ),
                Supersede::Event { nursing_home, .. } => {
                    let reason = if *nursing_home {
                        TerminationReason::NursingHome
                    } else {
                        TerminationReason::MovedOut
                    };
                    let e = event(who, reason, died);
                    let mut report = v(t, e.clone());
                    report.source = events::SOURCE.into();
                    let mut undo = withdrawn(t + chrono::Duration::days(1), e);
                    undo.source = events::SOURCE.into();
                    (report, undo, reason)
                }
                _ => unreachable!(),
            };
            store.put_batch(&[report], None).await.unwrap();
            compute(store, &m, night2).await;
            let row = latest_rows(store, who).await.remove(&id).unwrap();
            expect_row(&row, 2)?;
            prop_assert_eq!(
                row.change.clone(),
                Change::EndMoved {
                    from: old_end,
                    to: died,
                    why: format!("termination event: {} on {died}", reason.as_str())
                }
            );
            prop_assert_eq!(row.decision.as_ref(), Some(&old), "the decision stands");
            prop_assert_eq!(
                (row.end, row.end_reason),
                (Some(died), Some(EndReason::Terminated(reason)))
            );
            // Reported in error: undone the next day, the end moves back.
            store.put_batch(&[undo], None).await.unwrap();
            compute(store, &m, night2 + Days::new(1)).await;
            let row = latest_rows(store, who).await.remove(&id).unwrap();
            expect_row(&row, 3)?;
            prop_assert_eq!(
                row.change.clone(),
                Change::EndMoved {
                    from: died,
                    to: old_end,
                    why: "the termination event was withdrawn".into()
                }
            );
            prop_assert_eq!(row.decision.as_ref(), Some(&old));
            prop_assert_eq!((row.end, row.end_reason), (before.end, before.end_reason));
        }
        Supersede::WithdrawLevel { .. }
        | Supersede::LateLevel { .. }
        | Supersede::LateGoal { .. } => {
            let (version, delta, word): (Versioned, i64, &str) = match change {
                Supersede::WithdrawLevel { index } => {
                    if base.levels.is_empty() {
                        return Ok(());
                    }
                    let i = index % base.levels.len();
                    let (l, b) = base.levels[i];
                    let at_ =
                        on(s - Days::new(u64::from(b)), 7) + chrono::Duration::minutes(i as i64);
                    let score = i64::from(if l == 9 { 0 } else { l });
                    // Only the latest version of condition i counts; base has one per condition.
                    (
                        withdrawn(t, level(who, &format!("condition-{i}"), l, at_)),
                        -score,
                        "withdrawn",
                    )
                }
                Supersede::LateLevel {
                    level: l,
                    before: b,
                } => {
                    let at_ = on(s - Days::new(u64::from(*b)), 11);
                    (
                        v(at_, level(who, "condition-late", *l, at_)),
                        i64::from(*l),
                        "dated on or before the start day",
                    )
                }
                Supersede::LateGoal {
                    condition,
                    target,
                    before: b,
                } => {
                    let at_ = on(s - Days::new(u64::from(*b)), 11);
                    (
                        goal(
                            who,
                            "goal-late",
                            &format!("condition-{condition}"),
                            *target,
                            true,
                            at_,
                        ),
                        0,
                        "dated on or before the start day",
                    )
                }
                _ => unreachable!(),
            };
            let late_goal = matches!(change, Supersede::LateGoal { .. });
            store.put_batch(&[version], None).await.unwrap();
            compute(store, &m, night2).await;
            let row = latest_rows(store, who).await.remove(&id).unwrap();
            expect_row(&row, 2)?;
            match &row.change {
                Change::DecidedAfresh { why } => prop_assert!(why.contains(word), "{}", why),
                other => prop_assert!(false, "expected decided afresh, got {:?}", other),
            }
            let fresh = fresh_decision(store, &m, night2, &id).await;
            prop_assert_eq!(
                row.decision.as_ref(),
                fresh.as_ref(),
                "decided afresh = decided from scratch"
            );
            let new = decision(&row);
            prop_assert_eq!((new.start, &new.course_id), (s, &id));
            if !late_goal {
                prop_assert_eq!(i64::from(new.need_score), i64::from(old.need_score) + delta);
            }
            prop_assert_ne!(&new.evidence, &old.evidence);
            // Read back the next night: no further row.
            compute(store, &m, night2 + Days::new(1)).await;
            prop_assert_eq!(rows_of(store, &id).await.len(), 2);
        }
        Supersede::Reprice { delta } => {
            let delta = Decimal::from(*delta);
            edit_tables(&mut m, |tables| {
                let t = table_mut(tables, Track::Care, 2027);
                for g in &mut t.groups {
                    g.development += delta;
                    g.stabilisation += delta;
                }
                if let Some(ind) = &mut t.individual {
                    ind.hourly_rate += delta;
                }
            });
            // The edit alone changes nothing.
            compute(store, &m, night2).await;
            prop_assert_eq!(
                latest_rows(store, who).await.remove(&id),
                Some(before.clone())
            );
            let rows =
                reprice_table(store, &m, Track::Care, 2027, "property", night2, Some(who)).await;
            prop_assert!(rows.iter().any(|r| r.course_id == id));
            compute(store, &m, night2 + Days::new(1)).await;
            let row = latest_rows(store, who).await.remove(&id).unwrap();
            expect_row(&row, 2)?;
            prop_assert_eq!(
                row.change.clone(),
                Change::Repriced {
                    table: "care/2027".into(),
                    why: "property".into()
                }
            );
            let new = decision(&row);
            prop_assert_eq!(
                (new.kind, new.need_score, new.group),
                (old.kind, old.need_score, old.group)
            );
            prop_assert_eq!(
                new.table.hash.clone(),
                m.tariffs.table(Track::Care, 2027).unwrap().content_hash()
            );
            let expected = match old.tariff {
                DailyTariff::Locked { amount } => DailyTariff::Locked {
                    amount: amount + delta,
                },
                DailyTariff::Individual { hourly_rate } => DailyTariff::Individual {
                    hourly_rate: hourly_rate + delta,
                },
            };
            prop_assert_eq!(new.tariff, expected);
            prop_assert_eq!((row.end, row.end_reason), (before.end, before.end_reason));
        }
    }
    Ok(())
}

ledger_test!(a_grant_version_dated_after_the_start_never_re_decides_a_recorded_successor);
/// A §83a grant runs 2027-01-04 to 2027-01-31 (a development course to 2027-03-28); a
/// personal-care grant from 2027-03-01 carries a stabilisation successor from 2027-03-29.
/// On 2027-04-10 the §83a grant is re-sent with its end extended to 2027-06-30, and on
/// 2027-04-12 a new §83a grant back-dated to 2027-03-20 is first reported: both are versions
/// dated after the successor's start, so its recorded decision stands.
async fn a_grant_version_dated_after_the_start_never_re_decides_a_recorded_successor(store: Store) {
    let mut night = Night::new(store).await;
    let who = citizen(71);
    let mut versions = simple_citizen(
        &who,
        "patient-x",
        "nord",
        REHAB,
        "2027-01-04",
        Some("2027-01-31"),
        &[2, 2, 2],
    );
    versions.push(v(
        on(d("2027-02-27"), 10),
        Record::Grant(grant(
            &who,
            "patient-x-care",
            PERSONAL_CARE,
            d("2027-03-01"),
            None,
        )),
    ));
    night.put(&versions).await;
    night.vouchers_of("2027-03-31").await;
    let rows = latest_rows(&night.store, &who).await;
    let successor = rows
        .values()
        .find(|e| e.start == d("2027-03-29"))
        .expect("a successor from 2027-03-29")
        .clone();
    assert_eq!(decision(&successor).kind, CourseKind::Stabilisation);
    assert_eq!(locked(decision(&successor)), "180.00");

    night
        .put(&[v(
            on(d("2027-04-10"), 10),
            Record::Grant(grant(
                &who,
                "patient-x-grant",
                REHAB,
                d("2027-01-04"),
                Some(d("2027-06-30")),
            )),
        )])
        .await;
    night.vouchers_of("2027-04-10").await;
    night
        .put(&[v(
            on(d("2027-04-12"), 10),
            Record::Grant(grant(&who, "patient-x-late", REHAB, d("2027-03-20"), None)),
        )])
        .await;
    // Only the two new days at the locked 180.00: no correction.
    assert_eq!(
        night.vouchers_of("2027-04-12").await,
        strings(&["nord care 2027-04 360.00"])
    );
    let rows = rows_of(&night.store, &successor.course_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0], successor);
}
