//! The finance file formats: vouchers built from deltas, the KMD Opus file validated by the real
//! XSD validator (xmllint), the reply, and CSV in UTF-8 and Windows-1252.

use chrono::{NaiveDate, NaiveDateTime};
use progression_gateway::domain::{TeamId, Track};
use progression_gateway::mapping::Mappings;
use progression_gateway::model::{IncomeKey, Payee, PostingDelta, YearMonth};
use progression_gateway::sinks::finance::build::build_vouchers;
use progression_gateway::sinks::finance::csv::{
    CsvColumn, CsvEncoding, CsvError, CsvSettings, write_csv,
};
use progression_gateway::sinks::finance::opus::{
    OpusSettings, file_name, read_request, write_request,
};
use progression_gateway::sinks::finance::reply::{ReplyOutcome, read_reply, write_reply};
use progression_gateway::sinks::finance::{DebitCredit, Voucher, VoucherNumber};
use rust_decimal::Decimal;
use std::path::{Path, PathBuf};
use std::process::Command;

const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schemas/opus-finance-posting.xsd"
);
const REPLY_SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schemas/opus-finance-posting-response.xsd"
);

fn mappings() -> Mappings {
    progression_gateway::config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/example.toml"
    )))
    .expect("example configuration loads")
    .mappings
}

fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn delta(payee: Payee, track: Track, month: u32, amount: &str) -> PostingDelta {
    PostingDelta {
        key: IncomeKey {
            payee,
            track,
            month: YearMonth { year: 2027, month },
        },
        month_to_date: dec(amount),
        already_posted: Decimal::ZERO,
        amount: dec(amount),
    }
}

fn team(id: &str) -> Payee {
    Payee::Team(TeamId::parse(id).unwrap())
}

fn vouchers() -> Vec<Voucher> {
    let deltas = [
        delta(team("nord"), Track::Care, 1, "7000.00"),
        delta(team("syd"), Track::Care, 2, "123.46"),
        delta(team("nord"), Track::Nursing, 2, "-0.01"),
        delta(Payee::Unassigned, Track::Care, 2, "2880.50"),
    ];
    let as_of = NaiveDate::from_ymd_opt(2027, 2, 3).unwrap();
    build_vouchers(&deltas, &mappings(), as_of, 41).expect("vouchers build")
}

fn settings() -> OpusSettings {
    OpusSettings {
        municipality_code: "0751".into(),
        data_provider_id: "PROGRESSION".into(),
        company_code: "0751".into(),
        sender: "PROGRESSION_GATEWAY".into(),
        receiver: "KMD_OPUS".into(),
    }
}

fn at() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2027, 2, 3)
        .unwrap()
        .and_hms_opt(2, 30, 5)
        .unwrap()
}

/// Runs `xmllint --noout --schema`: Ok when valid, Err(stderr) when not.
fn xmllint(schema: &str, bytes: &[u8], name: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(schema)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "xmllint could not be run ({e}): install libxml2-utils (apt-get install libxml2-utils); CI installs it"
            )
        });
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn opus_file_is_valid_and_balanced() {
    let vouchers = vouchers();
    assert_eq!(vouchers.len(), 4);
    assert_eq!(vouchers[0].number, VoucherNumber("PG27000041".into()));
    assert_eq!(vouchers[3].number, VoucherNumber("PG27000044".into()));
    for v in &vouchers {
        assert_eq!(v.balance(), Decimal::ZERO, "{}", v.number);
    }
    let name = file_name(&settings(), at());
    assert_eq!(
        name,
        "ZFIR_KMD_Opus_Posteringer_IND_0751_PROGRESSION_20270203_023005.xml"
    );
    let bytes = write_request(&settings(), &name, at(), &vouchers);
    xmllint(SCHEMA, &bytes, &name).expect("the Opus file is valid against the XSD");

    let docs = read_request(&bytes).unwrap();
    assert_eq!(docs.len(), vouchers.len());
    for (doc, v) in docs.iter().zip(&vouchers) {
        assert_eq!(doc.number, v.number);
        assert_eq!(doc.number_of_lines as usize, doc.lines.len());
        let debit: Decimal = doc
            .lines
            .iter()
            .filter(|l| l.side == DebitCredit::Debit)
            .map(|l| l.amount)
            .sum();
        let credit: Decimal = doc
            .lines
            .iter()
            .filter(|l| l.side == DebitCredit::Credit)
            .map(|l| l.amount)
            .sum();
        assert_eq!(doc.debit_balance, debit);
        assert_eq!(doc.credit_balance, credit);
        assert_eq!(debit + credit, Decimal::ZERO, "{} balances", v.number);
        assert_eq!(debit, v.amount.abs());
        for l in &doc.lines {
            match l.side {
                DebitCredit::Debit => assert!(l.amount > Decimal::ZERO),
                DebitCredit::Credit => assert!(l.amount < Decimal::ZERO),
            }
        }
    }
    // The correction: the team is debited.
    assert_eq!(docs[2].lines[1].side, DebitCredit::Debit);
    assert_eq!(docs[2].lines[1].cost_centre, "1001");
    // Unassigned: the fallback cost centre.
    assert_eq!(docs[3].lines[1].cost_centre, "1099");
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("<AMT_DOCCUR>7000.00</AMT_DOCCUR>"));
    assert!(text.contains("<AMT_DOCCUR>-0.01</AMT_DOCCUR>"));
    // January income posted in February: value date is the month's last day.
    assert!(text.contains("<VALUE_DATE>2027-01-31</VALUE_DATE>"));
}

#[test]
fn xsd_rejects_broken_files() {
    let vouchers = vouchers();
    let name = file_name(&settings(), at());
    let good = String::from_utf8(write_request(&settings(), &name, at(), &vouchers)).unwrap();
    let long_text = format!("<ITEM_TEXT>{}</ITEM_TEXT>", "x".repeat(60));
    let broken = [
        (
            "ITEM_TEXT of 60 characters",
            good.replacen(
                "<ITEM_TEXT>Takst nord care 2027-01</ITEM_TEXT>",
                &long_text,
                1,
            ),
        ),
        (
            "9-digit GL account",
            good.replacen(
                "<GL_ACCOUNT>53026000</GL_ACCOUNT>",
                "<GL_ACCOUNT>530260001</GL_ACCOUNT>",
                1,
            ),
        ),
        (
            "amount with 3 decimals",
            good.replacen(
                "<AMT_DOCCUR>7000.00</AMT_DOCCUR>",
                "<AMT_DOCCUR>7000.001</AMT_DOCCUR>",
                1,
            ),
        ),
        (
            "side X",
            good.replacen(
                "<DEB_CRED_IND>D</DEB_CRED_IND>",
                "<DEB_CRED_IND>X</DEB_CRED_IND>",
                1,
            ),
        ),
        (
            "voucher number of 11 characters",
            good.replacen("PG27000041<", "PG270000411<", 1),
        ),
        (
            "no namespace",
            good.replacen(" xmlns=\"http://kmd.dk/fir/posting/external\"", "", 1),
        ),
    ];
    for (what, xml) in broken {
        assert_ne!(xml, good, "{what}: the edit must change the file");
        let err = xmllint(SCHEMA, xml.as_bytes(), &name)
            .expect_err(&format!("{what} must be rejected by the XSD"));
        assert!(err.contains("fails to validate"), "{what}: {err}");
    }
}

#[test]
fn reply_round_trip_and_xsd() {
    let rows = vec![
        (VoucherNumber("PG27000041".into()), ReplyOutcome::Accepted),
        (
            VoucherNumber("PG27000042".into()),
            ReplyOutcome::AlreadyReceived,
        ),
        (
            VoucherNumber("PG27000043".into()),
            ReplyOutcome::Rejected("Omkostningssted 1001 er spærret".into()),
        ),
    ];
    let bytes = write_reply("reply.xml", &rows);
    xmllint(REPLY_SCHEMA, &bytes, "reply.xml").expect("the reply is valid against its XSD");
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(text.contains("Voucher number PG27000042 already received this year"));
    let read = read_reply(&bytes).unwrap();
    assert_eq!(read, rows);
    assert!(read[1].1.is_booked());
    assert!(!read[2].1.is_booked());

    let bad = text.replacen(
        "<MESSAGE_TYPE>I</MESSAGE_TYPE>",
        "<MESSAGE_TYPE>W</MESSAGE_TYPE>",
        1,
    );
    assert!(xmllint(REPLY_SCHEMA, bad.as_bytes(), "reply.xml").is_err());
    let err = read_reply(bad.as_bytes()).unwrap_err();
    assert!(err.position > 0, "{err}");
}

fn danish_vouchers() -> Vec<Voucher> {
    let mut v = vouchers();
    for l in &mut v[0].lines {
        l.text = "Takst Åbyhøj Sø care 2027-01".into();
    }
    v
}

#[test]
fn csv_utf8_default_columns() {
    let bytes = write_csv(&CsvSettings::default(), &danish_vouchers()).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let mut rows = text.lines();
    assert_eq!(
        rows.next().unwrap(),
        "voucher_number;line_no;posting_date;document_date;value_date;gl_account;cost_centre;side;amount;text;team;track;month"
    );
    assert_eq!(
        rows.next().unwrap(),
        "PG27000041;1;2027-02-03;2027-02-03;2027-01-31;53026000;1000;D;7000.00;Takst Åbyhøj Sø care 2027-01;nord;care;2027-01"
    );
    assert_eq!(text.lines().count(), 1 + 2 * 4);
}

#[test]
fn csv_windows_1252_custom_columns_and_decimal_comma() {
    let s: CsvSettings = toml::from_str(
        r#"
columns = ["voucher_number", "side", "amount", "text"]
delimiter = ","
encoding = "windows-1252"
header = false
decimal_comma = true
"#,
    )
    .unwrap();
    assert_eq!(s.encoding, CsvEncoding::Windows1252);
    assert_eq!(s.columns[2], CsvColumn::Amount);
    let bytes = write_csv(&s, &danish_vouchers()).unwrap();
    assert!(bytes.contains(&0xC5), "Å is one byte 0xC5 in Windows-1252");
    let (text, _, bad) = encoding_rs::WINDOWS_1252.decode(&bytes);
    assert!(!bad);
    let first = text.lines().next().unwrap();
    assert_eq!(
        first,
        "PG27000041,D,\"7000,00\",Takst Åbyhøj Sø care 2027-01"
    );
    assert!(text.contains("PG27000043,K,\"-0,01\""));

    let mut v = danish_vouchers();
    v[1].lines[0].text = "Takst Łódź → care".into();
    match write_csv(&s, &v) {
        Err(CsvError::Unrepresentable {
            voucher, character, ..
        }) => {
            assert_eq!(voucher, "PG27000042");
            assert_eq!(character, 'Ł');
        }
        other => panic!("expected an unrepresentable character error, got {other:?}"),
    }
    // The same text is fine in UTF-8.
    let utf8 = CsvSettings {
        encoding: CsvEncoding::Utf8,
        ..s.clone()
    };
    assert!(write_csv(&utf8, &v).is_ok());
    assert!(toml::from_str::<CsvSettings>("colums = []").is_err());
}

#[test]
fn a_danish_duplicate_reply_written_by_hand_counts_as_already_received() {
    use progression_gateway::sinks::finance::reply::read_reply_with;
    // As an Opus installation might write it: a prefix, Danish wording, other spacing.
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ns0:FinancePostingResponse xmlns:ns0="http://kmd.dk/fir/posting/external">
  <ns0:RETURN>
    <ns0:MESSAGE_TYPE>E</ns0:MESSAGE_TYPE>
    <ns0:RECEIV_DOC> PG27000007 </ns0:RECEIV_DOC>
    <ns0:MESSAGE>Bilag PG27000007 er ALLEREDE MODTAGET i regnskabsåret</ns0:MESSAGE>
  </ns0:RETURN>
  <ns0:RETURN>
    <ns0:MESSAGE_TYPE>E</ns0:MESSAGE_TYPE>
    <ns0:RECEIV_DOC>PG27000008</ns0:RECEIV_DOC>
    <ns0:MESSAGE>Konto 52202000 findes ikke</ns0:MESSAGE>
  </ns0:RETURN>
</ns0:FinancePostingResponse>"#;
    let read = read_reply(xml.as_bytes()).unwrap();
    assert_eq!(read[0].0, VoucherNumber("PG27000007".into()));
    assert_eq!(read[0].1, ReplyOutcome::AlreadyReceived);
    assert_eq!(
        read[1].1,
        ReplyOutcome::Rejected("Konto 52202000 findes ikke".into())
    );
    // A municipality's own wording, configured.
    let own = read_reply_with(xml.as_bytes(), &["findes ikke".to_owned()]).unwrap();
    assert_eq!(own[1].1, ReplyOutcome::AlreadyReceived);
    assert!(matches!(own[0].1, ReplyOutcome::Rejected(_)));
}
