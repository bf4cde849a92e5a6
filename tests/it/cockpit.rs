//! The cockpit's figures API over real HTTP on loopback, with a real SQLite file: who sees
//! which team (bearer tokens by their SHA-256, a trusted sign-on header), 401 and 403, and the
//! figures equal to those of the model.

use crate::common::*;
use progression_gateway::cockpit::{CockpitSettings, CockpitState, PrincipalSettings, router};
use progression_gateway::config;
use progression_gateway::store::Store;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

const LEADER_NORD: &str = "leder-nord-token-0123456789";
const MANAGEMENT: &str = "ledelse-token-9876543210";

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn principal(
    name: &str,
    token: Option<&str>,
    user: Option<&str>,
    teams: &[&str],
) -> PrincipalSettings {
    PrincipalSettings {
        name: name.into(),
        token_sha256: token.map(sha),
        user: user.map(str::to_owned),
        teams: teams.iter().map(|t| t.to_string()).collect(),
        all: teams.is_empty(),
    }
}

fn settings() -> CockpitSettings {
    CockpitSettings {
        trusted_header: Some("X-Remote-User".into()),
        principals: vec![
            principal("leder-nord", Some(LEADER_NORD), None, &["nord"]),
            principal("ledelse", Some(MANAGEMENT), None, &[]),
            principal("leder-syd", None, Some("syd-leder@kommune.dk"), &["syd"]),
        ],
    }
}

/// Worked examples A and B in nord, C moving from nord to syd on 16 January.
async fn start(dir: &Path) -> String {
    let url = format!("sqlite://{}", dir.join("gw.db").display());
    let store = Store::connect(&url).await.unwrap();
    for h in examples_abc() {
        store.put_batch(&versions_of(&h), None).await.unwrap();
    }
    let loaded =
        config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")).unwrap();
    let state = CockpitState::new(store, Arc::new(loaded), &settings()).unwrap();
    format!("http://{}", spawn_server(router(state)).await)
}

async fn get(url: &str, auth: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in auth {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn a_team_leader_sees_only_their_team_and_management_sees_all() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    let q = "from=2027-01-01&to=2027-01-31&track=care&figure=income";
    let nord = bearer(LEADER_NORD);
    let nord = [(nord.0, nord.1.as_str())];

    // Without a team: only nord's rows; 14,900.00 in January (A 28 x 250, B 20 x 260, C 15 x 180).
    let (status, body) = get(&format!("{base}/cockpit/api/figures?{q}"), &nord).await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["team"], "nord");
    assert_eq!(rows[0]["value"], "14900.00");

    // Another team, the days without a team, the municipality: 403.
    for team in ["syd", "unassigned", "municipality"] {
        let (status, body) = get(
            &format!("{base}/cockpit/api/figures?{q}&team={team}"),
            &nord,
        )
        .await;
        assert_eq!(status, 403, "{team}: {body}");
        assert!(body.contains("ikke adgang"), "{body}");
    }

    // Management: every team and the municipality (14,900.00 + 2,880.00).
    let m = bearer(MANAGEMENT);
    let (status, body) = get(
        &format!("{base}/cockpit/api/figures?{q}&team=municipality"),
        &[(m.0, m.1.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows[0]["value"], "17780.00");

    // The sign-on proxy's header names syd's leader: syd only.
    let (status, body) = get(
        &format!("{base}/cockpit/api/figures?{q}"),
        &[("X-Remote-User", "syd-leder@kommune.dk")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["team"].as_str(), rows[0]["value"].as_str()),
        (Some("syd"), Some("2880.00"))
    );
}

#[tokio::test]
async fn without_a_principal_the_answer_is_401_and_bad_queries_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    for auth in [
        vec![],
        vec![("Authorization", "Bearer not-a-configured-token")],
        vec![("X-Remote-User", "someone-else@kommune.dk")],
    ] {
        let (status, body) = get(&format!("{base}/cockpit/api/figures"), &auth).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        let (status, _) = get(&format!("{base}/cockpit/api/catalogue"), &auth).await;
        assert_eq!(status, 401);
    }
    let m = bearer(MANAGEMENT);
    let auth = [(m.0, m.1.as_str())];
    for q in [
        "figure=nope",
        "track=dental",
        "from=2027-02-01&to=2027-01-01",
        "format=xml",
    ] {
        let (status, body) = get(
            &format!("{base}/cockpit/api/figures?{q}&to=2027-01-31"),
            &auth,
        )
        .await;
        assert_eq!(status, 400, "{q}: {body}");
    }
    let (status, _) = get(
        &format!("{base}/cockpit/api/figures?team=nowhere&to=2027-01-31"),
        &auth,
    )
    .await;
    assert_eq!(status, 404);
    // The catalogue, in Danish, with every figure's definition.
    let (status, body) = get(&format!("{base}/cockpit/api/catalogue"), &auth).await;
    assert_eq!(status, 200);
    let defs: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(
        defs.iter()
            .any(|d| d["id"] == "self_reliance" && d["name"] == "Selvhjulpenhed")
    );
}

#[tokio::test]
async fn figures_as_csv_name_no_citizen() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    let m = bearer(MANAGEMENT);
    let (status, body) = get(
        &format!("{base}/cockpit/api/figures?from=2027-01-01&to=2027-03-31&format=csv"),
        &[(m.0, m.1.as_str())],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("team,month,track,figure,value,numerator,denominator\n"),
        "{body}"
    );
    assert!(body.contains("nord,2027-01,care,outflow,1,1,\n"), "{body}");
    // No pseudonym (64 hex characters) anywhere.
    assert!(
        !body
            .split(|c: char| !c.is_ascii_hexdigit())
            .any(|w| w.len() >= 64),
        "{body}"
    );
}

#[test]
fn the_settings_name_what_is_wrong() {
    let teams = vec![progression_gateway::domain::TeamId::parse("nord").unwrap()];
    let mut s = settings();
    s.trusted_header = None;
    s.principals.push(PrincipalSettings {
        name: "both".into(),
        token_sha256: Some("abc".into()),
        user: None,
        teams: vec!["nord".into()],
        all: true,
    });
    let problems = s.problems(&teams).join("\n");
    assert!(
        problems.contains("`leder-syd`: a user needs cockpit.trusted_header"),
        "{problems}"
    );
    assert!(
        problems.contains("team `syd` is not in teams.toml"),
        "{problems}"
    );
    assert!(
        problems.contains("`both`: token_sha256 must be 64 hex characters"),
        "{problems}"
    );
    assert!(problems.contains("`both`: give teams"), "{problems}");
}
