//! The ways in, end to end with a real SQLite file: `import`, the landing folder, the push
//! endpoint over real HTTP, and the team roster.

use crate::common;

use progression_gateway::config::{self, Loaded};
use progression_gateway::sources::files::{self, FilesConfig};
use progression_gateway::sources::ingest::{ImportSummary, Ingestor};
use progression_gateway::store::Store;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/klgateway")
}

fn loaded() -> Loaded {
    config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")).unwrap()
}

async fn ingestor(dir: &Path, source: &str) -> (Ingestor, String) {
    let url = format!("sqlite://{}", dir.join("gw.db").display());
    let store = Store::connect(&url).await.unwrap();
    let l = loaded();
    let ing = Ingestor::new(
        store,
        l.settings.pseudonym_key.clone(),
        l.settings.time_zone,
        Arc::new(l.mappings.clone()),
        source,
    );
    (ing, url)
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
}

fn run_import(url: &str, paths: &[&Path]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "--config",
            "config/example.toml",
            "--database",
            url,
            "import",
        ])
        .args(paths)
        .output()
        .unwrap();
    let summary = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stderr));
    });
    (out.status.code().unwrap(), summary)
}

#[tokio::test]
async fn import_reads_every_testdata_file_and_a_second_import_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let (code, first) = run_import(&url, &[&testdata()]);
    assert_eq!(code, 0, "{first}");
    assert_eq!(first["rejected"], serde_json::json!([]));
    // 6 delivery reports and 2 legacy files, each in JSON and XML; 3 citizens.
    assert_eq!(first["bundles"], 16);
    assert_eq!(first["citizens"], 3);
    assert!(first["grants"].as_u64().unwrap() > 0);
    assert!(first["assessments"].as_u64().unwrap() > 0);
    // The XML twin of each JSON report gives the same records: half of them are unchanged.
    let store = Store::connect(&url).await.unwrap();
    let before = common::stored_versions(&store).await;
    assert_eq!(first["stored"].as_u64().unwrap(), before.len() as u64);
    assert!(
        first["unchanged"].as_u64().unwrap() > 0,
        "the XML twins repeat the JSON records"
    );
    let (code, second) = run_import(&url, &[&testdata()]);
    assert_eq!(code, 0);
    assert_eq!(second["stored"], 0);
    assert_eq!(second["files_already_read"], 16);
    assert_eq!(common::stored_versions(&store).await, before);
}

#[tokio::test]
async fn import_rejects_a_bad_file_names_it_and_stores_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir(&input).unwrap();
    copy(
        &testdata().join("DeliveryReport-PeterOlsen-new-1.json"),
        &input.join("a-good.json"),
    );
    std::fs::write(
        input.join("b-broken.json"),
        "{\"resourceType\": \"Bundle\", ",
    )
    .unwrap();
    let text = std::fs::read_to_string(testdata().join("DeliveryReport-JensHansen-new-1.json"))
        .unwrap()
        .replace("17312894-b23f-43d9-9723-b725ac25d872", "not-a-known-code");
    std::fs::write(input.join("c-unknown-code.json"), text).unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let (code, summary) = run_import(&url, &[&input]);
    assert_eq!(code, 2, "{summary}");
    let rejected = summary["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0]["file"]
            .as_str()
            .unwrap()
            .ends_with("b-broken.json")
    );
    assert!(
        rejected[0]["reason"].as_str().unwrap().contains("line"),
        "{summary}"
    );
    // The unknown code is reported and its grant stored, not dropped.
    let unknown = summary["unknown_codes"].as_array().unwrap();
    assert!(
        unknown.iter().any(|u| u["code"] == "not-a-known-code"),
        "{summary}"
    );
    assert_eq!(summary["bundles"], 2);
    let store = Store::connect(&url).await.unwrap();
    let all = common::stored_versions(&store).await;
    assert!(all.iter().any(|v| v.contains("not-a-known-code")));
}

#[tokio::test]
async fn the_landing_folder_archives_rejects_and_reads_each_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ing, _) = ingestor(dir.path(), "landing").await;
    let landing = dir.path().join("landing");
    std::fs::create_dir(&landing).unwrap();
    let cfg = FilesConfig {
        dir: landing.clone(),
        archive_dir: None,
        rejected_dir: None,
        max_file_bytes: files::DEFAULT_MAX_FILE_BYTES,
    };
    let good = testdata().join("DeliveryReport-JensHansen-new-1.xml");
    copy(&good, &landing.join("report.xml"));
    std::fs::write(
        landing.join("bad.xml"),
        "<Bundle xmlns=\"http://hl7.org/fhir\"><type value=",
    )
    .unwrap();
    std::fs::write(landing.join("half-written.xml.part"), "<Bun").unwrap();
    let first: ImportSummary = files::poll(&ing, &cfg).await.unwrap();
    assert_eq!(first.bundles, 1);
    assert!(first.stored > 0);
    assert!(landing.join("archive/report.xml").exists());
    assert!(landing.join("rejected/bad.xml").exists());
    let reason = std::fs::read_to_string(landing.join("rejected/bad.xml.reason.txt")).unwrap();
    assert!(reason.contains("line"), "{reason}");
    assert!(
        landing.join("half-written.xml.part").exists(),
        "files being written are left alone"
    );
    let after_first = common::stored_versions(ing.store()).await;

    // The same content dropped again under another name changes nothing.
    copy(&good, &landing.join("report-again.xml"));
    let second = files::poll(&ing, &cfg).await.unwrap();
    assert_eq!((second.files_already_read, second.stored), (1, 0));
    assert!(landing.join("archive/report-again.xml").exists());
    assert_eq!(common::stored_versions(ing.store()).await, after_first);
}

#[tokio::test]
async fn a_crash_between_storing_and_archiving_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ing, _) = ingestor(dir.path(), "landing").await;
    let landing = dir.path().join("landing");
    std::fs::create_dir(&landing).unwrap();
    let cfg = FilesConfig {
        dir: landing.clone(),
        archive_dir: None,
        rejected_dir: None,
        max_file_bytes: files::DEFAULT_MAX_FILE_BYTES,
    };
    let report = testdata().join("DeliveryReport-PeterOlsen-new-1.json");
    copy(&report, &landing.join("r.json"));
    // Import the file's content as a poll would, but "crash" before moving it.
    files::import(
        &ing,
        std::slice::from_ref(&landing.join("r.json")),
        files::DEFAULT_MAX_FILE_BYTES,
        progression_gateway::progress::Show::Log,
    )
    .await
    .unwrap();
    let stored_once = common::stored_versions(ing.store()).await;
    assert!(landing.join("r.json").exists());
    // The next poll sees the content is read, archives it and stores nothing twice.
    let summary = files::poll(&ing, &cfg).await.unwrap();
    assert_eq!(
        (summary.files_already_read, summary.stored, summary.bundles),
        (1, 0, 0)
    );
    assert!(landing.join("archive/r.json").exists());
    assert_eq!(common::stored_versions(ing.store()).await, stored_once);
}

#[tokio::test]
async fn the_push_endpoint_stores_before_answering_and_refuses_bad_bundles_whole() {
    use progression_gateway::sources::fhir_push::{PushConfig, router};
    let dir = tempfile::tempdir().unwrap();
    let (ing, _) = ingestor(dir.path(), "push").await;
    let store = ing.store().clone();
    let token = "a-push-token-of-enough-length";
    let app = router(ing, PushConfig::new(token.to_owned().into()));
    let addr = common::spawn_server(app).await;
    let url = format!("http://{addr}/fhir/Bundle");
    let client = reqwest::Client::new();
    let body = std::fs::read(testdata().join("DeliveryReport-JensHansen-new-3.xml")).unwrap();
    let post = |body: Vec<u8>, token: &str| {
        client
            .post(&url)
            .bearer_auth(token)
            .header("content-type", "application/fhir+xml")
            .body(body)
            .send()
    };
    let unauthorised = post(body.clone(), "wrong-token-wrong-token").await.unwrap();
    assert_eq!(unauthorised.status(), 401);
    assert!(common::stored_versions(&store).await.is_empty());

    let ok = post(body.clone(), token).await.unwrap();
    assert_eq!(ok.status(), 200);
    // Stored before the answer: visible as soon as the answer is in.
    let after = common::stored_versions(&store).await;
    assert!(!after.is_empty());
    let again = post(body.clone(), token).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(
        common::stored_versions(&store).await,
        after,
        "a re-sent report changes nothing"
    );

    let bad = String::from_utf8(body)
        .unwrap()
        .replace("<timestamp value=", "<timestampx value=");
    let refused = post(bad.into_bytes(), token).await.unwrap();
    assert_eq!(refused.status(), 422);
    let text = refused.text().await.unwrap();
    assert!(text.contains("OperationOutcome"), "{text}");
    assert_eq!(common::stored_versions(&store).await, after);
}

#[tokio::test]
async fn a_roster_assigns_teams_by_cpr_and_withdraws_lines_that_disappear() {
    use progression_gateway::domain::{Cpr, TeamId};
    use progression_gateway::model::resolve_history;
    use progression_gateway::sources::roster;
    let dir = tempfile::tempdir().unwrap();
    let (ing, _) = ingestor(dir.path(), "landing").await;
    let l = loaded();
    let path = dir.path().join("roster.csv");
    std::fs::write(
        &path,
        "citizen,team,from,to\n0101501234,nord,2027-01-01,2027-01-15\n010150-1234,syd,2027-01-16,\n0202601234,syd,2027-01-01,\n",
    )
    .unwrap();
    let first = roster::sync(ing.store(), &path, &l.settings.pseudonym_key, &l.mappings)
        .await
        .unwrap();
    assert_eq!((first.assignments, first.stored), (3, 3));
    let who = l
        .settings
        .pseudonym_key
        .citizen(&Cpr::parse("0101501234").unwrap());
    let h = resolve_history(
        &ing.store().versions(&who).await.unwrap(),
        chrono_tz::Europe::Copenhagen,
    );
    assert_eq!(h.assignments.len(), 2);
    assert_eq!(h.assignments[1].team, TeamId::parse("syd").unwrap());
    // No CPR number in the store.
    assert!(
        common::stored_versions(ing.store())
            .await
            .iter()
            .all(|v| !v.contains("0101501234"))
    );

    // The second line disappears: it is withdrawn.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&path, "citizen,team,from,to\n0101501234,nord,2027-01-01,\n").unwrap();
    roster::sync(ing.store(), &path, &l.settings.pseudonym_key, &l.mappings)
        .await
        .unwrap();
    let h = resolve_history(
        &ing.store().versions(&who).await.unwrap(),
        chrono_tz::Europe::Copenhagen,
    );
    assert_eq!(h.assignments.len(), 1);
    assert_eq!(h.assignments[0].to, None);

    // A citizen received from the care system can be named by the Patient id.
    let patient_store = ing.store();
    let report = std::fs::read(testdata().join("DeliveryReport-PeterOlsen-new-1.json")).unwrap();
    let mut batch = ing.batch();
    let outcome = ing.read(
        &report,
        progression_gateway::sources::Format::Json,
        "t",
        &mut batch,
    );
    let patient_id = outcome
        .versions
        .iter()
        .find_map(|v| match &v.record {
            progression_gateway::model::Record::Citizen(c) => {
                Some((c.patient_id.clone().unwrap(), c.citizen.clone()))
            }
            _ => None,
        })
        .unwrap();
    batch.push(outcome, None).await.unwrap();
    batch.finish().await.unwrap();
    std::fs::write(
        &path,
        format!(
            "citizen,team,from,to\n0101501234,nord,2027-01-01,\n{},syd,2027-02-01,\n",
            patient_id.0
        ),
    )
    .unwrap();
    roster::sync(patient_store, &path, &l.settings.pseudonym_key, &l.mappings)
        .await
        .unwrap();
    let h = resolve_history(
        &ing.store().versions(&patient_id.1).await.unwrap(),
        chrono_tz::Europe::Copenhagen,
    );
    assert_eq!(h.assignments.len(), 1);
    assert_eq!(h.assignments[0].team, TeamId::parse("syd").unwrap());

    // A bad roster names file and line, never the CPR, and stores nothing.
    std::fs::write(
        &path,
        "citizen,team,from,to\n3213501234,nord,2027-01-01,\n0101501234,west,2027-01-01,\n",
    )
    .unwrap();
    let err = roster::sync(ing.store(), &path, &l.settings.pseudonym_key, &l.mappings)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("roster.csv:2:"), "{err}");
    assert!(
        err.contains("roster.csv:3:") && err.contains("unknown team `west`"),
        "{err}"
    );
    assert!(!err.contains("3213501234"), "{err}");
}

#[tokio::test]
async fn concurrent_pushes_wait_their_turn_and_every_one_is_stored_on_sqlite() {
    // 40 pushes at once into a real SQLite file: each waits for one of two turns, none is
    // refused with "database is locked", and the store ends as a sequential import.
    use progression_gateway::sources::fhir_push::{PushConfig, router};
    let dir = tempfile::tempdir().unwrap();
    let (ing, _) = ingestor(dir.path(), "push").await;
    let store = ing.store().clone();
    let token = "a-push-token-of-enough-length";
    let mut cfg = PushConfig::new(token.to_owned().into());
    cfg.max_in_flight = 2;
    let addr = common::spawn_server(router(ing, cfg)).await;
    let url = format!("http://{addr}/fhir/Bundle");
    let mut files: Vec<PathBuf> = std::fs::read_dir(testdata())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert_eq!(files.len(), 12);
    let client = reqwest::Client::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let file = files[i % files.len()].clone();
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let kind = if file.extension().unwrap() == "xml" {
                "application/fhir+xml"
            } else {
                "application/fhir+json"
            };
            let response = client
                .post(&url)
                .bearer_auth(token)
                .header("content-type", kind)
                .body(std::fs::read(&file).unwrap())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (status, text) = done.unwrap();
        assert_eq!(status, 200, "{text}");
    }
    let pushed = common::stored_versions(&store).await;
    let other = tempfile::tempdir().unwrap();
    let (seq, _) = ingestor(other.path(), "push").await;
    files::import(
        &seq,
        &files,
        files::DEFAULT_MAX_FILE_BYTES,
        progression_gateway::progress::Show::Log,
    )
    .await
    .unwrap();
    assert_eq!(pushed, common::stored_versions(seq.store()).await);
}

#[tokio::test]
async fn a_file_above_the_size_limit_is_rejected_unread_and_the_others_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (ing, url) = ingestor(dir.path(), "landing").await;
    let landing = dir.path().join("landing");
    std::fs::create_dir_all(&landing).unwrap();
    let small = testdata().join("DeliveryReport-PeterOlsen-new-1.json");
    let big = testdata().join("DeliveryReport-JensHansen-new-3.xml");
    let limit = std::fs::metadata(&small).unwrap().len();
    let big_size = std::fs::metadata(&big).unwrap().len();
    assert!(big_size > limit);
    copy(&small, &landing.join("a.json"));
    copy(&big, &landing.join("b.xml"));
    let cfg = FilesConfig {
        dir: landing.clone(),
        archive_dir: None,
        rejected_dir: None,
        max_file_bytes: limit,
    };
    let summary = files::poll(&ing, &cfg).await.unwrap();
    assert_eq!(summary.bundles, 1, "{summary:?}");
    assert_eq!(summary.rejected.len(), 1);
    assert!(summary.rejected[0].file.ends_with("b.xml"));
    let expected = format!("the file is {big_size} bytes, above the limit of {limit} bytes");
    assert!(
        summary.rejected[0].reason.contains(&expected),
        "{summary:?}"
    );
    assert!(landing.join("archive/a.json").exists());
    let reason = std::fs::read_to_string(landing.join("rejected/b.xml.reason.txt")).unwrap();
    assert!(reason.contains(&expected), "{reason}");
    let stored = common::stored_versions(ing.store()).await;
    assert!(!stored.is_empty());

    // The import command: the same limit as a flag, exit code 2, nothing stored lost.
    let out = Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "--config",
            "config/example.toml",
            "--database",
            &url,
            "import",
        ])
        .arg("--max-file-bytes")
        .arg(limit.to_string())
        .arg(&big)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = summary["rejected"][0]["reason"].as_str().unwrap();
    assert!(reason.contains(&expected), "{reason}");
    assert_eq!(common::stored_versions(ing.store()).await, stored);
}
