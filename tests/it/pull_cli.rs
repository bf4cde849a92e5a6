//! `pull` as a process: a landing folder and the simulated FHIR server, from the configuration.

use chrono::NaiveDate;
use progression_gateway::sim::care::{ServerConfig, SimConfig, generate, serve, write_files};
use progression_gateway::sources::Format;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn config(dir: &Path, base_url: &str, token_url: &str) -> std::path::PathBuf {
    let example = std::fs::read_to_string(Path::new(ROOT).join("config/example.toml")).unwrap();
    let text = example.replace(
        "dir = \"../mappings\"",
        &format!("dir = \"{}/mappings\"", ROOT),
    ) + &format!(
        r#"
[[source]]
name = "landing"
[source.files]
dir = "landing"

[[source]]
name = "care-fhir"
secret_env = "PGW_TEST_CARE_SECRET"
[source.fhir_pull]
base_url = "{base_url}"
token_url = "{token_url}"
client_id = "gateway"
page_size = 50
backoff_initial_ms = 10
backoff_max_ms = 100
"#
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn pull_reads_the_landing_folder_and_the_fhir_server_and_then_nothing_new() {
    let sim = |seed| {
        generate(&SimConfig {
            seed,
            citizens: 6,
            start: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
            days: 14,
            sor_codes: vec!["123456789012345".into()],
            time_zone: chrono_tz::Europe::Copenhagen,
        })
    };
    let remote = Arc::new(sim(3));
    let server = serve(
        remote.clone(),
        ServerConfig {
            client_id: "gateway".into(),
            client_secret: "secret-of-the-test".into(),
            page_size: 40,
            token_ttl: Duration::from_secs(300),
        },
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = sim(4);
    write_files(&local, &dir.path().join("landing"), Format::Xml).unwrap();
    let cfg = config(dir.path(), &server.base_url, &server.token_url);
    let db = format!("sqlite://{}", dir.path().join("gw.db").display());
    let run = || {
        let cfg = cfg.clone();
        let db = db.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
                    .args(["--config", cfg.to_str().unwrap(), "--database", &db, "pull"])
                    .env("PGW_TEST_CARE_SECRET", "secret-of-the-test")
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = run().await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["source"], "landing");
    assert_eq!(runs[0]["bundles"], local.bundles.len());
    assert_eq!(runs[1]["source"], "care-fhir");
    assert_eq!(runs[1]["bundles"], remote.bundles.len());
    assert!(runs[1]["stored"].as_u64().unwrap() > 0);
    let archived = std::fs::read_dir(dir.path().join("landing/archive"))
        .unwrap()
        .count();
    assert_eq!(archived, local.bundles.len());
    // No CPR number of the simulated citizens in anything the process printed.
    let printed = [out.stdout.clone(), out.stderr.clone()].concat();
    let printed = String::from_utf8_lossy(&printed);
    for c in remote.citizens.iter().chain(&local.citizens) {
        assert!(!printed.contains(&c.cpr));
    }

    // The second night: nothing new anywhere.
    let again = run().await;
    assert_eq!(again.status.code(), Some(0));
    let runs: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(runs[0]["bundles"], 0);
    assert_eq!(runs[1]["stored"], 0);
    server.shutdown().await;
}
