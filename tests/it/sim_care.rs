//! The simulated care system: generated delivery reports, the FHIR XML mapping against the real
//! KL Gateway examples, and the FHIR server over real HTTP on loopback.

use chrono::{DateTime, NaiveDate, Utc};
use progression_gateway::sim::care::{
    Fault, Municipality, ServerConfig, SimConfig, SimServer, generate, json_to_fhir_xml, serve,
    to_fhir_json, write_files,
};
use progression_gateway::sources::Format;
use quick_xml::XmlVersion;
use quick_xml::events::Event;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn cfg(seed: u64, citizens: usize, days: u32) -> SimConfig {
    SimConfig {
        seed,
        citizens,
        start: NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
        days,
        sor_codes: vec!["123456789012345".into(), "543210987654321".into()],
        time_zone: chrono_tz::Europe::Copenhagen,
    }
}

fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn resources(bundle: &Value) -> impl Iterator<Item = &Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| &e["resource"])
}

fn of_type<'a>(bundle: &'a Value, ty: &'a str) -> impl Iterator<Item = &'a Value> {
    resources(bundle).filter(move |r| r["resourceType"] == ty)
}

fn collect_references<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("reference") {
                out.push(r);
            }
            m.values().for_each(|c| collect_references(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| collect_references(c, out)),
        _ => {}
    }
}

fn codings(v: &Value) -> Vec<&str> {
    v["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["code"].as_str())
        .collect()
}

fn csv_column(path: &Path, columns: &[usize]) -> HashSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = HashSet::new();
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        for &c in columns {
            if let Some(cell) = cells.get(c).filter(|s| !s.is_empty()) {
                out.insert(cell.to_string());
            }
        }
    }
    out
}

// --- generation ------------------------------------------------------------------------------

#[test]
fn same_seed_gives_identical_output_and_another_seed_differs() {
    let a = generate(&cfg(11, 40, 60));
    let b = generate(&cfg(11, 40, 60));
    assert_eq!(a, b);
    let bytes =
        |m: &Municipality| -> Vec<u8> { m.bundles.iter().flat_map(|b| b.to_json()).collect() };
    assert_eq!(bytes(&a), bytes(&b));
    let c = generate(&cfg(12, 40, 60));
    assert_ne!(a.citizens, c.citizens);
    assert_ne!(bytes(&a), bytes(&c));
}

#[test]
fn every_bundle_has_the_delivery_report_shape() {
    let m = generate(&cfg(3, 120, 90));
    assert_eq!(m.citizens.len(), 120);
    assert!(m.bundles.len() > 1000, "{} bundles", m.bundles.len());
    let mut cprs = HashSet::new();
    for c in &m.citizens {
        assert_eq!(c.cpr.len(), 10);
        assert!(c.cpr.bytes().all(|b| b.is_ascii_digit()));
        let (d, mo, y) = (&c.cpr[0..2], &c.cpr[2..4], &c.cpr[4..6]);
        let year = 1900 + y.parse::<i32>().unwrap();
        assert!(NaiveDate::from_ymd_opt(year, mo.parse().unwrap(), d.parse().unwrap()).is_some());
        assert!(cprs.insert(c.cpr.clone()), "CPR numbers are unique");
    }
    let teams: HashSet<&str> = m.citizens.iter().map(|c| c.sor_code.as_str()).collect();
    assert_eq!(teams.len(), 2, "citizens are spread over the SOR codes");

    let mut previous: Option<(DateTime<Utc>, &str)> = None;
    let mut ids = HashSet::new();
    for b in &m.bundles {
        let key = (b.last_updated, b.id.as_str());
        assert!(
            previous.is_none_or(|p| p < key),
            "sorted by (last_updated, id)"
        );
        previous = Some(key);
        assert!(ids.insert(b.id.clone()), "bundle ids are unique");
        let r = &b.resource();
        assert_eq!(r["resourceType"], "Bundle");
        assert_eq!(r["type"], "collection");
        assert_eq!(r["id"], b.id.as_str());
        assert_eq!(r["timestamp"], instant(b.last_updated).as_str());
        assert_eq!(r["meta"]["lastUpdated"], instant(b.last_updated).as_str());
        assert_eq!(
            r["meta"]["profile"][0],
            "http://fhir.kl.dk/gateway/StructureDefinition/klgateway-care-delivery-report"
        );
        let patients: Vec<&Value> = of_type(r, "Patient").collect();
        assert_eq!(patients.len(), 1, "one Patient per bundle");
        let p = patients[0];
        let citizen = &m.citizens[b.citizen];
        assert_eq!(p["id"], citizen.patient_id.as_str());
        assert_eq!(p["identifier"][0]["system"], "urn:oid:1.2.208.176.1.2");
        assert_eq!(p["identifier"][0]["value"], citizen.cpr.as_str());
        let org = &p["managingOrganization"]["identifier"];
        assert_eq!(org["system"], "urn:oid:1.2.208.176.1.1");
        assert_eq!(org["value"], citizen.sor_code.as_str());

        let present: HashSet<String> = resources(r)
            .map(|x| {
                format!(
                    "{}/{}",
                    x["resourceType"].as_str().unwrap(),
                    x["id"].as_str().unwrap()
                )
            })
            .collect();
        for e in r["entry"].as_array().unwrap() {
            let res = &e["resource"];
            let local = format!(
                "{}/{}",
                res["resourceType"].as_str().unwrap(),
                res["id"].as_str().unwrap()
            );
            assert!(e["fullUrl"].as_str().unwrap().ends_with(&local));
            assert!(
                res["meta"]["profile"][0]
                    .as_str()
                    .unwrap()
                    .starts_with("http://fhir.kl.dk/gateway/StructureDefinition/klgateway-care-")
            );
            let lu = res["meta"]["lastUpdated"].as_str().unwrap();
            assert!(
                lu <= instant(b.last_updated).as_str(),
                "a resource is not newer than its report"
            );
        }
        let mut refs = Vec::new();
        collect_references(r, &mut refs);
        for reference in refs {
            assert!(
                present.contains(reference),
                "{reference} resolves in bundle {}",
                b.id
            );
        }
    }
}

#[test]
fn codes_exist_in_the_mappings_and_the_fsiii_list() {
    let interventions = csv_column(&Path::new(ROOT).join("mappings/interventions.csv"), &[0, 1]);
    let levels = csv_column(
        &Path::new(ROOT).join("mappings/functional_levels.csv"),
        &[0],
    );
    let fsiii = csv_column(
        &Path::new(ROOT).join("../shared/testdata/fsiii_codes.csv"),
        &[0, 1],
    );
    let m = generate(&cfg(5, 150, 120));
    let (mut uuid_form, mut legacy_form) = (0, 0);
    for b in &m.bundles {
        for cp in of_type(&b.resource(), "CarePlan") {
            for code in codings(&cp["activity"][0]["detail"]["code"]) {
                assert!(interventions.contains(code), "intervention {code}");
                if code.len() == 36 {
                    uuid_form += 1;
                } else {
                    legacy_form += 1;
                }
            }
        }
        for c in of_type(&b.resource(), "Condition") {
            for code in codings(&c["code"]) {
                assert!(fsiii.contains(code), "condition {code}");
            }
            for code in codings(&c["severity"]) {
                assert!(levels.contains(code), "level {code}");
            }
        }
        for g in of_type(&b.resource(), "Goal") {
            for code in codings(&g["target"][0]["detailCodeableConcept"]) {
                assert!(levels.contains(code), "goal level {code}");
            }
            for code in codings(&g["description"]) {
                assert!(fsiii.contains(code), "goal type {code}");
            }
        }
        for e in of_type(&b.resource(), "Encounter") {
            assert_eq!(
                codings(&e["type"][0]),
                ["784275f1-6822-4a88-b361-d958007d5253"]
            );
        }
    }
    assert!(
        uuid_form > 0 && legacy_form > 0,
        "{uuid_form} UUID, {legacy_form} legacy"
    );
    assert!(
        uuid_form > 10 * legacy_form,
        "legacy codes are the exception"
    );
}

#[test]
fn the_dead_get_no_visits_and_their_grants_end() {
    let m = generate(&cfg(8, 200, 120));
    let tz = chrono_tz::Europe::Copenhagen;
    let dead: Vec<usize> = (0..m.citizens.len())
        .filter(|&i| m.citizens[i].died_on.is_some())
        .collect();
    assert!(dead.len() >= 3, "{} deaths", dead.len());
    for &i in &dead {
        let died_on = m.citizens[i].died_on.unwrap();
        let mine: Vec<Value> = m
            .bundles
            .iter()
            .filter(|b| b.citizen == i)
            .map(|b| b.resource())
            .collect();
        let mut seen_death = false;
        for b in &mine {
            let p = of_type(b, "Patient").next().unwrap();
            let deceased = p["deceasedBoolean"].as_bool().unwrap();
            let day: NaiveDate = b["timestamp"].as_str().unwrap()[..10].parse().unwrap();
            assert_eq!(deceased, day >= died_on, "deceased from the day of death");
            seen_death |= deceased;
            for e in of_type(b, "Encounter") {
                let start: DateTime<Utc> = e["period"]["start"].as_str().unwrap().parse().unwrap();
                assert!(start.with_timezone(&tz).date_naive() <= died_on);
            }
            if deceased {
                for cp in of_type(b, "CarePlan") {
                    assert_eq!(cp["status"], "completed");
                    let end: NaiveDate = cp["period"]["end"].as_str().unwrap().parse().unwrap();
                    assert!(end <= died_on);
                }
            }
        }
        assert!(seen_death, "the death is reported");
    }
    // And every grant that was active ends: the last version of each CarePlan of the dead.
    for &i in &dead {
        let mut last: HashMap<String, Value> = HashMap::new();
        for b in m.bundles.iter().filter(|b| b.citizen == i) {
            for cp in of_type(&b.resource(), "CarePlan") {
                last.insert(cp["id"].as_str().unwrap().to_string(), cp.clone());
            }
        }
        for cp in last.values() {
            assert_eq!(cp["status"], "completed", "every grant of the dead ends");
        }
    }
}

#[test]
fn the_courses_are_there() {
    let m = generate(&cfg(21, 300, 120));
    let rehab: HashSet<&str> = [
        "754c06a7-d6f1-4f8d-ad3e-a5c109efaca6",
        "17e261ba-e33b-467a-af08-094dc38b4190",
        "0b654911-f2b6-47d3-948b-3e9fb315b4c9",
        "2912752c-2e9e-4702-8787-b45f73ff5b05",
        "b3c16115-d0d9-4229-a526-df366d44f948",
        "6b3c5af0-22ac-40eb-bc50-c7734da2bf6d",
        "a6199582-15a7-4c3d-bbdf-21f5059031c6",
    ]
    .into();
    let mut ended_rehab = 0;
    let mut goals = BTreeMap::<String, usize>::new();
    let mut classes = BTreeMap::<String, usize>::new();
    let mut wound_care = 0;
    let mut meals = 0;
    // Condition id -> the distinct (lastUpdated, severity) versions seen.
    let mut versions: HashMap<String, HashSet<(String, String)>> = HashMap::new();
    let mut minutes = Vec::new();
    for b in &m.bundles {
        let r = b.resource();
        for cp in of_type(&r, "CarePlan") {
            let code = cp["activity"][0]["detail"]["code"]["coding"][0]["code"]
                .as_str()
                .unwrap();
            if rehab.contains(code) && cp["status"] == "completed" {
                ended_rehab += 1;
            }
            if code == "76878386-b3d2-4320-828a-a700e8a66234" {
                wound_care += 1;
            }
            if code == "9aad7654-b9f9-40a3-84d9-2ae1dec4228a" {
                meals += 1;
            }
        }
        for g in of_type(&r, "Goal") {
            *goals
                .entry(g["lifecycleStatus"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        for e in of_type(&r, "Encounter") {
            *classes
                .entry(e["class"]["code"].as_str().unwrap().to_string())
                .or_default() += 1;
            let s: DateTime<Utc> = e["period"]["start"].as_str().unwrap().parse().unwrap();
            let t: DateTime<Utc> = e["period"]["end"].as_str().unwrap().parse().unwrap();
            minutes.push((t - s).num_minutes());
            assert_eq!(
                e["extension"][0]["url"],
                "http://fhir.kl.dk/gateway/StructureDefinition/BasedOnInterventionExtension"
            );
        }
        for c in of_type(&r, "Condition") {
            let sev = c["severity"]["coding"][0]["code"]
                .as_str()
                .unwrap_or("-")
                .to_string();
            let lu = c["meta"]["lastUpdated"].as_str().unwrap().to_string();
            versions
                .entry(c["id"].as_str().unwrap().to_string())
                .or_default()
                .insert((lu, sev));
        }
    }
    assert!(
        ended_rehab > 10,
        "{ended_rehab} ended rehabilitation grants"
    );
    assert!(
        goals.get("completed").copied().unwrap_or(0) > 5,
        "{goals:?}"
    );
    assert!(
        goals.get("cancelled").copied().unwrap_or(0) > 5,
        "{goals:?}"
    );
    assert!(
        classes["HH"] > 10 * classes["AMB"] && classes["AMB"] > 10,
        "{classes:?}"
    );
    assert!(wound_care > 0 && meals > 0);
    assert!(minutes.iter().all(|m| (10..=45).contains(m)));
    let reassessed = versions
        .values()
        .filter(|v| v.iter().map(|(_, s)| s).collect::<HashSet<_>>().len() > 1)
        .count();
    assert!(
        reassessed > 20,
        "{reassessed} conditions re-assessed to another level"
    );
}

#[test]
fn a_demo_sized_municipality_reports_every_citizen_in_order() {
    // Generation speed is measured by `benches/simulate.sh`, not asserted here.
    let m = generate(&cfg(1, 300, 120));
    assert_eq!(m.citizens.len(), 300);
    let mut reported = vec![false; 300];
    for b in &m.bundles {
        reported[b.citizen] = true;
    }
    assert!(reported.iter().all(|&r| r), "a citizen without any report");
    assert!(m.bundles.len() > 300 * 10, "{} bundles", m.bundles.len());
    assert!(
        m.bundles
            .windows(2)
            .all(|w| (w[0].last_updated, &w[0].id) <= (w[1].last_updated, &w[1].id))
    );
}

#[test]
fn files_are_written_in_either_format() {
    let m = generate(&cfg(2, 5, 10));
    let dir = tempfile::tempdir().unwrap();
    let n = write_files(&m, &dir.path().join("json"), Format::Json).unwrap();
    assert_eq!(n, m.bundles.len());
    write_files(&m, &dir.path().join("xml"), Format::Xml).unwrap();
    let b = &m.bundles[0];
    let json = std::fs::read(dir.path().join(format!("json/{}.json", b.id))).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&json).unwrap(),
        b.resource()
    );
    let xml = std::fs::read(dir.path().join(format!("xml/{}.xml", b.id))).unwrap();
    assert_eq!(parse_xml(&xml), parse_xml(&json_to_fhir_xml(&b.resource())));
    assert!(b.to_json_pretty().len() > json.len());
}

// --- XML ---------------------------------------------------------------------------------------

#[derive(Debug, PartialEq)]
struct Node {
    name: String,
    attrs: Vec<(String, String)>,
    text: String,
    children: Vec<Node>,
}

/// An XML tree: names, attributes (sorted), trimmed text, children in order; whitespace,
/// the declaration and comments ignored.
fn parse_xml(bytes: &[u8]) -> Node {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut stack = vec![Node {
        name: "#document".into(),
        attrs: vec![],
        text: String::new(),
        children: vec![],
    }];
    let node = |e: &quick_xml::events::BytesStart<'_>| {
        let mut attrs: Vec<(String, String)> = e
            .attributes()
            .map(|a| {
                let a = a.unwrap();
                let v = a
                    .normalized_value(XmlVersion::Explicit1_0)
                    .unwrap()
                    .into_owned();
                (a.key.0.to_string(), v)
            })
            .collect();
        attrs.sort();
        Node {
            name: e.name().0.to_string(),
            attrs,
            text: String::new(),
            children: vec![],
        }
    };
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => stack.push(node(&e)),
            Event::Empty(e) => {
                let n = node(&e);
                stack.last_mut().unwrap().children.push(n);
            }
            Event::End(_) => {
                let n = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(n);
            }
            Event::Text(t) => stack
                .last_mut()
                .unwrap()
                .text
                .push_str(t.into_inner().trim()),
            Event::GeneralRef(r) => {
                let name = r.into_inner();
                stack
                    .last_mut()
                    .unwrap()
                    .text
                    .push_str(&format!("&{name};"));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(stack.len(), 1, "balanced");
    let mut doc = stack.pop().unwrap();
    assert_eq!(doc.children.len(), 1, "one root element");
    doc.children.pop().unwrap()
}

fn first_difference(a: &Node, b: &Node, path: &str) -> Option<String> {
    let here = format!("{path}/{}", a.name);
    if a.name != b.name || a.attrs != b.attrs || a.text != b.text {
        return Some(format!(
            "{here}: {:?} {:?} {:?} != {:?} {:?} {:?}",
            a.name, a.attrs, a.text, b.name, b.attrs, b.text
        ));
    }
    for (i, (x, y)) in a.children.iter().zip(&b.children).enumerate() {
        if let Some(d) = first_difference(x, y, &format!("{here}[{i}]")) {
            return Some(d);
        }
    }
    if a.children.len() != b.children.len() {
        return Some(format!(
            "{here}: {} children != {}",
            a.children.len(),
            b.children.len()
        ));
    }
    None
}

fn testdata() -> PathBuf {
    Path::new(ROOT).join("../shared/testdata/klgateway")
}

#[test]
fn xml_conversion_equals_the_real_xml_twins() {
    let mut compared = Vec::new();
    for sub in ["", "legacy"] {
        let dir = testdata().join(sub);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for json_path in paths {
            let xml_path = json_path.with_extension("xml");
            if !xml_path.exists() {
                continue;
            }
            let value: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
            let ours = parse_xml(&json_to_fhir_xml(&value));
            let theirs = parse_xml(&std::fs::read(&xml_path).unwrap());
            if let Some(d) = first_difference(&ours, &theirs, "") {
                panic!("{}: {d}", json_path.display());
            }
            compared.push(
                json_path
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    assert!(compared.len() >= 3, "{compared:?}");
    assert!(
        compared
            .iter()
            .any(|c| c == "DeliveryReport-JensHansen-new-1.json")
    );
}

#[test]
fn fhir_json_keeps_the_element_order_of_the_examples() {
    // Our JSON writer orders keys as FHIR does, so a real example survives a round trip unchanged.
    let path = testdata().join("DeliveryReport-JensHansen-new-1.json");
    let original: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let written = to_fhir_json(&original, true);
    let keys = |bytes: &[u8]| -> Vec<String> {
        let s = std::str::from_utf8(bytes).unwrap();
        s.lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix('"')
                    .and_then(|r| r.split_once("\":"))
                    .map(|(k, _)| k.to_string())
            })
            .collect()
    };
    assert_eq!(keys(&written), keys(&std::fs::read(&path).unwrap()));
    assert_eq!(serde_json::from_slice::<Value>(&written).unwrap(), original);
}

#[test]
fn generated_bundles_convert_to_xml() {
    let m = generate(&cfg(4, 20, 30));
    for b in m.bundles.iter().take(200) {
        let xml = b.to_xml();
        assert!(xml.starts_with(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
        let tree = parse_xml(&xml);
        assert_eq!(tree.name, "Bundle");
        assert_eq!(
            tree.attrs,
            [("xmlns".to_string(), "http://hl7.org/fhir".to_string())]
        );
        let entries = tree.children.iter().filter(|c| c.name == "entry").count();
        assert_eq!(entries, b.resource()["entry"].as_array().unwrap().len());
    }
}

// --- the server ------------------------------------------------------------------------------

fn server_cfg() -> ServerConfig {
    ServerConfig {
        client_id: "gateway".into(),
        client_secret: "s3cret".into(),
        page_size: 25,
        token_ttl: Duration::from_secs(60),
    }
}

async fn start(m: &Arc<Municipality>) -> SimServer {
    serve(m.clone(), server_cfg()).await.unwrap()
}

async fn get_token(client: &reqwest::Client, s: &SimServer) -> String {
    let r = client
        .post(&s.token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "gateway"),
            ("client_secret", "s3cret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

/// Follows `next` links from `first`; returns the entry Bundles and the totals of every page.
async fn pull_all(
    client: &reqwest::Client,
    token: &str,
    first: reqwest::RequestBuilder,
) -> (Vec<Value>, Vec<u64>, usize) {
    let mut out = Vec::new();
    let mut totals = Vec::new();
    let mut pages = 0;
    let mut resp = first.bearer_auth(token).send().await.unwrap();
    loop {
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        pages += 1;
        assert_eq!(page["type"], "searchset");
        totals.push(page["total"].as_u64().unwrap());
        for e in page["entry"].as_array().into_iter().flatten() {
            assert_eq!(e["search"]["mode"], "match");
            out.push(e["resource"].clone());
        }
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
        match next {
            Some(url) => resp = client.get(url).bearer_auth(token).send().await.unwrap(),
            None => break,
        }
    }
    (out, totals, pages)
}

fn search(
    client: &reqwest::Client,
    s: &SimServer,
    params: &[(&str, String)],
) -> reqwest::RequestBuilder {
    client.get(format!("{}/Bundle", s.base_url)).query(params)
}

#[tokio::test]
async fn token_flow_and_bearer_required() {
    let m = Arc::new(generate(&cfg(1, 5, 10)));
    let s = start(&m).await;
    let client = reqwest::Client::new();

    let bad = client
        .post(&s.token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "gateway"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );

    let token = get_token(&client, &s).await;
    let basic = client
        .post(&s.token_url)
        .basic_auth("gateway", Some("s3cret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let v: Value = basic.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 60);
    assert_ne!(v["access_token"].as_str().unwrap(), token);
    assert_eq!(s.token_requests(), 3);

    let none = search(&client, &s, &[]).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let challenge = none.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let forged = search(&client, &s, &[])
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let ok = search(&client, &s, &[])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json")
    );
    assert_eq!(s.search_requests(), 3);

    // Tokens expire.
    s.expire_tokens();
    let expired = search(&client, &s, &[])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(expired.status(), 401);
    assert!(
        expired.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let fresh = get_token(&client, &s).await;
    let ok = search(&client, &s, &[])
        .bearer_auth(&fresh)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let short = serve(
        m.clone(),
        ServerConfig {
            token_ttl: Duration::from_millis(200),
            ..server_cfg()
        },
    )
    .await
    .unwrap();
    let t = get_token(&client, &short).await;
    assert_eq!(
        search(&client, &short, &[])
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        search(&client, &short, &[])
            .bearer_auth(&t)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    short.shutdown().await;
    s.shutdown().await;
}

#[tokio::test]
async fn paging_by_7_yields_every_bundle_once_in_order_across_ties() {
    let m = Arc::new(generate(&cfg(9, 40, 30)));
    let s = start(&m).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &s).await;
    let (got, totals, pages) = pull_all(
        &client,
        &token,
        search(&client, &s, &[("_count", "7".into())]),
    )
    .await;
    let expected: Vec<&str> = m.bundles.iter().map(|b| b.id.as_str()).collect();
    let ids: Vec<&str> = got.iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids, expected,
        "every bundle once, in (lastUpdated, id) order"
    );
    assert_eq!(pages, expected.len().div_ceil(7));
    assert!(totals.iter().all(|t| *t == expected.len() as u64));
    // The entries keep their own meta.lastUpdated.
    for (b, got) in m.bundles.iter().zip(&got) {
        assert_eq!(got["meta"]["lastUpdated"], instant(b.last_updated).as_str());
        assert_eq!(got, &b.resource());
    }
    // Ties in lastUpdated do span page boundaries in this data.
    let boundary_ties = (1..pages)
        .filter(|p| m.bundles[p * 7 - 1].last_updated == m.bundles[p * 7].last_updated)
        .count();
    assert!(boundary_ties > 0, "the test covers ties across pages");
    s.shutdown().await;
}

#[tokio::test]
async fn last_updated_filters_and_visibility_snapshots() {
    let m = Arc::new(generate(&cfg(10, 30, 40)));
    let s = start(&m).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &s).await;
    let mid = m.bundles[m.bundles.len() / 2].last_updated;
    let ge = format!("ge{}", mid.to_rfc3339());
    let (got, _, _) = pull_all(
        &client,
        &token,
        search(
            &client,
            &s,
            &[("_lastUpdated", ge), ("_count", "50".into())],
        ),
    )
    .await;
    let expected: Vec<&str> = m
        .bundles
        .iter()
        .filter(|b| b.last_updated >= mid)
        .map(|b| b.id.as_str())
        .collect();
    assert_eq!(
        got.iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        expected
    );
    let gt = format!("gt{}", instant(mid));
    let (got, _, _) = pull_all(
        &client,
        &token,
        search(
            &client,
            &s,
            &[("_lastUpdated", gt), ("_count", "50".into())],
        ),
    )
    .await;
    let expected: Vec<&str> = m
        .bundles
        .iter()
        .filter(|b| b.last_updated > mid)
        .map(|b| b.id.as_str())
        .collect();
    assert_eq!(
        got.iter()
            .map(|b| b["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        expected
    );

    // Pull in increments as the care system reports: ge the last lastUpdated seen, deduplicated.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<DateTime<Utc>> = None;
    let steps = [
        m.bundles[m.bundles.len() / 3].last_updated,
        mid,
        m.bundles.last().unwrap().last_updated,
    ];
    for until in steps {
        s.set_visible_until(until);
        let mut params = vec![("_count", "9".to_string())];
        if let Some(c) = cursor {
            params.push(("_lastUpdated", format!("ge{}", instant(c))));
        }
        let (got, _, _) = pull_all(&client, &token, search(&client, &s, &params)).await;
        for b in &got {
            let lu: DateTime<Utc> = b["meta"]["lastUpdated"].as_str().unwrap().parse().unwrap();
            assert!(lu <= until, "nothing reported after the visibility limit");
            let id = b["id"].as_str().unwrap().to_string();
            if !seen.contains(&id) {
                seen.push(id);
            }
            cursor = Some(cursor.map_or(lu, |c| c.max(lu)));
        }
    }
    let all: Vec<String> = m.bundles.iter().map(|b| b.id.clone()).collect();
    assert_eq!(seen, all);

    // A paging in progress keeps its snapshot when more becomes visible.
    s.set_visible_until(mid);
    let first: Value = search(&client, &s, &[("_count", "5".into())])
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let total = first["total"].as_u64().unwrap();
    s.show_everything();
    let next = first["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == "next")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let (rest, totals, _) = pull_all(&client, &token, client.get(next)).await;
    assert!(totals.iter().all(|t| *t == total));
    assert_eq!(5 + rest.len() as u64, total);
    s.shutdown().await;
}

#[tokio::test]
async fn xml_is_answered_for_format_or_accept() {
    let m = Arc::new(generate(&cfg(6, 10, 10)));
    let s = start(&m).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &s).await;
    for request in [
        search(
            &client,
            &s,
            &[("_format", "xml".into()), ("_count", "3".into())],
        ),
        search(&client, &s, &[("_count", "3".into())]).header("Accept", "application/fhir+xml"),
    ] {
        let r = request.bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/fhir+xml")
        );
        let body = r.bytes().await.unwrap();
        let tree = parse_xml(&body);
        assert_eq!(tree.name, "Bundle");
        let entries: Vec<&Node> = tree.children.iter().filter(|c| c.name == "entry").collect();
        assert_eq!(entries.len(), 3);
        // entry/resource/Bundle is the first delivery report, as XML.
        let resource = entries[0]
            .children
            .iter()
            .find(|c| c.name == "resource")
            .unwrap();
        let mut standalone = parse_xml(&m.bundles[0].to_xml());
        standalone.attrs.retain(|(k, _)| k != "xmlns"); // only the root declares the namespace
        assert_eq!(
            first_difference(&resource.children[0], &standalone, ""),
            None
        );
        let next = tree.children.iter().filter(|c| c.name == "link").find(|l| {
            l.children
                .iter()
                .any(|c| c.name == "relation" && c.attrs[0].1 == "next")
        });
        assert!(next.is_some());
    }
    // The next link keeps the format.
    let r = search(
        &client,
        &s,
        &[("_format", "xml".into()), ("_count", "3".into())],
    )
    .bearer_auth(&token)
    .send()
    .await
    .unwrap();
    let tree = parse_xml(&r.bytes().await.unwrap());
    let url = tree
        .children
        .iter()
        .filter(|c| c.name == "link")
        .find_map(|l| {
            let rel = l.children.iter().find(|c| c.name == "relation")?;
            (rel.attrs[0].1 == "next").then(|| {
                l.children.iter().find(|c| c.name == "url").unwrap().attrs[0]
                    .1
                    .clone()
            })
        })
        .unwrap();
    let r = client.get(url).bearer_auth(&token).send().await.unwrap();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+xml")
    );
    s.shutdown().await;
}

#[tokio::test]
async fn faults_behave_and_the_server_recovers() {
    let m = Arc::new(generate(&cfg(7, 10, 10)));
    let s = start(&m).await;
    let client = reqwest::Client::new();
    let token = get_token(&client, &s).await;
    let get = || {
        search(&client, &s, &[("_count", "20".into())])
            .bearer_auth(&token)
            .send()
    };

    s.faults.fail_next(2, Fault::ServerError);
    assert_eq!(s.faults.pending(), 2);
    assert_eq!(get().await.unwrap().status(), 500);
    assert_eq!(get().await.unwrap().status(), 500);
    assert_eq!(get().await.unwrap().status(), 200);

    s.faults.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 3,
        },
    );
    let r = get().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");

    s.faults.fail_next(
        1,
        Fault::Unavailable {
            retry_after_secs: 7,
        },
    );
    let r = get().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "7");

    s.faults
        .fail_next(1, Fault::Slow(Duration::from_millis(400)));
    let t = Instant::now();
    let r = get().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(400));
    let full = r.bytes().await.unwrap();
    assert!(serde_json::from_slice::<Value>(&full).is_ok());

    s.faults.fail_next(1, Fault::TruncatedPage);
    let r = get().await.unwrap();
    assert_eq!(r.status(), 200);
    let cut = r.bytes().await.unwrap();
    assert!(
        serde_json::from_slice::<Value>(&cut).is_err(),
        "a truncated page is not valid JSON"
    );
    assert_eq!(cut.len(), full.len() / 2);

    s.faults.fail_next(1, Fault::ExpiredToken);
    let r = get().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    // Recovered: the same token works again.
    let r = get().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(serde_json::from_slice::<Value>(&r.bytes().await.unwrap()).is_ok());
    assert_eq!(s.faults.pending(), 0);
    assert_eq!(s.search_requests(), 9);
    assert_eq!(s.token_requests(), 1);

    // Another handle to the same faults (cheap clone) works too.
    let handle = s.faults.clone();
    handle.fail_next(3, Fault::ServerError);
    handle.clear();
    assert_eq!(get().await.unwrap().status(), 200);
    s.shutdown().await;
}

// --- the gateway's reader reads what the simulator writes -----------------------------------

#[test]
fn the_gateway_reader_reads_every_generated_bundle() {
    use progression_gateway::domain::PseudonymKey;
    use progression_gateway::sources::klgateway::{ReadContext, read};
    let key = PseudonymKey::new(secrecy::SecretString::from(
        "sim-care-test-key-with-enough-bytes",
    ))
    .unwrap();
    let mappings = progression_gateway::config::load(&Path::new(ROOT).join("config/example.toml"))
        .unwrap()
        .mappings;
    let ctx = ReadContext {
        key: &key,
        time_zone: chrono_tz::Europe::Copenhagen,
        mappings: &mappings,
        source: "sim",
    };
    let m = generate(&cfg(13, 60, 60));
    let (mut visits, mut grants, mut assessments) = (0u64, 0u64, 0u64);
    for (n, b) in m.bundles.iter().enumerate() {
        let formats: &[Format] = if n % 10 == 0 {
            &[Format::Json, Format::Xml]
        } else {
            &[Format::Json]
        };
        for &f in formats {
            let doc =
                read(&b.to_format(f), f, &ctx).unwrap_or_else(|e| panic!("{} ({f}): {e}", b.id));
            assert_eq!(doc.reports.len(), 1);
            let report = doc.reports[0]
                .as_ref()
                .unwrap_or_else(|e| panic!("{} ({f}): {e}", b.id));
            assert_eq!(report.last_updated, b.last_updated);
            assert!(
                report.unknown_codes.is_empty(),
                "{:?}",
                report.unknown_codes
            );
            if f == Format::Json {
                let r = b.resource();
                assert_eq!(
                    report.counts.visits,
                    of_type(&r, "Encounter").count() as u64
                );
                assert_eq!(report.counts.grants, of_type(&r, "CarePlan").count() as u64);
                visits += report.counts.visits;
                grants += report.counts.grants;
                assessments += report.counts.assessments;
            }
        }
    }
    assert!(visits > 0 && grants > 0 && assessments > 0);
}
