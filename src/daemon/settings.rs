//! `[daemon]`, `[[job]]`, `[http]` and `[retention]`: what the daemon runs when, and where it
//! answers.

use crate::run::{NIGHTLY, Retention, Step};
use crate::schedule::JobSchedule;
use secrecy::SecretString;
use serde::Deserialize;
use std::net::SocketAddr;
use std::time::Duration;

/// The daemon's settings, validated.
#[derive(Debug, Clone)]
pub struct DaemonSettings {
    /// Catch up a run missed while no daemon was running, once (default true; per job too).
    pub catch_up: bool,
    /// How long a job lease lasts unless renewed (renewed every third of it while running).
    pub lease: Duration,
    /// The jobs (default: [`default_jobs`]).
    pub jobs: Vec<JobSettings>,
    /// The operations HTTP server, if configured.
    pub http: Option<HttpSettings>,
    /// What `prune` removes.
    pub retention: Retention,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            catch_up: true,
            lease: Duration::from_secs(DEFAULT_LEASE_SECS),
            jobs: default_jobs(),
            http: None,
            retention: Retention::default(),
        }
    }
}

/// Default of `daemon.lease_secs`.
pub const DEFAULT_LEASE_SECS: u64 = 300;

/// A job: steps run on a schedule.
#[derive(Debug, Clone)]
pub struct JobSettings {
    /// Unique name (journal, leases, metrics).
    pub name: String,
    /// When, in the configured time zone.
    pub schedule: JobSchedule,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Catch up a missed run once.
    pub catch_up: bool,
}

/// The jobs when no `[[job]]` is configured: `nightly` at 02:30 (the five nightly steps) and
/// `prune` on Sundays at 04:00.
pub fn default_jobs() -> Vec<JobSettings> {
    vec![
        JobSettings {
            name: "nightly".into(),
            schedule: "30 2 * * *".parse().expect("a valid expression"),
            steps: NIGHTLY.to_vec(),
            catch_up: true,
        },
        JobSettings {
            name: "prune".into(),
            schedule: "0 4 * * 0".parse().expect("a valid expression"),
            steps: vec![Step::Prune],
            catch_up: true,
        },
    ]
}

/// The operations HTTP server.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The bearer token every endpoint but `/healthz` asks for.
    pub token: SecretString,
}

/// `[daemon]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    /// Default true.
    pub catch_up: Option<bool>,
    /// Default 300.
    pub lease_secs: Option<u64>,
}

/// `[[job]]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJob {
    pub name: String,
    pub schedule: JobSchedule,
    #[serde(default)]
    pub steps: Option<Vec<Step>>,
    pub catch_up: Option<bool>,
}

/// `[http]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    pub listen: SocketAddr,
    /// A file holding the bearer token, relative to the configuration file.
    pub token_file: Option<String>,
}

impl DaemonSettings {
    /// Validates the raw tables; every problem is pushed to `problems`.
    pub(crate) fn build(
        raw: RawDaemon,
        jobs: Vec<RawJob>,
        http: Option<(SocketAddr, Option<SecretString>)>,
        retention: Retention,
        problems: &mut Vec<String>,
    ) -> DaemonSettings {
        use secrecy::ExposeSecret;
        let catch_up = raw.catch_up.unwrap_or(true);
        let lease_secs = raw.lease_secs.unwrap_or(DEFAULT_LEASE_SECS);
        if !(1..=86_400).contains(&lease_secs) {
            problems.push(format!(
                "daemon.lease_secs = {lease_secs}: give 1 to 86400 seconds"
            ));
        }
        let mut out: Vec<JobSettings> = Vec::new();
        for j in jobs {
            let valid = !j.name.is_empty()
                && j.name.len() <= 40
                && j.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !valid {
                problems.push(format!(
                    "job name `{}` must be 1-40 characters of a-z, 0-9, - and _",
                    j.name
                ));
                continue;
            }
            if out.iter().any(|o| o.name == j.name) {
                problems.push(format!("job name `{}` is used twice", j.name));
                continue;
            }
            let steps = j.steps.unwrap_or_else(|| NIGHTLY.to_vec());
            if steps.is_empty() {
                problems.push(format!("job `{}` has no steps", j.name));
                continue;
            }
            out.push(JobSettings {
                name: j.name,
                schedule: j.schedule,
                steps,
                catch_up: j.catch_up.unwrap_or(catch_up),
            });
        }
        let http = match http {
            None => None,
            Some((listen, Some(token))) if token.expose_secret().len() >= 16 => {
                Some(HttpSettings { listen, token })
            }
            Some(_) => {
                problems.push(
                    "[http] needs a bearer token of at least 16 characters: http.token_file, or \
                     the environment variable PROGRESSION_GATEWAY__HTTP__TOKEN"
                        .to_owned(),
                );
                None
            }
        };
        DaemonSettings {
            catch_up,
            lease: Duration::from_secs(lease_secs),
            jobs: if out.is_empty() && problems.is_empty() {
                default_jobs()
            } else {
                out
            },
            http,
            retention,
        }
    }
}
