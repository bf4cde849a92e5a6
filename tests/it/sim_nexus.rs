//! The simulated KMD Nexus over real HTTP on loopback: tokens, the HAL walk from the root to
//! patients, grants and events, the visibility limit and the faults.

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Utc};
use progression_gateway::mapping::Mappings;
use progression_gateway::sim::care::{Fault, Municipality, SimConfig, generate};
use progression_gateway::sim::nexus::{NexusMunicipality, NexusServer, NexusServerConfig, serve};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn cfg() -> SimConfig {
    SimConfig {
        seed: 21,
        citizens: 40,
        start: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        days: 70,
        sor_codes: vec!["123456789012345".into(), "543210987654321".into()],
        time_zone: chrono_tz::Europe::Copenhagen,
    }
}

fn mappings() -> Mappings {
    progression_gateway::mapping::load::load_dir(&Path::new(ROOT).join("mappings"))
        .unwrap_or_else(|e| panic!("mappings: {e:?}"))
}

/// The municipality and its Nexus state, built once for all tests.
fn world() -> &'static (Municipality, Arc<NexusMunicipality>) {
    static WORLD: OnceLock<(Municipality, Arc<NexusMunicipality>)> = OnceLock::new();
    WORLD.get_or_init(|| {
        let cfg = cfg();
        let m = generate(&cfg);
        let sim = NexusMunicipality::build(&m, &cfg, &mappings());
        (m, Arc::new(sim))
    })
}

async fn start() -> NexusServer {
    serve(world().1.clone(), NexusServerConfig::default())
        .await
        .unwrap()
}

async fn token_response(
    client: &reqwest::Client,
    s: &NexusServer,
    form: &[(&str, &str)],
) -> (reqwest::StatusCode, Value) {
    let r = client.post(&s.token_url).form(form).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

async fn token(client: &reqwest::Client, s: &NexusServer) -> String {
    let (status, v) = token_response(
        client,
        s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "progression-gateway"),
            ("client_secret", "sim-secret"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

async fn get_raw(client: &reqwest::Client, url: &str, token: &str) -> reqwest::Response {
    client.get(url).bearer_auth(token).send().await.unwrap()
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = get_raw(client, url, token).await;
    assert_eq!(r.status(), 200, "GET {url}");
    r.json().await.unwrap()
}

fn link(v: &Value, rel: &str) -> String {
    v["_links"][rel]["href"]
        .as_str()
        .unwrap_or_else(|| panic!("no {rel} link in {v}"))
        .to_string()
}

fn with_query(url: &str, q: &str) -> String {
    format!("{url}{}{q}", if url.contains('?') { '&' } else { '?' })
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// Every patient reachable from the root: organisation id -> patient documents.
async fn walk_patients(
    client: &reqwest::Client,
    s: &NexusServer,
    token: &str,
    page_size: usize,
) -> BTreeMap<i64, Vec<Value>> {
    let root = get(client, &s.api_root, token).await;
    let orgs = get(client, &link(&root, "organizations"), token).await;
    let mut out = BTreeMap::new();
    for org in orgs.as_array().unwrap() {
        let list_url = with_query(&link(org, "patients"), &format!("pageSize={page_size}"));
        let list = get(client, &list_url, token).await;
        assert_eq!(list["pageSize"], page_size);
        let mut patients = Vec::new();
        for page in list["pages"].as_array().unwrap() {
            let content = link(page, "content");
            assert!(content.contains("ids="), "{content}");
            let items = get(client, &content, token).await;
            let items = items.as_array().unwrap();
            assert!(items.len() <= page_size);
            for item in items {
                patients.push(get(client, &link(item, "self"), token).await);
            }
        }
        assert_eq!(
            list["totalItems"].as_u64().unwrap() as usize,
            patients.len(),
            "totalItems counts the patients of the pages"
        );
        out.insert(org["id"].as_i64().unwrap(), patients);
    }
    out
}

/// The leaves of a pathway tree of one type, with their depth.
fn leaves<'a>(nodes: &'a Value, ty: &str, depth: usize, out: &mut Vec<(usize, &'a Value)>) {
    for n in nodes.as_array().into_iter().flatten() {
        if n["type"] == ty {
            out.push((depth, n));
        }
        leaves(&n["children"], ty, depth + 1, out);
    }
}

/// A patient's full pathway view (the one whose name ends with `- Alt`) and its calendar link.
async fn views(client: &reqwest::Client, patient: &Value, token: &str) -> (Value, String) {
    let prefs = get(client, &link(patient, "patientPreferences"), token).await;
    let views = prefs["CITIZEN_PATHWAY"].as_array().unwrap();
    let full = views
        .iter()
        .find(|v| v["name"].as_str().unwrap().ends_with("- Alt"))
        .unwrap();
    let decoy = views
        .iter()
        .find(|v| !v["name"].as_str().unwrap().ends_with("- Alt"))
        .unwrap();
    let decoy_tree = get(client, &link(decoy, "pathwayReferences"), token).await;
    let mut found = Vec::new();
    leaves(&decoy_tree, "basketGrantReference", 0, &mut found);
    assert!(found.is_empty(), "the other view holds no grants");
    let tree = get(client, &link(full, "pathwayReferences"), token).await;
    let calendar = link(&prefs["CITIZEN_CALENDAR"][0], "events");
    (tree, calendar)
}

fn whole_period() -> String {
    let c = cfg();
    let from = Utc.from_utc_datetime(&(c.start - Days::new(5)).and_hms_opt(0, 0, 0).unwrap());
    let to = Utc.from_utc_datetime(
        &(c.start + Days::new(u64::from(c.days) + 5))
            .and_hms_opt(0, 0, 0)
            .unwrap(),
    );
    format!("from={}&to={}", instant(from), instant(to))
}

// --- tokens ----------------------------------------------------------------------------------

#[tokio::test]
async fn tokens_refresh_and_bearer_required() {
    let s = start().await;
    let client = reqwest::Client::new();
    let (status, v) = token_response(
        &client,
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "progression-gateway"),
            ("client_secret", "wrong"),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(v["error"], "invalid_client");

    let (status, v) = token_response(
        &client,
        &s,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "progression-gateway"),
            ("client_secret", "sim-secret"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 300);
    assert_eq!(v["refresh_expires_in"], 1800);
    let access = v["access_token"].as_str().unwrap().to_string();
    let refresh = v["refresh_token"].as_str().unwrap().to_string();

    // Without a bearer, with a wrong one, and with a good one.
    let r = client.get(&s.api_root).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        get_raw(&client, &s.api_root, "nonsense").await.status(),
        401
    );
    assert_eq!(get_raw(&client, &s.api_root, &access).await.status(), 200);

    // The access token expires; the refresh token gives a new one.
    s.expire_tokens();
    assert_eq!(get_raw(&client, &s.api_root, &access).await.status(), 401);
    let refresh_form = |rt: &str| {
        vec![
            ("grant_type".to_string(), "refresh_token".to_string()),
            ("refresh_token".to_string(), rt.to_string()),
            ("client_id".to_string(), "progression-gateway".to_string()),
            ("client_secret".to_string(), "sim-secret".to_string()),
        ]
    };
    let r = client
        .post(&s.token_url)
        .form(&refresh_form(&refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let renewed = v["access_token"].as_str().unwrap().to_string();
    assert_ne!(renewed, access);
    assert_eq!(get_raw(&client, &s.api_root, &renewed).await.status(), 200);

    // An unknown or expired refresh token: 400 invalid_grant.
    let r = client
        .post(&s.token_url)
        .form(&refresh_form("made-up"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    s.expire_refresh_tokens();
    let r = client
        .post(&s.token_url)
        .form(&refresh_form(&refresh))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // A refresh with the wrong secret is a client error first.
    let mut wrong = refresh_form(v["refresh_token"].as_str().unwrap());
    wrong[3].1 = "wrong".into();
    let r = client.post(&s.token_url).form(&wrong).send().await.unwrap();
    assert_eq!(r.status(), 401);

    assert_eq!(s.token_requests(), 6);
    assert_eq!(s.api_requests(), 5);
    s.shutdown().await;
}

// --- the walk --------------------------------------------------------------------------------

#[tokio::test]
async fn walk_from_the_root_reaches_every_citizen_once() {
    let (m, sim) = world();
    let s = start().await;
    let client = reqwest::Client::new();
    let t = token(&client, &s).await;

    let by_org = walk_patients(&client, &s, &t, 7).await;
    assert_eq!(
        by_org.keys().copied().collect::<Vec<_>>(),
        sim.organisation_ids()
    );
    let cprs: HashMap<String, &progression_gateway::sim::care::SimCitizen> =
        m.citizens.iter().map(|c| (c.cpr.clone(), c)).collect();
    let mut seen = HashSet::new();
    for (org, patients) in &by_org {
        assert!(patients.len() > 7, "more than one page per organisation");
        for p in patients {
            let cpr = p["patientIdentifier"]["identifier"].as_str().unwrap();
            assert_eq!(p["patientIdentifier"]["type"], "cpr");
            assert_eq!(cpr.len(), 11);
            assert_eq!(&cpr[6..7], "-", "{cpr}");
            let digits = cpr.replace('-', "");
            let citizen = cprs.get(&digits).expect("a simulated citizen");
            assert_eq!(sim.organisation_id(&citizen.sor_code), Some(*org));
            assert_eq!(sim.patient_id(cpr), p["id"].as_i64());
            assert!(seen.insert(digits), "each patient once");
            let state = p["patientState"]["name"].as_str().unwrap();
            assert_eq!(
                state,
                if citizen.died_on.is_some() {
                    "Død"
                } else {
                    "Aktiv"
                }
            );
        }
    }
    assert_eq!(seen.len(), m.citizens.len());
    assert_eq!(sim.patient_count(), m.citizens.len());
    assert!(
        m.citizens.iter().any(|c| c.died_on.is_some()),
        "the seed has a death to check"
    );

    // Page sizes: 50 is the most.
    let root = get(&client, &s.api_root, &t).await;
    let all = link(&root, "patients");
    let r = get_raw(&client, &with_query(&all, "pageSize=51"), &t).await;
    assert_eq!(r.status(), 414);
    let list = get(&client, &with_query(&all, "pageSize=50"), &t).await;
    assert_eq!(list["totalItems"], m.citizens.len());
    assert_eq!(list["pages"].as_array().unwrap().len(), 1);
    let list = get(&client, &all, &t).await;
    assert_eq!(list["pageSize"], 50, "50 by default");
    let r = get_raw(&client, &with_query(&all, "pageSize=0"), &t).await;
    assert_eq!(r.status(), 400);
    s.shutdown().await;
}

#[tokio::test]
async fn grants_carry_elements_consistent_with_their_visits() {
    let (m, sim) = world();
    let s = start().await;
    let client = reqwest::Client::new();
    let t = token(&client, &s).await;
    let by_org = walk_patients(&client, &s, &t, 50).await;
    let sor_of: HashMap<String, &str> = m
        .citizens
        .iter()
        .map(|c| (c.cpr.clone(), c.sor_code.as_str()))
        .collect();

    let mut patterns: BTreeSet<String> = BTreeSet::new();
    let mut nested = 0;
    let mut checked_weekly = 0;
    let mut conditions = 0;
    let mut expected_levels = 0;
    let mut professionals: HashMap<i64, HashMap<i64, usize>> = HashMap::new();
    for p in by_org.values().flatten() {
        let cpr = p["patientIdentifier"]["identifier"]
            .as_str()
            .unwrap()
            .replace('-', "");
        let supplier = sim.supplier_id(sor_of[&cpr]).unwrap();
        let (tree, calendar) = views(&client, p, &t).await;
        assert_eq!(tree[0]["type"], "patientPathway");
        let events = get(&client, &with_query(&calendar, &whole_period()), &t).await;
        let events = events["eventResources"].as_array().unwrap();
        for e in events {
            assert_eq!(e["status"]["name"], "Udført");
            assert_eq!(e["startDate"], e["registeredStartDate"]);
            let pro = e["professional"]["id"].as_i64().unwrap();
            let team = (supplier - 11) * 100 + 500;
            assert!((team..team + 8).contains(&pro), "{pro} of team {team}");
            *professionals
                .entry(p["id"].as_i64().unwrap())
                .or_default()
                .entry(pro)
                .or_default() += 1;
        }
        let mut grant_leaves = Vec::new();
        leaves(&tree, "basketGrantReference", 0, &mut grant_leaves);
        for (depth, leaf) in grant_leaves {
            if depth > 1 {
                nested += 1;
            }
            let g = get(&client, &link(leaf, "referencedObject"), &t).await;
            assert_eq!(g["id"], leaf["grantId"]);
            assert_eq!(g["name"], leaf["name"]);
            assert_eq!(g["workflowState"]["name"], leaf["workflowState"]["name"]);
            assert!(g["futureElements"].as_array().unwrap().is_empty());
            let elements: HashMap<&str, &Value> = g["currentElements"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["type"].as_str().unwrap(), e))
                .collect();
            let section = elements["paragraph"]["section"].as_str().unwrap();
            assert!(
                ["§ 83", "§ 83 a", "§ 138"].contains(&section),
                "every simulated code is named: {g}"
            );
            assert_eq!(elements["supplier"]["supplier"]["id"], supplier);
            let end = &elements["billingEndDate"]["date"];
            let state = g["workflowState"]["name"].as_str().unwrap();
            assert_eq!(end.is_null(), state == "Bevilget", "{g}");
            let id = g["id"].as_i64().unwrap();
            let mine: Vec<&Value> = events
                .iter()
                .filter(|e| {
                    e["grantIds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|x| x.as_i64() == Some(id))
                })
                .collect();
            // The visitated minutes are the mean of the visits' minutes.
            let minutes = elements["visitatedDurationInMinutes"]["number"]
                .as_i64()
                .unwrap();
            if mine.is_empty() {
                assert_eq!(minutes, 15);
            } else {
                let total: i64 = mine
                    .iter()
                    .map(|e| (time(&e["endDate"]) - time(&e["startDate"])).num_minutes())
                    .sum();
                let n = mine.len() as i64;
                assert_eq!(minutes, (2 * total + n) / (2 * n), "{g}");
            }
            let local_days: Vec<NaiveDate> = mine
                .iter()
                .map(|e| {
                    time(&e["startDate"])
                        .with_timezone(&chrono_tz::Europe::Copenhagen)
                        .date_naive()
                })
                .collect();
            let Some(rep) = elements.get("repetition") else {
                assert_eq!(g["name"], "Madservice", "only meals repeat never");
                assert!(mine.is_empty());
                continue;
            };
            let pattern = rep["pattern"].as_str().unwrap();
            let count = rep["count"].as_i64().unwrap();
            match pattern {
                "WEEK" => {
                    let weekdays = rep["next"]["weekdays"].as_i64().unwrap();
                    assert_eq!(rep["next"]["weekenddays"], 0);
                    assert!(
                        local_days
                            .iter()
                            .all(|d| d.weekday().number_from_monday() <= 5),
                        "no weekend visits: {g}"
                    );
                    let mut per_week: BTreeMap<(i32, u32), usize> = BTreeMap::new();
                    for d in &local_days {
                        *per_week
                            .entry((d.iso_week().year(), d.iso_week().week()))
                            .or_default() += 1;
                    }
                    assert!(
                        per_week.values().all(|n| *n as i64 <= weekdays),
                        "at most {weekdays} visits a week: {g}"
                    );
                    if weekdays == 1 {
                        let days: HashSet<u32> = local_days
                            .iter()
                            .map(|d| d.weekday().num_days_from_monday())
                            .collect();
                        assert!(days.len() <= 1, "one fixed weekday: {g}");
                        checked_weekly += usize::from(!local_days.is_empty());
                    }
                    patterns.insert(format!("WEEK/{weekdays}"));
                }
                "DAY" => {
                    let visits = rep["next"]["visits"].as_i64().unwrap();
                    let mut per_day: BTreeMap<NaiveDate, i64> = BTreeMap::new();
                    for d in &local_days {
                        *per_day.entry(*d).or_default() += 1;
                    }
                    assert!(per_day.values().all(|n| *n <= visits), "{g}");
                    if count == 1 && visits == 2 && !per_day.is_empty() {
                        assert!(per_day.values().any(|n| *n == 2), "{g}");
                    }
                    if count > 1 {
                        let days: Vec<&NaiveDate> = per_day.keys().collect();
                        assert!(
                            days.windows(2).all(|w| (*w[1] - *w[0]).num_days() == count),
                            "visited every {count} days: {g}"
                        );
                    }
                    patterns.insert(format!("DAY/{count}/{visits}"));
                }
                other => panic!("pattern {other}"),
            }
        }
        let mut cond_leaves = Vec::new();
        leaves(&tree, "conditionReference", 0, &mut cond_leaves);
        for (_, leaf) in cond_leaves {
            let c = get(&client, &link(leaf, "referencedObject"), &t).await;
            assert_eq!(c["id"], leaf["conditionId"]);
            assert!(c["code"].is_string());
            assert_eq!(
                c["state"]["name"],
                if c["inFocus"] == true {
                    "Aktiv"
                } else {
                    "Inaktiv"
                }
            );
            conditions += 1;
            if let Some(level) = c["expectedLevel"].as_str() {
                assert!(["B1", "B2", "B3", "B4", "B5"].contains(&level), "{level}");
                expected_levels += 1;
            }
        }
    }
    for want in ["WEEK/1", "WEEK/5", "DAY/1/1", "DAY/1/2"] {
        assert!(patterns.contains(want), "{want} among {patterns:?}");
    }
    assert!(
        patterns
            .iter()
            .any(|p| p.starts_with("DAY/2") || p.starts_with("DAY/3")),
        "every second or third day among {patterns:?}"
    );
    assert!(nested > 0, "some grants sit one level deeper");
    assert!(checked_weekly > 0);
    assert!(conditions > 0 && expected_levels > 0);
    assert!(
        professionals.values().any(|s| s.len() > 1),
        "now and then another carer"
    );
    for counts in professionals.values() {
        let total: usize = counts.values().sum();
        let main = counts.values().max().unwrap();
        assert!(*main * 3 >= total * 2, "mostly the main carer: {counts:?}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn events_are_filtered_to_the_window() {
    let s = start().await;
    let client = reqwest::Client::new();
    let t = token(&client, &s).await;
    // The patient with the most visits among the first ten.
    let mut best: Option<(String, Vec<Value>)> = None;
    for id in 1..=10 {
        let p = get(&client, &format!("{}patients/{id}", s.api_root), &t).await;
        let (_, calendar) = views(&client, &p, &t).await;
        let all = get(&client, &with_query(&calendar, &whole_period()), &t).await;
        let all = all["eventResources"].as_array().unwrap().clone();
        if best.as_ref().is_none_or(|b| b.1.len() < all.len()) {
            best = Some((calendar, all));
        }
    }
    let (calendar, all) = best.unwrap();
    assert!(all.len() > 10, "a patient with visits: {}", all.len());
    let starts: Vec<DateTime<Utc>> = all.iter().map(|e| time(&e["startDate"])).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "sorted by start");

    // [from, to): an event starting exactly at `from` is in, one at `to` is out.
    let from = starts[3];
    let to = starts[starts.len() - 3];
    let q = format!("from={}&to={}", instant(from), instant(to));
    let window = get(&client, &with_query(&calendar, &q), &t).await;
    let window = window["eventResources"].as_array().unwrap();
    let expected = starts.iter().filter(|s| **s >= from && **s < to).count();
    assert_eq!(window.len(), expected);
    assert!(window.iter().any(|e| time(&e["startDate"]) == from));
    assert!(window.iter().all(|e| time(&e["startDate"]) != to));
    assert!(expected < all.len());

    // An offset instant (with its '+' encoded) means the same.
    let local = from
        .with_timezone(&chrono_tz::Europe::Copenhagen)
        .to_rfc3339();
    let url = reqwest::Url::parse_with_params(
        &calendar,
        &[("from", local.as_str()), ("to", instant(to).as_str())],
    )
    .unwrap();
    let same = get(&client, url.as_str(), &t).await;
    assert_eq!(same["eventResources"].as_array().unwrap().len(), expected);

    for q in [
        format!("from={}", instant(from)),
        format!("to={}", instant(to)),
        format!("from=yesterday&to={}", instant(to)),
    ] {
        let r = get_raw(&client, &with_query(&calendar, &q), &t).await;
        assert_eq!(r.status(), 400, "{q}");
    }
    let r = get_raw(&client, &calendar, &t).await;
    assert_eq!(r.status(), 400, "from and to are required");
    s.shutdown().await;
}

#[tokio::test]
async fn the_visibility_limit_hides_later_things() {
    let (m, sim) = world();
    let s = start().await;
    let client = reqwest::Client::new();
    let t = token(&client, &s).await;
    let c = cfg();

    // Noon (UTC) of day 30: the reports of day 30 come in the evening.
    let limit = Utc.from_utc_datetime(&(c.start + Days::new(30)).and_hms_opt(12, 0, 0).unwrap());
    let mut first_report: HashMap<usize, DateTime<Utc>> = HashMap::new();
    for b in &m.bundles {
        first_report.entry(b.citizen).or_insert(b.last_updated);
    }
    let known = first_report.values().filter(|t| **t <= limit).count();
    assert!(known > 0 && known < m.citizens.len(), "{known}");

    // Everything first: grants, their states and events per patient.
    let everything = walk_patients(&client, &s, &t, 50).await;
    let mut before: HashMap<i64, (Value, usize)> = HashMap::new();
    for p in everything.values().flatten() {
        let (tree, calendar) = views(&client, p, &t).await;
        let events = get(&client, &with_query(&calendar, &whole_period()), &t).await;
        before.insert(
            p["id"].as_i64().unwrap(),
            (tree, events["eventResources"].as_array().unwrap().len()),
        );
    }

    s.set_visible_until(limit);
    assert_eq!(s.visible_until(), Some(limit));
    let limited = walk_patients(&client, &s, &t, 50).await;
    let total: usize = limited.values().map(Vec::len).sum();
    assert_eq!(total, known);
    let mut fewer_events = 0;
    let mut still_open = 0;
    for p in limited.values().flatten() {
        let id = p["id"].as_i64().unwrap();
        let cpr = p["patientIdentifier"]["identifier"]
            .as_str()
            .unwrap()
            .replace('-', "");
        let citizen = m.citizens.iter().find(|c| c.cpr == cpr).unwrap();
        if citizen.died_on.is_some_and(|d| d > limit.date_naive()) {
            assert_eq!(p["patientState"]["name"], "Aktiv", "dies after the limit");
        }
        let (tree, calendar) = views(&client, p, &t).await;
        let events = get(&client, &with_query(&calendar, &whole_period()), &t).await;
        let events = events["eventResources"].as_array().unwrap();
        assert!(events.iter().all(|e| time(&e["startDate"]) <= limit));
        if events.len() < before[&id].1 {
            fewer_events += 1;
        }
        let mut now = Vec::new();
        leaves(&tree, "basketGrantReference", 0, &mut now);
        let mut then = Vec::new();
        leaves(&before[&id].0, "basketGrantReference", 0, &mut then);
        assert!(now.len() <= then.len());
        for (_, leaf) in &then {
            let later = now.iter().all(|(_, n)| n["grantId"] != leaf["grantId"]);
            let g = get_raw(&client, &link(leaf, "referencedObject"), &t).await;
            if later {
                assert_eq!(g.status(), 404, "a grant not yet reported is absent");
                continue;
            }
            let g: Value = g.json().await.unwrap();
            if leaf["workflowState"]["name"] == "Afsluttet"
                && g["workflowState"]["name"] == "Bevilget"
            {
                still_open += 1;
                let end = g["currentElements"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["type"] == "billingEndDate")
                    .unwrap();
                assert!(end["date"].is_null());
            }
        }
    }
    assert!(fewer_events > 0, "later visits are hidden");
    assert!(
        still_open > 0,
        "grants ended later are still open at the limit"
    );

    // Patients not yet reported are absent by link too.
    let hidden = (0..m.citizens.len())
        .find(|i| first_report[i] > limit)
        .unwrap();
    let r = get_raw(
        &client,
        &format!("{}patients/{}", s.api_root, hidden + 1),
        &t,
    )
    .await;
    assert_eq!(r.status(), 404);

    s.show_everything();
    let again = walk_patients(&client, &s, &t, 50).await;
    assert_eq!(
        again.values().map(Vec::len).sum::<usize>(),
        sim.patient_count()
    );
    s.shutdown().await;
}

// --- faults ----------------------------------------------------------------------------------

#[tokio::test]
async fn each_fault_is_answered_as_specified() {
    let s = start().await;
    let client = reqwest::Client::new();
    let t = token(&client, &s).await;
    let orgs_url = format!("{}organizations", s.api_root);
    let normal = get_raw(&client, &orgs_url, &t).await.bytes().await.unwrap();

    s.faults.fail_next(1, Fault::ServerError);
    assert_eq!(s.faults.pending(), 1);
    // The token endpoint takes no fault.
    let t = token(&client, &s).await;
    assert_eq!(s.faults.pending(), 1);
    assert_eq!(get_raw(&client, &orgs_url, &t).await.status(), 500);

    s.faults.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
    );
    s.faults.fail_next(
        1,
        Fault::Unavailable {
            retry_after_secs: 11,
        },
    );
    let r = get_raw(&client, &orgs_url, &t).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");
    let r = get_raw(&client, &orgs_url, &t).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "11");

    s.faults
        .fail_next(1, Fault::Slow(Duration::from_millis(300)));
    let began = Instant::now();
    let r = get_raw(&client, &orgs_url, &t).await;
    assert_eq!(r.status(), 200);
    assert!(began.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.bytes().await.unwrap(), normal);

    s.faults.fail_next(1, Fault::TruncatedPage);
    let r = get_raw(&client, &orgs_url, &t).await;
    assert_eq!(r.status(), 200);
    let cut = r.bytes().await.unwrap();
    assert_eq!(cut.len(), normal.len() / 2);
    assert_eq!(&cut[..], &normal[..cut.len()]);
    assert!(serde_json::from_slice::<Value>(&cut).is_err());

    s.faults.fail_next(1, Fault::ExpiredToken);
    assert_eq!(get_raw(&client, &orgs_url, &t).await.status(), 401);
    assert_eq!(s.faults.pending(), 0);
    assert_eq!(get_raw(&client, &orgs_url, &t).await.status(), 200);

    s.faults.fail_next(3, Fault::ServerError);
    s.faults.clear();
    assert_eq!(s.faults.pending(), 0);
    assert_eq!(get_raw(&client, &orgs_url, &t).await.status(), 200);
    assert_eq!(s.api_requests(), 9);
    assert_eq!(s.faults.requests(), 9);
    assert_eq!(s.token_requests(), 2);
    s.shutdown().await;
}
