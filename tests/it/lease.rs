//! Leases left by a process that no longer exists (SIGKILL, a panic) are taken over at once, and
//! its journaled runs are marked abandoned; a live holder still keeps its lease.

use chrono::Utc;
use progression_gateway::config;
use progression_gateway::run::{Context, Lease, holder_is_gone, holder_name};
use progression_gateway::store::{NewRun, Outcome, Store, Trigger};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

async fn context(dir: &Path) -> Context {
    let store = Store::connect(&format!("sqlite://{}", dir.join("gw.db").display()))
        .await
        .unwrap();
    let loaded =
        config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")).unwrap();
    Context::new(store, Arc::new(loaded))
}

/// The holder name a process that has exited had on this host.
fn dead_holder() -> String {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let mine = holder_name();
    let host = mine.rsplitn(3, ':').nth(2).unwrap().to_owned();
    format!("{host}:{pid}:deadbeef")
}

#[tokio::test]
async fn a_lease_of_a_killed_process_is_taken_over_at_once_and_its_run_abandoned() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let dead = dead_holder();
    assert!(holder_is_gone(&dead));
    // The killed `post` held the nightly lease for five minutes and left its run `running`.
    let ttl = Duration::from_secs(300);
    assert!(
        ctx.store
            .claim_job("nightly", &dead, None, Utc::now(), ttl)
            .await
            .unwrap()
    );
    let run = ctx
        .store
        .start_run(&NewRun {
            job: "post",
            trigger: Trigger::Manual,
            scheduled_for: None,
            as_of: None,
            dry_run: false,
            holder: &dead,
            started_at: Utc::now(),
        })
        .await
        .unwrap();
    let lease = Lease::claim(&ctx, "nightly", None, ttl)
        .await
        .unwrap()
        .expect("the dead process's lease is taken over without waiting");
    let runs = ctx.store.runs(10, None).await.unwrap();
    let old = runs.iter().find(|r| r.id == run).unwrap();
    assert_eq!(old.outcome, Outcome::Abandoned);
    assert!(old.ended_at.is_some());
    lease.release().await.unwrap();
}

#[tokio::test]
async fn a_live_holder_keeps_its_lease() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    // Another holder in this very (live) process, and one on another host.
    let live = format!(
        "{}:{}:0badf00d",
        holder_name().rsplitn(3, ':').nth(2).unwrap(),
        std::process::id()
    );
    let elsewhere = "some-other-host:1:00000000".to_owned();
    assert!(!holder_is_gone(&live));
    assert!(!holder_is_gone(&elsewhere));
    assert!(!holder_is_gone("garbage"));
    for holder in [live, elsewhere] {
        let job = format!("job-{}", &holder[holder.len() - 8..]);
        assert!(
            ctx.store
                .claim_job(&job, &holder, None, Utc::now(), Duration::from_secs(300))
                .await
                .unwrap()
        );
        assert!(
            Lease::claim(&ctx, &job, None, Duration::from_secs(300))
                .await
                .unwrap()
                .is_none(),
            "{holder}"
        );
    }
}

#[tokio::test]
async fn the_run_command_takes_over_from_a_process_killed_with_sigkill() {
    use std::process::Command;
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let db = format!("sqlite://{}", dir.path().join("gw.db").display());
    // A process holds the nightly lease and is killed with SIGKILL.
    let mut victim = Command::new("sleep").arg("30").spawn().unwrap();
    let host = holder_name().rsplitn(3, ':').nth(2).unwrap().to_owned();
    let holder = format!("{host}:{}:0000abcd", victim.id());
    assert!(
        ctx.store
            .claim_job(
                "nightly",
                &holder,
                None,
                Utc::now(),
                Duration::from_secs(300)
            )
            .await
            .unwrap()
    );
    let bin = env!("CARGO_BIN_EXE_progression-gateway");
    let run = || {
        Command::new(bin)
            .args(["--config", "config/example.toml", "--database", &db, "run"])
            .args(["--as-of", "2027-01-31"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    // While it lives, a run is refused.
    let refused = run();
    assert_eq!(refused.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("running in another process"));
    victim.kill().unwrap();
    victim.wait().unwrap();
    // Killed: the next run takes the lease over at once.
    let after = run();
    let err = String::from_utf8_lossy(&after.stderr);
    assert!(!err.contains("running in another process"), "{err}");
    assert!(
        after.status.code().is_some_and(|c| c == 0 || c == 2),
        "{err}"
    );
}

#[tokio::test]
async fn a_closed_output_pipe_ends_a_run_cleanly_with_its_outcome_journaled() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path()).await;
    let db = format!("sqlite://{}", dir.path().join("gw.db").display());
    for args in [
        &["run", "--as-of", "2027-01-31"][..],
        &["validate"][..],
        &["runs", "--format", "json"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
            .args(["--config", "config/example.toml", "--database", &db])
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before anything is printed (`... | head -0`).
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{err}"
        );
    }
    let runs = ctx.store.runs(10, None).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_ne!(runs[0].outcome, Outcome::Running);
    // The lease was given back: the next run is not refused.
    assert!(
        Lease::claim(&ctx, "nightly", None, Duration::from_secs(300))
            .await
            .unwrap()
            .is_some()
    );
}
