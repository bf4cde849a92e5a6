//! Sources: one folder per care-system connector, and what they share.
//!
//! - [`klgateway`]: reads KL Gateway delivery reports (FHIR Bundles, JSON or XML) into records.
//! - [`fhir_pull`]: searches a FHIR server for Bundles changed since a cursor.
//! - [`fhir_push`]: an HTTP endpoint that receives Bundles.
//! - [`files`]: a landing folder of delivery-report files.
//! - [`nexus`]: pulls KMD Nexus's REST API (grants, suppliers, conditions, calendar visits).
//! - [`roster`]: a team roster file (CPR or source id, team, from, to).
//! - [`events`]: a folder of termination events files (citizen, event, date).

pub mod actuals;
pub mod events;
pub mod fhir_pull;
pub mod fhir_push;
pub mod files;
pub mod ingest;
pub mod klgateway;
pub mod nexus;
pub mod pull;
pub mod roster;

use std::fmt;
use std::future::Future;

/// The wire format of a FHIR document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// FHIR JSON.
    Json,
    /// FHIR XML (default namespace `http://hl7.org/fhir`, values in `value` attributes).
    Xml,
}

impl Format {
    /// From a file name's extension (`.json`, `.xml`), case-insensitive.
    pub fn from_path(path: &std::path::Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "xml" => Some(Format::Xml),
            _ => None,
        }
    }

    /// From an HTTP `Content-Type` (`application/fhir+json`, `application/json`,
    /// `application/fhir+xml`, `application/xml`, `text/xml`), parameters ignored.
    pub fn from_content_type(value: &str) -> Option<Self> {
        let mime = value.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/fhir+json" | "application/json" | "application/json+fhir" => {
                Some(Format::Json)
            }
            "application/fhir+xml" | "application/xml" | "text/xml" | "application/xml+fhir" => {
                Some(Format::Xml)
            }
            _ => None,
        }
    }

    /// By the first non-blank byte: `{` is JSON, `<` is XML.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        let first = bytes
            .iter()
            .find(|b| !b.is_ascii_whitespace() && **b != 0xEF && **b != 0xBB && **b != 0xBF)?;
        match first {
            b'{' => Some(Format::Json),
            b'<' => Some(Format::Xml),
            _ => None,
        }
    }

    /// The FHIR media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/fhir+json",
            Format::Xml => "application/fhir+xml",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "json",
            Format::Xml => "xml",
        })
    }
}

/// What a [`BundleSink`] took in.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Accepted {
    /// Delivery-report Bundles read.
    pub bundles: u64,
    /// Record versions newly stored.
    pub stored: u64,
    /// Record versions already stored before (a re-sent report).
    pub unchanged: u64,
}

/// Why a [`BundleSink`] refused a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The document is bad (malformed, invalid): the sender must fix it. HTTP 400/422.
    Invalid {
        /// Each problem, naming the position or resource id; never a CPR number.
        issues: Vec<String>,
    },
    /// The gateway could not store it now (database down): the sender should retry. HTTP 503.
    Unavailable {
        /// What failed.
        reason: String,
    },
}

/// Something that takes a received FHIR document (a delivery-report Bundle, an incremental
/// delivery or a search page), reads it and stores it durably before answering.
pub trait BundleSink: Clone + Send + Sync + 'static {
    /// Reads and stores `body`; `Ok` only once it is durably stored.
    fn accept(
        &self,
        body: bytes::Bytes,
        format: Format,
    ) -> impl Future<Output = Result<Accepted, Refusal>> + Send;
}

/// What is wrong with a CSV header (roster, events), naming columns only: a header that is not
/// the expected one may be a data line, whose first cell is a CPR number.
pub(crate) fn csv_header_problem(expected: &[&str], found: &csv::StringRecord) -> String {
    let joined = expected.join(",");
    if found.len() != expected.len() {
        return format!(
            "the header must be `{joined}`, it has {} columns",
            found.len()
        );
    }
    let column = expected
        .iter()
        .zip(found.iter())
        .position(|(want, got)| *want != got)
        .unwrap_or(0);
    format!(
        "the header must be `{joined}`: column {} is not `{}`",
        column + 1,
        expected[column]
    )
}

/// A CSV file's citizen field (roster, events): a known Patient id, a pseudonym, or a CPR
/// number, pseudonymised here. `column` names the column in messages, which never quote the
/// field.
pub(crate) fn csv_citizen(
    field: &str,
    column: &str,
    key: &crate::domain::PseudonymKey,
    patients: &std::collections::HashMap<String, crate::domain::Pseudonym>,
) -> Result<crate::domain::Pseudonym, String> {
    use crate::domain::{Cpr, Pseudonym};
    if field.is_empty() {
        return Err(format!("{column} is empty"));
    }
    if let Some(p) = patients.get(field) {
        return Ok(p.clone());
    }
    if let Ok(p) = Pseudonym::parse(field) {
        return Ok(p);
    }
    let cpr_like = field.bytes().filter(u8::is_ascii_digit).count() >= 6
        && field.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    if cpr_like {
        return Cpr::parse(field)
            .map(|cpr| key.citizen(&cpr))
            .map_err(|e| format!("{column}: not a valid CPR number: {e}"));
    }
    Err(format!(
        "{column}: neither a CPR number, a pseudonym nor the Patient id of a citizen received so far"
    ))
}

#[cfg(test)]
mod tests {
    use super::Format;

    #[test]
    fn formats_from_names_types_and_content() {
        assert_eq!(Format::from_path("a/B.JSON".as_ref()), Some(Format::Json));
        assert_eq!(Format::from_path("b.xml".as_ref()), Some(Format::Xml));
        assert_eq!(Format::from_path("c.txt".as_ref()), None);
        assert_eq!(
            Format::from_content_type("application/fhir+xml; charset=utf-8"),
            Some(Format::Xml)
        );
        assert_eq!(Format::from_content_type("text/plain"), None);
        assert_eq!(
            Format::sniff(b"\xEF\xBB\xBF  {\"a\":1}"),
            Some(Format::Json)
        );
        assert_eq!(Format::sniff(b"\n<Bundle/>"), Some(Format::Xml));
        assert_eq!(Format::sniff(b"hello"), None);
    }
}
