//! Configuration: the TOML file, environment overrides, secrets, and the mapping files.
//!
//! [`load`] reads the configuration file, applies environment overrides, reads every mapping
//! file (see [`crate::mapping::load`]) and validates all of it, collecting every problem found
//! into one [`ConfigError`] whose lines read `FILE:LINE: message`.
//!
//! # The file
//!
//! See `config/example.toml`. Keys (all optional except the pseudonym key):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `time_zone` | `Europe/Copenhagen` | IANA time zone; every model date is a local date in it |
//! | `store.url` | `sqlite://progression-gateway.db` | database URL (`sqlite:` or `postgres://`) |
//! | `pseudonym.key` | none | the pseudonym key itself (demonstration only) |
//! | `pseudonym.key_file` | none | a file holding the pseudonym key (trimmed) |
//! | `mappings.dir` | `mappings` | the mapping folder, relative to the configuration file |
//! | `log.format` | `human` | `human` or `json` |
//! | `log.level` | `info` | level or filter directives, as for `RUST_LOG` |
//! | `teams.roster` | none | team roster CSV, relative to the configuration file |
//! | `events.dir` | none | folder of termination events CSV files, relative to the configuration file |
//! | `[[source]]` | none | sources: `name`, `secret_file`/`secret_env`, one of `[source.files]`, `[source.fhir_pull]`, `[source.fhir_push]`, `[source.nexus]` |
//! | `[finance]` | none | vouchers: `[finance.format.opus\|csv]`, `[finance.transport]` |
//! | `[decisions]` | none | ChargeItems to the care system |
//! | `daemon.catch_up` | `true` | run a missed scheduled run once on start |
//! | `daemon.lease_secs` | `300` | job lease, renewed every third while running |
//! | `[[job]]` | nightly 02:30, prune Sun 04:00 | `name`, `schedule` (cron), `steps`, `catch_up` |
//! | `retention.runs_days` | `400` | journal runs kept |
//! | `retention.files_days` | `90` | archived and rejected files kept |
//! | `http.listen` | none | address of the operations HTTP server |
//! | `http.token_file` | none | its bearer token (or `PROGRESSION_GATEWAY__HTTP__TOKEN`) |
//! | `[actuals]` | none | finance actuals CSV folder: `dir`, `delimiter`, `encoding`, `decimal_comma`, `[actuals.columns]` |
//! | `[figures_export]` | none | nightly steering figures CSV: `columns`, `headers`, `figures`, `delimiter`, `decimal_comma`, `file_prefix`, `[figures_export.transport]` (default the vouchers') |
//! | `[cockpit]` | none | `trusted_header`, `secure_cookie`, `session_hours`, `drafts_dir`, `[[cockpit.principal]]` (`name`, `token_sha256` or `user`, `teams` or `all`) |
//!
//! # Environment overrides
//!
//! A variable named [`ENV_PREFIX`] followed by the key path in upper case, with `__` between a
//! table and its key, overrides that key: `PROGRESSION_GATEWAY__TIME_ZONE`,
//! `PROGRESSION_GATEWAY__STORE__URL`, `PROGRESSION_GATEWAY__PSEUDONYM__KEY`,
//! `PROGRESSION_GATEWAY__PSEUDONYM__KEY_FILE`, `PROGRESSION_GATEWAY__MAPPINGS__DIR`,
//! `PROGRESSION_GATEWAY__LOG__FORMAT`, `PROGRESSION_GATEWAY__LOG__LEVEL`, and the secrets
//! `PROGRESSION_GATEWAY__FINANCE__BEARER_TOKEN`, `PROGRESSION_GATEWAY__DECISIONS__CLIENT_SECRET`,
//! `PROGRESSION_GATEWAY__HTTP__TOKEN`.
//! Setting `pseudonym.key` this way replaces a `key_file` of the file and the other way round.
//! Any other variable starting with the prefix is an error; variables with a single underscore
//! after `PROGRESSION_GATEWAY` (such as `PROGRESSION_GATEWAY_TEST_PG`) are not overrides and are
//! ignored. Diagnostics name the variable, never its value.

use crate::domain::PseudonymKey;
use crate::mapping::Mappings;
use crate::mapping::load::{
    Source, de_document, did_you_mean, parse_toml, read, unknown_value_message,
};
use secrecy::SecretString;
use serde::Deserialize;
use std::ffi::OsString;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub use crate::mapping::load::Diagnostic;

/// The configuration file used when `--config` is not given.
pub const DEFAULT_CONFIG_FILE: &str = "config/gateway.toml";

/// Prefix of environment overrides; `__` separates a table from its key.
pub const ENV_PREFIX: &str = "PROGRESSION_GATEWAY__";

/// Default of `time_zone`.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Copenhagen";
/// Default of `store.url`.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://progression-gateway.db";
/// Default of `mappings.dir` (relative to the configuration file).
pub const DEFAULT_MAPPINGS_DIR: &str = "mappings";
/// The first directive of a log filter that is a bare word but no level (`infoo`), if any.
fn unknown_level(filter: &str) -> Option<&str> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !d.contains(['=', ':', '[']))
        .find(|d| !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d)) && !d.contains("::"))
}

/// Default of `log.level`.
pub const DEFAULT_LOG_LEVEL: &str = "info";

/// The validated settings. Its `Debug` never shows the pseudonym key.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The configuration file these settings were read from, as given.
    pub config_file: PathBuf,
    /// The time zone every model date is a local date in.
    pub time_zone: chrono_tz::Tz,
    /// Database URL (`sqlite:` or `postgres://`). A relative SQLite path, such as
    /// `sqlite://progression-gateway.db`, stays relative to the working directory of the
    /// process (it is not resolved against the configuration file).
    pub database_url: String,
    /// The key of the citizen pseudonyms.
    pub pseudonym_key: PseudonymKey,
    /// The mapping folder, resolved against the configuration file's folder when relative.
    pub mappings_dir: PathBuf,
    /// Logging.
    pub log: LogSettings,
    /// The team roster file, if the municipality keeps one (resolved against the
    /// configuration file's folder).
    pub roster: Option<PathBuf>,
    /// The folder of termination events files (deaths, moves out, nursing-home moves), if the
    /// municipality exports them (resolved against the configuration file's folder; an
    /// existing folder).
    pub events: Option<PathBuf>,
    /// The configured sources, in file order.
    pub sources: Vec<SourceSettings>,
    /// Vouchers to the finance system, if configured.
    pub finance: Option<crate::sinks::post::FinanceSettings>,
    /// Tariff decisions to the care system, if configured.
    pub decisions: Option<crate::sinks::decisions::DecisionsConfig>,
    /// The daemon: jobs, leases, the operations HTTP server, retention.
    pub daemon: crate::daemon::DaemonSettings,
    /// The steering cockpit's principals, served with the operations endpoints (`[http]`).
    pub cockpit: Option<crate::cockpit::CockpitSettings>,
    /// The finance system's actuals folder (`[actuals]`, its `dir` resolved against the
    /// configuration file's folder; an existing folder).
    pub actuals: Option<crate::sources::actuals::ActualsSettings>,
    /// The nightly steering figures file to finance and BI (`[figures_export]`; a folder
    /// transport's folders resolved against the configuration file's folder).
    pub figures_export: Option<crate::sinks::figures::FiguresExportSettings>,
}

/// A configured source.
#[derive(Debug, Clone)]
pub struct SourceSettings {
    /// Unique name: cursors and read files are kept under it.
    pub name: String,
    /// What kind of source, with its settings.
    pub kind: SourceKind,
}

/// The kinds of source.
#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A landing folder of delivery-report files.
    Files(crate::sources::files::FilesConfig),
    /// A FHIR server searched for changed Bundles.
    FhirPull(crate::sources::fhir_pull::PullConfig),
    /// An endpoint care systems post Bundles to.
    FhirPush(crate::sources::fhir_push::PushConfig),
    /// A KMD Nexus instance pulled through its REST API.
    Nexus(Box<crate::sources::nexus::NexusSettings>),
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Line format.
    pub format: LogFormat,
    /// Level or filter directives, as for `RUST_LOG` (checked to parse as an `EnvFilter`).
    pub level: String,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable lines (the default).
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Settings and mappings, all validated.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The settings.
    pub settings: Settings,
    /// The municipality's mappings.
    pub mappings: Mappings,
}

/// Everything wrong with a configuration: one line per diagnostic.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", display_lines(.diagnostics))]
pub struct ConfigError {
    /// The problems, in the order found (configuration file and environment first, then the
    /// mapping files).
    pub diagnostics: Vec<Diagnostic>,
}

fn display_lines(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a command needs of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Everything, secrets included (commands that receive, send or pseudonymise).
    Everything,
    /// The store and the mappings only (commands that only read the store: `budget`,
    /// `courses`, `vouchers`, `runs`). No secret is read: no source is set up, the HTTP
    /// token is not read, and the pseudonym key is a fresh random one that matches nothing
    /// stored (a reader never pseudonymises).
    Reader,
}

/// Reads the configuration file at `path`, the environment overrides and every mapping file;
/// validates all of it and returns every problem found, not just the first.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    load_with_env(path, std::env::vars_os())
}

/// [`load`] for a command with the given [`Purpose`].
pub fn load_for(path: &Path, purpose: Purpose) -> Result<Loaded, ConfigError> {
    load_with_env_for(path, std::env::vars_os(), purpose)
}

/// [`load`] with the environment given explicitly (for tests and embedding): only variables
/// starting with [`ENV_PREFIX`] are looked at.
pub fn load_with_env(
    path: &Path,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<Loaded, ConfigError> {
    load_with_env_for(path, env, Purpose::Everything)
}

/// [`load_with_env`] for a command with the given [`Purpose`].
pub fn load_with_env_for(
    path: &Path,
    env: impl IntoIterator<Item = (OsString, OsString)>,
    purpose: Purpose,
) -> Result<Loaded, ConfigError> {
    let mut diags = Vec::new();
    let config_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };

    let src = read(path, &mut diags);
    let (mut layers, file_ok) = match &src {
        Some(src) => read_file_layer(src, &mut diags),
        None => (Layers::default(), false),
    };
    apply_env(&mut layers, env, &mut diags);

    let mappings_dir = resolve(
        &config_dir,
        layers
            .mappings_dir
            .as_ref()
            .map_or(DEFAULT_MAPPINGS_DIR, |v| v.value.as_str()),
    );
    let settings = if file_ok {
        build_settings(
            path,
            &config_dir,
            mappings_dir.clone(),
            layers,
            purpose,
            &mut diags,
        )
    } else {
        None
    };

    let mappings = match crate::mapping::load::load_dir(&mappings_dir) {
        Ok(m) => Some(m),
        Err(mapping_diags) => {
            diags.extend(mapping_diags);
            None
        }
    };
    if let (Some(settings), Some(mappings)) = (&settings, &mappings) {
        for source in &settings.sources {
            if let SourceKind::Nexus(nexus) = &source.kind {
                let known = |code: &str| mappings.interventions.get(code).is_some();
                diags.extend(nexus.grant_codes.unknown_codes(known).into_iter().map(|p| {
                    Diagnostic::file(
                        path.display().to_string(),
                        format!("source `{}`: {p}", source.name),
                    )
                }));
            }
        }
    }
    if let (Some(settings), Some(mappings)) = (&settings, &mappings)
        && let Some(cockpit) = &settings.cockpit
    {
        let teams: Vec<_> = mappings.teams.iter().map(|t| t.team.id.clone()).collect();
        let mut problems = cockpit.problems(&teams);
        if settings.daemon.http.is_none() {
            problems.push(
                "[cockpit] is served with the operations endpoints: configure [http] too".into(),
            );
        }
        diags.extend(
            problems
                .into_iter()
                .map(|p| Diagnostic::file(path.display().to_string(), p)),
        );
    }
    match (settings, mappings) {
        (Some(settings), Some(mappings)) if diags.is_empty() => Ok(Loaded { settings, mappings }),
        _ => Err(ConfigError { diagnostics: diags }),
    }
}

/// `dir` resolved against `base` when relative, with `.` and `..` removed lexically (so that
/// `config/../mappings` reads `mappings` in messages; symbolic links are not followed).
fn resolve(base: &Path, dir: &str) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in base.join(dir).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else if !matches!(
                    out.components().next_back(),
                    Some(Component::RootDir | Component::Prefix(_))
                ) {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The file as written
// ---------------------------------------------------------------------------------------------

/// The configuration file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// IANA time zone (default `Europe/Copenhagen`).
    time_zone: Option<Spanned<String>>,
    /// `[store]` (default: all defaults).
    #[serde(default)]
    store: RawStore,
    /// `[pseudonym]`: required, unless the key comes from the environment.
    #[serde(default)]
    pseudonym: RawPseudonym,
    /// `[mappings]` (default: all defaults).
    #[serde(default)]
    mappings: RawMappings,
    /// `[log]` (default: all defaults).
    #[serde(default)]
    log: RawLog,
    /// `[teams]` (default: no roster).
    #[serde(default)]
    teams: RawTeams,
    /// `[events]` (default: no events folder).
    #[serde(default)]
    events: RawEvents,
    /// `[finance]`: vouchers to the finance system (default: none configured).
    finance: Option<crate::sinks::post::FinanceSettings>,
    /// `[decisions]`: tariff decisions to the care system (default: none configured).
    decisions: Option<crate::sinks::decisions::DecisionsConfig>,
    /// `[[source]]`: read one by one from the document, for their lines.
    #[serde(default, rename = "source")]
    _source: Vec<serde::de::IgnoredAny>,
    /// `[daemon]` (default: all defaults).
    #[serde(default)]
    daemon: crate::daemon::settings::RawDaemon,
    /// `[[job]]` (default: the nightly run at 02:30 and pruning on Sundays at 04:00).
    #[serde(default, rename = "job")]
    jobs: Vec<crate::daemon::settings::RawJob>,
    /// `[http]`: the operations HTTP server (default: none).
    http: Option<Spanned<crate::daemon::settings::RawHttp>>,
    /// `[retention]` (default: all defaults).
    #[serde(default)]
    retention: crate::run::Retention,
    /// `[cockpit]`: who may see the steering figures (default: no cockpit).
    cockpit: Option<crate::cockpit::CockpitSettings>,
    /// `[actuals]`: the finance system's actuals folder (default: none).
    actuals: Option<Spanned<crate::sources::actuals::ActualsSettings>>,
    /// `[figures_export]`: the steering figures file (default: none).
    figures_export: Option<Spanned<crate::sinks::figures::FiguresExportSettings>>,
}

/// `[teams]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeams {
    /// A team roster CSV file, relative to the configuration file (default none).
    roster: Option<Spanned<String>>,
}

/// `[events]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvents {
    /// The folder of termination events CSV files, relative to the configuration file
    /// (default none).
    dir: Option<Spanned<String>>,
}

/// One `[[source]]`: a name, where its secret comes from, and exactly one kind table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    /// Unique name; cursors and read files are kept under it.
    name: Spanned<String>,
    /// The file holding the source's secret (fhir-pull: the OAuth2 client secret; fhir-push:
    /// the bearer token), relative to the configuration file.
    secret_file: Option<Spanned<String>>,
    /// The environment variable holding the source's secret.
    secret_env: Option<Spanned<String>>,
    /// `[source.files]`: a landing folder.
    files: Option<crate::sources::files::FilesConfig>,
    /// `[source.fhir_pull]`: a FHIR server to search.
    fhir_pull: Option<crate::sources::fhir_pull::PullConfig>,
    /// `[source.fhir_push]`: an endpoint care systems post Bundles to.
    fhir_push: Option<RawPush>,
    /// `[source.nexus]`: a KMD Nexus instance.
    nexus: Option<crate::sources::nexus::NexusConfig>,
}

/// `[source.fhir_push]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPush {
    /// Largest accepted body in bytes (default 20 MiB).
    max_body_bytes: Option<usize>,
    /// Pushes read and stored at once (default 4); more wait.
    max_in_flight: Option<usize>,
}

/// `[store]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    /// Database URL (default `sqlite://progression-gateway.db`).
    url: Option<Spanned<String>>,
}

/// `[pseudonym]`: exactly one of `key` and `key_file`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPseudonym {
    /// The key itself (no default).
    key: Option<Spanned<SecretText>>,
    /// A file holding the key, relative to the configuration file (no default).
    key_file: Option<Spanned<String>>,
}

/// A secret written in the file: a string, and an error that never echoes a value of the
/// wrong type (serde's own "invalid type: integer `123`" would).
struct SecretText(SecretString);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        const WRONG: &str = "the pseudonym key must be a quoted string";
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SecretText;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SecretText, E> {
                Ok(SecretText(SecretString::from(s.to_owned())))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretText, E> {
                Err(E::custom(WRONG))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretText, E> {
                Err(E::custom(WRONG))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretText, E> {
                Err(E::custom(WRONG))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretText, E> {
                Err(E::custom(WRONG))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `[mappings]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMappings {
    /// The mapping folder, relative to the configuration file (default `mappings`).
    dir: Option<Spanned<String>>,
}

/// `[log]`.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    /// `human` or `json` (default `human`).
    format: Option<Spanned<String>>,
    /// Level or filter directives (default `info`).
    level: Option<Spanned<String>>,
}

// ---------------------------------------------------------------------------------------------
// Values with their origin: file line or environment variable
// ---------------------------------------------------------------------------------------------

/// Where a value came from, so that a diagnostic can point at it.
#[derive(Clone)]
enum Origin {
    /// The configuration file, at a line.
    File { file: String, line: usize },
    /// An environment variable (its name).
    Env(String),
}

impl Origin {
    fn diag(&self, message: impl Into<String>) -> Diagnostic {
        match self {
            Origin::File { file, line } => Diagnostic::at(file, *line, message),
            Origin::Env(var) => Diagnostic::file(format!("env {var}"), message),
        }
    }
}

/// Where each key of a table is written, by its dotted path within the table (`nexus.page_size`).
type KeyOrigins = std::collections::HashMap<String, Origin>;

/// Records the line of every key of `value`'s tables, nested ones too, under `prefix`.
fn key_origins(
    value: &Spanned<toml::de::DeValue<'_>>,
    prefix: &str,
    at: &dyn Fn(Range<usize>) -> Origin,
    out: &mut KeyOrigins,
) {
    if let toml::de::DeValue::Table(table) = value.get_ref() {
        for (k, v) in table.iter() {
            let path = format!("{prefix}{}", k.get_ref());
            key_origins(v, &format!("{path}."), at, out);
            out.insert(path, at(k.span()));
        }
    }
}

/// A value and where it came from.
struct Sourced<T> {
    value: T,
    origin: Origin,
}

/// Every setting after the file and the environment, before validation.
#[derive(Default)]
struct Layers {
    time_zone: Option<Sourced<String>>,
    store_url: Option<Sourced<String>>,
    key: Option<Sourced<SecretString>>,
    key_file: Option<Sourced<String>>,
    mappings_dir: Option<Sourced<String>>,
    log_format: Option<Sourced<String>>,
    log_level: Option<Sourced<String>>,
    roster: Option<Sourced<String>>,
    events: Option<Sourced<String>>,
    sources: Vec<(Origin, RawSource, KeyOrigins)>,
    finance: Option<crate::sinks::post::FinanceSettings>,
    decisions: Option<crate::sinks::decisions::DecisionsConfig>,
    finance_token: Option<SecretString>,
    decisions_secret: Option<SecretString>,
    http_token: Option<SecretString>,
    daemon: crate::daemon::settings::RawDaemon,
    jobs: Vec<crate::daemon::settings::RawJob>,
    http: Option<(Origin, crate::daemon::settings::RawHttp)>,
    retention: crate::run::Retention,
    cockpit: Option<crate::cockpit::CockpitSettings>,
    actuals: Option<(Origin, crate::sources::actuals::ActualsSettings)>,
    figures_export: Option<(Origin, crate::sinks::figures::FiguresExportSettings)>,
    /// Line of `[pseudonym]` (or 1), for "no key" diagnostics.
    pseudonym_origin: Option<Origin>,
}

/// Reads the file into layers; `false` if the file itself has an error.
fn read_file_layer(src: &Source, diags: &mut Vec<Diagnostic>) -> (Layers, bool) {
    let Some(root) = parse_toml(src, diags) else {
        return (Layers::default(), false);
    };
    let Some(raw) = de_document::<RawConfig>(src, &root, diags) else {
        // Still find the mapping folder, so the mapping files are checked too.
        let dir = root
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref() == "mappings")
            .and_then(|(_, v)| v.get_ref().as_table())
            .and_then(|t| t.iter().find(|(k, _)| k.get_ref() == "dir"))
            .and_then(|(_, v)| v.get_ref().as_str().map(str::to_owned));
        let layers = Layers {
            mappings_dir: dir.map(|value| Sourced {
                value,
                origin: Origin::File {
                    file: src.name.clone(),
                    line: 1,
                },
            }),
            ..Layers::default()
        };
        return (layers, false);
    };
    let at = |span: Range<usize>| Origin::File {
        file: src.name.clone(),
        line: src.line_of(span.start),
    };
    let sourced = |v: Spanned<String>| Sourced {
        origin: at(v.span()),
        value: v.into_inner(),
    };
    let pseudonym_line = root
        .get_ref()
        .iter()
        .find(|(k, _)| k.get_ref() == "pseudonym")
        .map(|(k, _)| k.span())
        .unwrap_or(0..0);
    let layers = Layers {
        time_zone: raw.time_zone.map(sourced),
        store_url: raw.store.url.map(sourced),
        key: raw.pseudonym.key.map(|v| Sourced {
            origin: at(v.span()),
            value: v.into_inner().0,
        }),
        key_file: raw.pseudonym.key_file.map(sourced),
        mappings_dir: raw.mappings.dir.map(sourced),
        log_format: raw.log.format.map(sourced),
        log_level: raw.log.level.map(sourced),
        roster: raw.teams.roster.map(sourced),
        events: raw.events.dir.map(sourced),
        finance: raw.finance,
        decisions: raw.decisions,
        finance_token: None,
        decisions_secret: None,
        http_token: None,
        daemon: raw.daemon,
        jobs: raw.jobs,
        http: raw.http.map(|h| (at(h.span()), h.into_inner())),
        retention: raw.retention,
        cockpit: raw.cockpit,
        actuals: raw.actuals.map(|a| (at(a.span()), a.into_inner())),
        figures_export: raw.figures_export.map(|a| (at(a.span()), a.into_inner())),
        sources: root
            .get_ref()
            .iter()
            .filter(|(k, _)| k.get_ref() == "source")
            .filter_map(|(_, v)| match v.get_ref() {
                toml::de::DeValue::Array(items) => Some(items.iter()),
                _ => None,
            })
            .flatten()
            .filter_map(|item| {
                let raw = crate::mapping::load::de_value::<RawSource>(src, item, &mut *diags)?;
                let mut keys = KeyOrigins::new();
                key_origins(item, "", &at, &mut keys);
                Some((at(item.span()), raw, keys))
            })
            .collect(),
        pseudonym_origin: Some(at(pseudonym_line)),
    };
    (layers, true)
}

/// The keys that can be overridden, as `(path after the prefix, dotted key)`.
const ENV_KEYS: [(&str, &str); 10] = [
    ("HTTP__TOKEN", "http.token"),
    ("FINANCE__BEARER_TOKEN", "finance.transport.bearer_token"),
    ("DECISIONS__CLIENT_SECRET", "decisions.client_secret"),
    ("TIME_ZONE", "time_zone"),
    ("STORE__URL", "store.url"),
    ("PSEUDONYM__KEY", "pseudonym.key"),
    ("PSEUDONYM__KEY_FILE", "pseudonym.key_file"),
    ("MAPPINGS__DIR", "mappings.dir"),
    ("LOG__FORMAT", "log.format"),
    ("LOG__LEVEL", "log.level"),
];

/// Applies `PROGRESSION_GATEWAY__...` variables on top of the file.
fn apply_env(
    layers: &mut Layers,
    env: impl IntoIterator<Item = (OsString, OsString)>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut vars: Vec<(String, OsString)> = env
        .into_iter()
        .filter_map(|(k, v)| {
            let k = k.into_string().ok()?;
            k.starts_with(ENV_PREFIX).then_some((k, v))
        })
        .collect();
    // A stable order, so diagnostics do not depend on the environment's order.
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let (mut env_key, mut env_key_file) = (false, false);
    for (var, value) in vars {
        let path = &var[ENV_PREFIX.len()..];
        let origin = Origin::Env(var.clone());
        let Some(&(_, key)) = ENV_KEYS.iter().find(|(p, _)| p.eq_ignore_ascii_case(path)) else {
            let mut msg = format!(
                "unknown configuration key `{}`",
                path.to_lowercase().replace("__", ".")
            );
            if let Some(s) = did_you_mean(path, ENV_KEYS.iter().map(|(p, _)| *p)) {
                msg.push_str(&format!("; did you mean {ENV_PREFIX}{s}?"));
            }
            msg.push_str(&format!(
                " (known: {})",
                ENV_KEYS
                    .iter()
                    .map(|(p, _)| format!("{ENV_PREFIX}{p}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            diags.push(origin.diag(msg));
            continue;
        };
        let Ok(value) = value.into_string() else {
            diags.push(origin.diag(format!("the value of {key} is not valid UTF-8")));
            continue;
        };
        // The secret is moved straight into a `SecretString`; other values are plain text.
        let plain = |value: String| {
            Some(Sourced {
                value,
                origin: origin.clone(),
            })
        };
        match key {
            "time_zone" => layers.time_zone = plain(value),
            "store.url" => layers.store_url = plain(value),
            "pseudonym.key" => {
                layers.key = Some(Sourced {
                    value: SecretString::from(value),
                    origin: origin.clone(),
                });
                layers.key_file = None;
                env_key = true;
            }
            "pseudonym.key_file" => {
                layers.key_file = plain(value);
                layers.key = None;
                env_key_file = true;
            }
            "mappings.dir" => layers.mappings_dir = plain(value),
            "finance.transport.bearer_token" => {
                layers.finance_token = Some(SecretString::from(value));
            }
            "http.token" => {
                layers.http_token = Some(SecretString::from(value));
            }
            "decisions.client_secret" => {
                layers.decisions_secret = Some(SecretString::from(value));
            }
            "log.format" => layers.log_format = plain(value),
            "log.level" => layers.log_level = plain(value),
            _ => unreachable!("every key of ENV_KEYS is handled"),
        }
    }
    if env_key && env_key_file {
        diags.push(Origin::Env(format!("{ENV_PREFIX}PSEUDONYM__KEY_FILE")).diag(format!(
            "both {ENV_PREFIX}PSEUDONYM__KEY and {ENV_PREFIX}PSEUDONYM__KEY_FILE are set: give one"
        )));
    }
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn build_settings(
    path: &Path,
    config_dir: &Path,
    mappings_dir: PathBuf,
    mut layers: Layers,
    purpose: Purpose,
    diags: &mut Vec<Diagnostic>,
) -> Option<Settings> {
    let before = diags.len();
    if purpose == Purpose::Reader {
        // No secret is read: the sources (their secrets) and the HTTP server (its token) are
        // left out, and
        // the pseudonym key is a random one that matches nothing stored.
        layers.sources.clear();
        layers.http_token = None;
        layers.http = None;
        // Served with [http] only, which a reader leaves out.
        layers.cockpit = None;
        layers.key_file = None;
        layers.key = Some(Sourced {
            value: crate::demo::random_secret(),
            origin: Origin::Env("(reader: no pseudonym key)".into()),
        });
    }

    let time_zone = match &layers.time_zone {
        None => Some(chrono_tz::Europe::Copenhagen),
        Some(tz) => match tz.value.parse::<chrono_tz::Tz>() {
            Ok(z) => Some(z),
            Err(_) => {
                let mut msg = format!(
                    "unknown time zone `{}` (expected an IANA name such as {DEFAULT_TIME_ZONE})",
                    tz.value
                );
                if let Some(s) =
                    did_you_mean(&tz.value, chrono_tz::TZ_VARIANTS.iter().map(|z| z.name()))
                {
                    msg.push_str(&format!("; did you mean `{s}`?"));
                }
                diags.push(tz.origin.diag(msg));
                None
            }
        },
    };

    let database_url = match &layers.store_url {
        None => DEFAULT_DATABASE_URL.to_owned(),
        Some(url) => {
            let v = url.value.trim();
            let ok = ["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|p| v.starts_with(p) && v.len() > p.len());
            if !ok {
                // The URL may hold a password: do not echo it.
                diags.push(url.origin.diag(
                    "store.url must start with sqlite: or postgres:// (for example \
                     sqlite://progression-gateway.db)",
                ));
            }
            v.to_owned()
        }
    };

    let secret = match (&layers.key, &layers.key_file) {
        (Some(_), Some(file)) => {
            diags.push(
                file.origin
                    .diag("give exactly one of pseudonym.key and pseudonym.key_file, not both"),
            );
            None
        }
        (None, None) => {
            let origin = layers.pseudonym_origin.clone().unwrap_or(Origin::File {
                file: path.display().to_string(),
                line: 1,
            });
            diags.push(origin.diag(format!(
                "no pseudonym key: set pseudonym.key_file (or pseudonym.key) in [pseudonym], \
                 or the environment variable {ENV_PREFIX}PSEUDONYM__KEY"
            )));
            None
        }
        (Some(key), None) => Some((key.value.clone(), key.origin.clone())),
        (None, Some(file)) => {
            let key_path = config_dir.join(&file.value);
            match std::fs::read_to_string(&key_path) {
                Ok(text) => Some((
                    SecretString::from(text.trim().to_owned()),
                    file.origin.clone(),
                )),
                Err(e) => {
                    diags.push(file.origin.diag(format!(
                        "cannot read the pseudonym key file {}: {e}",
                        key_path.display()
                    )));
                    None
                }
            }
        }
    };
    let pseudonym_key = secret.and_then(|(secret, origin)| match PseudonymKey::new(secret) {
        Ok(k) => Some(k),
        Err(e) => {
            diags.push(origin.diag(e.to_string()));
            None
        }
    });

    if let Some(dir) = &layers.mappings_dir
        && dir.value.trim().is_empty()
    {
        diags.push(dir.origin.diag("mappings.dir is empty"));
    }

    let format = match &layers.log_format {
        None => Some(LogFormat::Human),
        Some(f) => match f.value.as_str() {
            "human" => Some(LogFormat::Human),
            "json" => Some(LogFormat::Json),
            other => {
                diags.push(f.origin.diag(unknown_value_message(
                    "log format",
                    other,
                    &["human", "json"],
                )));
                None
            }
        },
    };
    let level = match &layers.log_level {
        None => DEFAULT_LOG_LEVEL.to_owned(),
        Some(l) => {
            if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&l.value) {
                diags.push(l.origin.diag(format!("bad log level `{}`: {e}", l.value)));
            } else if let Some(bad) = unknown_level(&l.value) {
                // A bare word that is not a level parses as a target name and would silently
                // turn every other log line off.
                diags.push(l.origin.diag(format!(
                    "bad log level `{bad}`: expected one of off, error, warn, info, debug, trace \
                     (or directives such as `info,sqlx=warn`)"
                )));
            }
            l.value.clone()
        }
    };

    // Every part is checked even when an earlier one failed: all problems are reported at once.
    let roster = layers
        .roster
        .as_ref()
        .map(|r| resolve(config_dir, &r.value));
    let events = layers.events.as_ref().and_then(|e| {
        if e.value.trim().is_empty() {
            diags.push(e.origin.diag("events.dir is empty"));
            return None;
        }
        let dir = resolve(config_dir, &e.value);
        if !dir.is_dir() {
            diags.push(e.origin.diag(format!(
                "events.dir {} is not a folder (missing, or a file)",
                dir.display()
            )));
        }
        Some(dir)
    });
    let actuals = layers.actuals.map(|(origin, mut a)| {
        for p in a.problems() {
            diags.push(origin.diag(p));
        }
        a.dir = config_dir.join(&a.dir);
        if !a.dir.is_dir() {
            diags.push(origin.diag(format!(
                "actuals.dir {} is not a folder (missing, or a file)",
                a.dir.display()
            )));
        }
        a
    });
    let sources = build_sources(config_dir, &mappings_dir, layers.sources, diags);
    let mut finance = layers.finance;
    if let Some(token) = layers.finance_token {
        match finance.as_mut().map(|f| &mut f.transport) {
            Some(crate::sinks::finance::transport::TransportConfig::Http(http)) => {
                http.bearer_token = Some(token);
            }
            _ => diags.push(Diagnostic::file(
                format!("env {ENV_PREFIX}FINANCE__BEARER_TOKEN"),
                "is set, but [finance.transport] is not of kind http",
            )),
        }
    }
    let mut decisions = layers.decisions;
    if let Some(secret) = layers.decisions_secret {
        match decisions.as_mut() {
            Some(d) => d.client_secret = Some(secret),
            None => diags.push(Diagnostic::file(
                format!("env {ENV_PREFIX}DECISIONS__CLIENT_SECRET"),
                "is set, but there is no [decisions] section",
            )),
        }
    }
    if let Some(crate::sinks::finance::transport::TransportConfig::Folder { dir, reply_dir }) =
        finance.as_mut().map(|f| &mut f.transport)
    {
        *dir = config_dir.join(&*dir);
        *reply_dir = config_dir.join(&*reply_dir);
    }
    let figures_export = layers.figures_export.map(|(origin, mut e)| {
        for p in e.problems(finance.is_some()) {
            diags.push(origin.diag(p));
        }
        if let Some(crate::sinks::finance::transport::TransportConfig::Folder { dir, reply_dir }) =
            e.transport.as_mut()
        {
            *dir = config_dir.join(&*dir);
            *reply_dir = config_dir.join(&*reply_dir);
        }
        e
    });
    let http = match (layers.http, layers.http_token) {
        (None, None) => None,
        (None, Some(_)) => {
            diags.push(Diagnostic::file(
                format!("env {ENV_PREFIX}HTTP__TOKEN"),
                "is set, but there is no [http] section",
            ));
            None
        }
        (Some((origin, raw)), env_token) => {
            let token = match (env_token, &raw.token_file) {
                (Some(t), _) => Some(t),
                (None, Some(file)) => {
                    let token_path = config_dir.join(file);
                    match std::fs::read_to_string(&token_path) {
                        Ok(text) => Some(SecretString::from(text.trim().to_owned())),
                        Err(e) => {
                            diags.push(origin.diag(format!(
                                "cannot read http.token_file {}: {e}",
                                token_path.display()
                            )));
                            None
                        }
                    }
                }
                (None, None) => None,
            };
            Some((raw.listen, token))
        }
    };
    let mut problems = Vec::new();
    let daemon = crate::daemon::DaemonSettings::build(
        layers.daemon,
        layers.jobs,
        http,
        layers.retention,
        &mut problems,
    );
    diags.extend(
        problems
            .into_iter()
            .map(|p| Diagnostic::file(path.display().to_string(), p)),
    );
    if diags.len() > before {
        return None;
    }
    let mut cockpit = layers.cockpit;
    if let Some(d) = cockpit.as_mut().and_then(|c| c.drafts_dir.as_mut()) {
        *d = config_dir.join(&*d);
    }
    Some(Settings {
        daemon,
        cockpit,
        actuals,
        figures_export,
        roster,
        events,
        sources,
        finance,
        decisions,
        config_file: path.to_path_buf(),
        time_zone: time_zone?,
        database_url,
        pseudonym_key: pseudonym_key?,
        mappings_dir,
        log: LogSettings {
            format: format?,
            level,
        },
    })
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        })
    }
}

/// Validates the `[[source]]` tables: unique names, exactly one kind each, secrets present where
/// a kind needs one, folders resolved against the configuration file.
fn build_sources(
    config_dir: &Path,
    mappings_dir: &Path,
    raw: Vec<(Origin, RawSource, KeyOrigins)>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<SourceSettings> {
    use crate::sources::fhir_push::PushConfig;
    use secrecy::ExposeSecret;
    let mut out: Vec<SourceSettings> = Vec::new();
    for (origin, source, keys) in raw {
        let name = source.name.get_ref().trim().to_owned();
        let valid_name = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_name {
            diags.push(origin.diag(format!(
                "source name `{name}` must be 1-40 characters of a-z, 0-9, - and _"
            )));
            continue;
        }
        if name == crate::sources::ingest::IMPORT_SOURCE
            || name == crate::sources::roster::SOURCE
            || name == crate::sources::events::SOURCE
        {
            diags.push(origin.diag(format!("source name `{name}` is reserved")));
            continue;
        }
        if out.iter().any(|s| s.name == name) {
            diags.push(origin.diag(format!("source name `{name}` is used twice")));
            continue;
        }
        let secret = match (&source.secret_file, &source.secret_env) {
            (Some(_), Some(_)) => {
                diags.push(origin.diag(format!(
                    "source `{name}`: give secret_file or secret_env, not both"
                )));
                continue;
            }
            (Some(file), None) => {
                let path = config_dir.join(file.get_ref());
                match std::fs::read_to_string(&path) {
                    Ok(text) => Some(SecretString::from(text.trim().to_owned())),
                    Err(e) => {
                        diags.push(origin.diag(format!(
                            "source `{name}`: cannot read secret_file {}: {e}",
                            path.display()
                        )));
                        continue;
                    }
                }
            }
            (None, Some(var)) => match std::env::var(var.get_ref()) {
                Ok(v) if !v.is_empty() => Some(SecretString::from(v)),
                _ => {
                    diags.push(origin.diag(format!(
                        "source `{name}`: the environment variable {} named by secret_env is not set",
                        var.get_ref()
                    )));
                    continue;
                }
            },
            (None, None) => None,
        };
        let kinds = usize::from(source.files.is_some())
            + usize::from(source.fhir_pull.is_some())
            + usize::from(source.fhir_push.is_some())
            + usize::from(source.nexus.is_some());
        if kinds != 1 {
            diags.push(origin.diag(format!(
                "source `{name}` must have exactly one of [source.files], [source.fhir_pull], \
                 [source.fhir_push] and [source.nexus]; it has {kinds}"
            )));
            continue;
        }
        if let Some(mut nexus) = source.nexus {
            if secret.is_some() {
                nexus.client_secret = secret;
            }
            // A setting's problem names the line of its key (else of the [[source]]).
            let mut problems: Vec<(&Origin, String)> = nexus
                .problems()
                .into_iter()
                .map(|(key, p)| (keys.get(&format!("nexus.{key}")).unwrap_or(&origin), p))
                .collect();
            if nexus.client_secret.is_none() {
                problems.push((
                    &origin,
                    "a nexus source needs its client secret (secret_file or secret_env)".into(),
                ));
            }
            let grants_path = mappings_dir.join(&nexus.grants_file);
            let grant_codes = match crate::sources::nexus::GrantCodes::load(&grants_path) {
                Ok(g) => g,
                Err(file_problems) => {
                    let at = keys.get("nexus.grants_file").unwrap_or(&origin);
                    problems.extend(file_problems.into_iter().map(|p| (at, p)));
                    Default::default()
                }
            };
            if !problems.is_empty() {
                for (at, p) in problems {
                    diags.push(at.diag(format!("source `{name}`: {p}")));
                }
                continue;
            }
            out.push(SourceSettings {
                name,
                kind: SourceKind::Nexus(Box::new(crate::sources::nexus::NexusSettings {
                    config: nexus,
                    grant_codes: std::sync::Arc::new(grant_codes),
                })),
            });
            continue;
        }
        let kind = if let Some(mut files) = source.files {
            files.dir = config_dir.join(&files.dir);
            files.archive_dir = files.archive_dir.map(|d| config_dir.join(d));
            files.rejected_dir = files.rejected_dir.map(|d| config_dir.join(d));
            SourceKind::Files(files)
        } else if let Some(mut pull) = source.fhir_pull {
            if secret.is_some() {
                pull.client_secret = secret;
            }
            if pull.token_url.is_some() && pull.client_secret.is_none() {
                diags.push(origin.diag(format!(
                    "source `{name}`: a token_url needs a client secret (secret_file or secret_env)"
                )));
                continue;
            }
            SourceKind::FhirPull(pull)
        } else {
            let push = source.fhir_push.expect("exactly one kind");
            let Some(token) = secret.filter(|t| t.expose_secret().len() >= 16) else {
                diags.push(origin.diag(format!(
                    "source `{name}`: a fhir_push source needs a bearer token of at least 16 \
                     characters (secret_file or secret_env)"
                )));
                continue;
            };
            let mut cfg = PushConfig::new(token);
            if let Some(max) = push.max_body_bytes {
                cfg.max_body_bytes = max;
            }
            match push.max_in_flight {
                Some(0) => {
                    diags.push(
                        origin.diag(format!("source `{name}`: max_in_flight must be at least 1")),
                    );
                    continue;
                }
                Some(n) => cfg.max_in_flight = n,
                None => {}
            }
            SourceKind::FhirPush(cfg)
        };
        if matches!(kind, SourceKind::FhirPush(_))
            && out
                .iter()
                .any(|s| matches!(s.kind, SourceKind::FhirPush(_)))
        {
            diags.push(origin.diag(format!(
                "source `{name}`: only one fhir_push source can be configured (they share POST /fhir/Bundle)"
            )));
            continue;
        }
        out.push(SourceSettings { name, kind });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const MAPPINGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/mappings");

    fn write_config(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("gateway.toml");
        fs::write(&path, format!("{body}\n[mappings]\ndir = \"{MAPPINGS}\"\n")).unwrap();
        path
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn errors(path: &Path, vars: &[(&str, &str)]) -> Vec<String> {
        load_with_env(path, env(vars))
            .expect_err("expected an error")
            .diagnostics
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_apply_and_the_key_is_not_shown() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_config(
            tmp.path(),
            "[pseudonym]\nkey = \"a-very-secret-key-0123456789\"",
        );
        let loaded = load_with_env(&path, env(&[])).unwrap();
        let s = &loaded.settings;
        assert_eq!(s.time_zone, chrono_tz::Europe::Copenhagen);
        assert_eq!(s.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(
            s.log,
            LogSettings {
                format: LogFormat::Human,
                level: "info".into()
            }
        );
        assert!(!format!("{s:?}").contains("a-very-secret-key"));
    }

    #[test]
    fn jobs_default_and_are_read_with_their_schedules() {
        let tmp = tempfile::tempdir().unwrap();
        let key = "[pseudonym]\nkey = \"a-very-secret-key-0123456789\"\n";
        let path = write_config(tmp.path(), key);
        let d = load_with_env(&path, env(&[])).unwrap().settings.daemon;
        let names: Vec<&str> = d.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(names, ["nightly", "prune"]);
        assert_eq!(d.jobs[0].steps, crate::run::NIGHTLY);
        assert!(d.catch_up && d.http.is_none());
        assert_eq!(d.lease, std::time::Duration::from_secs(300));

        fs::write(tmp.path().join("http.token"), "an-http-token-of-the-test\n").unwrap();
        let path = write_config(
            tmp.path(),
            &format!(
                "{key}[daemon]\ncatch_up = false\nlease_secs = 60\n\
                 [[job]]\nname = \"pull\"\nschedule = \"*/15 * * * *\"\nsteps = [\"pull\"]\n\
                 [[job]]\nname = \"night\"\nschedule = \"0 30 2 * * *\"\ncatch_up = true\n\
                 [http]\nlisten = \"127.0.0.1:9999\"\ntoken_file = \"http.token\"\n\
                 [retention]\nruns_days = 30\n"
            ),
        );
        let d = load_with_env(&path, env(&[])).unwrap().settings.daemon;
        assert_eq!(d.jobs.len(), 2);
        assert_eq!(d.jobs[0].steps, [crate::run::Step::Pull]);
        assert!(!d.jobs[0].catch_up, "the daemon's default");
        assert!(d.jobs[1].catch_up, "its own");
        assert_eq!(d.jobs[1].steps, crate::run::NIGHTLY, "default steps");
        assert_eq!(d.lease, std::time::Duration::from_secs(60));
        assert_eq!(d.retention.runs_days, 30);
        assert_eq!(d.retention.files_days, 90);
        let http = d.http.unwrap();
        assert_eq!(http.listen.port(), 9999);
        use secrecy::ExposeSecret;
        assert_eq!(http.token.expose_secret(), "an-http-token-of-the-test");
        // The environment's token wins.
        let d = load_with_env(
            &path,
            env(&[(
                "PROGRESSION_GATEWAY__HTTP__TOKEN",
                "a-token-from-the-environment",
            )]),
        )
        .unwrap()
        .settings
        .daemon;
        assert_eq!(
            d.http.unwrap().token.expose_secret(),
            "a-token-from-the-environment"
        );
    }

    #[test]
    fn bad_jobs_and_http_settings_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let key = "[pseudonym]\nkey = \"a-very-secret-key-0123456789\"\n";
        let path = write_config(
            tmp.path(),
            &format!("{key}[[job]]\nname = \"n\"\nschedule = \"61 2 * * *\"\n"),
        );
        let errs = errors(&path, &[]);
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains(":5:") && errs[0].contains("61 2 * * *"),
            "{errs:?}"
        );
        let path = write_config(
            tmp.path(),
            &format!(
                "{key}[[job]]\nname = \"n\"\nschedule = \"@daily\"\n\
                 [[job]]\nname = \"n\"\nschedule = \"@daily\"\nsteps = []\n\
                 [[job]]\nname = \"x\"\nschedule = \"@daily\"\nsteps = [\"dance\"]\n"
            ),
        );
        let errs = errors(&path, &[]);
        assert!(errs.iter().any(|e| e.contains("dance")), "{errs:?}");
        let path = write_config(
            tmp.path(),
            &format!(
                "{key}[[job]]\nname = \"n\"\nschedule = \"@daily\"\n\
                 [[job]]\nname = \"n\"\nschedule = \"@daily\"\n\
                 [[job]]\nname = \"e\"\nschedule = \"@daily\"\nsteps = []\n"
            ),
        );
        let errs = errors(&path, &[]);
        assert!(
            errs.iter().any(|e| e.contains("`n` is used twice")),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|e| e.contains("`e` has no steps")),
            "{errs:?}"
        );
        let path = write_config(
            tmp.path(),
            &format!("{key}[http]\nlisten = \"127.0.0.1:9999\"\n"),
        );
        let errs = errors(&path, &[]);
        assert!(errs.iter().any(|e| e.contains("bearer token")), "{errs:?}");
        let path = write_config(tmp.path(), key);
        let errs = errors(
            &path,
            &[("PROGRESSION_GATEWAY__HTTP__TOKEN", "a-token-0123456789")],
        );
        assert!(
            errs.iter().any(|e| e.contains("no [http] section")),
            "{errs:?}"
        );
        assert!(errs.iter().all(|e| !e.contains("a-token-0123456789")));
    }

    #[test]
    fn key_file_is_read_trimmed_relative_to_the_config() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("k"), "  file-key-0123456789abcdef \n").unwrap();
        let path = write_config(tmp.path(), "[pseudonym]\nkey_file = \"k\"");
        let loaded = load_with_env(&path, env(&[])).unwrap();
        let expected = PseudonymKey::new(SecretString::from("file-key-0123456789abcdef")).unwrap();
        let cpr = crate::domain::Cpr::parse("0101501234").unwrap();
        assert_eq!(
            loaded.settings.pseudonym_key.citizen(&cpr),
            expected.citizen(&cpr)
        );
    }

    #[test]
    fn env_overrides_name_the_variable_not_the_value() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_config(
            tmp.path(),
            "[pseudonym]\nkey = \"a-very-secret-key-0123456789\"",
        );
        let shown = errors(
            &path,
            &[
                ("PROGRESSION_GATEWAY__PSEUDONYM__KEY", "short-secret"),
                ("PROGRESSION_GATEWAY__STORE__URI", "x"),
                ("PROGRESSION_GATEWAY__TIME_ZONE", "Europe/Copenhagn"),
                ("PROGRESSION_GATEWAY_TEST_PG", "ignored"),
            ],
        );
        assert_eq!(shown.len(), 3, "{shown:#?}");
        assert!(shown[0].starts_with("env PROGRESSION_GATEWAY__STORE__URI: unknown configuration key `store.uri`; did you mean PROGRESSION_GATEWAY__STORE__URL?"), "{shown:#?}");
        assert!(
            shown[1].starts_with(
                "env PROGRESSION_GATEWAY__TIME_ZONE: unknown time zone `Europe/Copenhagn`"
            ),
            "{shown:#?}"
        );
        assert!(
            shown[1].ends_with("did you mean `Europe/Copenhagen`?"),
            "{shown:#?}"
        );
        assert!(
            shown[2].starts_with(
                "env PROGRESSION_GATEWAY__PSEUDONYM__KEY: pseudonym key: must be at least 16 bytes"
            ),
            "{shown:#?}"
        );
        assert!(!shown.join("\n").contains("short-secret"));
    }

    #[test]
    fn file_errors_carry_lines() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_config(
            tmp.path(),
            "time_zone = \"Mars/Olympus\"\n[store]\nurl = \"mysql://x\"\n[pseudonym]\nkey = \"k\"\nkey_file = \"nope\"\n[log]\nformat = \"jsno\"\nlevel = \"info,=[\"",
        );
        let shown = errors(&path, &[]);
        let name = path.display().to_string();
        assert!(
            shown[0].starts_with(&format!("{name}:1: unknown time zone `Mars/Olympus`")),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with(&format!("{name}:3: store.url must start with")),
            "{shown:#?}"
        );
        assert!(
            shown[2].starts_with(&format!("{name}:6: give exactly one of")),
            "{shown:#?}"
        );
        assert!(
            shown[3].starts_with(&format!(
                "{name}:8: unknown log format `jsno`; did you mean `json`?"
            )),
            "{shown:#?}"
        );
        assert!(
            shown[4].starts_with(&format!("{name}:9: bad log level")),
            "{shown:#?}"
        );
        assert_eq!(shown.len(), 5, "{shown:#?}");
    }

    #[test]
    fn a_misspelt_log_level_is_refused_with_its_line() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_config(
            tmp.path(),
            "[pseudonym]\nkey = \"demo-only-pseudonym-key-0001\"\n[log]\nlevel = \"infoo\"",
        );
        let shown = errors(&path, &[]);
        let name = path.display().to_string();
        assert!(
            shown[0].starts_with(&format!("{name}:4: bad log level `infoo`")),
            "{shown:#?}"
        );
        let shown = errors(&path, &[("PROGRESSION_GATEWAY__LOG__LEVEL", "verbose")]);
        assert!(
            shown.iter().any(|s| s.contains("bad log level `verbose`")),
            "{shown:#?}"
        );
        assert_eq!(unknown_level("info,sqlx=warn"), None);
        assert_eq!(unknown_level("WARN"), None);
        assert_eq!(unknown_level("progression_gateway::run=debug"), None);
        assert_eq!(unknown_level("debug,infoo"), Some("infoo"));
    }

    #[test]
    fn a_key_of_the_wrong_type_is_not_echoed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_config(tmp.path(), "[pseudonym]\nkey = 98765432109876543");
        let shown = errors(&path, &[]);
        assert_eq!(shown.len(), 1, "{shown:#?}");
        assert!(
            shown[0].ends_with(":2: the pseudonym key must be a quoted string"),
            "{shown:#?}"
        );
    }

    #[test]
    fn relative_folders_are_resolved_lexically() {
        assert_eq!(
            resolve(Path::new("config"), "../mappings"),
            PathBuf::from("mappings")
        );
        assert_eq!(
            resolve(Path::new("."), "mappings"),
            PathBuf::from("mappings")
        );
        assert_eq!(resolve(Path::new("."), ".."), PathBuf::from(".."));
        assert_eq!(
            resolve(Path::new("/etc/gw"), "../../../m"),
            PathBuf::from("/m")
        );
        assert_eq!(
            resolve(Path::new("config"), "/srv/m"),
            PathBuf::from("/srv/m")
        );
        assert_eq!(resolve(Path::new("config"), ".."), PathBuf::from("."));
    }

    #[test]
    fn a_missing_key_is_an_error_unless_the_environment_has_one() {
        let tmp = tempfile::tempdir().unwrap();
        let path = write_config(tmp.path(), "");
        let shown = errors(&path, &[]);
        assert!(shown[0].contains("no pseudonym key"), "{shown:#?}");
        let ok = load_with_env(
            &path,
            env(&[(
                "PROGRESSION_GATEWAY__PSEUDONYM__KEY",
                "env-key-0123456789abcdef",
            )]),
        );
        assert!(ok.is_ok());
    }
}
