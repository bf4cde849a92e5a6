//! The daemon: jobs on their schedules, one run of a job at a time across every daemon
//! sharing the store, the operations HTTP server, and a clean stop on SIGTERM/SIGINT.
//!
//! Each job has its own loop: it sleeps until the next run of its schedule
//! ([`crate::schedule::JobSchedule::next_after`], in the configured time zone), claims that
//! scheduled instant together with the job's lease in the store ([`crate::run::Lease`]), runs
//! the job's steps ([`crate::run::execute`]) and gives the lease back. A daemon that finds the
//! instant claimed by another daemon skips it: each scheduled run happens once, whichever
//! daemon gets there first, and never two runs of a job at a time. A daemon that finds the job
//! busy with another run (an earlier instant, or a manual `run`) waits for it, then runs.
//!
//! Catching up: on start, and after a run that outlasted the next scheduled instant, a job
//! with `catch_up` runs once for the latest scheduled instant it missed since the last one any
//! daemon claimed (however many it missed).
//!
//! Stopping: when the stop signal fires, sleeping loops end at once; a run in flight finishes
//! the step it is in, journals the rest as skipped and the run as interrupted, and gives its
//! lease back; the HTTP server stops accepting and finishes the requests it has.

pub mod settings;

pub use settings::{DaemonSettings, HttpSettings, JobSettings, default_jobs};

use crate::api::{ApiState, Metrics};
use crate::run::{self, Context, Lease, Request, StopSignal};
use crate::store::Trigger;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// The longest single sleep: the loop wakes at least this often to re-read the clock, so a
/// clock step (NTP) delays a run by at most this much.
const MAX_SLEEP: Duration = Duration::from_secs(30);

/// How often a daemon retries a scheduled instant while the job is busy with another run.
const BUSY_RETRY: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

/// Runs every configured job on its schedule, and the HTTP server of `[http]`, until `stop`
/// fires; then returns once the runs in flight have finished their current step.
pub async fn serve(ctx: Context, metrics: Arc<Metrics>, stop: StopSignal) -> anyhow::Result<()> {
    let settings = &ctx.loaded.settings;
    let mut tasks = tokio::task::JoinSet::new();
    // The cockpit's figures are computed when the daemon starts and after every run, so a
    // person opening the page does not wait for them.
    let cockpit = match (&settings.daemon.http, &settings.cockpit) {
        (Some(_), Some(c)) => Some(crate::cockpit::CockpitState::new(
            ctx.store.clone(),
            ctx.loaded.clone(),
            c,
        )?),
        _ => None,
    };
    if let Some(c) = cockpit.clone() {
        tokio::spawn(async move { c.warm().await });
    }
    if let Some(http) = &settings.daemon.http {
        let push = settings.sources.iter().find_map(|s| match &s.kind {
            crate::config::SourceKind::FhirPush(cfg) => Some(crate::sources::fhir_push::router(
                crate::sources::ingest::Ingestor::new(
                    ctx.store.clone(),
                    settings.pseudonym_key.clone(),
                    settings.time_zone,
                    Arc::new(ctx.loaded.mappings.clone()),
                    &s.name,
                ),
                cfg.clone(),
            )),
            _ => None,
        });
        let app = crate::api::router(
            ApiState::new(ctx.store.clone(), http.token.clone(), metrics.clone())
                .with_pseudonym_key(ctx.loaded.settings.pseudonym_key.clone())
                .with_jobs(
                    ctx.loaded
                        .settings
                        .daemon
                        .jobs
                        .iter()
                        .map(|j| j.name.clone())
                        .collect(),
                ),
            push,
        );
        let app = match &cockpit {
            Some(c) => app.merge(crate::cockpit::router(c.clone())),
            None => app,
        };
        let listener = tokio::net::TcpListener::bind(http.listen)
            .await
            .with_context(|| format!("cannot listen on {}", http.listen))?;
        let address = listener.local_addr()?;
        tracing::info!(message = "Serving the operations endpoints.", address = %address);
        let mut stop_http = stop.clone();
        tasks.spawn(async move {
            let shutdown = async move {
                let _ = stop_http.wait_for(|s| *s).await;
            };
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
                .context("the HTTP server failed")
        });
    } else if settings
        .sources
        .iter()
        .any(|s| matches!(s.kind, crate::config::SourceKind::FhirPush(_)))
    {
        tracing::warn!(
            message =
                "A fhir_push source is configured but no [http]: it is not served by the daemon."
        );
    }
    for job in settings.daemon.jobs.clone() {
        let (ctx, metrics, stop) = (ctx.clone(), metrics.clone(), stop.clone());
        let cockpit = cockpit.clone();
        tasks.spawn(async move {
            job_loop(&ctx, &job, &metrics, cockpit.as_ref(), stop).await;
            Ok(())
        });
    }
    tracing::info!(
        message = "Daemon started.",
        holder = %ctx.holder,
        jobs = settings.daemon.jobs.len(),
        time_zone = %settings.time_zone
    );
    let mut result = Ok(());
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(message = "A daemon task failed.", error = %format!("{e:#}"));
                result = Err(e);
            }
            Err(e) => result = Err(anyhow::anyhow!("a daemon task panicked: {e}")),
        }
    }
    tracing::info!(message = "Daemon stopped.");
    result
}

/// Sleeps until `at` (waking every [`MAX_SLEEP`] to re-read the clock); false if `stop` fired.
async fn sleep_until(at: DateTime<Utc>, stop: &mut StopSignal) -> bool {
    loop {
        if *stop.borrow() {
            return false;
        }
        let left = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(left.min(MAX_SLEEP)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One job's loop: catch up, then every scheduled run until `stop`.
async fn job_loop(
    ctx: &Context,
    job: &JobSettings,
    metrics: &Metrics,
    cockpit: Option<&crate::cockpit::CockpitState>,
    mut stop: StopSignal,
) {
    let tz = ctx.loaded.settings.time_zone;
    let store = &ctx.store;
    let now = Utc::now();
    match store.last_scheduled(&job.name).await {
        Ok(Some(last)) => {
            if let Some(missed) = job.schedule.last_missed(last, now, tz) {
                if job.catch_up {
                    tracing::info!(message = "Catching up a missed run.", job = %job.name, scheduled_for = %missed);
                    occurrence(ctx, job, metrics, missed, Trigger::CatchUp, &stop).await;
                    warm(cockpit);
                } else {
                    tracing::warn!(message = "A run was missed and catch_up is off.", job = %job.name, scheduled_for = %missed);
                }
            }
        }
        // The first start: nothing was missed. Remember when the job began to be scheduled,
        // so a later downtime is known.
        Ok(None) => {
            if let Err(e) = store.set_last_scheduled(&job.name, now).await {
                tracing::warn!(message = "Cannot record the job's start.", job = %job.name, error = %e);
            }
        }
        Err(e) => {
            tracing::warn!(message = "Cannot read the job's last run.", job = %job.name, error = %e)
        }
    }
    let mut after = now;
    loop {
        let Some(next) = job.schedule.next_after(after, tz) else {
            tracing::warn!(message = "The schedule has no more runs.", job = %job.name);
            return;
        };
        tracing::debug!(message = "Next run.", job = %job.name, at = %next);
        if !sleep_until(next, &mut stop).await {
            return;
        }
        occurrence(ctx, job, metrics, next, Trigger::Schedule, &stop).await;
        warm(cockpit);
        after = next;
        // A run that outlasted later scheduled instants: catch up once, with the latest.
        let now = Utc::now();
        if let Some(missed) = job.schedule.last_missed(next, now, tz) {
            if job.catch_up && !*stop.borrow() {
                occurrence(ctx, job, metrics, missed, Trigger::CatchUp, &stop).await;
                warm(cockpit);
            }
            after = now.max(missed);
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Computes the cockpit's figures again in the background (after a run changed the store).
fn warm(cockpit: Option<&crate::cockpit::CockpitState>) {
    if let Some(c) = cockpit.cloned() {
        tokio::spawn(async move { c.warm().await });
    }
}

/// Claims and runs one scheduled instant of a job, unless another daemon has it.
async fn occurrence(
    ctx: &Context,
    job: &JobSettings,
    metrics: &Metrics,
    at: DateTime<Utc>,
    trigger: Trigger,
    stop: &StopSignal,
) {
    let settings = &ctx.loaded.settings;
    let mut stop_wait = stop.clone();
    let lease = loop {
        match Lease::claim(ctx, &job.name, Some(at), settings.daemon.lease).await {
            Ok(Some(lease)) => break lease,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(message = "Cannot claim the job.", job = %job.name, error = %e);
                return;
            }
        }
        // Claimed by another daemon: it runs (or ran) this instant. Otherwise the job is busy
        // with an earlier run or a manual one: wait for it, then run this instant.
        match ctx.store.last_scheduled(&job.name).await {
            Ok(Some(claimed)) if claimed >= at => {
                tracing::info!(message = "Run skipped: another daemon has it.", job = %job.name, scheduled_for = %at);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(message = "Cannot read the job's lease.", job = %job.name, error = %e);
                return;
            }
        }
        tracing::debug!(message = "The job is busy; waiting for it.", job = %job.name, scheduled_for = %at);
        if !sleep_until(Utc::now() + BUSY_RETRY, &mut stop_wait).await {
            return;
        }
    };
    let tz = settings.time_zone;
    let local = at.with_timezone(&tz);
    let req = Request {
        job: job.name.clone(),
        trigger,
        scheduled_for: Some(at),
        as_of: local.date_naive() - chrono::Days::new(1),
        now: Utc::now().with_timezone(&tz).naive_local(),
        dry_run: false,
        steps: job.steps.clone(),
    };
    match run::execute(ctx, &req, stop).await {
        Ok(report) => metrics.observe(&report),
        Err(e) => tracing::error!(message = "Cannot journal the run.", job = %job.name, error = %e),
    }
    if let Err(e) = lease.release().await {
        tracing::warn!(message = "Cannot release the job's lease.", job = %job.name, error = %e);
    }
}
