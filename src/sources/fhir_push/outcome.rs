//! A minimal FHIR R4 `OperationOutcome`, written as FHIR JSON or FHIR XML.

use crate::sources::Format;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, Event};

/// The FHIR namespace, the default namespace of FHIR XML.
pub const FHIR_NS: &str = "http://hl7.org/fhir";

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// `fatal`.
    Fatal,
    /// `error`.
    Error,
    /// `warning`.
    Warning,
    /// `information`.
    Information,
}

impl Severity {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// `OperationOutcome.issue.code` (the IssueType codes the gateway uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    /// `invalid`: content invalid against the specification or a profile.
    Invalid,
    /// `structure`: a structural issue in the content (malformed).
    Structure,
    /// `login`: the user needs to authenticate.
    Login,
    /// `not-supported`: the content type is not supported.
    NotSupported,
    /// `too-long`: the message is too long.
    TooLong,
    /// `incomplete`: the message was not received completely.
    Incomplete,
    /// `transient`: a transient failure; retry later.
    Transient,
    /// `exception`: an unexpected internal error.
    Exception,
    /// `informational`: no problem, a message.
    Informational,
}

impl IssueType {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Login => "login",
            IssueType::NotSupported => "not-supported",
            IssueType::TooLong => "too-long",
            IssueType::Incomplete => "incomplete",
            IssueType::Transient => "transient",
            IssueType::Exception => "exception",
            IssueType::Informational => "informational",
        }
    }
}

/// One `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// How bad.
    pub severity: Severity,
    /// What kind.
    pub code: IssueType,
    /// The message for a person.
    pub diagnostics: String,
}

/// An `OperationOutcome` with its issues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationOutcome {
    /// The issues (FHIR requires at least one).
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    /// An outcome of one issue.
    pub fn single(severity: Severity, code: IssueType, diagnostics: impl Into<String>) -> Self {
        OperationOutcome::default().with(severity, code, diagnostics)
    }

    /// Adds an issue.
    pub fn with(
        mut self,
        severity: Severity,
        code: IssueType,
        diagnostics: impl Into<String>,
    ) -> Self {
        self.issues.push(Issue {
            severity,
            code,
            diagnostics: diagnostics.into(),
        });
        self
    }

    /// FHIR JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let issues: Vec<serde_json::Value> = self
            .issues
            .iter()
            .map(|i| {
                serde_json::json!({
                    "severity": i.severity.code(),
                    "code": i.code.code(),
                    "diagnostics": i.diagnostics,
                })
            })
            .collect();
        let value = serde_json::json!({ "resourceType": "OperationOutcome", "issue": issues });
        serde_json::to_vec(&value).expect("a JSON value serializes")
    }

    /// FHIR XML: root `OperationOutcome` in the default namespace `http://hl7.org/fhir`,
    /// values in `value` attributes. Characters XML 1.0 cannot carry become U+FFFD.
    pub fn to_xml(&self) -> Vec<u8> {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        self.write_xml(&mut w)
            .expect("writing XML into a Vec does not fail");
        let mut out = w.into_inner();
        out.push(b'\n');
        out
    }

    fn write_xml(&self, w: &mut Writer<Vec<u8>>) -> std::io::Result<()> {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("OperationOutcome")
            .with_attribute(("xmlns", FHIR_NS))
            .write_inner_content(|w| {
                for issue in &self.issues {
                    let diagnostics = xml_safe(&issue.diagnostics);
                    w.create_element("issue").write_inner_content(|w| {
                        w.create_element("severity")
                            .with_attribute(("value", issue.severity.code()))
                            .write_empty()?;
                        w.create_element("code")
                            .with_attribute(("value", issue.code.code()))
                            .write_empty()?;
                        w.create_element("diagnostics")
                            .with_attribute(("value", diagnostics.as_str()))
                            .write_empty()?;
                        Ok(())
                    })?;
                }
                Ok(())
            })?;
        Ok(())
    }

    /// The document in `format`.
    pub fn render(&self, format: Format) -> Vec<u8> {
        match format {
            Format::Json => self.to_json(),
            Format::Xml => self.to_xml(),
        }
    }
}

/// Replaces characters XML 1.0 does not allow (control characters other than tab, line feed and
/// carriage return; U+FFFE, U+FFFF) by U+FFFD.
fn xml_safe(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    use quick_xml::reader::NsReader;

    fn sample() -> OperationOutcome {
        OperationOutcome::single(
            Severity::Error,
            IssueType::Invalid,
            "Bundle 1: bad \"date\" <x> & \u{1}\nline 2",
        )
        .with(Severity::Warning, IssueType::Structure, "second")
    }

    #[test]
    fn json_form() {
        let v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        assert_eq!(v["resourceType"], "OperationOutcome");
        assert_eq!(v["issue"][0]["severity"], "error");
        assert_eq!(v["issue"][0]["code"], "invalid");
        assert_eq!(
            v["issue"][0]["diagnostics"],
            "Bundle 1: bad \"date\" <x> & \u{1}\nline 2"
        );
        assert_eq!(v["issue"][1]["code"], "structure");
    }

    #[test]
    fn xml_form_is_well_formed_fhir_xml() {
        let xml = sample().to_xml();
        let text = String::from_utf8(xml.clone()).unwrap();
        assert!(
            text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"),
            "{text}"
        );
        let mut reader = NsReader::from_reader(&xml[..]);
        let mut buf = Vec::new();
        let mut root = None;
        let mut diagnostics = Vec::new();
        loop {
            match reader.read_resolved_event_into(&mut buf).unwrap() {
                (ns, Event::Start(e)) | (ns, Event::Empty(e)) => {
                    assert!(matches!(ns, ResolveResult::Bound(n) if n.as_ref() == FHIR_NS));
                    let name = e.local_name().as_ref().to_owned();
                    if root.is_none() {
                        root = Some(name.clone());
                    }
                    if name == "diagnostics" {
                        let value = e.try_get_attribute("value").unwrap().unwrap();
                        diagnostics.push(
                            value
                                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .unwrap()
                                .into_owned(),
                        );
                    }
                }
                (_, Event::Eof) => break,
                _ => {}
            }
            buf.clear();
        }
        assert_eq!(root.as_deref(), Some("OperationOutcome"));
        assert_eq!(
            diagnostics,
            ["Bundle 1: bad \"date\" <x> & \u{FFFD}\nline 2", "second"]
        );
    }
}
