//! `demo`: the whole nightly run against simulated care and finance systems, with no
//! configuration file.
//!
//! [`run`] does, in order:
//!
//! 1. makes a working folder: `--keep DIR` (created if missing; an empty folder, or one holding
//!    only a previous demo, which is replaced; any other non-empty folder is refused), or a
//!    folder `progression-gateway-demo-<pid>-<random>` under the system's temporary folder,
//!    removed at the end (also when the demo fails);
//! 2. writes into it the repository's mappings (embedded at build time) with a third team,
//!    `vest` (SOR `246813579024680`, cost centre `1003`), random secrets (mode 0600) and a
//!    `gateway.toml`;
//! 3. generates a municipality ([`sim_config`]: the seed, the citizens spread over the SOR codes
//!    of nord, syd and vest, days from 2027-01-01, the year of the shipped tariff tables) and
//!    serves it as a FHIR server with OAuth2 ([`crate::sim::care::serve`]), starts the simulated
//!    finance system's HTTP receiver ([`crate::sim::finance::serve_http`], which answers each
//!    delivery at once, so vouchers are sent and accepted in one run) and the simulated
//!    ChargeItem endpoint with OAuth2 ([`crate::sim::decisions::serve_with`]), all on
//!    127.0.0.1 on free ports;
//! 4. loads `gateway.toml` with the real loader ([`crate::config::load_with_env`]), opens the
//!    store and runs the nightly steps ([`crate::run::execute`], trigger `demo`) as of the last
//!    simulated day, at 02:30 the next morning;
//! 5. reads back what the run left in the store ([`Summary`]), stops the simulators, closes the
//!    store and removes the folder unless kept.
//!
//! # Secrets and the environment
//!
//! The configuration names a file for the pseudonym key, the care system's client secret and
//! the operations HTTP token. The finance bearer token and the ChargeItem endpoint's client
//! secret can only be given by the environment (`PROGRESSION_GATEWAY__FINANCE__BEARER_TOKEN`,
//! `PROGRESSION_GATEWAY__DECISIONS__CLIENT_SECRET`): the demo writes them to files too and hands
//! them to the loader as those variables. The loader sees *only* those two variables, never the
//! process's own `PROGRESSION_GATEWAY__…` overrides: a `PROGRESSION_GATEWAY__STORE__URL` meant
//! for a real installation must never send the demo's data into it.
//!
//! # Time
//!
//! The pull asks for [`PULL_PAGE_SIZE`] Bundles a page (`page_size` in the configuration; the
//! simulated server's own default page is the same), each page one store transaction. In
//! release mode on a 2-core machine the default demo (300 citizens, 120 days: some 19,500
//! Bundles, 50,000 record versions) takes about 7 s, most of it the pull reading and storing
//! the record versions; pages of 100 instead of 500 cost only a few tenths of a second more.

mod setup;
pub mod summary;

pub use summary::{FindingSummary, KindCounts, RunSummary, Summary, TeamSummary};

use crate::run::{Context, Request};
use crate::sim::care::{Municipality, ServerConfig, SimConfig};
use crate::sim::decisions::{SimAuth, SimChargeItems};
use crate::sim::finance::Books;
use crate::store::{Outcome, Store, Trigger};
use anyhow::Context as _;
use chrono::{Days, NaiveDate};
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use setup::random_secret;
pub use setup::{PULL_PAGE_SIZE, TEMP_PREFIX};

/// Options of `demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Keep the database, configuration and files in this folder (created if missing).
    pub keep: Option<PathBuf>,
    /// Number of simulated citizens.
    pub citizens: usize,
    /// Days of simulated history.
    pub days: u32,
    /// Seed of the simulation.
    pub seed: u64,
    /// Print the summary as JSON instead of a table.
    pub json: bool,
    /// After the run, serve the steering cockpit on `listen` until Ctrl-C.
    pub serve: bool,
    /// Where the cockpit (and the operations endpoints) listen with `serve`.
    pub listen: std::net::SocketAddr,
    /// The care system pulled.
    pub source: DemoSource,
}

/// The care system the demo pulls the simulated municipality from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoSource {
    /// KL Gateway delivery reports by FHIR search (`[source.fhir_pull]`).
    Klgateway,
    /// The KMD Nexus REST API (`[source.nexus]`), simulated from the same municipality.
    Nexus,
}

/// Where `demo --serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8089";

/// What `demo --serve` keeps open after the run: the store, the configuration and the
/// working folder (removed when it is dropped, unless kept).
pub struct Serving {
    store: Store,
    loaded: Arc<crate::config::Loaded>,
    work: setup::WorkDir,
    /// The morning after the run: the cockpit's figures are as of the day before.
    today: NaiveDate,
    /// The address the cockpit is served on.
    pub address: std::net::SocketAddr,
    /// The management principal's cockpit token.
    pub management_token: secrecy::SecretString,
    /// Team nord's leader's cockpit token.
    pub nord_token: secrecy::SecretString,
    listener: tokio::net::TcpListener,
}

impl Serving {
    /// Serves the cockpit and the operations endpoints until `stop` resolves, then closes the
    /// store and removes the working folder unless kept.
    pub async fn serve(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let settings = &self.loaded.settings;
        let cockpit = crate::cockpit::CockpitState::new(
            self.store.clone(),
            self.loaded.clone(),
            settings
                .cockpit
                .as_ref()
                .expect("the demo configures [cockpit]"),
        )?
        .with_today(self.today);
        cockpit.warm().await;
        let http = settings
            .daemon
            .http
            .as_ref()
            .expect("the demo configures [http]");
        let app = crate::api::router(
            crate::api::ApiState::new(
                self.store.clone(),
                http.token.clone(),
                Arc::new(crate::api::Metrics::default()),
            ),
            None,
        )
        .merge(crate::cockpit::router(cockpit));
        axum::serve(self.listener, app)
            .with_graceful_shutdown(stop)
            .await
            .context("the cockpit's HTTP server failed")?;
        self.store.close().await;
        self.work.finish()?;
        Ok(())
    }
}

/// The first simulated day: 1 January 2027, the year of the tariff tables in `mappings/`.
pub fn start_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 1, 1).expect("a valid date")
}

/// The custodian SOR codes of the demo's three teams, in order: nord and syd (the
/// repository's `mappings/teams.toml`) and vest (added by the demo).
pub const SOR_CODES: [&str; 3] = ["123456789012345", "543210987654321", setup::VEST_SOR];

/// The simulation the demo serves: `opts.seed`, `opts.citizens` spread over [`SOR_CODES`],
/// `opts.days` from [`start_day`], in Europe/Copenhagen. A test that regenerates it with
/// [`crate::sim::care::generate`] gets the very same municipality.
pub fn sim_config(opts: &DemoOptions) -> SimConfig {
    SimConfig {
        seed: opts.seed,
        citizens: opts.citizens,
        start: start_day(),
        days: opts.days,
        sor_codes: SOR_CODES.iter().map(|s| (*s).to_owned()).collect(),
        time_zone: chrono_tz::Europe::Copenhagen,
    }
}

/// The as-of date of the demo's nightly run: the last simulated day.
pub fn as_of(opts: &DemoOptions) -> NaiveDate {
    start_day() + Days::new(u64::from(opts.days.max(1) - 1))
}

/// The simulated care system the demo runs.
enum Care {
    Klgateway(crate::sim::care::SimServer),
    Nexus(crate::sim::nexus::NexusServer, Vec<i64>),
}

impl Care {
    fn base(&self) -> &str {
        match self {
            Care::Klgateway(s) => &s.base_url,
            Care::Nexus(s, _) => &s.api_root,
        }
    }

    fn endpoint(&self) -> setup::CareEndpoint {
        match self {
            Care::Klgateway(s) => setup::CareEndpoint::Klgateway {
                base: s.base_url.clone(),
                token: s.token_url.clone(),
            },
            Care::Nexus(s, organisations) => setup::CareEndpoint::Nexus {
                api_root: s.api_root.clone(),
                token: s.token_url.clone(),
                organisations: organisations.clone(),
            },
        }
    }

    async fn shutdown(self) {
        match self {
            Care::Klgateway(s) => s.shutdown().await,
            Care::Nexus(s, _) => s.shutdown().await,
        }
    }
}

/// What a demo did.
pub struct DemoOutcome {
    /// The summary (its `wall_time_secs` and `kept` are set).
    pub summary: Summary,
    /// The working folder. It no longer exists unless it was kept.
    pub dir: PathBuf,
    /// Whether the working folder was kept (`--keep`).
    pub kept: bool,
    /// The simulated finance system's books.
    pub books: Books,
    /// The simulated ChargeItem endpoint (it keeps serving until the runtime ends).
    pub charge_items: SimChargeItems,
    /// Wall time of the whole demo.
    pub wall_time: Duration,
    /// With `--serve`: what serves the cockpit after the summary is printed.
    pub serving: Option<Serving>,
    /// The exit code: 0 when the run's outcome is ok, or partial with no error (findings
    /// never make a run partial); otherwise [`crate::app::run_exit_code`].
    pub exit_code: u8,
}

impl std::fmt::Debug for DemoOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoOutcome")
            .field("summary", &self.summary)
            .field("dir", &self.dir)
            .field("kept", &self.kept)
            .field("wall_time", &self.wall_time)
            .field("exit_code", &self.exit_code)
            .finish_non_exhaustive()
    }
}

/// The exit code of a demo whose run ended with `outcome` and `errors`.
pub fn exit_code(outcome: Outcome, errors: &[String]) -> u8 {
    if outcome == Outcome::Partial && errors.is_empty() {
        return crate::app::run_exit_code(Outcome::Ok);
    }
    crate::app::run_exit_code(outcome)
}

/// Runs the demo (see the module documentation) and returns what it did; prints nothing.
pub async fn run(opts: &DemoOptions) -> anyhow::Result<DemoOutcome> {
    let started = Instant::now();
    anyhow::ensure!(opts.days >= 1, "--days must be at least 1");
    anyhow::ensure!(opts.citizens >= 1, "--citizens must be at least 1");

    let work = setup::WorkDir::prepare(opts.keep.as_deref())?;
    let dir = work.path().to_path_buf();
    setup::write_mappings(&dir, (start_day(), as_of(opts))).context("writing the mappings")?;
    let secrets = setup::Secrets::generate();
    secrets.write(&dir).context("writing the secrets")?;

    // Bound first, so a port in use is said before anything is generated.
    let listener = if opts.serve {
        Some(
            tokio::net::TcpListener::bind(opts.listen)
                .await
                .with_context(|| format!("--listen {}: cannot listen there", opts.listen))?,
        )
    } else {
        None
    };
    let cfg = sim_config(opts);
    let municipality: Municipality =
        tokio::task::spawn_blocking(move || crate::sim::care::generate(&cfg))
            .await
            .context("generating the municipality")?;
    setup::write_actuals(&dir, &municipality, start_day(), opts.days)
        .context("writing the simulated finance actuals")?;
    tracing::info!(
        message = "Simulated municipality generated.",
        citizens = municipality.citizens.len(),
        bundles = municipality.bundles.len(),
        elapsed_ms = started.elapsed().as_millis() as u64
    );
    let care = match opts.source {
        DemoSource::Klgateway => {
            let server = crate::sim::care::serve(
                Arc::new(municipality),
                ServerConfig {
                    client_id: setup::CLIENT_ID.to_owned(),
                    client_secret: secrets.care_client_secret.expose_secret().to_owned(),
                    page_size: setup::PULL_PAGE_SIZE as usize,
                    token_ttl: Duration::from_secs(3600),
                },
            )
            .await
            .context("starting the simulated care system")?;
            Care::Klgateway(server)
        }
        DemoSource::Nexus => {
            let mappings = crate::mapping::load::load_dir(&dir.join("mappings"))
                .map_err(|d| anyhow::anyhow!("the demo's mappings: {d:?}"))?;
            let sim_cfg = sim_config(opts);
            let nexus = tokio::task::spawn_blocking(move || {
                crate::sim::nexus::NexusMunicipality::build(&municipality, &sim_cfg, &mappings)
            })
            .await
            .context("building the simulated Nexus")?;
            let organisations = nexus.organisation_ids();
            let server = crate::sim::nexus::serve(
                Arc::new(nexus),
                crate::sim::nexus::NexusServerConfig {
                    client_id: setup::CLIENT_ID.to_owned(),
                    client_secret: secrets.care_client_secret.expose_secret().to_owned(),
                    ..Default::default()
                },
            )
            .await
            .context("starting the simulated Nexus")?;
            Care::Nexus(server, organisations)
        }
    };
    let books = Books::new();
    let finance = crate::sim::finance::serve_http(books.clone())
        .await
        .context("starting the simulated finance system")?;
    let charge_items = crate::sim::decisions::serve_with(Some(SimAuth {
        client_id: setup::CLIENT_ID.to_owned(),
        client_secret: secrets.decisions_client_secret.expose_secret().to_owned(),
        token: secrets.decisions_access_token.expose_secret().to_owned(),
    }))
    .await
    .context("starting the simulated ChargeItem endpoint")?;
    tracing::info!(
        message = "Simulated systems started.",
        care = %care.base(),
        finance = %finance.url,
        decisions = %charge_items.base_url
    );

    let config_path = setup::write_config(
        &dir,
        &setup::Endpoints {
            care: care.endpoint(),
            finance_url: finance.url.clone(),
            decisions_base: charge_items.base_url.clone(),
            decisions_token: charge_items.token_url.clone(),
            listen: listener
                .as_ref()
                .and_then(|l| l.local_addr().ok())
                .unwrap_or(opts.listen),
            cockpit_sha256: [&secrets.cockpit_management, &secrets.cockpit_nord].map(|t| {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(t.expose_secret().as_bytes()))
            }),
        },
    )
    .context("writing the configuration")?;
    let loaded = crate::config::load_with_env(&config_path, secrets.env())
        .with_context(|| format!("the demo's configuration {}", config_path.display()))?;
    let store = Store::connect(&loaded.settings.database_url)
        .await
        .context("opening the store")?;
    let loaded = Arc::new(loaded);
    let ctx = Context::new(store.clone(), loaded.clone());

    let as_of = as_of(opts);
    let now = (as_of + Days::new(1))
        .and_hms_opt(2, 30, 0)
        .expect("a valid time");
    let report = crate::run::execute(
        &ctx,
        &Request {
            job: "nightly".into(),
            trigger: Trigger::Demo,
            scheduled_for: None,
            as_of,
            now,
            dry_run: false,
            steps: crate::run::NIGHTLY.to_vec(),
        },
        &crate::run::never_stop(),
    )
    .await
    .context("the nightly run")?;

    let mut summary = summary::collect(
        &store,
        &loaded.mappings,
        loaded.settings.time_zone,
        &report,
        summary::Scope {
            citizens: opts.citizens,
            days: opts.days,
            start: start_day(),
            as_of,
        },
    )
    .await
    .context("reading the run's results from the store")?;

    care.shutdown().await;
    finance.shutdown().await;
    let kept = work.kept();
    let (dir, serving) = match listener {
        Some(listener) => (
            work.path().to_path_buf(),
            Some(Serving {
                address: listener.local_addr()?,
                today: as_of + Days::new(1),
                listener,
                store,
                loaded,
                work,
                management_token: secrets.cockpit_management.clone(),
                nord_token: secrets.cockpit_nord.clone(),
            }),
        ),
        None => {
            store.close().await;
            (work.finish()?, None)
        }
    };
    let wall_time = started.elapsed();
    summary.kept = kept.then(|| dir.clone());
    summary.wall_time_secs = wall_time.as_secs_f64();
    tracing::info!(
        message = "Demo finished.",
        outcome = report.outcome.as_str(),
        wall_time_ms = wall_time.as_millis() as u64
    );
    Ok(DemoOutcome {
        exit_code: exit_code(report.outcome, &report.errors),
        summary,
        dir,
        kept,
        books,
        charge_items,
        wall_time,
        serving,
    })
}

/// Runs the demo, prints its summary and wall time, and returns the exit code.
///
/// The table goes to standard output and ends with `demo finished in 12.3 s`. With `json`,
/// standard output holds exactly one JSON object (the [`Summary`], wall time included) and the
/// wall time line goes to standard error. On Ctrl-C the demo stops at once and removes its
/// temporary folder (a kept folder stays as it is).
pub async fn main(opts: DemoOptions) -> anyhow::Result<u8> {
    let outcome = tokio::select! {
        outcome = run(&opts) => outcome?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("demo interrupted"),
    };
    let mut out = std::io::stdout().lock();
    if opts.json {
        summary::write_json(&outcome.summary, &mut out)?;
        eprintln!(
            "{}",
            summary::wall_time_line(outcome.summary.wall_time_secs)
        );
    } else {
        summary::write_table(&outcome.summary, &mut out)?;
    }
    if let Some(serving) = outcome.serving {
        let base = format!("http://{}/cockpit", serving.address);
        // Said on standard error, so `--format json` keeps one JSON object on standard output.
        eprintln!();
        eprintln!("Styringscockpit: {base}");
        eprintln!(
            "  ledelse (alle teams):  {}",
            serving.management_token.expose_secret()
        );
        eprintln!(
            "  leder-nord (team nord): {}",
            serving.nord_token.expose_secret()
        );
        eprintln!(
            "Log ind med en nøgle, eller: curl -H 'Authorization: Bearer <nøgle>' '{base}/api/figures?team=nord&to={}'",
            as_of(&opts)
        );
        eprintln!("The demo's tokens are random for this run. Serving until Ctrl-C.");
        serving
            .serve(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        eprintln!("cockpit stopped");
    }
    Ok(outcome.exit_code)
}
