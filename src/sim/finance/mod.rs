//! A simulated finance system in the manner of KMD Opus: it books vouchers from
//! `FinancePostingRequest` XML files (dropped in a folder, which with SFTP is the SSH user's
//! remote folder on the local disk) or from JSON POSTs, and answers with
//! `FinancePostingResponse` XML.
//!
//! Per voucher it checks, in this order: the number is not already booked this year (the
//! 3rd-4th characters of the number are the year) -> `E` "Voucher number {n} already
//! received this year", not booked again; then the number (1-10 characters), the line count
//! (`NUMBER_OF_LINES`), each line (`D` positive, `K` negative, `AMT_DOCCUR` with 2 decimals,
//! 8-digit `GL_ACCOUNT`, 1-10 digit `COSTCENTER`, `ITEM_TEXT` at most 50 characters), that the
//! lines sum to zero and that `DEBIT_BALANCE`/`CREDIT_BALANCE` equal the debit/credit line sums
//! (`CREDIT_BALANCE` may be given signed or unsigned) -> `E` with the reason, not booked;
//! otherwise it is booked -> `I` "Posted".
//!
//! A file that is not a well-formed `FinancePostingRequest` in the KMD namespace gets a reply
//! with one `E` RETURN without `RECEIV_DOC` ("Malformed file: ..."), and nothing is booked.

mod folder;
mod http;

pub use folder::process_folder;
pub use http::{SimFinanceHttp, serve_http};

use crate::sinks::finance::DebitCredit;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// The KMD Opus posting namespace.
pub const NAMESPACE: &str = "http://kmd.dk/fir/posting/external";

/// One booked line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookedLine {
    /// Line number (`REF_KEY_3`), 0 when not given.
    pub line_no: u32,
    /// Debit or credit.
    pub side: DebitCredit,
    /// Signed amount.
    pub amount: Decimal,
    /// GL account.
    pub gl_account: String,
    /// Cost centre.
    pub cost_centre: String,
    /// Item text.
    pub text: String,
    /// Value date as sent.
    pub value_date: String,
}

/// One booked voucher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookedVoucher {
    /// The voucher number (`RECEIV_DOC`).
    pub number: String,
    /// The year key: the 3rd-4th characters of the number.
    pub year: String,
    /// The file (or HTTP document) it came in.
    pub file_name: String,
    /// Header text.
    pub header_text: String,
    /// Posting date as sent.
    pub posting_date: String,
    /// The lines.
    pub lines: Vec<BookedLine>,
}

/// One `RETURN` row of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnRow {
    /// `I` (booked) or `E` (refused).
    pub message_type: char,
    /// The voucher number, if one could be read.
    pub number: Option<String>,
    /// The text.
    pub message: String,
}

#[derive(Debug, Default)]
struct BooksInner {
    /// By (year key, number).
    vouchers: BTreeMap<(String, String), BookedVoucher>,
    down: bool,
    /// HTTP answers by idempotency key: (body hash, status, body).
    answers: HashMap<String, ([u8; 32], u16, Vec<u8>)>,
}

/// The books of the simulated finance system: a cheap, thread-safe handle.
#[derive(Debug, Clone, Default)]
pub struct Books {
    inner: Arc<Mutex<BooksInner>>,
}

impl Books {
    /// Empty books.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BooksInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// "The finance side is down": the HTTP receiver answers 503 and [`process_folder`]
    /// leaves the inbox alone until it is up again.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Whether it is down.
    pub fn is_down(&self) -> bool {
        self.lock().down
    }

    /// Booked vouchers, by year key and number.
    pub fn vouchers(&self) -> Vec<BookedVoucher> {
        self.lock().vouchers.values().cloned().collect()
    }

    /// The number of booked vouchers.
    pub fn voucher_count(&self) -> usize {
        self.lock().vouchers.len()
    }

    /// The booked voucher with this number (its year key is part of the number).
    pub fn voucher(&self, number: &str) -> Option<BookedVoucher> {
        let year = year_key(number)?;
        self.lock()
            .vouchers
            .get(&(year.to_owned(), number.to_owned()))
            .cloned()
    }

    /// Every booked line, in voucher order.
    pub fn lines(&self) -> Vec<BookedLine> {
        self.lock()
            .vouchers
            .values()
            .flat_map(|v| v.lines.iter().cloned())
            .collect()
    }

    /// The sum of the booked amounts per cost centre.
    pub fn sum_by_cost_centre(&self) -> BTreeMap<String, Decimal> {
        let mut sums = BTreeMap::new();
        for line in self.lines() {
            *sums.entry(line.cost_centre).or_insert(Decimal::ZERO) += line.amount;
        }
        sums
    }

    /// The sum of the booked amounts on one cost centre.
    pub fn total_for_cost_centre(&self, cost_centre: &str) -> Decimal {
        self.lines()
            .iter()
            .filter(|l| l.cost_centre == cost_centre)
            .map(|l| l.amount)
            .sum()
    }

    /// The sum of the booked amounts on one GL account.
    pub fn total_for_gl_account(&self, gl_account: &str) -> Decimal {
        self.lines()
            .iter()
            .filter(|l| l.gl_account == gl_account)
            .map(|l| l.amount)
            .sum()
    }

    /// Checks and books one voucher; the `RETURN` row for it.
    fn book(&self, file_name: &str, doc: &PostingDoc) -> ReturnRow {
        let number = doc.number.clone();
        let refuse = |message: String| ReturnRow {
            message_type: 'E',
            number: Some(number.clone()),
            message,
        };
        let Some(year) = year_key(&number) else {
            return refuse(format!(
                "Voucher number `{number}` must be 4-10 characters with the year in characters 3-4"
            ));
        };
        let mut inner = self.lock();
        let key = (year.to_owned(), number.clone());
        if inner.vouchers.contains_key(&key) {
            return refuse(format!(
                "Voucher number {number} already received this year"
            ));
        }
        match check(doc) {
            Err(reason) => refuse(reason),
            Ok(lines) => {
                inner.vouchers.insert(
                    key,
                    BookedVoucher {
                        number: number.clone(),
                        year: year.to_owned(),
                        file_name: file_name.to_owned(),
                        header_text: doc.header_text.clone(),
                        posting_date: doc.posting_date.clone(),
                        lines,
                    },
                );
                ReturnRow {
                    message_type: 'I',
                    number: Some(number),
                    message: "Posted".into(),
                }
            }
        }
    }
}

/// The year key of a voucher number: its 3rd-4th characters, if they are digits and the
/// number has 4-10 characters.
fn year_key(number: &str) -> Option<&str> {
    let n = number.chars().count();
    if !(4..=10).contains(&n) || !number.is_ascii() {
        return None;
    }
    let y = &number[2..4];
    y.bytes().all(|b| b.is_ascii_digit()).then_some(y)
}

/// One voucher as received (XML or JSON), before the checks.
#[derive(Debug, Clone, Default)]
struct PostingDoc {
    number: String,
    header_text: String,
    posting_date: String,
    /// `NUMBER_OF_LINES`, `DEBIT_BALANCE`, `CREDIT_BALANCE` as sent (absent from JSON).
    number_of_lines: Option<String>,
    debit_balance: Option<String>,
    credit_balance: Option<String>,
    lines: Vec<RawLine>,
}

#[derive(Debug, Clone, Default)]
struct RawLine {
    side: String,
    amount: String,
    value_date: String,
    text: String,
    gl_account: String,
    cost_centre: String,
    ref_key: String,
}

fn parse_amount(s: &str, what: &str) -> Result<Decimal, String> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let ok = match digits.split_once('.') {
        Some((int, frac)) => {
            !int.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.len() == 2
                && frac.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    };
    if !ok {
        return Err(format!("{what} `{s}` is not an amount with 2 decimals"));
    }
    t.parse::<Decimal>()
        .map_err(|e| format!("{what} `{s}`: {e}"))
}

/// The checks; the lines to book, or the reason for refusing.
fn check(doc: &PostingDoc) -> Result<Vec<BookedLine>, String> {
    if doc.lines.len() < 2 {
        return Err(format!(
            "Voucher {} has {} line(s); at least 2 are needed",
            doc.number,
            doc.lines.len()
        ));
    }
    if let Some(n) = &doc.number_of_lines {
        let n: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("NUMBER_OF_LINES `{n}` is not a number"))?;
        if n != doc.lines.len() {
            return Err(format!(
                "NUMBER_OF_LINES {n} but {} lines received",
                doc.lines.len()
            ));
        }
    }
    let mut lines = Vec::with_capacity(doc.lines.len());
    for (i, l) in doc.lines.iter().enumerate() {
        let no = i + 1;
        let amount = parse_amount(&l.amount, &format!("Line {no}: AMT_DOCCUR"))?;
        let side = match l.side.trim() {
            "D" => DebitCredit::Debit,
            "K" => DebitCredit::Credit,
            other => return Err(format!("Line {no}: DEB_CRED_IND `{other}` must be D or K")),
        };
        match side {
            DebitCredit::Debit if amount <= Decimal::ZERO => {
                return Err(format!(
                    "Line {no}: a debit (D) amount must be positive, got {amount}"
                ));
            }
            DebitCredit::Credit if amount >= Decimal::ZERO => {
                return Err(format!(
                    "Line {no}: a credit (K) amount must be negative, got {amount}"
                ));
            }
            _ => {}
        }
        let gl = l.gl_account.trim();
        if gl.len() != 8 || !gl.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("Line {no}: GL_ACCOUNT `{gl}` must be 8 digits"));
        }
        let cc = l.cost_centre.trim();
        if cc.is_empty() || cc.len() > 10 || !cc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("Line {no}: COSTCENTER `{cc}` must be 1-10 digits"));
        }
        let chars = l.text.chars().count();
        if chars > 50 {
            return Err(format!(
                "Line {no}: ITEM_TEXT has {chars} characters, at most 50"
            ));
        }
        lines.push(BookedLine {
            line_no: l.ref_key.trim().parse().unwrap_or(0),
            side,
            amount,
            gl_account: gl.to_owned(),
            cost_centre: cc.to_owned(),
            text: l.text.clone(),
            value_date: l.value_date.clone(),
        });
    }
    let sum: Decimal = lines.iter().map(|l| l.amount).sum();
    if !sum.is_zero() {
        return Err(format!(
            "Voucher {} does not balance: the lines sum to {sum}",
            doc.number
        ));
    }
    let debit: Decimal = lines
        .iter()
        .filter(|l| l.side == DebitCredit::Debit)
        .map(|l| l.amount)
        .sum();
    let credit = debit; // balanced: |credit sum| == debit sum
    if let Some(b) = &doc.debit_balance {
        let b = parse_amount(b, "DEBIT_BALANCE")?;
        if b != debit {
            return Err(format!(
                "DEBIT_BALANCE {b} but the debit lines sum to {debit}"
            ));
        }
    }
    if let Some(b) = &doc.credit_balance {
        let b = parse_amount(b, "CREDIT_BALANCE")?;
        if b.abs() != credit {
            return Err(format!(
                "CREDIT_BALANCE {b} but the credit lines sum to -{credit}"
            ));
        }
    }
    Ok(lines)
}

/// A parsed request file.
#[derive(Debug, Default)]
struct Request {
    file_name: String,
    docs: Vec<PostingDoc>,
}

fn parse_request(xml: &[u8]) -> Result<Request, String> {
    let mut reader = quick_xml::reader::NsReader::from_reader(xml);
    reader.config_mut().trim_text(false);
    let mut buf = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut req = Request::default();
    let mut saw_root = false;
    loop {
        let (ns, event) = reader
            .read_resolved_event_into(&mut buf)
            .map_err(|e| format!("not well-formed XML: {e}"))?;
        match event {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_owned();
                if stack.is_empty() {
                    let in_ns = matches!(ns, ResolveResult::Bound(n) if n.as_ref() == NAMESPACE);
                    if name != "FinancePostingRequest" || !in_ns {
                        return Err(format!(
                            "the root must be FinancePostingRequest in namespace {NAMESPACE}, found `{name}`"
                        ));
                    }
                    saw_root = true;
                }
                match name.as_str() {
                    "POSTING_DOCUMENT" => req.docs.push(PostingDoc::default()),
                    "LINE" if stack.last().map(String::as_str) == Some("LINES") => {
                        let doc = req.docs.last_mut().ok_or("LINE outside POSTING_DOCUMENT")?;
                        doc.lines.push(RawLine::default());
                    }
                    _ => {}
                }
                stack.push(name);
                text.clear();
            }
            Event::Empty(_) => {}
            Event::Text(t) => {
                text.push_str(&t.xml10_content());
            }
            Event::GeneralRef(r) => {
                let name = r.as_ref().to_owned();
                let c = match name.as_str() {
                    "amp" => "&".to_owned(),
                    "lt" => "<".to_owned(),
                    "gt" => ">".to_owned(),
                    "quot" => "\"".to_owned(),
                    "apos" => "'".to_owned(),
                    _ => match r.resolve_char_ref() {
                        Ok(Some(ch)) => ch.to_string(),
                        _ => return Err(format!("unknown entity &{name};")),
                    },
                };
                text.push_str(&c);
            }
            Event::CData(c) => text.push_str(&c.xml10_content()),
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let parent = stack.last().map(String::as_str).unwrap_or("");
                let value = std::mem::take(&mut text);
                let value = value.trim().to_owned();
                match parent {
                    "CONTROL_FIELDS" if name == "FILE_NAME" => req.file_name = value,
                    "HEADER" => {
                        let doc = req
                            .docs
                            .last_mut()
                            .ok_or("HEADER outside POSTING_DOCUMENT")?;
                        match name.as_str() {
                            "RECEIV_DOC" => doc.number = value,
                            "HEADER_TXT" => doc.header_text = value,
                            "PSTNG_DATE" => doc.posting_date = value,
                            "NUMBER_OF_LINES" => doc.number_of_lines = Some(value),
                            "DEBIT_BALANCE" => doc.debit_balance = Some(value),
                            "CREDIT_BALANCE" => doc.credit_balance = Some(value),
                            _ => {}
                        }
                    }
                    "LINE" => {
                        let line = req
                            .docs
                            .last_mut()
                            .and_then(|d| d.lines.last_mut())
                            .ok_or("LINE outside POSTING_DOCUMENT")?;
                        match name.as_str() {
                            "DEB_CRED_IND" => line.side = value,
                            "AMT_DOCCUR" => line.amount = value,
                            "VALUE_DATE" => line.value_date = value,
                            "ITEM_TEXT" => line.text = value,
                            "GL_ACCOUNT" => line.gl_account = value,
                            "COSTCENTER" => line.cost_centre = value,
                            "REF_KEY_3" => line.ref_key = value,
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !saw_root {
        return Err("no FinancePostingRequest element".into());
    }
    if !stack.is_empty() {
        return Err("the file ends inside an element (truncated?)".into());
    }
    Ok(req)
}

/// Processes one `FinancePostingRequest` file: books what passes the checks and returns the
/// `FinancePostingResponse` XML (one `RETURN` per `POSTING_DOCUMENT`, in order). A malformed
/// file books nothing and gets one `E` RETURN without `RECEIV_DOC`.
pub fn process_request(books: &Books, request_xml: &[u8]) -> Vec<u8> {
    match parse_request(request_xml) {
        Ok(req) => {
            let rows: Vec<ReturnRow> = req
                .docs
                .iter()
                .map(|d| books.book(&req.file_name, d))
                .collect();
            reply_xml(&req.file_name, &rows)
        }
        Err(why) => reply_xml(
            "",
            &[ReturnRow {
                message_type: 'E',
                number: None,
                message: format!("Malformed file: {why}"),
            }],
        ),
    }
}

/// Writes a `FinancePostingResponse`.
pub fn reply_xml(file_name: &str, rows: &[ReturnRow]) -> Vec<u8> {
    use quick_xml::escape::escape;
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    s.push_str(&format!("<FinancePostingResponse xmlns=\"{NAMESPACE}\">\n"));
    s.push_str(&format!("  <FILE_NAME>{}</FILE_NAME>\n", escape(file_name)));
    for r in rows {
        s.push_str("  <RETURN>\n");
        s.push_str(&format!(
            "    <MESSAGE_TYPE>{}</MESSAGE_TYPE>\n",
            r.message_type
        ));
        if let Some(n) = &r.number {
            s.push_str(&format!(
                "    <RECEIV_DOC>{}</RECEIV_DOC>\n",
                escape(n.as_str())
            ));
        }
        s.push_str(&format!(
            "    <MESSAGE>{}</MESSAGE>\n",
            escape(r.message.as_str())
        ));
        s.push_str("  </RETURN>\n");
    }
    s.push_str("</FinancePostingResponse>\n");
    s.into_bytes()
}
