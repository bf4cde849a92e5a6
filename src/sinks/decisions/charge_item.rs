//! The `ChargeItem` of a course, in FHIR JSON and XML, and the local code system of its codes.

use super::DecisionsConfig;
use crate::domain::{CourseKind, Pseudonym, TerminationReason, Track};
use crate::model::{Course, CourseId, DailyTariff, EndReason};
use crate::sources::Format;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, Event};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::io;

/// The FHIR XML namespace.
const FHIR_NS: &str = "http://hl7.org/fhir";

/// Need groups published in the code system, per track and kind: `1..=MAX_PUBLISHED_GROUP`.
/// A tariff table with more groups needs a new version of the code system.
pub const MAX_PUBLISHED_GROUP: u8 = 9;

/// A `ChargeItem` ready to write: the course it is for, the key of the conditional update, and
/// the body in the configured format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeItemDoc {
    /// The course (also `identifier.value`).
    pub course_id: CourseId,
    /// `identifier.system`.
    pub identifier_system: String,
    /// The format of `body`.
    pub format: Format,
    /// The resource, FHIR JSON or XML (UTF-8), without `id` (the server assigns it).
    pub body: Vec<u8>,
}

impl ChargeItemDoc {
    /// The `ChargeItem` of `course` for the care system's `Patient/{patient_id}`, in
    /// `cfg.format`.
    pub fn new(course: &Course, patient_id: &str, cfg: &DecisionsConfig) -> Self {
        let fields = Fields::of(course, patient_id, cfg);
        let body = match cfg.format {
            Format::Json => fields.to_json(),
            Format::Xml => fields.to_xml(),
        };
        ChargeItemDoc {
            course_id: course.id.clone(),
            identifier_system: cfg.identifier_system.clone(),
            format: cfg.format,
            body,
        }
    }

    /// The search token of the identifier, `{system}|{value}` (not yet URL-encoded).
    pub fn identifier_token(&self) -> String {
        format!("{}|{}", self.identifier_system, self.course_id)
    }
}

/// The `ChargeItem` of `course` as a JSON value, for inspection.
///
/// `priceOverride.value` is a JSON number here and so a floating-point number (`250.00` reads
/// as `250.0`); what is written to the care system is [`ChargeItemDoc::body`], where the tariff
/// is the exact decimal text.
pub fn charge_item(course: &Course, patient_id: &str, cfg: &DecisionsConfig) -> Value {
    let json = Fields::of(course, patient_id, cfg).to_json();
    serde_json::from_slice(&json).expect("the ChargeItem JSON is valid")
}

/// The documents to write for `courses`, and the citizens (by [`Pseudonym::short`], sorted,
/// each once) whose courses cannot be written because their care-system `Patient` id is not
/// known (`patient_ids` maps a citizen to it) or is not a valid FHIR id (`[A-Za-z0-9.-]`,
/// 1-64 characters). Those courses are left out, never sent with another reference.
pub fn decisions_to_write(
    courses: &[Course],
    patient_ids: &HashMap<Pseudonym, String>,
    cfg: &DecisionsConfig,
) -> (Vec<(CourseId, ChargeItemDoc)>, Vec<String>) {
    let mut docs = Vec::new();
    let mut missing = BTreeSet::new();
    for course in courses {
        match patient_ids.get(&course.citizen).filter(|id| is_fhir_id(id)) {
            Some(patient_id) => {
                docs.push((
                    course.id.clone(),
                    ChargeItemDoc::new(course, patient_id, cfg),
                ));
            }
            None => {
                missing.insert(course.citizen.short().to_owned());
            }
        }
    }
    (docs, missing.into_iter().collect())
}

/// FHIR `id` syntax: `[A-Za-z0-9\-\.]{1,64}`.
fn is_fhir_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// The code of a course in the local code system: `{track}-{kind}-{group}`
/// (`care-development-2`), or `{track}-individual`. A group course without a group (which the
/// course rules never make) gets the parent code `{track}-{kind}`.
pub fn course_code(course: &Course) -> String {
    match (course.kind, course.group) {
        (CourseKind::Individual, _) | (_, None) => {
            format!("{}-{}", course.track.as_str(), course.kind.as_str())
        }
        (kind, Some(group)) => format!("{}-{}-{group}", course.track.as_str(), kind.as_str()),
    }
}

fn track_display(track: Track) -> (&'static str, &'static str) {
    match track {
        Track::Care => (
            "Pleje og praktisk hjælp",
            "Personal care and practical help",
        ),
        Track::Nursing => ("Sygepleje", "Home nursing"),
    }
}

fn kind_display(kind: CourseKind) -> (&'static str, &'static str) {
    match kind {
        CourseKind::Development => ("udviklingsforløb", "development course"),
        CourseKind::Stabilisation => ("stabiliseringsforløb", "stabilisation course"),
        CourseKind::Individual => ("individuelt forløb", "individual course"),
    }
}

/// Danish and English display of a code's parts.
fn display(track: Track, kind: CourseKind, group: Option<u8>) -> (String, String) {
    let (track_da, track_en) = track_display(track);
    let (kind_da, kind_en) = kind_display(kind);
    match group {
        Some(g) => (
            format!("{track_da}, {kind_da}, gruppe {g}"),
            format!("{track_en}, {kind_en}, group {g}"),
        ),
        None => (
            format!("{track_da}, {kind_da}"),
            format!("{track_en}, {kind_en}"),
        ),
    }
}

fn termination_text(reason: TerminationReason) -> (&'static str, &'static str) {
    match reason {
        TerminationReason::Death => ("død", "death"),
        TerminationReason::MovedOut => ("fraflytning fra kommunen", "moved out"),
        TerminationReason::NursingHome => ("flytning til plejebolig", "moved to a nursing home"),
    }
}

/// The local code system (FHIR `CodeSystem`, `content: complete`) with every code
/// [`course_code`] emits for groups `1..=MAX_PUBLISHED_GROUP`: per track, the parent codes
/// `{track}-development` and `{track}-stabilisation` with their groups as children, and
/// `{track}-individual`. Displays are Danish, with an English designation.
pub fn code_system(url: &str) -> Value {
    let concept = |code: String, (da, en): (String, String), children: Vec<Value>| {
        let mut c = json!({
            "code": code,
            "display": da,
            "designation": [{"language": "en", "value": en}],
        });
        if !children.is_empty() {
            c["concept"] = Value::Array(children);
        }
        c
    };
    let mut concepts = Vec::new();
    let mut count = 0;
    for track in Track::ALL {
        for kind in [CourseKind::Development, CourseKind::Stabilisation] {
            let children = (1..=MAX_PUBLISHED_GROUP)
                .map(|g| {
                    concept(
                        format!("{}-{}-{g}", track.as_str(), kind.as_str()),
                        display(track, kind, Some(g)),
                        Vec::new(),
                    )
                })
                .collect::<Vec<_>>();
            count += 1 + children.len();
            concepts.push(concept(
                format!("{}-{}", track.as_str(), kind.as_str()),
                display(track, kind, None),
                children,
            ));
        }
        count += 1;
        concepts.push(concept(
            format!("{}-individual", track.as_str()),
            display(track, CourseKind::Individual, None),
            Vec::new(),
        ));
    }
    json!({
        "resourceType": "CodeSystem",
        "url": url,
        "version": "1.0.0",
        "name": "ProgressionCourse",
        "title": "Progressionsforløb (hjemmepleje og sygepleje)",
        "status": "active",
        "experimental": false,
        "publisher": "progression-gateway",
        "description": "Forløb i progressionsmodellen: spor (pleje og praktisk hjælp, sygepleje), forløbstype (udviklingsforløb, stabiliseringsforløb, individuelt forløb) og behovsgruppe. Koden er {spor}-{type}-{gruppe}, fx care-development-2; individuelle forløb har ingen gruppe (care-individual). / Courses of the progression model: track, course kind and need group.",
        "language": "da",
        "caseSensitive": true,
        "hierarchyMeaning": "is-a",
        "content": "complete",
        "count": count,
        "concept": concepts,
    })
}

/// The elements of a `ChargeItem`, in FHIR order; `price` is the exact decimal text.
struct Fields {
    identifier_system: String,
    identifier_value: String,
    code_system: String,
    code: String,
    display: String,
    subject: String,
    start: String,
    end: String,
    quantity: Option<i64>,
    price: String,
    notes: Vec<String>,
}

/// A marker no other string of the resource can contain (identifiers and ids have no control
/// characters), replaced by the decimal text after serialization.
const PRICE_MARKER: &str = "\u{1}price\u{1}";

impl Fields {
    fn of(course: &Course, patient_id: &str, cfg: &DecisionsConfig) -> Self {
        let group = match course.kind {
            CourseKind::Individual => None,
            _ => course.group,
        };
        let (display, _) = display(course.track, course.kind, group);
        let (quantity, price, price_note) = match course.tariff {
            DailyTariff::Locked { amount } => (
                Some(course.days()),
                amount.to_string(),
                "Dagstakst i DKK pr. dag, låst ved forløbets start. / Daily tariff, DKK per day, \
                 locked at the start of the course.",
            ),
            DailyTariff::Individual { hourly_rate } => (
                None,
                hourly_rate.to_string(),
                "Individuelt forløb: prisen er timeprisen i DKK pr. visiteret time; dagsbeløbet \
                 følger de aktive bevillinger. / Individual course: the price is DKK per \
                 visitated hour; the daily amount follows the active grants.",
            ),
        };
        let mut notes = vec![price_note.to_owned()];
        if let EndReason::Terminated(reason) = course.end_reason {
            let (da, en) = termination_text(reason);
            notes.push(format!(
                "Forløbet sluttede før tid den {end}: {da}. / The course ended early on {end}: \
                 {en}.",
                end = course.end
            ));
        }
        Fields {
            identifier_system: cfg.identifier_system.clone(),
            identifier_value: course.id.0.clone(),
            code_system: cfg.code_system.clone(),
            code: course_code(course),
            display,
            subject: format!("Patient/{patient_id}"),
            start: course.start.to_string(),
            end: course.end.to_string(),
            quantity,
            price,
            notes,
        }
    }

    fn to_json(&self) -> Vec<u8> {
        // Structs rather than `json!` objects, so that the elements keep the FHIR order.
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Wire<'a> {
            resource_type: &'static str,
            identifier: [Identifier<'a>; 1],
            status: &'static str,
            code: Code<'a>,
            subject: Reference<'a>,
            occurrence_period: Period<'a>,
            #[serde(skip_serializing_if = "Option::is_none")]
            quantity: Option<Quantity>,
            price_override: Money,
            note: Vec<Note<'a>>,
        }
        #[derive(Serialize)]
        struct Identifier<'a> {
            system: &'a str,
            value: &'a str,
        }
        #[derive(Serialize)]
        struct Code<'a> {
            coding: [Coding<'a>; 1],
            text: &'a str,
        }
        #[derive(Serialize)]
        struct Coding<'a> {
            system: &'a str,
            code: &'a str,
            display: &'a str,
        }
        #[derive(Serialize)]
        struct Reference<'a> {
            reference: &'a str,
        }
        #[derive(Serialize)]
        struct Period<'a> {
            start: &'a str,
            end: &'a str,
        }
        #[derive(Serialize)]
        struct Quantity {
            value: i64,
        }
        #[derive(Serialize)]
        struct Money {
            value: &'static str,
            currency: &'static str,
        }
        #[derive(Serialize)]
        struct Note<'a> {
            text: &'a str,
        }
        let wire = Wire {
            resource_type: "ChargeItem",
            identifier: [Identifier {
                system: &self.identifier_system,
                value: &self.identifier_value,
            }],
            status: "billable",
            code: Code {
                coding: [Coding {
                    system: &self.code_system,
                    code: &self.code,
                    display: &self.display,
                }],
                text: &self.display,
            },
            subject: Reference {
                reference: &self.subject,
            },
            occurrence_period: Period {
                start: &self.start,
                end: &self.end,
            },
            quantity: self.quantity.map(|value| Quantity { value }),
            price_override: Money {
                value: PRICE_MARKER,
                currency: "DKK",
            },
            note: self.notes.iter().map(|text| Note { text }).collect(),
        };
        let text = serde_json::to_string(&wire).expect("serializing JSON values cannot fail");
        let marker = serde_json::to_string(PRICE_MARKER).expect("a string serializes");
        debug_assert_eq!(text.matches(&marker).count(), 1);
        text.replacen(&marker, &self.price, 1).into_bytes()
    }

    fn to_xml(&self) -> Vec<u8> {
        self.write_xml().expect("writing XML to memory cannot fail")
    }

    fn write_xml(&self) -> io::Result<Vec<u8>> {
        fn value<W: io::Write>(w: &mut Writer<W>, name: &str, v: &str) -> io::Result<()> {
            w.create_element(name)
                .with_attribute(("value", v))
                .write_empty()?;
            Ok(())
        }
        let mut w = Writer::new(Vec::new());
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("ChargeItem")
            .with_attribute(("xmlns", FHIR_NS))
            .write_inner_content(|w| {
                w.create_element("identifier").write_inner_content(|w| {
                    value(w, "system", &self.identifier_system)?;
                    value(w, "value", &self.identifier_value)
                })?;
                value(w, "status", "billable")?;
                w.create_element("code").write_inner_content(|w| {
                    w.create_element("coding").write_inner_content(|w| {
                        value(w, "system", &self.code_system)?;
                        value(w, "code", &self.code)?;
                        value(w, "display", &self.display)
                    })?;
                    value(w, "text", &self.display)
                })?;
                w.create_element("subject")
                    .write_inner_content(|w| value(w, "reference", &self.subject))?;
                w.create_element("occurrencePeriod")
                    .write_inner_content(|w| {
                        value(w, "start", &self.start)?;
                        value(w, "end", &self.end)
                    })?;
                if let Some(q) = self.quantity {
                    w.create_element("quantity")
                        .write_inner_content(|w| value(w, "value", &q.to_string()))?;
                }
                w.create_element("priceOverride").write_inner_content(|w| {
                    value(w, "value", &self.price)?;
                    value(w, "currency", "DKK")
                })?;
                for note in &self.notes {
                    w.create_element("note")
                        .write_inner_content(|w| value(w, "text", note))?;
                }
                Ok(())
            })?;
        Ok(w.into_inner())
    }
}
