//! The KL Gateway reader against the real delivery reports in `shared/testdata/klgateway`
//! (compiled from the implementation guide's own examples), and against broken copies of them.

use chrono::{DateTime, NaiveDate, Utc};
use progression_gateway::domain::{
    AcuteDelivery, Assessment, CitizenRecord, DeliveryMode, FollowUp, FunctionalLevel, Goal, Grant,
    GrantStatus, PseudonymKey, SourceId, Visit,
};
use progression_gateway::mapping::{Law, Mappings};
use progression_gateway::model::{Record, Versioned, resolve_history};
use progression_gateway::sources::Format;
use progression_gateway::sources::klgateway::{
    BundleReport, Counts, Document, ReadContext, ReadError, UnknownCode, read,
};
use secrecy::SecretString;
use std::path::Path;
use std::sync::OnceLock;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/klgateway");

/// Every delivery-report file, without its extension (each has a JSON and an XML twin).
const FILES: [&str; 8] = [
    "DeliveryReport-JensHansen-InterventionDelivery",
    "DeliveryReport-JensHansen-new-1",
    "DeliveryReport-JensHansen-new-2",
    "DeliveryReport-JensHansen-new-3",
    "DeliveryReport-PeterOlsen-new-1",
    "DeliveryReport-PeterOlsen-new-5",
    "legacy/DeliveryReport-JensHansen-old-1-legacycodes",
    "legacy/IncrementalDelivery-TestPerson",
];

/// The CPR numbers of the test citizens (Jens Hansen, Peter Olsen, the guide's TestPerson).
const CPRS: [&str; 3] = ["0101410001", "0101570001", "0101010101"];

const JENS: &str = "0533e773-c9e6-4cf5-b42d-f3ee07a9c624";
const PERSONAL_CARE_CONDITION: &str = "38ea1a7f-251a-4817-aa4a-b59d556db92a";
const PERSONAL_CARE_CODE: &str = "feb38b55-c2d7-4d57-99c2-93622eaa0025";
const FSIII: &str = "urn:oid:1.2.208.176.2.21";

fn files() -> impl Iterator<Item = &'static str> {
    FILES.iter().copied()
}

fn key() -> &'static PseudonymKey {
    static KEY: OnceLock<PseudonymKey> = OnceLock::new();
    KEY.get_or_init(|| {
        PseudonymKey::new(SecretString::from("test-key-with-enough-bytes-0001")).unwrap()
    })
}

fn mappings() -> &'static Mappings {
    static MAPPINGS: OnceLock<Mappings> = OnceLock::new();
    MAPPINGS.get_or_init(|| {
        progression_gateway::config::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config/example.toml"
        )))
        .unwrap()
        .mappings
    })
}

fn ctx() -> ReadContext<'static> {
    ReadContext {
        key: key(),
        time_zone: chrono_tz::Europe::Copenhagen,
        mappings: mappings(),
        source: "klgateway-test",
    }
}

fn text(name: &str, format: Format) -> String {
    std::fs::read_to_string(format!("{DATA}/{name}.{format}")).unwrap()
}

fn read_text(text: &str, format: Format) -> Result<Document, ReadError> {
    read(text.as_bytes(), format, &ctx())
}

/// The one report of a document that must read.
fn report_of(text: &str, format: Format) -> BundleReport {
    let mut doc = read_text(text, format).unwrap();
    assert_eq!(doc.reports.len(), 1);
    doc.reports.remove(0).unwrap()
}

/// The one report of a test file.
fn report(name: &str, format: Format) -> BundleReport {
    report_of(&text(name, format), format)
}

/// The error of the one report of a document that must not read.
fn report_error(text: &str, format: Format) -> ReadError {
    let mut doc = read_text(text, format).unwrap();
    assert_eq!(doc.reports.len(), 1);
    doc.reports.remove(0).unwrap_err()
}

/// Both formats of a file, edited alike: `(json, xml)`.
fn both(name: &str) -> [(Format, String); 2] {
    [
        (Format::Json, text(name, Format::Json)),
        (Format::Xml, text(name, Format::Xml)),
    ]
}

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn ids(v: &[SourceId]) -> Vec<&str> {
    v.iter().map(SourceId::as_str).collect()
}

fn grants(r: &BundleReport) -> Vec<&Grant> {
    r.versions
        .iter()
        .filter_map(|v| match &v.record {
            Record::Grant(g) => Some(g),
            _ => None,
        })
        .collect()
}

fn assessments(r: &BundleReport) -> Vec<&Assessment> {
    r.versions
        .iter()
        .filter_map(|v| match &v.record {
            Record::Assessment(a) => Some(a),
            _ => None,
        })
        .collect()
}

fn goals(r: &BundleReport) -> Vec<&Goal> {
    r.versions
        .iter()
        .filter_map(|v| match &v.record {
            Record::Goal(g) => Some(g),
            _ => None,
        })
        .collect()
}

fn visits(r: &BundleReport) -> Vec<&Visit> {
    r.versions
        .iter()
        .filter_map(|v| match &v.record {
            Record::Visit(x) => Some(x),
            _ => None,
        })
        .collect()
}

fn follow_ups(r: &BundleReport) -> Vec<&FollowUp> {
    r.versions
        .iter()
        .filter_map(|v| match &v.record {
            Record::FollowUp(x) => Some(x),
            _ => None,
        })
        .collect()
}

fn acute(r: &BundleReport) -> Vec<&AcuteDelivery> {
    r.versions
        .iter()
        .filter_map(|v| match &v.record {
            Record::Acute(x) => Some(x),
            _ => None,
        })
        .collect()
}

fn citizen(r: &BundleReport) -> &CitizenRecord {
    r.versions
        .iter()
        .find_map(|v| match &v.record {
            Record::Citizen(c) => Some(c),
            _ => None,
        })
        .unwrap()
}

fn level(n: u8) -> Option<FunctionalLevel> {
    Some(FunctionalLevel::new(n).unwrap())
}

fn law(code: &str) -> Law {
    mappings().interventions.get(code).unwrap().law
}

// --- every file -----------------------------------------------------------------------------

#[test]
fn every_file_in_the_folders_is_listed() {
    let mut found = Vec::new();
    for sub in ["", "legacy/"] {
        for entry in std::fs::read_dir(format!("{DATA}/{sub}")).unwrap() {
            let path = entry.unwrap().path();
            if let Some(format) = Format::from_path(&path) {
                let stem = path.file_stem().unwrap().to_str().unwrap();
                found.push((format!("{sub}{stem}"), format));
            }
        }
    }
    assert_eq!(found.len(), 2 * files().count(), "{found:?}");
    for (name, _) in &found {
        assert!(files().any(|f| f == name), "{name} is not in FILES");
    }
}

#[test]
fn every_file_reads_and_json_and_xml_twins_give_identical_versions() {
    for name in files() {
        let json = read_text(&text(name, Format::Json), Format::Json).unwrap();
        let xml = read_text(&text(name, Format::Xml), Format::Xml).unwrap();
        assert!(!json.reports.is_empty(), "{name}");
        assert_eq!(json.reports.len(), xml.reports.len(), "{name}");
        for (j, x) in json.reports.iter().zip(&xml.reports) {
            let j = j.as_ref().unwrap_or_else(|e| panic!("{name}.json: {e}"));
            let x = x.as_ref().unwrap_or_else(|e| panic!("{name}.xml: {e}"));
            assert!(!j.versions.is_empty(), "{name}");
            assert_eq!(j.versions, x.versions, "{name}");
            assert_eq!(j.counts, x.counts, "{name}");
            assert_eq!(j.unknown_codes, x.unknown_codes, "{name}");
            assert_eq!(j, x, "{name}");
            // Every code in the guide's examples is in the shipped mappings.
            assert_eq!(j.unknown_codes, [], "{name}");
            assert!(
                j.versions.iter().all(|v| v.source == "klgateway-test"),
                "{name}"
            );
        }
        assert_eq!(json.next, None);
    }
}

#[test]
fn no_cpr_number_in_any_report() {
    for name in files() {
        for (format, text) in both(name) {
            let doc = read_text(&text, format).unwrap();
            let debug = format!("{doc:?}");
            for cpr in CPRS {
                assert!(!debug.contains(cpr), "{name}.{format} shows a CPR number");
            }
        }
    }
}

// --- content of each file -------------------------------------------------------------------

#[test]
fn jens_hansen_new_1_five_grants_four_assessments_four_goals_a_planned_follow_up() {
    let r = report("DeliveryReport-JensHansen-new-1", Format::Json);
    assert_eq!(
        r.bundle_id.as_deref(),
        Some("5c20b1b0-ec06-4d25-89e2-13521ebcf642")
    );
    assert_eq!(r.timestamp, t("2021-02-10T11:14:09Z"));
    assert_eq!(r.last_updated, r.timestamp);
    assert_eq!(
        r.counts,
        Counts {
            citizens: 1,
            grants: 5,
            visits: 0,
            assessments: 4,
            goals: 4,
            acute: 0,
            follow_ups: 1,
            withdrawn: 0,
        }
    );
    let profile = citizen(&r);
    assert_eq!(profile.custodian_sor.as_deref(), Some("123456789012345"));
    assert!(profile.active && !profile.deceased);
    for g in grants(&r) {
        assert_eq!(
            (g.start, g.end, g.status),
            (d("2021-02-12"), None, GrantStatus::Active)
        );
        assert_eq!(g.weekly_minutes, None);
    }
    let levels: Vec<_> = assessments(&r).iter().map(|a| a.level).collect();
    assert_eq!(levels, [level(3), level(3), level(3), level(2)]);
    assert!(
        assessments(&r)
            .iter()
            .all(|a| a.in_focus && a.assessed_on == d("2021-02-10"))
    );
    let targets: Vec<_> = goals(&r).iter().map(|g| g.target_level).collect();
    assert_eq!(targets, [level(2), level(2), level(2), level(1)]);
    assert!(
        goals(&r)
            .iter()
            .all(|g| g.active && g.set_on == d("2021-02-10"))
    );
    assert_eq!(goals(&r)[0].condition_id.as_str(), PERSONAL_CARE_CONDITION);
    let f = follow_ups(&r);
    assert_eq!(
        f[0].source_id.as_str(),
        "c0f62d4d-91e5-4d28-a107-526e0a2fc20b"
    );
    assert!(f[0].planned);
    assert_eq!(f[0].on, d("2021-02-15"));
    assert_eq!(f[0].focus.len(), 4);
}

#[test]
fn jens_hansen_intervention_delivery_three_home_visits_delivering_three_grants() {
    let r = report(
        "DeliveryReport-JensHansen-InterventionDelivery",
        Format::Xml,
    );
    assert_eq!(r.counts.visits, 3);
    assert_eq!(r.counts.grants, 3);
    let v = visits(&r);
    let starts: Vec<_> = v.iter().map(|v| v.start).collect();
    assert_eq!(
        starts,
        [
            t("2021-02-13T08:05:00Z"),
            t("2021-02-13T13:25:00Z"),
            t("2021-02-13T21:00:00Z")
        ]
    );
    for visit in v {
        assert_eq!(visit.mode, DeliveryMode::Home);
        assert_eq!(visit.minutes(), 20);
        assert_eq!(visit.employee, None);
        assert_eq!(
            ids(&visit.grants),
            [
                "0aff84ce-2b70-4677-bfa8-78c599d0eaf9",
                "4404487e-978d-4377-bd92-c219e0f1a456",
                "749857f9-fdae-4d9c-b180-cf1a2c6019cb"
            ]
        );
    }
}

#[test]
fn jens_hansen_new_2_holds_the_follow_up_with_its_result_and_plans_the_next() {
    let r = report("DeliveryReport-JensHansen-new-2", Format::Json);
    assert_eq!(r.counts.grants, 0);
    assert_eq!(r.counts.follow_ups, 3);
    let f = follow_ups(&r);
    // The follow-up planned in new-1 is now held...
    assert_eq!(
        f[0].source_id.as_str(),
        "c0f62d4d-91e5-4d28-a107-526e0a2fc20b"
    );
    assert!(!f[0].planned);
    assert_eq!(f[0].on, d("2021-02-15"));
    // ... the next one is planned ...
    assert_eq!(
        f[1].source_id.as_str(),
        "26116f56-3f78-4dbd-9bfc-8d83c0272a2a"
    );
    assert!(f[1].planned);
    assert_eq!(f[1].on, d("2021-02-24"));
    // ... and the result is "Fortsættes" (continue) for the four conditions.
    assert_eq!(
        f[2].result_code.as_deref(),
        Some("9c90b0e5-9c0a-4b72-a18c-76cd6d6c6213")
    );
    assert_eq!(f[2].focus.len(), 4);
    // Over both reports the planned follow-up is replaced by the held one.
    let mut all = report("DeliveryReport-JensHansen-new-1", Format::Json).versions;
    all.extend(r.versions);
    let h = resolve_history(&all, chrono_tz::Europe::Copenhagen);
    let held = h
        .follow_ups
        .iter()
        .find(|f| f.source_id.as_str() == "c0f62d4d-91e5-4d28-a107-526e0a2fc20b")
        .unwrap();
    assert!(!held.planned);
}

#[test]
fn jens_hansen_new_3_ends_two_section_83_grants_and_starts_two_section_83a_grants() {
    let r = report("DeliveryReport-JensHansen-new-3", Format::Xml);
    let g = grants(&r);
    assert_eq!(g.len(), 4);
    let completed: Vec<_> = g
        .iter()
        .filter(|g| g.status == GrantStatus::Completed)
        .collect();
    assert_eq!(completed.len(), 2);
    for g in &completed {
        assert_eq!(g.end, Some(d("2021-02-24")));
        assert_eq!(law(&g.code), Law::Sel83PersonalCare);
    }
    let started: Vec<_> = g
        .iter()
        .filter(|g| g.status == GrantStatus::Active)
        .collect();
    assert_eq!(started.len(), 2);
    for g in &started {
        assert_eq!((g.start, g.end), (d("2021-02-25"), None));
        assert_eq!(law(&g.code), Law::Sel83a);
    }
    let personal = assessments(&r)
        .into_iter()
        .find(|a| a.condition_id.as_str() == PERSONAL_CARE_CONDITION)
        .unwrap();
    assert_eq!(personal.condition_code, PERSONAL_CARE_CODE);
    assert_eq!(personal.level, level(2));
    assert_eq!(personal.assessed_at, t("2021-02-25T02:00:36Z"));
    assert_eq!(personal.assessed_on, d("2021-02-25"));
    let targets: Vec<_> = goals(&r).iter().map(|g| g.target_level).collect();
    assert_eq!(targets, [level(0), level(1), level(1), level(0)]);
    let f = follow_ups(&r);
    assert_eq!(
        f.iter().map(|f| (f.planned, f.on)).collect::<Vec<_>>(),
        [
            (false, d("2021-02-24")),
            (true, d("2021-03-10")),
            (false, d("2021-02-24"))
        ]
    );
    // Revisitation.
    assert_eq!(
        f[2].result_code.as_deref(),
        Some("61b9a5c2-2ea7-45ad-82b8-53cbb513290e")
    );
}

#[test]
fn personal_care_level_goes_from_3_to_2_and_both_assessments_are_kept() {
    let new_1 = report("DeliveryReport-JensHansen-new-1", Format::Json);
    let new_3 = report("DeliveryReport-JensHansen-new-3", Format::Json);
    let personal = |r: &BundleReport| {
        assessments(r)
            .into_iter()
            .find(|a| a.condition_id.as_str() == PERSONAL_CARE_CONDITION)
            .unwrap()
            .clone()
    };
    assert_eq!(personal(&new_1).level, level(3));
    assert_eq!(personal(&new_3).level, level(2));
    // The newer report first: the order of arrival does not matter.
    let mut all: Vec<Versioned> = new_3.versions.clone();
    all.extend(new_1.versions.clone());
    let h = resolve_history(&all, chrono_tz::Europe::Copenhagen);
    let kept: Vec<_> = h
        .assessments
        .iter()
        .filter(|a| a.condition_id.as_str() == PERSONAL_CARE_CONDITION)
        .map(|a| (a.assessed_on, a.level, a.condition_code.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            (d("2021-02-10"), level(3), PERSONAL_CARE_CODE),
            (d("2021-02-25"), level(2), PERSONAL_CARE_CODE)
        ]
    );
    // The grants are the newest versions: 7 CarePlans, two of them completed.
    assert_eq!(h.grants.len(), 7);
    assert_eq!(
        h.grants
            .iter()
            .filter(|g| g.status == GrantStatus::Completed)
            .count(),
        2
    );
}

#[test]
fn peter_olsen_new_1_nursing_grant_two_acute_deliveries_no_levels() {
    let r = report("DeliveryReport-PeterOlsen-new-1", Format::Json);
    assert_eq!(
        r.counts,
        Counts {
            citizens: 1,
            grants: 1,
            visits: 0,
            assessments: 0,
            goals: 0,
            acute: 2,
            follow_ups: 1,
            withdrawn: 0,
        }
    );
    let g = grants(&r);
    assert_eq!(g[0].code, "3198a6ba-879c-4d2e-914b-560ba1e0d63a");
    assert_eq!(law(&g[0].code), Law::Sul138);
    assert_eq!(g[0].start, d("2021-02-10"));
    for a in acute(&r) {
        assert_eq!(a.performed_at, t("2021-02-10T13:00:00Z"));
        assert_eq!(a.performed_on, d("2021-02-10"));
        assert_eq!(law(&a.code), Law::Sul138);
    }
    assert_eq!(follow_ups(&r)[0].on, d("2021-02-12"));
    assert_ne!(
        citizen(&r).citizen,
        citizen(&report("DeliveryReport-JensHansen-new-1", Format::Json)).citizen
    );
}

#[test]
fn peter_olsen_new_5_completes_the_nursing_grant() {
    let r = report("DeliveryReport-PeterOlsen-new-5", Format::Xml);
    // Two matter-of-interest observations: read, but no records.
    assert_eq!(r.counts.follow_ups, 0);
    assert_eq!(r.versions.len(), 2);
    let mut all = report("DeliveryReport-PeterOlsen-new-1", Format::Xml).versions;
    all.extend(r.versions);
    let h = resolve_history(&all, chrono_tz::Europe::Copenhagen);
    assert_eq!(h.grants.len(), 1);
    assert_eq!(h.grants[0].status, GrantStatus::Completed);
    assert_eq!(h.grants[0].end, Some(d("2021-02-17")));
    assert_eq!(h.acute.len(), 2);
}

#[test]
fn legacy_codes_resolve_to_the_same_mappings_as_the_uuid_forms() {
    let old = report(
        "legacy/DeliveryReport-JensHansen-old-1-legacycodes",
        Format::Json,
    );
    let new = report("DeliveryReport-JensHansen-new-1", Format::Json);
    // The same CPR number: the same citizen.
    assert_eq!(citizen(&old).citizen, citizen(&new).citizen);
    let codes: Vec<&str> = grants(&old).iter().map(|g| g.code.as_str()).collect();
    assert_eq!(codes, ["H1.1", "H1.5", "H1.11", "H1.8", "H1.4"]);
    let mapped = |r: &BundleReport| {
        let mut rows: Vec<String> = grants(r)
            .iter()
            .map(|g| mappings().interventions.get(&g.code).unwrap().code.clone())
            .collect();
        rows.sort();
        rows
    };
    assert_eq!(mapped(&old), mapped(&new));
    // Legacy level keys are shifted by one: B4 = 3, B3 = 2, B2 = 1.
    let levels: Vec<_> = assessments(&old)
        .iter()
        .map(|a| (a.level_code.as_str(), a.level))
        .collect();
    assert_eq!(
        levels,
        [
            ("B4", level(3)),
            ("B4", level(3)),
            ("B4", level(3)),
            ("B4", level(3)),
            ("B3", level(2)),
            ("B3", level(2)),
            ("B4", level(3))
        ]
    );
    let targets: Vec<_> = goals(&old).iter().map(|g| g.target_level).collect();
    assert_eq!(
        targets,
        [
            level(2),
            level(2),
            level(2),
            level(2),
            level(1),
            level(1),
            level(2)
        ]
    );
    // The old Encounter form: a planned follow-up date, about the conditions pointing to it.
    let f = follow_ups(&old);
    assert_eq!(f.len(), 1);
    assert!(f[0].planned);
    assert_eq!(f[0].on, d("2021-02-15"));
    assert_eq!(f[0].focus.len(), 7);
}

#[test]
fn incremental_delivery_holds_one_report_of_the_guides_test_person() {
    for (format, text) in both("legacy/IncrementalDelivery-TestPerson") {
        let doc = read_text(&text, format).unwrap();
        assert_eq!(doc.reports.len(), 1);
        let r = doc.reports[0].as_ref().unwrap();
        assert_eq!(r.bundle_id.as_deref(), Some("TestPersonReport"));
        assert_eq!(
            r.counts,
            Counts {
                citizens: 1,
                grants: 2,
                visits: 0,
                assessments: 1,
                goals: 1,
                acute: 1,
                follow_ups: 5,
                withdrawn: 0,
            }
        );
        // FSIII H1.1 is taken over the local level-3 code H1.1.1.
        let codes: Vec<&str> = grants(r).iter().map(|g| g.code.as_str()).collect();
        assert_eq!(codes, ["H1.1", "G1.10"]);
        assert_eq!(acute(r)[0].code, "G1.39");
        assert_eq!(acute(r)[0].performed_at, t("2020-08-14T10:15:00Z"));
        let a = assessments(r);
        assert_eq!(
            (a[0].condition_code.as_str(), a[0].level),
            ("J1.1", level(1))
        );
        assert_eq!(goals(r)[0].target_level, level(1));
        let f = follow_ups(r);
        assert!(f[0].planned);
        assert_eq!(
            ids(&f[0].focus),
            ["VaskeSigLetteBegraensninger", "ProblemerMedPersonligPleje"]
        );
        assert!(
            f[1..]
                .iter()
                .all(|f| !f.planned && f.result_code.as_deref() == Some("E1"))
        );
        assert_eq!(ids(&f[4].focus), ["Dialyse"]);
    }
}

// --- withdrawals and deaths -----------------------------------------------------------------

/// `text` with Jens Hansen's `deceasedBoolean: false` replaced by `json` (JSON) or `xml` (XML).
fn with_deceased(format: Format, text: &str, json: &str, xml: &str) -> String {
    match format {
        Format::Json => text.replace("\"deceasedBoolean\": false", json),
        Format::Xml => text.replace("<deceasedBoolean value=\"false\"/>", xml),
    }
}

fn terminations(r: &BundleReport) -> usize {
    r.versions
        .iter()
        .filter(|v| matches!(v.record, Record::Termination(_)))
        .count()
}

#[test]
fn deceased_boolean_marks_the_citizen_deceased_without_a_date_and_a_later_report_undoes_it() {
    for (format, text) in both("DeliveryReport-JensHansen-new-3") {
        let dead = with_deceased(
            format,
            &text,
            "\"deceasedBoolean\": true",
            "<deceasedBoolean value=\"true\"/>",
        );
        // 23:30 UTC is 00:30 the next day in Copenhagen.
        let first = report_of(
            &dead.replace("2021-02-25T02:00:36Z", "2021-02-24T23:30:00Z"),
            format,
        );
        let profile = citizen(&first);
        assert!(profile.deceased, "{format}");
        assert_eq!(profile.deceased_on, None, "{format}");
        // Without `meta.lastUpdated` the version instant is the report's: the custodian and a
        // death without a date apply from its local date, 25 February in Copenhagen.
        let at = first
            .versions
            .iter()
            .find(|v| matches!(v.record, Record::Citizen(_)))
            .unwrap()
            .version_at;
        assert_eq!(
            at.with_timezone(&chrono_tz::Europe::Copenhagen)
                .date_naive(),
            d("2021-02-25"),
            "{format}"
        );
        // Death is the model's to derive from the citizen record: the reader emits no
        // termination of its own (none keyed `{patient}/death`).
        assert_eq!(terminations(&first), 0, "{format}");
        assert!(
            first
                .versions
                .iter()
                .all(|v| !v.record.key().ends_with("/death")),
            "{format}"
        );
        // The model derives the death: the local date of the first report.
        let h = resolve_history(&first.versions, chrono_tz::Europe::Copenhagen);
        assert_eq!(h.terminations.len(), 1, "{format}");
        assert_eq!(h.terminations[0].on, d("2021-02-25"), "{format}");
        assert_eq!(
            h.terminations[0].reason,
            progression_gateway::domain::TerminationReason::Death
        );
        assert_eq!(
            h.terminations[0].source_id.as_str(),
            format!("{JENS}/death")
        );
        // A later report saying not deceased is the current citizen record.
        let later = report_of(
            &text.replace("2021-02-25T02:00:36Z", "2021-03-02T09:00:00Z"),
            format,
        );
        let mut all = later.versions.clone();
        all.extend(first.versions.clone());
        let h = resolve_history(&all, chrono_tz::Europe::Copenhagen);
        assert!(!h.profile.unwrap().deceased, "{format}");
        assert!(h.terminations.is_empty(), "{format}");
    }
}

#[test]
fn deceased_date_time_gives_the_local_date_of_death() {
    let cases = [
        // A date is the date.
        ("2027-01-20", "2027-01-20"),
        // A dateTime is converted to Copenhagen: CET (+01:00) in winter ...
        ("2027-01-20T22:59:59Z", "2027-01-20"),
        ("2027-01-20T23:30:00Z", "2027-01-21"),
        ("2027-01-20T23:30:00+01:00", "2027-01-20"),
        // ... CEST (+02:00) in summer.
        ("2027-07-20T21:30:00Z", "2027-07-20"),
        ("2027-07-20T22:30:00Z", "2027-07-21"),
        // A dateTime without a zone is local time.
        ("2027-01-20T23:30:00", "2027-01-20"),
    ];
    for (format, text) in both("DeliveryReport-JensHansen-new-3") {
        for (raw, local) in cases {
            let edited = with_deceased(
                format,
                &text,
                &format!("\"deceasedDateTime\": \"{raw}\""),
                &format!("<deceasedDateTime value=\"{raw}\"/>"),
            );
            let r = report_of(&edited, format);
            let profile = citizen(&r);
            assert!(profile.deceased, "{format} {raw}");
            assert_eq!(profile.deceased_on, Some(d(local)), "{format} {raw}");
            assert_eq!(terminations(&r), 0, "{format} {raw}");
        }
    }
    for raw in ["2027-02-30", "20 January 2027", ""] {
        for (format, text) in both("DeliveryReport-JensHansen-new-3") {
            let edited = with_deceased(
                format,
                &text,
                &format!("\"deceasedDateTime\": \"{raw}\""),
                &format!("<deceasedDateTime value=\"{raw}\"/>"),
            );
            let e = report_error(&edited, format).to_string();
            assert!(
                e.contains(&format!("Patient/{JENS}")) && e.contains("Patient.deceasedDateTime"),
                "{format} {raw}: {e}"
            );
        }
    }
}

#[test]
fn deceased_date_time_reads_alike_in_json_and_xml() {
    let [(jf, json), (xf, xml)] = both("DeliveryReport-JensHansen-new-3");
    let raw = "2027-01-20T23:30:00Z";
    let j = report_of(
        &with_deceased(jf, &json, &format!("\"deceasedDateTime\": \"{raw}\""), ""),
        jf,
    );
    let x = report_of(
        &with_deceased(
            xf,
            &xml,
            "",
            &format!("<deceasedDateTime value=\"{raw}\"/>"),
        ),
        xf,
    );
    assert_eq!(j.versions, x.versions);
    assert_eq!(citizen(&j).deceased_on, Some(d("2027-01-21")));
}

#[test]
fn a_condition_is_in_focus_when_active_recurrence_or_relapse_on_the_problem_list() {
    let cases = [
        ("active", true),
        ("recurrence", true),
        ("relapse", true),
        ("inactive", false),
        ("remission", false),
        ("resolved", false),
    ];
    for (format, text) in both("DeliveryReport-JensHansen-new-1") {
        for (status, in_focus) in cases {
            let edited = match format {
                Format::Json => {
                    text.replace("\"code\": \"active\"", &format!("\"code\": \"{status}\""))
                }
                Format::Xml => text.replace(
                    "<code value=\"active\"/>",
                    &format!("<code value=\"{status}\"/>"),
                ),
            };
            let r = report_of(&edited, format);
            let a = assessments(&r);
            assert_eq!(a.len(), 4, "{format} {status}");
            assert!(
                a.iter().all(|a| a.in_focus == in_focus),
                "{format} {status}: {:?}",
                a.iter().map(|a| a.in_focus).collect::<Vec<_>>()
            );
            // Not on the problem list: never in focus.
            let off_list = edited.replace("problem-list-item", "encounter-diagnosis");
            let r = report_of(&off_list, format);
            assert!(
                assessments(&r).iter().all(|a| !a.in_focus),
                "{format} {status} off the problem list"
            );
        }
    }
}

#[test]
fn an_inactive_patient_withdraws_the_citizens_data() {
    for (format, text) in both("DeliveryReport-JensHansen-new-3") {
        let text = match format {
            Format::Json => text.replace(
                "\"deceasedBoolean\": false,",
                "\"active\": false, \"deceasedBoolean\": false,",
            ),
            Format::Xml => text.replace(
                "<deceasedBoolean value=\"false\"/>",
                "<active value=\"false\"/><deceasedBoolean value=\"false\"/>",
            ),
        };
        let r = report_of(&text, format);
        assert!(!citizen(&r).active);
        assert_eq!(r.counts.withdrawn, 1);
        let mut all = report("DeliveryReport-JensHansen-new-1", format).versions;
        all.extend(r.versions);
        let h = resolve_history(&all, chrono_tz::Europe::Copenhagen);
        assert!(h.grants.is_empty() && h.assessments.is_empty());
    }
}

#[test]
fn entered_in_error_withdraws_the_grant() {
    for (format, text) in both("DeliveryReport-PeterOlsen-new-5") {
        let text = match format {
            Format::Json => text.replace(
                "\"status\": \"completed\"",
                "\"status\": \"entered-in-error\"",
            ),
            Format::Xml => text.replace(
                "<status value=\"completed\"/>",
                "<status value=\"entered-in-error\"/>",
            ),
        };
        let r = report_of(&text, format);
        assert_eq!(r.counts.withdrawn, 1);
        assert!(
            r.versions
                .iter()
                .any(|v| v.withdrawn && matches!(v.record, Record::Grant(_)))
        );
        let mut all = report("DeliveryReport-PeterOlsen-new-1", format).versions;
        all.extend(r.versions);
        assert!(
            resolve_history(&all, chrono_tz::Europe::Copenhagen)
                .grants
                .is_empty()
        );
    }
}

// --- documents: search pages, incremental deliveries ----------------------------------------

fn json_value(name: &str) -> serde_json::Value {
    serde_json::from_str(&text(name, Format::Json)).unwrap()
}

fn invalid_cpr(text: &str) -> String {
    text.replace("0101410001", "3213410001")
}

#[test]
fn a_search_page_gives_each_report_and_the_next_link() {
    let page = serde_json::json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [
            {"relation": "self", "url": "https://gw.example/Bundle?_lastUpdated=gt2021"},
            {"relation": "next", "url": "https://gw.example/Bundle?page=2"}
        ],
        "entry": [
            {"resource": json_value("DeliveryReport-JensHansen-new-1"), "search": {"mode": "match"}},
            {"resource": json_value("DeliveryReport-PeterOlsen-new-1"), "search": {"mode": "match"}},
            {"resource": {"resourceType": "OperationOutcome"}, "search": {"mode": "outcome"}}
        ]
    });
    let doc = read_text(&page.to_string(), Format::Json).unwrap();
    assert_eq!(
        doc.next.as_deref(),
        Some("https://gw.example/Bundle?page=2")
    );
    assert_eq!(doc.reports.len(), 2);
    assert!(doc.reports.iter().all(Result::is_ok));
}

#[test]
fn an_incremental_delivery_with_one_bad_report_reads_the_others() {
    // JSON: the guide's incremental delivery plus Jens Hansen's new-3, and new-1 with a bad CPR.
    let mut doc = json_value("legacy/IncrementalDelivery-TestPerson");
    let bad: serde_json::Value = serde_json::from_str(&invalid_cpr(&text(
        "DeliveryReport-JensHansen-new-1",
        Format::Json,
    )))
    .unwrap();
    let entries = doc["entry"].as_array_mut().unwrap();
    entries.push(serde_json::json!({"resource": bad}));
    entries.push(serde_json::json!({"resource": json_value("DeliveryReport-JensHansen-new-3")}));
    let json = read_text(&doc.to_string(), Format::Json).unwrap();

    // XML: the same, spliced as text.
    let inner = |name: &str, bad: bool| {
        let t = text(name, Format::Xml);
        let t = if bad { invalid_cpr(&t) } else { t };
        let body = t.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
        format!("<entry><resource>{body}</resource></entry>")
    };
    let outer = text("legacy/IncrementalDelivery-TestPerson", Format::Xml);
    let end = outer.rfind("</Bundle>").unwrap();
    let xml_text = format!(
        "{}{}{}{}",
        &outer[..end],
        inner("DeliveryReport-JensHansen-new-1", true),
        inner("DeliveryReport-JensHansen-new-3", false),
        &outer[end..]
    );
    let xml = read_text(&xml_text, Format::Xml).unwrap();

    for doc in [&json, &xml] {
        assert_eq!(doc.reports.len(), 3);
        assert!(doc.reports[0].is_ok());
        let err = doc.reports[1].as_ref().unwrap_err().to_string();
        assert!(err.contains(&format!("Patient/{JENS}")), "{err}");
        assert_eq!(
            doc.reports[2].as_ref().unwrap().counts.grants,
            4,
            "the report after the bad one is read"
        );
    }
    assert_eq!(json, xml);
}

// --- bad input ------------------------------------------------------------------------------

/// 1-based line of the first occurrence of `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text[..text.find(needle).unwrap()].matches('\n').count() + 1
}

#[test]
fn malformed_json_names_line_and_column() {
    let text = text("DeliveryReport-JensHansen-new-3", Format::Json);
    let broken = text.replacen("\"type\": \"collection\",", "\"type\": \"collection\"", 1);
    let err = read_text(&broken, Format::Json).unwrap_err();
    let line = line_of(&broken, "\"timestamp\"");
    assert!(
        matches!(err, ReadError::Json { line: l, column: 3, .. } if l == line),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&format!("line {line}, column 3")),
        "{err}"
    );
    // Truncated.
    let err = read_text(&text[..200], Format::Json).unwrap_err();
    assert!(matches!(err, ReadError::Json { .. }), "{err}");
}

#[test]
fn malformed_xml_names_line_and_column() {
    let text = text("DeliveryReport-JensHansen-new-3", Format::Xml);
    let broken = text.replacen("</Patient>", "</Patien>", 1);
    let err = read_text(&broken, Format::Xml).unwrap_err();
    let line = line_of(&broken, "</Patien>");
    match &err {
        ReadError::Xml {
            line: l, column, ..
        } => {
            assert_eq!(*l, line, "{err}");
            assert!(*column > 1, "{err}");
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains(&format!("line {line}")), "{err}");
    // Truncated inside an element.
    let err = read_text(&text[..text.len() / 2], Format::Xml).unwrap_err();
    assert!(matches!(err, ReadError::Xml { .. }), "{err}");
    // Not UTF-8.
    let mut bytes = text.clone().into_bytes();
    bytes.insert(text.find("<type").unwrap(), 0xFF);
    let err = read(&bytes, Format::Xml, &ctx()).unwrap_err();
    assert!(matches!(err, ReadError::Xml { line: 7, .. }), "{err}");
}

#[test]
fn a_document_that_is_not_a_bundle_is_refused() {
    let err = read_text(r#"{"resourceType": "Patient", "id": "x"}"#, Format::Json).unwrap_err();
    assert!(matches!(err, ReadError::NotABundle { .. }), "{err}");
    let err = read_text(
        r#"<Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>"#,
        Format::Xml,
    )
    .unwrap_err();
    assert!(matches!(err, ReadError::NotABundle { .. }), "{err}");
    let err = read_text(
        r#"<html xmlns="http://www.w3.org/1999/xhtml"/>"#,
        Format::Xml,
    )
    .unwrap_err();
    assert!(matches!(err, ReadError::NotABundle { .. }), "{err}");
    let err = read_text(
        r#"{"resourceType": "Bundle", "id": "b", "type": "transaction"}"#,
        Format::Json,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Bundle/b: Bundle.type `transaction`"),
        "{err}"
    );
}

#[test]
fn a_resource_type_the_guide_does_not_allow_rejects_the_report() {
    for (format, text) in both("DeliveryReport-JensHansen-new-3") {
        let text = match format {
            Format::Json => text.replacen(
                "\"resourceType\": \"Goal\"",
                "\"resourceType\": \"Organization\"",
                1,
            ),
            Format::Xml => text.replacen("<Goal>", "<Organization>", 1).replacen(
                "</Goal>",
                "</Organization>",
                1,
            ),
        };
        let err = report_error(&text, format).to_string();
        assert_eq!(
            err,
            "Organization/0b1999e8-4b72-4ed1-8766-4acbff7962c9: resource type Organization is not \
             allowed in a delivery report"
        );
    }
}

#[test]
fn a_missing_required_element_names_the_resource_and_the_path() {
    for (format, text) in both("DeliveryReport-JensHansen-new-3") {
        let no_start = match format {
            Format::Json => {
                text.replacen("\"start\": \"2021-02-25\"", "\"end\": \"2021-02-25\"", 1)
            }
            Format::Xml => text.replacen(
                "<start value=\"2021-02-25\"/>",
                "<end value=\"2021-02-25\"/>",
                1,
            ),
        };
        assert_eq!(
            report_error(&no_start, format).to_string(),
            "CarePlan/f824fbab-28a7-4b13-87d3-24e120873455: missing CarePlan.period.start"
        );
        let no_timestamp = match format {
            Format::Json => text.replacen("\"timestamp\": \"2021-02-25T02:00:36Z\",", "", 1),
            Format::Xml => text.replacen("<timestamp value=\"2021-02-25T02:00:36Z\"/>", "", 1),
        };
        assert_eq!(
            report_error(&no_timestamp, format).to_string(),
            "Bundle/89071c96-e053-40d5-8873-105b7bad40f9: missing Bundle.timestamp"
        );
        let no_cpr = text.replacen("urn:oid:1.2.208.176.1.2\"", "urn:oid:1.2.208.176.1.99\"", 1);
        let err = report_error(&no_cpr, format).to_string();
        assert!(
            err.starts_with(&format!("Patient/{JENS}: missing Patient.identifier")),
            "{err}"
        );
    }
}

#[test]
fn an_invalid_cpr_number_rejects_the_report_without_showing_it() {
    for (format, text) in both("DeliveryReport-JensHansen-new-3") {
        for bad in ["3213410001", "0101410O01", "010141000", "321341-0001"] {
            let err = report_error(&text.replace("0101410001", bad), format);
            let shown = format!("{err} {err:?}");
            assert!(shown.contains(&format!("Patient/{JENS}")), "{shown}");
            assert!(shown.contains("CPR number"), "{shown}");
            assert!(shown.contains("invalid"), "{shown}");
            assert!(!shown.contains(bad), "{shown}");
            assert!(!shown.contains(&bad[..6]), "{shown}");
        }
    }
}

#[test]
fn an_unknown_intervention_code_keeps_the_grant_and_is_reported() {
    let unknown = "00000000-aaaa-4bbb-8ccc-000000000001";
    for (format, text) in both("DeliveryReport-JensHansen-new-3") {
        let text = text.replace("2912752c-2e9e-4702-8787-b45f73ff5b05", unknown);
        let r = report_of(&text, format);
        assert_eq!(r.counts.grants, 4);
        assert!(grants(&r).iter().any(|g| g.code == unknown));
        assert_eq!(
            r.unknown_codes,
            [UnknownCode {
                code: unknown.into(),
                system: FSIII.into(),
                kind: "intervention",
                resource: "CarePlan/f824fbab-28a7-4b13-87d3-24e120873455".into(),
            }]
        );
    }
}

#[test]
fn an_unknown_level_code_keeps_the_assessment_without_a_level() {
    // The severity of every condition in new-1 of level 2 ("Mobilitet og bevægelse") and the
    // targets of level 2.
    let unknown = "00000000-aaaa-4bbb-8ccc-000000000002";
    for (format, text) in both("DeliveryReport-JensHansen-InterventionDelivery") {
        let text = text.replace("d984ad21-48fe-4619-845e-2aa0303048e7", unknown);
        let r = report_of(&text, format);
        let a: Vec<_> = assessments(&r).iter().map(|a| a.level).collect();
        assert_eq!(a, [level(3), level(3), None]);
        assert_eq!(
            r.unknown_codes,
            [UnknownCode {
                code: unknown.into(),
                system: FSIII.into(),
                kind: "functional_level",
                resource: "Condition/1c13a997-628d-4d01-af7c-9adb7c19b2a6".into(),
            }]
        );
    }
}

#[test]
fn a_reference_to_a_resource_not_in_the_bundle_rejects_the_report() {
    for (format, text) in both("DeliveryReport-JensHansen-InterventionDelivery") {
        let missing_plan = text.replacen(
            "CarePlan/0aff84ce-2b70-4677-bfa8-78c599d0eaf9",
            "CarePlan/ffffffff-0000-4000-8000-000000000000",
            1,
        );
        assert_eq!(
            report_error(&missing_plan, format).to_string(),
            "Encounter/dc15e643-1ca7-4a94-a581-641efb9bb890: \
             Encounter.extension(BasedOnInterventionExtension) \
             CarePlan/ffffffff-0000-4000-8000-000000000000 is not in the Bundle"
        );
        let missing_condition = text.replacen(
            "Condition/38ea1a7f-251a-4817-aa4a-b59d556db92a",
            "Condition/eeeeeeee-0000-4000-8000-000000000000",
            1,
        );
        assert_eq!(
            report_error(&missing_condition, format).to_string(),
            "CarePlan/0aff84ce-2b70-4677-bfa8-78c599d0eaf9: \
             CarePlan.activity.detail.reasonReference \
             Condition/eeeeeeee-0000-4000-8000-000000000000 is not in the Bundle"
        );
        // A subject that is not the report's Patient.
        let other_subject = text.replacen(
            &format!("Patient/{JENS}"),
            "Patient/dddddddd-0000-4000-8000-000000000000",
            2,
        );
        let err = report_error(&other_subject, format).to_string();
        assert!(
            err.ends_with("Encounter.subject Patient/dddddddd-0000-4000-8000-000000000000 is not in the Bundle"),
            "{err}"
        );
    }
}

#[test]
fn references_by_full_url_and_urn_uuid_resolve() {
    let text = text(
        "DeliveryReport-JensHansen-InterventionDelivery",
        Format::Json,
    )
    .replacen(
        "\"reference\": \"CarePlan/0aff84ce-2b70-4677-bfa8-78c599d0eaf9\"",
        "\"reference\": \"https://test.fhir.dk/CarePlan/0aff84ce-2b70-4677-bfa8-78c599d0eaf9\"",
        1,
    )
    .replacen(
        "\"reference\": \"CarePlan/4404487e-978d-4377-bd92-c219e0f1a456\"",
        "\"reference\": \"urn:uuid:4404487e-978d-4377-bd92-c219e0f1a456\"",
        1,
    );
    let r = report_of(&text, Format::Json);
    assert_eq!(
        visits(&r)[0].grants,
        visits(&report(
            "DeliveryReport-JensHansen-InterventionDelivery",
            Format::Json
        ))[0]
            .grants
    );
}

/// A resource read from its text straight into the wire model, and one the text path does
/// not take as it is (a member twice, a value of the wrong type), give what the tree of the
/// whole document gives: the same versions, and the same message naming the element.
#[test]
fn resources_read_from_their_text_equal_the_whole_tree() {
    use progression_gateway::sources::klgateway::read_whole;
    let base = text("DeliveryReport-JensHansen-new-1", Format::Json);
    let first_care_plan = "\"resourceType\": \"CarePlan\",";
    assert!(base.contains(first_care_plan));
    for (what, edited) in [
        ("as sent", base.clone()),
        (
            // A duplicate member: the tree keeps the last, so the status stays `active`.
            "a status twice",
            base.replacen(
                first_care_plan,
                &format!("{first_care_plan} \"status\": \"completed\","),
                1,
            ),
        ),
        (
            "a number where a status is expected",
            base.replacen("\"status\": \"active\"", "\"status\": 7", 1),
        ),
    ] {
        let fast = read(edited.as_bytes(), Format::Json, &ctx());
        let whole = read_whole(edited.as_bytes(), Format::Json, &ctx());
        assert_eq!(fast, whole, "{what}");
        let doc = fast.unwrap();
        match what {
            "a number where a status is expected" => {
                let e = doc.reports[0].as_ref().unwrap_err().to_string();
                assert!(
                    e.contains("status: a number where a string is expected"),
                    "{e}"
                );
            }
            _ => {
                let r = doc.reports[0].as_ref().unwrap();
                assert!(
                    r.versions.iter().any(|v| matches!(
                        &v.record,
                        Record::Grant(g) if g.status == GrantStatus::Active
                    )),
                    "{what}"
                );
            }
        }
    }
}
