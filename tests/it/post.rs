//! The nightly posting end to end: vouchers through the outbox to the simulated finance system
//! (folder, SFTP against a real OpenSSH server, HTTP), replies, corrections, and tariff
//! decisions to the simulated care system, with a real SQLite store.

use crate::support::sshd;

use crate::common::*;
use chrono::{NaiveDate, TimeZone, Utc};
use progression_gateway::config::{self, Loaded};
use progression_gateway::domain::{CitizenRecord, SourceId};
use progression_gateway::model::{Record, Versioned};
use progression_gateway::sim::finance::{Books, process_folder, serve_http};
use progression_gateway::sinks::decisions::DecisionsConfig;
use progression_gateway::sinks::finance::VoucherState;
use progression_gateway::sinks::finance::opus::OpusSettings;
use progression_gateway::sinks::finance::transport::{HttpConfig, SftpConfig, TransportConfig};
use progression_gateway::sinks::post::{FileFormat, FinanceSettings, PostSummary};
use progression_gateway::store::Store;
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};

fn opus() -> OpusSettings {
    OpusSettings {
        municipality_code: "0751".into(),
        data_provider_id: "PGW".into(),
        company_code: "0751".into(),
        sender: "PROGRESSION-GATEWAY".into(),
        receiver: "KMD-OPUS".into(),
    }
}

struct Night {
    store: Store,
    loaded: Loaded,
    books: Books,
    _dir: tempfile::TempDir,
    inbox: PathBuf,
    replies: PathBuf,
}

impl Night {
    async fn new(transport: Option<TransportConfig>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("gw.db").display()))
            .await
            .unwrap();
        let mut loaded =
            config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml"))
                .unwrap();
        let inbox = dir.path().join("opus-in");
        let replies = dir.path().join("opus-out");
        std::fs::create_dir_all(&inbox).unwrap();
        std::fs::create_dir_all(&replies).unwrap();
        loaded.settings.finance = Some(FinanceSettings {
            resend_after_hours: 24,
            duplicate_replies: vec!["already received".into()],
            format: FileFormat::Opus(opus()),
            transport: transport.unwrap_or(TransportConfig::Folder {
                dir: inbox.clone(),
                reply_dir: replies.clone(),
            }),
        });
        Night {
            store,
            loaded,
            books: Books::default(),
            _dir: dir,
            inbox,
            replies,
        }
    }

    async fn run(&self, as_of: &str) -> PostSummary {
        let as_of: NaiveDate = as_of.parse().unwrap();
        let now = as_of.succ_opt().unwrap().and_hms_opt(2, 30, 0).unwrap();
        post_now(&self.store, &self.loaded, as_of, now, false).await
    }

    /// The finance system's nightly batch: books what arrived and writes replies.
    fn finance_processes(&self) {
        process_folder(&self.books, &self.inbox, &self.replies).unwrap();
    }

    async fn states(&self) -> Vec<VoucherState> {
        self.store
            .vouchers()
            .await
            .unwrap()
            .iter()
            .map(|v| v.state)
            .collect()
    }

    async fn posted(&self) -> Decimal {
        self.store
            .vouchers()
            .await
            .unwrap()
            .iter()
            .map(|v| v.voucher.amount)
            .sum()
    }
}

/// A citizen in a stabilisation course of 260.00 a day from 2027-01-01 (team nord), known to
/// the care system as Patient/`patient`.
async fn citizen_b(store: &Store, patient: &str) {
    let h = HistoryBuilder::new(2)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[3, 3, 3], "2026-12-20")
        .build();
    let mut versions = versions_of(&h);
    versions.push(Versioned {
        source: "test".into(),
        version_at: Utc.with_ymd_and_hms(2026, 12, 20, 8, 0, 0).unwrap(),
        withdrawn: false,
        record: Record::Citizen(CitizenRecord {
            citizen: citizen(2),
            patient_id: Some(SourceId::parse(patient).unwrap()),
            custodian_sor: None,
            deceased: false,
            deceased_on: None,
            active: true,
        }),
    });
    store.put_batch(&versions, None).await.unwrap();
}

async fn report_death(store: &Store, on: &str) {
    let death = Versioned {
        source: "test".into(),
        version_at: Utc.with_ymd_and_hms(2027, 1, 27, 21, 0, 0).unwrap(),
        withdrawn: false,
        // The care system reports the citizen deceased, with the date of death.
        record: Record::Citizen(CitizenRecord {
            citizen: citizen(2),
            patient_id: Some(SourceId::parse("patient-b").unwrap()),
            custodian_sor: None,
            deceased: true,
            deceased_on: Some(on.parse().unwrap()),
            active: true,
        }),
    };
    store.put_batch(&[death], None).await.unwrap();
}

fn xmllint_valid(file: &Path) {
    let out = std::process::Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/opus-finance-posting.xsd"))
        .arg(file)
        .output()
        .expect("xmllint runs (install libxml2-utils)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn the_same_night_twice_sends_nothing_new_and_replies_settle_the_outbox() {
    let night = Night::new(None).await;
    citizen_b(&night.store, "patient-b").await;
    let first = night.run("2027-01-10").await;
    assert_eq!((first.vouchers_created, first.vouchers_sent), (1, 1));
    assert_eq!(night.states().await, [VoucherState::Sent]);
    // The file passes the schema and balances.
    let file = std::fs::read_dir(&night.inbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    xmllint_valid(&file);
    let again = night.run("2027-01-10").await;
    assert_eq!((again.vouchers_created, again.vouchers_sent), (0, 0));
    night.finance_processes();
    let replies = night.run("2027-01-10").await;
    assert_eq!(
        (replies.vouchers_created, replies.vouchers_accepted),
        (0, 1)
    );
    assert_eq!(night.states().await, [VoucherState::Accepted]);
    assert_eq!(night.books.voucher_count(), 1);
    assert_eq!(night.posted().await.to_string(), "2600.00"); // 10 x 260
    // The next night posts the delta of one day.
    let next = night.run("2027-01-11").await;
    assert_eq!(next.vouchers_created, 1);
    let vouchers = night.store.vouchers().await.unwrap();
    assert_eq!(vouchers[1].voucher.amount.to_string(), "260.00");
    assert_eq!(vouchers[1].voucher.balance(), Decimal::ZERO);
}

#[tokio::test]
async fn a_crash_between_writing_the_file_and_recording_it_books_each_voucher_once() {
    let night = Night::new(None).await;
    citizen_b(&night.store, "patient-b").await;
    night.run("2027-01-10").await;
    // The process died after writing the file but before recording the voucher as sent.
    for v in night.store.vouchers().await.unwrap() {
        night
            .store
            .set_voucher_state(&v.voucher.number, VoucherState::Pending, None, None)
            .await
            .unwrap();
    }
    night.finance_processes();
    let rerun = night.run("2027-01-10").await;
    assert_eq!(
        (rerun.vouchers_created, rerun.vouchers_sent),
        (0, 1),
        "re-sent, same number"
    );
    // The reply to the first file arrives in the same run: the voucher is accepted once.
    assert_eq!(rerun.vouchers_accepted, 1);
    night.finance_processes();
    // The re-sent file is answered "already received": harmless, nothing rejected.
    let settle = night.run("2027-01-10").await;
    assert!(
        settle.vouchers_rejected.is_empty(),
        "{:?}",
        settle.vouchers_rejected
    );
    let unread = std::fs::read_dir(&night.replies)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "xml")
        })
        .count();
    assert_eq!(unread, 0, "every reply read and archived");
    assert_eq!(night.states().await, [VoucherState::Accepted]);
    assert_eq!(
        night.books.voucher_count(),
        1,
        "no duplicate in the finance system's books"
    );
}

#[tokio::test]
async fn a_late_death_report_becomes_a_correction_and_the_month_adds_up() {
    let night = Night::new(None).await;
    citizen_b(&night.store, "patient-b").await;
    for day in 20..=25 {
        night.run(&format!("2027-01-{day}")).await;
    }
    assert_eq!(night.posted().await.to_string(), "6500.00"); // 25 x 260
    report_death(&night.store, "2027-01-20").await;
    let correction = night.run("2027-01-26").await;
    assert_eq!(correction.vouchers_created, 1);
    let vouchers = night.store.vouchers().await.unwrap();
    let last = &vouchers.last().unwrap().voucher;
    assert_eq!(last.amount.to_string(), "-1300.00");
    assert_eq!(last.balance(), Decimal::ZERO);
    // The month's posted total equals the recomputed month total: 20 days x 260.
    assert_eq!(night.posted().await.to_string(), "5200.00");
    night.finance_processes();
    night.run("2027-01-26").await;
    assert!(
        night
            .states()
            .await
            .iter()
            .all(|s| *s == VoucherState::Accepted)
    );
    let team = night.books.total_for_cost_centre("1001");
    assert_eq!(team.abs().to_string(), "5200.00");
}

#[tokio::test]
async fn the_finance_side_down_leaves_vouchers_pending_and_the_next_run_delivers_them() {
    let books = Books::default();
    let http = serve_http(books.clone()).await.unwrap();
    let night = Night::new(Some(TransportConfig::Http(HttpConfig {
        url: http.url.clone(),
        bearer_token: None,
        timeout_secs: 5,
    })))
    .await;
    citizen_b(&night.store, "patient-b").await;
    http.set_down(true);
    let down = night.run("2027-01-10").await;
    assert_eq!(down.vouchers_created, 1);
    assert_eq!(down.vouchers_pending, 1);
    assert!(!down.delivery_errors.is_empty());
    assert_eq!(books.voucher_count(), 0);
    http.set_down(false);
    let up = night.run("2027-01-10").await;
    assert_eq!(
        (up.vouchers_created, up.vouchers_sent, up.vouchers_accepted),
        (0, 1, 1)
    );
    assert_eq!(up.vouchers_pending, 0);
    assert_eq!(books.voucher_count(), 1);
}

#[tokio::test]
async fn vouchers_go_over_sftp_to_a_real_openssh_server() {
    let server = sshd::Sshd::start();
    let remote_in = server.root.join("opus-in");
    let remote_out = server.root.join("opus-out");
    std::fs::create_dir_all(&remote_in).unwrap();
    std::fs::create_dir_all(&remote_out).unwrap();
    let night = Night::new(Some(TransportConfig::Sftp(SftpConfig {
        host: "127.0.0.1".into(),
        port: server.port,
        user: server.user.clone(),
        private_key_file: server.client_key.clone(),
        known_hosts_file: Some(server.known_hosts.clone()),
        accept_unknown_host_key: false,
        remote_dir: remote_in.display().to_string(),
        reply_dir: remote_out.display().to_string(),
        timeout_secs: 20,
    })))
    .await;
    citizen_b(&night.store, "patient-b").await;
    let sent = night.run("2027-01-10").await;
    assert_eq!(sent.vouchers_sent, 1, "{:?}", sent.delivery_errors);
    let file = std::fs::read_dir(&remote_in)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "xml"))
        .expect("the Opus file on the server");
    xmllint_valid(&file);
    process_folder(&night.books, &remote_in, &remote_out).unwrap();
    let settled = night.run("2027-01-10").await;
    assert_eq!(
        settled.vouchers_accepted, 1,
        "{:?}",
        settled.delivery_errors
    );
    assert_eq!(night.books.voucher_count(), 1);
}

#[tokio::test]
async fn decisions_are_written_once_and_an_early_end_updates_the_same_charge_item() {
    let care = progression_gateway::sim::decisions::serve().await.unwrap();
    let mut night = Night::new(None).await;
    night.loaded.settings.decisions = Some(DecisionsConfig::new(care.base_url.clone()));
    citizen_b(&night.store, "patient-b").await;
    let first = night.run("2027-01-10").await;
    assert_eq!(first.decisions_written, 1, "{:?}", first.decision_errors);
    let items = care.items();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].subject, "Patient/patient-b");
    assert_eq!(items[0].price_text, "260.00");
    assert_eq!(items[0].period_end, "2027-07-01");
    let again = night.run("2027-01-11").await;
    assert_eq!((again.decisions_written, again.decisions_unchanged), (0, 1));
    assert_eq!(care.writes(), 1);
    report_death(&night.store, "2027-01-20").await;
    let ended = night.run("2027-01-27").await;
    assert_eq!(ended.decisions_written, 1);
    let items = care.items();
    assert_eq!(items.len(), 1, "the same ChargeItem, not a second one");
    assert_eq!(items[0].period_end, "2027-01-20");
    assert_eq!(items[0].version, 2);
}

#[tokio::test]
async fn a_dry_run_shows_the_vouchers_and_decisions_and_changes_nothing() {
    let care = progression_gateway::sim::decisions::serve().await.unwrap();
    let mut night = Night::new(None).await;
    night.loaded.settings.decisions = Some(DecisionsConfig::new(care.base_url.clone()));
    citizen_b(&night.store, "patient-b").await;
    let as_of: NaiveDate = "2027-01-10".parse().unwrap();
    let summary = post_now(
        &night.store,
        &night.loaded,
        as_of,
        as_of.and_hms_opt(23, 0, 0).unwrap(),
        true,
    )
    .await;
    assert_eq!(summary.dry_run_vouchers.len(), 1);
    assert_eq!(summary.dry_run_vouchers[0].number.0, "PG27000001");
    assert_eq!(summary.dry_run_vouchers[0].amount.to_string(), "2600.00");
    assert_eq!(summary.dry_run_decisions.len(), 1);
    assert!(night.store.vouchers().await.unwrap().is_empty());
    assert_eq!(std::fs::read_dir(&night.inbox).unwrap().count(), 0);
    assert_eq!(care.writes(), 0);
}

/// One `post` as the command does it (the pipeline's compute, post, replies and decisions
/// steps, journaled under the nightly lease).
async fn post_now(
    store: &progression_gateway::store::Store,
    loaded: &progression_gateway::config::Loaded,
    as_of: NaiveDate,
    now: chrono::NaiveDateTime,
    dry_run: bool,
) -> PostSummary {
    let ctx =
        progression_gateway::run::Context::new(store.clone(), std::sync::Arc::new(loaded.clone()));
    let report = progression_gateway::run::post_now(&ctx, as_of, now, dry_run)
        .await
        .unwrap()
        .expect("no other process holds the lease");
    report.post
}

/// Another citizen of team nord: stabilisation 260.00 a day from 2027-01-01.
async fn citizen_c(store: &Store) {
    let h = HistoryBuilder::new(3)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[3, 3, 3], "2026-12-20")
        .build();
    store.put_batch(&versions_of(&h), None).await.unwrap();
}

#[tokio::test]
async fn two_postings_in_the_same_second_write_two_files_and_both_are_booked() {
    let night = Night::new(None).await;
    citizen_b(&night.store, "patient-b").await;
    let first = night.run("2027-01-10").await;
    assert_eq!(first.vouchers_sent, 1);
    // New data and a second posting at the very same second, before the finance system
    // collected the first file.
    citizen_c(&night.store).await;
    let second = night.run("2027-01-10").await;
    assert_eq!(second.vouchers_sent, 1, "{:?}", second.delivery_errors);
    let mut files: Vec<String> = std::fs::read_dir(&night.inbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "ZFIR_KMD_Opus_Posteringer_IND_0751_PGW_20270111_023000.xml",
            "ZFIR_KMD_Opus_Posteringer_IND_0751_PGW_20270111_023001.xml"
        ]
    );
    night.finance_processes();
    assert_eq!(
        night.books.voucher_count(),
        2,
        "neither file was overwritten"
    );
    night.run("2027-01-10").await;
    assert_eq!(
        night.states().await,
        [VoucherState::Accepted, VoucherState::Accepted]
    );
    assert_eq!(night.posted().await.to_string(), "5200.00"); // 2 x 10 x 260
}

#[tokio::test]
async fn the_folder_transport_never_replaces_a_file_that_is_not_collected() {
    use progression_gateway::sinks::finance::transport::{Transport, TransportError};
    let dir = tempfile::tempdir().unwrap();
    let t = Transport::new(&TransportConfig::Folder {
        dir: dir.path().join("out"),
        reply_dir: dir.path().join("in"),
    })
    .unwrap();
    t.deliver("a.xml", b"first", "k1").await.unwrap();
    let e = t.deliver("a.xml", b"second", "k2").await.unwrap_err();
    assert!(
        matches!(e, TransportError::Exists(ref n) if n == "a.xml"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("out/a.xml")).unwrap(),
        b"first"
    );
    // No temporary file is left behind.
    assert_eq!(
        std::fs::read_dir(dir.path().join("out")).unwrap().count(),
        1
    );
}

#[tokio::test]
async fn an_http_re_send_after_a_lost_answer_is_byte_identical_and_accepted() {
    let books = Books::default();
    let http = serve_http(books.clone()).await.unwrap();
    let night = Night::new(Some(TransportConfig::Http(HttpConfig {
        url: http.url.clone(),
        bearer_token: None,
        timeout_secs: 5,
    })))
    .await;
    citizen_b(&night.store, "patient-b").await;
    let sent = night.run("2027-01-10").await;
    assert_eq!(sent.vouchers_accepted, 1);
    assert_eq!(books.voucher_count(), 1);
    // The process died after the finance system booked the batch and before it read the
    // answer: the voucher is still pending in the outbox.
    let number = night.store.vouchers().await.unwrap()[0]
        .voucher
        .number
        .clone();
    night
        .store
        .set_voucher_state(&number, VoucherState::Pending, None, None)
        .await
        .unwrap();
    // Re-sent an hour later with nothing new: the same key and the same body.
    let finance = night.loaded.settings.finance.clone().unwrap();
    let mut summary = PostSummary::default();
    progression_gateway::sinks::post::send_vouchers(
        &night.store,
        &night.loaded.mappings,
        &finance,
        &[],
        &Default::default(),
        d("2027-01-10"),
        d("2027-01-11").and_hms_opt(3, 30, 0).unwrap(),
        &mut summary,
    )
    .await
    .unwrap();
    assert!(
        summary.delivery_errors.is_empty(),
        "{:?}",
        summary.delivery_errors
    );
    assert_eq!(summary.vouchers_accepted, 1);
    assert_eq!(night.states().await, [VoucherState::Accepted]);
    assert_eq!(books.voucher_count(), 1, "booked once");
}

#[tokio::test]
async fn a_sent_voucher_whose_reply_is_lost_is_sent_again_with_the_same_number() {
    let mut night = Night::new(None).await;
    if let Some(f) = night.loaded.settings.finance.as_mut() {
        f.resend_after_hours = 0;
    }
    citizen_b(&night.store, "patient-b").await;
    let first = night.run("2027-01-10").await;
    assert_eq!(first.vouchers_sent, 1);
    assert_eq!(first.vouchers_unanswered, 1);
    // The finance system books the file, but its reply is lost.
    night.finance_processes();
    for e in std::fs::read_dir(&night.replies).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::remove_file(e.path()).unwrap();
        }
    }
    assert_eq!(night.states().await, [VoucherState::Sent]);
    // The next run sends it again (same number); the duplicate check answers "already
    // received", which counts as accepted. Nothing is booked twice.
    let again = night.run("2027-01-10").await;
    assert_eq!(again.vouchers_created, 0);
    assert_eq!(again.vouchers_resent, 1);
    night.finance_processes();
    let done = night.run("2027-01-10").await;
    assert_eq!(done.vouchers_accepted, 1);
    assert_eq!(done.vouchers_unanswered, 0);
    assert_eq!(night.states().await, [VoucherState::Accepted]);
    assert_eq!(night.books.voucher_count(), 1, "booked once");
    assert_eq!(night.posted().await.to_string(), "2600.00");
}

#[tokio::test]
async fn a_team_removed_from_the_mappings_still_gets_its_corrections_and_others_post() {
    let mut night = Night::new(None).await;
    citizen_b(&night.store, "patient-b").await; // nord, 260.00 a day from 2027-01-01
    let c = HistoryBuilder::new(3)
        .team("syd", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[3, 3, 3], "2026-12-20")
        .build();
    night.store.put_batch(&versions_of(&c), None).await.unwrap();
    night.run("2027-01-25").await;
    let nord_cc = night
        .loaded
        .mappings
        .team(&progression_gateway::domain::TeamId::parse("nord").unwrap())
        .unwrap()
        .cost_centre
        .clone();
    // Team nord is removed from teams.toml; then B's death on the 20th is reported late.
    night
        .loaded
        .mappings
        .teams
        .retain(|t| t.team.id.as_str() != "nord");
    report_death(&night.store, "2027-01-20").await;
    let summary = night.run("2027-01-26").await;
    assert!(
        summary.delivery_errors.is_empty(),
        "{:?}",
        summary.delivery_errors
    );
    let vouchers = night.store.vouchers().await.unwrap();
    let new: Vec<_> = vouchers[2..].iter().map(|v| &v.voucher).collect();
    // nord's correction on its last cost centre, and syd's new day, both out.
    let nord = new
        .iter()
        .find(|v| v.team == "nord")
        .expect("nord's correction");
    assert_eq!(nord.amount.to_string(), "-1300.00"); // 5 days x 260.00 back
    assert_eq!(nord.lines[1].cost_centre, nord_cc);
    let syd = new.iter().find(|v| v.team == "syd").expect("syd's voucher");
    assert_eq!(syd.amount.to_string(), "260.00");
    assert_eq!(summary.vouchers_sent, 2);
}

#[tokio::test]
async fn deltas_computed_before_another_process_posted_make_no_second_voucher() {
    // Two voucher makers read the same posted totals; the first posts. The second, still
    // holding its deltas, must build against what is posted inside its own transaction.
    let night = Night::new(None).await;
    citizen_b(&night.store, "patient-b").await;
    let as_of: NaiveDate = "2027-01-10".parse().unwrap();
    let mappings = &night.loaded.mappings;
    let tz = night.loaded.settings.time_zone;
    let stale = progression_gateway::pipeline::evaluate(&night.store, mappings, tz, as_of)
        .await
        .unwrap();
    let (deltas, report) = stale.deltas(&night.store, mappings, as_of).await.unwrap();
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0].amount.to_string(), "2600.00");

    let first = night.run("2027-01-10").await;
    assert_eq!(first.vouchers_created, 1);

    let finance = night.loaded.settings.finance.clone().unwrap();
    let mut summary = PostSummary::default();
    let now = as_of.succ_opt().unwrap().and_hms_opt(2, 31, 0).unwrap();
    progression_gateway::sinks::post::send_vouchers(
        &night.store,
        mappings,
        &finance,
        &deltas,
        &report,
        as_of,
        now,
        &mut summary,
    )
    .await
    .unwrap();
    assert_eq!(
        summary.vouchers_created, 0,
        "the stale delta was already covered"
    );
    assert_eq!(night.posted().await.to_string(), "2600.00");

    // New data meanwhile: only the part not yet posted goes out.
    citizen_c(&night.store).await;
    let (deltas, report) =
        progression_gateway::pipeline::evaluate(&night.store, mappings, tz, as_of)
            .await
            .unwrap()
            .deltas(&night.store, mappings, as_of)
            .await
            .unwrap();
    assert_eq!(deltas[0].amount.to_string(), "2600.00");
    let mut summary = PostSummary::default();
    progression_gateway::sinks::post::send_vouchers(
        &night.store,
        mappings,
        &finance,
        &deltas,
        &report,
        as_of,
        now,
        &mut summary,
    )
    .await
    .unwrap();
    assert_eq!(summary.vouchers_created, 1);
    assert_eq!(night.posted().await.to_string(), "5200.00");
    // And once more with the same (now stale) deltas: nothing.
    let mut summary = PostSummary::default();
    progression_gateway::sinks::post::send_vouchers(
        &night.store,
        mappings,
        &finance,
        &deltas,
        &report,
        as_of,
        now,
        &mut summary,
    )
    .await
    .unwrap();
    assert_eq!(summary.vouchers_created, 0);
    assert_eq!(night.posted().await.to_string(), "5200.00");
}
