//! The KMD Opus posting file `FinancePostingRequest` (schema: `schemas/opus-finance-posting.xsd`).

use super::reply::{Element, ReplyError, parse_tree, text_el};
use super::voucher::{DebitCredit, Voucher, VoucherNumber};
use chrono::{NaiveDate, NaiveDateTime};
use quick_xml::events::{BytesDecl, Event};
use quick_xml::writer::Writer;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::str::FromStr;

/// The namespace of the request and the reply.
pub const KMD_NAMESPACE: &str = "http://kmd.dk/fir/posting/external";

/// Settings of the KMD Opus file (configuration section `[finance.opus]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpusSettings {
    /// The municipality code, 4 digits with a leading zero (e.g. "0751" for Aarhus): in the file
    /// name and every `HEADER/MUNICIPALITY`.
    pub municipality_code: String,
    /// The data provider id KMD assigned to this system: in the file name.
    pub data_provider_id: String,
    /// The company code (`COMP_CODE`) in Opus.
    pub company_code: String,
    /// `CONTROL_FIELDS/SENDER`: who sends the file.
    pub sender: String,
    /// `CONTROL_FIELDS/RECEIVER`: the receiving system.
    pub receiver: String,
}

/// `ZFIR_KMD_Opus_Posteringer_IND_{municipality}_{provider}_{YYYYMMDD}_{HHMMSS}.xml`.
pub fn file_name(s: &OpusSettings, at: NaiveDateTime) -> String {
    format!(
        "ZFIR_KMD_Opus_Posteringer_IND_{}_{}_{}.xml",
        s.municipality_code,
        s.data_provider_id,
        at.format("%Y%m%d_%H%M%S")
    )
}

fn money(d: Decimal) -> String {
    let mut d = d;
    d.rescale(2);
    d.to_string()
}

fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// Writes the request: one `POSTING_DOCUMENT` per voucher, UTF-8.
pub fn write_request(
    s: &OpusSettings,
    file_name: &str,
    at: NaiveDateTime,
    vouchers: &[Voucher],
) -> Vec<u8> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .expect("writing to memory");
    w.create_element("FinancePostingRequest")
        .with_attribute(("xmlns", KMD_NAMESPACE))
        .write_inner_content(|w| {
            w.create_element("CONTROL_FIELDS")
                .write_inner_content(|w| {
                    text_el(w, "SENDER", &s.sender)?;
                    text_el(w, "RECEIVER", &s.receiver)?;
                    text_el(w, "FILE_NAME", file_name)?;
                    text_el(w, "SEND_DATE", &at.format("%Y-%m-%d").to_string())?;
                    text_el(w, "SEND_TIME", &at.format("%H:%M:%S").to_string())?;
                    Ok(())
                })?;
            for v in vouchers {
                w.create_element("POSTING_DOCUMENT")
                    .write_inner_content(|w| {
                        w.create_element("HEADER").write_inner_content(|w| {
                            text_el(w, "NUMBER_OF_LINES", &v.lines.len().to_string())?;
                            text_el(w, "DEBIT_BALANCE", &money(v.debit_total()))?;
                            text_el(w, "CREDIT_BALANCE", &money(v.credit_total()))?;
                            text_el(w, "MUNICIPALITY", &s.municipality_code)?;
                            text_el(w, "COMP_CODE", &s.company_code)?;
                            text_el(w, "DOC_DATE", &date(v.document_date))?;
                            text_el(w, "PSTNG_DATE", &date(v.posting_date))?;
                            text_el(w, "RECEIV_DOC", &v.number.0)?;
                            text_el(w, "HEADER_TXT", &v.header_text)?;
                            Ok(())
                        })?;
                        w.create_element("LINES").write_inner_content(|w| {
                            for l in &v.lines {
                                w.create_element("LINE").write_inner_content(|w| {
                                    text_el(w, "DEB_CRED_IND", l.side.code())?;
                                    text_el(w, "AMT_DOCCUR", &money(l.amount))?;
                                    text_el(w, "VALUE_DATE", &date(v.value_date))?;
                                    text_el(w, "ITEM_TEXT", &l.text)?;
                                    text_el(w, "GL_ACCOUNT", &l.gl_account)?;
                                    text_el(w, "COSTCENTER", l.cost_centre.as_str())?;
                                    text_el(w, "REF_KEY_3", &l.line_no.to_string())?;
                                    Ok(())
                                })?;
                            }
                            Ok(())
                        })?;
                        Ok(())
                    })?;
            }
            Ok(())
        })
        .expect("writing to memory");
    let mut bytes = w.into_inner();
    bytes.push(b'\n');
    bytes
}

/// One `POSTING_DOCUMENT` as read back from a request (for the simulated finance system and
/// tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedDocument {
    /// `RECEIV_DOC`.
    pub number: VoucherNumber,
    /// `NUMBER_OF_LINES`.
    pub number_of_lines: u32,
    /// `DEBIT_BALANCE`.
    pub debit_balance: Decimal,
    /// `CREDIT_BALANCE` (negative).
    pub credit_balance: Decimal,
    /// `MUNICIPALITY`.
    pub municipality: String,
    /// `COMP_CODE`.
    pub company_code: String,
    /// `DOC_DATE`.
    pub document_date: NaiveDate,
    /// `PSTNG_DATE`.
    pub posting_date: NaiveDate,
    /// `HEADER_TXT`.
    pub header_text: String,
    /// The lines.
    pub lines: Vec<ParsedLine>,
}

/// One `LINE` as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    /// `DEB_CRED_IND`.
    pub side: DebitCredit,
    /// `AMT_DOCCUR`.
    pub amount: Decimal,
    /// `VALUE_DATE`.
    pub value_date: NaiveDate,
    /// `ITEM_TEXT`.
    pub text: String,
    /// `GL_ACCOUNT`.
    pub gl_account: String,
    /// `COSTCENTER`.
    pub cost_centre: String,
    /// `WBS_ELEMENT`, when present.
    pub wbs_element: Option<String>,
    /// `REF_KEY_3`.
    pub line_no: u32,
}

/// Reads a request back. Checks the structure and the values' syntax, not the balances (the
/// reader decides what to do with an unbalanced document).
pub fn read_request(bytes: &[u8]) -> Result<Vec<ParsedDocument>, ReplyError> {
    let root = parse_tree(bytes)?;
    root.expect_name("FinancePostingRequest")?;
    root.child("CONTROL_FIELDS")?;
    root.children
        .iter()
        .filter(|c| c.name == "POSTING_DOCUMENT")
        .map(|doc| {
            let h = doc.child("HEADER")?;
            let lines = doc
                .child("LINES")?
                .children
                .iter()
                .filter(|c| c.name == "LINE")
                .map(|l| {
                    Ok(ParsedLine {
                        side: match value(l, "DEB_CRED_IND")? {
                            "D" => DebitCredit::Debit,
                            "K" => DebitCredit::Credit,
                            other => return Err(bad(l, "DEB_CRED_IND", other)),
                        },
                        amount: parse(l, "AMT_DOCCUR")?,
                        value_date: parse(l, "VALUE_DATE")?,
                        text: value(l, "ITEM_TEXT")?.to_owned(),
                        gl_account: value(l, "GL_ACCOUNT")?.to_owned(),
                        cost_centre: value(l, "COSTCENTER")?.to_owned(),
                        wbs_element: l
                            .children
                            .iter()
                            .find(|c| c.name == "WBS_ELEMENT")
                            .map(|c| c.text.trim().to_owned()),
                        line_no: parse(l, "REF_KEY_3")?,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ParsedDocument {
                number: VoucherNumber(value(h, "RECEIV_DOC")?.to_owned()),
                number_of_lines: parse(h, "NUMBER_OF_LINES")?,
                debit_balance: parse(h, "DEBIT_BALANCE")?,
                credit_balance: parse(h, "CREDIT_BALANCE")?,
                municipality: value(h, "MUNICIPALITY")?.to_owned(),
                company_code: value(h, "COMP_CODE")?.to_owned(),
                document_date: parse(h, "DOC_DATE")?,
                posting_date: parse(h, "PSTNG_DATE")?,
                header_text: value(h, "HEADER_TXT")?.to_owned(),
                lines,
            })
        })
        .collect()
}

fn value<'a>(el: &'a Element, name: &str) -> Result<&'a str, ReplyError> {
    Ok(el.child_text(name)?.trim())
}

fn bad(el: &Element, name: &str, v: &str) -> ReplyError {
    ReplyError {
        position: el.child(name).map_or(el.position, |c| c.position),
        message: format!("{name} `{v}` is not valid"),
    }
}

fn parse<T: FromStr>(el: &Element, name: &str) -> Result<T, ReplyError> {
    let v = value(el, name)?;
    v.parse().map_err(|_| bad(el, name, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CostCentre, Track};
    use crate::model::YearMonth;
    use crate::sinks::finance::VoucherLine;

    fn settings() -> OpusSettings {
        OpusSettings {
            municipality_code: "0751".into(),
            data_provider_id: "PG".into(),
            company_code: "0751".into(),
            sender: "PROGRESSION".into(),
            receiver: "KMD_OPUS".into(),
        }
    }

    fn voucher() -> Voucher {
        let d = NaiveDate::from_ymd_opt(2027, 1, 2).unwrap();
        let line = |no, side, amount: &str, cc: &str| VoucherLine {
            line_no: no,
            side,
            amount: amount.parse().unwrap(),
            gl_account: "53026000".into(),
            cost_centre: CostCentre::parse(cc).unwrap(),
            text: "Takst nord & <co> 2027-01".into(),
        };
        Voucher {
            number: VoucherNumber::new(2027, 1),
            team: "nord".into(),
            track: Track::Care,
            month: YearMonth {
                year: 2027,
                month: 1,
            },
            amount: "250".parse().unwrap(),
            document_date: d,
            posting_date: d,
            value_date: d,
            header_text: "Progression 2027-01 nord".into(),
            lines: vec![
                line(1, DebitCredit::Debit, "250", "1000"),
                line(2, DebitCredit::Credit, "-250", "1001"),
            ],
        }
    }

    #[test]
    fn file_name_and_round_trip() {
        let at = NaiveDate::from_ymd_opt(2027, 1, 2)
            .unwrap()
            .and_hms_opt(3, 15, 0)
            .unwrap();
        let name = file_name(&settings(), at);
        assert_eq!(
            name,
            "ZFIR_KMD_Opus_Posteringer_IND_0751_PG_20270102_031500.xml"
        );
        let bytes = write_request(&settings(), &name, at, &[voucher()]);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("<AMT_DOCCUR>250.00</AMT_DOCCUR>"), "{text}");
        assert!(text.contains("<CREDIT_BALANCE>-250.00</CREDIT_BALANCE>"));
        assert!(text.contains("<SEND_TIME>03:15:00</SEND_TIME>"));
        assert!(!text.contains("WBS_ELEMENT"));
        let docs = read_request(&bytes).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].number.0, "PG27000001");
        assert_eq!(docs[0].lines[0].text, "Takst nord & <co> 2027-01");
        assert_eq!(docs[0].lines[1].side, DebitCredit::Credit);
        assert_eq!(docs[0].debit_balance, "250".parse().unwrap());
        assert_eq!(docs[0].lines[1].line_no, 2);
    }

    #[test]
    fn settings_refuse_unknown_fields() {
        let ok: OpusSettings = toml::from_str(
            "municipality_code = \"0751\"\ndata_provider_id = \"PG\"\ncompany_code = \"0751\"\nsender = \"S\"\nreceiver = \"R\"\n",
        )
        .unwrap();
        assert_eq!(
            ok,
            OpusSettings {
                sender: "S".into(),
                receiver: "R".into(),
                ..settings()
            }
        );
        assert!(
            toml::from_str::<OpusSettings>(
                "municipality_code = \"0751\"\ndata_provider_id = \"PG\"\ncompany_code = \"0751\"\nsender = \"S\"\nreceiver = \"R\"\nextra = 1\n",
            )
            .is_err()
        );
    }
}
