//! The Prometheus metrics: counters kept for the life of the process ([`Metrics`]) and
//! gauges read from the store at every scrape ([`StoreGauges`]), encoded together by
//! `prometheus_client` in the OpenMetrics text format.

use crate::run::Report;
use crate::store::Store;
use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

/// The prefix of every metric name.
pub const PREFIX: &str = "progression_gateway";

/// The content type of `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    job: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobOutcomeLabels {
    job: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// Counters kept for the life of the process, fed by [`Metrics::observe`] after every run.
/// Cheap to share (`Arc<Metrics>`); every counter is atomic.
#[derive(Debug, Default)]
pub struct Metrics {
    runs: Family<JobOutcomeLabels, Counter>,
    records_pulled: Family<JobLabels, Counter>,
    records_rejected: Family<JobLabels, Counter>,
    errors: Family<JobLabels, Counter>,
    vouchers_sent: Counter,
    vouchers_accepted: Counter,
    vouchers_rejected: Counter,
    decisions_written: Counter,
    findings: Family<KindLabels, Gauge>,
}

impl Metrics {
    /// Counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a finished run (called by the daemon after every run).
    pub fn observe(&self, report: &Report) {
        let job = JobLabels {
            job: report.job.clone(),
        };
        let c = &report.counts;
        self.runs
            .get_or_create(&JobOutcomeLabels {
                job: report.job.clone(),
                outcome: report.outcome.as_str().to_owned(),
            })
            .inc();
        self.records_pulled
            .get_or_create(&job)
            .inc_by(c.records_pulled);
        self.records_rejected
            .get_or_create(&job)
            .inc_by(c.records_rejected);
        self.errors
            .get_or_create(&job)
            .inc_by(u64::try_from(report.errors.len()).unwrap_or(u64::MAX));
        self.vouchers_sent.inc_by(c.vouchers_sent);
        self.vouchers_accepted.inc_by(c.vouchers_accepted);
        self.vouchers_rejected.inc_by(c.vouchers_rejected);
        self.decisions_written.inc_by(c.decisions_written);
        if report.counts.courses > 0 || !report.findings.is_empty() {
            // The latest computation's findings by kind; kinds it no longer has go to zero.
            let mut by_kind: std::collections::BTreeMap<&str, i64> = crate::model::Finding::KINDS
                .iter()
                .map(|k| (*k, 0))
                .collect();
            for f in &report.findings {
                *by_kind.entry(f.kind()).or_default() += 1;
            }
            for (kind, n) in by_kind {
                self.findings
                    .get_or_create(&KindLabels {
                        kind: kind.to_owned(),
                    })
                    .set(n);
            }
        }
    }

    /// Registers the counters (shared, not copied) in `registry`. Counter names get `_total`
    /// from the encoder.
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "runs",
            "Runs finished by this process, by job and outcome.",
            self.runs.clone(),
        );
        registry.register(
            "records_pulled",
            "Record versions stored from the sources by this process's runs, by job.",
            self.records_pulled.clone(),
        );
        registry.register(
            "records_rejected",
            "Files or Bundles rejected by the sources in this process's runs, by job.",
            self.records_rejected.clone(),
        );
        registry.register(
            "vouchers_sent",
            "Vouchers delivered to the finance system by this process's runs.",
            self.vouchers_sent.clone(),
        );
        registry.register(
            "vouchers_accepted",
            "Vouchers the finance system accepted, as seen by this process's runs.",
            self.vouchers_accepted.clone(),
        );
        registry.register(
            "vouchers_rejected",
            "Vouchers the finance system rejected, as seen by this process's runs.",
            self.vouchers_rejected.clone(),
        );
        registry.register(
            "decisions_written",
            "Tariff decisions written to the care system by this process's runs.",
            self.decisions_written.clone(),
        );
        registry.register(
            "errors",
            "Errors reported by this process's runs, by job.",
            self.errors.clone(),
        );
        registry.register(
            "findings",
            "Data-quality findings of the latest computation by this process, by kind.",
            self.findings.clone(),
        );
    }
}

/// How long a scrape waits for each store query.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a store query with [`STORE_TIMEOUT`]; `None` (and a warning, never in an answer)
/// when it fails or does not answer in time.
pub(super) async fn ask<T, E: std::fmt::Display>(
    what: &'static str,
    query: impl Future<Output = Result<T, E>>,
) -> Option<T> {
    match tokio::time::timeout(STORE_TIMEOUT, query).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "{what}: the store did not answer.");
            None
        }
        Err(_) => {
            tracing::warn!(
                timeout_secs = STORE_TIMEOUT.as_secs(),
                "{what}: the store did not answer in time."
            );
            None
        }
    }
}

/// What the store says at one scrape.
#[derive(Debug, Default)]
pub(super) struct StoreGauges {
    runs: Option<Vec<(String, crate::store::Outcome, u64)>>,
    vouchers: Option<Vec<(String, u64)>>,
    last_success: Option<Vec<(String, DateTime<Utc>)>>,
    /// The configured jobs (a series each from start-up) and when this process started.
    jobs: Vec<String>,
    started: Option<DateTime<Utc>>,
}

impl StoreGauges {
    /// Reads the journal and outbox counts; nothing more once the store fails to answer.
    pub(super) async fn read(
        store: &Store,
        jobs: &[String],
        started: Option<DateTime<Utc>>,
    ) -> Self {
        const WHAT: &str = "metrics";
        let mut out = StoreGauges {
            jobs: jobs.to_vec(),
            started,
            ..StoreGauges::default()
        };
        if ask(WHAT, store.ping()).await.is_none() {
            return out;
        }
        out.runs = ask(WHAT, store.run_outcome_counts()).await;
        out.vouchers = ask(WHAT, store.voucher_state_counts()).await;
        out.last_success = ask(WHAT, store.last_success_by_job()).await;
        out
    }

    /// Whether every query answered.
    fn up(&self) -> bool {
        self.runs.is_some() && self.vouchers.is_some() && self.last_success.is_some()
    }

    /// Registers gauges holding what was read, as of `now`.
    pub(super) fn register(&self, registry: &mut Registry, now: DateTime<Utc>) {
        let up: Gauge = Gauge::default();
        up.set(i64::from(self.up()));
        registry.register(
            "store_up",
            "1 when the store answered every query of this scrape, else 0.",
            up,
        );
        if let Some(runs) = &self.runs {
            let family: Family<JobOutcomeLabels, Gauge> = Family::default();
            for (job, outcome, n) in runs {
                family
                    .get_or_create(&JobOutcomeLabels {
                        job: job.clone(),
                        outcome: outcome.as_str().to_owned(),
                    })
                    .set(saturate(*n));
            }
            registry.register(
                "journal_runs",
                "Runs in the journal (every process, within retention), by job and outcome.",
                family,
            );
        }
        if let Some(vouchers) = &self.vouchers {
            let family: Family<StateLabels, Gauge> = Family::default();
            for (state, n) in vouchers {
                family
                    .get_or_create(&StateLabels {
                        state: state.clone(),
                    })
                    .set(saturate(*n));
            }
            registry.register(
                "outbox_vouchers",
                "Vouchers in the outbox, by state.",
                family,
            );
        }
        if let Some(successes) = &self.last_success {
            let stamps: Family<JobLabels, Gauge<f64, AtomicU64>> = Family::default();
            let since: Family<JobLabels, Gauge<f64, AtomicU64>> = Family::default();
            for (job, at) in successes {
                let labels = JobLabels { job: job.clone() };
                stamps.get_or_create(&labels).set(seconds(*at));
                since
                    .get_or_create(&labels)
                    .set((seconds(now) - seconds(*at)).max(0.0));
            }
            // A configured job that has not succeeded yet: the time since this process
            // started, so an alert on the threshold fires for it too.
            if let Some(started) = self.started {
                for job in &self.jobs {
                    if !successes.iter().any(|(j, _)| j == job) {
                        since
                            .get_or_create(&JobLabels { job: job.clone() })
                            .set((seconds(now) - seconds(started)).max(0.0));
                    }
                }
            }
            registry.register_with_unit(
                "last_success_timestamp",
                "When each job's last successful (outcome ok, not dry) run ended, in Unix seconds.",
                Unit::Seconds,
                stamps,
            );
            registry.register(
                "seconds_since_last_success",
                "Seconds since each job's last successful (outcome ok, not dry) run ended; for a configured job without one, since this process started.",
                since,
            );
        }
    }
}

fn saturate(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Unix seconds with millisecond precision.
fn seconds(at: DateTime<Utc>) -> f64 {
    at.timestamp_millis() as f64 / 1000.0
}

/// The whole exposition: the process counters and the store's gauges, ending with `# EOF`.
pub(super) fn encode(
    metrics: &Metrics,
    store: &StoreGauges,
    now: DateTime<Utc>,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix(PREFIX);
    metrics.register(&mut registry);
    store.register(&mut registry, now);
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &registry)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Outcome, RunCounts};

    #[test]
    fn counters_and_gauges_are_named_with_the_prefix() {
        let m = Metrics::new();
        m.observe(&Report {
            id: 1,
            job: "nightly".into(),
            outcome: Outcome::Partial,
            counts: RunCounts {
                records_pulled: 7,
                vouchers_sent: 2,
                ..RunCounts::default()
            },
            errors: vec!["one".into()],
            findings: Vec::new(),
            interrupted: false,
            post: Default::default(),
        });
        let at = DateTime::from_timestamp(1_800_000_000, 500_000_000).unwrap();
        let store = StoreGauges {
            runs: Some(vec![("nightly".into(), Outcome::Ok, 3)]),
            vouchers: Some(vec![("pending".into(), 2)]),
            last_success: Some(vec![("nightly".into(), at)]),
            jobs: vec!["nightly".into(), "prune".into()],
            started: Some(at - chrono::Duration::seconds(10)),
        };
        let text = encode(&m, &store, at + chrono::Duration::seconds(90)).unwrap();
        for line in [
            "progression_gateway_runs_total{job=\"nightly\",outcome=\"partial\"} 1",
            "progression_gateway_records_pulled_total{job=\"nightly\"} 7",
            "progression_gateway_errors_total{job=\"nightly\"} 1",
            "progression_gateway_vouchers_sent_total 2",
            "progression_gateway_journal_runs{job=\"nightly\",outcome=\"ok\"} 3",
            "progression_gateway_outbox_vouchers{state=\"pending\"} 2",
            "progression_gateway_last_success_timestamp_seconds{job=\"nightly\"} 1800000000.5",
            "progression_gateway_seconds_since_last_success{job=\"nightly\"} 90.0",
            // A configured job without a success yet: since the process started.
            "progression_gateway_seconds_since_last_success{job=\"prune\"} 100.0",
            "progression_gateway_store_up 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));

        let down = encode(&m, &StoreGauges::default(), at).unwrap();
        assert!(down.contains("progression_gateway_store_up 0\n"), "{down}");
        assert!(!down.contains("journal_runs"), "{down}");
        assert!(!down.contains("last_success"), "{down}");
        assert!(down.contains("progression_gateway_vouchers_sent_total 2\n"));
    }
}
