//! The command line, run as a real process against a real SQLite file.

use crate::common::*;
use progression_gateway::store::Store;
use std::path::Path;
use std::process::{Command, Output};

fn gateway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

/// A store with the histories of worked examples A, B and C (teams by roster).
async fn example_store(dir: &Path) -> String {
    let url = format!("sqlite://{}", dir.join("gw.db").display());
    let store = Store::connect(&url).await.unwrap();
    for h in examples_abc() {
        store.put_batch(&versions_of(&h), None).await.unwrap();
    }
    url
}

fn rows(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn find<'a>(
    rows: &'a [serde_json::Value],
    team: &str,
    month: &str,
) -> Option<&'a serde_json::Value> {
    rows.iter()
        .find(|r| r["team"] == team && r["month"] == month)
}

#[tokio::test]
async fn budget_json_gives_one_row_per_team_track_and_month() {
    let dir = tempfile::tempdir().unwrap();
    let url = example_store(dir.path()).await;
    let out = gateway(&[
        "--config",
        "config/example.toml",
        "--database",
        &url,
        "budget",
        "--from",
        "2027-01-01",
        "--to",
        "2027-01-31",
        "--format",
        "json",
    ]);
    let rows = rows(&out);
    // Nord: A (28 x 250) + B (20 x 260) + C (15 x 180); Syd: C (16 x 180).
    let nord = find(&rows, "nord", "2027-01").expect("nord row");
    assert_eq!(nord["amount"], "14900.00");
    assert_eq!(nord["course_days"], 63);
    assert_eq!(nord["track"], "care");
    let syd = find(&rows, "syd", "2027-01").expect("syd row");
    assert_eq!(syd["amount"], "2880.00");
    assert_eq!(rows.len(), 2);
}

#[tokio::test]
async fn budget_projects_a_future_period_and_formats_as_csv_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let url = example_store(dir.path()).await;
    let out = gateway(&[
        "--config",
        "config/example.toml",
        "--database",
        &url,
        "budget",
        "--from",
        "2027-03-01",
        "--to",
        "2027-04-30",
        "--format",
        "csv",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("team,team_name,cost_centre,track,month,course_days,amount")
    );
    // March: A to 28 March (28 x 250 = 7000) on nord; C on syd all month (31 x 180 = 5580).
    assert!(text.contains(",care,2027-03,28,7000.00"), "{text}");
    assert!(text.contains("nord,"), "{text}");
    assert!(text.contains(",care,2027-03,31,5580.00"), "{text}");
    assert!(text.contains(",care,2027-04,30,5400.00"), "{text}");
    // The Danish way: `;` and decimal comma.
    let da = gateway(&[
        "--config",
        "config/example.toml",
        "--database",
        &url,
        "budget",
        "--from",
        "2027-03-01",
        "--to",
        "2027-04-30",
        "--format",
        "csv",
        "--locale",
        "da",
    ]);
    let da = String::from_utf8(da.stdout).unwrap();
    assert!(
        da.starts_with("team;team_name;cost_centre;track;month;course_days;amount"),
        "{da}"
    );
    assert!(da.contains(";care;2027-03;28;7.000,00"), "{da}");
    let table = gateway(&[
        "--config",
        "config/example.toml",
        "--database",
        &url,
        "budget",
        "--from",
        "2027-03-01",
        "--to",
        "2027-04-30",
    ]);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(
        table.lines().last().unwrap().ends_with("17980.00"),
        "{table}"
    );
}

#[tokio::test]
async fn courses_json_lists_kind_group_tariff_and_end_reason() {
    let dir = tempfile::tempdir().unwrap();
    let url = example_store(dir.path()).await;
    let out = gateway(&[
        "--config",
        "config/example.toml",
        "--database",
        &url,
        "courses",
        "--until",
        "2027-06-30",
        "--format",
        "json",
    ]);
    let rows = rows(&out);
    let a = rows
        .iter()
        .find(|r| r["kind"] == "development")
        .expect("example A's course");
    assert_eq!(a["group"], 2);
    assert_eq!(a["daily_tariff"], "250.00");
    assert_eq!(a["start"], "2027-01-04");
    assert_eq!(a["end"], "2027-03-28");
    assert_eq!(a["end_reason"], "planned");
    let b = rows
        .iter()
        .find(|r| r["end_reason"] == "death")
        .expect("example B's course");
    assert_eq!(b["end"], "2027-01-20");
    assert_eq!(b["daily_tariff"], "260.00");
    // A reader writes nothing: no decision is recorded, no course stored.
    let store = Store::connect(&url).await.unwrap();
    assert!(store.courses().await.unwrap().is_empty());
    assert_eq!(store.ledger_rows().await.unwrap(), 0);
}

#[test]
fn an_unreachable_store_is_a_clear_failure_with_exit_code_3() {
    let out = gateway(&[
        "--config",
        "config/example.toml",
        "--database",
        "postgres://gw:hunter2@127.0.0.1:1/gw",
        "budget",
        "--from",
        "2027-01-01",
        "--to",
        "2027-01-31",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open the store"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_missing_configuration_file_is_named() {
    let out = gateway(&["--config", "config/nope.toml", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config/nope.toml"));
}

#[tokio::test]
async fn a_grant_ending_9999_12_31_never_makes_courses_to_that_date() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let store = Store::connect(&url).await.unwrap();
    // An open grant sent with the common "no end" value.
    let h = HistoryBuilder::new(9)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", Some("9999-12-31"))
        .levels(&[3, 3, 3], "2026-12-20")
        .build();
    store.put_batch(&versions_of(&h), None).await.unwrap();
    let out = gateway(&[
        "--config",
        "config/example.toml",
        "--database",
        &url,
        "courses",
        "--format",
        "json",
    ]);
    let rows = rows(&out);
    // Computed up to the last reported day (the grant's start), not to the year 9999.
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["start"], "2027-01-01");
    assert_eq!(
        store.ledger_rows().await.unwrap(),
        0,
        "a reader records nothing"
    );
}

#[tokio::test]
async fn a_run_as_of_an_earlier_day_keeps_the_courses_a_later_run_stored() {
    let dir = tempfile::tempdir().unwrap();
    let url = example_store(dir.path()).await;
    let run = |as_of: &str| {
        gateway(&[
            "--config",
            "config/example.toml",
            "--database",
            &url,
            "run",
            "--as-of",
            as_of,
        ])
    };
    assert!(run("2027-06-30").status.code().is_some_and(|c| c <= 2));
    let store = Store::connect(&url).await.unwrap();
    let later = store.courses().await.unwrap();
    let rows = store.ledger_rows().await.unwrap();
    assert!(later.len() >= 3, "{later:?}");
    // As of a day before most courses start: nothing recorded later is deleted or changed.
    assert!(run("2027-01-02").status.code().is_some_and(|c| c <= 2));
    assert_eq!(store.courses().await.unwrap(), later);
    assert_eq!(store.ledger_rows().await.unwrap(), rows);
}

#[tokio::test]
async fn readers_need_no_secret_of_the_configuration_and_validate_still_names_them() {
    // A production-like configuration whose secrets this user cannot read (the pseudonym key
    // file, the HTTP token file, a push source's token): budget, courses, vouchers and runs
    // work from the store and the mappings; validate and the writing commands name the files.
    let dir = tempfile::tempdir().unwrap();
    let url = example_store(dir.path()).await;
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml"))
            .unwrap();
    let mappings = Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let config = example
        .replace(
            "key = \"demo-only-pseudonym-key-change-me-0001\"",
            "key_file = \"/nonexistent/pseudonym.key\"",
        )
        .replace(
            "dir = \"../mappings\"",
            &format!("dir = \"{}\"", mappings.display()),
        )
        + "\n[http]\nlisten = \"127.0.0.1:8089\"\ntoken_file = \"/nonexistent/http.token\"\n\
           \n[[source]]\nname = \"care-push\"\nsecret_file = \"/nonexistent/push.token\"\n\
           [source.fhir_push]\n";
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap();
    let base = ["--config", path, "--database", &url];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        gateway(&args)
    };
    let budget = run(&[
        "budget",
        "--from",
        "2027-01-01",
        "--to",
        "2027-01-31",
        "--format",
        "json",
    ]);
    let rows = rows(&budget);
    assert_eq!(
        find(&rows, "nord", "2027-01").unwrap()["amount"],
        "14900.00"
    );
    for reader in [
        &["courses", "--until", "2027-01-31"][..],
        &["vouchers"][..],
        &["runs"][..],
    ] {
        let out = run(reader);
        assert!(
            out.status.success(),
            "{reader:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let validate = run(&["validate"]);
    assert_eq!(validate.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&validate.stderr);
    for file in [
        "/nonexistent/pseudonym.key",
        "/nonexistent/http.token",
        "/nonexistent/push.token",
    ] {
        assert!(errors.contains(file), "{file} not named: {errors}");
    }
    let import = run(&["import", "/nonexistent/x.json"]);
    assert_eq!(import.status.code(), Some(1), "a writer needs its secrets");
}

#[test]
fn import_shows_progress_as_log_lines_on_a_pipe_and_as_a_bar_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("in");
    let sim = gateway(&[
        "--config",
        "config/example.toml",
        "simulate",
        "--out",
        data.to_str().unwrap(),
        "--citizens",
        "20",
        "--days",
        "10",
    ]);
    assert!(
        sim.status.success(),
        "{}",
        String::from_utf8_lossy(&sim.stderr)
    );
    let files = std::fs::read_dir(&data).unwrap().count();
    assert!(files > 20, "{files} files");

    // A pipe: a line when the work starts and one when it ends, with the counts.
    let url = format!("sqlite://{}", dir.path().join("pipe.db").display());
    let out = gateway(&[
        "--config",
        "config/example.toml",
        "--database",
        &url,
        "import",
        data.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    let started = log
        .lines()
        .find(|l| l.contains("Started."))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        started.contains("work=\"import\"") || started.contains("work=import"),
        "{started}"
    );
    assert!(started.contains(&format!("files={files}")), "{started}");
    let done = log
        .lines()
        .find(|l| l.contains("Done."))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(done.contains(&format!("files={files}")), "{done}");
    assert!(done.contains("bundles_per_second="), "{done}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        done.contains(&format!("bundles={}", summary["bundles"])),
        "{done}"
    );
    // The import closes the store: the database file alone holds what it stored (the
    // write-ahead log is checkpointed into it), so a copy of the file is a whole store.
    let wal = dir.path().join("pipe.db-wal");
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "{} bytes left in the write-ahead log",
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or_default()
    );

    // A terminal (a pseudo-terminal from `script`): a bar with files, Bundles/s and time left,
    // and no log line about progress.
    let url = format!("sqlite://{}", dir.path().join("tty.db").display());
    let command = format!(
        "{} --config config/example.toml --database {url} import {} >/dev/null",
        env!("CARGO_BIN_EXE_progression-gateway"),
        data.display()
    );
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("script(1) runs");
    assert!(
        tty.status.success(),
        "{}",
        String::from_utf8_lossy(&tty.stderr)
    );
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(screen.contains(&format!("/{files} files")), "{screen}");
    assert!(screen.contains("Bundles/s"), "{screen}");
    assert!(screen.contains("left"), "{screen}");
    assert!(!screen.contains("Started."), "{screen}");
}

#[tokio::test]
async fn figures_reads_the_store_and_filters_by_team_track_and_figure() {
    let dir = tempfile::tempdir().unwrap();
    let url = example_store(dir.path()).await;
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "--config",
            "config/example.toml",
            "--database",
            &url,
            "figures",
            "--from",
            "2027-01-01",
            "--to",
            "2027-04-30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        gateway(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // Nord in January: A (28 days), B (20 days, died 20 January), C (15 days before the move).
    let out = run(&["--team", "nord", "--track", "care", "--format", "json"]);
    let rows = rows(&out);
    let get = |month: &str, figure: &str| {
        rows.iter()
            .find(|r| r["month"] == month && r["figure"] == figure)
            .unwrap_or_else(|| panic!("{month} {figure}: {rows:?}"))
            .clone()
    };
    assert_eq!(get("2027-01", "course_days")["value"], "63");
    assert_eq!(get("2027-01", "citizens")["value"], "3");
    assert_eq!(get("2027-01", "income")["value"], "14900.00");
    // B's course ended by death on 20 January: outflow 1 in January.
    assert_eq!(get("2027-01", "outflow")["value"], "1");
    // No visits: continuity has no data, not 0.
    assert_eq!(
        get("2027-01", "continuity")["value"],
        serde_json::Value::Null
    );
    assert!(
        rows.iter()
            .all(|r| r["team"] == "nord" && r["track"] == "care")
    );

    // One figure for the municipality, as CSV with the Danish number format.
    let out = run(&[
        "--team",
        "municipality",
        "--figure",
        "income",
        "--format",
        "csv",
        "--locale",
        "da",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("team;month;track;figure;value;numerator;denominator\n"),
        "{text}"
    );
    // January: 14,900.00 in nord + 2,880.00 in syd.
    assert!(
        text.contains("municipality;2027-01;care;income;17.780,00;17.780,00;\n"),
        "{text}"
    );

    // An unknown team is refused, not answered with an empty table.
    let out = run(&["--team", "nowhere"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no team `nowhere` in teams.toml"));

    // An unknown figure is refused with the way to list them.
    let out = run(&["--figure", "nope"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--figure list"));
    let out = run(&["--figure", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Selvhjulpenhed"));
}
