//! The run journal (every run of a job and each of its steps) and the job leases that keep a
//! job to one run at a time across every daemon sharing the store.

use super::BeginWrite;
use super::error::db;
use super::{Pool, Store, StoreError, codec};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The job's schedule, on time.
    Schedule,
    /// A run missed while no daemon was running, caught up once.
    CatchUp,
    /// The `run` command.
    Manual,
    /// The `demo` command.
    Demo,
}

impl Trigger {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch_up",
            Trigger::Manual => "manual",
            Trigger::Demo => "demo",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "schedule" => Trigger::Schedule,
            "catch_up" => Trigger::CatchUp,
            "manual" => Trigger::Manual,
            "demo" => Trigger::Demo,
            _ => return None,
        })
    }
}

/// How a run or a step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still going.
    Running,
    /// Everything done, nothing rejected, no errors.
    Ok,
    /// Done, but something was rejected or failed and will be retried (a source, a voucher).
    Partial,
    /// A step failed outright.
    Failed,
    /// Stopped by SIGTERM/SIGINT after the step in flight (runs only).
    Interrupted,
    /// Its daemon went away without finishing it (the lease expired; runs only).
    Abandoned,
    /// Not done: the run stopped before it (steps only).
    Skipped,
}

impl Outcome {
    /// Every outcome, in order.
    pub const ALL: [Outcome; 7] = [
        Outcome::Running,
        Outcome::Ok,
        Outcome::Partial,
        Outcome::Failed,
        Outcome::Interrupted,
        Outcome::Abandoned,
        Outcome::Skipped,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Abandoned => "abandoned",
            Outcome::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// The worse of two outcomes (ok < partial < failed).
    pub fn worst(self, other: Outcome) -> Outcome {
        fn rank(o: Outcome) -> u8 {
            match o {
                Outcome::Ok | Outcome::Skipped => 0,
                Outcome::Partial => 1,
                Outcome::Running => 2,
                Outcome::Interrupted => 3,
                Outcome::Failed | Outcome::Abandoned => 4,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a run or step did, in numbers. A run's counts are the sum of its steps'.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunCounts {
    /// Record versions stored from the sources.
    pub records_pulled: u64,
    /// Record versions read again and already stored.
    pub records_unchanged: u64,
    /// Files or Bundles rejected by the sources.
    pub records_rejected: u64,
    /// Courses computed.
    pub courses: u64,
    /// Courses new, changed or gone since the last computation.
    pub courses_changed: u64,
    /// Data-quality findings (unknown codes, missing teams, ...).
    pub findings: u64,
    /// Vouchers created (stored in the outbox).
    pub vouchers_created: u64,
    /// Vouchers delivered to the finance system.
    pub vouchers_sent: u64,
    /// Vouchers the finance system accepted.
    pub vouchers_accepted: u64,
    /// Vouchers the finance system rejected.
    pub vouchers_rejected: u64,
    /// Vouchers still waiting to be delivered after the step.
    pub vouchers_pending: u64,
    /// Tariff decisions written to the care system.
    pub decisions_written: u64,
    /// Tariff decisions unchanged since last written.
    pub decisions_unchanged: u64,
    /// Journal runs removed by the retention policy.
    pub runs_pruned: u64,
    /// Archived or rejected files removed by the retention policy.
    pub files_pruned: u64,
    /// Vouchers re-sent this run because no reply came within `finance.resend_after_hours`.
    #[serde(default)]
    pub vouchers_resent: u64,
    /// Vouchers sent and still without a reply after the run (until the finance system answers).
    #[serde(default)]
    pub vouchers_unanswered: u64,
    /// Rows of steering figures exported to finance and BI.
    #[serde(default)]
    pub figures_exported: u64,
}

impl RunCounts {
    /// Adds another step's counts to these. `vouchers_pending` is a level, not a sum: the
    /// later value wins when it is set.
    pub fn add(&mut self, o: &RunCounts) {
        self.records_pulled += o.records_pulled;
        self.records_unchanged += o.records_unchanged;
        self.records_rejected += o.records_rejected;
        self.courses = self.courses.max(o.courses);
        self.courses_changed += o.courses_changed;
        self.findings = self.findings.max(o.findings);
        self.vouchers_created += o.vouchers_created;
        self.vouchers_sent += o.vouchers_sent;
        self.vouchers_accepted += o.vouchers_accepted;
        self.vouchers_rejected += o.vouchers_rejected;
        if o.vouchers_pending > 0 || o.vouchers_sent > 0 || o.vouchers_created > 0 {
            self.vouchers_pending = o.vouchers_pending;
        }
        self.decisions_written += o.decisions_written;
        self.decisions_unchanged += o.decisions_unchanged;
        self.runs_pruned += o.runs_pruned;
        self.files_pruned += o.files_pruned;
        self.vouchers_resent += o.vouchers_resent;
        self.figures_exported += o.figures_exported;
        if o.vouchers_unanswered > 0 || o.vouchers_sent > 0 || o.vouchers_accepted > 0 {
            self.vouchers_unanswered = o.vouchers_unanswered;
        }
    }
}

/// A run about to start.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    /// The job's name (`nightly`, `pull`, ...).
    pub job: &'a str,
    /// What started it.
    pub trigger: Trigger,
    /// The scheduled instant it stands for (scheduled and caught-up runs).
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The as-of date of its posting, if it posts.
    pub as_of: Option<NaiveDate>,
    /// Whether it changes nothing outside the gateway.
    pub dry_run: bool,
    /// Which process runs it.
    pub holder: &'a str,
    /// When it started.
    pub started_at: DateTime<Utc>,
}

/// A step of a run, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    /// Its place in the run, from 1.
    pub seq: u32,
    /// The step's name (`pull`, `compute`, `post`, `replies`, `decisions`, `prune`).
    pub step: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (none while running).
    pub ended_at: Option<DateTime<Utc>>,
    /// How it went.
    pub outcome: Outcome,
    /// What it did.
    pub counts: RunCounts,
    /// What went wrong (never a CPR number or a secret).
    pub errors: Vec<String>,
}

/// A run, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    /// Its number.
    pub id: i64,
    /// The job's name.
    pub job: String,
    /// What started it.
    pub trigger: Trigger,
    /// The scheduled instant it stands for.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The as-of date of its posting.
    pub as_of: Option<NaiveDate>,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Which process ran it.
    pub holder: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (none while running).
    pub ended_at: Option<DateTime<Utc>>,
    /// How it went.
    pub outcome: Outcome,
    /// What it did (the sum of its steps).
    pub counts: RunCounts,
    /// What went wrong.
    pub errors: Vec<String>,
    /// Its steps in order.
    pub steps: Vec<StepRecord>,
    /// The data-quality findings of its computation, counted by kind.
    pub findings: std::collections::BTreeMap<String, u64>,
}

const INSERT_RUN: &str = "INSERT INTO runs (job, trigger, scheduled_for, as_of, dry_run, holder, \
     started_at, ended_at, outcome, counts, errors) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, 'running', '{}', '[]') RETURNING id";
const FINISH_RUN: &str =
    "UPDATE runs SET ended_at = $2, outcome = $3, counts = $4, errors = $5 WHERE id = $1";
const INSERT_STEP: &str = "INSERT INTO run_steps (run_id, seq, step, started_at, ended_at, \
     outcome, counts, errors) VALUES ($1, $2, $3, $4, NULL, 'running', '{}', '[]')";
const FINISH_STEP: &str = "UPDATE run_steps SET ended_at = $3, outcome = $4, counts = $5, \
     errors = $6 WHERE run_id = $1 AND seq = $2";
const INSERT_SKIPPED_STEP: &str = "INSERT INTO run_steps (run_id, seq, step, started_at, \
     ended_at, outcome, counts, errors) VALUES ($1, $2, $3, $4, $4, 'skipped', '{}', $5)";
const RUN_COLUMNS: &str = "id, job, trigger, scheduled_for, as_of, dry_run, holder, started_at, \
     ended_at, outcome, counts, errors";
const SELECT_STEPS: &str = "SELECT run_id, seq, step, started_at, ended_at, outcome, counts, \
     errors FROM run_steps WHERE run_id >= $1 AND run_id <= $2 ORDER BY run_id, seq";
const LAST_SUCCESS: &str = "SELECT MAX(ended_at) FROM runs WHERE outcome = 'ok' AND dry_run = $1";
const LAST_SUCCESS_BY_JOB: &str = "SELECT job, MAX(ended_at) FROM runs \
     WHERE outcome = 'ok' AND dry_run = $1 GROUP BY job ORDER BY job";
const RUN_OUTCOMES: &str = "SELECT job, outcome, COUNT(*) FROM runs GROUP BY job, outcome";
const VOUCHER_STATES: &str = "SELECT state, COUNT(*) FROM vouchers GROUP BY state";
const DELETE_FINDINGS_BEFORE: &str = "DELETE FROM run_findings WHERE run_id IN \
     (SELECT id FROM runs WHERE started_at < $1 AND outcome <> 'running')";
const INSERT_FINDING: &str = "INSERT INTO run_findings (run_id, kind, message) VALUES ($1, $2, $3)";
const SELECT_FINDING_KINDS: &str = "SELECT run_id, kind, COUNT(*) FROM run_findings \
     WHERE run_id BETWEEN $1 AND $2 GROUP BY run_id, kind ORDER BY run_id, kind";
const SELECT_FINDINGS: &str =
    "SELECT kind, message FROM run_findings WHERE run_id = $1 ORDER BY kind, message";
const DELETE_STEPS_BEFORE: &str = "DELETE FROM run_steps WHERE run_id IN \
     (SELECT id FROM runs WHERE started_at < $1 AND outcome <> 'running')";
const DELETE_RUNS_BEFORE: &str = "DELETE FROM runs WHERE started_at < $1 AND outcome <> 'running'";

const ENSURE_LEASE: &str = "INSERT INTO job_leases (job, holder, expires_at, last_scheduled_for) \
     VALUES ($1, NULL, NULL, NULL) ON CONFLICT (job) DO NOTHING";
const CLAIM_LEASE: &str = "UPDATE job_leases SET holder = $2, expires_at = $3 \
     WHERE job = $1 AND (holder IS NULL OR holder = $2 OR expires_at < $4)";
const CLAIM_SCHEDULED: &str = "UPDATE job_leases SET holder = $2, expires_at = $3, \
     last_scheduled_for = $5 WHERE job = $1 AND (holder IS NULL OR holder = $2 OR expires_at < $4) \
     AND (last_scheduled_for IS NULL OR last_scheduled_for < $5)";
const ABANDON_RUNS: &str = "UPDATE runs SET outcome = 'abandoned', ended_at = $3 \
     WHERE job = $1 AND outcome = 'running' AND holder <> $2";
const SELECT_HOLDER: &str = "SELECT holder FROM job_leases WHERE job = $1";
const ABANDON_RUNS_OF: &str = "UPDATE runs SET outcome = 'abandoned', ended_at = $2 \
     WHERE holder = $1 AND outcome = 'running'";
const RENEW_LEASE: &str = "UPDATE job_leases SET expires_at = $3 WHERE job = $1 AND holder = $2";
const RELEASE_LEASE: &str =
    "UPDATE job_leases SET holder = NULL, expires_at = NULL WHERE job = $1 AND holder = $2";
const SELECT_LAST_SCHEDULED: &str = "SELECT last_scheduled_for FROM job_leases WHERE job = $1";
const SET_LAST_SCHEDULED: &str = "UPDATE job_leases SET last_scheduled_for = $2 WHERE job = $1 \
     AND (last_scheduled_for IS NULL OR last_scheduled_for < $2)";

type RunRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    bool,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
);
type StepRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
);

fn json<T: Serialize>(what: &'static str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Invalid {
        what,
        reason: e.to_string(),
    })
}

fn corrupt(what: &'static str, row: i64) -> impl Fn(String) -> StoreError {
    move |reason| StoreError::Corrupt {
        what,
        row: row.to_string(),
        reason,
    }
}

fn instant(what: &'static str, row: i64, text: &str) -> Result<DateTime<Utc>, StoreError> {
    codec::parse_instant(text).map_err(corrupt(what, row))
}

fn opt_instant(
    what: &'static str,
    row: i64,
    text: Option<&str>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.map(|t| instant(what, row, t)).transpose()
}

fn expiry(now: DateTime<Utc>, lease: Duration) -> Result<String, StoreError> {
    let until = now
        + chrono::Duration::from_std(lease).map_err(|e| StoreError::Invalid {
            what: "lease duration",
            reason: e.to_string(),
        })?;
    codec::instant_text("lease expiry", until)
}

impl Store {
    /// Checks the database answers (for readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
        })
        .map_err(db("checking the database answers"))
    }

    /// Journals the start of a run and returns its number.
    pub async fn start_run(&self, run: &NewRun<'_>) -> Result<i64, StoreError> {
        let scheduled = run
            .scheduled_for
            .map(|t| codec::instant_text("scheduled_for", t))
            .transpose()?;
        let as_of = run.as_of.map(codec::date_text);
        let started = codec::instant_text("started_at", run.started_at)?;
        with_pool!(self, |pool| {
            sqlx::query_as::<_, (i64,)>(INSERT_RUN)
                .bind(run.job)
                .bind(run.trigger.as_str())
                .bind(scheduled.as_deref())
                .bind(as_of.as_deref())
                .bind(run.dry_run)
                .bind(run.holder)
                .bind(started.as_str())
                .fetch_one(pool)
                .await
        })
        .map(|(id,)| id)
        .map_err(db("journaling the start of a run"))
    }

    /// Journals the end of a run.
    pub async fn finish_run(
        &self,
        id: i64,
        ended_at: DateTime<Utc>,
        outcome: Outcome,
        counts: &RunCounts,
        errors: &[String],
    ) -> Result<(), StoreError> {
        let ended = codec::instant_text("ended_at", ended_at)?;
        let counts = json("run counts", counts)?;
        let errors = json("run errors", &errors)?;
        with_pool!(self, |pool| {
            sqlx::query(FINISH_RUN)
                .bind(id)
                .bind(ended.as_str())
                .bind(outcome.as_str())
                .bind(counts.as_str())
                .bind(errors.as_str())
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(db("journaling the end of a run"))
    }

    /// Journals the start of step `seq` of run `run_id`.
    pub async fn start_step(
        &self,
        run_id: i64,
        seq: u32,
        step: &str,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let started = codec::instant_text("started_at", started_at)?;
        with_pool!(self, |pool| {
            sqlx::query(INSERT_STEP)
                .bind(run_id)
                .bind(i64::from(seq))
                .bind(step)
                .bind(started.as_str())
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(db("journaling the start of a step"))
    }

    /// Journals the end of a step.
    pub async fn finish_step(
        &self,
        run_id: i64,
        seq: u32,
        ended_at: DateTime<Utc>,
        outcome: Outcome,
        counts: &RunCounts,
        errors: &[String],
    ) -> Result<(), StoreError> {
        let ended = codec::instant_text("ended_at", ended_at)?;
        let counts = json("step counts", counts)?;
        let errors = json("step errors", &errors)?;
        with_pool!(self, |pool| {
            sqlx::query(FINISH_STEP)
                .bind(run_id)
                .bind(i64::from(seq))
                .bind(ended.as_str())
                .bind(outcome.as_str())
                .bind(counts.as_str())
                .bind(errors.as_str())
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(db("journaling the end of a step"))
    }

    /// Journals a step that was not done, with why.
    pub async fn skip_step(
        &self,
        run_id: i64,
        seq: u32,
        step: &str,
        at: DateTime<Utc>,
        why: &str,
    ) -> Result<(), StoreError> {
        let at = codec::instant_text("started_at", at)?;
        let errors = json("step errors", &[why])?;
        with_pool!(self, |pool| {
            sqlx::query(INSERT_SKIPPED_STEP)
                .bind(run_id)
                .bind(i64::from(seq))
                .bind(step)
                .bind(at.as_str())
                .bind(errors.as_str())
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(db("journaling a skipped step"))
    }

    /// The last `n` runs, newest first, with their steps; only those of `job` when given.
    pub async fn runs(&self, n: u32, job: Option<&str>) -> Result<Vec<RunRecord>, StoreError> {
        const OP: &str = "reading the run journal";
        let sql = match job {
            Some(_) => {
                format!("SELECT {RUN_COLUMNS} FROM runs WHERE job = $2 ORDER BY id DESC LIMIT $1")
            }
            None => format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1"),
        };
        let rows: Vec<RunRow> = with_pool!(self, |pool| {
            let q =
                sqlx::query_as::<_, RunRow>(sqlx::AssertSqlSafe(sql.as_str())).bind(i64::from(n));
            match job {
                Some(j) => q.bind(j).fetch_all(pool).await,
                None => q.fetch_all(pool).await,
            }
        })
        .map_err(db(OP))?;
        let (Some(lo), Some(hi)) = (
            rows.iter().map(|r| r.0).min(),
            rows.iter().map(|r| r.0).max(),
        ) else {
            return Ok(Vec::new());
        };
        let steps: Vec<StepRow> = with_pool!(self, |pool| {
            sqlx::query_as::<_, StepRow>(SELECT_STEPS)
                .bind(lo)
                .bind(hi)
                .fetch_all(pool)
                .await
        })
        .map_err(db(OP))?;
        let mut runs = rows
            .into_iter()
            .map(run_record)
            .collect::<Result<Vec<_>, _>>()?;
        for s in steps {
            let step = step_record(&s)?;
            if let Some(run) = runs.iter_mut().find(|r| r.id == s.0) {
                run.steps.push(step);
            }
        }
        let kinds: Vec<(i64, String, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(SELECT_FINDING_KINDS)
                .bind(lo)
                .bind(hi)
                .fetch_all(pool)
                .await
        })
        .map_err(db(OP))?;
        for (id, kind, n) in kinds {
            if let Some(run) = runs.iter_mut().find(|r| r.id == id) {
                run.findings.insert(kind, n as u64);
            }
        }
        Ok(runs)
    }

    /// Journals a run's data-quality findings (kind and message; messages name citizens by
    /// their short pseudonym only), in one transaction.
    pub async fn record_findings(
        &self,
        run_id: i64,
        findings: &[(&str, String)],
    ) -> Result<(), StoreError> {
        const OP: &str = "journaling a run's findings";
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            for (kind, message) in findings {
                sqlx::query(INSERT_FINDING)
                    .bind(run_id)
                    .bind(*kind)
                    .bind(message.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db(OP))?;
            }
            tx.commit().await.map_err(db(OP))?;
            Ok(())
        })
    }

    /// A run's journaled findings: (kind, message), sorted.
    pub async fn run_findings(&self, run_id: i64) -> Result<Vec<(String, String)>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_as(SELECT_FINDINGS)
                .bind(run_id)
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading a run's findings"))
    }

    /// When the last successful (outcome `ok`, not dry) run ended.
    pub async fn last_success(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let (at,): (Option<String>,) = with_pool!(self, |pool| {
            sqlx::query_as(LAST_SUCCESS)
                .bind(false)
                .fetch_one(pool)
                .await
        })
        .map_err(db("reading the last successful run"))?;
        opt_instant("run", 0, at.as_deref())
    }

    /// When each job's last successful (outcome `ok`, not dry) run ended.
    pub async fn last_success_by_job(&self) -> Result<Vec<(String, DateTime<Utc>)>, StoreError> {
        let rows: Vec<(String, Option<String>)> = with_pool!(self, |pool| {
            sqlx::query_as(LAST_SUCCESS_BY_JOB)
                .bind(false)
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading the last successful runs"))?;
        let mut out = Vec::new();
        for (job, at) in rows {
            if let Some(at) = opt_instant("run", 0, at.as_deref())? {
                out.push((job, at));
            }
        }
        Ok(out)
    }

    /// How many journaled runs each job has per outcome.
    pub async fn run_outcome_counts(&self) -> Result<Vec<(String, Outcome, u64)>, StoreError> {
        let rows: Vec<(String, String, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(RUN_OUTCOMES).fetch_all(pool).await
        })
        .map_err(db("counting runs"))?;
        rows.into_iter()
            .map(|(job, o, n)| {
                let outcome = Outcome::parse(&o)
                    .ok_or_else(|| corrupt("run outcome", 0)(format!("unknown outcome `{o}`")))?;
                Ok((job, outcome, n.max(0) as u64))
            })
            .collect()
    }

    /// How many vouchers the outbox holds per state.
    pub async fn voucher_state_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let rows: Vec<(String, i64)> = with_pool!(self, |pool| {
            sqlx::query_as(VOUCHER_STATES).fetch_all(pool).await
        })
        .map_err(db("counting vouchers"))?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, n.max(0) as u64))
            .collect())
    }

    /// Removes finished runs (and their steps) that started before `before`; returns how many.
    pub async fn prune_runs(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        const OP: &str = "pruning the run journal";
        let before = codec::instant_text("retention limit", before)?;
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            sqlx::query(DELETE_FINDINGS_BEFORE)
                .bind(before.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?;
            sqlx::query(DELETE_STEPS_BEFORE)
                .bind(before.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?;
            let n = sqlx::query(DELETE_RUNS_BEFORE)
                .bind(before.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?
                .rows_affected();
            tx.commit().await.map_err(db(OP))?;
            Ok(n)
        })
    }

    /// Takes the lease of `job` for `holder` until `now + lease`, if nobody else holds it
    /// (an expired lease counts as free). With `scheduled_for`, the lease is only taken if no
    /// daemon has yet claimed that scheduled instant or a later one, and the instant is
    /// claimed with it: a scheduled run happens once, whichever daemon gets there first.
    /// Runs of the job left `running` by another holder are journaled as abandoned.
    /// Returns whether the lease is now held.
    pub async fn claim_job(
        &self,
        job: &str,
        holder: &str,
        scheduled_for: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        const OP: &str = "claiming a job's lease";
        let until = expiry(now, lease)?;
        let now_text = codec::instant_text("now", now)?;
        let scheduled = scheduled_for
            .map(|t| codec::instant_text("scheduled_for", t))
            .transpose()?;
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            sqlx::query(ENSURE_LEASE)
                .bind(job)
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?;
            let q = match &scheduled {
                Some(s) => sqlx::query(CLAIM_SCHEDULED)
                    .bind(job)
                    .bind(holder)
                    .bind(until.as_str())
                    .bind(now_text.as_str())
                    .bind(s.as_str()),
                None => sqlx::query(CLAIM_LEASE)
                    .bind(job)
                    .bind(holder)
                    .bind(until.as_str())
                    .bind(now_text.as_str()),
            };
            let claimed = q.execute(&mut *tx).await.map_err(db(OP))?.rows_affected() == 1;
            if claimed {
                sqlx::query(ABANDON_RUNS)
                    .bind(job)
                    .bind(holder)
                    .bind(now_text.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db(OP))?;
            }
            tx.commit().await.map_err(db(OP))?;
            Ok(claimed)
        })
    }

    /// Extends a held lease to `now + lease`; false if `holder` no longer holds it.
    pub async fn renew_job(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let until = expiry(now, lease)?;
        with_pool!(self, |pool| {
            sqlx::query(RENEW_LEASE)
                .bind(job)
                .bind(holder)
                .bind(until.as_str())
                .execute(pool)
                .await
                .map(|r| r.rows_affected() == 1)
        })
        .map_err(db("renewing a job's lease"))
    }

    /// Gives a held lease back.
    /// Who holds `job`'s lease now (expired or not), if anyone.
    pub async fn lease_holder(&self, job: &str) -> Result<Option<String>, StoreError> {
        let row: Option<(Option<String>,)> = with_pool!(self, |pool| {
            sqlx::query_as(SELECT_HOLDER)
                .bind(job)
                .fetch_optional(pool)
                .await
        })
        .map_err(db("reading a job's lease"))?;
        Ok(row.and_then(|(h,)| h))
    }

    /// Frees `job`'s lease held by `holder` (a process known to be gone) and journals its
    /// running runs, of any job, as abandoned.
    pub async fn take_over_from(
        &self,
        job: &str,
        holder: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const OP: &str = "taking over a dead process's lease";
        let now = codec::instant_text("now", now)?;
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            sqlx::query(RELEASE_LEASE)
                .bind(job)
                .bind(holder)
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?;
            sqlx::query(ABANDON_RUNS_OF)
                .bind(holder)
                .bind(now.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?;
            tx.commit().await.map_err(db(OP))?;
            Ok(())
        })
    }

    pub async fn release_job(&self, job: &str, holder: &str) -> Result<(), StoreError> {
        with_pool!(self, |pool| {
            sqlx::query(RELEASE_LEASE)
                .bind(job)
                .bind(holder)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(db("releasing a job's lease"))
    }

    /// The latest scheduled instant of `job` any daemon claimed (none before its first run).
    pub async fn last_scheduled(&self, job: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row: Option<(Option<String>,)> = with_pool!(self, |pool| {
            sqlx::query_as(SELECT_LAST_SCHEDULED)
                .bind(job)
                .fetch_optional(pool)
                .await
        })
        .map_err(db("reading a job's last scheduled run"))?;
        opt_instant("job lease", 0, row.and_then(|(t,)| t).as_deref())
    }

    /// Records `at` as the job's last scheduled instant (if later than the one stored),
    /// e.g. a missed run that catch-up is configured to skip.
    pub async fn set_last_scheduled(&self, job: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        const OP: &str = "recording a job's last scheduled run";
        let at = codec::instant_text("scheduled_for", at)?;
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            sqlx::query(ENSURE_LEASE)
                .bind(job)
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?;
            sqlx::query(SET_LAST_SCHEDULED)
                .bind(job)
                .bind(at.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?;
            tx.commit().await.map_err(db(OP))
        })
    }
}

fn run_record(r: RunRow) -> Result<RunRecord, StoreError> {
    let (
        id,
        job,
        trigger,
        scheduled_for,
        as_of,
        dry_run,
        holder,
        started_at,
        ended_at,
        outcome,
        counts,
        errors,
    ) = r;
    let bad = corrupt("run", id);
    Ok(RunRecord {
        id,
        job,
        trigger: Trigger::parse(&trigger).ok_or_else(|| bad(format!("trigger `{trigger}`")))?,
        scheduled_for: opt_instant("run", id, scheduled_for.as_deref())?,
        as_of: as_of
            .map(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d"))
            .transpose()
            .map_err(|_| bad("an as-of date that is not YYYY-MM-DD".into()))?,
        dry_run,
        holder,
        started_at: instant("run", id, &started_at)?,
        ended_at: opt_instant("run", id, ended_at.as_deref())?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| bad(format!("outcome `{outcome}`")))?,
        counts: serde_json::from_str(&counts).map_err(|e| bad(codec::json_problem(&e)))?,
        errors: serde_json::from_str(&errors).map_err(|e| bad(codec::json_problem(&e)))?,
        steps: Vec::new(),
        findings: Default::default(),
    })
}

fn step_record(s: &StepRow) -> Result<StepRecord, StoreError> {
    let (run_id, seq, step, started_at, ended_at, outcome, counts, errors) = s;
    let bad = corrupt("run step", *run_id);
    Ok(StepRecord {
        seq: u32::try_from(*seq).map_err(|_| bad(format!("step number {seq}")))?,
        step: step.clone(),
        started_at: instant("run step", *run_id, started_at)?,
        ended_at: opt_instant("run step", *run_id, ended_at.as_deref())?,
        outcome: Outcome::parse(outcome).ok_or_else(|| bad(format!("outcome `{outcome}`")))?,
        counts: serde_json::from_str(counts).map_err(|e| bad(codec::json_problem(&e)))?,
        errors: serde_json::from_str(errors).map_err(|e| bad(codec::json_problem(&e)))?,
    })
}
