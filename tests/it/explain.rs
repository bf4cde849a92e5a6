//! `explain` end to end: worked example F posted night by night through the pipeline into a
//! real SQLite store, then each voucher explained by its course-days to the øre (library, the
//! binary and the daemon's HTTP API); example A's decision names the §83a grant.

use crate::common::*;
use chrono::NaiveDate;
use progression_gateway::config::{self, Loaded};
use progression_gateway::store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A working folder with the example configuration, the repository's mappings with the
/// stabilisation tariff of group 2 set to 123.4567 (worked example F), a SQLite store and a
/// folder finance transport.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    store: Store,
    loaded: Loaded,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

async fn setup(f_tariff: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_dir(&root.join("mappings"), &dir.path().join("mappings"));
    if f_tariff {
        let tariffs = dir.path().join("mappings/tariffs.toml");
        let text = std::fs::read_to_string(&tariffs).unwrap();
        assert!(text.contains("stabilisation = \"180.00\""));
        std::fs::write(
            &tariffs,
            text.replacen(
                "stabilisation = \"180.00\"",
                "stabilisation = \"123.4567\"",
                1,
            ),
        )
        .unwrap();
    }
    let example = std::fs::read_to_string(root.join("config/example.toml")).unwrap();
    let db = dir.path().join("gw.db");
    let out = dir.path().join("opus-out");
    let replies = dir.path().join("opus-in");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&replies).unwrap();
    let config_text = format!(
        "{}\n[finance.format.opus]\nmunicipality_code = \"0751\"\ndata_provider_id = \"PGW\"\n\
         company_code = \"0751\"\nsender = \"PROGRESSION-GATEWAY\"\nreceiver = \"KMD-OPUS\"\n\n\
         [finance.transport]\nkind = \"folder\"\ndir = \"{}\"\nreply_dir = \"{}\"\n",
        example
            .replace("dir = \"../mappings\"", "dir = \"mappings\"")
            .replace(
                "url = \"sqlite://progression-gateway.db\"",
                &format!("url = \"sqlite://{}\"", db.display())
            ),
        out.display(),
        replies.display()
    );
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, config_text).unwrap();
    let loaded = config::load(&config).unwrap();
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    Setup {
        dir,
        config,
        store,
        loaded,
    }
}

async fn post(s: &Setup, as_of: NaiveDate) {
    let ctx = progression_gateway::run::Context::new(
        s.store.clone(),
        std::sync::Arc::new(s.loaded.clone()),
    );
    let now = as_of.succ_opt().unwrap().and_hms_opt(2, 30, 0).unwrap();
    let report = progression_gateway::run::post_now(&ctx, as_of, now, false)
        .await
        .unwrap()
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

fn cli(s: &Setup, args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
        .arg("--config")
        .arg(&s.config)
        .args(args)
        .current_dir(s.dir.path())
        .output()
        .unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.success(),
    )
}

#[tokio::test]
async fn explain_voucher_shows_example_f_januarys_course_days_summing_to_each_voucher() {
    let s = setup(true).await;
    let h = HistoryBuilder::new(6)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[2, 2], "2026-12-01")
        .build();
    s.store.put_batch(&versions_of(&h), None).await.unwrap();
    for day in 1..=31 {
        post(&s, d(&format!("2027-01-{day:02}"))).await;
    }
    let vouchers = s.store.vouchers().await.unwrap();
    assert_eq!(vouchers.len(), 31, "one voucher a night");
    let amounts: Vec<String> = vouchers
        .iter()
        .map(|v| v.voucher.amount.to_string())
        .collect();
    assert_eq!(&amounts[..4], ["123.46", "123.45", "123.46", "123.46"]);

    // Every voucher is explained by its course-days, to the øre.
    let mut posted = rust_decimal::Decimal::ZERO;
    for (i, v) in vouchers.iter().enumerate() {
        let e = progression_gateway::explain::voucher(&s.store, &v.voucher.number.0)
            .await
            .unwrap()
            .unwrap();
        let b = e
            .basis
            .as_ref()
            .expect("a basis is recorded with each voucher");
        assert_eq!(e.adds_up, Some(true));
        assert_eq!(b.courses.len(), 1);
        let share = &b.courses[0];
        assert_eq!(share.first_day, d("2027-01-01"));
        assert_eq!(share.last_day, d(&format!("2027-01-{:02}", i + 1)));
        assert_eq!(share.days as usize, i + 1);
        assert_eq!(share.daily_tariff.unwrap().to_string(), "123.4567");
        assert_eq!(
            share.amount,
            dec("123.4567") * rust_decimal::Decimal::from(i + 1)
        );
        assert_eq!(b.already_posted, posted);
        assert_eq!(e.earlier.len(), i);
        posted += v.voucher.amount;
    }
    assert_eq!(posted.to_string(), "3827.16");

    // The last night's voucher as a person reads it, from the binary.
    let last = &vouchers[30].voucher.number.0;
    let (text, err, ok) = cli(&s, &["explain", "--voucher", last]);
    assert!(ok, "{err}");
    for part in [
        "31 x 123,4567",
        "3.827,1577",
        "month to date, rounded",
        "3.827,16",
        "posted before (30 voucher(s))",
        "-3.703,70",
        "this voucher",
        "123,46 kr.",
    ] {
        assert!(text.contains(part), "`{part}` missing in:\n{text}");
    }
    assert!(!text.contains("does not add up"));
    // The amounts line up in one column.
    let column: Vec<usize> = text
        .lines()
        .filter(|l| {
            l.contains("3.827,1577") || l.contains("3.703,70") || l.contains("this voucher")
        })
        .map(|l| l.trim_end().len())
        .collect();
    assert!(column.windows(2).all(|w| w[0] == w[1]), "{text}");
    let (json, err, ok) = cli(&s, &["explain", "--voucher", last, "--format", "json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["amount"], "123.46");
    assert_eq!(v["basis"]["month_to_date"], "3827.16");
    assert_eq!(v["basis"]["already_posted"], "3703.70");
    assert_eq!(v["adds_up"], true);
    // An unknown voucher is an error naming it.
    let (_, err, ok) = cli(&s, &["explain", "--voucher", "PG27999999"]);
    assert!(!ok);
    assert!(err.contains("PG27999999"), "{err}");
}

#[tokio::test]
async fn explain_course_names_the_83a_grant_of_example_a_and_a_cpr_is_read_from_stdin_only() {
    let s = setup(false).await;
    // Example A: §83a grant from 2027-01-04, levels 2+2+2; a level rises to 4 on 2027-02-10.
    let h = HistoryBuilder::new(1)
        .team("nord", "2026-01-01", None)
        .grant(REHAB, "2027-01-04", Some("2027-02-28"))
        .levels(&[2, 2, 2], "2027-01-04")
        .level("condition-0", 4, "2027-02-10")
        .build();
    s.store.put_batch(&versions_of(&h), None).await.unwrap();
    post(&s, d("2027-01-31")).await;
    post(&s, d("2027-03-31")).await;
    let ledger = s.store.ledger_latest().await.unwrap();
    assert_eq!(ledger.len(), 1, "one course, decided once");
    let id = ledger[0].course_id.0.clone();
    let grant = h.grants[0].source_id.to_string();
    let c = progression_gateway::explain::course(&s.store, &id)
        .await
        .unwrap()
        .unwrap();
    let decision = c.in_force.entry.decision.as_ref().unwrap();
    assert_eq!(
        decision.rule,
        format!("development: active §83a grant {grant}; need score 6, group 2")
    );
    assert_eq!(
        decision.need_score, 6,
        "the level of 10 February comes after the start"
    );
    assert!(decision.evidence.iter().any(|e| e.id == grant));
    assert_eq!(c.revisions.len(), 1);

    let (text, err, ok) = cli(&s, &["explain", "--course", &id]);
    assert!(ok, "{err}");
    assert!(
        text.contains(&format!("development: active §83a grant {grant}")),
        "{text}"
    );
    assert!(text.contains("250,00 kr. per day"), "{text}");
    assert!(text.contains("care/2027 development, group 2"), "{text}");
    assert!(text.contains("2027-03-28 (planned)"), "{text}");

    // A CPR is taken from standard input; it is never printed, and an unknown one is refused
    // by pseudonym.
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
        .arg("--config")
        .arg(&s.config)
        .args(["explain", "--citizen-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"010190-1234\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(all.contains("no course of citizen"), "{all}");
    assert!(
        !all.contains("0101901234") && !all.contains("010190-1234"),
        "{all}"
    );
    // Not a CPR: refused without echoing it.
    let mut child = Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
        .arg("--config")
        .arg(&s.config)
        .args(["explain", "--citizen-stdin"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"3299901234\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("does not hold a CPR number"), "{err}");
    assert!(!err.contains("3299901234"), "{err}");
}

#[tokio::test]
async fn the_daemons_api_explains_courses_vouchers_and_citizens_behind_the_token() {
    use progression_gateway::api::{ApiState, Metrics, router};
    use progression_gateway::domain::{Cpr, PseudonymKey};
    use secrecy::SecretString;
    let s = setup(false).await;
    let key = s.loaded.settings.pseudonym_key.clone();
    // Citizen by CPR: the pseudonym the sources would store for this CPR.
    let cpr = Cpr::parse("0101901234").unwrap();
    let who = key.citizen(&cpr);
    let mut h = HistoryBuilder::new(1)
        .team("nord", "2026-01-01", None)
        .grant(REHAB, "2027-01-04", Some("2027-02-28"))
        .levels(&[2, 2, 2], "2027-01-04")
        .build();
    // Re-key the built history onto the CPR's pseudonym.
    let mut versions = versions_of(&h);
    for v in &mut versions {
        let json = serde_json::to_string(&v.record)
            .unwrap()
            .replace(h.citizen.as_ref().unwrap().as_str(), who.as_str());
        v.record = serde_json::from_str(&json).unwrap();
    }
    h.citizen = Some(who.clone());
    s.store.put_batch(&versions, None).await.unwrap();
    post(&s, d("2027-01-31")).await;
    let course = s.store.ledger_latest().await.unwrap()[0]
        .course_id
        .0
        .clone();
    let voucher = s.store.vouchers().await.unwrap()[0]
        .voucher
        .number
        .0
        .clone();

    let state = ApiState::new(
        s.store.clone(),
        SecretString::from("ops-token-0123456789"),
        std::sync::Arc::new(Metrics::new()),
    )
    .with_pseudonym_key(
        PseudonymKey::new(SecretString::from("demo-only-pseudonym-key-change-me-0001")).unwrap(),
    );
    let base = format!("http://{}", spawn_server(router(state, None)).await);
    let client = reqwest::Client::new();
    let get = |path: String, token: Option<&'static str>| {
        let mut r = client.get(format!("{base}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let token = Some("ops-token-0123456789");
    assert_eq!(
        get(format!("/explain/course/{course}"), None)
            .await
            .unwrap()
            .status(),
        401
    );
    let r = get(format!("/explain/course/{course}"), token)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c: serde_json::Value = r.json().await.unwrap();
    assert_eq!(c["in_force"]["entry"]["decision"]["kind"], "development");
    assert_eq!(
        c["in_force"]["entry"]["decision"]["tariff"]["amount"],
        "250.00"
    );
    assert_eq!(
        get("/explain/course/nope".into(), token)
            .await
            .unwrap()
            .status(),
        404
    );
    let r = get(format!("/explain/voucher/{voucher}"), token)
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["amount"], "7000.00"); // 28 days x 250.00 in January
    assert_eq!(v["adds_up"], true);
    // The CPR goes in the body, never the URL; an answer never carries it.
    let r = client
        .post(format!("{base}/explain/citizen"))
        .bearer_auth("ops-token-0123456789")
        .json(&serde_json::json!({"cpr": "010190-1234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(!text.contains("0101901234") && !text.contains("010190-1234"));
    let list: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["course_id"], course);
    let r = client
        .post(format!("{base}/explain/citizen"))
        .bearer_auth("ops-token-0123456789")
        .json(&serde_json::json!({"cpr": "3213991234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(!r.text().await.unwrap().contains("3213991234"));
}

/// Citizen B of the worked examples: stabilisation group 3 from 2027-01-01, 260.00 a day.
fn citizen_b() -> progression_gateway::model::CitizenHistory {
    HistoryBuilder::new(2)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[3, 3, 3], "2026-12-20")
        .build()
}

#[tokio::test]
async fn an_edited_tariff_table_reaches_recorded_courses_only_through_reprice() {
    let mut s = setup(false).await;
    s.store
        .put_batch(&versions_of(&citizen_b()), None)
        .await
        .unwrap();
    post(&s, d("2027-01-20")).await;
    let vouchers = s.store.vouchers().await.unwrap();
    assert_eq!(vouchers.len(), 1);
    assert_eq!(vouchers[0].voucher.amount.to_string(), "5200.00"); // 20 x 260.00

    // Someone edits the 2027 table: group 3 stabilisation 260.00 -> 270.00.
    let tariffs = s.dir.path().join("mappings/tariffs.toml");
    let text = std::fs::read_to_string(&tariffs).unwrap();
    std::fs::write(
        &tariffs,
        text.replacen(
            "stabilisation = \"260.00\"",
            "stabilisation = \"270.00\"",
            1,
        ),
    )
    .unwrap();
    s.loaded = config::load(&s.config).unwrap();
    let (out, err, ok) = cli(&s, &["validate"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("the care tariff table 2027 has changed since 1 recorded decision(s)")
            && out.contains("reprice --table care/2027"),
        "{out}"
    );
    // The next night keeps the locked tariff: no correction, and the finding says why.
    let eval = progression_gateway::pipeline::evaluate(
        &s.store,
        &s.loaded.mappings,
        s.loaded.settings.time_zone,
        d("2027-01-21"),
    )
    .await
    .unwrap();
    assert!(eval.findings.iter().any(|f| matches!(
        f,
        progression_gateway::model::Finding::TariffTableChanged {
            year: 2027,
            decisions: 1,
            ..
        }
    )));
    post(&s, d("2027-01-21")).await;
    let vouchers = s.store.vouchers().await.unwrap();
    assert_eq!(vouchers.len(), 2);
    assert_eq!(vouchers[1].voucher.amount.to_string(), "260.00");

    // A dry run shows the effect per team and month and records nothing.
    let rows = s.store.ledger_rows().await.unwrap();
    let (out, err, ok) = cli(
        &s,
        &[
            "reprice",
            "--table",
            "care/2027",
            "--reason",
            "Byrådet 2027-01-21",
            "--dry-run",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("1 recorded decision(s)"), "{out}");
    // January: 31 days x 10.00 more; the course runs 182 days to 2027-07-01.
    assert!(
        out.contains("2027-01") && out.contains("310,00 kr."),
        "{out}"
    );
    assert!(
        out.contains("2027-07") && out.contains("10,00 kr."),
        "{out}"
    );
    assert!(out.contains("1.820,00 kr."), "total 182 x 10.00:\n{out}");
    assert!(out.contains("Dry run"), "{out}");
    assert_eq!(s.store.ledger_rows().await.unwrap(), rows);
    // Without --reason it is refused by clap; with an empty one by the command.
    let (_, err, ok) = cli(&s, &["reprice", "--table", "care/2027", "--reason", " "]);
    assert!(!ok && err.contains("--reason"), "{err}");
    let (_, err, ok) = cli(&s, &["reprice", "--table", "care/1999", "--reason", "x"]);
    assert!(!ok && err.contains("no care tariff table 1999"), "{err}");

    // Applied: one supersession with the reason; the next night posts the correction.
    let (out, err, ok) = cli(
        &s,
        &[
            "reprice",
            "--table",
            "care/2027",
            "--reason",
            "Byrådet 2027-01-21",
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("Re-priced: 1 supersession(s)"), "{out}");
    assert_eq!(s.store.ledger_rows().await.unwrap(), rows + 1);
    post(&s, d("2027-01-22")).await;
    let vouchers = s.store.vouchers().await.unwrap();
    assert_eq!(vouchers.len(), 3);
    // 22 x 270.00 = 5,940.00, minus 5,460.00 posted.
    assert_eq!(vouchers[2].voucher.amount.to_string(), "480.00");
    let id = s.store.ledger_latest().await.unwrap()[0]
        .course_id
        .0
        .clone();
    let c = progression_gateway::explain::course(&s.store, &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.revisions.len(), 2);
    assert_eq!(
        c.revisions[1].reason,
        "repriced with table care/2027: Byrådet 2027-01-21"
    );
    // Applying again finds nothing left to re-price and records nothing.
    let (out, _, ok) = cli(
        &s,
        &["reprice", "--table", "care/2027", "--reason", "again"],
    );
    assert!(ok);
    assert!(out.contains("0 recorded decision(s)"), "{out}");
    assert_eq!(s.store.ledger_rows().await.unwrap(), rows + 1);
    let (out, _, _) = cli(&s, &["validate"]);
    assert!(!out.contains("has changed since"), "{out}");
}

#[tokio::test]
async fn the_reprice_preview_is_what_the_next_night_posts() {
    let mut s = setup(false).await;
    let b = citizen_b();
    let later = HistoryBuilder::new(4)
        .team("syd", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-10", None)
        .levels(&[3, 3, 3], "2026-12-20")
        .build();
    for h in [&b, &later] {
        s.store.put_batch(&versions_of(h), None).await.unwrap();
    }
    post(&s, d("2027-01-31")).await;
    let before = s.store.vouchers().await.unwrap().len();
    let tariffs = s.dir.path().join("mappings/tariffs.toml");
    let text = std::fs::read_to_string(&tariffs).unwrap();
    std::fs::write(
        &tariffs,
        text.replacen(
            "stabilisation = \"260.00\"",
            "stabilisation = \"265.00\"",
            1,
        ),
    )
    .unwrap();
    s.loaded = config::load(&s.config).unwrap();
    let (json, err, ok) = cli(
        &s,
        &[
            "reprice",
            "--table",
            "care/2027",
            "--reason",
            "x",
            "--format",
            "json",
        ],
    );
    assert!(ok, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let january: std::collections::BTreeMap<String, String> = plan["effects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["month"] == "2027-01")
        .map(|e| {
            (
                e["team"].as_str().unwrap().to_owned(),
                e["difference"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // nord: 31 days x 5.00; syd: 22 days x 5.00.
    assert_eq!(january["nord"], "155.00");
    assert_eq!(january["syd"], "110.00");
    post(&s, d("2027-01-31")).await;
    let vouchers = s.store.vouchers().await.unwrap();
    let posted: std::collections::BTreeMap<String, String> = vouchers[before..]
        .iter()
        .map(|v| (v.voucher.team.clone(), v.voucher.amount.to_string()))
        .collect();
    assert_eq!(posted, january, "the preview is what is posted");
}
