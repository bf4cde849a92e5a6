//! No CPR number, and no long value, in a reader's messages: roster and events CSV name file,
//! line and column; KL Gateway reports name the resource and element. A resource id or a code
//! that is a CPR number refuses its resource instead of being stored.

use progression_gateway::domain::PseudonymKey;
use progression_gateway::mapping::Mappings;
use progression_gateway::sources::Format;
use progression_gateway::sources::events;
use progression_gateway::sources::files::{self, FilesConfig};
use progression_gateway::sources::ingest::Ingestor;
use progression_gateway::sources::klgateway::{ReadContext, read};
use progression_gateway::sources::roster;
use progression_gateway::store::Store;
use secrecy::SecretString;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/klgateway");
const REPORT: &str = "DeliveryReport-JensHansen-InterventionDelivery";
const CAREPLAN: &str = "0aff84ce-2b70-4677-bfa8-78c599d0eaf9";
const INTERVENTION: &str = "17312894-b23f-43d9-9723-b725ac25d872";

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
        source: "privacy-test",
    }
}

fn report(format: Format) -> String {
    std::fs::read_to_string(format!("{DATA}/{REPORT}.{format}")).unwrap()
}

/// The one delivery report's error (the document itself is readable).
fn report_error(text: &str, format: Format) -> String {
    match read(text.as_bytes(), format, &ctx()) {
        Ok(doc) => match doc.reports.into_iter().next().unwrap() {
            Err(e) => e.to_string(),
            Ok(r) => panic!("read, {} versions", r.versions.len()),
        },
        Err(e) => e.to_string(),
    }
}

/// Every form of the test CPR number a message must not hold.
fn assert_no_cpr(text: &str) {
    for form in [
        "0101501234",
        "010150-1234",
        "010150_1234",
        "010150 1234",
        "0101410001",
        "010141-0001",
        "010141_0001",
        "101410001",
    ] {
        assert!(!text.contains(form), "{form} in: {text}");
    }
}

fn roster_errors(lines: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("teams.csv");
    std::fs::write(&path, lines).unwrap();
    roster::read(&path, key(), mappings(), &HashMap::new())
        .unwrap_err()
        .iter()
        .map(|e| {
            assert_eq!(e.file, path.display().to_string());
            e.to_string()
        })
        .collect()
}

#[test]
fn a_roster_header_that_is_a_data_line_is_named_by_column_not_quoted() {
    let errors = roster_errors("0101501234,nord,2027-01-01,\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains(":1: "), "{}", errors[0]);
    assert!(
        errors[0].contains("column 1 is not `citizen`"),
        "{}",
        errors[0]
    );
    assert!(!errors[0].contains("nord"), "{}", errors[0]);
    assert_no_cpr(&errors[0]);
}

#[test]
fn roster_lines_name_line_and_column_never_the_citizen_field() {
    let long = "x".repeat(10_000);
    let errors = roster_errors(&format!(
        "citizen,team,from,to\n010150 1234,nord,2027-01-01,\n010150_1234,nord,2027-01-01,\n\
         0101501234,0101501234,2027-01-01,\n0101501234,{long},2027-01-01,\n\
         0101501234,nord,010150_1234,\n"
    ));
    assert_eq!(errors.len(), 5, "{errors:#?}");
    for (e, line) in errors.iter().zip(2..) {
        assert!(e.contains(&format!(":{line}: column ")), "{e}");
        assert_no_cpr(e);
        assert!(e.len() < 300, "{e}");
    }
    assert!(errors[0].contains("column 1 (`citizen`)"), "{}", errors[0]);
    assert!(
        errors[3].contains(&format!("`{}…`", "x".repeat(40))),
        "{}",
        errors[3]
    );
    assert!(errors[4].contains("column 3 (`from`)"), "{}", errors[4]);
}

#[test]
fn an_events_header_that_is_a_data_line_is_named_by_column_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deaths.csv");
    std::fs::write(&path, "0101501234,death,2027-01-01\n").unwrap();
    let errors = events::read(&path, key(), &HashMap::new()).unwrap_err();
    let text = errors[0].to_string();
    assert_eq!(errors[0].line, 1);
    assert!(text.contains("column 1 is not `citizen`"), "{text}");
    assert!(!text.contains("2027-01-01"), "{text}");
    assert_no_cpr(&text);
}

#[test]
fn a_cpr_number_sent_as_a_json_number_is_never_echoed() {
    let text =
        report(Format::Json).replacen("\"value\": \"0101410001\"", "\"value\": 101410001", 1);
    let err = report_error(&text, Format::Json);
    assert_no_cpr(&err);
    assert!(
        err.starts_with("Patient/0533e773-c9e6-4cf5-b42d-f3ee07a9c624: "),
        "{err}"
    );
    assert!(err.contains("identifier[0].value"), "{err}");
    assert!(err.contains("a number where a string is expected"), "{err}");
}

#[tokio::test]
async fn the_reason_file_of_a_rejected_report_holds_no_cpr_number() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("gw.db").display());
    let store = Store::connect(&url).await.unwrap();
    let ing = Ingestor::new(
        store,
        key().clone(),
        chrono_tz::Europe::Copenhagen,
        Arc::new(mappings().clone()),
        "landing",
    );
    let landing = dir.path().join("landing");
    std::fs::create_dir(&landing).unwrap();
    let text =
        report(Format::Json).replacen("\"value\": \"0101410001\"", "\"value\": 101410001", 1);
    std::fs::write(landing.join("report.json"), text).unwrap();
    let cfg = FilesConfig {
        dir: landing.clone(),
        archive_dir: None,
        rejected_dir: None,
        max_file_bytes: files::DEFAULT_MAX_FILE_BYTES,
    };
    let summary = files::poll(&ing, &cfg).await.unwrap();
    assert_no_cpr(&serde_json::to_string(&summary).unwrap());
    let reason = std::fs::read_to_string(landing.join("rejected/report.json.reason.txt")).unwrap();
    assert!(reason.contains("identifier[0].value"), "{reason}");
    assert_no_cpr(&reason);
}

#[test]
fn a_resource_id_that_is_a_cpr_number_refuses_the_resource_without_printing_it() {
    for cpr in ["0101410001", "010141-0001", "010141_0001"] {
        for format in [Format::Json, Format::Xml] {
            let text = report(format).replace(CAREPLAN, cpr);
            let err = report_error(&text, format);
            assert_no_cpr(&err);
            assert!(err.starts_with("CarePlan (entry "), "{err}");
            assert!(
                err.contains("CarePlan.id holds what looks like a CPR number"),
                "{err}"
            );
        }
    }
}

#[test]
fn an_intervention_code_that_is_a_cpr_number_refuses_the_grant() {
    for format in [Format::Json, Format::Xml] {
        let text = report(format).replace(INTERVENTION, "010141_0001");
        let err = report_error(&text, format);
        assert_no_cpr(&err);
        assert!(err.starts_with("CarePlan/"), "{err}");
        assert!(
            err.contains("CarePlan.activity.detail.code holds what looks like a CPR"),
            "{err}"
        );
    }
}

#[test]
fn a_cpr_number_with_an_underscore_is_not_echoed() {
    let text = report(Format::Json).replacen("2021-02-14T02:47:35Z", "010141_0001", 1);
    let err = report_error(&text, Format::Json);
    assert!(err.contains("Bundle.timestamp"), "{err}");
    assert_no_cpr(&err);
}

#[test]
fn digits_inside_a_uuid_are_not_masked_so_the_resource_is_named_right() {
    let uuid = "ffffffff-0000-4000-8000-5d0101501234";
    let text = report(Format::Json).replacen(
        &format!("\"reference\": \"CarePlan/{CAREPLAN}\""),
        &format!("\"reference\": \"CarePlan/{uuid}\""),
        1,
    );
    let err = report_error(&text, Format::Json);
    assert!(
        err.contains(&format!("CarePlan/{uuid} is not in the Bundle")),
        "{err}"
    );
}

#[test]
fn a_huge_value_is_cut_to_a_short_prefix() {
    let huge = "a".repeat(10 * 1024 * 1024);
    for format in [Format::Json, Format::Xml] {
        let text = report(format).replace(CAREPLAN, &huge);
        let err = report_error(&text, format);
        assert!(err.len() < 1_000, "{} bytes", err.len());
        assert!(
            err.contains("CarePlan.id is longer than 64 characters"),
            "{err}"
        );
    }
    let text = report(Format::Json).replacen("2021-02-14T02:47:35Z", &huge, 1);
    let err = report_error(&text, Format::Json);
    assert!(err.len() < 1_000, "{} bytes", err.len());
    assert!(err.contains(&format!("`{}…`", "a".repeat(40))), "{err}");
}
