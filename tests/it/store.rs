//! The store, tested the same way on SQLite and PostgreSQL.
//!
//! Every `store_test!(name)` makes `name::sqlite` (a fresh database file in a temporary
//! directory) and `name::postgres` (a fresh database `pgw_test_<random>` on the server named by
//! `PROGRESSION_GATEWAY_TEST_PG`, dropped afterwards; skipped with a printed line when the
//! variable is not set). Both call the same `async fn name(store: Store)`.
//!
//! ```text
//! PROGRESSION_GATEWAY_TEST_PG=postgres://postgres@127.0.0.1:5432/postgres cargo test --test it store::
//! ```

use chrono::{DateTime, NaiveDate, Utc};
use progression_gateway::domain::{
    Assessment, CitizenRecord, CourseKind, Cpr, DeliveryMode, FunctionalLevel, Goal, Grant,
    GrantStatus, Pseudonym, PseudonymKey, SourceId, TeamAssignment, TeamId, Termination,
    TerminationReason, Track, Visit,
};
use progression_gateway::model::YearMonth;
use progression_gateway::model::{
    Course, CourseId, DailyTariff, EndReason, Record, Versioned, resolve_history,
};
use progression_gateway::sinks::finance::{
    DebitCredit, Voucher, VoucherLine, VoucherNumber, VoucherState,
};
use progression_gateway::store::{Backend, IngestedFile, PutSummary, Store, StoreError};
use rust_decimal::Decimal;
use secrecy::SecretString;
use sqlx::{AssertSqlSafe, Connection};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const PG_ENV: &str = "PROGRESSION_GATEWAY_TEST_PG";

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

macro_rules! store_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::on_sqlite(|store, _url| super::$name(store)).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::on_postgres(|store, _url| super::$name(store)).await;
            }
        }
    };
    // A test that also needs the database URL (to reconnect).
    (url: $name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::on_sqlite(super::$name).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::on_postgres(super::$name).await;
            }
        }
    };
}

/// Runs `test` on a fresh SQLite file in a temporary directory.
pub(crate) async fn on_sqlite<F, Fut>(test: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::TempDir::new().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let store = Store::connect(&url).await.expect("connect to SQLite");
    assert_eq!(store.backend(), Backend::Sqlite);
    let outcome = tokio::spawn(test(store, url)).await;
    drop(dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Runs `test` on a fresh PostgreSQL database, dropped afterwards (also when the test panics).
pub(crate) async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Store, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(server) = std::env::var(PG_ENV).ok().filter(|s| !s.trim().is_empty()) else {
        println!("skipped: {PG_ENV} not set");
        return;
    };
    let name = unique_database_name();
    let mut admin = sqlx::PgConnection::connect(&server)
        .await
        .expect("connect to the PostgreSQL test server");
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let url = with_database(&server, &name);
    let outcome = match Store::connect(&url).await {
        Ok(store) => {
            assert_eq!(store.backend(), Backend::Postgres);
            tokio::spawn(test(store, url)).await
        }
        Err(e) => tokio::spawn(async move { panic!("connect to PostgreSQL: {e}") }).await,
    };
    // Best effort: a failure to drop is reported but does not fail the test.
    if let Err(e) = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    {
        eprintln!("could not drop test database {name}: {e}");
    }
    let _ = admin.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn unique_database_name() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "pgw_test_{:x}_{:x}_{:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The server URL with its database replaced by `database` (query string kept).
fn with_database(server: &str, database: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("a postgres:// URL");
    let authority = rest.split('/').next().unwrap_or_default();
    format!("{scheme}://{authority}/{database}{query}")
}

// ---------------------------------------------------------------------------------------------
// Test data
// ---------------------------------------------------------------------------------------------

/// A citizen pseudonym; citizens sort by `n`.
fn citizen(n: u8) -> Pseudonym {
    Pseudonym::parse(&format!("{n:02x}").repeat(32)).unwrap()
}

/// A citizen pseudonym made the way the gateway makes them.
fn keyed_citizen() -> Pseudonym {
    PseudonymKey::new(SecretString::from("test-key-with-enough-bytes"))
        .unwrap()
        .citizen(&Cpr::parse("0101501234").unwrap())
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn day(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn sid(s: &str) -> SourceId {
    SourceId::parse(s).unwrap()
}

fn version(source: &str, version_at: &str, record: Record) -> Versioned {
    Versioned {
        source: source.into(),
        version_at: at(version_at),
        withdrawn: false,
        record,
    }
}

fn grant(c: &Pseudonym, id: &str, end: Option<&str>) -> Grant {
    Grant::new(
        sid(id),
        c.clone(),
        "H1.1".into(),
        day("2027-01-04"),
        end.map(day),
        GrantStatus::Active,
        Some(90),
    )
    .unwrap()
}

fn assessment(c: &Pseudonym, condition: &str, level: u8, assessed_at: &str) -> Assessment {
    Assessment {
        condition_id: sid(condition),
        citizen: c.clone(),
        condition_code: "B0.1".into(),
        level_code: format!("B{}", level + 1),
        level: Some(FunctionalLevel::new(level).unwrap()),
        assessed_at: at(assessed_at),
        assessed_on: at(assessed_at).date_naive(),
        in_focus: true,
    }
}

/// One version of every record kind for `c`.
fn one_of_each_kind(c: &Pseudonym) -> Vec<Versioned> {
    let employee = PseudonymKey::new(SecretString::from("test-key-with-enough-bytes"))
        .unwrap()
        .other("employee", "e-17");
    vec![
        version(
            "klgateway-files",
            "2027-01-01T08:00:00Z",
            Record::Citizen(CitizenRecord {
                citizen: c.clone(),
                patient_id: None,
                custodian_sor: Some("123456789012345".into()),
                deceased: false,
                deceased_on: None,
                active: true,
            }),
        ),
        version(
            "klgateway-files",
            "2027-01-02T09:30:00.123456Z",
            Record::Grant(grant(c, "grant-1", Some("2027-03-31"))),
        ),
        version(
            "nexus",
            "2027-01-05T10:00:00Z",
            Record::Visit(
                Visit::new(
                    sid("visit-1"),
                    c.clone(),
                    // Sub-microsecond precision inside the payload survives (it is JSON).
                    at("2027-01-05T07:15:00.123456789Z"),
                    at("2027-01-05T07:45:00Z"),
                    Some(employee),
                    DeliveryMode::Clinic,
                    vec![sid("grant-1"), sid("grant-2")],
                )
                .unwrap(),
            ),
        ),
        version(
            "klgateway-files",
            "2027-01-03T12:00:00Z",
            Record::Assessment(assessment(c, "cond-1", 3, "2027-01-03T12:00:00Z")),
        ),
        version(
            "klgateway-files",
            "2027-01-03T12:05:00Z",
            Record::Goal(Goal {
                source_id: sid("goal-1"),
                citizen: c.clone(),
                condition_id: sid("cond-1"),
                target_level: Some(FunctionalLevel::new(1).unwrap()),
                set_on: day("2027-01-03"),
                active: true,
            }),
        ),
        version(
            "klgateway-files",
            "2027-06-30T22:00:00Z",
            Record::Termination(Termination {
                source_id: sid("patient-1"),
                citizen: c.clone(),
                on: day("2027-06-30"),
                reason: TerminationReason::MovedOut,
            }),
        ),
        version(
            "roster",
            "2027-01-01T00:00:00Z",
            Record::Assignment(
                TeamAssignment::new(
                    c.clone(),
                    TeamId::parse("team-nord").unwrap(),
                    day("2027-01-01"),
                    None,
                )
                .unwrap(),
            ),
        ),
    ]
}

fn course(c: &Pseudonym, track: Track, start: &str, amount: &str) -> Course {
    Course {
        id: CourseId(format!("{}-{}-{start}", c.short(), track.as_str())),
        citizen: c.clone(),
        track,
        kind: CourseKind::Development,
        need_score: 17,
        group: Some(3),
        tariff_year: 2027,
        tariff: DailyTariff::Locked {
            amount: amount.parse().unwrap(),
        },
        start: day(start),
        planned_end: day(start) + chrono::Days::new(89),
        end: day(start) + chrono::Days::new(89),
        end_reason: EndReason::Planned,
        rule: "development: test".into(),
        revision: 1,
    }
}

/// `n` distinct grants spread over 50 citizens.
fn many_grants(n: usize) -> Vec<Versioned> {
    (0..n)
        .map(|i| {
            let c = citizen((i % 50) as u8);
            version(
                "bulk",
                "2027-02-01T10:00:00Z",
                Record::Grant(grant(&c, &format!("bulk-{i}"), None)),
            )
        })
        .collect()
}

fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

store_test!(every_record_kind_round_trips);
async fn every_record_kind_round_trips(store: Store) {
    let c = keyed_citizen();
    let batch = one_of_each_kind(&c);
    let summary = store.put_batch(&batch, None).await.unwrap();
    assert_eq!(
        summary,
        PutSummary {
            inserted: 7,
            unchanged: 0
        }
    );

    let stored = store.versions(&c).await.unwrap();
    assert_eq!(stored, batch, "every field of every kind, in receipt order");
    assert_eq!(
        json(&stored),
        json(&batch),
        "the JSON payloads are equal too"
    );
    let kinds: Vec<_> = stored.iter().map(|v| v.record.kind().as_str()).collect();
    assert_eq!(
        kinds,
        [
            "citizen",
            "grant",
            "visit",
            "assessment",
            "goal",
            "termination",
            "assignment"
        ]
    );
    if let Record::Visit(v) = &stored[2].record {
        assert_eq!(v.start, at("2027-01-05T07:15:00.123456789Z"));
    } else {
        panic!("third version is not the visit");
    }

    assert_eq!(store.citizens().await.unwrap(), vec![c.clone()]);
    assert!(store.versions(&citizen(1)).await.unwrap().is_empty());
    let h = resolve_history(&stored, chrono_tz::Europe::Copenhagen);
    assert_eq!(h.grants.len(), 1);
    assert_eq!(h.visits.len(), 1);
    assert_eq!(h.assessments.len(), 1);
    assert_eq!(h.goals.len(), 1);
    assert_eq!(h.terminations.len(), 1);
    assert_eq!(h.assignments.len(), 1);
    assert!(h.profile.is_some());
}

store_test!(version_instants_keep_microseconds);
async fn version_instants_keep_microseconds(store: Store) {
    let c = citizen(1);
    let mut v = version(
        "s",
        "2027-01-04T10:00:00.999999Z",
        Record::Grant(grant(&c, "g", None)),
    );
    let mut w = version(
        "s",
        "2027-01-04T10:00:01.000001Z",
        Record::Grant(grant(&c, "g", Some("2027-02-01"))),
    );
    store
        .put_batch(&[w.clone(), v.clone()], None)
        .await
        .unwrap();
    let stored = store.versions(&c).await.unwrap();
    assert_eq!(stored, vec![w.clone(), v.clone()]);
    // Below a microsecond is truncated (documented), and re-putting stays idempotent.
    v.version_at = at("2027-01-04T10:00:00.999999999Z");
    w.version_at = at("2027-01-04T10:00:01.000001001Z");
    let again = store.put_batch(&[w, v], None).await.unwrap();
    assert_eq!(again.inserted, 0);
    assert_eq!(again.unchanged, 2);
}

store_test!(putting_the_same_batch_twice_changes_nothing);
async fn putting_the_same_batch_twice_changes_nothing(store: Store) {
    let mut batch = many_grants(120);
    batch.extend(one_of_each_kind(&citizen(7)));
    let n = batch.len() as u64;

    let first = store.put_batch(&batch, Some(("bulk", "1"))).await.unwrap();
    assert_eq!(
        first,
        PutSummary {
            inserted: n,
            unchanged: 0
        }
    );
    let second = store.put_batch(&batch, Some(("bulk", "1"))).await.unwrap();
    assert_eq!(
        second,
        PutSummary {
            inserted: 0,
            unchanged: n
        }
    );

    let total: usize = store
        .all_versions()
        .await
        .unwrap()
        .iter()
        .map(|(_, vs)| vs.len())
        .sum();
    assert_eq!(total as u64, n);

    // A repeat inside one batch is unchanged too; new content at the same instant is a new
    // version.
    let c = citizen(7);
    let old = version(
        "klgateway-files",
        "2027-01-02T09:30:00.123456Z",
        Record::Grant(grant(&c, "grant-1", Some("2027-03-31"))),
    );
    let corrected = version(
        "klgateway-files",
        "2027-01-02T09:30:00.123456Z",
        Record::Grant(grant(&c, "grant-1", Some("2027-04-30"))),
    );
    let third = store
        .put_batch(&[old, corrected.clone(), corrected], None)
        .await
        .unwrap();
    assert_eq!(
        third,
        PutSummary {
            inserted: 1,
            unchanged: 2
        }
    );
}

store_test!(an_older_version_arriving_late_does_not_replace_the_newer);
async fn an_older_version_arriving_late_does_not_replace_the_newer(store: Store) {
    let c = citizen(3);
    let newer = version(
        "klgateway-files",
        "2027-02-01T10:00:00Z",
        Record::Grant(grant(&c, "grant-9", Some("2027-02-28"))),
    );
    let older = version(
        "klgateway-files",
        "2027-01-15T10:00:00Z",
        Record::Grant(grant(&c, "grant-9", None)),
    );
    assert_eq!(
        store
            .put_batch(std::slice::from_ref(&newer), None)
            .await
            .unwrap()
            .inserted,
        1
    );
    assert_eq!(
        store
            .put_batch(std::slice::from_ref(&older), None)
            .await
            .unwrap()
            .inserted,
        1
    );

    let stored = store.versions(&c).await.unwrap();
    assert_eq!(
        stored,
        vec![newer.clone(), older],
        "both kept, in receipt order"
    );
    let h = resolve_history(&stored, chrono_tz::Europe::Copenhagen);
    let Record::Grant(expected) = newer.record else {
        unreachable!()
    };
    assert_eq!(
        h.grants,
        vec![expected],
        "the newer version is still current"
    );
    assert_eq!(h.grants[0].end, Some(day("2027-02-28")));
}

store_test!(every_assessment_version_is_kept);
async fn every_assessment_version_is_kept(store: Store) {
    let c = citizen(4);
    let first = assessment(&c, "cond-7", 3, "2027-01-10T09:00:00Z");
    let reassessed = assessment(&c, "cond-7", 1, "2027-03-10T09:00:00Z");
    store
        .put_batch(
            &[version(
                "s",
                "2027-01-10T09:00:00Z",
                Record::Assessment(first.clone()),
            )],
            None,
        )
        .await
        .unwrap();
    store
        .put_batch(
            &[version(
                "s",
                "2027-03-10T09:00:00Z",
                Record::Assessment(reassessed.clone()),
            )],
            None,
        )
        .await
        .unwrap();

    let stored = store.versions(&c).await.unwrap();
    assert_eq!(stored.len(), 2);
    let h = resolve_history(&stored, chrono_tz::Europe::Copenhagen);
    assert_eq!(h.assessments, vec![first, reassessed]);
    let levels: Vec<u8> = h
        .assessments
        .iter()
        .map(|a| a.level.unwrap().value())
        .collect();
    assert_eq!(
        levels,
        [3, 1],
        "the re-assessment did not overwrite the level before it"
    );
}

store_test!(a_withdrawn_version_removes_the_record);
async fn a_withdrawn_version_removes_the_record(store: Store) {
    let c = citizen(5);
    let live = version(
        "s",
        "2027-01-10T09:00:00Z",
        Record::Grant(grant(&c, "grant-w", None)),
    );
    let kept = version(
        "s",
        "2027-01-10T09:00:00Z",
        Record::Grant(grant(&c, "grant-kept", None)),
    );
    store.put_batch(&[live.clone(), kept], None).await.unwrap();
    assert_eq!(
        resolve_history(
            &store.versions(&c).await.unwrap(),
            chrono_tz::Europe::Copenhagen
        )
        .grants
        .len(),
        2
    );

    // Same content, same instant, but withdrawn: a different version (the hash covers the flag).
    let withdrawn = Versioned {
        withdrawn: true,
        ..live
    };
    let summary = store.put_batch(&[withdrawn], None).await.unwrap();
    assert_eq!(summary.inserted, 1);

    let stored = store.versions(&c).await.unwrap();
    assert_eq!(stored.len(), 3);
    assert!(stored[2].withdrawn);
    let h = resolve_history(&stored, chrono_tz::Europe::Copenhagen);
    let ids: Vec<&str> = h.grants.iter().map(|g| g.source_id.as_str()).collect();
    assert_eq!(ids, ["grant-kept"]);
}

fn voucher(number: VoucherNumber, team: &str, amount: &str) -> Voucher {
    let amount: Decimal = amount.parse().unwrap();
    let line = |line_no, side, amount: Decimal, cc: &str| VoucherLine {
        line_no,
        side,
        amount,
        gl_account: "53026000".into(),
        cost_centre: progression_gateway::domain::CostCentre::parse(cc).unwrap(),
        text: format!("Takst {team} care 2027-01"),
    };
    Voucher {
        number,
        team: team.into(),
        track: Track::Care,
        month: YearMonth {
            year: 2027,
            month: 1,
        },
        amount,
        document_date: day("2027-01-05"),
        posting_date: day("2027-01-05"),
        value_date: day("2027-01-05"),
        header_text: "Progression 2027-01".into(),
        lines: vec![
            line(1, DebitCredit::Debit, amount, "1000"),
            line(2, DebitCredit::Credit, -amount, "1001"),
        ],
    }
}

store_test!(vouchers_are_numbered_per_year_and_move_through_their_states);
async fn vouchers_are_numbered_per_year_and_move_through_their_states(store: Store) {
    let made = store
        .create_vouchers(2027, |first| {
            Ok::<_, String>(vec![
                voucher(VoucherNumber::new(2027, first), "nord", "123.46"),
                voucher(VoucherNumber::new(2027, first + 1), "syd", "-10.00"),
            ])
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(made[0].number.0, "PG27000001");
    let more = store
        .create_vouchers(2027, |first| {
            Ok::<_, String>(vec![voucher(
                VoucherNumber::new(2027, first),
                "nord",
                "123.45",
            )])
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(more[0].number.0, "PG27000003");
    let other_year = store
        .create_vouchers(2028, |first| {
            Ok::<_, String>(vec![voucher(
                VoucherNumber::new(2028, first),
                "nord",
                "1.00",
            )])
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other_year[0].number.0, "PG28000001");
    // A failing build stores nothing.
    let failed = store
        .create_vouchers(2027, |_| Err::<Vec<Voucher>, _>("no accounts".to_owned()))
        .await
        .unwrap();
    assert_eq!(failed, Err("no accounts".to_owned()));
    let all = store.vouchers().await.unwrap();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|v| v.state == VoucherState::Pending));
    assert_eq!(all[0].voucher, made[0], "a voucher round-trips exactly");
    store
        .set_voucher_state(&made[0].number, VoucherState::Sent, None, Some("f.xml"))
        .await
        .unwrap();
    store
        .set_voucher_state(
            &made[0].number,
            VoucherState::Rejected,
            Some("closed period"),
            None,
        )
        .await
        .unwrap();
    let first = &store.vouchers().await.unwrap()[0];
    assert_eq!(
        (
            first.state,
            first.message.as_deref(),
            first.file_name.as_deref()
        ),
        (VoucherState::Rejected, Some("closed period"), Some("f.xml"))
    );
    // Posted totals count every voucher, rejected ones too (never re-sent under a new number).
    let totals = store.posted_totals().await.unwrap();
    let nord = &totals[&("nord".to_owned(), "care".to_owned(), "2027-01".to_owned())];
    assert_eq!(nord.to_string(), "247.91");
    // Decisions: the hash of the last written ChargeItem per course.
    assert_eq!(store.decision_hash("course-1").await.unwrap(), None);
    store.record_decision("course-1", "h1").await.unwrap();
    store.record_decision("course-1", "h2").await.unwrap();
    assert_eq!(
        store.decision_hash("course-1").await.unwrap().as_deref(),
        Some("h2")
    );
}

store_test!(a_file_is_recorded_with_what_it_held);
async fn a_file_is_recorded_with_what_it_held(store: Store) {
    let c = citizen(7);
    let file = IngestedFile {
        content_hash: "ab".repeat(32),
        source: "landing".into(),
        file_name: "report-1.json".into(),
    };
    assert!(!store.file_ingested(&file.content_hash).await.unwrap());
    let first = store
        .put_batch_with_files(&one_of_each_kind(&c), None, std::slice::from_ref(&file))
        .await
        .unwrap();
    assert!(first.inserted > 0);
    assert!(store.file_ingested(&file.content_hash).await.unwrap());
    assert!(!store.file_ingested(&"cd".repeat(32)).await.unwrap());
    // Recording the same file again (a crash between commit and archive) is harmless.
    let again = store
        .put_batch_with_files(&one_of_each_kind(&c), None, std::slice::from_ref(&file))
        .await
        .unwrap();
    assert_eq!(again.inserted, 0);
}

store_test!(a_cursor_written_with_a_batch_is_readable);
async fn a_cursor_written_with_a_batch_is_readable(store: Store) {
    assert_eq!(store.cursor("klgateway-files").await.unwrap(), None);
    let c = citizen(6);
    store
        .put_batch(
            &one_of_each_kind(&c),
            Some(("klgateway-files", "2027-01-05T10:00:00Z|p2")),
        )
        .await
        .unwrap();
    assert_eq!(
        store.cursor("klgateway-files").await.unwrap().as_deref(),
        Some("2027-01-05T10:00:00Z|p2")
    );
    // An empty batch still moves the cursor; other sources are untouched.
    store
        .put_batch(&[], Some(("klgateway-files", "page-3")))
        .await
        .unwrap();
    assert_eq!(
        store.cursor("klgateway-files").await.unwrap().as_deref(),
        Some("page-3")
    );
    assert_eq!(store.cursor("nexus").await.unwrap(), None);
}

store_test!(a_batch_that_fails_midway_leaves_nothing);
async fn a_batch_that_fails_midway_leaves_nothing(store: Store) {
    let before = many_grants(10);
    store
        .put_batch(&before, Some(("bulk", "page-1")))
        .await
        .unwrap();

    // 1500 versions (two INSERT statements), then a cursor the database refuses (an empty
    // source violates a CHECK): the versions were written inside the transaction, then rolled
    // back with it.
    let batch: Vec<Versioned> = (0..1500)
        .map(|i| {
            version(
                "bulk",
                "2027-03-01T10:00:00Z",
                Record::Grant(grant(
                    &citizen(60 + (i % 3) as u8),
                    &format!("late-{i}"),
                    None,
                )),
            )
        })
        .collect();
    let err = store
        .put_batch(&batch, Some(("", "page-2")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Query { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("cursor"), "{message}");
    assert!(!message.contains(citizen(60).as_str()), "{message}");
    assert!(!message.contains("H1.1"), "{message}");

    for n in 60..63 {
        assert!(store.versions(&citizen(n)).await.unwrap().is_empty());
    }
    let total: usize = store
        .all_versions()
        .await
        .unwrap()
        .iter()
        .map(|(_, v)| v.len())
        .sum();
    assert_eq!(total, 10, "only the earlier batch");
    assert_eq!(store.cursor("").await.unwrap(), None);

    // A batch with a value that cannot be stored fails as a whole and leaves the cursor.
    let mut bad = many_grants(20);
    bad[19].version_at = DateTime::<Utc>::from_timestamp(300_000_000_000, 0).unwrap();
    let err = store
        .put_batch(&bad, Some(("bulk", "page-2")))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err:?}");
    assert_eq!(
        store.cursor("bulk").await.unwrap().as_deref(),
        Some("page-1")
    );

    // The batch and its cursor appear together once it succeeds.
    let summary = store
        .put_batch(&batch, Some(("bulk", "page-2")))
        .await
        .unwrap();
    assert_eq!(summary.inserted, 1500);
    assert_eq!(
        store.cursor("bulk").await.unwrap().as_deref(),
        Some("page-2")
    );
}

store_test!(replacing_courses_keeps_only_the_new_set);
async fn replacing_courses_keeps_only_the_new_set(store: Store) {
    let (a, b) = (citizen(1), citizen(2));
    let first = vec![
        course(&a, Track::Care, "2027-01-04", "500"),
        course(&a, Track::Nursing, "2027-01-04", "80.25"),
        course(&b, Track::Care, "2027-02-01", "321"),
    ];
    store.replace_courses(&first).await.unwrap();
    assert_eq!(store.courses().await.unwrap(), first);

    // Given out of order; read back sorted by (citizen, track, start).
    let mut individual = course(&b, Track::Care, "2027-01-01", "0");
    individual.kind = CourseKind::Individual;
    individual.group = None;
    individual.tariff = DailyTariff::Individual {
        hourly_rate: "412.50".parse().unwrap(),
    };
    individual.end = day("2027-01-20");
    individual.end_reason = EndReason::Terminated(TerminationReason::Death);
    let second = vec![
        course(&b, Track::Nursing, "2027-05-01", "99.99"),
        course(&a, Track::Care, "2027-04-05", "123.4567"),
        individual.clone(),
        course(&a, Track::Care, "2027-01-04", "500.00"),
    ];
    store.replace_courses(&second).await.unwrap();
    let stored = store.courses().await.unwrap();
    let expected = vec![
        second[3].clone(),
        second[1].clone(),
        individual,
        second[0].clone(),
    ];
    assert_eq!(stored, expected);
    let DailyTariff::Locked { amount } = stored[1].tariff else {
        panic!("locked tariff expected")
    };
    assert_eq!(amount, Decimal::new(1_234_567, 4));
    assert_eq!(amount.to_string(), "123.4567", "exact, scale kept");
    let DailyTariff::Locked { amount } = stored[0].tariff else {
        panic!("locked tariff expected")
    };
    assert_eq!(amount.to_string(), "500.00");

    // A set the database refuses (two courses with one id) leaves the previous set.
    let duplicate = vec![second[0].clone(), second[0].clone()];
    assert!(store.replace_courses(&duplicate).await.is_err());
    assert_eq!(store.courses().await.unwrap(), expected);

    store.replace_courses(&[]).await.unwrap();
    assert!(store.courses().await.unwrap().is_empty());
}

store_test!(all_versions_groups_by_citizen_in_receipt_order);
async fn all_versions_groups_by_citizen_in_receipt_order(store: Store) {
    let (a, b, c) = (citizen(0xa0), citizen(0x0b), citizen(0x5c));
    let g = |p: &Pseudonym, id: &str, at: &str| version("s", at, Record::Grant(grant(p, id, None)));
    // Interleaved, with receipt order differing from version order.
    let batch = [
        g(&a, "a1", "2027-01-03T00:00:00Z"),
        g(&c, "c1", "2027-01-01T00:00:00Z"),
        g(&b, "b1", "2027-01-09T00:00:00Z"),
        g(&a, "a2", "2027-01-01T00:00:00Z"),
        g(&c, "c2", "2027-01-02T00:00:00Z"),
    ];
    store.put_batch(&batch[..3], None).await.unwrap();
    store.put_batch(&batch[3..], None).await.unwrap();
    let late = g(&b, "b2", "2027-01-01T00:00:00Z");
    store
        .put_batch(std::slice::from_ref(&late), None)
        .await
        .unwrap();

    let groups = store.all_versions().await.unwrap();
    let expected = vec![
        (b.clone(), vec![batch[2].clone(), late]),
        (c.clone(), vec![batch[1].clone(), batch[4].clone()]),
        (a.clone(), vec![batch[0].clone(), batch[3].clone()]),
    ];
    assert_eq!(groups, expected);
    assert_eq!(
        store.citizens().await.unwrap(),
        vec![b.clone(), c.clone(), a.clone()]
    );
    for (who, versions) in &groups {
        assert_eq!(&store.versions(who).await.unwrap(), versions);
    }
}

store_test!(ten_thousand_versions_in_one_batch);
/// A large batch goes in whole and idempotently (speed is measured by benchmarks, not here).
async fn ten_thousand_versions_in_one_batch(store: Store) {
    let batch = many_grants(10_000);
    let summary = store
        .put_batch(&batch, Some(("bulk", "done")))
        .await
        .unwrap();
    assert_eq!(summary.inserted, 10_000);
    assert_eq!(store.cursor("bulk").await.unwrap().as_deref(), Some("done"));
    let again = store.put_batch(&batch, None).await.unwrap();
    assert_eq!((again.inserted, again.unchanged), (0, 10_000));
    let groups = store.all_versions().await.unwrap();
    assert_eq!(groups.len(), 50);
    assert!(groups.iter().all(|(_, v)| v.len() == 200));
}

store_test!(url: reconnecting_keeps_the_data);
async fn reconnecting_keeps_the_data(store: Store, url: String) {
    let c = citizen(9);
    let batch = one_of_each_kind(&c);
    store
        .put_batch(&batch, Some(("klgateway-files", "c-1")))
        .await
        .unwrap();
    let courses = vec![course(&c, Track::Care, "2027-01-04", "123.4567")];
    store.replace_courses(&courses).await.unwrap();
    store.close().await;
    drop(store);

    if let Some(path) = url.strip_prefix("sqlite://") {
        let meta = std::fs::metadata(path).expect("a real database file");
        assert!(meta.is_file() && meta.len() > 0);
    }

    // Connecting again runs the migrations again (a no-op) and finds everything.
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(store.versions(&c).await.unwrap(), batch);
    assert_eq!(store.courses().await.unwrap(), courses);
    assert_eq!(
        store.cursor("klgateway-files").await.unwrap().as_deref(),
        Some("c-1")
    );
    let again = store.put_batch(&batch, None).await.unwrap();
    assert_eq!(again.inserted, 0);
}

// ---------------------------------------------------------------------------------------------
// Connecting (no database needed)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_bad_url_names_the_scheme_problem_without_the_password() {
    let err = Store::connect("mysql://gateway:hunter2@db.example/care")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BadUrl(_)), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("unsupported scheme `mysql:`"), "{message}");
    assert!(message.contains("sqlite://"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");

    let err = Store::connect("gateway.db").await.unwrap_err();
    assert!(err.to_string().contains("no scheme"), "{err}");

    let err = Store::connect("").await.unwrap_err();
    assert!(matches!(err, StoreError::BadUrl(_)), "{err:?}");

    let err = Store::connect("postgres://gateway:hunter2@db.example:notaport/care")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BadUrl(_)), "{err:?}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[tokio::test]
async fn an_unreachable_database_is_a_connect_error() {
    let dir = tempfile::TempDir::new().unwrap();
    let missing = dir.path().join("no-such-directory").join("gateway.db");
    let err = Store::connect(&format!("sqlite://{}", missing.display()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Connect {
                backend: Backend::Sqlite,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("cannot connect to the SQLite database"),
        "{err}"
    );

    let err = Store::connect("postgres://gateway:hunter2@127.0.0.1:1/care")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Connect {
                backend: Backend::Postgres,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The run journal and job leases
// ---------------------------------------------------------------------------------------------

use progression_gateway::store::{NewRun, Outcome, RunCounts, Trigger};

fn instant(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn a_run_and_its_steps_are_journaled(store: Store) {
    let started = instant("2027-03-02T01:30:00.123456Z");
    let id = store
        .start_run(&NewRun {
            job: "nightly",
            trigger: Trigger::Schedule,
            scheduled_for: Some(instant("2027-03-02T01:30:00Z")),
            as_of: Some(NaiveDate::from_ymd_opt(2027, 3, 1).unwrap()),
            dry_run: false,
            holder: "host:1:abc",
            started_at: started,
        })
        .await
        .unwrap();
    store.start_step(id, 1, "pull", started).await.unwrap();
    let pulled = RunCounts {
        records_pulled: 42,
        records_rejected: 1,
        ..RunCounts::default()
    };
    let errors = vec!["source care: rejected page 3: truncated JSON".to_owned()];
    store
        .finish_step(
            id,
            1,
            instant("2027-03-02T01:30:05Z"),
            Outcome::Partial,
            &pulled,
            &errors,
        )
        .await
        .unwrap();
    store
        .skip_step(
            id,
            2,
            "compute",
            instant("2027-03-02T01:30:05Z"),
            "stopped by a signal",
        )
        .await
        .unwrap();
    let runs = store.runs(10, None).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome, Outcome::Running, "not finished yet");
    assert_eq!(runs[0].ended_at, None);
    store
        .finish_run(
            id,
            instant("2027-03-02T01:30:06Z"),
            Outcome::Interrupted,
            &pulled,
            &errors,
        )
        .await
        .unwrap();
    let runs = store.runs(10, Some("nightly")).await.unwrap();
    let r = &runs[0];
    assert_eq!(r.id, id);
    assert_eq!(r.trigger, Trigger::Schedule);
    assert_eq!(r.started_at, started, "microseconds kept");
    assert_eq!(r.as_of, NaiveDate::from_ymd_opt(2027, 3, 1));
    assert_eq!(r.outcome, Outcome::Interrupted);
    assert_eq!(r.counts, pulled);
    assert_eq!(r.errors, errors);
    assert_eq!(r.holder, "host:1:abc");
    assert_eq!(r.steps.len(), 2);
    assert_eq!(
        (r.steps[0].step.as_str(), r.steps[0].outcome),
        ("pull", Outcome::Partial)
    );
    assert_eq!(r.steps[0].counts.records_pulled, 42);
    assert_eq!(
        (r.steps[1].step.as_str(), r.steps[1].outcome),
        ("compute", Outcome::Skipped)
    );
    assert_eq!(r.steps[1].errors, vec!["stopped by a signal".to_owned()]);
    assert!(store.runs(10, Some("prune")).await.unwrap().is_empty());
    assert_eq!(
        store.last_success().await.unwrap(),
        None,
        "an interrupted run is no success"
    );
    let outcomes = store.run_outcome_counts().await.unwrap();
    assert_eq!(
        outcomes,
        vec![("nightly".to_owned(), Outcome::Interrupted, 1)]
    );
}
store_test!(a_run_and_its_steps_are_journaled);

async fn runs_are_listed_newest_first_and_pruned_by_age(store: Store) {
    let mut ids = Vec::new();
    for (day, outcome) in [(1, Outcome::Ok), (2, Outcome::Failed), (3, Outcome::Ok)] {
        let at = instant(&format!("2027-03-0{day}T01:30:00Z"));
        let id = store
            .start_run(&NewRun {
                job: "nightly",
                trigger: Trigger::Manual,
                scheduled_for: None,
                as_of: None,
                dry_run: false,
                holder: "h",
                started_at: at,
            })
            .await
            .unwrap();
        store.start_step(id, 1, "compute", at).await.unwrap();
        store
            .finish_step(id, 1, at, outcome, &RunCounts::default(), &[])
            .await
            .unwrap();
        store
            .finish_run(
                id,
                at + chrono::Duration::seconds(9),
                outcome,
                &RunCounts::default(),
                &[],
            )
            .await
            .unwrap();
        ids.push(id);
    }
    let runs = store.runs(2, None).await.unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    assert!(runs.iter().all(|r| r.steps.len() == 1));
    assert_eq!(
        store.last_success().await.unwrap(),
        Some(instant("2027-03-03T01:30:09Z"))
    );
    let pruned = store
        .prune_runs(instant("2027-03-02T12:00:00Z"))
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    let left = store.runs(10, None).await.unwrap();
    assert_eq!(left.iter().map(|r| r.id).collect::<Vec<_>>(), vec![ids[2]]);
    assert_eq!(left[0].steps.len(), 1, "the kept run keeps its steps");
}
store_test!(runs_are_listed_newest_first_and_pruned_by_age);

async fn a_job_lease_is_held_by_one_holder_until_released_or_expired(store: Store) {
    use std::time::Duration;
    let t0 = instant("2027-03-02T01:30:00Z");
    let ttl = Duration::from_secs(60);
    assert!(
        store
            .claim_job("nightly", "a", None, t0, ttl)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_job("nightly", "b", None, t0, ttl)
            .await
            .unwrap(),
        "held by a"
    );
    assert!(
        store.claim_job("prune", "b", None, t0, ttl).await.unwrap(),
        "another job is free"
    );
    // Renewed by a, so still held after the first expiry.
    let t1 = t0 + chrono::Duration::seconds(50);
    assert!(store.renew_job("nightly", "a", t1, ttl).await.unwrap());
    assert!(!store.renew_job("nightly", "b", t1, ttl).await.unwrap());
    let t2 = t0 + chrono::Duration::seconds(90);
    assert!(
        !store
            .claim_job("nightly", "b", None, t2, ttl)
            .await
            .unwrap()
    );
    // Released: b gets it at once.
    store.release_job("nightly", "a").await.unwrap();
    assert!(
        store
            .claim_job("nightly", "b", None, t2, ttl)
            .await
            .unwrap()
    );
    // b dies with a run in flight: after the expiry, a takes over and b's run is abandoned.
    let id = store
        .start_run(&NewRun {
            job: "nightly",
            trigger: Trigger::Manual,
            scheduled_for: None,
            as_of: None,
            dry_run: false,
            holder: "b",
            started_at: t2,
        })
        .await
        .unwrap();
    let t3 = t2 + chrono::Duration::seconds(61);
    assert!(
        store
            .claim_job("nightly", "a", None, t3, ttl)
            .await
            .unwrap()
    );
    let run = &store.runs(1, None).await.unwrap()[0];
    assert_eq!((run.id, run.outcome), (id, Outcome::Abandoned));
}
store_test!(a_job_lease_is_held_by_one_holder_until_released_or_expired);

async fn a_scheduled_instant_is_claimed_once(store: Store) {
    use std::time::Duration;
    let ttl = Duration::from_secs(60);
    let at = instant("2027-03-02T01:30:00Z");
    let now = at + chrono::Duration::seconds(1);
    assert!(
        store
            .claim_job("nightly", "a", Some(at), now, ttl)
            .await
            .unwrap()
    );
    store.release_job("nightly", "a").await.unwrap();
    // Free again, but that instant is taken: b must not run it a second time.
    assert!(
        !store
            .claim_job("nightly", "b", Some(at), now, ttl)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_job(
                "nightly",
                "b",
                Some(at - chrono::Duration::days(1)),
                now,
                ttl
            )
            .await
            .unwrap(),
        "an earlier instant neither"
    );
    assert_eq!(store.last_scheduled("nightly").await.unwrap(), Some(at));
    let next = at + chrono::Duration::days(1);
    assert!(
        store
            .claim_job("nightly", "b", Some(next), next, ttl)
            .await
            .unwrap()
    );
    assert_eq!(store.last_scheduled("nightly").await.unwrap(), Some(next));
    // set_last_scheduled only moves forward.
    store.set_last_scheduled("nightly", at).await.unwrap();
    assert_eq!(store.last_scheduled("nightly").await.unwrap(), Some(next));
    assert_eq!(store.last_scheduled("never-run").await.unwrap(), None);
}
store_test!(a_scheduled_instant_is_claimed_once);

async fn concurrent_claims_of_one_instant_have_one_winner(store: Store) {
    use std::time::Duration;
    let at = instant("2027-03-02T01:30:00Z");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .claim_job(
                    "nightly",
                    &format!("holder-{i}"),
                    Some(at),
                    at,
                    Duration::from_secs(60),
                )
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}
store_test!(concurrent_claims_of_one_instant_have_one_winner);

async fn voucher_states_are_counted(store: Store) {
    store.ping().await.unwrap();
    assert!(store.voucher_state_counts().await.unwrap().is_empty());
    let made = store
        .create_vouchers(2027, |first| {
            Ok::<_, String>(
                (0..3)
                    .map(|i| voucher(VoucherNumber::new(2027, first + i), "nord", "1.00"))
                    .collect(),
            )
        })
        .await
        .unwrap()
        .unwrap();
    store
        .set_voucher_state(&made[0].number, VoucherState::Accepted, None, None)
        .await
        .unwrap();
    let mut counts = store.voucher_state_counts().await.unwrap();
    counts.sort();
    assert_eq!(
        counts,
        vec![("accepted".to_owned(), 1), ("pending".to_owned(), 2)]
    );
}
store_test!(voucher_states_are_counted);

// ---------------------------------------------------------------------------------------------
// Migration 0007: a store of the text format (0001-0006) moves to the compact one
// ---------------------------------------------------------------------------------------------

/// Applies only the migrations numbered below 7 (the text format of `record_versions`).
async fn migrate_to_text_format<DB>(pool: &sqlx::Pool<DB>, backend: &str)
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Connection: sqlx::migrate::Migrate,
{
    let dir = tempfile::tempdir().unwrap();
    let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(&from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < "0007" {
            std::fs::copy(&path, dir.path().join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    assert_eq!(migrator.iter().count(), 6);
    migrator.run(pool).await.unwrap();
}

/// A version as the text format stored it: pseudonym and sha256 as hex, instants as RFC 3339
/// text, the whole Record as JSON.
fn text_row(v: &Versioned) -> [String; 8] {
    use sha2::Digest;
    let whole = serde_json::to_string(&v.record).unwrap();
    let mut h = sha2::Sha256::new();
    h.update(whole.as_bytes());
    h.update(b"\nwithdrawn=false");
    [
        v.record.kind().as_str().to_owned(),
        v.source.clone(),
        v.record.key(),
        v.record.citizen().to_string(),
        v.version_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        hex::encode(h.finalize()),
        whole,
        "2026-12-01T08:00:00.000000Z".to_owned(),
    ]
}

const TEXT_INSERT: &str = "INSERT INTO record_versions (kind, source, record_key, citizen, \
     version_at, withdrawn, content_hash, payload, received_at) \
     VALUES ($1, $2, $3, $4, $5, false, $6, $7, $8)";

/// After the migration every version reads back as it was stored, the same versions sent
/// again are unchanged (the converted hash and instant are the identity the store computes
/// now), and a new version is stored in the compact form.
async fn the_migrated_store_reads_back_and_knows_its_versions(url: &str, old: &[Versioned]) {
    let store = Store::connect(url).await.unwrap();
    let c = keyed_citizen();
    assert_eq!(store.versions(&c).await.unwrap(), old);
    assert_eq!(store.citizens().await.unwrap(), vec![c.clone()]);
    assert_eq!(
        store.put_batch(old, None).await.unwrap(),
        PutSummary {
            inserted: 0,
            unchanged: old.len() as u64
        }
    );
    let mut newer = old[1].clone();
    newer.version_at = at("2027-03-01T12:00:00.654321Z");
    assert_eq!(
        store
            .put_batch(&[newer.clone()], None)
            .await
            .unwrap()
            .inserted,
        1
    );
    let mut want = old.to_vec();
    want.push(newer);
    assert_eq!(store.versions(&c).await.unwrap(), want);
    store.close().await;
}

#[tokio::test]
async fn a_sqlite_store_of_the_text_format_migrates_to_the_compact_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    let old = one_of_each_kind(&keyed_citizen());
    {
        let options: sqlx::sqlite::SqliteConnectOptions = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        migrate_to_text_format(&pool, "sqlite").await;
        for v in &old {
            let mut q = sqlx::query(TEXT_INSERT);
            for value in text_row(v) {
                q = q.bind(value);
            }
            q.execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
    the_migrated_store_reads_back_and_knows_its_versions(&url, &old).await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (citizen, hash, at): (Vec<u8>, Vec<u8>, i64) = sqlx::query_as(
        "SELECT citizen, content_hash, version_at FROM record_versions ORDER BY id LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(hex::encode(&citizen), keyed_citizen().to_string());
    assert_eq!(hash.len(), 16);
    assert_eq!(at, old[0].version_at.timestamp_micros());
    let payloads: Vec<String> =
        sqlx::query_scalar("SELECT payload FROM record_versions ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        payloads[..old.len()]
            .iter()
            .all(|p| p.starts_with("{\"kind\":"))
    );
    let newest = payloads.last().unwrap();
    assert!(
        !newest.starts_with("{\"kind\":") && !newest.contains(&keyed_citizen().to_string()),
        "{newest}"
    );
}

#[tokio::test]
async fn a_postgres_store_of_the_text_format_migrates_to_the_compact_one() {
    let Some(server) = std::env::var(PG_ENV).ok().filter(|s| !s.trim().is_empty()) else {
        println!("skipped: {PG_ENV} not set");
        return;
    };
    let name = unique_database_name();
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = with_database(&server, &name);
    let old = one_of_each_kind(&keyed_citizen());
    let outcome = tokio::spawn({
        let url = url.clone();
        async move {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            migrate_to_text_format(&pool, "postgres").await;
            for v in &old {
                let mut q = sqlx::query(TEXT_INSERT);
                for value in text_row(v) {
                    q = q.bind(value);
                }
                q.execute(&pool).await.unwrap();
            }
            pool.close().await;
            the_migrated_store_reads_back_and_knows_its_versions(&url, &old).await;
        }
    })
    .await;
    let _ = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

store_test!(packed_citizens_read_back_as_citizen_by_citizen);
/// The packed read (one row per citizen, decoded on the caller's thread) gives every citizen's
/// versions exactly as the row-by-row read does, in receipt order, over any split of the
/// citizens into ranges; text with quotes, newlines and non-ASCII survives the packing.
async fn packed_citizens_read_back_as_citizen_by_citizen(store: Store) {
    use progression_gateway::model::RecordKind;
    use progression_gateway::store::CitizenRange;
    let mut batch = Vec::new();
    for n in [0x00u8, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xff] {
        let c = citizen(n);
        batch.extend(one_of_each_kind(&c));
        // A later version of the grant, then an older one arriving late: receipt order counts.
        batch.push(version(
            "s",
            "2027-03-01T00:00:00Z",
            Record::Grant(grant(&c, "g1", Some("2027-06-30"))),
        ));
        batch.push(version(
            "s",
            "2027-02-01T00:00:00Z",
            Record::Grant(grant(&c, "g1", Some("2027-05-31"))),
        ));
    }
    let odd = citizen(0x42);
    let mut a = one_of_each_kind(&odd);
    for v in &mut a {
        v.source = "kilde med \"citat\"\nog æøå".into();
    }
    batch.extend(a);
    store.put_batch(&batch, None).await.unwrap();

    let mut expected = Vec::new();
    store
        .for_each_citizen(&RecordKind::ALL, |who, vs| expected.push((who, vs)))
        .await
        .unwrap();
    assert_eq!(expected.len(), 9);
    for parts in 1..=5 {
        let mut got = Vec::new();
        for range in CitizenRange::split(parts) {
            let (tx, mut rx) = tokio::sync::mpsc::channel(2);
            let reader = store.send_citizens_packed(&RecordKind::ALL, range, tx);
            let collect = async {
                let mut out = Vec::new();
                while let Some(p) = rx.recv().await {
                    out.push(p.unpack().unwrap());
                }
                out
            };
            let (n, part) = tokio::join!(reader, collect);
            assert_eq!(n.unwrap(), part.len() as u64);
            got.extend(part);
        }
        assert_eq!(got, expected, "split into {parts} ranges");
    }
    // Only the kinds asked for.
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    store
        .send_citizens_packed(&[RecordKind::Visit], CitizenRange { from: 0, to: None }, tx)
        .await
        .unwrap();
    let mut visits = 0;
    while let Some(p) = rx.recv().await {
        let (_, vs) = p.unpack().unwrap();
        assert!(vs.iter().all(|v| v.record.kind() == RecordKind::Visit));
        visits += vs.len();
    }
    assert_eq!(visits, 9);
}

store_test!(actuals_files_are_stored_once_and_the_later_file_wins);
/// A finance actuals file is stored once per content; a later file replaces, per cost centre
/// and month, what an earlier one said, and leaves the other months as they were.
async fn actuals_files_are_stored_once_and_the_later_file_wins(store: Store) {
    use progression_gateway::model::figures::Actual;
    use progression_gateway::sources::actuals::ActualsFile;
    let ym = |m: u32| YearMonth {
        year: 2027,
        month: m,
    };
    let actual = |cc: &str, m: u32, amount: &str| Actual {
        cost_centre: cc.into(),
        month: ym(m),
        amount: amount.parse().unwrap(),
    };
    let january = ActualsFile {
        name: "regnskab-januar.csv".into(),
        content_hash: "a".repeat(64),
        actuals: vec![actual("1001", 1, "1000.50"), actual("1002", 1, "2000.00")],
    };
    assert!(store.put_actuals_file(&january).await.unwrap());
    assert!(
        !store.put_actuals_file(&january).await.unwrap(),
        "the same content again is not stored twice"
    );
    let stamp = store.data_stamp().await.unwrap();
    let restated = ActualsFile {
        name: "regnskab-februar.csv".into(),
        content_hash: "b".repeat(64),
        actuals: vec![actual("1001", 1, "1100.00"), actual("1001", 2, "-50.25")],
    };
    assert!(store.put_actuals_file(&restated).await.unwrap());
    assert_eq!(
        store.actuals().await.unwrap(),
        vec![
            actual("1001", 1, "1100.00"),
            actual("1001", 2, "-50.25"),
            actual("1002", 1, "2000.00"),
        ]
    );
    let later = store.data_stamp().await.unwrap();
    assert!(later[2] > stamp[2], "{stamp:?} {later:?}");
    assert_eq!(later[..2], stamp[..2]);
}
