//! The fault-injection suite: the binary killed with SIGKILL at seeded random moments.
//!
//! - nightly postings (`post`/`run --as-of`) over each transport (folder, SFTP against a real
//!   OpenSSH server, HTTP) killed night after night while the simulated finance system books
//!   what arrived; then run to completion: every voucher booked once, none lost, and the books
//!   equal the recomputed month totals to the øre;
//! - a large `import` killed again and again, then completed: the store equals a clean import;
//! - `post` started while `run` posts the same night, on SQLite and PostgreSQL: no voucher
//!   made twice;
//! - `run` killed late in the night with a steering figures export to a folder: only whole
//!   files appear, and the night's file is sent once.
//!
//! The seed is printed (`FAULTS_SEED=<n>` replays a run), and so are the trial counts.

use crate::common::stored_versions;
use crate::support::sshd;
use chrono::NaiveDate;
use progression_gateway::config::{self, Loaded};
use progression_gateway::model::IncomeKey;
use progression_gateway::sim::finance::{Books, process_folder, serve_http};
use progression_gateway::sinks::finance::VoucherState;
use progression_gateway::store::Store;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::{Decimal, RoundingStrategy};
use sqlx::{AssertSqlSafe, Connection};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_progression-gateway");
/// The large import of the import trials (a few hundred citizens).
const IMPORT_DATA: Data = Data {
    name: "import",
    citizens: 200,
    days: 20,
};
/// The store of the posting trials: a run long enough to be killed mid-way.
const POSTING_DATA: Data = Data {
    name: "posting",
    citizens: 80,
    days: 35,
};
const POST_TRIALS: usize = 30;
const IMPORT_TRIALS: usize = 20;
const RACE_TRIALS: usize = 20;

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        std::env::var("FAULTS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random)
    })
}

fn rng_for(what: &str) -> ChaCha8Rng {
    let s = seed();
    println!("faults::{what}: seed {s} (replay with FAULTS_SEED={s})");
    let salt: u64 = what
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    ChaCha8Rng::seed_from_u64(s ^ salt)
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

/// The simulated municipality's delivery reports and a store with their clean import, made
/// once for the whole module.
struct Fixture {
    sim: PathBuf,
    db: PathBuf,
    import_time: Duration,
}

struct Data {
    name: &'static str,
    citizens: usize,
    days: u32,
}

fn fixture(data: &'static Data) -> &'static Fixture {
    static IMPORT: OnceLock<Fixture> = OnceLock::new();
    static POSTING: OnceLock<Fixture> = OnceLock::new();
    let cell = if data.name == "import" {
        &IMPORT
    } else {
        &POSTING
    };
    let Data {
        name,
        citizens,
        days,
    } = *data;
    cell.get_or_init(|| {
        remove_stale_fixtures();
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "faults-{name}-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&root).unwrap();
        let db = root.join("clean.db");
        let setup = Setup::new(&root.join("setup"), &sqlite_url(&db), Transport::None);
        let sim = root.join("sim");
        let out = setup
            .cmd(&[
                "simulate",
                "--out",
                sim.to_str().unwrap(),
                "--citizens",
                &citizens.to_string(),
                "--days",
                &days.to_string(),
                "--seed",
                "7",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let started = Instant::now();
        let out = setup
            .cmd(&["import", sim.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let import_time = started.elapsed();
        println!(
            "faults: {name} fixture of {citizens} citizens over {days} days imported in {import_time:?}"
        );
        Fixture {
            sim,
            db,
            import_time,
        }
    })
}

/// The fixtures live as long as the test process; those of test processes that are gone are
/// removed (`faults-<data>-<pid>-<random>` under `CARGO_TARGET_TMPDIR`).
fn remove_stale_fixtures() {
    let Ok(entries) = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR")) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let mut parts = name.split('-');
        if parts.next() != Some("faults") {
            continue;
        }
        let Some(pid) = parts.nth(1).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[derive(Clone)]
enum Transport {
    None,
    Folder {
        dir: PathBuf,
        reply_dir: PathBuf,
    },
    Sftp {
        port: u16,
        user: String,
        key: PathBuf,
        known_hosts: PathBuf,
        dir: PathBuf,
        reply_dir: PathBuf,
    },
    Http {
        url: String,
    },
}

/// A working folder with the repository's mappings and a configuration file naming `store`
/// and the finance transport (replies overdue at once: `resend_after_hours = 0`).
struct Setup {
    dir: PathBuf,
    config: PathBuf,
    store_url: String,
}

impl Setup {
    fn new(dir: &Path, store_url: &str, transport: Transport) -> Setup {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        copy_dir(&root.join("mappings"), &dir.join("mappings"));
        let example = std::fs::read_to_string(root.join("config/example.toml")).unwrap();
        let mut text = example
            .replace("dir = \"../mappings\"", "dir = \"mappings\"")
            .replace(
                "url = \"sqlite://progression-gateway.db\"",
                &format!("url = \"{store_url}\""),
            )
            .replace("level = \"info\"", "level = \"warn\"");
        let finance = "\n[finance]\nresend_after_hours = 0\n\n[finance.format.opus]\n\
             municipality_code = \"0751\"\ndata_provider_id = \"PGW\"\ncompany_code = \"0751\"\n\
             sender = \"PROGRESSION-GATEWAY\"\nreceiver = \"KMD-OPUS\"\n\n[finance.transport]\n";
        match &transport {
            Transport::None => {}
            Transport::Folder { dir, reply_dir } => {
                text.push_str(finance);
                text.push_str(&format!(
                    "kind = \"folder\"\ndir = \"{}\"\nreply_dir = \"{}\"\n",
                    dir.display(),
                    reply_dir.display()
                ));
            }
            Transport::Sftp {
                port,
                user,
                key,
                known_hosts,
                dir,
                reply_dir,
            } => {
                text.push_str(finance);
                text.push_str(&format!(
                    "kind = \"sftp\"\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"{user}\"\n\
                     private_key_file = \"{}\"\nknown_hosts_file = \"{}\"\nremote_dir = \"{}\"\n\
                     reply_dir = \"{}\"\ntimeout_secs = 20\n",
                    key.display(),
                    known_hosts.display(),
                    dir.display(),
                    reply_dir.display()
                ));
            }
            Transport::Http { url } => {
                text.push_str(finance);
                text.push_str(&format!(
                    "kind = \"http\"\nurl = \"{url}\"\ntimeout_secs = 20\n"
                ));
            }
        }
        let config = dir.join("gateway.toml");
        std::fs::write(&config, text).unwrap();
        Setup {
            dir: dir.to_path_buf(),
            config,
            store_url: store_url.to_owned(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(&self.config)
            .arg("--database")
            .arg(&self.store_url)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args).spawn().unwrap()
    }

    fn loaded(&self) -> Loaded {
        config::load(&self.config).unwrap()
    }

    async fn store(&self) -> Store {
        Store::connect(&self.store_url).await.unwrap()
    }
}

/// Kills `child` with SIGKILL after `delay` unless it ended before; whether it was still
/// running (the kill landed mid-run).
async fn kill_after(mut child: Child, delay: Duration) -> bool {
    let deadline = Instant::now() + delay;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let running = child.try_wait().unwrap().is_none();
    // Child::kill sends SIGKILL on Unix.
    let _ = child.kill();
    let _ = child.wait();
    running
}

async fn wait(mut child: Child) -> std::process::ExitStatus {
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 1, 1).unwrap() + chrono::Days::new(u64::from(n))
}

/// The month totals the outbox must hold as of `as_of`, recomputed: the income from the first
/// course day to `as_of`, rounded half away from zero per team, track and month.
async fn month_totals(
    store: &Store,
    loaded: &Loaded,
    as_of: NaiveDate,
) -> BTreeMap<IncomeKey, Decimal> {
    let eval = progression_gateway::pipeline::evaluate(
        store,
        &loaded.mappings,
        loaded.settings.time_zone,
        as_of,
    )
    .await
    .unwrap();
    let first = eval
        .all_courses()
        .iter()
        .map(|c| c.start)
        .min()
        .unwrap_or(as_of)
        .min(as_of);
    eval.income(&loaded.mappings, first, as_of)
        .lines
        .into_iter()
        .map(|(k, l)| {
            (
                k,
                l.amount
                    .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
            )
        })
        .filter(|(_, a)| !a.is_zero())
        .collect()
}

async fn posted_totals(store: &Store) -> BTreeMap<IncomeKey, Decimal> {
    progression_gateway::pipeline::posted(store)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, a)| !a.is_zero())
        .collect()
}

/// No two vouchers of one night for the same team, track and month.
async fn assert_one_voucher_per_key_and_night(store: &Store, context: &str) {
    let mut seen = HashSet::new();
    for v in store.vouchers().await.unwrap() {
        let v = v.voucher;
        let key = (v.team.clone(), v.track, v.month, v.posting_date);
        assert!(
            seen.insert(key.clone()),
            "{context}: two vouchers for the same delta {key:?} (second: {})",
            v.number
        );
    }
}

/// Everything in the outbox accepted, each voucher booked once with its lines, nothing booked
/// that the outbox does not hold, and the books equal the recomputed month totals.
async fn assert_books_settled(
    store: &Store,
    loaded: &Loaded,
    books: &Books,
    as_of: NaiveDate,
    what: &str,
) {
    let outbox = store.vouchers().await.unwrap();
    let unsettled: Vec<_> = outbox
        .iter()
        .filter(|v| v.state != VoucherState::Accepted)
        .map(|v| (v.voucher.number.to_string(), v.state, v.message.clone()))
        .collect();
    assert!(unsettled.is_empty(), "{what}: not accepted: {unsettled:?}");
    let booked = books.vouchers();
    let numbers: HashSet<String> = outbox.iter().map(|v| v.voucher.number.0.clone()).collect();
    let booked_numbers: HashSet<String> = booked.iter().map(|b| b.number.clone()).collect();
    assert_eq!(booked.len(), booked_numbers.len());
    assert_eq!(
        numbers, booked_numbers,
        "{what}: the books hold exactly the outbox's vouchers (none lost, none unknown)"
    );
    let mut booked_by_key: BTreeMap<IncomeKey, Decimal> = BTreeMap::new();
    for v in &outbox {
        let b = booked
            .iter()
            .find(|b| b.number == v.voucher.number.0)
            .unwrap();
        let mut want: Vec<(String, Decimal)> = v
            .voucher
            .lines
            .iter()
            .map(|l| (l.cost_centre.as_str().to_owned(), l.amount))
            .collect();
        let mut got: Vec<(String, Decimal)> = b
            .lines
            .iter()
            .map(|l| (l.cost_centre.clone(), l.amount))
            .collect();
        want.sort();
        got.sort();
        assert_eq!(
            want, got,
            "{what}: voucher {} booked as sent",
            v.voucher.number
        );
        let key = progression_gateway::pipeline::key_of(
            &v.voucher.team,
            v.voucher.track.as_str(),
            &v.voucher.month.to_string(),
        )
        .unwrap();
        *booked_by_key.entry(key).or_default() += v.voucher.amount;
    }
    booked_by_key.retain(|_, a| !a.is_zero());
    let expected = month_totals(store, loaded, as_of).await;
    assert!(!expected.is_empty(), "{what}: the data makes income");
    assert_eq!(
        booked_by_key, expected,
        "{what}: the books equal the recomputed month totals to the øre"
    );
    assert_eq!(posted_totals(store).await, expected);
}

/// The kill trials of one transport. `collect` is the finance system's batch (folder, SFTP:
/// process its inbox; HTTP: nothing, it books on receipt).
async fn kill_trials(name: &str, setup: &Setup, books: &Books, collect: &(dyn Fn() + Sync)) {
    let started = Instant::now();
    let mut rng = rng_for(name);
    let loaded = setup.loaded();
    // Calibration: the first night run to completion records every decision; the second
    // (next night) gives the length of an ordinary night's run.
    let mut run_time = Duration::ZERO;
    for night in [day(2), day(3)] {
        let t0 = Instant::now();
        let status = wait(setup.spawn(&["post", "--as-of", &night.to_string()])).await;
        run_time = t0.elapsed();
        assert!(status.success() || status.code() == Some(2), "{status}");
        collect();
    }
    let (mut mid_run, mut in_flight) = (0, 0);
    let mut last = day(3);
    for trial in 0..POST_TRIALS {
        // A new night every other trial: a night killed and then run again as well.
        let night = day(4 + (trial as u32) * 2 / 3);
        last = night;
        let cmd = if rng.random_bool(0.5) { "post" } else { "run" };
        let delay = run_time.mul_f64(rng.random_range(0.2..1.2));
        let child = setup.spawn(&[cmd, "--as-of", &night.to_string()]);
        if kill_after(child, delay).await {
            mid_run += 1;
        }
        let store = setup.store().await;
        if store
            .vouchers()
            .await
            .unwrap()
            .iter()
            .any(|v| v.state != VoucherState::Accepted)
        {
            in_flight += 1;
        }
        assert_one_voucher_per_key_and_night(&store, &format!("{name} trial {trial}")).await;
        store.close().await;
        if rng.random_bool(0.8) {
            collect();
        }
    }
    // To completion: run, let the finance system book, until every voucher is answered.
    for round in 0..5 {
        let status = wait(setup.spawn(&["post", "--as-of", &last.to_string()])).await;
        assert!(
            status.success() || status.code() == Some(2) || round == 0,
            "{status}"
        );
        collect();
        let store = setup.store().await;
        let open = store
            .vouchers()
            .await
            .unwrap()
            .iter()
            .any(|v| v.state != VoucherState::Accepted);
        store.close().await;
        if !open && round > 0 {
            break;
        }
    }
    let store = setup.store().await;
    assert_one_voucher_per_key_and_night(&store, name).await;
    assert_books_settled(&store, &loaded, books, last, name).await;
    println!(
        "faults::{name}: {POST_TRIALS} kill -9 trials ({mid_run} killed mid-run, {in_flight} with vouchers in flight), \
         {} vouchers booked once each, books equal the month totals; run {run_time:?}, trials {:?}",
        books.voucher_count(),
        started.elapsed()
    );
}

fn posting_setup(transport: Transport) -> (tempfile::TempDir, Setup) {
    let f = fixture(&POSTING_DATA);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    std::fs::copy(&f.db, &db).unwrap();
    let setup = Setup::new(dir.path(), &sqlite_url(&db), transport);
    (dir, setup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_postings_over_the_folder_book_every_voucher_once() {
    let scratch = tempfile::tempdir().unwrap();
    let inbox = scratch.path().join("opus-in");
    let replies = scratch.path().join("opus-out");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&replies).unwrap();
    let (_dir, setup) = posting_setup(Transport::Folder {
        dir: inbox.clone(),
        reply_dir: replies.clone(),
    });
    let books = Books::default();
    let b = books.clone();
    kill_trials("folder", &setup, &books, &move || {
        process_folder(&b, &inbox, &replies).unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_postings_over_sftp_book_every_voucher_once() {
    let server = sshd::Sshd::start();
    let inbox = server.root.join("opus-in");
    let replies = server.root.join("opus-out");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&replies).unwrap();
    let (_dir, setup) = posting_setup(Transport::Sftp {
        port: server.port,
        user: server.user.clone(),
        key: server.client_key.clone(),
        known_hosts: server.known_hosts.clone(),
        dir: inbox.clone(),
        reply_dir: replies.clone(),
    });
    let books = Books::default();
    let b = books.clone();
    kill_trials("sftp", &setup, &books, &move || {
        process_folder(&b, &inbox, &replies).unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_postings_over_http_book_every_voucher_once() {
    let books = Books::default();
    let http = serve_http(books.clone()).await.unwrap();
    let (_dir, setup) = posting_setup(Transport::Http {
        url: http.url.clone(),
    });
    kill_trials("http", &setup, &books, &|| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_import_completed_equals_a_clean_import() {
    let started = Instant::now();
    let f = fixture(&IMPORT_DATA);
    let mut rng = rng_for("import");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    let setup = Setup::new(dir.path(), &sqlite_url(&db), Transport::None);
    let sim = f.sim.to_str().unwrap();
    // Spread the kills so that together they cover about the whole import.
    let slice = f.import_time.mul_f64(2.0 / IMPORT_TRIALS as f64);
    let mut mid_run = 0;
    for _ in 0..IMPORT_TRIALS {
        let delay = Duration::from_millis(30) + slice.mul_f64(rng.random_range(0.0..1.0));
        if kill_after(setup.spawn(&["import", sim]), delay).await {
            mid_run += 1;
        }
    }
    let status = wait(setup.spawn(&["import", sim])).await;
    assert!(status.success(), "{status}");
    let store = setup.store().await;
    let clean = Store::connect(&sqlite_url(&f.db)).await.unwrap();
    let (got, want) = (stored_versions(&store).await, stored_versions(&clean).await);
    assert_eq!(got.len(), want.len(), "as many versions as a clean import");
    assert!(got == want, "the store equals a clean import");
    println!(
        "faults::import: {IMPORT_TRIALS} kill -9 trials during `import` ({mid_run} killed mid-run), \
         then completed: {} versions equal to a clean import; {:?}",
        got.len(),
        started.elapsed()
    );
}

/// `post` started at a random moment while `run` posts the same night: never two vouchers for
/// one delta; at the end the outbox holds the month totals.
async fn post_beside_run(backend: &str, store_url: &str, job: Option<&str>) {
    let started = Instant::now();
    let f = fixture(&POSTING_DATA);
    let mut rng = rng_for(&format!("race-{backend}"));
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("opus-in");
    let replies = dir.path().join("opus-out");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&replies).unwrap();
    let setup = Setup::new(
        dir.path(),
        store_url,
        Transport::Folder {
            dir: inbox.clone(),
            reply_dir: replies.clone(),
        },
    );
    if let Some(job) = job {
        // A configured job of its own name that posts too.
        let mut text = std::fs::read_to_string(&setup.config).unwrap();
        text.push_str(&format!(
            "\n[[job]]\nname = \"{job}\"\nschedule = \"30 2 * * *\"\nsteps = [\"compute\", \"post\", \"replies\"]\n"
        ));
        std::fs::write(&setup.config, text).unwrap();
    }
    let run_args = |night: NaiveDate| -> Vec<String> {
        let mut a = vec!["run".to_owned(), "--as-of".to_owned(), night.to_string()];
        if let Some(job) = job {
            a.extend(["--job".to_owned(), job.to_owned()]);
        }
        a
    };
    let spawn_run = |night: NaiveDate| {
        let a = run_args(night);
        setup.spawn(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    if backend == "postgres" {
        // The clean import's versions, copied.
        let clean = Store::connect(&sqlite_url(&f.db)).await.unwrap();
        let versions: Vec<_> = clean
            .all_versions()
            .await
            .unwrap()
            .into_iter()
            .flat_map(|(_, vs)| vs)
            .collect();
        let store = setup.store().await;
        for chunk in versions.chunks(2000) {
            store.put_batch(chunk, None).await.unwrap();
        }
        store.close().await;
    }
    let books = Books::default();
    let loaded = setup.loaded();
    let mut run_time = Duration::ZERO;
    for night in [day(2), day(3)] {
        let t0 = Instant::now();
        wait(spawn_run(night)).await;
        run_time = t0.elapsed();
        process_folder(&books, &inbox, &replies).unwrap();
    }
    let mut refused = 0;
    let mut last = day(3);
    for trial in 0..RACE_TRIALS {
        let night = day(4 + trial as u32);
        last = night;
        let run = spawn_run(night);
        tokio::time::sleep(run_time.mul_f64(rng.random_range(0.0..1.0))).await;
        let post = setup.spawn(&["post", "--as-of", &night.to_string()]);
        let (r, p) = (wait(run).await, wait(post).await);
        assert!(r.code().is_some() && p.code().is_some());
        if p.code() == Some(3) {
            refused += 1;
        }
        let store = setup.store().await;
        assert_one_voucher_per_key_and_night(&store, &format!("{backend} trial {trial}")).await;
        // Both done: the night's vouchers add up to the month totals, none made twice.
        assert_eq!(
            posted_totals(&store).await,
            month_totals(&store, &loaded, night).await,
            "{backend} trial {trial}: the outbox holds the month totals as of {night}"
        );
        store.close().await;
        process_folder(&books, &inbox, &replies).unwrap();
    }
    for _ in 0..2 {
        wait(setup.spawn(&["post", "--as-of", &last.to_string()])).await;
        process_folder(&books, &inbox, &replies).unwrap();
    }
    let store = setup.store().await;
    assert_books_settled(&store, &loaded, &books, last, backend).await;
    store.close().await;
    println!(
        "faults::race-{backend}: {RACE_TRIALS} trials of `post` beside `run` ({refused} refused as the lease was held), \
         no voucher made twice; {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_beside_run_makes_no_voucher_twice_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    std::fs::copy(&fixture(&POSTING_DATA).db, &db).unwrap();
    post_beside_run("sqlite", &sqlite_url(&db), None).await;
}

/// A configured job of another name with a `post` step (`run --job nacht`, or the daemon)
/// posting while `post` posts the same night.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_beside_another_posting_job_makes_no_voucher_twice_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gw.db");
    std::fs::copy(&fixture(&POSTING_DATA).db, &db).unwrap();
    post_beside_run("sqlite-job", &sqlite_url(&db), Some("nacht")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_beside_run_makes_no_voucher_twice_on_postgres() {
    let Some(server) = std::env::var("PROGRESSION_GATEWAY_TEST_PG")
        .ok()
        .filter(|s| !s.trim().is_empty())
    else {
        println!("skipped: PROGRESSION_GATEWAY_TEST_PG not set");
        return;
    };
    let name = format!(
        "pgw_faults_{:x}_{:x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let mut admin = sqlx::PgConnection::connect(&server).await.unwrap();
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let outcome = tokio::spawn(async move { post_beside_run("postgres", &url, None).await }).await;
    let _ = sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The steering figures files in `dir`, by name (the `.name.part` files of an unfinished write
/// apart), each checked whole: its name's hash is its content's.
fn whole_figures_files(dir: &Path) -> (BTreeMap<String, Vec<u8>>, usize) {
    use sha2::{Digest, Sha256};
    let (mut files, mut parts) = (BTreeMap::new(), 0);
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.starts_with('.') && name.ends_with(".part") {
            parts += 1;
            continue;
        }
        let content = std::fs::read(dir.join(&name)).unwrap();
        let hash = hex::encode(Sha256::digest(&content));
        assert!(
            name.starts_with("styringstal-") && name.ends_with(&format!("-{}.csv", &hash[..12])),
            "{name}: not a whole figures file (its content hashes to {hash})"
        );
        let text = String::from_utf8(content.clone()).unwrap();
        assert!(
            text.starts_with("cost_centre;month;figure;value\n"),
            "{name}"
        );
        assert!(text.ends_with('\n') && text.lines().count() > 1, "{name}");
        files.insert(name, content);
    }
    (files, parts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_while_exporting_figures_leaves_only_whole_files_and_sends_each_once() {
    let started = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    let inbox = scratch.path().join("opus-in");
    let replies = scratch.path().join("opus-out");
    let bi = scratch.path().join("bi");
    for d in [&inbox, &replies, &bi] {
        std::fs::create_dir_all(d).unwrap();
    }
    let (_dir, setup) = posting_setup(Transport::Folder {
        dir: inbox.clone(),
        reply_dir: replies.clone(),
    });
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(&format!(
        "\n[figures_export]\n\n[figures_export.transport]\nkind = \"folder\"\ndir = \"{}\"\n\
         reply_dir = \"{}\"\n",
        bi.display(),
        bi.display()
    ));
    std::fs::write(&setup.config, text).unwrap();
    let mut rng = rng_for("figures-export");
    // Calibration: whole runs, their figures step last; the second night's gives the length
    // of an ordinary night (the first records every decision).
    let mut run_time = Duration::ZERO;
    for (n, night) in [day(2), day(3)].into_iter().enumerate() {
        let t0 = Instant::now();
        let status = wait(setup.spawn(&["run", "--as-of", &night.to_string()])).await;
        run_time = t0.elapsed();
        assert!(status.success() || status.code() == Some(2), "{status}");
        assert_eq!(whole_figures_files(&bi).0.len(), n + 1, "a file per night");
    }
    let (mut mid_run, mut parts_seen) = (0, 0);
    let mut last = day(3);
    for trial in 0..12u32 {
        let night = day(4 + trial / 2);
        last = night;
        // Late in the run, where the figures are computed and written.
        let delay = run_time.mul_f64(rng.random_range(0.4..1.0));
        if kill_after(setup.spawn(&["run", "--as-of", &night.to_string()]), delay).await {
            mid_run += 1;
        }
        let (_, parts) = whole_figures_files(&bi);
        parts_seen += parts;
    }
    // To completion, twice: the night's file is there once, and the second run sends nothing.
    let status = wait(setup.spawn(&["run", "--as-of", &last.to_string()])).await;
    assert!(status.success() || status.code() == Some(2), "{status}");
    let (after_first, _) = whole_figures_files(&bi);
    let status = wait(setup.spawn(&["run", "--as-of", &last.to_string()])).await;
    assert!(status.success() || status.code() == Some(2), "{status}");
    let (after_second, _) = whole_figures_files(&bi);
    assert_eq!(
        after_first, after_second,
        "the same figures are not sent again"
    );
    let of_last = format!("styringstal-{last}-");
    assert_eq!(
        after_second
            .keys()
            .filter(|n| n.starts_with(&of_last))
            .count(),
        1,
        "{:?}",
        after_second.keys().collect::<Vec<_>>()
    );
    println!(
        "faults::figures-export: 12 kill -9 trials ({mid_run} killed mid-run, {parts_seen} part files left \
         by a kill), {} whole files, run {run_time:?}, trials {:?}",
        after_second.len(),
        started.elapsed()
    );
}
