//! `progression-gateway demo`: the whole nightly run against the simulated systems, checked
//! against the store and the simulated finance and care systems; no CPR number and no secret in
//! any output at the most verbose log level; no folder left behind without `--keep`.

use progression_gateway::demo::{self, DemoOptions, Summary};
use progression_gateway::domain::{CourseKind, Pseudonym};
use progression_gateway::model::{
    CitizenHistory, YearMonth, resolve_history, round_money, team_on,
};
use progression_gateway::sinks::finance::VoucherState;
use progression_gateway::store::{OutboxVoucher, Store};
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};

const TEAMS: [(&str, &str); 3] = [("nord", "1001"), ("syd", "1002"), ("vest", "1003")];
const PURCHASER_COST_CENTRE: &str = "1000";

fn opts(keep: Option<&Path>, citizens: usize, days: u32) -> DemoOptions {
    DemoOptions {
        keep: keep.map(Path::to_path_buf),
        citizens,
        days,
        seed: 1,
        json: false,
        serve: false,
        listen: "127.0.0.1:0".parse().unwrap(),
        source: progression_gateway::demo::DemoSource::Klgateway,
    }
}

fn row<'a>(summary: &'a Summary, team: &str) -> &'a progression_gateway::demo::TeamSummary {
    summary
        .teams
        .iter()
        .find(|t| t.team == team)
        .unwrap_or_else(|| panic!("no row for team {team}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_agrees_with_the_store_the_books_and_the_care_system() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("demo");
    let o = opts(Some(&keep), 60, 45);
    let outcome = demo::run(&o).await.expect("the demo runs");
    let summary = &outcome.summary;
    assert_eq!(outcome.exit_code, 0, "{summary:#?}");
    assert!(outcome.kept);
    assert_eq!(summary.kept.as_deref(), Some(outcome.dir.as_path()));
    assert!(outcome.dir.join("gateway.toml").is_file());
    assert_eq!(summary.as_of, "2027-02-14".parse().unwrap());
    assert_eq!(summary.month.to_string(), "2027-02");
    assert!(summary.run.errors.is_empty(), "{:?}", summary.run.errors);
    assert!(summary.wall_time_secs > 0.0);

    // Exactly the three teams, in the order of teams.toml, with their cost centres.
    let ids: Vec<(&str, &str)> = summary
        .teams
        .iter()
        .map(|t| (t.team.as_str(), t.cost_centre.as_str()))
        .collect();
    assert_eq!(ids, TEAMS.to_vec());
    assert!(summary.unassigned.is_none(), "{:?}", summary.unassigned);

    let store = Store::connect(&format!(
        "sqlite://{}",
        outcome.dir.join("gateway.db").display()
    ))
    .await
    .unwrap();
    let mappings = progression_gateway::mapping::load::load_dir(&outcome.dir.join("mappings"))
        .expect("the kept mappings load");
    assert_eq!(mappings.teams.len(), 3);

    // Vouchers: per team, sent and accepted from the outbox; every voucher went and was booked.
    let outbox: Vec<OutboxVoucher> = store.vouchers().await.unwrap();
    assert!(!outbox.is_empty());
    for (team, _) in TEAMS {
        let mine: Vec<&OutboxVoucher> = outbox.iter().filter(|v| v.voucher.team == team).collect();
        let sent = mine
            .iter()
            .filter(|v| v.state != VoucherState::Pending)
            .count();
        let accepted = mine
            .iter()
            .filter(|v| v.state == VoucherState::Accepted)
            .count();
        let r = row(summary, team);
        assert_eq!(
            (r.vouchers_sent, r.vouchers_accepted),
            (sent, accepted),
            "{team}"
        );
        assert!(accepted > 0, "team {team} has no accepted voucher");
        assert_eq!(
            sent, accepted,
            "team {team}: every sent voucher is accepted"
        );
    }
    assert_eq!(
        outbox.len() as u64,
        summary.run.counts.vouchers_accepted,
        "the run's counts"
    );

    // The books: what the summary says was accepted per team is what the finance system holds
    // on the team's cost centre (the team's line is the credit: minus the voucher amount).
    let books = &outcome.books;
    let by_number: HashMap<&str, &OutboxVoucher> = outbox
        .iter()
        .map(|v| (v.voucher.number.0.as_str(), v))
        .collect();
    let booked = books.vouchers();
    assert_eq!(booked.len(), outbox.len());
    let sums = books.sum_by_cost_centre();
    let mut all_accepted = Decimal::ZERO;
    for (team, cost_centre) in TEAMS {
        let accepted: Vec<&OutboxVoucher> = outbox
            .iter()
            .filter(|v| v.voucher.team == team && v.state == VoucherState::Accepted)
            .collect();
        let amount: Decimal = accepted.iter().map(|v| v.voucher.amount).sum();
        all_accepted += amount;
        let on_team: Vec<_> = booked
            .iter()
            .filter(|b| b.lines.iter().any(|l| l.cost_centre == cost_centre))
            .collect();
        assert_eq!(
            on_team.len(),
            row(summary, team).vouchers_accepted,
            "booked vouchers on {cost_centre}"
        );
        assert_eq!(sums.get(cost_centre).copied(), Some(-amount), "{team}");
        assert_eq!(books.total_for_cost_centre(cost_centre), -amount, "{team}");

        // Income this month: what was posted for the as-of month to the team, read from the
        // booked lines on its cost centre of the vouchers of that month.
        let month = summary.month.to_string();
        let mut posted_this_month = Decimal::ZERO;
        let mut by_track: BTreeMap<String, Decimal> = BTreeMap::new();
        for b in &on_team {
            let v = by_number[b.number.as_str()];
            assert_eq!(v.voucher.team, team);
            if v.voucher.month.to_string() != month {
                continue;
            }
            for l in b.lines.iter().filter(|l| l.cost_centre == cost_centre) {
                assert!(l.text.ends_with(&month), "{}", l.text);
                posted_this_month -= l.amount;
                *by_track
                    .entry(v.voucher.track.as_str().to_owned())
                    .or_default() -= l.amount;
            }
        }
        let r = row(summary, team);
        assert!(r.income_this_month > Decimal::ZERO, "{team}");
        assert_eq!(r.income_this_month, posted_this_month, "{team}");
        assert_eq!(r.income_this_month_by_track, by_track, "{team}");
    }
    assert_eq!(sums.get(PURCHASER_COST_CENTRE).copied(), Some(all_accepted));

    // Courses: citizens with a course running on the as-of day, per team on that day and kind.
    let as_of = summary.as_of;
    let histories: HashMap<Pseudonym, CitizenHistory> = store
        .all_versions()
        .await
        .unwrap()
        .into_iter()
        .map(|(who, v)| (who, resolve_history(&v, chrono_tz::Europe::Copenhagen)))
        .collect();
    let courses = store.courses().await.unwrap();
    assert_eq!(courses.len() as u64, summary.run.counts.courses);
    type Sets = (HashSet<Pseudonym>, BTreeMap<CourseKind, HashSet<Pseudonym>>);
    let mut running: BTreeMap<String, Sets> = BTreeMap::new();
    let mut decisions_by_team: BTreeMap<String, usize> = BTreeMap::new();
    let course_team: HashMap<&str, String> = courses
        .iter()
        .map(|c| {
            let h = &histories[&c.citizen];
            let team = team_on(h, &mappings, c.start).expect("a team").to_string();
            (c.id.0.as_str(), team)
        })
        .collect();
    for c in &courses {
        if c.start <= as_of && as_of <= c.end {
            let team = team_on(&histories[&c.citizen], &mappings, as_of)
                .expect("a team")
                .to_string();
            let e = running.entry(team).or_default();
            e.0.insert(c.citizen.clone());
            e.1.entry(c.kind).or_default().insert(c.citizen.clone());
        }
    }
    for (team, _) in TEAMS {
        let r = row(summary, team);
        let (citizens, kinds) = running.remove(team).unwrap_or_default();
        let kind = |k| kinds.get(&k).map_or(0, HashSet::len);
        assert_eq!(r.citizens, citizens.len(), "{team}");
        assert!(r.citizens > 0, "{team}");
        assert_eq!(
            (
                r.courses.stabilisation,
                r.courses.development,
                r.courses.individual
            ),
            (
                kind(CourseKind::Stabilisation),
                kind(CourseKind::Development),
                kind(CourseKind::Individual)
            ),
            "{team}"
        );
    }
    assert!(running.is_empty(), "{:?}", running.keys());

    // Decisions: one ChargeItem per course written, identified by the course id.
    let items = outcome.charge_items.items();
    let total: usize = summary.teams.iter().map(|t| t.decisions_written).sum();
    assert_eq!(total, items.len());
    assert_eq!(total as u64, summary.run.counts.decisions_written);
    for item in &items {
        let team = course_team
            .get(item.identifier_value.as_str())
            .unwrap_or_else(|| panic!("ChargeItem of unknown course {}", item.identifier_value));
        *decisions_by_team.entry(team.clone()).or_default() += 1;
        assert!(item.subject.starts_with("Patient/"));
    }
    for (team, _) in TEAMS {
        assert_eq!(
            row(summary, team).decisions_written,
            decisions_by_team.get(team).copied().unwrap_or(0),
            "{team}"
        );
    }

    // Findings name pseudonyms: each example starts with the short pseudonym of a citizen.
    // Grouped by four, so that no run of ten digits looks like a CPR number to a scanner.
    let shorts: HashSet<String> = histories.keys().map(Pseudonym::short).collect();
    for e in &summary.findings.examples {
        let short = e
            .strip_prefix("citizen ")
            .and_then(|r| r.get(..14))
            .unwrap_or_else(|| panic!("{e}"));
        assert!(shorts.contains(short), "{e}");
        assert_eq!(short.matches('-').count(), 2, "{e}");
    }
    assert_eq!(
        summary.findings.by_kind.values().sum::<usize>(),
        summary.findings.total
    );

    // The rounded month total is the sum of the rounded tracks.
    for t in &summary.teams {
        assert_eq!(
            t.income_this_month,
            round_money(t.income_this_month_by_track.values().copied().sum())
        );
    }
    assert_eq!(summary.month, YearMonth::of(as_of));

    // The JSON form is one object with the three teams.
    let json = serde_json::to_value(summary).unwrap();
    assert_eq!(json["teams"].as_array().unwrap().len(), 3);
    assert_eq!(json["run"]["outcome"], "ok");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_refuses_a_folder_with_other_files_and_replaces_a_previous_demo() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let err = demo::run(&opts(Some(tmp.path()), 5, 5))
        .await
        .expect_err("a folder with someone's files is refused");
    let msg = format!("{err:#}");
    assert!(
        msg.contains("not empty") && msg.contains("notes.txt"),
        "{msg}"
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("notes.txt")).unwrap(),
        "mine"
    );

    let keep = tmp.path().join("demo");
    let first = demo::run(&opts(Some(&keep), 6, 10)).await.unwrap();
    let second = demo::run(&opts(Some(&keep), 6, 10)).await.unwrap();
    // A fresh store each time: the second demo posts the same again, not nothing.
    assert_eq!(
        first.summary.run.counts.vouchers_created,
        second.summary.run.counts.vouchers_created
    );
    assert!(second.summary.run.counts.vouchers_created > 0);
    assert_eq!(second.summary.run.id, 1);

    std::fs::write(keep.join("notes.txt"), "mine").unwrap();
    let err = demo::run(&opts(Some(&keep), 6, 10)).await.unwrap_err();
    assert!(format!("{err:#}").contains("previous demo"), "{err:#}");
}

fn run_binary(args: &[&str], envs: &[(&str, &Path)], log: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_progression-gateway"));
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    match log {
        Some(level) => cmd.env("PROGRESSION_GATEWAY_LOG", level),
        None => cmd.env_remove("PROGRESSION_GATEWAY_LOG"),
    };
    cmd.output().expect("the binary runs")
}

/// The CPR number with a dash (`DDMMYY-XXXX`), as people write it.
fn with_dash(cpr: &str) -> String {
    format!("{}-{}", &cpr[..6], &cpr[6..])
}

#[test]
fn no_cpr_number_and_no_secret_appears_even_at_trace_level() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("kept");
    let out = run_binary(
        &[
            "demo",
            "--keep",
            keep.to_str().unwrap(),
            "--citizens",
            "40",
            "--days",
            "40",
        ],
        &[],
        Some("trace"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        &stderr[stderr.len().saturating_sub(4000)..]
    );
    let all = format!("{stdout}\n{stderr}");

    // Non-trivial: trace lines of the gateway and its libraries, and the summary.
    assert!(stderr.contains("TRACE"), "no trace lines");
    assert!(stderr.contains("Run finished."), "no run log");
    assert!(stdout.contains("nord") && stdout.contains("syd") && stdout.contains("vest"));
    assert!(stdout.contains("demo finished in "), "{stdout}");
    assert!(stdout.contains("Files kept in"), "{stdout}");

    // The same municipality the demo served.
    let municipality =
        progression_gateway::sim::care::generate(&demo::sim_config(&opts(None, 40, 40)));
    assert_eq!(municipality.citizens.len(), 40);
    // The care system did serve the CPR numbers (so their absence below means something).
    assert!(municipality.bundles.iter().any(|b| {
        String::from_utf8_lossy(&b.json).contains(&municipality.citizens[b.citizen].cpr)
    }));
    for c in &municipality.citizens {
        assert_eq!(c.cpr.len(), 10);
        for form in [c.cpr.clone(), with_dash(&c.cpr)] {
            assert!(
                !all.contains(&form),
                "a simulated CPR number appears in the output"
            );
        }
    }

    // Every secret of the demo, read back from its files.
    let secrets_dir = keep.join("secrets");
    let mut secrets = Vec::new();
    for entry in std::fs::read_dir(&secrets_dir).unwrap() {
        let path = entry.unwrap().path();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let secret = std::fs::read_to_string(&path).unwrap().trim().to_owned();
        assert!(secret.len() >= 16, "{}", path.display());
        secrets.push((path, secret));
    }
    assert_eq!(secrets.len(), 8, "{secrets_dir:?}");
    for (path, secret) in &secrets {
        assert!(
            !all.contains(secret.as_str()),
            "the secret of {} appears in the output",
            path.display()
        );
    }
    // Nor in the configuration or the store (the store holds pseudonyms only).
    for file in ["gateway.toml", "gateway.db"] {
        let bytes = std::fs::read(keep.join(file)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for (path, secret) in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{} holds the secret of {}",
                file,
                path.display()
            );
        }
        for c in &municipality.citizens {
            assert!(!text.contains(&c.cpr), "{file} holds a CPR number");
        }
    }
}

fn demo_folders(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(demo::TEMP_PREFIX))
        .collect()
}

#[test]
fn without_keep_no_folder_is_left_behind() {
    // A temporary folder of its own, so that no other process's demo can interfere.
    let tmp = tempfile::tempdir().unwrap();
    assert!(demo_folders(tmp.path()).is_empty());
    let out = run_binary(
        &["demo", "--citizens", "12", "--days", "20"],
        &[("TMPDIR", tmp.path())],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.starts_with("demo finished in ") && last.ends_with(" s"),
        "{stdout}"
    );
    assert!(!stdout.contains("Files kept"), "{stdout}");
    assert!(demo_folders(tmp.path()).is_empty(), "a demo folder is left");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

    // JSON: exactly one object on standard output, the wall time on standard error.
    let out = run_binary(
        &[
            "demo",
            "--citizens",
            "12",
            "--days",
            "20",
            "--format",
            "json",
        ],
        &[("TMPDIR", tmp.path())],
        None,
    );
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["teams"].as_array().unwrap().len(), 3);
    assert!(v["wall_time_secs"].as_f64().unwrap() > 0.0);
    assert!(v["kept"].is_null());
    assert!(String::from_utf8_lossy(&out.stderr).contains("demo finished in "));
    assert!(demo_folders(tmp.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serve_keeps_the_cockpit_up_with_the_runs_figures_until_stopped() {
    let mut o = opts(None, 40, 40);
    o.serve = true;
    let outcome = demo::run(&o).await.expect("the demo runs");
    assert_eq!(outcome.exit_code, 0);
    let serving = outcome.serving.expect("--serve keeps the cockpit");
    let dir = outcome.dir.clone();
    // The nightly run exported the steering figures per cost centre and month, with the
    // simulated finance system's costs.
    let exported: Vec<_> = std::fs::read_dir(dir.join("figures"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(exported.len(), 1, "{exported:?}");
    let csv = std::fs::read_to_string(&exported[0]).unwrap();
    assert!(
        csv.starts_with("cost_centre;team;month;figure;value\n"),
        "{csv}"
    );
    assert!(csv.contains("\n1001;nord;2027-02;costs;"), "{csv}");
    let base = format!("http://{}", serving.address);
    let management = serving.management_token.expose_secret().to_owned();
    let nord = serving.nord_token.expose_secret().to_owned();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serving.serve(async {
        let _ = rx.await;
    }));
    // The cockpit answers with the night's figures: nord's income in February equals the
    // summary's, and its default period ends on the demo's as-of date.
    let c = reqwest::Client::new();
    let rows: Vec<serde_json::Value> = c
        .get(format!(
            "{base}/cockpit/api/figures?team=nord&track=all&figure=income"
        ))
        .bearer_auth(&management)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let feb = rows
        .iter()
        .find(|r| r["month"] == "2027-02")
        .expect("February");
    assert_eq!(
        feb["value"].as_str().unwrap(),
        format!("{:.2}", row(&outcome.summary, "nord").income_this_month)
    );
    // nord's leader sees nord, not syd.
    let page = c
        .get(format!("{base}/cockpit/team/syd"))
        .bearer_auth(&nord)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 403);
    let page = c
        .get(format!("{base}/cockpit/team/nord"))
        .bearer_auth(&nord)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("9. februar 2027"));
    // Stopped, it closes the store and removes its temporary folder.
    tx.send(()).unwrap();
    server.await.unwrap().expect("served");
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_against_the_simulated_nexus_with_every_team_and_no_unassigned_citizen() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("demo");
    let mut o = opts(Some(&keep), 40, 45);
    o.source = progression_gateway::demo::DemoSource::Nexus;
    let outcome = demo::run(&o).await.expect("the demo runs");
    let summary = &outcome.summary;
    assert_eq!(outcome.exit_code, 0, "{summary:#?}");
    assert!(summary.run.errors.is_empty(), "{:?}", summary.run.errors);
    let config = std::fs::read_to_string(outcome.dir.join("gateway.toml")).unwrap();
    assert!(config.contains("[source.nexus]") && !config.contains("[source.fhir_pull]"));
    // The kept folder's README shows commands over the demo's own period.
    let readme = std::fs::read_to_string(outcome.dir.join("README.txt")).unwrap();
    assert!(
        readme.contains("figures --from 2027-01-01 --to 2027-02-14"),
        "{readme}"
    );
    let ids: Vec<(&str, &str)> = summary
        .teams
        .iter()
        .map(|t| (t.team.as_str(), t.cost_centre.as_str()))
        .collect();
    assert_eq!(ids, TEAMS.to_vec());
    assert!(summary.unassigned.is_none(), "{:?}", summary.unassigned);
    let store = Store::connect(&format!(
        "sqlite://{}",
        outcome.dir.join("gateway.db").display()
    ))
    .await
    .unwrap();
    let versions = store.all_versions().await.unwrap();
    assert_eq!(versions.len(), 40);
    assert!(
        versions
            .iter()
            .flat_map(|(_, v)| v)
            .all(|v| v.source == "nexus")
    );
    assert!(!store.courses().await.unwrap().is_empty());
    store.close().await;
}
