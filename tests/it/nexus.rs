//! The KMD Nexus source (`sources::nexus`) over real HTTP on loopback.
//!
//! - A hand-written Nexus (one organisation, one patient, one grant, one condition, a small
//!   calendar) whose figures are computed by hand: the records read, the weekly minutes from
//!   duration × repetition, the supplier's team, the continuity figure of the cockpit from the
//!   calendar's performers, the store holding only what changed on a second pull, and a
//!   cancelled event withdrawn.

use crate::common::*;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use progression_gateway::domain::{PseudonymKey, TeamId, Track};
use progression_gateway::mapping::Mappings;
use progression_gateway::model::figures::{self, Cell, Scope};
use progression_gateway::model::{Record, YearMonth};
use progression_gateway::sources::ingest::Ingestor;
use progression_gateway::sources::nexus::{self, GrantCodes, NexusClient, NexusSettings};
use progression_gateway::store::Store;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The CPR number of the hand-written patient, as Nexus writes it.
const CPR: &str = "010137-1234";

/// The hand-written Nexus's mutable calendar (to change it between pulls).
#[derive(Clone)]
struct Hand {
    base: Arc<Mutex<String>>,
    events: Arc<Mutex<Vec<Value>>>,
}

fn event(id: u32, day: u32, minutes: u32, professional: Option<u32>, status: &str) -> Value {
    let start = format!("2027-01-{day:02}T08:00:00Z");
    let end = format!("2027-01-{day:02}T08:{minutes:02}:00Z");
    let mut e = json!({
        "id": id, "title": "Personlig hygiejne",
        "startDate": start, "endDate": end,
        "registeredStartDate": start, "registeredEndDate": end,
        "status": {"name": status}, "location": {"name": "Hjemme"},
        "grantIds": [42]
    });
    if let Some(p) = professional {
        e["professional"] = json!({"id": p, "name": format!("Medarbejder {p}")});
    }
    e
}

/// The calendar: block 1-14 January by 501 and 502 (and one visit by nobody known, and one
/// cancelled by 504), block 15-28 by 503 twice: continuity (2 + 1) / 2 = 1.5.
fn calendar() -> Vec<Value> {
    vec![
        event(9001, 5, 20, Some(501), "Udført"),
        event(9002, 6, 25, Some(502), "Udført"),
        event(9003, 7, 20, Some(501), "Udført"),
        event(9004, 8, 20, Some(504), "Aflyst"),
        event(9005, 9, 15, None, "Udført"),
        event(9006, 20, 30, Some(503), "Udført"),
        event(9007, 21, 30, Some(503), "Udført"),
    ]
}

fn authorised(headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "Bearer hand-token")
}

async fn hand_nexus() -> (String, String, Hand) {
    let hand = Hand {
        base: Arc::new(Mutex::new(String::new())),
        events: Arc::new(Mutex::new(calendar())),
    };
    async fn token() -> Json<Value> {
        Json(
            json!({"access_token": "hand-token", "token_type": "Bearer", "expires_in": 300,
                    "refresh_token": "hand-refresh", "refresh_expires_in": 1800}),
        )
    }
    async fn doc(
        State(h): State<Hand>,
        headers: HeaderMap,
        axum::extract::Path(path): axum::extract::Path<String>,
        Query(q): Query<HashMap<String, String>>,
    ) -> Response {
        if !authorised(&headers) {
            return StatusCode::UNAUTHORIZED.into_response();
        }
        let b = h.base.lock().unwrap().clone();
        let l = |p: &str| json!({"href": format!("{b}{p}")});
        let body = match path.as_str() {
            "" => json!({"_links": {"self": l(""), "organizations": l("organizations")}}),
            "organizations" => json!([{"id": 3, "name": "Hjemmeplejen Nord",
                "_links": {"patients": l("organizations/3/patients")}}]),
            "organizations/3/patients" => {
                assert_eq!(q.get("pageSize").map(String::as_str), Some("50"));
                json!({"totalItems": 1, "pageSize": 50,
                    "pages": [{"_links": {"content": l("patients?ids=17")}}]})
            }
            "patients" => json!([{"id": 17, "_links": {"self": l("patients/17")}}]),
            "patients/17" => json!({"id": 17, "firstName": "Borger", "lastName": "17",
                "patientIdentifier": {"type": "cpr", "identifier": CPR},
                "patientState": {"name": "Aktiv"},
                "_links": {"self": l("patients/17"), "patientPreferences": l("patients/17/preferences")}}),
            "patients/17/preferences" => json!({
                "CITIZEN_PATHWAY": [{"id": 1, "name": "Sygepleje"},
                                    {"id": 2, "name": "Borgerforløb - Alt", "_links": {"pathwayReferences": l("pathway/2")}}],
                "CITIZEN_CALENDAR": [{"id": 5, "name": "Kalender", "_links": {"events": l("calendar/5/events")}}]}),
            "pathway/2" => json!([{"type": "patientPathway", "name": "Forløb", "children": [
                {"type": "folder", "name": "Indsatser", "children": [
                    {"type": "basketGrantReference", "name": "Personlig hygiejne", "grantId": 42,
                     "workflowState": {"name": "Bevilget"}, "_links": {"referencedObject": l("grants/42")}}]},
                {"type": "conditionReference", "conditionId": 7, "_links": {"referencedObject": l("conditions/7")}},
                {"type": "formReference", "name": "Noter"}]}]),
            "grants/42" => json!({"id": 42, "name": "Personlig hygiejne",
                "workflowState": {"id": 5, "name": "Bevilget"},
                "currentElements": [
                    {"type": "paragraph", "section": "§ 83", "group": {"id": 1}},
                    {"type": "visitatedDurationInMinutes", "number": 20},
                    {"type": "repetition", "pattern": "WEEK", "count": 1,
                     "next": {"weekdays": 5, "weekenddays": 2, "next": {"visits": 2}}},
                    {"type": "supplier", "supplier": {"id": 11, "name": "Hjemmeplejen Nord", "cvrNumber": "29189129"}},
                    {"type": "billingStartDate", "date": "2027-01-04"},
                    {"type": "billingEndDate", "date": null}],
                "futureElements": []}),
            "conditions/7" => json!({"id": 7, "code": "J1.1", "state": {"name": "Aktiv"},
                "inFocus": true, "level": "B3", "expectedLevel": null}),
            "calendar/5/events" => {
                assert!(q.contains_key("from") && q.contains_key("to"), "{q:?}");
                json!({"eventResources": h.events.lock().unwrap().clone()})
            }
            _ => return StatusCode::NOT_FOUND.into_response(),
        };
        Json(body).into_response()
    }
    async fn root(
        state: State<Hand>,
        headers: HeaderMap,
        q: Query<HashMap<String, String>>,
    ) -> Response {
        doc(state, headers, axum::extract::Path(String::new()), q).await
    }
    let app = Router::new()
        .route(
            "/authx/realms/hand/protocol/openid-connect/token",
            post(token),
        )
        .route("/api/core/mobile/hand/v2/", get(root))
        .route("/api/core/mobile/hand/v2/{*path}", get(doc))
        .with_state(hand.clone());
    let addr = spawn_server(app).await;
    let base = format!("http://{addr}/api/core/mobile/hand/v2/");
    *hand.base.lock().unwrap() = base.clone();
    (
        base,
        format!("http://{addr}/authx/realms/hand/protocol/openid-connect/token"),
        hand,
    )
}

/// The repository's mappings with Nexus supplier 11 as team nord and 12 as syd.
pub fn nexus_mappings() -> Mappings {
    let mut m = progression_gateway::mapping::load::load_dir("mappings".as_ref()).unwrap();
    for t in &mut m.teams {
        match t.team.id.as_str() {
            "nord" => t.nexus_supplier_ids = vec!["11".into()],
            "syd" => t.nexus_supplier_ids = vec!["12".into()],
            _ => {}
        }
    }
    m
}

/// A Nexus source's settings for `api_root` and `token_url`.
pub fn settings(api_root: &str, token_url: &str, organisations: &[i64]) -> NexusSettings {
    let text = format!(
        "api_root = {api_root:?}\ntoken_url = {token_url:?}\nclient_id = \"pgw\"\norganisations = {organisations:?}\nrequests_per_second = 1000\nbackoff_initial_ms = 10\nbackoff_max_ms = 50\n"
    );
    let mut config: nexus::NexusConfig = toml::from_str(&text).unwrap();
    config.client_secret = Some(SecretString::from("sim-secret"));
    NexusSettings {
        config,
        grant_codes: Arc::new(GrantCodes::load("mappings/nexus_grants.csv".as_ref()).unwrap()),
    }
}

pub fn key() -> PseudonymKey {
    PseudonymKey::new(SecretString::from("nexus-test-pseudonym-key-0001")).unwrap()
}

fn at(s: &str) -> chrono::DateTime<chrono::Utc> {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_hand_written_nexus_gives_its_records_and_the_continuity_of_its_calendar() {
    let (api_root, token_url, hand) = hand_nexus().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("n.db").display()))
        .await
        .unwrap();
    let mappings = Arc::new(nexus_mappings());
    let tz = chrono_tz::Europe::Copenhagen;
    let ingestor = Ingestor::new(store.clone(), key(), tz, mappings.clone(), "nexus-hand");
    let s = settings(&api_root, &token_url, &[3]);
    let client = NexusClient::new(&s.config).unwrap();
    let now = at("2027-02-01T01:00:00Z");
    let summary = nexus::pull(&ingestor, &s, &client, now).await.unwrap();
    assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
    assert!(
        summary.unknown_codes.is_empty(),
        "{:?}",
        summary.unknown_codes
    );
    assert_eq!(
        (summary.citizens, summary.grants, summary.visits),
        (1, 1, 6)
    );
    assert_eq!((summary.assessments, summary.goals), (1, 0));

    let citizen = key().citizen(&progression_gateway::domain::Cpr::parse(CPR).unwrap());
    let versions = store.versions(&citizen).await.unwrap();
    assert!(
        versions
            .iter()
            .all(|v| v.source == "nexus" && v.version_at == now)
    );
    let grant = versions
        .iter()
        .find_map(|v| match &v.record {
            Record::Grant(g) => Some(g.clone()),
            _ => None,
        })
        .unwrap();
    // 20 minutes, 2 visits a day, 7 days a week.
    assert_eq!(grant.weekly_minutes, Some(280));
    assert_eq!(grant.code, "17312894-b23f-43d9-9723-b725ac25d872");
    assert_eq!(grant.start, d("2027-01-04"));
    let team = versions
        .iter()
        .find_map(|v| match &v.record {
            Record::Assignment(a) => Some(a.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        (team.team.as_str(), team.from, team.to),
        ("nord", d("2027-01-04"), None)
    );
    let employees: std::collections::BTreeSet<_> = versions
        .iter()
        .filter_map(|v| match &v.record {
            Record::Visit(v) => v.employee.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(employees.len(), 3, "501, 502 and 503, pseudonymised");

    // The cockpit's continuity: block 1-14 {501, 502}, block 15-28 {503}: (2 + 1) / 2.
    let snap = progression_gateway::pipeline::figures::figures(
        &store,
        &mappings,
        tz,
        d("2027-01-01"),
        d("2027-01-31"),
    )
    .await
    .unwrap();
    let cell = Cell {
        scope: Scope::Team(TeamId::parse("nord").unwrap()),
        month: YearMonth::of(d("2027-01-01")),
        track: Some(Track::Care),
    };
    let t = snap.figures.tally(&cell);
    assert_eq!((t.block_employees, t.blocks_with_performer), (3, 2));
    assert_eq!(
        figures::value("continuity", &t).unwrap().value,
        Some(dec("1.5"))
    );

    // A second pull with nothing changed stores nothing; then a visit cancelled is withdrawn
    // and only that is stored.
    let again = nexus::pull(&ingestor, &s, &client, at("2027-02-02T01:00:00Z"))
        .await
        .unwrap();
    assert_eq!(again.stored, 0, "{again:?}");
    hand.events.lock().unwrap()[6]["status"] = json!({"name": "Aflyst"});
    let third = nexus::pull(&ingestor, &s, &client, at("2027-02-03T01:00:00Z"))
        .await
        .unwrap();
    assert_eq!(third.stored, 1, "{third:?}");
    let versions = store.versions(&citizen).await.unwrap();
    let withdrawn: Vec<_> = versions.iter().filter(|v| v.withdrawn).collect();
    assert_eq!(withdrawn.len(), 1);
    assert!(matches!(&withdrawn[0].record, Record::Visit(v) if v.source_id.as_str() == "9007"));
    store.close().await;
}
