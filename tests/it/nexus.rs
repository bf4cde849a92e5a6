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
    /// The `grant_type` of every token request.
    grant_types: Arc<Mutex<Vec<String>>>,
    /// The name of the pathway view the gateway reads.
    view: Arc<Mutex<String>>,
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
        grant_types: Arc::new(Mutex::new(Vec::new())),
        view: Arc::new(Mutex::new("Borgerforløb - Alt".into())),
    };
    // Access tokens live 1 s, refresh tokens 30 min.
    async fn token(State(h): State<Hand>, body: String) -> Response {
        let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let grant = form.get("grant_type").cloned().unwrap_or_default();
        h.grant_types.lock().unwrap().push(grant.clone());
        if form.get("client_secret").map(String::as_str) != Some("sim-secret")
            || (grant == "refresh_token"
                && form.get("refresh_token").map(String::as_str) != Some("hand-refresh"))
        {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": "invalid_grant"})),
            )
                .into_response();
        }
        Json(
            json!({"access_token": "hand-token", "token_type": "Bearer", "expires_in": 1,
                    "refresh_token": "hand-refresh", "refresh_expires_in": 1800}),
        )
        .into_response()
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
                                    {"id": 2, "name": h.view.lock().unwrap().clone(), "_links": {"pathwayReferences": l("pathway/2")}}],
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

    // A second pull with nothing changed stores nothing (its access token, expired, is renewed
    // with the refresh token); then a visit cancelled is withdrawn and only that is stored.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = nexus::pull(&ingestor, &s, &client, at("2027-02-02T01:00:00Z"))
        .await
        .unwrap();
    assert_eq!(again.stored, 0, "{again:?}");
    // Citizen, grant, team, assessment and six visits, each found as stored.
    assert_eq!(again.unchanged, 10, "{again:?}");
    let grants = hand.grant_types.lock().unwrap().clone();
    assert_eq!(grants[0], "client_credentials");
    assert!(
        grants.len() >= 2 && grants[1..].iter().all(|g| g == "refresh_token"),
        "{grants:?}"
    );
    hand.events.lock().unwrap()[6]["status"] = json!({"name": "Aflyst"});
    let third = nexus::pull(&ingestor, &s, &client, at("2027-02-03T01:00:00Z"))
        .await
        .unwrap();
    assert_eq!((third.stored, third.withdrawn), (1, 1), "{third:?}");
    let versions = store.versions(&citizen).await.unwrap();
    let withdrawn: Vec<_> = versions.iter().filter(|v| v.withdrawn).collect();
    assert_eq!(withdrawn.len(), 1);
    assert!(matches!(&withdrawn[0].record, Record::Visit(v) if v.source_id.as_str() == "9007"));

    // The pathway view renamed in Nexus: the patient is refused and nothing stored is
    // withdrawn (it would otherwise read as "no grants").
    *hand.view.lock().unwrap() = "Borgerforløb - Nyt".into();
    let renamed = nexus::pull(&ingestor, &s, &client, at("2027-02-04T01:00:00Z"))
        .await
        .unwrap();
    assert_eq!(renamed.stored, 0, "{renamed:?}");
    assert_eq!(renamed.rejected.len(), 1);
    assert!(
        renamed.rejected[0]
            .reason
            .contains("patient 17 has no CITIZEN_PATHWAY view"),
        "{:?}",
        renamed.rejected
    );
    assert_eq!(
        store.versions(&citizen).await.unwrap().len(),
        versions.len()
    );
    store.close().await;
}

// ---------------------------------------------------------------------------------------------
// The simulated Nexus, built from the same simulated municipality as the FHIR simulator
// ---------------------------------------------------------------------------------------------

use progression_gateway::model::{Course, Versioned, compute_courses, resolve_history};
use progression_gateway::sim::care::{Fault, Municipality, SimConfig, generate};
use progression_gateway::sim::nexus::{NexusMunicipality, NexusServer, NexusServerConfig};
use progression_gateway::sources::Format;
use std::collections::BTreeMap;

fn small_sim() -> SimConfig {
    SimConfig {
        citizens: 24,
        days: 50,
        seed: 7,
        ..SimConfig::default()
    }
}

async fn serve_nexus(m: &Municipality, cfg: &SimConfig) -> (NexusServer, Vec<i64>) {
    let nexus = NexusMunicipality::build(m, cfg, &nexus_mappings());
    let orgs = nexus.organisation_ids();
    let server = progression_gateway::sim::nexus::serve(
        Arc::new(nexus),
        NexusServerConfig {
            client_id: "pgw".into(),
            client_secret: "sim-secret".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (server, orgs)
}

async fn sqlite(dir: &std::path::Path, name: &str) -> Store {
    Store::connect(&format!("sqlite://{}", dir.join(name).display()))
        .await
        .unwrap()
}

/// Every stored Nexus version as text (kind, key, record, withdrawn, instant), sorted.
async fn nexus_versions(store: &Store) -> Vec<String> {
    let mut out = Vec::new();
    for (_, versions) in store.all_versions().await.unwrap() {
        for v in versions.into_iter().filter(|v| v.source == "nexus") {
            out.push(serde_json::to_string(&v).unwrap());
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn pulling_through_every_fault_stores_what_a_fault_free_pull_stores_without_duplicates() {
    let cfg = small_sim();
    let m = generate(&cfg);
    let (server, orgs) = serve_nexus(&m, &cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let mappings = Arc::new(nexus_mappings());
    let tz = cfg.time_zone;
    let s = settings(&server.api_root, &server.token_url, &orgs);
    let now = at("2027-02-20T23:00:00Z");

    let clean = sqlite(dir.path(), "clean.db").await;
    let ing = Ingestor::new(clean.clone(), key(), tz, mappings.clone(), "nexus");
    let summary = nexus::pull(&ing, &s, &NexusClient::new(&s.config).unwrap(), now)
        .await
        .unwrap();
    assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
    assert_eq!(summary.citizens, cfg.citizens as u64);
    let expected = nexus_versions(&clean).await;
    assert!(expected.len() > 500, "{}", expected.len());

    // Through faults: every kind, spread over the pull by a task that keeps queueing them,
    // tokens and refresh tokens expiring, and a first pull cut off half-way.
    let faulty = sqlite(dir.path(), "faulty.db").await;
    let ing = Ingestor::new(faulty.clone(), key(), tz, mappings.clone(), "nexus");
    let client = NexusClient::new(&s.config).unwrap();
    let faults = server.faults.clone();
    let requests_before = server.api_requests();
    // Paced by requests, not by the clock: a fault is queued only when the last one was taken
    // and six more requests have come since, so on a slow machine faults do not pile up into
    // more consecutive failures of one request than its retries allow (a flaky CI failure).
    let injector = tokio::spawn(async move {
        let kinds = [
            Fault::ServerError,
            Fault::TooManyRequests {
                retry_after_secs: 0,
            },
            Fault::Unavailable {
                retry_after_secs: 0,
            },
            Fault::TruncatedPage,
            Fault::ExpiredToken,
            Fault::Slow(std::time::Duration::from_millis(30)),
        ];
        let mut queued_at = 0u64;
        for i in 0.. {
            loop {
                let seen = faults.requests();
                if faults.pending() == 0 && seen >= queued_at + 6 {
                    queued_at = seen;
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            faults.fail_next(1, kinds[i % kinds.len()].clone());
        }
    });
    // Cut off once it has made half the requests of a clean pull (by count, not by the clock,
    // so a fast or slow machine cuts it at the same point).
    let half = requests_before / 2;
    let counter = server.faults.clone();
    let cut_point = async move {
        while counter.requests() < requests_before + half {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    tokio::select! {
        done = nexus::pull(&ing, &s, &client, now) => panic!("the first pull was meant to be cut off: {done:?}"),
        () = cut_point => {}
    }
    server.expire_tokens();
    server.expire_refresh_tokens();
    let summary = nexus::pull(&ing, &s, &client, now).await.unwrap();
    injector.abort();
    assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
    assert!(server.api_requests() - requests_before > 100);
    let got = nexus_versions(&faulty).await;
    assert_eq!(got.len(), expected.len(), "no duplicates, nothing missing");
    assert_eq!(got, expected);
    server.shutdown().await;
}

/// The courses of every citizen of a store, as of `as_of`.
async fn courses(
    store: &Store,
    m: &Mappings,
    as_of: chrono::NaiveDate,
) -> BTreeMap<String, Vec<Course>> {
    let mut out = BTreeMap::new();
    for (citizen, versions) in store.all_versions().await.unwrap() {
        let h = resolve_history(&versions, chrono_tz::Europe::Copenhagen);
        out.insert(citizen.to_string(), compute_courses(&h, m, as_of).courses);
    }
    out
}

fn decision(c: &Course) -> String {
    format!(
        "{:?} {} {:?} score {} group {:?} {:?} {} to {} ({:?})",
        c.track,
        c.start,
        c.kind,
        c.need_score,
        c.group,
        c.tariff,
        c.tariff_year,
        c.end,
        c.end_reason
    )
}

#[tokio::test]
async fn the_same_municipality_through_kl_gateway_and_nexus_gives_the_same_decisions() {
    let cfg = small_sim();
    let m = generate(&cfg);
    let mappings = Arc::new(nexus_mappings());
    let tz = cfg.time_zone;
    let dir = tempfile::tempdir().unwrap();

    // KL Gateway: every delivery report, as a landing folder or a pull would store them.
    let kl = sqlite(dir.path(), "kl.db").await;
    let ing = Ingestor::new(kl.clone(), key(), tz, mappings.clone(), "klgateway-files");
    let mut batch = ing.batch();
    for b in &m.bundles {
        let outcome = ing.read(&b.json, Format::Json, &b.id, &mut batch);
        assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
        batch.push(outcome, None).await.unwrap();
    }
    batch.finish().await.unwrap();

    // Nexus: pulled every night at 23:59:59 local, seeing what was reported up to then.
    let (server, orgs) = serve_nexus(&m, &cfg).await;
    let nx = sqlite(dir.path(), "nexus.db").await;
    let ing = Ingestor::new(nx.clone(), key(), tz, mappings.clone(), "nexus");
    let s = settings(&server.api_root, &server.token_url, &orgs);
    let client = NexusClient::new(&s.config).unwrap();
    for day in 0..cfg.days {
        let date = cfg.start + chrono::Days::new(u64::from(day));
        let night = date
            .and_hms_opt(23, 59, 59)
            .unwrap()
            .and_local_timezone(tz)
            .unwrap()
            .with_timezone(&chrono::Utc);
        server.set_visible_until(night);
        let summary = nexus::pull(&ing, &s, &client, night).await.unwrap();
        assert!(summary.rejected.is_empty(), "{:?}", summary.rejected);
    }
    server.shutdown().await;

    let as_of = cfg.start + chrono::Days::new(u64::from(cfg.days - 1));
    let from_kl = courses(&kl, &mappings, as_of).await;
    let from_nexus = courses(&nx, &mappings, as_of).await;
    assert_eq!(from_kl.len(), cfg.citizens);
    assert_eq!(
        from_kl.keys().collect::<Vec<_>>(),
        from_nexus.keys().collect::<Vec<_>>()
    );
    let mut same = 0;
    for (citizen, kl_courses) in &from_kl {
        let a: Vec<_> = kl_courses.iter().map(decision).collect();
        let b: Vec<_> = from_nexus[citizen].iter().map(decision).collect();
        assert_eq!(a, b, "citizen {citizen}");
        same += a.len();
    }
    assert!(same > 20, "{same} courses compared");

    // The documented differences: Nexus carries visitated weekly minutes and performers,
    // KL Gateway neither; grant ids are Nexus's integers, not FHIR UUIDs.
    let all = |store: Store| async move {
        store
            .all_versions()
            .await
            .unwrap()
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect::<Vec<Versioned>>()
    };
    let (kl_all, nx_all) = (all(kl).await, all(nx).await);
    let grants = |vs: &[Versioned]| {
        vs.iter()
            .filter_map(|v| match &v.record {
                Record::Grant(g) => Some(g.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(grants(&kl_all).iter().all(|g| g.weekly_minutes.is_none()));
    assert!(
        grants(&nx_all)
            .iter()
            .any(|g| g.weekly_minutes.is_some_and(|w| w > 0))
    );
    assert!(
        grants(&nx_all)
            .iter()
            .all(|g| g.source_id.as_str().parse::<i64>().is_ok())
    );
    let visits = |vs: &[Versioned]| {
        vs.iter()
            .filter_map(|v| match &v.record {
                Record::Visit(v) => Some(v.employee.is_some()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert!(visits(&kl_all).iter().all(|e| !e));
    let nx_visits = visits(&nx_all);
    assert!(!nx_visits.is_empty() && nx_visits.iter().all(|e| *e));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cpr_number_with_or_without_its_dash_in_the_logs_the_output_or_the_store() {
    let cfg = small_sim();
    let m = generate(&cfg);
    let (server, orgs) = serve_nexus(&m, &cfg).await;
    // Every kind of fault, so that retries and refusals are logged too.
    server.faults.fail_next(1, Fault::ServerError);
    server.faults.fail_next(1, Fault::TruncatedPage);
    server.faults.fail_next(1, Fault::ExpiredToken);
    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(dir.path().join("secret"), "sim-secret").unwrap();
    let config = format!(
        "time_zone = \"Europe/Copenhagen\"\n[store]\nurl = {db:?}\n[pseudonym]\nkey = \"nexus-test-pseudonym-key-0001\"\n[mappings]\ndir = {mappings:?}\n[log]\nformat = \"json\"\nlevel = \"debug\"\n\n[[source]]\nname = \"nexus\"\nsecret_file = \"secret\"\n[source.nexus]\napi_root = {root:?}\ntoken_url = {token:?}\nclient_id = \"pgw\"\norganisations = {orgs:?}\nrequests_per_second = 1000\nbackoff_initial_ms = 10\n",
        db = format!("sqlite://{}", dir.path().join("gw.db").display()),
        mappings = repo.join("mappings").display().to_string(),
        root = server.api_root,
        token = server.token_url,
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
            .arg("--config")
            .arg(&path)
            .arg("pull")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("\"citizens\": 24") || stdout.contains("\"citizens\":24"),
        "{stdout}"
    );
    assert!(
        stderr.contains("retrying"),
        "the faults were logged: {stderr}"
    );
    server.shutdown().await;
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("gw.db")
        {
            stored.extend(std::fs::read(&p).unwrap());
        }
    }
    let stored = String::from_utf8_lossy(&stored).to_string();
    assert!(stored.len() > 10_000);
    for c in &m.citizens {
        let dashed = format!("{}-{}", &c.cpr[..6], &c.cpr[6..]);
        for text in [&stdout, &stderr, &stored] {
            assert!(!text.contains(&c.cpr), "a CPR number without its dash");
            assert!(!text.contains(&dashed), "a CPR number with its dash");
        }
    }
}

#[test]
fn a_bad_nexus_configuration_or_grant_file_is_refused_naming_key_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mappings = dir.path().join("mappings");
    std::fs::create_dir(&mappings).unwrap();
    for f in std::fs::read_dir(repo.join("mappings")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, mappings.join(f.file_name().unwrap())).unwrap();
    }
    let mut grants = std::fs::read_to_string(mappings.join("nexus_grants.csv")).unwrap();
    grants.push_str("§ 83,Personlig hygiejne,H1.1\n");
    std::fs::write(mappings.join("nexus_grants.csv"), grants).unwrap();
    let config = "time_zone = \"Europe/Copenhagen\"\n[pseudonym]\nkey = \"nexus-test-pseudonym-key-0001\"\n[mappings]\ndir = \"mappings\"\n\n[[source]]\nname = \"nexus\"\n[source.nexus]\napi_root = \"https://x.nexus.kmd.dk/api/core/mobile/x/v2/\"\ntoken_url = \"https://iam.nexus.kmd.dk/authx/realms/x/protocol/openid-connect/token\"\nclient_id = \"pgw\"\norganisations = []\npage_size = 51\n[source.nexus.calendar]\nstatus = \"status.name\"\n";
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    let err = progression_gateway::config::load_with_env(&path, Vec::new())
        .unwrap_err()
        .to_string();
    // Each setting's problem names its key's line; what has no key, the [[source]]'s.
    for want in [
        "gateway.toml:14: source `nexus`: page_size must be 1-50",
        "gateway.toml:13: source `nexus`: organisations must name at least one",
        "gateway.toml:16: source `nexus`: calendar.status must be a JSON pointer",
        "gateway.toml:7: source `nexus`: a nexus source needs its client secret",
        "nexus_grants.csv: line 21: the grant `§ 83` `Personlig hygiejne` is already on line 2",
    ] {
        assert!(err.contains(want), "{want} not in:\n{err}");
    }

    // A code interventions.csv does not know is named by file and line; a secret written in
    // the configuration file is refused; a URL without a scheme is refused.
    let mut grants = std::fs::read_to_string(repo.join("mappings/nexus_grants.csv")).unwrap();
    grants.push_str("§ 83,Havearbejde,banana\n");
    std::fs::write(mappings.join("nexus_grants.csv"), grants).unwrap();
    let good = config
        .replace("organisations = []\npage_size = 51", "organisations = [3]")
        .replace("[source.nexus.calendar]\nstatus = \"status.name\"\n", "")
        .replace(
            "name = \"nexus\"\n",
            "name = \"nexus\"\nsecret_file = \"secret\"\n",
        );
    std::fs::write(dir.path().join("secret"), "s").unwrap();
    std::fs::write(&path, &good).unwrap();
    let env = Vec::<(std::ffi::OsString, std::ffi::OsString)>::new;
    let err = progression_gateway::config::load_with_env(&path, env())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nexus_grants.csv: line 21: code `banana` is not in interventions.csv"),
        "{err}"
    );
    let with_secret = good.replace(
        "client_id = \"pgw\"",
        "client_id = \"pgw\"\nclient_secret = \"abc\"",
    );
    std::fs::write(&path, with_secret).unwrap();
    let err = progression_gateway::config::load_with_env(&path, env())
        .unwrap_err()
        .to_string();
    assert!(err.contains("client_secret"), "{err}");
    let no_scheme = good.replace("https://x.nexus.kmd.dk", "x.nexus.kmd.dk");
    std::fs::write(&path, no_scheme).unwrap();
    let err = progression_gateway::config::load_with_env(&path, env())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("api_root must be an http or https URL"),
        "{err}"
    );
}

#[tokio::test]
async fn the_weekly_minutes_basis_and_individual_tariffs_read_the_visitated_minutes_of_nexus() {
    let (api_root, token_url, _hand) = hand_nexus().await;
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path(), "w.db").await;
    let tz = chrono_tz::Europe::Copenhagen;
    // The care tables scored by visitated weekly minutes, individual from 250 minutes at
    // 420.00 kr. an hour.
    let mut m = nexus_mappings();
    let tables: Vec<_> = m
        .tariffs
        .tables()
        .iter()
        .cloned()
        .map(|mut t| {
            if t.track == Track::Care {
                t.basis = progression_gateway::mapping::NeedBasis::WeeklyMinutes;
                t.individual = Some(progression_gateway::mapping::IndividualRule {
                    threshold: 250,
                    hourly_rate: dec("420.00"),
                });
            }
            t
        })
        .collect();
    m.tariffs = progression_gateway::mapping::TariffBook::new(tables);
    let m = Arc::new(m);
    let ingestor = Ingestor::new(store.clone(), key(), tz, m.clone(), "nexus-hand");
    let s = settings(&api_root, &token_url, &[3]);
    nexus::pull(
        &ingestor,
        &s,
        &NexusClient::new(&s.config).unwrap(),
        at("2027-02-01T01:00:00Z"),
    )
    .await
    .unwrap();
    let citizen = key().citizen(&progression_gateway::domain::Cpr::parse(CPR).unwrap());
    let h = resolve_history(&store.versions(&citizen).await.unwrap(), tz);
    let courses = compute_courses(&h, &m, d("2027-01-31")).courses;
    assert_eq!(courses.len(), 1, "{courses:?}");
    let c = &courses[0];
    // Nexus's 20 minutes twice a day, 7 days a week: 280, not the norm of 210 KL Gateway's
    // grants are scored with (interventions.csv, H1.1).
    assert_eq!(
        m.interventions
            .get("17312894-b23f-43d9-9723-b725ac25d872")
            .unwrap()
            .norm_minutes_per_week,
        210
    );
    assert_eq!((c.need_score, c.start), (280, d("2027-01-04")));
    assert_eq!(c.kind, progression_gateway::domain::CourseKind::Individual);
    // 280 / 60 * 420.00 / 7 = 280.00 kr. a day.
    assert_eq!(c.daily_amount(d("2027-01-10"), &h, &m), dec("280"));
    store.close().await;
}

/// A `[source.nexus]` configuration for the `pull` command against `server`, storing in `db`.
fn pull_config(
    dir: &std::path::Path,
    db: &std::path::Path,
    server: &NexusServer,
    orgs: &[i64],
    rate: u32,
) -> std::path::PathBuf {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::write(dir.join("secret"), "sim-secret").unwrap();
    let config = format!(
        "time_zone = \"Europe/Copenhagen\"\n[store]\nurl = {db:?}\n[pseudonym]\nkey = \"nexus-test-pseudonym-key-0001\"\n[mappings]\ndir = {mappings:?}\n\n[[source]]\nname = \"nexus\"\nsecret_file = \"secret\"\n[source.nexus]\napi_root = {root:?}\ntoken_url = {token:?}\nclient_id = \"pgw\"\norganisations = {orgs:?}\nrequests_per_second = {rate}\nhistory_days = 4000\n",
        db = format!("sqlite://{}", db.display()),
        mappings = repo.join("mappings").display().to_string(),
        root = server.api_root,
        token = server.token_url,
    );
    let path = dir.join(format!(
        "{}.toml",
        db.file_stem().unwrap().to_string_lossy()
    ));
    std::fs::write(&path, config).unwrap();
    path
}

/// Every stored Nexus record's content without the instants a pull stamps (so that pulls at
/// different moments compare), with how many versions each record has.
async fn contents(store: &Store) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (_, versions) in store.all_versions().await.unwrap() {
        for v in versions.into_iter().filter(|v| v.source == "nexus") {
            let mut json = serde_json::to_value(&v.record).unwrap();
            if let Some(r) = json.get_mut("record").and_then(Value::as_object_mut) {
                for instant in ["assessed_at", "assessed_on", "set_on"] {
                    r.remove(instant);
                }
            }
            *out.entry(format!("{json} withdrawn={}", v.withdrawn))
                .or_default() += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_killed_with_sigkill_again_and_again_then_completed_equals_a_clean_pull() {
    let cfg = SimConfig {
        citizens: 120,
        days: 30,
        seed: 11,
        ..SimConfig::default()
    };
    let m = generate(&cfg);
    let (server, orgs) = serve_nexus(&m, &cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |config: std::path::PathBuf| {
        std::process::Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
            .arg("--config")
            .arg(config)
            .arg("pull")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait = |mut child: std::process::Child| async move {
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    let clean_db = dir.path().join("clean.db");
    assert!(
        wait(run(pull_config(
            dir.path(),
            &clean_db,
            &server,
            &orgs,
            5000
        )))
        .await
        .success()
    );
    // Slow pulls (300 requests a second, some 1,000 requests each, stored every 50 patients),
    // killed at growing moments, then one let finish.
    let killed_db = dir.path().join("killed.db");
    let slow = pull_config(dir.path(), &killed_db, &server, &orgs, 300);
    let mut killed = 0;
    for ms in [400u64, 900, 1400, 1900] {
        let mut child = run(slow.clone());
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        if child.try_wait().unwrap().is_none() {
            // Child::kill sends SIGKILL on Unix.
            child.kill().unwrap();
            killed += 1;
        }
        let _ = child.wait();
    }
    assert!(
        killed >= 2,
        "only {killed} pulls were still running when killed"
    );
    let partial = Store::connect(&format!("sqlite://{}", killed_db.display()))
        .await
        .unwrap();
    let stored_before = contents(&partial).await.len();
    partial.close().await;
    assert!(stored_before > 0, "the killed pulls stored something");
    assert!(wait(run(slow)).await.success());
    server.shutdown().await;

    let open = |p: std::path::PathBuf| async move {
        Store::connect(&format!("sqlite://{}", p.display()))
            .await
            .unwrap()
    };
    let (clean, after) = (open(clean_db).await, open(killed_db).await);
    let (want, got) = (contents(&clean).await, contents(&after).await);
    assert!(want.len() > 500, "{}", want.len());
    assert!(want.values().all(|n| *n == 1));
    assert!(got.values().all(|n| *n == 1), "a record stored twice");
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
}
