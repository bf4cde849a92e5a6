//! The KMD Opus reply file `FinancePostingResponse`: one `RETURN` row per voucher.
//!
//! ```xml
//! <FinancePostingResponse xmlns="http://kmd.dk/fir/posting/external">
//!   <FILE_NAME>ZFIR_KMD_Opus_Posteringer_IND_0751_PG_20270102_031500.xml</FILE_NAME>
//!   <RETURN><MESSAGE_TYPE>I</MESSAGE_TYPE><RECEIV_DOC>PG27000001</RECEIV_DOC><MESSAGE>Posted</MESSAGE></RETURN>
//! </FinancePostingResponse>
//! ```
//!
//! `I` = booked; `E` = refused. A voucher number already received that year is refused with a
//! message saying so (`DEFAULT_DUPLICATE_PATTERNS`, Danish wordings first, or the configured
//! `finance.duplicate_replies`): the voucher was booked before, so it counts as accepted.

use super::opus::KMD_NAMESPACE;
use super::voucher::VoucherNumber;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use quick_xml::writer::Writer;

/// What the finance system said about one voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// Booked (`MESSAGE_TYPE` `I`).
    Accepted,
    /// Refused as a duplicate: the number was already received this year, so it was booked
    /// before. Counts as accepted.
    AlreadyReceived,
    /// Refused, with the finance system's message.
    Rejected(String),
}

impl ReplyOutcome {
    /// Whether the voucher is booked (accepted now or earlier).
    pub fn is_booked(&self) -> bool {
        matches!(self, Self::Accepted | Self::AlreadyReceived)
    }
}

/// A reply (or request) file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {position})")]
pub struct ReplyError {
    /// Byte offset in the file where the problem was found.
    pub position: u64,
    /// What is wrong.
    pub message: String,
}

impl ReplyError {
    fn new(position: u64, message: impl Into<String>) -> Self {
        Self {
            position,
            message: message.into(),
        }
    }
}

/// The wordings by which an `E` reply refuses a voucher number as already received (matched
/// case-insensitively anywhere in its text), Danish first: the default of
/// `finance.duplicate_replies`.
pub const DEFAULT_DUPLICATE_PATTERNS: [&str; 6] = [
    "allerede modtaget",
    "allerede indlæst",
    "allerede bogført",
    "findes allerede",
    "dublet",
    "already received",
];

/// Reads a `FinancePostingResponse` with the default duplicate wordings.
pub fn read_reply(bytes: &[u8]) -> Result<Vec<(VoucherNumber, ReplyOutcome)>, ReplyError> {
    let patterns: Vec<String> = DEFAULT_DUPLICATE_PATTERNS
        .iter()
        .map(|p| (*p).to_owned())
        .collect();
    read_reply_with(bytes, &patterns)
}

/// Reads a `FinancePostingResponse`: the outcome per voucher number, in file order. An `E` row
/// whose text contains one of `duplicate_patterns` (case-insensitively) is
/// [`ReplyOutcome::AlreadyReceived`].
pub fn read_reply_with(
    bytes: &[u8],
    duplicate_patterns: &[String],
) -> Result<Vec<(VoucherNumber, ReplyOutcome)>, ReplyError> {
    let patterns: Vec<String> = duplicate_patterns
        .iter()
        .map(|p| p.trim().to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    let root = parse_tree(bytes)?;
    root.expect_name("FinancePostingResponse")?;
    let mut out = Vec::new();
    for row in root.children.iter().filter(|c| c.name == "RETURN") {
        let kind = row.child_text("MESSAGE_TYPE")?;
        let number = row.child_text("RECEIV_DOC")?;
        let message = row
            .children
            .iter()
            .find(|c| c.name == "MESSAGE")
            .map(|c| c.text.trim().to_owned())
            .unwrap_or_default();
        if number.trim().is_empty() {
            return Err(ReplyError::new(
                row.position,
                "RETURN row without RECEIV_DOC",
            ));
        }
        let outcome = match kind.trim() {
            "I" => ReplyOutcome::Accepted,
            "E" if {
                let text = message.to_lowercase();
                patterns.iter().any(|p| text.contains(p.as_str()))
            } =>
            {
                ReplyOutcome::AlreadyReceived
            }
            "E" => ReplyOutcome::Rejected(message),
            other => {
                return Err(ReplyError::new(
                    row.position,
                    format!(
                        "unknown MESSAGE_TYPE {} (expected I or E)",
                        crate::domain::shown(other)
                    ),
                ));
            }
        };
        out.push((VoucherNumber(number.trim().to_owned()), outcome));
    }
    Ok(out)
}

/// Writes a `FinancePostingResponse` (used by the simulated finance system). A duplicate's
/// message is "Voucher number {n} already received this year".
pub fn write_reply(file_name: &str, rows: &[(VoucherNumber, ReplyOutcome)]) -> Vec<u8> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .expect("writing to memory");
    w.create_element("FinancePostingResponse")
        .with_attribute(("xmlns", KMD_NAMESPACE))
        .write_inner_content(|w| {
            text_el(w, "FILE_NAME", file_name)?;
            for (number, outcome) in rows {
                let (kind, message) = match outcome {
                    ReplyOutcome::Accepted => ("I", "Posted".to_owned()),
                    ReplyOutcome::AlreadyReceived => (
                        "E",
                        format!("Voucher number {number} already received this year"),
                    ),
                    ReplyOutcome::Rejected(m) => ("E", m.clone()),
                };
                w.create_element("RETURN").write_inner_content(|w| {
                    text_el(w, "MESSAGE_TYPE", kind)?;
                    text_el(w, "RECEIV_DOC", &number.0)?;
                    text_el(w, "MESSAGE", &message)?;
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

/// Writes `<name>text</name>`, escaped.
pub(crate) fn text_el<W: std::io::Write>(
    w: &mut Writer<W>,
    name: &str,
    text: &str,
) -> std::io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(text))?;
    Ok(())
}

/// An element of a KMD file, read into memory (the files are small).
#[derive(Debug, Clone, Default)]
pub(crate) struct Element {
    /// Local name.
    pub name: String,
    /// Byte offset of the start tag.
    pub position: u64,
    /// Text content (children's text excluded).
    pub text: String,
    /// Child elements.
    pub children: Vec<Element>,
}

impl Element {
    pub(crate) fn expect_name(&self, name: &str) -> Result<(), ReplyError> {
        if self.name == name {
            Ok(())
        } else {
            Err(ReplyError::new(
                self.position,
                format!(
                    "expected root element {name}, found {}",
                    crate::domain::shown(&self.name)
                ),
            ))
        }
    }

    pub(crate) fn child(&self, name: &str) -> Result<&Element, ReplyError> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| {
                ReplyError::new(
                    self.position,
                    format!("{} has no {name}", crate::domain::shown(&self.name)),
                )
            })
    }

    pub(crate) fn child_text(&self, name: &str) -> Result<&str, ReplyError> {
        Ok(&self.child(name)?.text)
    }
}

/// Parses a whole file into a tree. Every element must be in the KMD namespace.
pub(crate) fn parse_tree(bytes: &[u8]) -> Result<Element, ReplyError> {
    let mut reader = NsReader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let position = reader.buffer_position();
        let (in_kmd, event) = match reader.read_resolved_event_into(&mut buf) {
            Ok((ns, event)) => (
                matches!(ns, ResolveResult::Bound(n) if n.0 == KMD_NAMESPACE),
                event,
            ),
            Err(e) => {
                return Err(ReplyError::new(
                    reader.error_position(),
                    format!(
                        "not XML: {}",
                        crate::domain::cut(&crate::domain::mask_cpr(&e.to_string()), 200)
                    ),
                ));
            }
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let name = AsRef::<str>::as_ref(&start.local_name()).to_owned();
                if !in_kmd {
                    return Err(ReplyError::new(
                        position,
                        format!(
                            "element {} is not in namespace {KMD_NAMESPACE}",
                            crate::domain::shown(&name)
                        ),
                    ));
                }
                if root.is_some() {
                    return Err(ReplyError::new(position, "content after the root element"));
                }
                let el = Element {
                    name,
                    position,
                    ..Element::default()
                };
                if matches!(event, Event::Empty(_)) {
                    close(el, &mut stack, &mut root);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| ReplyError::new(position, "unexpected end tag"))?;
                close(el, &mut stack, &mut root);
            }
            Event::Text(t) => push_text(&mut stack, &t.xml10_content(), position)?,
            Event::CData(t) => push_text(&mut stack, &t.xml10_content(), position)?,
            Event::GeneralRef(r) => {
                let ch = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match &*r.xml10_content() {
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "amp" => "&".into(),
                        "apos" => "'".into(),
                        "quot" => "\"".into(),
                        other => {
                            return Err(ReplyError::new(
                                position,
                                format!("unknown entity {}", crate::domain::shown(other)),
                            ));
                        }
                    },
                    Err(e) => {
                        return Err(ReplyError::new(
                            position,
                            crate::domain::cut(&crate::domain::mask_cpr(&e.to_string()), 200),
                        ));
                    }
                };
                push_text(&mut stack, &ch, position)?;
            }
            Event::DocType(_) => {
                return Err(ReplyError::new(position, "a DOCTYPE is not allowed"));
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
        }
        buf.clear();
    }
    if let Some(open) = stack.last() {
        return Err(ReplyError::new(
            reader.buffer_position(),
            format!("element {} is not closed", crate::domain::shown(&open.name)),
        ));
    }
    root.ok_or_else(|| ReplyError::new(0, "empty file: no root element"))
}

fn close(el: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => *root = Some(el),
    }
}

fn push_text(stack: &mut [Element], text: &str, position: u64) -> Result<(), ReplyError> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(text);
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(ReplyError::new(position, "text outside the root element")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> VoucherNumber {
        VoucherNumber(s.into())
    }

    #[test]
    fn round_trip() {
        let rows = vec![
            (n("PG27000001"), ReplyOutcome::Accepted),
            (n("PG27000002"), ReplyOutcome::AlreadyReceived),
            (
                n("PG27000003"),
                ReplyOutcome::Rejected("Cost centre 9999 <blocked> & closed".into()),
            ),
        ];
        let bytes = write_reply("f.xml", &rows);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("Voucher number PG27000002 already received this year"));
        assert_eq!(read_reply(&bytes).unwrap(), rows);
    }

    #[test]
    fn already_received_is_case_insensitive_and_errors_have_positions() {
        let xml = br#"<FinancePostingResponse xmlns="http://kmd.dk/fir/posting/external"><RETURN><MESSAGE_TYPE>E</MESSAGE_TYPE><RECEIV_DOC>PG27000009</RECEIV_DOC><MESSAGE>Bilag ALREADY RECEIVED</MESSAGE></RETURN></FinancePostingResponse>"#;
        assert_eq!(
            read_reply(xml).unwrap(),
            vec![(n("PG27000009"), ReplyOutcome::AlreadyReceived)]
        );
        let wrong_ns = br#"<FinancePostingResponse><RETURN/></FinancePostingResponse>"#;
        let err = read_reply(wrong_ns).unwrap_err();
        assert_eq!(err.position, 0);
        let broken = br#"<FinancePostingResponse xmlns="http://kmd.dk/fir/posting/external"><RETURN><MESSAGE_TYPE>X</MESSAGE_TYPE><RECEIV_DOC>PG1</RECEIV_DOC></RETURN></FinancePostingResponse>"#;
        let err = read_reply(broken).unwrap_err();
        assert!(err.message.contains("MESSAGE_TYPE"), "{err}");
        assert!(err.position > 0);
        assert!(read_reply(b"<FinancePostingResponse").is_err());
    }
}
