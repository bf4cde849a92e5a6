//! The daemon, `run` and `runs`: jobs on schedules against the simulated care system, leases
//! shared by two daemons on one PostgreSQL, catch-up after downtime, a clean stop on SIGTERM.

use chrono::{DateTime, NaiveDate, Utc};
use progression_gateway::config::Loaded;
use progression_gateway::run::Context;
use progression_gateway::sim::care::{Fault, ServerConfig, SimConfig, SimServer, generate, serve};
use progression_gateway::store::{Outcome, RunRecord, Store, Trigger};
use sqlx::{AssertSqlSafe, Connection};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const PG_ENV: &str = "PROGRESSION_GATEWAY_TEST_PG";
const SECRET: &str = "secret-of-the-daemon-test";

async fn sim_server(citizens: usize, days: u32) -> SimServer {
    let m = generate(&SimConfig {
        seed: 11,
        citizens,
        start: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        days,
        sor_codes: vec!["123456789012345".into(), "543210987654321".into()],
        time_zone: chrono_tz::Europe::Copenhagen,
    });
    serve(
        Arc::new(m),
        ServerConfig {
            client_id: "gateway".into(),
            client_secret: SECRET.into(),
            page_size: 100,
            token_ttl: Duration::from_secs(300),
        },
    )
    .await
    .unwrap()
}

/// The example configuration with the store at `url`, the simulated FHIR server as a source,
/// vouchers to a folder, and `extra` (jobs, daemon settings) appended.
fn config(dir: &Path, url: &str, sim: &SimServer, extra: &str) -> PathBuf {
    let example = std::fs::read_to_string(Path::new(ROOT).join("config/example.toml")).unwrap();
    std::fs::write(dir.join("care.secret"), SECRET).unwrap();
    let text = example
        .replace(
            "dir = \"../mappings\"",
            &format!("dir = \"{ROOT}/mappings\""),
        )
        .replace(
            "url = \"sqlite://progression-gateway.db\"",
            &format!("url = \"{url}\""),
        )
        + &format!(
            r#"
[[source]]
name = "care-fhir"
secret_file = "care.secret"
[source.fhir_pull]
base_url = "{}"
token_url = "{}"
client_id = "gateway"
page_size = 100
backoff_initial_ms = 10
backoff_max_ms = 100

[finance.format.opus]
municipality_code = "0751"
data_provider_id = "PGW"
company_code = "0751"
sender = "PROGRESSION-GATEWAY"
receiver = "KMD-OPUS"

[finance.transport]
kind = "folder"
dir = "opus-out"
reply_dir = "opus-in"

{extra}
"#,
            sim.base_url, sim.token_url
        );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::create_dir_all(dir.join("opus-out")).unwrap();
    std::fs::create_dir_all(dir.join("opus-in")).unwrap();
    path
}

fn load(path: &Path) -> Loaded {
    progression_gateway::config::load(path).unwrap_or_else(|e| panic!("{e}"))
}

/// A daemon in this process: its own connection pool and holder name.
struct InProcess {
    holder: String,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn start_daemon(loaded: &Loaded) -> InProcess {
    let store = Store::connect(&loaded.settings.database_url).await.unwrap();
    let ctx = Context::new(store, Arc::new(loaded.clone()));
    let holder = ctx.holder.clone();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let metrics = Arc::new(progression_gateway::api::Metrics::new());
    let task = tokio::spawn(progression_gateway::daemon::serve(ctx, metrics, rx));
    InProcess { holder, stop, task }
}

impl InProcess {
    async fn stop(self) {
        self.stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("the daemon stops")
            .unwrap()
            .unwrap();
    }
}

/// Waits until `check` holds of the journal (at most `secs`).
async fn wait_for(
    store: &Store,
    secs: u64,
    check: impl Fn(&[RunRecord]) -> bool,
) -> Vec<RunRecord> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let runs = store.runs(1000, None).await.unwrap();
        if check(&runs) || tokio::time::Instant::now() > deadline {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A fresh PostgreSQL database for one test, or `None` when the variable is not set.
async fn postgres_database() -> Option<(String, String, String)> {
    let server = std::env::var(PG_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())?;
    let name = format!(
        "pgw_daemon_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    Some((server.clone(), name.clone(), format!("{base}/{name}")))
}

async fn drop_database(server: &str, name: &str) {
    let mut admin = sqlx::PgConnection::connect(server).await.unwrap();
    let _ = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_on_one_postgres_never_run_a_job_at_once() {
    let Some((server, name, url)) = postgres_database().await else {
        println!("skipped: {PG_ENV} not set");
        return;
    };
    let sim = sim_server(12, 20).await;
    // Every search answers slowly, so runs last longer than the one second between them.
    sim.faults
        .fail_next(100_000, Fault::Slow(Duration::from_millis(700)));
    let dir = tempfile::tempdir().unwrap();
    let path = config(
        dir.path(),
        &url,
        &sim,
        r#"
[daemon]
lease_secs = 5

[[job]]
name = "busy"
schedule = "* * * * * *"
steps = ["pull", "compute"]
"#,
    );
    let loaded = load(&path);
    let a = start_daemon(&loaded).await;
    let b = start_daemon(&loaded).await;
    let store = Store::connect(&url).await.unwrap();
    wait_for(&store, 30, |runs| {
        runs.iter()
            .filter(|r| r.outcome != Outcome::Running)
            .count()
            >= 4
    })
    .await;
    // Then the first daemon goes away: the second carries on alone.
    let (a_holder, b_holder) = (a.holder.clone(), b.holder.clone());
    a.stop().await;
    let before = store.runs(1000, None).await.unwrap().len();
    wait_for(&store, 30, |runs| {
        runs.len() >= before + 2 && runs.iter().all(|r| r.outcome != Outcome::Running)
    })
    .await;
    b.stop().await;
    let runs = store.runs(1000, Some("busy")).await.unwrap();
    assert!(runs.len() >= 4, "only {} runs: {runs:#?}", runs.len());
    assert!(
        runs.iter()
            .all(|r| r.outcome != Outcome::Running && r.ended_at.is_some())
    );
    // Never two at once: sorted by start, each run ends before the next starts.
    let mut sorted = runs.clone();
    sorted.sort_by_key(|r| r.started_at);
    for w in sorted.windows(2) {
        assert!(
            w[0].ended_at.unwrap() <= w[1].started_at,
            "runs {} ({}) and {} ({}) overlap",
            w[0].id,
            w[0].holder,
            w[1].id,
            w[1].holder
        );
    }
    // Each scheduled instant ran once.
    let mut instants: Vec<DateTime<Utc>> = runs.iter().filter_map(|r| r.scheduled_for).collect();
    let n = instants.len();
    instants.sort();
    instants.dedup();
    assert_eq!(instants.len(), n, "a scheduled instant ran twice");
    // Only these two daemons ran it, and the second did (at least after the first stopped).
    assert!(
        runs.iter()
            .all(|r| r.holder == a_holder || r.holder == b_holder)
    );
    assert!(runs.len() >= before + 2, "the second daemon carried on");
    assert!(runs.iter().any(|r| r.holder == b_holder));
    let by_a = runs.iter().filter(|r| r.holder == a_holder).count();
    println!(
        "{} runs: {by_a} by the first daemon, {} by the second",
        runs.len(),
        runs.len() - by_a
    );
    store.close().await;
    sim.shutdown().await;
    drop_database(&server, &name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_run_is_caught_up_once_after_downtime() {
    let sim = sim_server(4, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let path = config(
        dir.path(),
        &url,
        &sim,
        r#"
[[job]]
name = "nightly"
schedule = "30 2 * * *"
steps = ["pull", "compute"]
"#,
    );
    let loaded = load(&path);
    let store = Store::connect(&url).await.unwrap();
    // The last run any daemon claimed was five days ago: four nights were missed.
    let now = Utc::now();
    let last = now - chrono::Duration::days(5);
    store.set_last_scheduled("nightly", last).await.unwrap();
    let daemon = start_daemon(&loaded).await;
    wait_for(&store, 30, |runs| {
        runs.iter().any(|r| r.outcome != Outcome::Running)
    })
    .await;
    // Give it time to (wrongly) catch up a second night.
    tokio::time::sleep(Duration::from_secs(1)).await;
    daemon.stop().await;
    let runs = store.runs(100, None).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = &runs[0];
    assert_eq!(run.trigger, Trigger::CatchUp);
    assert_eq!(run.outcome, Outcome::Ok, "{:?}", run.errors);
    let schedule: progression_gateway::schedule::JobSchedule = "30 2 * * *".parse().unwrap();
    let expected = schedule
        .last_missed(last, run.started_at, chrono_tz::Europe::Copenhagen)
        .unwrap();
    assert_eq!(run.scheduled_for, Some(expected), "the latest missed night");
    assert_eq!(
        run.as_of,
        Some(
            expected
                .with_timezone(&chrono_tz::Europe::Copenhagen)
                .date_naive()
                - chrono::Days::new(1)
        )
    );
    assert!(run.counts.records_pulled > 0);
    assert_eq!(
        store.last_scheduled("nightly").await.unwrap(),
        Some(expected)
    );
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_catch_up_off_a_missed_run_is_not_run() {
    let sim = sim_server(2, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let path = config(
        dir.path(),
        &url,
        &sim,
        r#"
[daemon]
catch_up = false

[[job]]
name = "nightly"
schedule = "30 2 * * *"
steps = ["compute"]
"#,
    );
    let loaded = load(&path);
    assert!(!loaded.settings.daemon.jobs[0].catch_up);
    let store = Store::connect(&url).await.unwrap();
    store
        .set_last_scheduled("nightly", Utc::now() - chrono::Duration::days(3))
        .await
        .unwrap();
    let daemon = start_daemon(&loaded).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    daemon.stop().await;
    assert!(store.runs(10, None).await.unwrap().is_empty());
    store.close().await;
    sim.shutdown().await;
}

fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_step_in_flight_finish_then_exits_0() {
    let sim = sim_server(8, 20).await;
    // The pull step takes seconds: every search answers after 1.5 s.
    sim.faults
        .fail_next(100_000, Fault::Slow(Duration::from_millis(1500)));
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let path = config(
        dir.path(),
        &url,
        &sim,
        r#"
[[job]]
name = "often"
schedule = "* * * * * *"
steps = ["pull", "compute", "post"]
"#,
    );
    // The schema first (two processes migrating a fresh SQLite file at once would race).
    let store = Store::connect(&url).await.unwrap();
    let mut child = binary()
        .args(["--config", path.to_str().unwrap(), "daemon"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the pull step is in flight.
    let runs = wait_for(&store, 30, |runs| {
        runs.iter().any(|r| {
            r.steps
                .iter()
                .any(|s| s.step == "pull" && s.outcome == Outcome::Running)
        })
    })
    .await;
    if runs.is_empty() {
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        panic!("no run started: {}", String::from_utf8_lossy(&out.stderr));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let pid_wait = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        (status, err)
    });
    let (status, stderr) = tokio::time::timeout(Duration::from_secs(60), pid_wait)
        .await
        .expect("the daemon exits after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let runs = store.runs(100, None).await.unwrap();
    let run = runs
        .iter()
        .find(|r| r.steps.first().is_some_and(|s| s.step == "pull"))
        .unwrap();
    assert_eq!(run.outcome, Outcome::Interrupted, "{run:#?}");
    let pull = &run.steps[0];
    assert_ne!(pull.outcome, Outcome::Running, "the pull finished");
    assert!(pull.ended_at.is_some());
    assert!(
        pull.counts.records_pulled > 0,
        "the step in flight completed its work"
    );
    assert_eq!(run.steps[1].outcome, Outcome::Skipped);
    assert_eq!(run.steps[2].outcome, Outcome::Skipped);
    assert!(runs.iter().all(|r| r.outcome != Outcome::Running));
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_does_the_nightly_run_once_and_runs_shows_it() {
    let sim = sim_server(10, 40).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let path = config(dir.path(), &url, &sim, "");
    let cfg = path.to_str().unwrap().to_owned();
    let run = {
        let cfg = cfg.clone();
        move |args: &[&str]| {
            let mut all = vec!["--config".to_owned(), cfg.clone()];
            all.extend(args.iter().map(|s| s.to_string()));
            let out = binary().args(&all).output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    // A dry run first: it reads the source, but stores no courses and sends no vouchers.
    let (code, out, err) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["run", "--as-of", "2027-02-09", "--dry-run"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["outcome"], "ok");
    let would = report["counts"]["vouchers_created"].as_u64().unwrap();
    assert!(would > 0, "the dry run would post vouchers");
    assert_eq!(
        std::fs::read_dir(dir.path().join("opus-out"))
            .unwrap()
            .count(),
        0
    );
    let store = Store::connect(&url).await.unwrap();
    assert!(store.vouchers().await.unwrap().is_empty());
    assert!(store.courses().await.unwrap().is_empty());

    let (code, out, err) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["run", "--as-of", "2027-02-09"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["outcome"], "ok", "{report}");
    let vouchers = store.vouchers().await.unwrap();
    assert_eq!(
        report["counts"]["vouchers_created"].as_u64(),
        Some(vouchers.len() as u64)
    );
    assert_eq!(
        report["counts"]["vouchers_created"].as_u64(),
        Some(would),
        "as the dry run said"
    );
    assert_eq!(
        report["counts"]["vouchers_sent"].as_u64(),
        Some(vouchers.len() as u64)
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("opus-out"))
            .unwrap()
            .count(),
        1
    );
    let courses = store.courses().await.unwrap();
    assert_eq!(
        report["counts"]["courses"].as_u64(),
        Some(courses.len() as u64)
    );
    assert_eq!(
        report["counts"]["courses_changed"].as_u64(),
        Some(courses.len() as u64)
    );

    // The journal: two runs, newest first, the dry one marked.
    let (code, out, _) = tokio::task::spawn_blocking({
        let run = run.clone();
        move || run(&["runs", "--format", "json"])
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0));
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[0]["dry_run"], false);
    assert_eq!(runs[1]["dry_run"], true);
    assert_eq!(runs[0]["trigger"], "manual");
    let steps: Vec<&str> = runs[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["pull", "compute", "post", "replies", "decisions", "figures"]
    );
    let (code, table, _) = tokio::task::spawn_blocking(move || run(&["runs", "--last", "1"]))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(table.lines().count(), 2, "{table}");
    assert!(table.lines().nth(1).unwrap().contains("nightly"));

    // A second run the same night: nothing new to pull, no new courses, no new vouchers.
    let (code, out, err) = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || {
            let out = binary()
                .args(["--config", &cfg, "run", "--as-of", "2027-02-09"])
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["counts"]["records_pulled"], 0);
    assert_eq!(report["counts"]["courses_changed"], 0);
    assert_eq!(report["counts"]["vouchers_created"], 0);
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_while_another_process_holds_the_job() {
    let sim = sim_server(2, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let path = config(dir.path(), &url, &sim, "");
    let store = Store::connect(&url).await.unwrap();
    assert!(
        store
            .claim_job(
                "nightly",
                "someone-else",
                None,
                Utc::now(),
                Duration::from_secs(300)
            )
            .await
            .unwrap()
    );
    let out = tokio::task::spawn_blocking(move || {
        binary()
            .args(["--config", path.to_str().unwrap(), "run"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("running in another process"));
    assert!(
        store.runs(10, None).await.unwrap().is_empty(),
        "nothing ran"
    );
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_the_operations_endpoints_and_counts_its_runs() {
    let sim = sim_server(3, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token = "operations-token-of-the-daemon-test";
    std::fs::write(dir.path().join("http.token"), token).unwrap();
    let path = config(
        dir.path(),
        &url,
        &sim,
        &format!(
            r#"
[[job]]
name = "often"
schedule = "*/2 * * * * *"
steps = ["pull", "compute"]

[http]
listen = "127.0.0.1:{port}"
token_file = "http.token"
"#
        ),
    );
    let loaded = load(&path);
    let store = Store::connect(&url).await.unwrap();
    let daemon = start_daemon(&loaded).await;
    wait_for(&store, 30, |runs| {
        runs.iter().any(|r| r.outcome == Outcome::Ok)
    })
    .await;
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let denied = http.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let metrics = http
        .get(format!("{base}/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("progression_gateway_runs_total{")
                && l.contains("job=\"often\"")
                && l.contains("outcome=\"ok\"")),
        "{metrics}"
    );
    assert!(metrics.contains("progression_gateway_seconds_since_last_success"));
    let ready = http
        .get(format!("{base}/readyz"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let runs: serde_json::Value = http
        .get(format!("{base}/runs?last=1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runs[0]["job"], "often");
    daemon.stop().await;
    // Stopped: the port no longer answers.
    assert!(http.get(format!("{base}/healthz")).send().await.is_err());
    store.close().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_old_runs_and_archived_files_and_keeps_the_rest() {
    let sim = sim_server(2, 5).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let landing = dir.path().join("landing");
    for sub in ["archive", "rejected"] {
        std::fs::create_dir_all(landing.join(sub)).unwrap();
    }
    let path = config(
        dir.path(),
        &url,
        &sim,
        r#"
[[source]]
name = "landing"
[source.files]
dir = "landing"

[[job]]
name = "prune"
schedule = "0 4 * * 0"
steps = ["prune"]

[retention]
runs_days = 30
files_days = 10
"#,
    );
    let store = Store::connect(&url).await.unwrap();
    // One run from 40 days ago, one from yesterday.
    for days in [40, 1] {
        let at = Utc::now() - chrono::Duration::days(days);
        let id = store
            .start_run(&progression_gateway::store::NewRun {
                job: "nightly",
                trigger: Trigger::Schedule,
                scheduled_for: Some(at),
                as_of: None,
                dry_run: false,
                holder: "old-daemon",
                started_at: at,
            })
            .await
            .unwrap();
        store
            .finish_run(id, at, Outcome::Ok, &Default::default(), &[])
            .await
            .unwrap();
    }
    // An archived and a rejected file from 20 days ago, an archived one from today.
    for (name, age) in [
        ("archive/old.json", "20 days ago"),
        ("rejected/old.xml", "20 days ago"),
        ("archive/new.json", "now"),
    ] {
        let file = landing.join(name);
        std::fs::write(&file, "{}").unwrap();
        let touched = Command::new("touch")
            .args(["-d", age, file.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(touched.success());
    }
    let out = tokio::task::spawn_blocking(move || {
        binary()
            .args(["--config", path.to_str().unwrap(), "run", "--job", "prune"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["job"], "prune");
    assert_eq!(report["counts"]["runs_pruned"], 1);
    assert_eq!(report["counts"]["files_pruned"], 2);
    assert!(landing.join("archive/new.json").exists());
    assert!(!landing.join("archive/old.json").exists());
    assert!(!landing.join("rejected/old.xml").exists());
    let runs = store.runs(10, None).await.unwrap();
    let jobs: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r.job.as_str(), r.holder.as_str()))
        .collect();
    assert_eq!(runs.len(), 2, "{jobs:?}");
    assert_eq!(runs[0].job, "prune");
    assert_eq!(runs[1].holder, "old-daemon");
    assert!(
        runs[1].started_at > Utc::now() - chrono::Duration::days(2),
        "the recent run kept"
    );
    store.close().await;
    sim.shutdown().await;
}
