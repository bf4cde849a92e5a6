//! One run of a job: its steps in order, each journaled in the store with start, end,
//! outcome, counts and errors.
//!
//! The steps of the nightly run are [`NIGHTLY`]: `pull` (every `files`, `fhir_pull` and `nexus`
//! source, and the roster), `compute` (courses from every stored version, stored), `post`
//! (the deltas as vouchers through the outbox to the finance system), `replies` (the finance
//! system's reply files) and `decisions` (ChargeItems to the care system). `prune` applies the
//! retention policy. A step that fails does not stop the steps after it, except `compute`,
//! which the posting steps need. A stop request (SIGTERM/SIGINT) is honoured between steps:
//! the step in flight finishes, the rest are journaled as skipped and the run as interrupted.
//!
//! A dry run changes nothing outside the gateway: it reads `fhir_pull` sources (storing what
//! is new), does not read `files` sources (reading moves files) or reply files, stores no
//! courses, sends no vouchers and writes no decisions; its counts say what would have been sent.
//!
//! Whoever calls [`execute`] holds the job's lease ([`Lease`]), so a job runs once at a time
//! across every process sharing the store.

use crate::config::{Loaded, SourceKind};
use crate::model::{Course, Finding};
use crate::pipeline::Evaluation;
use crate::sinks::post::{self, PostSummary};
use crate::sources::ingest::{ImportSummary, Ingestor};
use crate::store::{NewRun, Outcome, RunCounts, Store, StoreError, Trigger};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A step of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Read every `files`, `fhir_pull` and `nexus` source once, and the roster.
    Pull,
    /// Compute every course from the stored history and store them.
    Compute,
    /// Create the night's vouchers in the outbox and send every pending one.
    Post,
    /// Read the finance system's reply files.
    Replies,
    /// Write changed tariff decisions to the care system.
    Decisions,
    /// Export the year's steering figures per cost centre and month to finance and BI.
    Figures,
    /// Remove old journal runs and archived files by the retention policy.
    Prune,
}

impl Step {
    /// Its name in the configuration and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Pull => "pull",
            Step::Compute => "compute",
            Step::Post => "post",
            Step::Replies => "replies",
            Step::Decisions => "decisions",
            Step::Figures => "figures",
            Step::Prune => "prune",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The steps of the nightly run, in order.
pub const NIGHTLY: [Step; 6] = [
    Step::Pull,
    Step::Compute,
    Step::Post,
    Step::Replies,
    Step::Decisions,
    Step::Figures,
];

/// How long to keep what the `prune` step removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Days to keep finished runs in the journal (default 400).
    #[serde(default = "default_runs_days")]
    pub runs_days: u32,
    /// Days to keep files in the `files` sources' archive and rejected folders (default 90).
    #[serde(default = "default_files_days")]
    pub files_days: u32,
}

fn default_runs_days() -> u32 {
    400
}

fn default_files_days() -> u32 {
    90
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            runs_days: default_runs_days(),
            files_days: default_files_days(),
        }
    }
}

/// What a run needs: the store, the configuration, and who is running it.
#[derive(Debug, Clone)]
pub struct Context {
    /// The store.
    pub store: Store,
    /// Settings and mappings.
    pub loaded: Arc<Loaded>,
    /// This process's name in leases and the journal (`host:pid:random`).
    pub holder: String,
}

impl Context {
    /// A context with a fresh holder name for this process.
    pub fn new(store: Store, loaded: Arc<Loaded>) -> Self {
        Context {
            store,
            loaded,
            holder: holder_name(),
        }
    }
}

/// A name for this process, unique among the daemons sharing a store: host, process id and a
/// random suffix.
pub fn holder_name() -> String {
    format!(
        "{}:{}:{:08x}",
        host_name(),
        std::process::id(),
        rand::random::<u32>()
    )
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether a lease holder named by [`holder_name`] is a process of this host that no longer
/// exists (its lease can be taken over at once). A holder on another host, or one whose
/// process id is alive (even if reused), is not known to be gone.
pub fn holder_is_gone(holder: &str) -> bool {
    let mut parts = holder.rsplitn(3, ':');
    let (Some(_random), Some(pid), Some(host)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    host == host_name()
        && pid != std::process::id()
        && std::path::Path::new("/proc/self").exists()
        && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A run to do.
#[derive(Debug, Clone)]
pub struct Request {
    /// The job's name.
    pub job: String,
    /// What started it.
    pub trigger: Trigger,
    /// The scheduled instant it stands for.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The last day income is posted for.
    pub as_of: NaiveDate,
    /// The local wall-clock time of the run (voucher file names).
    pub now: NaiveDateTime,
    /// Change nothing outside the gateway.
    pub dry_run: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Its number in the journal.
    pub id: i64,
    /// The job.
    pub job: String,
    /// How it went.
    pub outcome: Outcome,
    /// What it did.
    pub counts: RunCounts,
    /// What went wrong.
    pub errors: Vec<String>,
    /// Data-quality findings of the computation.
    #[serde(skip)]
    pub findings: Vec<Finding>,
    /// Whether it stopped early on a stop request.
    pub interrupted: bool,
    /// What the posting steps did (for `post`'s summary).
    #[serde(skip)]
    pub post: PostSummary,
}

/// A stop request: `true` once SIGTERM/SIGINT arrived.
pub type StopSignal = watch::Receiver<bool>;

/// A stop signal that never fires (for one-shot commands that handle signals themselves).
pub fn never_stop() -> StopSignal {
    let (tx, rx) = watch::channel(false);
    // Keep the sender alive for the life of the process: the receiver then never sees a change.
    std::mem::forget(tx);
    rx
}

/// What a step leaves for the steps after it.
#[derive(Default)]
struct State {
    computed: Option<Evaluation>,
    post: PostSummary,
}

/// How a step ended.
struct StepResult {
    outcome: Outcome,
    counts: RunCounts,
    errors: Vec<String>,
}

impl StepResult {
    fn new(counts: RunCounts, errors: Vec<String>, partial: bool) -> Self {
        let outcome = if !errors.is_empty() || partial {
            Outcome::Partial
        } else {
            Outcome::Ok
        };
        StepResult {
            outcome,
            counts,
            errors,
        }
    }

    fn failed(e: impl fmt::Display, counts: RunCounts) -> Self {
        StepResult {
            outcome: Outcome::Failed,
            counts,
            errors: vec![e.to_string()],
        }
    }
}

/// Runs `req`'s steps in order, journaling the run and each step. Only a journal write that
/// fails is an error: everything else is an outcome in the report.
pub async fn execute(
    ctx: &Context,
    req: &Request,
    stop: &StopSignal,
) -> Result<Report, StoreError> {
    let store = &ctx.store;
    let id = store
        .start_run(&NewRun {
            job: &req.job,
            trigger: req.trigger,
            scheduled_for: req.scheduled_for,
            as_of: Some(req.as_of),
            dry_run: req.dry_run,
            holder: &ctx.holder,
            started_at: Utc::now(),
        })
        .await?;
    tracing::info!(
        message = "Run started.",
        run = id,
        job = %req.job,
        trigger = req.trigger.as_str(),
        as_of = %req.as_of,
        dry_run = req.dry_run
    );
    let mut state = State::default();
    let mut counts = RunCounts::default();
    let mut errors: Vec<String> = Vec::new();
    let mut outcome = Outcome::Ok;
    let mut findings = Vec::new();
    let mut interrupted = false;
    let mut blocked: Option<String> = None;
    for (i, step) in req.steps.iter().copied().enumerate() {
        let seq = i as u32 + 1;
        if *stop.borrow() {
            interrupted = true;
            store
                .skip_step(id, seq, step.as_str(), Utc::now(), "stopped by a signal")
                .await?;
            continue;
        }
        if let Some(why) = &blocked
            && step != Step::Pull
            && step != Step::Prune
        {
            store
                .skip_step(id, seq, step.as_str(), Utc::now(), why)
                .await?;
            continue;
        }
        store.start_step(id, seq, step.as_str(), Utc::now()).await?;
        let result = run_step(ctx, req, step, &mut state, &mut findings).await;
        if step == Step::Compute && result.outcome == Outcome::Failed {
            blocked = Some("the computation failed".to_owned());
        }
        tracing::info!(
            message = "Step done.",
            run = id,
            step = step.as_str(),
            outcome = result.outcome.as_str(),
            errors = result.errors.len()
        );
        for e in &result.errors {
            tracing::warn!(message = "Step error.", run = id, step = step.as_str(), error = %e);
        }
        store
            .finish_step(
                id,
                seq,
                Utc::now(),
                result.outcome,
                &result.counts,
                &result.errors,
            )
            .await?;
        counts.add(&result.counts);
        outcome = outcome.worst(result.outcome);
        errors.extend(result.errors.iter().map(|e| format!("{step}: {e}")));
    }
    if interrupted {
        outcome = outcome.worst(Outcome::Interrupted);
    }
    if !findings.is_empty() {
        let journaled: Vec<(&str, String)> =
            findings.iter().map(|f| (f.kind(), f.to_string())).collect();
        store.record_findings(id, &journaled).await?;
        for f in &findings {
            tracing::warn!(message = "Data-quality finding.", run = id, kind = f.kind(), finding = %f);
        }
    }
    store
        .finish_run(id, Utc::now(), outcome, &counts, &errors)
        .await?;
    tracing::info!(
        message = "Run finished.",
        run = id,
        job = %req.job,
        outcome = outcome.as_str(),
        records_pulled = counts.records_pulled,
        courses_changed = counts.courses_changed,
        vouchers_sent = counts.vouchers_sent,
        vouchers_accepted = counts.vouchers_accepted,
        vouchers_rejected = counts.vouchers_rejected,
        decisions_written = counts.decisions_written
    );
    Ok(Report {
        id,
        job: req.job.clone(),
        outcome,
        counts,
        errors,
        findings,
        interrupted,
        post: state.post,
    })
}

async fn run_step(
    ctx: &Context,
    req: &Request,
    step: Step,
    state: &mut State,
    findings: &mut Vec<Finding>,
) -> StepResult {
    match step {
        Step::Pull => pull_step(ctx, req.dry_run, req.now).await,
        Step::Compute => match compute_step(ctx, req, state, findings).await {
            Ok(r) => r,
            Err(e) => StepResult::failed(format!("{e:#}"), RunCounts::default()),
        },
        Step::Post => match post_step(ctx, req, state).await {
            Ok(r) => r,
            Err(e) => StepResult::failed(format!("{e:#}"), counts_of(&state.post)),
        },
        Step::Replies => match replies_step(ctx, req, state).await {
            Ok(r) => r,
            Err(e) => StepResult::failed(format!("{e:#}"), RunCounts::default()),
        },
        Step::Decisions => match decisions_step(ctx, req, state).await {
            Ok(r) => r,
            Err(e) => StepResult::failed(format!("{e:#}"), RunCounts::default()),
        },
        Step::Figures => match figures_step(ctx, req).await {
            Ok(r) => r,
            Err(e) => StepResult::failed(format!("{e:#}"), RunCounts::default()),
        },
        Step::Prune => match prune_step(ctx, req.dry_run).await {
            Ok(r) => r,
            Err(e) => StepResult::failed(format!("{e:#}"), RunCounts::default()),
        },
    }
}

/// One source's outcome of a pull.
#[derive(Debug, Serialize)]
pub struct SourcePull {
    /// The source's name.
    pub source: String,
    /// What it read, or why it failed as a whole.
    #[serde(flatten)]
    pub summary: ImportSummary,
}

/// Reads the roster, the events folder, the finance actuals folder and every `files`, `fhir_pull` and `nexus` source once (only
/// `only` when given; `files` sources not when `skip_files`). One source failing does not stop
/// the others; what it stored stays. Returns the summaries and the failures (`source: error`).
pub async fn pull_sources(
    loaded: &Loaded,
    store: &Store,
    only: Option<&str>,
    skip_files: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<SourcePull>, Vec<String>) {
    let mut done = Vec::new();
    let mut failures = Vec::new();
    if let Some(path) = &loaded.settings.roster {
        match crate::sources::roster::sync(
            store,
            path,
            &loaded.settings.pseudonym_key,
            &loaded.mappings,
        )
        .await
        {
            Ok(s) => tracing::info!(
                message = "Roster read.",
                assignments = s.assignments,
                stored = s.stored
            ),
            Err(e) => failures.push(format!("roster: {e}")),
        }
    }
    if let Some(dir) = &loaded.settings.events {
        match crate::sources::events::sync(store, dir, &loaded.settings.pseudonym_key).await {
            Ok(s) => tracing::info!(
                message = "Events read.",
                files = s.files,
                events = s.events,
                stored = s.stored,
                withdrawn = s.withdrawn
            ),
            Err(e) => failures.push(format!("events: {e}")),
        }
    }
    if let Some(actuals) = &loaded.settings.actuals {
        match crate::sources::actuals::sync(store, actuals).await {
            Ok(s) => tracing::info!(
                message = "Finance actuals read.",
                files = s.files,
                stored_files = s.stored_files,
                stored_months = s.stored_months
            ),
            Err(e) => failures.push(format!("actuals: {e}")),
        }
    }
    for source in &loaded.settings.sources {
        if only.is_some_and(|n| n != source.name) {
            continue;
        }
        let ingestor = Ingestor::new(
            store.clone(),
            loaded.settings.pseudonym_key.clone(),
            loaded.settings.time_zone,
            Arc::new(loaded.mappings.clone()),
            &source.name,
        );
        let result = match &source.kind {
            SourceKind::Files(_) if skip_files => continue,
            SourceKind::Files(cfg) => crate::sources::files::poll(&ingestor, cfg)
                .await
                .map_err(anyhow::Error::from),
            SourceKind::FhirPull(cfg) => {
                match crate::sources::fhir_pull::FhirPullClient::new(cfg.clone()) {
                    Ok(client) => crate::sources::pull::pull(&ingestor, &client)
                        .await
                        .map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::Error::from(e)),
                }
            }
            SourceKind::Nexus(settings) => {
                match crate::sources::nexus::NexusClient::new(&settings.config) {
                    Ok(client) => crate::sources::nexus::pull(&ingestor, settings, &client, now)
                        .await
                        .map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::Error::from(e)),
                }
            }
            SourceKind::FhirPush(_) => continue,
        };
        match result {
            Ok(summary) => done.push(SourcePull {
                source: source.name.clone(),
                summary,
            }),
            Err(e) => {
                tracing::error!(message = "Source failed.", source = %source.name, error = %e);
                failures.push(format!("source {}: {e:#}", source.name));
            }
        }
    }
    (done, failures)
}

async fn pull_step(ctx: &Context, dry_run: bool, now: NaiveDateTime) -> StepResult {
    // The run's local `now` as an instant: the instant a Nexus pull stamps on what changed.
    let now = now
        .and_local_timezone(ctx.loaded.settings.time_zone)
        .earliest()
        .map_or_else(chrono::Utc::now, |t| t.with_timezone(&chrono::Utc));
    let (done, failures) = pull_sources(&ctx.loaded, &ctx.store, None, dry_run, now).await;
    let mut counts = RunCounts::default();
    let mut errors = failures;
    for s in &done {
        counts.records_pulled += s.summary.stored;
        counts.records_unchanged += s.summary.unchanged;
        counts.records_rejected += s.summary.rejected.len() as u64;
        errors.extend(
            s.summary
                .rejected
                .iter()
                .map(|r| format!("source {}: rejected {}: {}", s.source, r.file, r.reason)),
        );
    }
    let attempted = done.len() + errors.len();
    if !done.is_empty() || attempted == 0 {
        StepResult::new(counts, errors, false)
    } else {
        StepResult {
            outcome: Outcome::Failed,
            counts,
            errors,
        }
    }
}

/// The pipeline as of the run's date, its new ledger rows recorded (not in a dry run).
async fn evaluate_and_record(
    ctx: &Context,
    req: &Request,
) -> anyhow::Result<(Evaluation, u64, u64)> {
    // Only the citizens that changed are read and decided again; the others come from what
    // the previous night kept (pipeline::incremental), with the income the post step needs.
    let night = crate::pipeline::incremental::evaluate_incremental(
        &ctx.store,
        &ctx.loaded.mappings,
        ctx.loaded.settings.time_zone,
        req.as_of,
    )
    .await?;
    tracing::info!(
        message = "Citizens evaluated.",
        recomputed = night.recomputed,
        reused = night.reused,
        reused_with_findings = night.reused_with_findings
    );
    let eval = &night.eval;
    let before = ctx.store.courses().await?;
    let old: HashMap<&str, &Course> = before.iter().map(|c| (c.id.0.as_str(), c)).collect();
    let flat = eval.all_courses();
    let new_ids: std::collections::HashSet<&str> = flat.iter().map(|c| c.id.0.as_str()).collect();
    let changed = flat
        .iter()
        .filter(|c| old.get(c.id.0.as_str()) != Some(c))
        .count()
        + old.keys().filter(|id| !new_ids.contains(*id)).count();
    let recorded = if req.dry_run {
        0
    } else {
        let n = eval.record(&ctx.store, req.as_of).await?;
        night.keep(&ctx.store).await?;
        n
    };
    Ok((night.eval, changed as u64, recorded))
}

/// The computation of an earlier `compute` step, or a fresh one (recorded) when the job has
/// none.
async fn computed<'a>(
    ctx: &Context,
    req: &Request,
    state: &'a mut State,
) -> anyhow::Result<&'a Evaluation> {
    if state.computed.is_none() {
        state.computed = Some(evaluate_and_record(ctx, req).await?.0);
    }
    Ok(state.computed.as_ref().expect("computed above"))
}

async fn compute_step(
    ctx: &Context,
    req: &Request,
    state: &mut State,
    findings: &mut Vec<Finding>,
) -> anyhow::Result<StepResult> {
    let (eval, changed, recorded) = evaluate_and_record(ctx, req).await?;
    let counts = RunCounts {
        courses: eval.courses.iter().map(Vec::len).sum::<usize>() as u64,
        courses_changed: changed,
        findings: eval.findings.len() as u64,
        ..RunCounts::default()
    };
    tracing::info!(
        message = "Courses computed.",
        courses = counts.courses,
        ledger_rows = recorded,
        findings = counts.findings
    );
    *findings = eval.findings.clone();
    state.computed = Some(eval);
    Ok(StepResult::new(counts, Vec::new(), false))
}

/// The delivery errors and rejected vouchers of a posting, as journal errors.
fn delivery_errors(s: &PostSummary) -> Vec<String> {
    let mut errors = s.delivery_errors.clone();
    errors.extend(
        s.vouchers_rejected
            .iter()
            .map(|r| format!("voucher {} rejected: {}", r.number, r.message)),
    );
    errors
}

fn counts_of(s: &PostSummary) -> RunCounts {
    RunCounts {
        vouchers_created: s.vouchers_created,
        vouchers_sent: s.vouchers_sent,
        vouchers_accepted: s.vouchers_accepted,
        vouchers_rejected: s.vouchers_rejected.len() as u64,
        vouchers_pending: s.vouchers_pending,
        vouchers_resent: s.vouchers_resent,
        vouchers_unanswered: s.vouchers_unanswered,
        decisions_written: s.decisions_written,
        decisions_unchanged: s.decisions_unchanged,
        ..RunCounts::default()
    }
}

async fn post_step(ctx: &Context, req: &Request, state: &mut State) -> anyhow::Result<StepResult> {
    let Some(finance) = ctx.loaded.settings.finance.clone() else {
        return Ok(StepResult::new(
            RunCounts::default(),
            vec!["no [finance] configured: no vouchers sent".to_owned()],
            true,
        ));
    };
    // Whatever job this step runs in, only one process creates and sends vouchers at a
    // time: the deltas are read and the vouchers made under the posting lease, so no delta
    // is covered twice.
    let lease = if req.dry_run {
        None
    } else {
        // Another process posting now: wait for it (it is seconds), then read what it posted.
        let deadline = std::time::Instant::now() + POSTING_WAIT;
        loop {
            match Lease::claim(ctx, POSTING_LEASE, None, ctx.loaded.settings.daemon.lease).await? {
                Some(l) => break Some(l),
                None if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                None => {
                    return Ok(StepResult::new(
                        RunCounts::default(),
                        vec![format!(
                            "another process has been posting vouchers for {} s; this run's go with the next",
                            POSTING_WAIT.as_secs()
                        )],
                        true,
                    ));
                }
            }
        }
    };
    let result = post_under_lease(ctx, req, state, &finance).await;
    if let Some(lease) = lease {
        lease.release().await?;
    }
    result
}

/// The lease every posting step takes, whatever its job.
pub const POSTING_LEASE: &str = "posting";
/// How long a posting step waits for another process's posting to finish.
const POSTING_WAIT: Duration = Duration::from_secs(120);

async fn post_under_lease(
    ctx: &Context,
    req: &Request,
    state: &mut State,
    finance: &crate::sinks::post::FinanceSettings,
) -> anyhow::Result<StepResult> {
    let mappings = &ctx.loaded.mappings;
    let c = computed(ctx, req, state).await?;
    let (deltas, report) = c.deltas(&ctx.store, mappings, req.as_of).await?;
    if req.dry_run {
        let vouchers = post::dry_run_vouchers(&ctx.store, &deltas, mappings, req.as_of).await?;
        let counts = RunCounts {
            vouchers_created: vouchers.len() as u64,
            ..RunCounts::default()
        };
        state.post.as_of = Some(req.as_of);
        state.post.dry_run_vouchers = vouchers;
        return Ok(StepResult::new(counts, Vec::new(), false));
    }
    let mut summary = PostSummary {
        as_of: Some(req.as_of),
        ..PostSummary::default()
    };
    post::send_vouchers(
        &ctx.store,
        mappings,
        finance,
        &deltas,
        &report,
        req.as_of,
        req.now,
        &mut summary,
    )
    .await?;
    let result = StepResult::new(counts_of(&summary), delivery_errors(&summary), false);
    state.post = summary;
    Ok(result)
}

async fn replies_step(
    ctx: &Context,
    req: &Request,
    state: &mut State,
) -> anyhow::Result<StepResult> {
    let Some(finance) = ctx.loaded.settings.finance.clone() else {
        return Ok(StepResult::new(RunCounts::default(), Vec::new(), false));
    };
    if req.dry_run {
        return Ok(StepResult::new(RunCounts::default(), Vec::new(), false));
    }
    let mut summary = PostSummary::default();
    post::read_replies(&ctx.store, &finance, &mut summary).await?;
    let result = StepResult::new(counts_of(&summary), delivery_errors(&summary), false);
    let all = &mut state.post;
    all.vouchers_accepted += summary.vouchers_accepted;
    all.vouchers_rejected.extend(summary.vouchers_rejected);
    all.vouchers_pending = summary.vouchers_pending;
    all.vouchers_unanswered = summary.vouchers_unanswered;
    all.delivery_errors.extend(summary.delivery_errors);
    Ok(result)
}

/// The steps of `post`: the nightly run without the pull.
pub const POST: [Step; 4] = [Step::Compute, Step::Post, Step::Replies, Step::Decisions];

/// One posting now, as the `post` command does it: the steps of [`POST`] as the job `post`,
/// journaled, under the `nightly` job's lease (so it never posts beside a nightly run).
/// Returns `None` when another process holds the lease.
pub async fn post_now(
    ctx: &Context,
    as_of: NaiveDate,
    now: NaiveDateTime,
    dry_run: bool,
) -> anyhow::Result<Option<Report>> {
    let ttl = ctx.loaded.settings.daemon.lease;
    let Some(lease) = Lease::claim(ctx, "nightly", None, ttl).await? else {
        return Ok(None);
    };
    let req = Request {
        job: "post".to_owned(),
        trigger: Trigger::Manual,
        scheduled_for: None,
        as_of,
        now,
        dry_run,
        steps: POST.to_vec(),
    };
    let report = execute(ctx, &req, &never_stop()).await;
    lease.release().await?;
    Ok(Some(report?))
}

async fn decisions_step(
    ctx: &Context,
    req: &Request,
    state: &mut State,
) -> anyhow::Result<StepResult> {
    let Some(cfg) = ctx.loaded.settings.decisions.clone() else {
        return Ok(StepResult::new(RunCounts::default(), Vec::new(), false));
    };
    let c = computed(ctx, req, state).await?;
    let flat = c.all_courses();
    let patients = c.patients();
    if req.dry_run {
        let items = post::dry_run_decisions(&flat, &patients, &cfg);
        let counts = RunCounts {
            decisions_written: items.len() as u64,
            ..RunCounts::default()
        };
        state.post.dry_run_decisions = items;
        return Ok(StepResult::new(counts, Vec::new(), false));
    }
    let mut summary = PostSummary::default();
    post::write_decisions(&ctx.store, &cfg, &flat, &patients, &mut summary).await?;
    let errors = summary.decision_errors.clone();
    state.post.decisions_written += summary.decisions_written;
    state.post.decisions_unchanged += summary.decisions_unchanged;
    state.post.decisions_without_patient += summary.decisions_without_patient;
    state
        .post
        .decision_errors
        .extend(summary.decision_errors.clone());
    Ok(StepResult::new(counts_of(&summary), errors, false))
}

/// The year's steering figures so far, as of the run's date, to finance and BI
/// (`[figures_export]`; nothing to do without it). A dry run builds the file and counts its
/// rows without sending it.
async fn figures_step(ctx: &Context, req: &Request) -> anyhow::Result<StepResult> {
    let settings = &ctx.loaded.settings;
    let Some(export) = &settings.figures_export else {
        return Ok(StepResult::new(RunCounts::default(), Vec::new(), false));
    };
    let Some(transport) = export
        .transport
        .as_ref()
        .or(settings.finance.as_ref().map(|f| &f.transport))
    else {
        anyhow::bail!("no transport: give [figures_export.transport] or configure [finance]");
    };
    let from = chrono::NaiveDate::from_ymd_opt(chrono::Datelike::year(&req.as_of), 1, 1)
        .expect("1 January");
    let snap = crate::pipeline::figures(
        &ctx.store,
        &ctx.loaded.mappings,
        settings.time_zone,
        from,
        req.as_of,
    )
    .await?;
    let file = crate::sinks::figures::file(export, &snap.figures, &ctx.loaded.mappings, req.as_of)?;
    let counts = RunCounts {
        figures_exported: file.rows as u64,
        ..RunCounts::default()
    };
    if req.dry_run {
        return Ok(StepResult::new(counts, Vec::new(), false));
    }
    let sent = crate::sinks::figures::deliver(transport, &file)
        .await
        .map_err(|e| anyhow::anyhow!("steering figures {}: {e}", file.name))?;
    tracing::info!(
        message = "Steering figures exported.",
        file = %file.name,
        rows = file.rows,
        already_there = sent == crate::sinks::figures::Sent::AlreadyThere
    );
    Ok(StepResult::new(counts, Vec::new(), false))
}

async fn prune_step(ctx: &Context, dry_run: bool) -> anyhow::Result<StepResult> {
    let retention = ctx.loaded.settings.daemon.retention;
    let now = Utc::now();
    let mut counts = RunCounts::default();
    let mut errors = Vec::new();
    if dry_run {
        return Ok(StepResult::new(counts, errors, false));
    }
    counts.runs_pruned = ctx
        .store
        .prune_runs(now - chrono::Duration::days(i64::from(retention.runs_days)))
        .await?;
    let limit = Duration::from_secs(u64::from(retention.files_days) * 86_400);
    for source in &ctx.loaded.settings.sources {
        if let SourceKind::Files(cfg) = &source.kind {
            for dir in [cfg.archive(), cfg.rejected()] {
                match prune_folder(&dir, limit) {
                    Ok(n) => counts.files_pruned += n,
                    Err(e) => errors.push(format!("pruning {}: {e}", dir.display())),
                }
            }
        }
    }
    Ok(StepResult::new(counts, errors, false))
}

/// Removes the files directly in `dir` last modified more than `older_than` ago.
fn prune_folder(dir: &std::path::Path, older_than: Duration) -> std::io::Result<u64> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_file() && meta.modified()?.elapsed().is_ok_and(|age| age > older_than) {
            std::fs::remove_file(entry.path())?;
            n += 1;
        }
    }
    Ok(n)
}

/// A held job lease, renewed in the background until released.
pub struct Lease {
    store: Store,
    job: String,
    holder: String,
    renew: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes the lease of `job` (claiming `scheduled_for` with it, see
    /// [`Store::claim_job`]); `None` if another process holds it or has claimed that instant.
    /// While held it is renewed every third of `ttl`.
    pub async fn claim(
        ctx: &Context,
        job: &str,
        scheduled_for: Option<DateTime<Utc>>,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let mut claimed = ctx
            .store
            .claim_job(job, &ctx.holder, scheduled_for, Utc::now(), ttl)
            .await?;
        if !claimed
            && let Some(other) = ctx.store.lease_holder(job).await?
            && holder_is_gone(&other)
        {
            // Killed (SIGKILL, a panic) without giving the lease back: take it over at once.
            tracing::warn!(
                message = "Taking over the lease of a process that no longer exists.",
                job,
                holder = %other
            );
            ctx.store.take_over_from(job, &other, Utc::now()).await?;
            claimed = ctx
                .store
                .claim_job(job, &ctx.holder, scheduled_for, Utc::now(), ttl)
                .await?;
        }
        if !claimed {
            return Ok(None);
        }
        let (store, job_name, holder) = (ctx.store.clone(), job.to_owned(), ctx.holder.clone());
        let renew = tokio::spawn(async move {
            let every = (ttl / 3).max(Duration::from_millis(100));
            loop {
                tokio::time::sleep(every).await;
                match store.renew_job(&job_name, &holder, Utc::now(), ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::error!(message = "Lost a job lease.", job = %job_name);
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(message = "Cannot renew a job lease.", job = %job_name, error = %e)
                    }
                }
            }
        });
        Ok(Some(Lease {
            store: ctx.store.clone(),
            job: job.to_owned(),
            holder: ctx.holder.clone(),
            renew,
        }))
    }

    /// Gives the lease back.
    pub async fn release(self) -> Result<(), StoreError> {
        self.renew.abort();
        self.store.release_job(&self.job, &self.holder).await
    }
}
