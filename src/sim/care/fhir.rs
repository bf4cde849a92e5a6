//! FHIR serialisation of `serde_json::Value` resources: JSON in FHIR element order, and the
//! standard FHIR JSON -> XML mapping.
//!
//! `serde_json::Value` objects keep their keys sorted (the crate does not enable
//! `preserve_order`), but FHIR XML requires the element order of the specification. Both
//! writers therefore order the properties of every object by a small schema of the resources
//! and data types KL Gateway uses ([`SCHEMA`]); properties the schema does not know keep their
//! input order after the known ones. The result does not depend on whether `preserve_order` is on.

use quick_xml::Writer;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::name::QName;
use serde_json::{Map, Value};
use std::borrow::Cow;

/// The FHIR XML namespace.
pub const FHIR_NS: &str = "http://hl7.org/fhir";

/// `(type, elements in order as (name, type of the element))`. A name ending in `[x]` is a
/// choice: `valueReference` matches `value[x]` with type `Reference`. An empty type is a
/// primitive or a type this table does not describe. The resource and element bases (`id`,
/// `meta`, ..., `extension`, `modifierExtension`) are added by [`rank`].
const SCHEMA: &[(&str, &[(&str, &str)])] = &[
    (
        "Bundle",
        &[
            ("identifier", "Identifier"),
            ("type", ""),
            ("timestamp", ""),
            ("total", ""),
            ("link", "Bundle.link"),
            ("entry", "Bundle.entry"),
            ("signature", ""),
        ],
    ),
    ("Bundle.link", &[("relation", ""), ("url", "")]),
    (
        "Bundle.entry",
        &[
            ("link", "Bundle.link"),
            ("fullUrl", ""),
            ("resource", ""),
            ("search", "Bundle.entry.search"),
            ("request", "Bundle.entry.request"),
            ("response", "Bundle.entry.response"),
        ],
    ),
    ("Bundle.entry.search", &[("mode", ""), ("score", "")]),
    (
        "Bundle.entry.request",
        &[
            ("method", ""),
            ("url", ""),
            ("ifNoneMatch", ""),
            ("ifModifiedSince", ""),
            ("ifMatch", ""),
            ("ifNoneExist", ""),
        ],
    ),
    (
        "Bundle.entry.response",
        &[
            ("status", ""),
            ("location", ""),
            ("etag", ""),
            ("lastModified", ""),
            ("outcome", ""),
        ],
    ),
    (
        "Patient",
        &[
            ("identifier", "Identifier"),
            ("active", ""),
            ("name", "HumanName"),
            ("telecom", "ContactPoint"),
            ("gender", ""),
            ("birthDate", ""),
            ("deceased[x]", ""),
            ("address", "Address"),
            ("maritalStatus", "CodeableConcept"),
            ("multipleBirth[x]", ""),
            ("photo", ""),
            ("contact", ""),
            ("communication", ""),
            ("generalPractitioner", "Reference"),
            ("managingOrganization", "Reference"),
            ("link", ""),
        ],
    ),
    (
        "Condition",
        &[
            ("identifier", "Identifier"),
            ("clinicalStatus", "CodeableConcept"),
            ("verificationStatus", "CodeableConcept"),
            ("category", "CodeableConcept"),
            ("severity", "CodeableConcept"),
            ("code", "CodeableConcept"),
            ("bodySite", "CodeableConcept"),
            ("subject", "Reference"),
            ("encounter", "Reference"),
            ("onset[x]", ""),
            ("abatement[x]", ""),
            ("recordedDate", ""),
            ("recorder", "Reference"),
            ("asserter", "Reference"),
            ("stage", ""),
            ("evidence", ""),
            ("note", "Annotation"),
        ],
    ),
    (
        "Goal",
        &[
            ("identifier", "Identifier"),
            ("lifecycleStatus", ""),
            ("achievementStatus", "CodeableConcept"),
            ("category", "CodeableConcept"),
            ("priority", "CodeableConcept"),
            ("description", "CodeableConcept"),
            ("subject", "Reference"),
            ("start[x]", ""),
            ("target", "Goal.target"),
            ("statusDate", ""),
            ("statusReason", ""),
            ("expressedBy", "Reference"),
            ("addresses", "Reference"),
            ("note", "Annotation"),
            ("outcomeCode", "CodeableConcept"),
            ("outcomeReference", "Reference"),
        ],
    ),
    (
        "Goal.target",
        &[
            ("measure", "CodeableConcept"),
            ("detail[x]", ""),
            ("due[x]", ""),
        ],
    ),
    (
        "CarePlan",
        &[
            ("identifier", "Identifier"),
            ("instantiatesCanonical", ""),
            ("instantiatesUri", ""),
            ("basedOn", "Reference"),
            ("replaces", "Reference"),
            ("partOf", "Reference"),
            ("status", ""),
            ("intent", ""),
            ("category", "CodeableConcept"),
            ("title", ""),
            ("description", ""),
            ("subject", "Reference"),
            ("encounter", "Reference"),
            ("period", "Period"),
            ("created", ""),
            ("author", "Reference"),
            ("contributor", "Reference"),
            ("careTeam", "Reference"),
            ("addresses", "Reference"),
            ("supportingInfo", "Reference"),
            ("goal", "Reference"),
            ("activity", "CarePlan.activity"),
            ("note", "Annotation"),
        ],
    ),
    (
        "CarePlan.activity",
        &[
            ("outcomeCodeableConcept", "CodeableConcept"),
            ("outcomeReference", "Reference"),
            ("progress", "Annotation"),
            ("reference", "Reference"),
            ("detail", "CarePlan.activity.detail"),
        ],
    ),
    (
        "CarePlan.activity.detail",
        &[
            ("kind", ""),
            ("instantiatesCanonical", ""),
            ("instantiatesUri", ""),
            ("code", "CodeableConcept"),
            ("reasonCode", "CodeableConcept"),
            ("reasonReference", "Reference"),
            ("goal", "Reference"),
            ("status", ""),
            ("statusReason", "CodeableConcept"),
            ("doNotPerform", ""),
            ("scheduled[x]", ""),
            ("location", "Reference"),
            ("performer", "Reference"),
            ("product[x]", ""),
            ("dailyAmount", "Quantity"),
            ("quantity", "Quantity"),
            ("description", ""),
        ],
    ),
    (
        "Encounter",
        &[
            ("identifier", "Identifier"),
            ("status", ""),
            ("statusHistory", ""),
            ("class", "Coding"),
            ("classHistory", ""),
            ("type", "CodeableConcept"),
            ("serviceType", "CodeableConcept"),
            ("priority", "CodeableConcept"),
            ("subject", "Reference"),
            ("episodeOfCare", "Reference"),
            ("basedOn", "Reference"),
            ("participant", ""),
            ("appointment", "Reference"),
            ("period", "Period"),
            ("length", "Quantity"),
            ("reasonCode", "CodeableConcept"),
            ("reasonReference", "Reference"),
            ("diagnosis", ""),
            ("account", "Reference"),
            ("hospitalization", ""),
            ("location", ""),
            ("serviceProvider", "Reference"),
            ("partOf", "Reference"),
        ],
    ),
    (
        "Procedure",
        &[
            ("identifier", "Identifier"),
            ("instantiatesCanonical", ""),
            ("instantiatesUri", ""),
            ("basedOn", "Reference"),
            ("partOf", "Reference"),
            ("status", ""),
            ("statusReason", "CodeableConcept"),
            ("category", "CodeableConcept"),
            ("code", "CodeableConcept"),
            ("subject", "Reference"),
            ("encounter", "Reference"),
            ("performed[x]", ""),
            ("recorder", "Reference"),
            ("asserter", "Reference"),
            ("performer", ""),
            ("location", "Reference"),
            ("reasonCode", "CodeableConcept"),
            ("reasonReference", "Reference"),
            ("bodySite", "CodeableConcept"),
            ("outcome", "CodeableConcept"),
            ("report", "Reference"),
            ("complication", "CodeableConcept"),
            ("complicationDetail", "Reference"),
            ("followUp", "CodeableConcept"),
            ("note", "Annotation"),
            ("focalDevice", ""),
            ("usedReference", "Reference"),
            ("usedCode", "CodeableConcept"),
        ],
    ),
    (
        "Observation",
        &[
            ("identifier", "Identifier"),
            ("basedOn", "Reference"),
            ("partOf", "Reference"),
            ("status", ""),
            ("category", "CodeableConcept"),
            ("code", "CodeableConcept"),
            ("subject", "Reference"),
            ("focus", "Reference"),
            ("encounter", "Reference"),
            ("effective[x]", ""),
            ("issued", ""),
            ("performer", "Reference"),
            ("value[x]", ""),
            ("dataAbsentReason", "CodeableConcept"),
            ("interpretation", "CodeableConcept"),
            ("note", "Annotation"),
            ("bodySite", "CodeableConcept"),
            ("method", "CodeableConcept"),
            ("specimen", "Reference"),
            ("device", "Reference"),
            ("referenceRange", ""),
            ("hasMember", "Reference"),
            ("derivedFrom", "Reference"),
            ("component", "Observation.component"),
        ],
    ),
    (
        "Observation.component",
        &[
            ("code", "CodeableConcept"),
            ("value[x]", ""),
            ("dataAbsentReason", "CodeableConcept"),
            ("interpretation", "CodeableConcept"),
            ("referenceRange", ""),
        ],
    ),
    ("OperationOutcome", &[("issue", "OperationOutcome.issue")]),
    (
        "OperationOutcome.issue",
        &[
            ("severity", ""),
            ("code", ""),
            ("details", "CodeableConcept"),
            ("diagnostics", ""),
            ("location", ""),
            ("expression", ""),
        ],
    ),
    (
        "Meta",
        &[
            ("versionId", ""),
            ("lastUpdated", ""),
            ("source", ""),
            ("profile", ""),
            ("security", "Coding"),
            ("tag", "Coding"),
        ],
    ),
    ("Narrative", &[("status", ""), ("div", "")]),
    (
        "Coding",
        &[
            ("system", ""),
            ("version", ""),
            ("code", ""),
            ("display", ""),
            ("userSelected", ""),
        ],
    ),
    ("CodeableConcept", &[("coding", "Coding"), ("text", "")]),
    (
        "Identifier",
        &[
            ("use", ""),
            ("type", "CodeableConcept"),
            ("system", ""),
            ("value", ""),
            ("period", "Period"),
            ("assigner", "Reference"),
        ],
    ),
    (
        "Reference",
        &[
            ("reference", ""),
            ("type", ""),
            ("identifier", "Identifier"),
            ("display", ""),
        ],
    ),
    ("Period", &[("start", ""), ("end", "")]),
    (
        "Quantity",
        &[
            ("value", ""),
            ("comparator", ""),
            ("unit", ""),
            ("system", ""),
            ("code", ""),
        ],
    ),
    (
        "Annotation",
        &[("author[x]", ""), ("time", ""), ("text", "")],
    ),
    (
        "HumanName",
        &[
            ("use", ""),
            ("text", ""),
            ("family", ""),
            ("given", ""),
            ("prefix", ""),
            ("suffix", ""),
            ("period", "Period"),
        ],
    ),
    (
        "ContactPoint",
        &[
            ("system", ""),
            ("value", ""),
            ("use", ""),
            ("rank", ""),
            ("period", "Period"),
        ],
    ),
    (
        "Address",
        &[
            ("use", ""),
            ("type", ""),
            ("text", ""),
            ("line", ""),
            ("city", ""),
            ("district", ""),
            ("state", ""),
            ("postalCode", ""),
            ("country", ""),
            ("period", "Period"),
        ],
    ),
    ("Extension", &[("url", ""), ("value[x]", "")]),
];

/// Elements every resource starts with, in order.
const RESOURCE_BASE: &[(&str, &str)] = &[
    ("id", ""),
    ("meta", "Meta"),
    ("implicitRules", ""),
    ("language", ""),
    ("text", "Narrative"),
    ("contained", ""),
    ("extension", "Extension"),
    ("modifierExtension", "Extension"),
];

/// Elements every data type and backbone element starts with (`id` is an XML attribute).
const ELEMENT_BASE: &[(&str, &str)] = &[
    ("id", ""),
    ("extension", "Extension"),
    ("modifierExtension", "Extension"),
];

/// Where `name` goes in an object of type `ty` (`resource`: the object is a resource) and the
/// type of its value. Unknown names rank after every known one.
fn rank(ty: &str, is_resource: bool, name: &str) -> (usize, &'static str) {
    let base = if is_resource {
        RESOURCE_BASE
    } else {
        ELEMENT_BASE
    };
    if let Some(i) = base.iter().position(|(n, _)| *n == name) {
        return (i, base[i].1);
    }
    if let Some((_, elems)) = SCHEMA.iter().find(|(t, _)| *t == ty) {
        for (i, (n, t)) in elems.iter().enumerate() {
            if let Some(prefix) = n.strip_suffix("[x]") {
                if let Some(suffix) = name.strip_prefix(prefix)
                    && suffix.starts_with(|c: char| c.is_ascii_uppercase())
                {
                    return (base.len() + i, static_type(suffix));
                }
            } else if *n == name {
                return (base.len() + i, t);
            }
        }
    }
    (usize::MAX, "")
}

/// The `'static` name of a data type used as the suffix of a choice element.
fn static_type(suffix: &str) -> &'static str {
    for (t, _) in SCHEMA {
        if *t == suffix {
            return t;
        }
    }
    ""
}

/// One property of an object: its base name, the value and the `_name` primitive extension.
struct Prop<'a> {
    name: &'a str,
    value: Option<&'a Value>,
    ext: Option<&'a Value>,
    child_type: &'static str,
}

/// The properties of `obj` in FHIR order (`resourceType` left out).
fn ordered_props<'a>(obj: &'a Map<String, Value>, ty: &str, is_resource: bool) -> Vec<Prop<'a>> {
    let mut props: Vec<(usize, usize, Prop<'a>)> = Vec::with_capacity(obj.len());
    for (pos, (key, value)) in obj.iter().enumerate() {
        if key == "resourceType" {
            continue;
        }
        if let Some(base) = key.strip_prefix('_') {
            if obj.contains_key(base) {
                continue; // written with its base
            }
            let (r, t) = rank(ty, is_resource, base);
            props.push((
                r,
                pos,
                Prop {
                    name: base,
                    value: None,
                    ext: Some(value),
                    child_type: t,
                },
            ));
            continue;
        }
        let (r, t) = rank(ty, is_resource, key);
        let ext = obj.get(&format!("_{key}"));
        props.push((
            r,
            pos,
            Prop {
                name: key,
                value: Some(value),
                ext,
                child_type: t,
            },
        ));
    }
    props.sort_by_key(|(r, pos, _)| (*r, *pos));
    props.into_iter().map(|(_, _, p)| p).collect()
}

fn resource_type(obj: &Map<String, Value>) -> Option<&str> {
    obj.get("resourceType").and_then(Value::as_str)
}

// ---------------------------------------------------------------------------------------------
// JSON

/// Serialises a FHIR resource as JSON with `resourceType` first and the elements in FHIR order.
/// `pretty` indents by two spaces like the KL Gateway examples.
pub fn to_fhir_json(value: &Value, pretty: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    let mut w = JsonWriter {
        out: &mut out,
        pretty,
    };
    w.value(value, "", 0);
    if pretty {
        out.push(b'\n');
    }
    out
}

struct JsonWriter<'o> {
    out: &'o mut Vec<u8>,
    pretty: bool,
}

impl JsonWriter<'_> {
    fn newline(&mut self, depth: usize) {
        if self.pretty {
            self.out.push(b'\n');
            self.out.extend(std::iter::repeat_n(b' ', depth * 2));
        }
    }

    fn string(&mut self, s: &str) {
        serde_json::to_writer(&mut *self.out, s).expect("writing to a Vec never fails");
    }

    fn key(&mut self, k: &str) {
        self.string(k);
        self.out.push(b':');
        if self.pretty {
            self.out.push(b' ');
        }
    }

    fn value(&mut self, v: &Value, ty: &str, depth: usize) {
        match v {
            Value::Object(obj) => {
                let rt = resource_type(obj);
                let ty = rt.unwrap_or(ty);
                self.out.push(b'{');
                let mut first = true;
                if let Some(rt) = rt {
                    self.newline(depth + 1);
                    self.key("resourceType");
                    self.string(rt);
                    first = false;
                }
                for p in ordered_props(obj, ty, rt.is_some()) {
                    if let Some(v) = p.value {
                        if !first {
                            self.out.push(b',');
                        }
                        first = false;
                        self.newline(depth + 1);
                        self.key(p.name);
                        self.value(v, p.child_type, depth + 1);
                    }
                    if let Some(e) = p.ext {
                        if !first {
                            self.out.push(b',');
                        }
                        first = false;
                        self.newline(depth + 1);
                        self.key(&format!("_{}", p.name));
                        self.value(e, "", depth + 1);
                    }
                }
                if !first {
                    self.newline(depth);
                }
                self.out.push(b'}');
            }
            Value::Array(items) => {
                self.out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(b',');
                    }
                    self.newline(depth + 1);
                    self.value(item, ty, depth + 1);
                }
                if !items.is_empty() {
                    self.newline(depth);
                }
                self.out.push(b']');
            }
            Value::String(s) => self.string(s),
            other => serde_json::to_writer(&mut *self.out, other).expect("writing to a Vec"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XML

/// Converts a FHIR JSON resource to FHIR XML by the standard mapping: the root element is the
/// `resourceType` in the default namespace `http://hl7.org/fhir`; primitives are
/// `<name value="..."/>`, arrays repeated elements, nested resources
/// `<resource><Type>...</Type></resource>`; `id` of elements and `url` of extensions are
/// attributes; `_name` primitive extensions merge into their element; a narrative `div` is
/// written as the XHTML it holds. Elements come in FHIR order. Indented by two spaces, with an
/// XML declaration.
pub fn json_to_fhir_xml(value: &Value) -> Vec<u8> {
    let mut w = Writer::new_with_indent(Vec::with_capacity(8192), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .expect("writing to a Vec never fails");
    match value {
        Value::Object(obj) => {
            let rt = resource_type(obj).unwrap_or("Resource");
            write_resource(&mut w, obj, rt, true);
        }
        other => {
            // Not a resource: nothing sensible to map; write it as a lone primitive.
            write_primitive(&mut w, "value", Some(other), None);
        }
    }
    let mut out = w.into_inner();
    out.push(b'\n');
    out
}

type XmlW = Writer<Vec<u8>>;

fn write_resource(w: &mut XmlW, obj: &Map<String, Value>, rt: &str, root: bool) {
    let mut start = BytesStart::new(rt);
    if root {
        start.push_attribute(("xmlns", FHIR_NS));
    }
    let props = ordered_props(obj, rt, true);
    if props.is_empty() {
        emit(w, Event::Empty(start));
        return;
    }
    emit(w, Event::Start(start));
    for p in props {
        // A resource's `id` is an element, unlike an element's id.
        write_prop(w, &p);
    }
    emit(w, Event::End(BytesEnd::new(rt)));
}

fn write_prop(w: &mut XmlW, p: &Prop<'_>) {
    match (p.value, p.ext) {
        (Some(Value::Array(items)), ext) => {
            let exts = ext.and_then(Value::as_array);
            for (i, item) in items.iter().enumerate() {
                let e = exts.and_then(|a| a.get(i)).filter(|e| !e.is_null());
                write_one(w, p.name, Some(item), e, p.child_type);
            }
        }
        (None, Some(Value::Array(exts))) => {
            for e in exts {
                write_one(w, p.name, None, Some(e), p.child_type);
            }
        }
        (v, e) => write_one(w, p.name, v, e, p.child_type),
    }
}

fn write_one(w: &mut XmlW, name: &str, value: Option<&Value>, ext: Option<&Value>, ty: &str) {
    match value {
        Some(Value::Object(obj)) => {
            if let Some(rt) = resource_type(obj) {
                emit(w, Event::Start(BytesStart::new(name)));
                write_resource(w, obj, rt, false);
                emit(w, Event::End(BytesEnd::new(name)));
            } else {
                write_element(w, name, obj, ty);
            }
        }
        Some(Value::String(s)) if name == "div" => write_div(w, s),
        Some(Value::Null) | None => write_primitive(w, name, None, ext),
        Some(v) => write_primitive(w, name, Some(v), ext),
    }
}

/// A complex element: `id` (and `url` of an extension) as attributes, the rest as children.
fn write_element(w: &mut XmlW, name: &str, obj: &Map<String, Value>, ty: &str) {
    let mut start = BytesStart::new(name);
    let is_extension = ty == "Extension";
    if let Some(id) = obj.get("id").and_then(value_text) {
        push_attr(&mut start, "id", &id);
    }
    if is_extension && let Some(url) = obj.get("url").and_then(value_text) {
        push_attr(&mut start, "url", &url);
    }
    let props: Vec<Prop<'_>> = ordered_props(obj, ty, false)
        .into_iter()
        .filter(|p| !(p.name == "id" || (is_extension && p.name == "url")))
        .collect();
    if props.is_empty() {
        emit(w, Event::Empty(start));
        return;
    }
    emit(w, Event::Start(start));
    for p in &props {
        write_prop(w, p);
    }
    emit(w, Event::End(BytesEnd::new(name)));
}

/// `<name id=".." value="..">` with the extensions of `_name` as children.
fn write_primitive(w: &mut XmlW, name: &str, value: Option<&Value>, ext: Option<&Value>) {
    let mut start = BytesStart::new(name);
    let ext_obj = ext.and_then(Value::as_object);
    if let Some(id) = ext_obj.and_then(|e| e.get("id")).and_then(value_text) {
        push_attr(&mut start, "id", &id);
    }
    if let Some(text) = value.and_then(value_text) {
        push_attr(&mut start, "value", &text);
    }
    let children: Vec<Prop<'_>> = ext_obj
        .map(|e| {
            ordered_props(e, "", false)
                .into_iter()
                .filter(|p| p.name != "id")
                .collect()
        })
        .unwrap_or_default();
    if children.is_empty() {
        emit(w, Event::Empty(start));
        return;
    }
    emit(w, Event::Start(start));
    for p in &children {
        write_prop(w, p);
    }
    emit(w, Event::End(BytesEnd::new(name)));
}

/// The narrative XHTML, written as it is (it carries its own XHTML namespace).
fn write_div(w: &mut XmlW, xhtml: &str) {
    if w.write_indent().is_err() {
        return;
    }
    let trimmed = xhtml.trim();
    if trimmed.contains("xmlns") || !trimmed.starts_with("<div") {
        emit(w, Event::Text(BytesText::from_escaped(trimmed)));
    } else {
        let with_ns = format!(
            "<div xmlns=\"http://www.w3.org/1999/xhtml\"{}",
            &trimmed["<div".len()..]
        );
        emit(w, Event::Text(BytesText::from_escaped(with_ns)));
    }
}

fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn push_attr(start: &mut BytesStart<'_>, key: &str, value: &str) {
    start.push_attribute(Attribute {
        key: QName(key),
        value: Cow::Owned(escape_attr(value)),
    });
}

/// Escapes an attribute value, including the whitespace that attribute normalisation would
/// otherwise turn into spaces.
fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

fn emit(w: &mut XmlW, e: Event<'_>) {
    w.write_event(e).expect("writing to a Vec never fails");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn primitives_extensions_and_nested_resources() {
        let v = json!({
            "resourceType": "Bundle",
            "type": "collection",
            "id": "b1",
            "entry": [{"fullUrl": "x", "resource": {
                "resourceType": "Patient",
                "id": "p",
                "deceasedBoolean": true,
                "_deceasedBoolean": {"id": "d1"},
                "extension": [{"url": "http://e", "valueReference": {"reference": "CarePlan/1"}}],
                "text": {"status": "generated", "div": "<div>a &amp; b</div>"}
            }}]
        });
        let xml = String::from_utf8(json_to_fhir_xml(&v)).unwrap();
        assert!(
            xml.contains("<Bundle xmlns=\"http://hl7.org/fhir\">"),
            "{xml}"
        );
        let id = xml.find("<id value=\"b1\"/>").unwrap();
        let ty = xml.find("<type value=\"collection\"/>").unwrap();
        assert!(id < ty);
        assert!(
            xml.contains("<deceasedBoolean id=\"d1\" value=\"true\"/>"),
            "{xml}"
        );
        assert!(xml.contains("<extension url=\"http://e\">"), "{xml}");
        assert!(xml.contains("<div xmlns=\"http://www.w3.org/1999/xhtml\">a &amp; b</div>"));
        let json = String::from_utf8(to_fhir_json(&v, false)).unwrap();
        assert!(json.starts_with("{\"resourceType\":\"Bundle\",\"id\":\"b1\",\"type\""));
    }
}
