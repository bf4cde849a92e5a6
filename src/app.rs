//! The commands: load the configuration, open the store, run the model, print.
//!
//! Exit codes: 0 success; 1 invalid configuration or mappings; 3 a runtime failure (store
//! unreachable, a file unreadable). Data-quality findings are printed to standard error and do
//! not change the exit code.

use crate::config::{self, Loaded, LogFormat};
use crate::domain::Track;
use crate::model::{Course, DailyTariff, Finding, round_money};
use crate::store::Store;
use anyhow::Context;
use chrono::NaiveDate;
use clap::{Parser, Subcommand, ValueEnum};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code of a successful command.
pub const EXIT_OK: u8 = 0;
/// Exit code when the configuration or a mapping file is invalid.
pub const EXIT_CONFIG: u8 = 1;
/// Exit code of `import` when a file or Bundle was rejected (the rest was stored).
pub const EXIT_REJECTED: u8 = 2;
/// Exit code of a runtime failure (store unreachable, file unreadable, ...).
pub const EXIT_FAILURE: u8 = 3;
/// Exit code of a usage error (as clap's own): arguments that do not fit together.
pub const EXIT_USAGE: u8 = 2;

/// progression-gateway: steers municipal home care by progression instead of by hours.
#[derive(Debug, Parser)]
#[command(name = "progression-gateway", version, about)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = "config/gateway.toml")]
    pub config: PathBuf,
    /// The store, overriding the configuration: `sqlite://FILE` or `postgres://...`.
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration, mappings and tariff tables; report every error with file and line.
    Validate,
    /// Team income from all stored data: one row per team, track and month.
    Budget {
        /// First day of the period (YYYY-MM-DD).
        #[arg(long, value_parser = parse_date)]
        from: NaiveDate,
        /// Last day of the period, inclusive (YYYY-MM-DD). A future period is a projection on
        /// the data known now: the clock is never read.
        #[arg(long, value_parser = parse_date)]
        to: NaiveDate,
        /// Output format.
        #[arg(long, value_enum, default_value_t = BudgetFormat::Table)]
        format: BudgetFormat,
        /// Number format of the table and CSV: `en` (1552635.00, CSV with `,`) or `da`
        /// (1.552.635,00, CSV with `;` and decimal comma, as Danish spreadsheets expect).
        #[arg(long, value_enum, default_value_t = Locale::En)]
        locale: Locale,
    },
    /// The steering figures (the cockpit's): per team, month and track and for the whole
    /// municipality, every figure of the catalogue with its numerator and denominator.
    /// Reads everything stored (visits too); writes nothing.
    Figures {
        /// First day of the period (YYYY-MM-DD).
        #[arg(long, value_parser = parse_date)]
        from: NaiveDate,
        /// The as-of date, the period's last day (YYYY-MM-DD): a course has ended when its
        /// last day is on or before it.
        #[arg(long, value_parser = parse_date)]
        to: NaiveDate,
        /// Only this team (its id in teams.toml), `unassigned` or `municipality`.
        #[arg(long)]
        team: Option<String>,
        /// Only this track: `care` or `nursing`.
        #[arg(long)]
        track: Option<String>,
        /// Only this figure (its id; `--figure list` lists the catalogue).
        #[arg(long)]
        figure: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = BudgetFormat::Table)]
        format: BudgetFormat,
        /// Number format of the table and CSV (as for `budget`).
        #[arg(long, value_enum, default_value_t = Locale::En)]
        locale: Locale,
    },
    /// The voucher outbox: number, team, track, month, amount, state, the finance system's
    /// message and the file it went in.
    Vouchers {
        /// Only vouchers in this state: pending, sent, accepted, rejected.
        #[arg(long)]
        state: Option<String>,
        /// Only vouchers of this month (YYYY-MM).
        #[arg(long)]
        month: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = BudgetFormat::Table)]
        format: BudgetFormat,
    },
    /// Read files or folders of KL Gateway delivery reports (JSON or XML) into the store and
    /// print a JSON summary. Exit code 2 when anything was rejected.
    Import {
        /// Files and folders (read recursively: `*.json`, `*.xml`).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Largest file read, in bytes; a larger one is rejected unread (default 64 MiB).
        #[arg(long, default_value_t = crate::sources::files::DEFAULT_MAX_FILE_BYTES)]
        max_file_bytes: u64,
    },
    /// Read every configured `files`, `fhir_pull` and `nexus` source once (and the roster), storing
    /// what is new; prints a JSON summary per source. Exit code 2 when anything was rejected.
    Pull {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
    },
    /// Serve the configured `fhir_push` source (`POST /fhir/Bundle`) until SIGINT or SIGTERM.
    Receive {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: std::net::SocketAddr,
    },
    /// Write a simulated municipality's delivery reports as files (for trying the gateway,
    /// and for benchmarks). Deterministic from the seed; citizens use the teams' SOR codes.
    Simulate {
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
        /// Number of citizens.
        #[arg(long, default_value_t = 300)]
        citizens: usize,
        /// Days of history.
        #[arg(long, default_value_t = 120)]
        days: u32,
        /// First day of the history.
        #[arg(long, default_value = "2027-01-01", value_parser = parse_date)]
        start: NaiveDate,
        /// Seed of the simulation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write at most this many Bundles (the earliest reported).
        #[arg(long)]
        limit: Option<usize>,
        /// File format.
        #[arg(long, value_enum, default_value_t = FileFormat::Json)]
        format: FileFormat,
        /// One sub-folder per local date the reports were sent (`YYYY-MM-DD/`).
        #[arg(long)]
        by_day: bool,
        /// Delivery reports per file: more than 1 writes incremental deliveries.
        #[arg(long, default_value_t = 1)]
        per_file: usize,
    },
    /// Build and send what is due as of a date: balanced vouchers of the nightly deltas through
    /// the outbox to the finance system, its replies read back, and the tariff decisions
    /// written to the care system. Prints a JSON summary.
    Post {
        /// The last day income is posted for (default: yesterday, the last whole day).
        #[arg(long, value_parser = parse_date)]
        as_of: Option<NaiveDate>,
        /// Print the vouchers and decisions that would be sent; store and send nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the jobs of the configuration on their schedules until SIGTERM or SIGINT, and
    /// serve the operations HTTP endpoints of `[http]` (and the fhir_push source).
    Daemon,
    /// One whole nightly run now (pull, compute, post, replies, decisions), journaled. Exit
    /// code 0 ok, 2 partial (something rejected or left for the next run), 3 failed.
    Run {
        /// The last day income is posted for (default: yesterday, the last whole day).
        #[arg(long, value_parser = parse_date)]
        as_of: Option<NaiveDate>,
        /// Change nothing outside the gateway: read fhir_pull sources, compute, and count what
        /// would be sent; store no courses, send no vouchers, write no decisions, move no files.
        #[arg(long)]
        dry_run: bool,
        /// Run this configured job's steps instead of the nightly steps.
        #[arg(long)]
        job: Option<String>,
    },
    /// The run journal: the last runs with their steps, counts and errors.
    Runs {
        /// How many runs, newest first.
        #[arg(long, default_value_t = 10)]
        last: u32,
        /// Only runs of this job.
        #[arg(long)]
        job: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CoursesFormat::Table)]
        format: CoursesFormat,
    },
    /// Start a simulated care system and finance system on loopback, pull a simulated
    /// municipality into SQLite in a temporary folder, run the nightly run and print a
    /// summary per team. Needs no configuration file.
    Demo {
        /// Keep the database, configuration and files in this folder.
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
        /// Number of simulated citizens.
        #[arg(long, default_value_t = 300)]
        citizens: usize,
        /// Days of simulated history.
        #[arg(long, default_value_t = 120)]
        days: u32,
        /// Seed of the simulation.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output format of the summary.
        #[arg(long, value_enum, default_value_t = CoursesFormat::Table)]
        format: CoursesFormat,
        /// After the run, serve the steering cockpit (and print its address and tokens) until
        /// Ctrl-C.
        #[arg(long)]
        serve: bool,
        /// Where `--serve` listens.
        #[arg(long, value_name = "ADDR", default_value = crate::demo::DEFAULT_LISTEN, requires = "serve")]
        listen: std::net::SocketAddr,
        /// The care system the municipality is pulled from: KL Gateway delivery reports by
        /// FHIR search, or the KMD Nexus REST API (the same simulated municipality).
        #[arg(long, value_enum, default_value_t = crate::demo::DemoSource::Klgateway)]
        source: crate::demo::DemoSource,
    },
    /// Why a course is paid what it is (its decision, rule, table cell, evidence and
    /// supersessions), or what a voucher's amount is made of (the course-days that sum to it,
    /// to the øre). A CPR number is read only from standard input, never from the command line.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["course", "voucher", "citizen_stdin"])))]
    Explain {
        /// A course id (as `courses --format json` shows it).
        #[arg(long)]
        course: Option<String>,
        /// A voucher number (`PG27000001`).
        #[arg(long)]
        voucher: Option<String>,
        /// Read one citizen's CPR number from standard input and explain their courses.
        #[arg(long)]
        citizen_stdin: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
        format: ExplainFormat,
    },
    /// Apply a tariff table as it is now to the recorded decisions that used an earlier
    /// content of it: shows the effect per team and month, then records a supersession with
    /// your reason for each course (the differences become correction vouchers in the next
    /// nightly run). The only way an edited tariff file reaches recorded courses.
    Reprice {
        /// The table: TRACK/YEAR, e.g. `care/2027`.
        #[arg(long)]
        table: String,
        /// Why (recorded with every supersession).
        #[arg(long)]
        reason: String,
        /// Show the effect; record nothing.
        #[arg(long)]
        dry_run: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CoursesFormat::Table)]
        format: CoursesFormat,
    },
    /// A tariff table from history: the course rules replayed over a reference period, each
    /// cell's cost per course-day, scaled so the expected total equals the frame, with the
    /// development premium and the overhead, written in the format of `mappings/tariffs.toml`
    /// with its provenance. Prints the report; stores nothing.
    Calibrate {
        /// The track: care or nursing.
        #[arg(long)]
        track: String,
        /// First day of the reference period.
        #[arg(long, value_parser = parse_date)]
        from: NaiveDate,
        /// Last day of the reference period.
        #[arg(long, value_parser = parse_date)]
        to: NaiveDate,
        /// The budget frame for the period, kroner (`12000000.00`).
        #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
        frame: String,
        /// Development premium, percent.
        #[arg(long, value_name = "PCT", default_value = "0")]
        premium: String,
        /// Overhead, percent (6.0 for helhedspleje in the 2025 drafts).
        #[arg(long, value_name = "PCT", default_value = "0")]
        overhead: String,
        /// Cells with fewer courses are merged with their neighbour.
        #[arg(long, value_name = "N", default_value_t = 10)]
        min_courses: u64,
        /// The tariff year of the table (default: the year after `--to`).
        #[arg(long)]
        year: Option<i32>,
        /// The hourly rate costs are computed at, kroner (default: the template table's).
        #[arg(long, value_name = "AMOUNT")]
        hourly_rate: Option<String>,
        /// Where the table is written (a new file).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// The report's format.
        #[arg(long, value_enum, default_value_t = CoursesFormat::Table)]
        format: CoursesFormat,
    },
    /// The budget effect of a draft tariff table before it is adopted: the stored history
    /// evaluated with the tables in force and with the draft in place of the table of its
    /// year, per team, track and month and per tariff cell. Stores and sends nothing.
    Whatif {
        /// The draft, in the format of `mappings/tariffs.toml` (one or more tables).
        #[arg(long, value_name = "FILE")]
        tariffs: PathBuf,
        /// First day.
        #[arg(long, value_parser = parse_date)]
        from: NaiveDate,
        /// Last day.
        #[arg(long, value_parser = parse_date)]
        to: NaiveDate,
        /// Output format.
        #[arg(long, value_enum, default_value_t = BudgetFormat::Table)]
        format: BudgetFormat,
    },
    /// The courses, with kind, group, daily tariff, start, end and end reason: recorded
    /// decisions read back, the others as they would be decided. Writes nothing.
    Courses {
        /// Compute courses starting up to this day; default: the latest day in the stored data.
        #[arg(long, value_parser = parse_date)]
        until: Option<NaiveDate>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = CoursesFormat::Table)]
        format: CoursesFormat,
    },
}

/// A date argument: `YYYY-MM-DD`, said so when it is not.
fn parse_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("expected a date as YYYY-MM-DD (e.g. 2027-01-31), got `{text}`"))
}

/// Number formats for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Locale {
    /// `1552635.00`; CSV separated by `,`.
    En,
    /// `1.552.635,00`; CSV separated by `;` with a decimal comma.
    Da,
}

/// An amount in `locale`'s format, rounded to øre (no currency sign).
fn amount_text(amount: rust_decimal::Decimal, locale: Locale) -> String {
    let rounded = round_money(amount);
    match locale {
        Locale::En => format!("{rounded:.2}"),
        Locale::Da => crate::explain::kroner(rounded)
            .trim_end_matches(" kr.")
            .to_owned(),
    }
}

/// Output formats of `budget`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BudgetFormat {
    /// Aligned columns for people.
    Table,
    /// A JSON array of `{team, track, month, course_days, amount}`.
    Json,
    /// CSV with a header line.
    Csv,
}

/// Output formats of `explain`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExplainFormat {
    /// Text for people.
    Text,
    /// JSON.
    Json,
}

/// File formats of `simulate`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FileFormat {
    /// FHIR JSON.
    Json,
    /// FHIR XML.
    Xml,
}

/// Output formats of `courses`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CoursesFormat {
    /// Aligned columns for people.
    Table,
    /// A JSON array of courses.
    Json,
}

/// Runs a command and turns its outcome into an exit code.
pub async fn run(cli: Cli) -> ExitCode {
    if let Command::Demo {
        keep,
        citizens,
        days,
        seed,
        format,
        serve,
        listen,
        source,
    } = cli.command
    {
        // The demo builds its own configuration: it needs no file.
        // The run logs each finding at warn; the demo sums them up itself.
        init_logging_with(LogFormat::Human, "warn,progression_gateway::run=error");
        let opts = crate::demo::DemoOptions {
            keep,
            citizens,
            days,
            seed,
            json: matches!(format, CoursesFormat::Json),
            serve,
            listen,
            source,
        };
        return match crate::demo::main(opts).await {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_FAILURE)
            }
        };
    }
    // A command that only reads the store needs no secret of the configuration.
    let purpose = match cli.command {
        Command::Budget { .. }
        | Command::Whatif { .. }
        | Command::Calibrate { .. }
        | Command::Figures { .. }
        | Command::Courses { .. }
        | Command::Vouchers { .. }
        | Command::Runs { .. } => config::Purpose::Reader,
        _ => config::Purpose::Everything,
    };
    let loaded = match config::load_for(&cli.config, purpose) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "configuration invalid: {} error(s) in {}",
                e.diagnostics.len(),
                cli.config.display()
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(&loaded);
    let result = match cli.command {
        Command::Validate => validate(&loaded, cli.database.as_deref()).await,
        Command::Budget {
            from,
            to,
            format,
            locale,
        } => {
            if from > to {
                eprintln!("error: --from {from} is after --to {to}");
                return ExitCode::from(EXIT_USAGE);
            }
            budget(&loaded, cli.database.as_deref(), from, to, format, locale).await
        }
        Command::Figures {
            from,
            to,
            team,
            track,
            figure,
            format,
            locale,
        } => {
            if from > to {
                eprintln!("error: --from {from} is after --to {to}");
                return ExitCode::from(EXIT_USAGE);
            }
            let filter = crate::cockpit::Filter {
                team,
                track,
                figure,
            };
            figures(
                &loaded,
                cli.database.as_deref(),
                from,
                to,
                &filter,
                format,
                locale,
            )
            .await
        }
        Command::Vouchers {
            state,
            month,
            format,
        } => vouchers(&loaded, cli.database.as_deref(), state, month, format).await,
        Command::Explain {
            course,
            voucher,
            citizen_stdin,
            format,
        } => {
            let what = match (course, voucher, citizen_stdin) {
                (Some(c), _, _) => Explain::Course(c),
                (None, Some(v), _) => Explain::Voucher(v),
                _ => Explain::CitizenStdin,
            };
            explain(&loaded, cli.database.as_deref(), what, format).await
        }
        Command::Reprice {
            table,
            reason,
            dry_run,
            format,
        } => {
            reprice(
                &loaded,
                cli.database.as_deref(),
                &table,
                &reason,
                dry_run,
                format,
            )
            .await
        }
        Command::Courses { until, format } => {
            courses(&loaded, cli.database.as_deref(), until, format).await
        }
        Command::Calibrate {
            track,
            from,
            to,
            frame,
            premium,
            overhead,
            min_courses,
            year,
            hourly_rate,
            out,
            format,
        } => {
            if from > to {
                eprintln!("error: --from {from} is after --to {to}");
                return ExitCode::from(EXIT_USAGE);
            }
            let parse = |name: &str, text: &str| -> Result<rust_decimal::Decimal, String> {
                let d = rust_decimal::Decimal::from_str_exact(text.trim()).map_err(|_| {
                    format!("error: {name} `{text}` is not a number (write 12000000.00)")
                })?;
                if d.is_sign_negative() {
                    return Err(format!("error: {name} `{text}` is negative"));
                }
                Ok(d)
            };
            let rate = hourly_rate.map(|r| parse("--hourly-rate", &r)).transpose();
            let (track, frame, premium, overhead, rate) = match (
                crate::domain::Track::parse(&track).map_err(|e| format!("error: {e}")),
                parse("--frame", &frame),
                parse("--premium", &premium),
                parse("--overhead", &overhead),
                rate,
            ) {
                (Ok(t), Ok(f), Ok(p), Ok(o), Ok(r)) => (t, f, p, o, r),
                (t, f, p, o, r) => {
                    for e in [t.err(), f.err(), p.err(), o.err(), r.err()]
                        .into_iter()
                        .flatten()
                    {
                        eprintln!("{e}");
                    }
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            let params = crate::model::calibrate::Params {
                track,
                from,
                to,
                frame,
                premium_pct: premium,
                overhead_pct: overhead,
                min_courses,
                year: year.unwrap_or(chrono::Datelike::year(&to) + 1),
                hourly_rate: rate,
            };
            calibrate(&loaded, cli.database.as_deref(), &params, &out, format).await
        }
        Command::Whatif {
            tariffs,
            from,
            to,
            format,
        } => {
            if from > to {
                eprintln!("error: --from {from} is after --to {to}");
                return ExitCode::from(EXIT_USAGE);
            }
            whatif(&loaded, cli.database.as_deref(), &tariffs, from, to, format).await
        }
        Command::Simulate {
            out,
            citizens,
            days,
            start,
            seed,
            limit,
            format,
            by_day,
            per_file,
        } => simulate(
            &loaded,
            &out,
            SimArgs {
                citizens,
                days,
                start,
                seed,
                limit,
                format,
                layout: crate::sim::care::Layout { by_day, per_file },
            },
        ),
        Command::Post { as_of, dry_run } => {
            post(&loaded, cli.database.as_deref(), as_of, dry_run).await
        }
        Command::Import {
            paths,
            max_file_bytes,
        } => import(&loaded, cli.database.as_deref(), &paths, max_file_bytes).await,
        Command::Pull { source } => pull(&loaded, cli.database.as_deref(), source.as_deref()).await,
        Command::Receive { listen } => receive(&loaded, cli.database.as_deref(), listen).await,
        Command::Daemon => daemon(loaded, cli.database.as_deref()).await,
        Command::Run {
            as_of,
            dry_run,
            job,
        } => {
            run_now(
                loaded,
                cli.database.as_deref(),
                as_of,
                dry_run,
                job.as_deref(),
            )
            .await
        }
        Command::Runs { last, job, format } => {
            runs(
                &loaded,
                cli.database.as_deref(),
                last,
                job.as_deref(),
                format,
            )
            .await
        }
        Command::Demo { .. } => unreachable!("handled above"),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader went away (`... | head`): what was done is done and journaled; stop
        // quietly, as command-line tools do.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Whether an error is a write to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}

fn init_logging(loaded: &Loaded) {
    init_logging_with(loaded.settings.log.format, &loaded.settings.log.level);
}

/// Logs to standard error in `format` at `level`, unless `PROGRESSION_GATEWAY_LOG` gives
/// another level or filter.
fn init_logging_with(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROGRESSION_GATEWAY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation (tests calling `run` twice) is harmless: keep the first.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

async fn validate(loaded: &Loaded, database: Option<&str>) -> anyhow::Result<u8> {
    let m = &loaded.mappings;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "configuration ok: {} intervention codes, {} level codes, {} teams, {} tariff tables",
        m.interventions.rows().len(),
        m.levels.len(),
        m.teams.len(),
        m.tariffs.tables().len()
    )?;
    // Tariff tables edited under recorded decisions: say so, and that `reprice` is the way.
    let url = database.unwrap_or(&loaded.settings.database_url);
    if !store_exists(url) {
        return Ok(EXIT_OK);
    }
    let store = open_store(loaded, database).await?;
    let ledger = store.ledger_latest().await?;
    let stale = crate::pipeline::reprice::stale_tables(&ledger, m);
    for ((track, year), n) in &stale {
        writeln!(
            out,
            "note: the {track} tariff table {year} has changed since {n} recorded decision(s) used it; \
             they keep their locked tariffs. To apply it to them: \
             progression-gateway reprice --table {track}/{year} --reason \"...\" (try --dry-run first)"
        )?;
    }
    store.close().await;
    Ok(EXIT_OK)
}

/// Whether the store at `url` exists already (a SQLite file is not created by `validate`).
fn store_exists(url: &str) -> bool {
    match url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        Some(path) => {
            let path = path.split('?').next().unwrap_or(path);
            !path.contains(":memory:") && std::path::Path::new(path).exists()
        }
        None => true,
    }
}

/// What `explain` explains.
enum Explain {
    Course(String),
    Voucher(String),
    CitizenStdin,
}

async fn explain(
    loaded: &Loaded,
    database: Option<&str>,
    what: Explain,
    format: ExplainFormat,
) -> anyhow::Result<u8> {
    let store = open_store(loaded, database).await?;
    let mut out = std::io::stdout().lock();
    let json = matches!(format, ExplainFormat::Json);
    match what {
        Explain::Course(id) => {
            let Some(c) = crate::explain::course(&store, &id).await? else {
                eprintln!("error: the course ledger holds no course {id}");
                return Ok(EXIT_FAILURE);
            };
            if json {
                serde_json::to_writer_pretty(&mut out, &c)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", crate::explain::course_text(&c))?;
            }
        }
        Explain::Voucher(number) => {
            let Some(v) = crate::explain::voucher(&store, &number).await? else {
                eprintln!("error: the outbox holds no voucher {number}");
                return Ok(EXIT_FAILURE);
            };
            if json {
                serde_json::to_writer_pretty(&mut out, &v)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", crate::explain::voucher_text(&v))?;
            }
        }
        Explain::CitizenStdin => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let cpr = crate::domain::Cpr::parse(line.trim())
                .map_err(|e| anyhow::anyhow!("standard input does not hold a CPR number: {e}"))?;
            let who = loaded.settings.pseudonym_key.citizen(&cpr);
            drop(line);
            let courses = crate::explain::citizen(&store, &who).await?;
            if courses.is_empty() {
                eprintln!(
                    "error: the course ledger holds no course of citizen {}",
                    who.short()
                );
                return Ok(EXIT_FAILURE);
            }
            if json {
                serde_json::to_writer_pretty(&mut out, &courses)?;
                writeln!(out)?;
            } else {
                for c in &courses {
                    writeln!(out, "{}", crate::explain::course_text(c))?;
                }
            }
        }
    }
    store.close().await;
    Ok(EXIT_OK)
}

async fn reprice(
    loaded: &Loaded,
    database: Option<&str>,
    table: &str,
    reason: &str,
    dry_run: bool,
    format: CoursesFormat,
) -> anyhow::Result<u8> {
    let (track, year) = crate::pipeline::reprice::parse_table(table)?;
    let Some(t) = loaded.mappings.tariffs.table(track, year) else {
        anyhow::bail!(
            "there is no {track} tariff table {year} in the mappings of {}",
            loaded.settings.config_file.display()
        );
    };
    let tz = loaded.settings.time_zone;
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let store = open_store(loaded, database).await?;
    let ctx = crate::run::Context::new(store.clone(), std::sync::Arc::new(loaded.clone()));
    // Re-pricing changes money: never beside a nightly posting.
    let lease = if dry_run {
        None
    } else {
        match crate::run::Lease::claim(&ctx, "nightly", None, loaded.settings.daemon.lease).await? {
            Some(l) => Some(l),
            None => {
                eprintln!(
                    "error: the nightly job is running in another process; try again when it is done"
                );
                return Ok(EXIT_FAILURE);
            }
        }
    };
    let result = async {
        let mut plan =
            crate::pipeline::reprice::plan(&store, &loaded.mappings, tz, t, reason, today).await?;
        if !dry_run && !plan.rows.is_empty() {
            crate::pipeline::reprice::apply(&store, &mut plan, today).await?;
        }
        anyhow::Ok(plan)
    }
    .await;
    if let Some(lease) = lease {
        lease.release().await?;
    }
    let plan = result?;
    let mut out = std::io::stdout().lock();
    match format {
        CoursesFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &plan)?;
            writeln!(out)?;
        }
        CoursesFormat::Table => {
            writeln!(
                out,
                "{} recorded decision(s) use an earlier content of the {track} tariff table {year}; {} of them get another group or tariff.",
                plan.rows.len(),
                plan.changed_tariffs
            )?;
            if !plan.effects.is_empty() {
                writeln!(
                    out,
                    "{:<12} {:<8} {:<7} {:>20} {:>20} {:>20}",
                    "team", "track", "month", "before", "after", "difference"
                )?;
                let mut total = rust_decimal::Decimal::ZERO;
                for e in &plan.effects {
                    writeln!(
                        out,
                        "{:<12} {:<8} {:<7} {:>20} {:>20} {:>20}",
                        e.team,
                        e.track,
                        e.month,
                        crate::explain::kroner(e.before),
                        crate::explain::kroner(e.after),
                        crate::explain::kroner(e.difference)
                    )?;
                    total += e.difference;
                }
                writeln!(out, "{:<29} {:>62}", "total", crate::explain::kroner(total))?;
            }
            if plan.applied {
                writeln!(
                    out,
                    "Re-priced: {} supersession(s) recorded with the reason \"{}\". The next nightly run posts the differences for months already posted as correction vouchers.",
                    plan.rows.len(),
                    plan.reason
                )?;
            } else if !plan.rows.is_empty() {
                writeln!(out, "Dry run: nothing was recorded.")?;
            }
        }
    }
    store.close().await;
    Ok(EXIT_OK)
}

async fn open_store(loaded: &Loaded, database: Option<&str>) -> anyhow::Result<Store> {
    let url = database.unwrap_or(&loaded.settings.database_url);
    Store::connect(url)
        .await
        .with_context(|| format!("cannot open the store {}", redact_url(url)))
}

/// A database URL with any password replaced, fit for a message: the `user:password@` part
/// and query parameters such as `?password=...` (`password`, `sslpassword`, `passwd`, `pwd`).
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &base[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:****{}",
                    &base[..scheme + 3],
                    &userinfo[..colon],
                    &base[at..]
                ),
                None => base.to_owned(),
            }
        }
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let masked: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _))
                    if ["password", "sslpassword", "passwd", "pwd"]
                        .iter()
                        .any(|p| k.eq_ignore_ascii_case(p)) =>
                {
                    format!("{k}=****")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&masked.join("&"));
    }
    out
}

/// Syncs the configured roster file and events folder, if any, into the store.
async fn sync_roster(loaded: &Loaded, store: &Store) -> anyhow::Result<()> {
    if let Some(dir) = &loaded.settings.events {
        let s = crate::sources::events::sync(store, dir, &loaded.settings.pseudonym_key).await?;
        tracing::info!(
            message = "Events read.",
            events = s.events,
            stored = s.stored
        );
    }
    if let Some(path) = &loaded.settings.roster {
        let summary = crate::sources::roster::sync(
            store,
            path,
            &loaded.settings.pseudonym_key,
            &loaded.mappings,
        )
        .await?;
        tracing::info!(
            message = "Roster read.",
            assignments = summary.assignments,
            stored = summary.stored
        );
    }
    Ok(())
}

async fn import(
    loaded: &Loaded,
    database: Option<&str>,
    paths: &[PathBuf],
    max_file_bytes: u64,
) -> anyhow::Result<u8> {
    let store = open_store(loaded, database).await?;
    sync_roster(loaded, &store).await?;
    let ingestor = crate::sources::ingest::Ingestor::new(
        store,
        loaded.settings.pseudonym_key.clone(),
        loaded.settings.time_zone,
        std::sync::Arc::new(loaded.mappings.clone()),
        crate::sources::ingest::IMPORT_SOURCE,
    );
    let summary = crate::sources::files::import(
        &ingestor,
        paths,
        max_file_bytes,
        crate::progress::Show::for_stderr(),
    )
    .await?;
    ingestor.store().close().await;
    tracing::info!(
        message = "Import done.",
        bundles = summary.bundles,
        stored = summary.stored,
        rejected = summary.rejected.len()
    );
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &summary)?;
    writeln!(out)?;
    Ok(if summary.rejected.is_empty() {
        EXIT_OK
    } else {
        EXIT_REJECTED
    })
}

/// What `simulate` writes.
struct SimArgs {
    citizens: usize,
    days: u32,
    start: NaiveDate,
    seed: u64,
    limit: Option<usize>,
    format: FileFormat,
    layout: crate::sim::care::Layout,
}

fn simulate(loaded: &Loaded, out: &std::path::Path, args: SimArgs) -> anyhow::Result<u8> {
    use crate::sim::care::{SimConfig, generate, write_files_grouped};
    let SimArgs {
        citizens,
        days,
        start,
        seed,
        limit,
        format,
        layout,
    } = args;
    let sor_codes: Vec<String> = loaded
        .mappings
        .teams
        .iter()
        .flat_map(|t| t.sor_codes.iter().cloned())
        .collect();
    anyhow::ensure!(
        !sor_codes.is_empty(),
        "the team mappings have no SOR codes to simulate"
    );
    let mut m = generate(&SimConfig {
        seed,
        citizens,
        start,
        days,
        sor_codes,
        time_zone: loaded.settings.time_zone,
    });
    if let Some(limit) = limit {
        m.bundles.truncate(limit);
    }
    let format = match format {
        FileFormat::Json => crate::sources::Format::Json,
        FileFormat::Xml => crate::sources::Format::Xml,
    };
    let n = write_files_grouped(&m, out, format, layout, loaded.settings.time_zone)
        .with_context(|| format!("cannot write into {}", out.display()))?;
    eprintln!(
        "wrote {} delivery reports of {citizens} citizens in {n} files to {}",
        m.bundles.len(),
        out.display()
    );
    Ok(EXIT_OK)
}

fn ingestor(loaded: &Loaded, store: &Store, source: &str) -> crate::sources::ingest::Ingestor {
    crate::sources::ingest::Ingestor::new(
        store.clone(),
        loaded.settings.pseudonym_key.clone(),
        loaded.settings.time_zone,
        std::sync::Arc::new(loaded.mappings.clone()),
        source,
    )
}

async fn pull(loaded: &Loaded, database: Option<&str>, only: Option<&str>) -> anyhow::Result<u8> {
    if let Some(name) = only {
        anyhow::ensure!(
            loaded.settings.sources.iter().any(|s| s.name == name),
            "no source named `{name}` in {}",
            loaded.settings.config_file.display()
        );
    }
    let store = open_store(loaded, database).await?;
    let (runs, failures) =
        crate::run::pull_sources(loaded, &store, only, false, chrono::Utc::now()).await;
    store.close().await;
    for f in &failures {
        eprintln!("error: {f}");
    }
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &runs)?;
    writeln!(out)?;
    Ok(if !failures.is_empty() {
        EXIT_FAILURE
    } else if runs.iter().any(|r| !r.summary.rejected.is_empty()) {
        EXIT_REJECTED
    } else {
        EXIT_OK
    })
}

async fn receive(
    loaded: &Loaded,
    database: Option<&str>,
    listen: std::net::SocketAddr,
) -> anyhow::Result<u8> {
    use crate::config::SourceKind;
    let Some((name, cfg)) = loaded.settings.sources.iter().find_map(|s| match &s.kind {
        SourceKind::FhirPush(cfg) => Some((s.name.as_str(), cfg.clone())),
        _ => None,
    }) else {
        anyhow::bail!(
            "no fhir_push source in {}",
            loaded.settings.config_file.display()
        );
    };
    let store = open_store(loaded, database).await?;
    let app = crate::sources::fhir_push::router(ingestor(loaded, &store, name), cfg);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(message = "Receiving.", address = %listener.local_addr()?, source = name);
    eprintln!("receiving on http://{}/fhir/Bundle", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    store.close().await;
    Ok(EXIT_OK)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn post(
    loaded: &Loaded,
    database: Option<&str>,
    as_of: Option<NaiveDate>,
    dry_run: bool,
) -> anyhow::Result<u8> {
    let tz = loaded.settings.time_zone;
    let now = chrono::Utc::now().with_timezone(&tz).naive_local();
    let as_of = as_of.unwrap_or_else(|| now.date() - chrono::Days::new(1));
    let store = open_store(loaded, database).await?;
    let ctx = crate::run::Context::new(store.clone(), std::sync::Arc::new(loaded.clone()));
    let report = crate::run::post_now(&ctx, as_of, now, dry_run).await;
    store.close().await;
    let Some(report) = report? else {
        eprintln!(
            "error: the nightly job is running in another process; try again when it is done"
        );
        return Ok(EXIT_FAILURE);
    };
    let summary = report.post;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &summary)?;
    writeln!(out)?;
    if report.outcome == crate::store::Outcome::Failed {
        for e in &report.errors {
            eprintln!("error: {e}");
        }
        return Ok(EXIT_FAILURE);
    }
    if dry_run {
        return Ok(EXIT_OK);
    }
    Ok(
        if !summary.delivery_errors.is_empty() || !summary.decision_errors.is_empty() {
            EXIT_FAILURE
        } else if !summary.vouchers_rejected.is_empty() {
            EXIT_REJECTED
        } else {
            EXIT_OK
        },
    )
}

/// Resolves on SIGINT or SIGTERM by setting the returned stop signal.
fn stop_on_signal() -> crate::run::StopSignal {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!(message = "Stop requested: finishing the step in flight.");
        let _ = tx.send(true);
        // Keep the sender, so receivers see `true` rather than a closed channel.
        std::future::pending::<()>().await;
    });
    rx
}

async fn daemon(loaded: Loaded, database: Option<&str>) -> anyhow::Result<u8> {
    let store = open_store(&loaded, database).await?;
    let stop = stop_on_signal();
    let ctx = crate::run::Context::new(store.clone(), std::sync::Arc::new(loaded));
    let metrics = std::sync::Arc::new(crate::api::Metrics::new());
    crate::daemon::serve(ctx, metrics, stop).await?;
    store.close().await;
    Ok(EXIT_OK)
}

/// The exit code of a finished run.
pub fn run_exit_code(outcome: crate::store::Outcome) -> u8 {
    use crate::store::Outcome;
    match outcome {
        Outcome::Ok | Outcome::Skipped => EXIT_OK,
        Outcome::Partial => EXIT_REJECTED,
        Outcome::Running | Outcome::Failed | Outcome::Interrupted | Outcome::Abandoned => {
            EXIT_FAILURE
        }
    }
}

async fn run_now(
    loaded: Loaded,
    database: Option<&str>,
    as_of: Option<NaiveDate>,
    dry_run: bool,
    job: Option<&str>,
) -> anyhow::Result<u8> {
    let (name, steps) = match job {
        None => ("nightly".to_owned(), crate::run::NIGHTLY.to_vec()),
        Some(name) => {
            let Some(j) = loaded.settings.daemon.jobs.iter().find(|j| j.name == name) else {
                anyhow::bail!(
                    "no job named `{name}` in {} (jobs: {})",
                    loaded.settings.config_file.display(),
                    loaded
                        .settings
                        .daemon
                        .jobs
                        .iter()
                        .map(|j| j.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            (j.name.clone(), j.steps.clone())
        }
    };
    let tz = loaded.settings.time_zone;
    let now = chrono::Utc::now().with_timezone(&tz).naive_local();
    let as_of = as_of.unwrap_or_else(|| now.date() - chrono::Days::new(1));
    let lease_ttl = loaded.settings.daemon.lease;
    let store = open_store(&loaded, database).await?;
    let stop = stop_on_signal();
    let ctx = crate::run::Context::new(store.clone(), std::sync::Arc::new(loaded));
    let Some(lease) = crate::run::Lease::claim(&ctx, &name, None, lease_ttl).await? else {
        eprintln!("error: job {name} is running in another process; try again when it is done");
        return Ok(EXIT_FAILURE);
    };
    let req = crate::run::Request {
        job: name,
        trigger: crate::store::Trigger::Manual,
        scheduled_for: None,
        as_of,
        now,
        dry_run,
        steps,
    };
    let report = crate::run::execute(&ctx, &req, &stop).await;
    lease.release().await?;
    let report = report?;
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &report)?;
    writeln!(out)?;
    store.close().await;
    Ok(run_exit_code(report.outcome))
}

async fn runs(
    loaded: &Loaded,
    database: Option<&str>,
    last: u32,
    job: Option<&str>,
    format: CoursesFormat,
) -> anyhow::Result<u8> {
    let store = open_store(loaded, database).await?;
    let runs = store.runs(last, job).await?;
    let mut out = std::io::stdout().lock();
    match format {
        CoursesFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &runs)?;
            writeln!(out)?;
        }
        CoursesFormat::Table => {
            let tz = loaded.settings.time_zone;
            let local = |t: chrono::DateTime<chrono::Utc>| {
                t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()
            };
            writeln!(
                out,
                "{:>5} {:<10} {:<9} {:<19} {:>7} {:<11} {:>7} {:>7} {:>5} {:>5} {:>5} {:>9} {:>6}",
                "run",
                "job",
                "trigger",
                "started",
                "seconds",
                "outcome",
                "pulled",
                "courses",
                "sent",
                "acc",
                "rej",
                "decisions",
                "errors"
            )?;
            for r in &runs {
                let seconds = r
                    .ended_at
                    .map(|e| format!("{:.1}", (e - r.started_at).as_seconds_f64()))
                    .unwrap_or_else(|| "-".into());
                writeln!(
                    out,
                    "{:>5} {:<10} {:<9} {:<19} {:>7} {:<11} {:>7} {:>7} {:>5} {:>5} {:>5} {:>9} {:>6}",
                    r.id,
                    r.job,
                    r.trigger.as_str(),
                    local(r.started_at),
                    seconds,
                    format!("{}{}", r.outcome, if r.dry_run { "*" } else { "" }),
                    r.counts.records_pulled,
                    r.counts.courses_changed,
                    r.counts.vouchers_sent,
                    r.counts.vouchers_accepted,
                    r.counts.vouchers_rejected,
                    r.counts.decisions_written,
                    r.errors.len()
                )?;
                for e in &r.errors {
                    writeln!(out, "      ! {e}")?;
                }
            }
            if runs.iter().any(|r| r.dry_run) {
                writeln!(out, "* dry run")?;
            }
        }
    }
    Ok(EXIT_OK)
}

fn report_findings(findings: &[Finding]) {
    for f in findings {
        tracing::debug!(message = "Data-quality finding.", finding = %f);
        eprintln!("finding: {f}");
    }
}

/// One row of `budget`.
#[derive(Debug, Serialize)]
struct BudgetRow {
    team: String,
    team_name: String,
    cost_centre: String,
    track: Track,
    month: String,
    course_days: u32,
    amount: String,
}

async fn figures(
    loaded: &Loaded,
    database: Option<&str>,
    from: NaiveDate,
    to: NaiveDate,
    filter: &crate::cockpit::Filter,
    format: BudgetFormat,
    locale: Locale,
) -> anyhow::Result<u8> {
    use crate::cockpit::{FigureRow, Number};
    let mut out = std::io::stdout().lock();
    if filter.figure.as_deref() == Some("list") {
        for d in crate::model::figures::CATALOGUE {
            writeln!(out, "{:<24} {}: {}", d.id, d.name, d.definition)?;
        }
        return Ok(EXIT_OK);
    }
    if let Err(e) = filter.check() {
        eprintln!("error: {e} (`--figure list` lists the figures)");
        return Ok(EXIT_USAGE);
    }
    if let Some(team) = filter.team.as_deref()
        && !["unassigned", "municipality"].contains(&team)
        && !loaded
            .mappings
            .teams
            .iter()
            .any(|t| t.team.id.as_str() == team)
    {
        eprintln!(
            "error: no team `{team}` in teams.toml (give a team id, `unassigned` or `municipality`)"
        );
        return Ok(EXIT_USAGE);
    }
    let store = open_store(loaded, database).await?;
    let figs = crate::pipeline::figures(
        &store,
        &loaded.mappings,
        loaded.settings.time_zone,
        from,
        to,
    )
    .await?;
    store.close().await;
    let number = match locale {
        Locale::En => Number::Plain,
        Locale::Da => Number::Danish,
    };
    let rows: Vec<FigureRow> = crate::cockpit::rows(&figs.figures, filter, number)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    match format {
        BudgetFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
        BudgetFormat::Csv => {
            let delimiter = if locale == Locale::Da { b';' } else { b',' };
            out.write_all(crate::cockpit::csv_text(&rows, delimiter)?.as_bytes())?;
        }
        BudgetFormat::Table => {
            writeln!(
                out,
                "{:<14} {:<7} {:<8} {:<24} {:>14} {:>16} {:>12}",
                "team", "month", "track", "figure", "value", "numerator", "denominator"
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "{:<14} {:<7} {:<8} {:<24} {:>14} {:>16} {:>12}",
                    r.team,
                    r.month,
                    r.track,
                    r.figure,
                    r.value.as_deref().unwrap_or("no data"),
                    r.numerator,
                    r.denominator.as_deref().unwrap_or("")
                )?;
            }
        }
    }
    // The data-quality findings behind the figures, on standard error (standard output stays
    // the figures alone): what the cockpit lists with what to do about each.
    if !figs.findings.is_empty() {
        let mut err = std::io::stderr().lock();
        writeln!(
            err,
            "data-quality findings behind these figures ({}):",
            figs.findings.len()
        )?;
        for f in &figs.findings {
            writeln!(
                err,
                "  {:<28} {:<14} {:<24} {:>8}",
                f.key.kind,
                f.key.scope.name(),
                f.key.detail,
                f.count
            )?;
        }
    }
    Ok(EXIT_OK)
}

async fn calibrate(
    loaded: &Loaded,
    database: Option<&str>,
    params: &crate::model::calibrate::Params,
    out_path: &std::path::Path,
    format: CoursesFormat,
) -> anyhow::Result<u8> {
    use crate::explain::kroner;
    use crate::model::calibrate;
    if out_path.exists() {
        eprintln!(
            "error: --out {} exists; give a new file (a calibration never overwrites a table)",
            out_path.display()
        );
        return Ok(EXIT_USAGE);
    }
    if let Some(parent) = out_path.parent().filter(|p| !p.as_os_str().is_empty())
        && !parent.is_dir()
    {
        eprintln!(
            "error: --out {}: the folder {} does not exist",
            out_path.display(),
            parent.display()
        );
        return Ok(EXIT_USAGE);
    }
    let Some(template) = calibrate::template_of(&loaded.mappings, params.track, params.to) else {
        eprintln!(
            "error: {}",
            calibrate::CalibrationError::NoTemplate(params.track, params.to)
        );
        return Ok(EXIT_CONFIG);
    };
    let store = open_store(loaded, database).await?;
    let costs = crate::pipeline::calibrate::collect(
        &store,
        &loaded.mappings,
        loaded.settings.time_zone,
        params.track,
        params.from,
        params.to,
    )
    .await;
    store.close().await;
    let c = match calibrate::calibrate(&costs?, template, params) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            // What was asked cannot be: a usage error; what the data lacks: a failure.
            return Ok(match e {
                calibrate::CalibrationError::FrameTooSmall { .. }
                | calibrate::CalibrationError::Percent(_) => EXIT_USAGE,
                _ => EXIT_FAILURE,
            });
        }
    };
    let text = calibrate::to_toml(&c);
    // Written beside, then renamed: never a half table.
    let tmp = out_path.with_extension("toml.part");
    std::fs::write(&tmp, &text).with_context(|| format!("writing {}", tmp.display()))?;
    if let Err(diags) = crate::mapping::load::load_tariffs_file(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!(
            "the calibrated table does not load: {}",
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    std::fs::rename(&tmp, out_path).with_context(|| format!("writing {}", out_path.display()))?;
    let mut out = std::io::stdout().lock();
    match format {
        CoursesFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &c)?;
            writeln!(out)?;
        }
        CoursesFormat::Table => {
            let p = &c.params;
            writeln!(
                out,
                "Calibration of the {} tariff table {} from {} to {} (template {}, {} kr./hour):",
                p.track,
                p.year,
                p.from,
                p.to,
                c.template,
                kroner(c.hourly_rate).trim_end_matches(" kr.")
            )?;
            writeln!(
                out,
                "{} courses, {} of them costed by visitated minutes (no visit in the period); {} individual course(s) costing {}",
                c.courses,
                c.costed_by_visitation,
                c.individual_courses,
                kroner(c.individual_cost)
            )?;
            for m in &c.merged {
                writeln!(out, "merged: {m}")?;
            }
            writeln!(out)?;
            writeln!(
                out,
                "{:<14} {:>5} {:>7} {:>11} {:>20} {:>14} {:>14} {:>14}",
                "kind", "group", "courses", "course-days", "cost", "per day", "scaled", "tariff"
            )?;
            for cell in &c.cells {
                writeln!(
                    out,
                    "{:<14} {:>5} {:>7} {:>11} {:>20} {:>14} {:>14} {:>14}",
                    cell.kind.as_str(),
                    if cell.pooled_with.len() > 1 {
                        format!("{}*", cell.group)
                    } else {
                        cell.group.to_string()
                    },
                    cell.courses,
                    cell.days,
                    kroner(cell.cost),
                    kroner(cell.unit_cost),
                    kroner(cell.scaled),
                    kroner(cell.tariff)
                )?;
            }
            if c.cells.iter().any(|x| x.pooled_with.len() > 1) {
                writeln!(out, "* merged: the unit cost is the pooled cells'.")?;
            }
            writeln!(out)?;
            writeln!(
                out,
                "factor                         {}",
                c.factor.round_dp(6)
            )?;
            writeln!(
                out,
                "frame                          {:>20}",
                kroner(p.frame)
            )?;
            writeln!(
                out,
                "expected total, scaled         {:>20}",
                kroner(c.scaled_total)
            )?;
            writeln!(
                out,
                "with premium {} % and overhead {} % {:>14}",
                p.premium_pct.normalize(),
                p.overhead_pct.normalize(),
                kroner(c.marked_up_total)
            )?;
            writeln!(
                out,
                "with the rounded tariffs       {:>20}",
                kroner(c.rounded_total)
            )?;
            writeln!(
                out,
                "rounding residue               {:>20}",
                format!("{} kr.", c.rounding_residue.round_dp(4))
            )?;
            writeln!(out)?;
            writeln!(
                out,
                "Written: {}. To adopt it for {}, add its [[table]] to mappings/tariffs.toml and run validate; see its effect first with whatif --tariffs {}.",
                out_path.display(),
                p.year,
                out_path.display()
            )?;
        }
    }
    Ok(EXIT_OK)
}

async fn whatif(
    loaded: &Loaded,
    database: Option<&str>,
    tariffs: &std::path::Path,
    from: NaiveDate,
    to: NaiveDate,
    format: BudgetFormat,
) -> anyhow::Result<u8> {
    use crate::explain::kroner;
    let drafts = match crate::mapping::load::load_tariffs_file(tariffs) {
        Ok(t) => t,
        Err(diags) => {
            for d in &diags {
                eprintln!("{d}");
            }
            if tariffs.is_file() {
                eprintln!("the draft {} is not a valid tariff file", tariffs.display());
            }
            return Ok(EXIT_CONFIG);
        }
    };
    let store = open_store(loaded, database).await?;
    let w = crate::pipeline::whatif::whatif(
        &store,
        &loaded.mappings,
        loaded.settings.time_zone,
        &drafts,
        from,
        to,
    )
    .await;
    store.close().await;
    let w = w?;
    let mut out = std::io::stdout().lock();
    match format {
        BudgetFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &w)?;
            writeln!(out)?;
        }
        BudgetFormat::Csv => {
            let mut csv = csv::Writer::from_writer(Vec::new());
            csv.write_record([
                "level",
                "team",
                "track",
                "month",
                "year",
                "kind",
                "group",
                "courses",
                "course_days",
                "in_force",
                "draft",
                "difference",
            ])?;
            for m in &w.months {
                csv.write_record([
                    "month",
                    &m.team,
                    m.track.as_str(),
                    &m.month,
                    "",
                    "",
                    "",
                    "",
                    &m.course_days.to_string(),
                    &m.in_force.to_string(),
                    &m.draft.to_string(),
                    &m.difference.to_string(),
                ])?;
            }
            for c in &w.cells {
                csv.write_record([
                    "cell",
                    "",
                    c.track.as_str(),
                    "",
                    &c.year.to_string(),
                    c.kind.as_str(),
                    &c.group.map_or(String::new(), |g| g.to_string()),
                    &c.courses.to_string(),
                    &c.course_days.to_string(),
                    &c.in_force.to_string(),
                    &c.draft.to_string(),
                    &c.difference.to_string(),
                ])?;
            }
            out.write_all(&csv.into_inner().map_err(|e| e.into_error())?)?;
        }
        BudgetFormat::Table => {
            let drafts: Vec<String> = w
                .drafts
                .iter()
                .map(|(t, replaces)| {
                    format!(
                        "{t} ({})",
                        if *replaces {
                            "replaces the table in force"
                        } else {
                            "a new year"
                        }
                    )
                })
                .collect();
            writeln!(
                out,
                "What if {} had been in force, {} to {} (nothing is stored or sent; {} recorded decision(s) priced by the draft):",
                drafts.join(", "),
                from,
                to,
                w.recorded_repriced
            )?;
            writeln!(out)?;
            writeln!(
                out,
                "{:<12} {:<8} {:<7} {:>11} {:>20} {:>20} {:>18}",
                "team", "track", "month", "course-days", "in force", "draft", "difference"
            )?;
            for m in &w.months {
                writeln!(
                    out,
                    "{:<12} {:<8} {:<7} {:>11} {:>20} {:>20} {:>18}",
                    m.team,
                    m.track.as_str(),
                    m.month,
                    m.course_days,
                    kroner(m.in_force),
                    kroner(m.draft),
                    kroner(m.difference)
                )?;
            }
            writeln!(
                out,
                "{:<40} {:>20} {:>20} {:>18}",
                "total",
                kroner(w.total_in_force),
                kroner(w.total_draft),
                kroner(w.total_draft - w.total_in_force)
            )?;
            writeln!(out)?;
            writeln!(
                out,
                "{:<8} {:>4} {:<14} {:>5} {:>7} {:>11} {:>20} {:>20} {:>18}",
                "track",
                "year",
                "kind",
                "group",
                "courses",
                "course-days",
                "in force",
                "draft",
                "difference"
            )?;
            for c in &w.cells {
                writeln!(
                    out,
                    "{:<8} {:>4} {:<14} {:>5} {:>7} {:>11} {:>20} {:>20} {:>18}",
                    c.track.as_str(),
                    c.year,
                    c.kind.as_str(),
                    c.group.map_or("-".into(), |g| g.to_string()),
                    c.courses,
                    c.course_days,
                    kroner(c.in_force),
                    kroner(c.draft),
                    kroner(c.difference)
                )?;
            }
        }
    }
    Ok(EXIT_OK)
}

async fn budget(
    loaded: &Loaded,
    database: Option<&str>,
    from: NaiveDate,
    to: NaiveDate,
    format: BudgetFormat,
    locale: Locale,
) -> anyhow::Result<u8> {
    let store = open_store(loaded, database).await?;
    // A projection: recorded decisions are read, new ones are decided but not recorded.
    let eval = crate::pipeline::evaluate_streaming(
        &store,
        &loaded.mappings,
        loaded.settings.time_zone,
        to,
        crate::pipeline::Options {
            income: crate::pipeline::IncomeWanted::Period(from, to),
            keep_histories: false,
        },
    )
    .await?;
    let report = eval.income.clone().unwrap_or_default();
    let mut findings = eval.findings.clone();
    findings.extend(report.findings);
    report_findings(&findings);
    let m = &loaded.mappings;
    let rows: Vec<(BudgetRow, rust_decimal::Decimal)> = report
        .lines
        .iter()
        .map(|(k, l)| {
            let (team_name, cost_centre) = match &k.payee {
                crate::model::Payee::Team(id) => m.team(id).map_or_else(
                    || (String::new(), String::new()),
                    |t| (t.name.clone(), t.cost_centre.to_string()),
                ),
                crate::model::Payee::Unassigned => (
                    "(no team)".to_owned(),
                    m.accounts
                        .as_ref()
                        .map(|a| a.fallback_cost_centre.to_string())
                        .unwrap_or_default(),
                ),
            };
            (
                BudgetRow {
                    team: k.payee.to_string(),
                    team_name,
                    cost_centre,
                    track: k.track,
                    month: k.month.to_string(),
                    course_days: l.course_days,
                    amount: round_money(l.amount).to_string(),
                },
                round_money(l.amount),
            )
        })
        .collect();
    let mut out = std::io::stdout().lock();
    match format {
        BudgetFormat::Json => {
            let plain: Vec<&BudgetRow> = rows.iter().map(|(r, _)| r).collect();
            serde_json::to_writer_pretty(&mut out, &plain)?;
            writeln!(out)?;
        }
        BudgetFormat::Csv => {
            let mut w = csv::WriterBuilder::new()
                .delimiter(if locale == Locale::Da { b';' } else { b',' })
                .from_writer(out);
            w.write_record([
                "team",
                "team_name",
                "cost_centre",
                "track",
                "month",
                "course_days",
                "amount",
            ])?;
            for (r, amount) in &rows {
                w.write_record([
                    r.team.as_str(),
                    r.team_name.as_str(),
                    r.cost_centre.as_str(),
                    r.track.as_str(),
                    r.month.as_str(),
                    &r.course_days.to_string(),
                    &amount_text(*amount, locale),
                ])?;
            }
            w.flush()?;
        }
        BudgetFormat::Table => {
            writeln!(
                out,
                "{:<12} {:<20} {:<11} {:<8} {:<7} {:>11} {:>16}",
                "team", "name", "cost centre", "track", "month", "course-days", "amount (DKK)"
            )?;
            let mut total = rust_decimal::Decimal::ZERO;
            for (r, amount) in &rows {
                writeln!(
                    out,
                    "{:<12} {:<20} {:<11} {:<8} {:<7} {:>11} {:>16}",
                    r.team,
                    r.team_name,
                    r.cost_centre,
                    r.track,
                    r.month,
                    r.course_days,
                    amount_text(*amount, locale)
                )?;
                total += amount;
            }
            writeln!(out, "{:<74} {:>16}", "total", amount_text(total, locale))?;
        }
    }
    Ok(EXIT_OK)
}

async fn vouchers(
    loaded: &Loaded,
    database: Option<&str>,
    state: Option<String>,
    month: Option<String>,
    format: BudgetFormat,
) -> anyhow::Result<u8> {
    use crate::sinks::finance::VoucherState;
    let state = match state.as_deref() {
        None => None,
        Some(s) => Some(VoucherState::parse(s).ok_or_else(|| {
            anyhow::anyhow!("--state `{s}`: expected pending, sent, accepted or rejected")
        })?),
    };
    if let Some(m) = &month
        && chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_err()
    {
        eprintln!("error: --month `{m}`: expected YYYY-MM (e.g. 2027-01)");
        return Ok(EXIT_USAGE);
    }
    let store = open_store(loaded, database).await?;
    #[derive(Serialize)]
    struct Row {
        number: String,
        team: String,
        track: Track,
        month: String,
        amount: String,
        state: &'static str,
        message: Option<String>,
        file: Option<String>,
    }
    let rows: Vec<Row> = store
        .vouchers()
        .await?
        .into_iter()
        .filter(|v| state.is_none_or(|s| v.state == s))
        .filter(|v| {
            month
                .as_ref()
                .is_none_or(|m| v.voucher.month.to_string() == *m)
        })
        .map(|v| Row {
            number: v.voucher.number.0.clone(),
            team: v.voucher.team.clone(),
            track: v.voucher.track,
            month: v.voucher.month.to_string(),
            amount: v.voucher.amount.to_string(),
            state: v.state.as_str(),
            message: v.message.clone(),
            file: v.file_name.clone(),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    match format {
        BudgetFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
        BudgetFormat::Csv => {
            let mut w = csv::Writer::from_writer(out);
            w.write_record([
                "number", "team", "track", "month", "amount", "state", "message", "file",
            ])?;
            for r in &rows {
                w.write_record([
                    r.number.as_str(),
                    r.team.as_str(),
                    r.track.as_str(),
                    r.month.as_str(),
                    r.amount.as_str(),
                    r.state,
                    r.message.as_deref().unwrap_or(""),
                    r.file.as_deref().unwrap_or(""),
                ])?;
            }
            w.flush()?;
        }
        BudgetFormat::Table => {
            writeln!(
                out,
                "{:<10} {:<12} {:<8} {:<7} {:>14} {:<8} message",
                "number", "team", "track", "month", "amount (DKK)", "state"
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "{:<10} {:<12} {:<8} {:<7} {:>14} {:<8} {}",
                    r.number,
                    r.team,
                    r.track,
                    r.month,
                    r.amount,
                    r.state,
                    r.message.as_deref().unwrap_or("")
                )?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// One row of `courses`.
#[derive(Debug, Serialize)]
struct CourseRow<'a> {
    id: &'a str,
    citizen: &'a str,
    track: Track,
    kind: &'static str,
    need_score: u32,
    group: Option<u8>,
    tariff_year: i32,
    /// Locked daily tariff (2+ decimals, exact), or `null` for an individual course.
    daily_tariff: Option<String>,
    /// Hourly rate of an individual course.
    hourly_rate: Option<String>,
    start: NaiveDate,
    planned_end: NaiveDate,
    end: NaiveDate,
    end_reason: &'static str,
}

impl<'a> From<&'a Course> for CourseRow<'a> {
    fn from(c: &'a Course) -> Self {
        let (daily_tariff, hourly_rate) = match c.tariff {
            DailyTariff::Locked { amount } => (Some(amount.to_string()), None),
            DailyTariff::Individual { hourly_rate } => (None, Some(hourly_rate.to_string())),
        };
        CourseRow {
            id: &c.id.0,
            citizen: c.citizen.as_str(),
            track: c.track,
            kind: c.kind.as_str(),
            need_score: c.need_score,
            group: c.group,
            tariff_year: c.tariff_year,
            daily_tariff,
            hourly_rate,
            start: c.start,
            planned_end: c.planned_end,
            end: c.end,
            end_reason: c.end_reason.as_str(),
        }
    }
}

/// The latest day the stored records report something on: the default horizon of `courses`.
/// A grant's end is not a reported day (an open grant is often sent ending 9999-12-31), so
/// courses are never computed towards it.
async fn courses(
    loaded: &Loaded,
    database: Option<&str>,
    until: Option<NaiveDate>,
    format: CoursesFormat,
) -> anyhow::Result<u8> {
    let store = open_store(loaded, database).await?;
    let tz = loaded.settings.time_zone;
    // A reader: recorded decisions are read back, courses without one are shown as they
    // would be decided; nothing is written (the nightly run records). Without --until, up to
    // the latest day the stored data reports something on (one streaming pass finds it).
    let streamed = |h| {
        crate::pipeline::evaluate_streaming(
            &store,
            &loaded.mappings,
            tz,
            h,
            crate::pipeline::Options::default(),
        )
    };
    let eval = match until {
        Some(h) => Some(streamed(h).await?),
        None => {
            let first = streamed(NaiveDate::MIN).await?;
            match first.latest_day {
                Some(h) => Some(streamed(h).await?),
                None => None,
            }
        }
    };
    let all: Vec<Course> = match eval {
        Some(eval) => {
            report_findings(&eval.findings);
            eval.all_courses()
        }
        None => Vec::new(),
    };
    let rows: Vec<CourseRow<'_>> = all.iter().map(CourseRow::from).collect();
    let mut out = std::io::stdout().lock();
    match format {
        CoursesFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
        CoursesFormat::Table => {
            writeln!(
                out,
                "{:<32} {:<14} {:<8} {:<13} {:>5} {:>5} {:>14} {:<10} {:<11} {:<10} end reason",
                "course",
                "citizen",
                "track",
                "kind",
                "score",
                "group",
                "daily tariff",
                "start",
                "planned end",
                "end"
            )?;
            for r in &rows {
                let tariff = match (&r.daily_tariff, &r.hourly_rate) {
                    (Some(t), _) => t.clone(),
                    (None, Some(rate)) => format!("{rate}/h"),
                    (None, None) => String::new(),
                };
                writeln!(
                    out,
                    "{:<32} {:<14} {:<8} {:<13} {:>5} {:>5} {:>14} {:<10} {:<11} {:<10} {}",
                    r.id,
                    crate::domain::short_form(r.citizen),
                    r.track,
                    r.kind,
                    r.need_score,
                    r.group.map(|g| g.to_string()).unwrap_or_else(|| "-".into()),
                    tariff,
                    r.start,
                    r.planned_end,
                    r.end,
                    r.end_reason
                )?;
            }
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://gw:s3cret@db:5432/gw"),
            "postgres://gw:****@db:5432/gw"
        );
        assert_eq!(redact_url("postgres://gw@db/gw"), "postgres://gw@db/gw");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            redact_url("postgres://db/gw?user=gw&password=s3cret&sslmode=require"),
            "postgres://db/gw?user=gw&password=****&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://gw:a@db/gw?sslpassword=k"),
            "postgres://gw:****@db/gw?sslpassword=****"
        );
    }
}
