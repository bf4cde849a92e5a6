//! Tariff decisions as FHIR `ChargeItem`s, written over real HTTP to the simulated endpoint.

use chrono::NaiveDate;
use progression_gateway::domain::{CourseKind, Pseudonym, TerminationReason, Track};
use progression_gateway::model::{Course, CourseId, DailyTariff, EndReason};
use progression_gateway::sim::decisions::{self, SimAuth, SimChargeItem};
use progression_gateway::sinks::decisions::{
    ChargeItemDoc, DEFAULT_CODE_SYSTEM, DecisionError, DecisionsClient, DecisionsConfig,
    UpsertOutcome, charge_item, code_system, course_code, decisions_to_write,
};
use progression_gateway::sources::Format;
use rust_decimal::Decimal;
use secrecy::SecretString;
use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

const CPR: &str = "0101401234";

fn pseudonym(c: char) -> Pseudonym {
    Pseudonym::parse(&c.to_string().repeat(64)).unwrap()
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::from_str(s).unwrap()
}

fn course(id: &str, citizen: char, track: Track, kind: CourseKind, tariff: &str) -> Course {
    let amount = Decimal::from_str(tariff).unwrap();
    let (group, tariff) = match kind {
        CourseKind::Individual => (
            None,
            DailyTariff::Individual {
                hourly_rate: amount,
            },
        ),
        _ => (Some(2), DailyTariff::Locked { amount }),
    };
    Course {
        id: CourseId(id.to_owned()),
        citizen: pseudonym(citizen),
        track,
        kind,
        need_score: 7,
        group,
        tariff_year: 2026,
        tariff,
        start: day("2026-01-05"),
        planned_end: day("2026-04-04"),
        end: day("2026-04-04"),
        end_reason: EndReason::Planned,
        rule: String::new(),
        revision: 1,
    }
}

/// Two citizens with a Patient id (three courses) and one without.
fn courses() -> (Vec<Course>, HashMap<Pseudonym, String>) {
    let courses = vec![
        course(
            "c-care-dev",
            'a',
            Track::Care,
            CourseKind::Development,
            "250.00",
        ),
        course(
            "c-nursing-ind",
            'a',
            Track::Nursing,
            CourseKind::Individual,
            "123.4567",
        ),
        course(
            "c-care-stab",
            'b',
            Track::Care,
            CourseKind::Stabilisation,
            "99.5",
        ),
        course(
            "c-unknown",
            'c',
            Track::Care,
            CourseKind::Development,
            "250.00",
        ),
        course(
            "c-bad-id",
            'd',
            Track::Care,
            CourseKind::Development,
            "1.00",
        ),
    ];
    let ids = HashMap::from([
        (pseudonym('a'), "pat-17".to_owned()),
        (pseudonym('b'), "pat-42".to_owned()),
        (pseudonym('d'), "Patient/bad id".to_owned()),
    ]);
    (courses, ids)
}

fn by_value(items: &[SimChargeItem], value: &str) -> SimChargeItem {
    let found: Vec<_> = items
        .iter()
        .filter(|i| i.identifier_value == value)
        .collect();
    assert_eq!(found.len(), 1, "{value}: {items:#?}");
    found[0].clone()
}

async fn write_all(
    client: &DecisionsClient,
    docs: &[(CourseId, ChargeItemDoc)],
) -> Vec<UpsertOutcome> {
    let mut out = Vec::new();
    for (_, doc) in docs {
        out.push(client.upsert(doc).await.unwrap());
    }
    out
}

async fn round_trip(format: Format) {
    let sim = decisions::serve().await.unwrap();
    let mut cfg = DecisionsConfig::new(&sim.base_url);
    cfg.format = format;
    let client = DecisionsClient::new(&cfg).unwrap();
    let (mut courses, ids) = courses();

    let (docs, missing) = decisions_to_write(&courses, &ids, &cfg);
    assert_eq!(docs.len(), 3);
    assert_eq!(
        missing,
        vec!["cccc-cccc-cccc", "dddd-dddd-dddd"],
        "the citizen without a Patient id is reported"
    );
    assert!(docs.iter().all(|(_, d)| d.format == format));

    assert_eq!(
        write_all(&client, &docs).await,
        vec![UpsertOutcome::Created; 3]
    );
    let items = sim.items();
    assert_eq!(items.len(), 3);

    let dev = by_value(&items, "c-care-dev");
    assert_eq!(dev.identifier_system, "urn:progression-gateway:course");
    assert_eq!(dev.status, "billable");
    assert_eq!(dev.subject, "Patient/pat-17");
    assert_eq!(
        (dev.period_start.as_str(), dev.period_end.as_str()),
        ("2026-01-05", "2026-04-04")
    );
    assert_eq!(dev.codes, vec!["care-development-2"]);
    assert_eq!(
        (dev.price_text.as_str(), dev.currency.as_str()),
        ("250.00", "DKK")
    );
    assert_eq!(dev.format, format);

    let ind = by_value(&items, "c-nursing-ind");
    assert_eq!(ind.subject, "Patient/pat-17");
    assert_eq!(ind.codes, vec!["nursing-individual"]);
    assert_eq!(ind.price_text, "123.4567");
    assert!(
        ind.notes
            .iter()
            .any(|n| n.contains("DKK per visitated hour")),
        "{:?}",
        ind.notes
    );

    let stab = by_value(&items, "c-care-stab");
    assert_eq!(stab.subject, "Patient/pat-42");
    assert_eq!(stab.codes, vec!["care-stabilisation-2"]);
    assert_eq!(stab.price_text, "99.5");

    for item in &items {
        for c in ['a', 'b', 'c'] {
            let p = pseudonym(c);
            assert!(!item.body.contains(p.as_str()) && !item.body.contains(&p.short()));
        }
        assert!(!item.body.contains(CPR));
        assert_eq!(item.version, 1);
    }

    // The same decisions again: no new ChargeItem, nothing changed.
    let writes = sim.writes();
    assert_eq!(
        write_all(&client, &docs).await,
        vec![UpsertOutcome::Unchanged; 3]
    );
    assert_eq!(sim.writes(), writes + 3);
    assert_eq!(sim.items(), items);

    // A fresh client (a restart) cannot know the version: Updated, still no new item.
    let fresh = DecisionsClient::new(&cfg).unwrap();
    assert_eq!(
        fresh.upsert(&docs[0].1).await.unwrap(),
        UpsertOutcome::Updated
    );
    assert_eq!(sim.items().len(), 3);

    // The citizen dies: the same course ends early and the SAME ChargeItem is replaced.
    courses[0].end = day("2026-02-10");
    courses[0].end_reason = EndReason::Terminated(TerminationReason::Death);
    let (docs, _) = decisions_to_write(&courses[..1], &ids, &cfg);
    assert_eq!(
        client.upsert(&docs[0].1).await.unwrap(),
        UpsertOutcome::Updated
    );
    let after = sim.items();
    assert_eq!(after.len(), 3);
    let ended = by_value(&after, "c-care-dev");
    assert_eq!(ended.id, dev.id, "the same server id");
    assert_eq!(ended.version, 2);
    assert_eq!(
        (ended.period_start.as_str(), ended.period_end.as_str()),
        ("2026-01-05", "2026-02-10")
    );
    assert_eq!(ended.price_text, "250.00");
    assert!(
        ended
            .notes
            .iter()
            .any(|n| n.contains("ended early on 2026-02-10: death")),
        "{:?}",
        ended.notes
    );
    assert_eq!(
        by_value(&after, "c-nursing-ind"),
        ind,
        "other items untouched"
    );

    // The search finds it by identifier, price text intact.
    let found = reqwest::get(format!(
        "{}/ChargeItem?identifier=urn:progression-gateway:course%7Cc-care-dev",
        sim.base_url
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(found.contains("\"total\":1"), "{found}");
    assert!(
        found.contains("\"priceOverride\":{\"value\":250.00,"),
        "{found}"
    );
    assert!(found.contains(&format!("\"id\":\"{}\"", dev.id)), "{found}");
}

#[tokio::test]
async fn json_one_charge_item_per_course_updated_in_place() {
    round_trip(Format::Json).await;
}

#[tokio::test]
async fn xml_one_charge_item_per_course_updated_in_place() {
    round_trip(Format::Xml).await;
}

#[test]
fn wire_forms_are_exact_and_fhir_shaped() {
    let (courses, _) = courses();
    let mut cfg = DecisionsConfig::new("http://x/fhir");
    let json = String::from_utf8(ChargeItemDoc::new(&courses[0], "pat-17", &cfg).body).unwrap();
    assert!(
        json.starts_with("{\"resourceType\":\"ChargeItem\",\"identifier\":"),
        "{json}"
    );
    assert!(
        json.contains("\"priceOverride\":{\"value\":250.00,\"currency\":\"DKK\"}"),
        "{json}"
    );
    assert!(json.contains("\"quantity\":{\"value\":90}"), "{json}");
    let ind = String::from_utf8(ChargeItemDoc::new(&courses[1], "pat-17", &cfg).body).unwrap();
    assert!(ind.contains("\"value\":123.4567,"), "{ind}");
    assert!(
        !ind.contains("quantity"),
        "an individual course has no day count: {ind}"
    );

    let value = charge_item(&courses[0], "pat-17", &cfg);
    assert_eq!(value["subject"]["reference"], "Patient/pat-17");
    assert_eq!(value["code"]["coding"][0]["system"], DEFAULT_CODE_SYSTEM);
    assert_eq!(value["occurrencePeriod"]["end"], "2026-04-04");

    cfg.format = Format::Xml;
    let xml = String::from_utf8(ChargeItemDoc::new(&courses[0], "pat-17", &cfg).body).unwrap();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ChargeItem xmlns=\"http://hl7.org/fhir\"><identifier>"), "{xml}");
    assert!(
        xml.contains(
            "<priceOverride><value value=\"250.00\"/><currency value=\"DKK\"/></priceOverride>"
        ),
        "{xml}"
    );
    assert!(
        xml.contains("<subject><reference value=\"Patient/pat-17\"/></subject>"),
        "{xml}"
    );
}

fn codes_of(concepts: &serde_json::Value, out: &mut BTreeSet<String>) {
    for c in concepts.as_array().into_iter().flatten() {
        assert!(c["display"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(c["designation"][0]["language"], "en");
        out.insert(c["code"].as_str().unwrap().to_owned());
        codes_of(&c["concept"], out);
    }
}

#[test]
fn published_code_system_lists_every_code() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/codesystems/progression-course.json"
    );
    let generated = code_system(DEFAULT_CODE_SYSTEM);
    if std::env::var_os("UPDATE_CODESYSTEMS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap() + "\n";
        std::fs::write(path, text).unwrap();
    }
    let published: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(published, generated, "regenerate with UPDATE_CODESYSTEMS=1");
    assert_eq!(published["url"], DEFAULT_CODE_SYSTEM);
    assert_eq!(published["status"], "active");
    assert_eq!(published["content"], "complete");
    let mut codes = BTreeSet::new();
    codes_of(&published["concept"], &mut codes);
    assert_eq!(published["count"], codes.len());
    for track in Track::ALL {
        for kind in [
            CourseKind::Development,
            CourseKind::Stabilisation,
            CourseKind::Individual,
        ] {
            for group in 1..=9u8 {
                let mut c = course("x", 'a', track, kind, "1.00");
                c.group = (kind != CourseKind::Individual).then_some(group);
                let code = course_code(&c);
                assert!(codes.contains(&code), "{code} is not published");
            }
        }
    }
    let (courses, _) = courses();
    for c in &courses {
        assert!(codes.contains(&course_code(c)));
    }
}

#[tokio::test]
async fn oauth2_bearer_duplicates_and_errors() {
    let auth = SimAuth {
        client_id: "gateway".into(),
        client_secret: "s3cret".into(),
        token: "tok-1".into(),
    };
    let sim = decisions::serve_with(Some(auth)).await.unwrap();
    let (courses, ids) = courses();

    let mut cfg = DecisionsConfig::new(&sim.base_url);
    let (docs, _) = decisions_to_write(&courses, &ids, &cfg);
    // Without a token: refused, not retried as if transient.
    let err = DecisionsClient::new(&cfg)
        .unwrap()
        .upsert(&docs[0].1)
        .await
        .unwrap_err();
    assert!(matches!(err, DecisionError::Auth { .. }), "{err}");

    cfg.token_url = Some(sim.token_url.clone());
    cfg.client_id = Some("gateway".into());
    cfg.client_secret = Some(SecretString::from("wrong"));
    let err = DecisionsClient::new(&cfg)
        .unwrap()
        .upsert(&docs[0].1)
        .await
        .unwrap_err();
    assert!(matches!(err, DecisionError::Auth { .. }), "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");

    cfg.client_secret = Some(SecretString::from("s3cret"));
    let client = DecisionsClient::new(&cfg).unwrap();
    assert_eq!(
        client.upsert(&docs[0].1).await.unwrap(),
        UpsertOutcome::Created
    );
    assert_eq!(sim.items().len(), 1);

    // Two ChargeItems with the identifier: 412, reported with the server's diagnostics.
    assert!(sim.duplicate("c-care-dev"));
    let err = client.upsert(&docs[0].1).await.unwrap_err();
    let DecisionError::MultipleMatches { url, diagnostics } = &err else {
        panic!("{err}");
    };
    assert!(
        url.contains("identifier=urn%3Aprogression-gateway%3Acourse%7Cc-care-dev"),
        "{url}"
    );
    assert_eq!(
        diagnostics.as_deref(),
        Some("2 ChargeItems match the identifier")
    );
    assert!(!err.to_string().contains(CPR));

    // Nothing listening: bounded retries, then a clear error.
    let mut dead = DecisionsConfig::new("http://127.0.0.1:9/fhir");
    dead.max_retries = 1;
    let err = DecisionsClient::new(&dead)
        .unwrap()
        .upsert(&docs[0].1)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DecisionError::RetriesExhausted { attempts: 2, .. }),
        "{err}"
    );

    // Configuration mistakes are caught up front.
    let mut bad = DecisionsConfig::new(&sim.base_url);
    bad.client_id = Some("gateway".into());
    assert!(matches!(
        DecisionsClient::new(&bad),
        Err(DecisionError::Config(_))
    ));
    assert!(DecisionsClient::new(&DecisionsConfig::new("ftp://x")).is_err());
}
