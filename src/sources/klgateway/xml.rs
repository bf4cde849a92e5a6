//! FHIR XML to the JSON shape of the wire model, with quick-xml's streaming namespace reader.
//!
//! FHIR XML is regular enough to convert without knowing the resources:
//! - the default namespace is `http://hl7.org/fhir`; elements of any other namespace (the XHTML
//!   narrative `<div>`) are skipped;
//! - a primitive is an element with a `value` attribute: it becomes a JSON string;
//! - an element named with a capital letter is a resource: it becomes an object with
//!   `resourceType`, and the element wrapping it (`<resource>`) takes it as its value;
//! - any other element becomes an object of its children (and its `url` attribute, for
//!   extensions); a child name seen twice becomes a list. A child seen once stays a single
//!   value: the wire model accepts one value wherever a list may stand.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use serde_json::{Map, Value};

/// The FHIR namespace.
pub(crate) const FHIR_NS: &str = "http://hl7.org/fhir";

/// Where and why the XML could not be read: a byte offset into the input and a message.
#[derive(Debug)]
pub(crate) struct XmlError {
    pub offset: usize,
    pub message: String,
}

/// The XML root was read, but it is not a FHIR element.
#[derive(Debug)]
pub(crate) enum Converted {
    /// The root element as JSON.
    Fhir(Value),
    /// The root element is in another namespace (or none is FHIR).
    Foreign { root: String, namespace: String },
}

/// Deepest element nesting accepted (a delivery report in an incremental delivery is about 15
/// deep): deeper input is refused before it can exhaust the stack of whoever drops the tree.
const MAX_DEPTH: usize = 100;

/// One open element.
struct Frame {
    name: String,
    /// Named with a capital letter: a resource.
    resource: bool,
    /// The `value` attribute of a primitive.
    value: Option<String>,
    /// The children, by name.
    children: Map<String, Value>,
    /// A resource held by this element (`<resource><Patient>...`).
    held: Option<Value>,
}

impl Frame {
    fn into_value(self) -> Value {
        if let Some(held) = self.held {
            return held;
        }
        if let Some(value) = self.value {
            return Value::String(value);
        }
        let mut children = self.children;
        if self.resource {
            children.insert("resourceType".into(), Value::String(self.name));
        }
        Value::Object(children)
    }

    fn add_child(&mut self, name: String, resource: bool, value: Value) {
        if resource {
            self.held = Some(value);
            return;
        }
        match self.children.get_mut(&name) {
            None => {
                self.children.insert(name, value);
            }
            Some(Value::Array(items)) => items.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
        }
    }
}

/// A FHIR XML document whose root element's `entry` children were taken out as they closed,
/// each as the JSON text of its tree: a large Bundle is never one tree.
pub(crate) struct Lazy {
    /// The root element without its `entry` children.
    pub root: Value,
    /// Each `entry` child of the root, in order.
    pub entries: Vec<Box<serde_json::value::RawValue>>,
}

/// [`to_json`] with the root's entries taken out ([`Lazy`]); an error when the root is not a
/// FHIR element (the caller then reads the whole tree for its message).
pub(crate) fn to_json_lazy(text: &str) -> Result<Lazy, XmlError> {
    let mut entries = Vec::new();
    match convert(text, Some(&mut entries))? {
        Converted::Fhir(root) => Ok(Lazy { root, entries }),
        Converted::Foreign { .. } => Err(XmlError {
            offset: 0,
            message: "not a FHIR document".into(),
        }),
    }
}

/// Converts a FHIR XML document (UTF-8 text) to the JSON shape of the wire model.
pub(crate) fn to_json(text: &str) -> Result<Converted, XmlError> {
    convert(text, None)
}

/// Where a root's `entry` children go, when they are taken out.
type EntrySink<'s> = Option<&'s mut Vec<Box<serde_json::value::RawValue>>>;

fn convert(text: &str, mut entries: EntrySink<'_>) -> Result<Converted, XmlError> {
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    // Depth inside a skipped (non-FHIR) element; 0 = not skipping.
    let mut skipping = 0usize;
    let mut root: Option<Value> = None;
    loop {
        let before = reader.buffer_position() as usize;
        let (ns, event) = match reader.read_resolved_event() {
            Ok(x) => x,
            Err(e) => {
                let at = reader.error_position() as usize;
                return Err(XmlError {
                    offset: if at == 0 { before } else { at },
                    message: e.to_string(),
                });
            }
        };
        let in_fhir = match &ns {
            ResolveResult::Bound(ns) => ns.as_ref() == FHIR_NS,
            ResolveResult::Unbound => true,
            ResolveResult::Unknown(_) => false,
        };
        let namespace = match &ns {
            ResolveResult::Bound(ns) => ns.as_ref().to_owned(),
            ResolveResult::Unbound => String::new(),
            ResolveResult::Unknown(prefix) => format!("unknown prefix {prefix}"),
        };
        let (start, empty) = match event {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            Event::End(_) => {
                if skipping > 0 {
                    skipping -= 1;
                    continue;
                }
                let frame = stack.pop().ok_or_else(|| XmlError {
                    offset: before,
                    message: "closing tag without an opening tag".into(),
                })?;
                close(frame, &mut stack, &mut root, &mut entries);
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let Some(start) = start else { continue };
        if skipping > 0 {
            if !empty {
                skipping += 1;
            }
            continue;
        }
        let name = start.local_name().as_ref().to_owned();
        if stack.is_empty() && root.is_none() && !in_fhir {
            return Ok(Converted::Foreign {
                root: name,
                namespace,
            });
        }
        if !in_fhir {
            if !empty {
                skipping = 1;
            }
            continue;
        }
        if root.is_some() {
            return Err(XmlError {
                offset: before,
                message: "more than one root element".into(),
            });
        }
        let frame = open(&start, name).map_err(|message| XmlError {
            offset: before,
            message,
        })?;
        if empty {
            close(frame, &mut stack, &mut root, &mut entries);
        } else if stack.len() >= MAX_DEPTH {
            return Err(XmlError {
                offset: before,
                message: format!("elements nested deeper than {MAX_DEPTH}"),
            });
        } else {
            stack.push(frame);
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError {
            offset: text.len(),
            message: format!("the document ends inside <{}>", open.name),
        });
    }
    root.map(Converted::Fhir).ok_or_else(|| XmlError {
        offset: text.len(),
        message: "no root element".into(),
    })
}

fn open(start: &BytesStart<'_>, name: String) -> Result<Frame, String> {
    let mut frame = Frame {
        resource: name.starts_with(|c: char| c.is_ascii_uppercase()),
        name,
        value: None,
        children: Map::new(),
        held: None,
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let key = attr.key.as_ref();
        if key == "value" || key == "url" {
            let text = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| e.to_string())?
                .into_owned();
            if key == "value" {
                frame.value = Some(text);
            } else {
                frame.children.insert("url".into(), Value::String(text));
            }
        }
    }
    Ok(frame)
}

fn close(frame: Frame, stack: &mut [Frame], root: &mut Option<Value>, entries: &mut EntrySink) {
    let name = frame.name.clone();
    let resource = frame.resource;
    let value = frame.into_value();
    if let (Some(entries), [parent]) = (entries.as_deref_mut(), &*stack)
        && name == "entry"
        && parent.resource
        && parent.name == "Bundle"
        && let Ok(raw) = serde_json::value::to_raw_value(&value)
    {
        entries.push(raw);
        return;
    }
    match stack.last_mut() {
        Some(parent) => parent.add_child(name, resource, value),
        None => *root = Some(value),
    }
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub(crate) fn line_column(text: &[u8], offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(xml: &str) -> Value {
        match to_json(xml).unwrap() {
            Converted::Fhir(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resources_primitives_lists_and_narrative() {
        let v = json(
            r#"<Bundle xmlns="http://hl7.org/fhir"><id value="b1"/><entry><resource><Patient>
            <text><status value="generated"/><div xmlns="http://www.w3.org/1999/xhtml"><p>x <b>y</b></p></div></text>
            <identifier><value value="a&amp;b"/></identifier><identifier><value value="c"/></identifier>
            <extension url="http://x"><valueReference><reference value="CarePlan/1"/></valueReference></extension>
            </Patient></resource></entry></Bundle>"#,
        );
        assert_eq!(v["resourceType"], "Bundle");
        assert_eq!(v["id"], "b1");
        let p = &v["entry"]["resource"];
        assert_eq!(p["resourceType"], "Patient");
        assert_eq!(p["identifier"][0]["value"], "a&b");
        assert_eq!(p["identifier"][1]["value"], "c");
        assert_eq!(p["extension"]["url"], "http://x");
        assert_eq!(p["extension"]["valueReference"]["reference"], "CarePlan/1");
        assert_eq!(p["text"]["status"], "generated");
        assert!(p["text"].get("div").is_none());
    }

    #[test]
    fn errors_carry_an_offset() {
        let err = to_json("<Bundle xmlns=\"http://hl7.org/fhir\">\n  <id value=\"x\">\n</Bundle>")
            .unwrap_err();
        let (line, _) = line_column(
            b"<Bundle xmlns=\"http://hl7.org/fhir\">\n  <id value=\"x\">\n</Bundle>",
            err.offset,
        );
        assert_eq!(line, 3, "{err:?}");
    }

    #[test]
    fn a_foreign_root_is_reported() {
        assert!(matches!(
            to_json("<html xmlns=\"http://www.w3.org/1999/xhtml\"/>").unwrap(),
            Converted::Foreign { .. }
        ));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("<Bundle>{}", "<a>".repeat(10_000));
        assert!(to_json(&deep).unwrap_err().message.contains("deeper"));
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_column(b"ab\ncd", 4), (2, 2));
        assert_eq!(line_column(b"ab", 0), (1, 1));
    }
}
