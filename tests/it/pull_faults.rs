//! Pulling from the simulated care system over real HTTP on loopback, through every fault it
//! can make, ends with the same stored data as a fault-free pull, with no duplicates.

use crate::common;

use chrono::NaiveDate;
use progression_gateway::config;
use progression_gateway::sim::care::{
    Fault, Municipality, ServerConfig, SimConfig, SimServer, generate, serve,
};
use progression_gateway::sources::Format;
use progression_gateway::sources::fhir_pull::{FhirPullClient, PullConfig};
use progression_gateway::sources::ingest::{ImportSummary, Ingestor};
use progression_gateway::sources::pull::{PullRunError, pull};
use progression_gateway::store::Store;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn municipality() -> Arc<Municipality> {
    Arc::new(generate(&SimConfig {
        seed: 11,
        citizens: 12,
        start: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        days: 21,
        sor_codes: vec!["123456789012345".into(), "543210987654321".into()],
        time_zone: chrono_tz::Europe::Copenhagen,
    }))
}

async fn server(m: Arc<Municipality>) -> SimServer {
    serve(
        m,
        ServerConfig {
            client_id: "gateway".into(),
            client_secret: "sim-secret-for-tests".into(),
            page_size: 25,
            token_ttl: Duration::from_secs(300),
        },
    )
    .await
    .unwrap()
}

fn client(server: &SimServer, format: Format) -> FhirPullClient {
    let mut cfg = PullConfig::new(server.base_url.clone());
    cfg.token_url = Some(server.token_url.clone());
    cfg.client_id = Some("gateway".into());
    cfg.client_secret = Some("sim-secret-for-tests".to_owned().into());
    cfg.format = format;
    cfg.page_size = 20;
    cfg.timeout_secs = 1;
    cfg.max_retries = 3;
    cfg.backoff_initial_ms = 10;
    cfg.backoff_max_ms = 100;
    FhirPullClient::new(cfg).unwrap()
}

async fn ingestor(dir: &Path) -> Ingestor {
    let store = Store::connect(&format!("sqlite://{}", dir.join("gw.db").display()))
        .await
        .unwrap();
    let l =
        config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")).unwrap();
    Ingestor::new(
        store,
        l.settings.pseudonym_key.clone(),
        l.settings.time_zone,
        Arc::new(l.mappings.clone()),
        "care-fhir",
    )
}

async fn pull_all(dir: &Path, server: &SimServer, format: Format) -> (Vec<String>, ImportSummary) {
    let ing = ingestor(dir).await;
    let summary = pull(&ing, &client(server, format)).await.unwrap();
    (common::stored_versions(ing.store()).await, summary)
}

#[tokio::test]
async fn every_fault_ends_with_the_same_data_as_a_fault_free_pull() {
    let m = municipality();
    let server = server(m.clone()).await;
    let clean_dir = tempfile::tempdir().unwrap();
    let (clean, summary) = pull_all(clean_dir.path(), &server, Format::Json).await;
    assert_eq!(summary.bundles as usize, m.bundles.len());
    assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
    assert!(!clean.is_empty());

    let faults = [
        Fault::ServerError,
        Fault::TooManyRequests {
            retry_after_secs: 1,
        },
        Fault::Unavailable {
            retry_after_secs: 1,
        },
        Fault::Slow(Duration::from_millis(1500)),
        Fault::TruncatedPage,
        Fault::ExpiredToken,
    ];
    for fault in faults {
        let dir = tempfile::tempdir().unwrap();
        let before = server.faults.requests();
        // The first two search requests of the pull fail; an expired token only once (a
        // second 401 right after a fresh token is an authorisation error, not a fault).
        let n = if fault == Fault::ExpiredToken { 1 } else { 2 };
        server.faults.fail_next(n, fault.clone());
        let (faulty, _) = pull_all(dir.path(), &server, Format::Json).await;
        assert_eq!(server.faults.pending(), 0, "{fault:?} was not hit");
        assert!(
            server.faults.requests() - before > n as u64,
            "{fault:?}: no retry"
        );
        assert_eq!(faulty.len(), clean.len(), "{fault:?}: duplicates or losses");
        assert!(faulty == clean, "{fault:?}: different data");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn xml_pages_give_the_same_data_as_json_pages() {
    let m = municipality();
    let server = server(m).await;
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let (json, _) = pull_all(a.path(), &server, Format::Json).await;
    let (xml, _) = pull_all(b.path(), &server, Format::Xml).await;
    assert!(json == xml);
    server.shutdown().await;
}

#[tokio::test]
async fn pulling_in_increments_and_after_a_failed_pull_loses_and_duplicates_nothing() {
    let m = municipality();
    let server = server(m.clone()).await;
    let clean_dir = tempfile::tempdir().unwrap();
    let (clean, _) = pull_all(clean_dir.path(), &server, Format::Json).await;

    let dir = tempfile::tempdir().unwrap();
    let ing = ingestor(dir.path()).await;
    let c = client(&server, Format::Json);
    // Night 1: only the first ten days are reported yet.
    let mid = m.bundles.iter().map(|b| b.last_updated).min().unwrap() + chrono::Duration::days(10);
    server.set_visible_until(mid);
    let first = pull(&ing, &c).await.unwrap();
    assert!(first.bundles > 0 && (first.bundles as usize) < m.bundles.len());
    let cursor = ing
        .store()
        .cursor("care-fhir")
        .await
        .unwrap()
        .expect("a cursor");
    let cursor = chrono::DateTime::parse_from_rfc3339(&cursor).unwrap();
    assert!(
        cursor <= mid,
        "the cursor {cursor} is past what was visible ({mid})"
    );
    let after_first = common::stored_versions(ing.store()).await;

    // Night 2: everything is visible, but the server fails more often than the retries allow:
    // the pull fails, and what night 1 stored stays, with its cursor.
    server.show_everything();
    server.faults.fail_next(10, Fault::ServerError);
    let failed = pull(&ing, &c).await;
    assert!(matches!(failed, Err(PullRunError::Pull(_))), "{failed:?}");
    server.faults.clear();
    assert_eq!(common::stored_versions(ing.store()).await, after_first);

    // Night 3: the next pull completes; the store equals the fault-free pull.
    pull(&ing, &c).await.unwrap();
    let got = common::stored_versions(ing.store()).await;
    assert_eq!(got.len(), clean.len());
    assert!(got == clean);
    server.shutdown().await;
}
