//! The operations HTTP server over real HTTP on loopback, with a real SQLite file: tokens,
//! liveness, readiness, the OpenMetrics exposition, the run journal, and the push endpoint
//! merged into the same router.

use crate::common::spawn_server;
use chrono::{DateTime, Duration, Utc};
use progression_gateway::api::{ApiState, Metrics, router};
use progression_gateway::config;
use progression_gateway::model::YearMonth;
use progression_gateway::run::Report;
use progression_gateway::sinks::finance::{
    DebitCredit, Voucher, VoucherLine, VoucherNumber, VoucherState,
};
use progression_gateway::sources::fhir_push::{self, PushConfig};
use progression_gateway::sources::ingest::Ingestor;
use progression_gateway::store::{NewRun, Outcome, RunCounts, Store, Trigger};
use rust_decimal::Decimal;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TOKEN: &str = "ops-token-of-enough-length-4711";
const PUSH_TOKEN: &str = "push-token-of-enough-length-0815";

struct Server {
    dir: tempfile::TempDir,
    store: Store,
    metrics: Arc<Metrics>,
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(TOKEN, false).await
    }

    /// A server over a fresh SQLite file; with `push`, the push router merged in.
    async fn start_with(token: &str, push: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&format!("sqlite://{}", dir.path().join("gw.db").display()))
            .await
            .unwrap();
        let metrics = Arc::new(Metrics::new());
        let push = push.then(|| {
            fhir_push::router(
                ingestor(store.clone()),
                PushConfig::new(SecretString::from(PUSH_TOKEN)),
            )
        });
        let state = ApiState::new(store.clone(), SecretString::from(token), metrics.clone());
        let app = router(state, push);
        let addr = spawn_server(app).await;
        Server {
            dir,
            store,
            metrics,
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    /// Status and JSON body of an authorised GET.
    async fn json(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self.get(path, Some(TOKEN)).await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

fn ingestor(store: Store) -> Ingestor {
    let l =
        config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")).unwrap();
    Ingestor::new(
        store,
        l.settings.pseudonym_key.clone(),
        l.settings.time_zone,
        Arc::new(l.mappings.clone()),
        "push",
    )
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/klgateway")
}

/// Journals a run of `job` with one step, started `minutes_ago`; finished with `outcome`
/// a minute later unless `outcome` is `None` (still running).
async fn journal(store: &Store, job: &str, outcome: Option<Outcome>, minutes_ago: i64) -> i64 {
    let started = Utc::now() - Duration::minutes(minutes_ago);
    let id = store
        .start_run(&NewRun {
            job,
            trigger: Trigger::Manual,
            scheduled_for: None,
            as_of: None,
            dry_run: false,
            holder: "test:1:0",
            started_at: started,
        })
        .await
        .unwrap();
    store.start_step(id, 1, "pull", started).await.unwrap();
    if let Some(outcome) = outcome {
        let ended = started + Duration::minutes(1);
        let counts = RunCounts {
            records_pulled: 3,
            ..RunCounts::default()
        };
        let errors = match outcome {
            Outcome::Ok => vec![],
            _ => vec!["the source did not answer".to_owned()],
        };
        // An abandoned run's daemon went away: its step was never finished.
        if outcome != Outcome::Abandoned {
            store
                .finish_step(id, 1, ended, outcome, &counts, &errors)
                .await
                .unwrap();
        }
        store
            .finish_run(id, ended, outcome, &counts, &errors)
            .await
            .unwrap();
    }
    id
}

fn voucher(number: VoucherNumber, amount: &str) -> Voucher {
    let amount: Decimal = amount.parse().unwrap();
    let day = "2027-01-05".parse().unwrap();
    let line = |line_no, side, amount: Decimal, cc: &str| VoucherLine {
        line_no,
        side,
        amount,
        gl_account: "53026000".into(),
        cost_centre: progression_gateway::domain::CostCentre::parse(cc).unwrap(),
        text: "Takst nord care 2027-01".into(),
    };
    Voucher {
        number,
        team: "nord".into(),
        track: progression_gateway::domain::Track::Care,
        month: YearMonth {
            year: 2027,
            month: 1,
        },
        amount,
        document_date: day,
        posting_date: day,
        value_date: day,
        header_text: "Progression 2027-01".into(),
        lines: vec![
            line(1, DebitCredit::Debit, amount, "1000"),
            line(2, DebitCredit::Credit, -amount, "1001"),
        ],
    }
}

/// One sample of an exposition: name and labels.
type Sample = (String, BTreeMap<String, String>);

/// Parses OpenMetrics text line by line: every comment is `# HELP`, `# TYPE`, `# UNIT` or the
/// final `# EOF`; every other line is `name{labels} value` with a numeric value.
fn parse_exposition(text: &str) -> BTreeMap<Sample, f64> {
    let is_name = |s: &str| {
        !s.is_empty()
            && s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    assert!(text.ends_with("# EOF\n"), "no final # EOF:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    let mut samples = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(comment) = line.strip_prefix('#') {
            if *line == "# EOF" {
                assert_eq!(i, lines.len() - 1, "# EOF before the end");
                continue;
            }
            let mut parts = comment.trim_start().splitn(3, ' ');
            let kind = parts.next().unwrap();
            assert!(
                ["HELP", "TYPE", "UNIT"].contains(&kind),
                "bad comment: {line}"
            );
            assert!(is_name(parts.next().unwrap_or("")), "bad comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in `{line}`"));
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in `{line}`"));
                let mut labels = BTreeMap::new();
                for pair in inner.split(',') {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label in `{line}`"));
                    assert!(is_name(k), "bad label name in `{line}`");
                    let v = v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or_else(|| panic!("unquoted label value in `{line}`"));
                    labels.insert(k.to_owned(), v.to_owned());
                }
                (name, labels)
            }
        };
        assert!(is_name(name), "bad metric name in `{line}`");
        let previous = samples.insert((name.to_owned(), labels), value);
        assert!(previous.is_none(), "repeated sample `{line}`");
    }
    samples
}

fn sample(name: &str, labels: &[(&str, &str)]) -> Sample {
    (
        format!("progression_gateway_{name}"),
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

async fn scrape(server: &Server) -> BTreeMap<Sample, f64> {
    let response = server.get("/metrics", Some(TOKEN)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    parse_exposition(&response.text().await.unwrap())
}

#[tokio::test]
async fn healthz_answers_without_a_token() {
    let server = Server::start().await;
    let response = server.get("/healthz", None).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn every_other_endpoint_wants_the_token_and_never_echoes_it() {
    let server = Server::start().await;
    let wrong = format!("{TOKEN}x");
    for path in ["/readyz", "/metrics", "/runs", "/runs?last=abc"] {
        for token in [None, Some(wrong.as_str()), Some(&TOKEN[..TOKEN.len() - 1])] {
            let response = server.get(path, token).await;
            assert_eq!(response.status(), 401, "{path} with {token:?}");
            let challenge = response.headers()["www-authenticate"].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            let body: serde_json::Value = response.json().await.unwrap();
            let text = body.to_string();
            assert!(body["error"].is_string(), "{text}");
            assert!(!text.contains(&TOKEN[..TOKEN.len() - 1]), "{text}");
        }
        // Another scheme with the right token is no bearer token.
        let response = server
            .client
            .get(format!("{}{path}", server.base))
            .header("authorization", format!("Basic {TOKEN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        assert!(!response.text().await.unwrap().contains(TOKEN));
        // And the right one gets in.
        let response = server.get(path, Some(TOKEN)).await;
        assert_ne!(response.status(), 401, "{path}");
        assert!(!response.text().await.unwrap().contains(TOKEN), "{path}");
    }
}

#[tokio::test]
async fn an_empty_configured_token_lets_nobody_in() {
    let server = Server::start_with("", false).await;
    for token in [None, Some(""), Some(TOKEN)] {
        assert_eq!(server.get("/readyz", token).await.status(), 401);
    }
    assert_eq!(server.get("/healthz", None).await.status(), 200);
}

#[tokio::test]
async fn readiness_follows_the_newest_finished_run() {
    let server = Server::start().await;
    let (status, body) = server.json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["store"], "ok");
    assert!(body["last_run"].is_null(), "{body}");

    let ok = journal(&server.store, "nightly", Some(Outcome::Ok), 30).await;
    // A run still going is not finished: the ok one is shown.
    journal(&server.store, "pull", None, 5).await;
    let (status, body) = server.json("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["last_run"]["id"], ok);
    assert_eq!(body["last_run"]["job"], "nightly");
    assert_eq!(body["last_run"]["outcome"], "ok");
    assert!(body["last_run"]["started_at"].is_string());
    assert!(body["last_run"]["ended_at"].is_string());

    let failed = journal(&server.store, "nightly", Some(Outcome::Failed), 20).await;
    let (status, body) = server.json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["ready"], false);
    assert_eq!(body["store"], "ok");
    assert_eq!(body["last_run"]["id"], failed);
    assert_eq!(body["last_run"]["outcome"], "failed");

    journal(&server.store, "nightly", Some(Outcome::Partial), 10).await;
    let (status, body) = server.json("/readyz").await;
    assert_eq!(status, 200, "a partial run is ready: {body}");

    journal(&server.store, "pull", Some(Outcome::Abandoned), 8).await;
    let (status, body) = server.json("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["last_run"]["outcome"], "abandoned");
}

#[tokio::test]
async fn without_a_store_readiness_fails_and_metrics_still_serve_the_process_counters() {
    let server = Server::start().await;
    server.metrics.observe(&Report {
        id: 1,
        job: "nightly".into(),
        outcome: Outcome::Ok,
        counts: RunCounts {
            vouchers_sent: 4,
            ..RunCounts::default()
        },
        errors: vec![],
        findings: vec![],
        interrupted: false,
        post: Default::default(),
    });
    server.store.close().await;

    let response = server.get("/readyz", Some(TOKEN)).await;
    assert_eq!(response.status(), 503);
    let text = response.text().await.unwrap();
    let dir = server.dir.path().display().to_string();
    assert!(!text.contains(&dir) && !text.contains("sqlite"), "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["store"], "unreachable");
    assert!(body["last_run"].is_null());

    let metrics = scrape(&server).await;
    assert_eq!(metrics[&sample("store_up", &[])], 0.0);
    assert_eq!(metrics[&sample("vouchers_sent_total", &[])], 4.0);
    assert_eq!(
        metrics[&sample("runs_total", &[("job", "nightly"), ("outcome", "ok")])],
        1.0
    );
    assert!(
        !metrics
            .keys()
            .any(|(name, _)| name.contains("journal_runs") || name.contains("outbox")),
        "{metrics:?}"
    );

    let response = server.get("/runs", Some(TOKEN)).await;
    assert_eq!(response.status(), 503);
    assert!(!response.text().await.unwrap().contains(&dir));
}

#[tokio::test]
async fn metrics_carry_the_process_counters_and_what_the_store_holds() {
    let server = Server::start().await;
    let store = &server.store;
    let empty = scrape(&server).await;
    assert_eq!(empty[&sample("store_up", &[])], 1.0);
    assert!(!empty.contains_key(&sample(
        "last_success_timestamp_seconds",
        &[("job", "nightly")]
    )));
    assert!(!empty.contains_key(&sample("seconds_since_last_success", &[("job", "nightly")])));

    // Process counters.
    let report = |job: &str, outcome, counts, errors: usize| Report {
        id: 0,
        job: job.into(),
        outcome,
        counts,
        errors: vec!["an error".to_owned(); errors],
        findings: vec![],
        interrupted: false,
        post: Default::default(),
    };
    server.metrics.observe(&report(
        "nightly",
        Outcome::Partial,
        RunCounts {
            records_pulled: 10,
            records_rejected: 2,
            vouchers_sent: 3,
            vouchers_accepted: 2,
            vouchers_rejected: 1,
            decisions_written: 5,
            ..RunCounts::default()
        },
        2,
    ));
    server.metrics.observe(&report(
        "nightly",
        Outcome::Ok,
        RunCounts {
            records_pulled: 1,
            vouchers_sent: 1,
            ..RunCounts::default()
        },
        0,
    ));
    server
        .metrics
        .observe(&report("pull", Outcome::Failed, RunCounts::default(), 1));

    // The journal and the outbox.
    journal(store, "nightly", Some(Outcome::Ok), 50).await;
    let last_ok = journal(store, "nightly", Some(Outcome::Ok), 40).await;
    journal(store, "nightly", Some(Outcome::Failed), 30).await;
    journal(store, "pull", Some(Outcome::Partial), 20).await;
    journal(store, "pull", None, 1).await;
    let made = store
        .create_vouchers(2027, |first| {
            Ok::<_, String>(
                (0..3)
                    .map(|i| voucher(VoucherNumber::new(2027, first + i), "100.00"))
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

    let m = scrape(&server).await;
    let v = |name: &str, labels: &[(&str, &str)]| {
        *m.get(&sample(name, labels))
            .unwrap_or_else(|| panic!("{name} {labels:?} missing in {m:?}"))
    };
    assert_eq!(
        v("runs_total", &[("job", "nightly"), ("outcome", "partial")]),
        1.0
    );
    assert_eq!(
        v("runs_total", &[("job", "nightly"), ("outcome", "ok")]),
        1.0
    );
    assert_eq!(
        v("runs_total", &[("job", "pull"), ("outcome", "failed")]),
        1.0
    );
    assert_eq!(v("records_pulled_total", &[("job", "nightly")]), 11.0);
    assert_eq!(v("records_pulled_total", &[("job", "pull")]), 0.0);
    assert_eq!(v("records_rejected_total", &[("job", "nightly")]), 2.0);
    assert_eq!(v("vouchers_sent_total", &[]), 4.0);
    assert_eq!(v("vouchers_accepted_total", &[]), 2.0);
    assert_eq!(v("vouchers_rejected_total", &[]), 1.0);
    assert_eq!(v("decisions_written_total", &[]), 5.0);
    assert_eq!(v("errors_total", &[("job", "nightly")]), 2.0);
    assert_eq!(v("errors_total", &[("job", "pull")]), 1.0);

    // The gauges say what the store says.
    let outcomes = store.run_outcome_counts().await.unwrap();
    assert_eq!(outcomes.len(), 4, "{outcomes:?}");
    let journal_samples = m
        .keys()
        .filter(|(name, _)| name == "progression_gateway_journal_runs")
        .count();
    assert_eq!(journal_samples, outcomes.len());
    for (job, outcome, n) in &outcomes {
        assert_eq!(
            v(
                "journal_runs",
                &[("job", job), ("outcome", outcome.as_str())]
            ),
            *n as f64
        );
    }
    assert_eq!(
        v("journal_runs", &[("job", "nightly"), ("outcome", "ok")]),
        2.0
    );
    assert_eq!(
        v("journal_runs", &[("job", "pull"), ("outcome", "running")]),
        1.0
    );
    let states = store.voucher_state_counts().await.unwrap();
    assert_eq!(states.len(), 2, "{states:?}");
    for (state, n) in &states {
        assert_eq!(v("outbox_vouchers", &[("state", state)]), *n as f64);
    }
    assert_eq!(v("outbox_vouchers", &[("state", "pending")]), 2.0);
    assert_eq!(v("outbox_vouchers", &[("state", "accepted")]), 1.0);

    let ended: DateTime<Utc> = store
        .runs(10, None)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.id == last_ok)
        .unwrap()
        .ended_at
        .unwrap();
    assert_eq!(store.last_success().await.unwrap(), Some(ended));
    let stamp = v("last_success_timestamp_seconds", &[("job", "nightly")]);
    assert!(
        (stamp - ended.timestamp_millis() as f64 / 1000.0).abs() < 0.01,
        "{stamp} vs {ended}"
    );
    let since = v("seconds_since_last_success", &[("job", "nightly")]);
    let expected = (Utc::now() - ended).num_seconds() as f64;
    assert!(
        since > 0.0 && (since - expected).abs() < 30.0,
        "{since} vs {expected}"
    );
    assert_eq!(v("store_up", &[]), 1.0);
}

#[tokio::test]
async fn runs_lists_the_journal_newest_first() {
    let server = Server::start().await;
    let store = &server.store;
    let (status, body) = server.json("/runs").await;
    assert_eq!((status, body), (200, serde_json::json!([])));

    let first = journal(store, "nightly", Some(Outcome::Ok), 30).await;
    let second = journal(store, "pull", Some(Outcome::Partial), 20).await;
    let third = journal(store, "nightly", None, 10).await;

    let (status, body) = server.json("/runs?last=2").await;
    assert_eq!(status, 200, "{body}");
    let expected = serde_json::to_value(store.runs(2, None).await.unwrap()).unwrap();
    assert_eq!(body, expected);
    let ids: Vec<i64> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [third, second]);
    assert_eq!(body[1]["steps"][0]["step"], "pull");
    assert_eq!(body[1]["errors"][0], "the source did not answer");

    let (status, body) = server.json("/runs").await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().unwrap().len(), 3);

    let (status, body) = server.json("/runs?job=nightly&last=1000").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::to_value(store.runs(1000, Some("nightly")).await.unwrap()).unwrap()
    );
    let ids: Vec<i64> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [third, first]);

    for bad in [
        "last=abc",
        "last=0",
        "last=1001",
        "last=-3",
        "last=2&last=3",
        "job=",
    ] {
        let (status, body) = server.json(&format!("/runs?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string(), "{bad}: {body}");
    }
}

#[tokio::test]
async fn the_push_endpoint_is_served_alongside_with_its_own_token() {
    let server = Server::start_with(TOKEN, true).await;
    assert!(server.store.citizens().await.unwrap().is_empty());
    let body = std::fs::read(testdata().join("DeliveryReport-JensHansen-new-3.xml")).unwrap();
    let post = |token: &str| {
        server
            .client
            .post(format!("{}/fhir/Bundle", server.base))
            .bearer_auth(token)
            .header("content-type", "application/fhir+xml")
            .body(body.clone())
            .send()
    };

    // The operations token is not the push token, and the other way round.
    let refused = post(TOKEN).await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(server.store.citizens().await.unwrap().is_empty());
    assert_eq!(server.get("/readyz", Some(PUSH_TOKEN)).await.status(), 401);

    let stored = post(PUSH_TOKEN).await.unwrap();
    assert!(stored.status().is_success(), "{}", stored.status());
    let text = stored.text().await.unwrap();
    assert!(text.contains("OperationOutcome"), "{text}");
    assert!(!server.store.citizens().await.unwrap().is_empty());

    // The operations endpoints are still there.
    assert_eq!(server.get("/healthz", None).await.status(), 200);
    assert_eq!(server.get("/readyz", Some(TOKEN)).await.status(), 200);
}
