//! Reads KL Gateway delivery reports (FHIR R4 Bundles, JSON or XML) into record versions.
//!
//! A document is one of:
//! - a delivery report: a `collection` Bundle of one citizen's resources;
//! - an incremental delivery: a `collection` Bundle whose entries are delivery reports;
//! - a search result page: a `searchset` Bundle whose entries are delivery reports, with a
//!   `next` link to the following page.
//!
//! Both formats are read into one wire model ([`wire`]): JSON with `serde_json`, XML through
//! [`xml`], which turns FHIR XML into the JSON shape first. One mapping ([`map`]) then turns a
//! delivery report into records, so the JSON and the XML of a report give identical records.
//!
//! Each delivery report is read on its own: a bad one is an `Err` in [`Document::reports`] and
//! never stops the others. No message ever contains a CPR number: messages name positions and
//! resource ids, and every message is scrubbed of anything shaped like a CPR number.
//!
//! Mapping decisions where the implementation guide leaves room:
//! - `Encounter` of type delivery (`784275f1-...`): `finished` is a [`Visit`](crate::domain::Visit);
//!   a date-only `period.start` is local midnight, a missing `period.end` makes a visit of no
//!   length; any other status but `entered-in-error` (planned, in-progress, ...) is not a
//!   delivered visit and gives no record.
//! - `Encounter` of type follow-up (`9f03dfbb-...`), and the old klgateway-care-encounter form:
//!   a [`FollowUp`](crate::domain::FollowUp) on the local date of `period.start`: `planned`
//!   gives a planned follow-up date, `finished` a held follow-up (`planned = false`, no result
//!   code: the result comes in the follow-up Observation). The same Encounter id thus stays one
//!   record whose later version replaces the planned one.
//! - `Encounter.class`: `HH` home, `AMB` clinic, CareSocialCodes `1b55a4b0-...` (Telefonisk)
//!   phone, `124be95d-...` (Skærmbesøg) or ActCode `VR` screen; another class is an error.
//! - `Observation`: only follow-up observations (SNOMED `712744002`, or the follow-up profile)
//!   give records; matter-of-interest and citizen's own observations are read and checked
//!   (subject, references) but give none.
//! - `Condition` without `severity` (nursing) gives no record; it is a reference target only.
//! - A resource type outside the delivery-report profile (anything but Patient, CarePlan,
//!   Procedure, Encounter, Condition, Goal, Observation; `Organization` included, as the profile's
//!   entry slicing is closed) rejects the report.

mod map;
mod wire;
mod xml;

use super::Format;
use crate::domain::PseudonymKey;
use crate::mapping::Mappings;
use crate::model::Versioned;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::ops::AddAssign;

/// What the reader needs besides the bytes.
pub struct ReadContext<'a> {
    /// The pseudonym key: a CPR number becomes a pseudonym at once.
    pub key: &'a PseudonymKey,
    /// The time zone of local dates.
    pub time_zone: chrono_tz::Tz,
    /// The municipality's code tables, to report unknown codes and map functional levels.
    pub mappings: &'a Mappings,
    /// The configured source name written into every version.
    pub source: &'a str,
}

/// How many of each thing a delivery report held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Distinct Patients.
    pub citizens: u64,
    /// CarePlans (grants), withdrawn ones included.
    pub grants: u64,
    /// Visits (delivery Encounters).
    pub visits: u64,
    /// Assessments (Conditions with a severity).
    pub assessments: u64,
    /// Goals.
    pub goals: u64,
    /// Acute deliveries (Procedures).
    pub acute: u64,
    /// Follow-ups: planned dates and held follow-ups (Encounters) and results (Observations).
    pub follow_ups: u64,
    /// Versions that withdraw their record (`entered-in-error`) and inactive Patients.
    pub withdrawn: u64,
}

impl AddAssign<&Counts> for Counts {
    fn add_assign(&mut self, o: &Counts) {
        self.citizens += o.citizens;
        self.grants += o.grants;
        self.visits += o.visits;
        self.assessments += o.assessments;
        self.goals += o.goals;
        self.acute += o.acute;
        self.follow_ups += o.follow_ups;
        self.withdrawn += o.withdrawn;
    }
}

impl AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        *self += &o;
    }
}

/// A code the mappings do not know. The record is kept (a grant with an unknown code is still a
/// grant; an unknown level is `None`); the code is reported so that an analyst can map it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownCode {
    /// The code as received.
    pub code: String,
    /// Its code system (empty if none was given).
    pub system: String,
    /// `intervention` or `functional_level`.
    pub kind: &'static str,
    /// The resource it came from, `Type/id` (e.g. `CarePlan/<id>`).
    pub resource: String,
}

/// One delivery report, read.
#[derive(Debug, Clone, PartialEq)]
pub struct BundleReport {
    /// `Bundle.id`.
    pub bundle_id: Option<String>,
    /// `Bundle.timestamp`.
    pub timestamp: DateTime<Utc>,
    /// `Bundle.meta.lastUpdated`, else the timestamp: a pull's cursor.
    pub last_updated: DateTime<Utc>,
    /// The record versions, in the order of the Bundle's entries.
    pub versions: Vec<Versioned>,
    /// What it held.
    pub counts: Counts,
    /// Codes the mappings do not know.
    pub unknown_codes: Vec<UnknownCode>,
}

/// Why a document or a delivery report could not be read. The message names the position or
/// the resource and never contains a CPR number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// Malformed JSON.
    #[error("malformed JSON at line {line}, column {column}: {message}")]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Malformed XML (or not UTF-8).
    #[error("malformed XML at line {line}, column {column}: {message}")]
    Xml {
        /// 1-based line.
        line: usize,
        /// 1-based column (characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Well-formed, but not a FHIR Bundle.
    #[error("not a FHIR Bundle: {found}")]
    NotABundle {
        /// What was found instead.
        found: String,
    },
    /// A Bundle or resource breaks the delivery-report profile.
    #[error("{resource}: {message}")]
    Invalid {
        /// `Type/id` of the resource (or `Bundle/id`, or `Type (entry N)` without an id).
        resource: String,
        /// What is wrong.
        message: String,
    },
}

impl ReadError {
    /// An [`ReadError::Invalid`], scrubbed of anything shaped like a CPR number.
    pub(crate) fn invalid(resource: impl Into<String>, message: impl Into<String>) -> Self {
        ReadError::Invalid {
            resource: scrub_to(&resource.into(), NAME_CHARS),
            message: scrub(&message.into()),
        }
    }
}

/// A document, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Each delivery report, in document order: read, or why not.
    pub reports: Vec<Result<BundleReport, ReadError>>,
    /// A search page's `next` link.
    pub next: Option<String>,
}

/// Reads a whole document: a delivery-report Bundle (type collection holding resources), an
/// incremental delivery (type collection whose entries are delivery-report Bundles), or a search
/// result page (type searchset whose entries are delivery-report Bundles). `Err` = the document
/// itself is unreadable (malformed JSON/XML with position, not a Bundle). Each inner delivery
/// report is its own `Ok`/`Err`: one bad Bundle never stops the others.
pub fn read(bytes: &[u8], format: Format, ctx: &ReadContext) -> Result<Document, ReadError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match format {
        Format::Json => {
            if let Ok(lazy) = serde_json::from_slice::<wire::LazyBundle>(bytes)
                && lazy.resource_type.as_deref() == Some("Bundle")
            {
                return read_bundle(lazy.into(), ctx);
            }
        }
        Format::Xml => {
            if let Some((head, entries)) = xml_lazy(bytes) {
                let lazy: Option<Vec<wire::LazyEntry>> = entries
                    .iter()
                    .map(|e| serde_json::from_str(e.get()).ok())
                    .collect();
                if let Some(lazy) = lazy {
                    let doc = wire::Doc {
                        entry: wire::Entries::Lazy(lazy),
                        ..head
                    };
                    return read_bundle(doc, ctx);
                }
            }
        }
    }
    read_tree(bytes, format, ctx)
}

/// [`read`] through one tree of the whole document, the way the reader falls back to when the
/// document's top level is not as the wire model takes it. For tests that the two agree.
#[doc(hidden)]
pub fn read_whole(bytes: &[u8], format: Format, ctx: &ReadContext) -> Result<Document, ReadError> {
    read_tree(
        bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes),
        format,
        ctx,
    )
}

/// A Bundle read as it came, checked for its id.
fn read_bundle(doc: wire::Doc<'_>, ctx: &ReadContext) -> Result<Document, ReadError> {
    let name = bundle_name(doc.id.as_deref());
    if let Some(problem) = doc.id.as_deref().and_then(id_problem) {
        return Err(ReadError::invalid(
            &name,
            format!("Bundle.id {problem}: the document is refused"),
        ));
    }
    map::read_document(doc, ctx)
}

/// An XML Bundle's top level (a [`wire::Doc`] with no entries) and the JSON text of each
/// top-level entry, when the document is a FHIR Bundle whose top level the wire model takes;
/// `None` otherwise (the caller reads the whole tree for the message).
fn xml_lazy(bytes: &[u8]) -> Option<(wire::Doc<'static>, Vec<Box<serde_json::value::RawValue>>)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let xml::Lazy { root, entries } = xml::to_json_lazy(text).ok()?;
    if wire::header(&root).0 != "Bundle" {
        return None;
    }
    let bundle: wire::Bundle = wire::from_value(root).ok()?;
    Some((bundle.into(), entries))
}

/// Reads a whole document as one tree: the slow path, whose messages are the reference.
fn read_tree(bytes: &[u8], format: Format, ctx: &ReadContext) -> Result<Document, ReadError> {
    let value = match format {
        Format::Json => parse_json(bytes)?,
        Format::Xml => parse_xml(bytes)?,
    };
    let (kind, id) = wire::header(&value);
    if kind != "Bundle" {
        return Err(ReadError::NotABundle {
            found: if kind.is_empty() {
                "no resourceType".to_owned()
            } else {
                format!("a resource of type {}", map::shown_type(&kind))
            },
        });
    }
    let name = bundle_name(id.as_deref());
    if let Some(problem) = id.as_deref().and_then(id_problem) {
        return Err(ReadError::invalid(
            &name,
            format!("Bundle.id {problem}: the document is refused"),
        ));
    }
    let bundle: wire::Bundle = wire::from_value(value)
        .map_err(|wire::ShapeError(e)| ReadError::invalid(&name, format!("unreadable: {e}")))?;
    map::read_document(bundle.into(), ctx)
}

fn parse_json(bytes: &[u8]) -> Result<Value, ReadError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let text = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        ReadError::Json {
            line: e.line(),
            column: e.column(),
            message: scrub(text.strip_suffix(&suffix).unwrap_or(&text)),
        }
    })
}

fn parse_xml(bytes: &[u8]) -> Result<Value, ReadError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = xml::line_column(bytes, e.valid_up_to());
        ReadError::Xml {
            line,
            column,
            message: "the document is not UTF-8".into(),
        }
    })?;
    match xml::to_json(text) {
        Ok(xml::Converted::Fhir(v)) => Ok(v),
        Ok(xml::Converted::Foreign { root, namespace }) => Err(ReadError::NotABundle {
            found: format!(
                "the root element {} is in namespace {}, not {}",
                crate::domain::shown(&root),
                crate::domain::shown(&namespace),
                xml::FHIR_NS
            ),
        }),
        Err(e) => {
            let (line, column) = xml::line_column(bytes, e.offset);
            Err(ReadError::Xml {
                line,
                column,
                message: scrub(&e.message),
            })
        }
    }
}

/// `Bundle/<id>`, or `Bundle` without an id or with one that is not shown ([`id_problem`]).
fn bundle_name(id: Option<&str>) -> String {
    match id {
        Some(id) if id_problem(id).is_none() => format!("Bundle/{id}"),
        _ => "Bundle".to_owned(),
    }
}

/// The longest resource name in a message, in characters.
const NAME_CHARS: usize = 120;
/// The longest message text, in characters (a parser's message may quote its input).
const MESSAGE_CHARS: usize = 300;

/// Masks anything shaped like a CPR number (see [`crate::domain::holds_cpr`]: ten digits, or
/// six digits, a separator and four digits; never inside a UUID) and cuts the text to `max`
/// characters. A last line of defence: messages are built from element names and positions,
/// and quote a value only through [`crate::domain::shown`].
fn scrub_to(text: &str, max: usize) -> String {
    crate::domain::cut(&crate::domain::mask_cpr(text), max)
}

/// [`scrub_to`] a message's length.
pub(crate) fn scrub(text: &str) -> String {
    scrub_to(text, MESSAGE_CHARS)
}

/// Why a resource id (or `Bundle.id`) is not used, if it is not: it holds what looks like a
/// CPR number, or it is longer than a FHIR id may be (64 characters). Such an id is never
/// printed nor stored.
pub(crate) fn id_problem(id: &str) -> Option<&'static str> {
    if crate::domain::holds_cpr(id) {
        Some("holds what looks like a CPR number")
    } else if id.chars().count() > MAX_ID_CHARS {
        Some("is longer than 64 characters")
    } else if id.chars().any(char::is_control) {
        Some("holds control characters")
    } else {
        None
    }
}

/// The longest resource id (FHIR's limit).
const MAX_ID_CHARS: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_cpr_shapes_only() {
        assert_eq!(scrub("value 0101410001 here"), "value ********** here");
        assert_eq!(scrub("x010141-0001y"), "x**********y");
        assert_eq!(scrub("x010141_0001y"), "x**********y");
        assert_eq!(scrub("123456789012345"), "123456789012345");
        assert_eq!(scrub("line 12, column 345"), "line 12, column 345");
        assert_eq!(
            scrub("CarePlan/0aff84ce-2b70-4677-bfa8-78c599d0eaf9"),
            "CarePlan/0aff84ce-2b70-4677-bfa8-78c599d0eaf9"
        );
        assert_eq!(
            scrub("Patient/4081aaa6-1c2d-4e5f-9a0b-5d0101501234"),
            "Patient/4081aaa6-1c2d-4e5f-9a0b-5d0101501234"
        );
        assert_eq!(scrub("01014100012"), "01014100012");
        assert_eq!(scrub(&"x".repeat(1000)).chars().count(), MESSAGE_CHARS + 1);
    }
}
