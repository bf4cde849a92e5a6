//! A CSV voucher format for finance systems that import files from a folder (Fujitsu Prisme and
//! others; their formats are unverified, so columns, delimiter and encoding are configurable).
//! One row per voucher line.

use super::voucher::Voucher;
use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use serde::Deserialize;

/// One column of the CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvColumn {
    /// Voucher number (`PG27000001`).
    VoucherNumber,
    /// Line number within the voucher, from 1.
    LineNo,
    /// Posting date, `YYYY-MM-DD`.
    PostingDate,
    /// Value date, `YYYY-MM-DD`.
    ValueDate,
    /// Document date, `YYYY-MM-DD`.
    DocumentDate,
    /// `D` (debit) or `K` (credit).
    Side,
    /// Signed amount with 2 decimals (debit positive).
    Amount,
    /// GL account.
    GlAccount,
    /// Cost centre.
    CostCentre,
    /// Item text.
    Text,
    /// Team id (or `unassigned`).
    Team,
    /// Track (`care` or `nursing`).
    Track,
    /// Month the income belongs to, `YYYY-MM`.
    Month,
}

impl CsvColumn {
    /// All columns, in the default order.
    pub const ALL: [CsvColumn; 13] = [
        CsvColumn::VoucherNumber,
        CsvColumn::LineNo,
        CsvColumn::PostingDate,
        CsvColumn::DocumentDate,
        CsvColumn::ValueDate,
        CsvColumn::GlAccount,
        CsvColumn::CostCentre,
        CsvColumn::Side,
        CsvColumn::Amount,
        CsvColumn::Text,
        CsvColumn::Team,
        CsvColumn::Track,
        CsvColumn::Month,
    ];

    /// The header name (the configuration name).
    pub fn name(self) -> &'static str {
        match self {
            CsvColumn::VoucherNumber => "voucher_number",
            CsvColumn::LineNo => "line_no",
            CsvColumn::PostingDate => "posting_date",
            CsvColumn::ValueDate => "value_date",
            CsvColumn::DocumentDate => "document_date",
            CsvColumn::Side => "side",
            CsvColumn::Amount => "amount",
            CsvColumn::GlAccount => "gl_account",
            CsvColumn::CostCentre => "cost_centre",
            CsvColumn::Text => "text",
            CsvColumn::Team => "team",
            CsvColumn::Track => "track",
            CsvColumn::Month => "month",
        }
    }
}

/// The file's character encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum CsvEncoding {
    /// UTF-8 (no byte order mark).
    #[default]
    #[serde(rename = "utf-8")]
    Utf8,
    /// Windows-1252 (cp1252), common in older Danish finance systems.
    #[serde(rename = "windows-1252")]
    Windows1252,
}

/// Settings of the CSV format (configuration section `[finance.csv]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvSettings {
    /// Columns in order; default all of them (see [`CsvColumn::ALL`]).
    pub columns: Vec<CsvColumn>,
    /// Field delimiter, an ASCII character; default `;`.
    pub delimiter: char,
    /// `utf-8` (default) or `windows-1252`.
    pub encoding: CsvEncoding,
    /// Whether the first row names the columns; default true.
    pub header: bool,
    /// Write amounts with a decimal comma (`1234,50`) instead of a point; default false.
    pub decimal_comma: bool,
}

impl Default for CsvSettings {
    fn default() -> Self {
        Self {
            columns: CsvColumn::ALL.to_vec(),
            delimiter: ';',
            encoding: CsvEncoding::Utf8,
            header: true,
            decimal_comma: false,
        }
    }
}

/// Why the CSV file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The delimiter is not a single-byte ASCII character.
    #[error("CSV delimiter `{0}` must be an ASCII character")]
    Delimiter(char),
    /// No columns are configured.
    #[error("no CSV columns are configured")]
    NoColumns,
    /// A voucher holds a character the encoding cannot represent.
    #[error("voucher {voucher}: `{character}` cannot be written in {encoding}")]
    Unrepresentable {
        /// The voucher number (or `header`).
        voucher: String,
        /// The character.
        character: char,
        /// The encoding.
        encoding: &'static str,
    },
    /// The CSV writer failed.
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// `progression_{YYYYMMDD}_{HHMMSS}.csv`.
pub fn file_name(at: NaiveDateTime) -> String {
    format!("progression_{}.csv", at.format("%Y%m%d_%H%M%S"))
}

fn amount(d: Decimal, comma: bool) -> String {
    let mut d = d;
    d.rescale(2);
    let s = d.to_string();
    if comma { s.replace('.', ",") } else { s }
}

/// Writes the vouchers as CSV, one row per line, in the configured encoding.
pub fn write_csv(s: &CsvSettings, vouchers: &[Voucher]) -> Result<Vec<u8>, CsvError> {
    if !s.delimiter.is_ascii() {
        return Err(CsvError::Delimiter(s.delimiter));
    }
    if s.columns.is_empty() {
        return Err(CsvError::NoColumns);
    }
    let mut out = Vec::new();
    if s.header {
        let names: Vec<&str> = s.columns.iter().map(|c| c.name()).collect();
        out.extend(record(s, &names, "header")?);
    }
    for v in vouchers {
        for l in &v.lines {
            let fields: Vec<String> = s
                .columns
                .iter()
                .map(|c| match c {
                    CsvColumn::VoucherNumber => v.number.0.clone(),
                    CsvColumn::LineNo => l.line_no.to_string(),
                    CsvColumn::PostingDate => v.posting_date.to_string(),
                    CsvColumn::ValueDate => v.value_date.to_string(),
                    CsvColumn::DocumentDate => v.document_date.to_string(),
                    CsvColumn::Side => l.side.code().to_owned(),
                    CsvColumn::Amount => amount(l.amount, s.decimal_comma),
                    CsvColumn::GlAccount => l.gl_account.clone(),
                    CsvColumn::CostCentre => l.cost_centre.as_str().to_owned(),
                    CsvColumn::Text => l.text.clone(),
                    CsvColumn::Team => v.team.clone(),
                    CsvColumn::Track => v.track.to_string(),
                    CsvColumn::Month => v.month.to_string(),
                })
                .collect();
            out.extend(record(s, &fields, &v.number.0)?);
        }
    }
    Ok(out)
}

/// One record, CSV-quoted and encoded.
fn record<T: AsRef<[u8]>>(
    s: &CsvSettings,
    fields: &[T],
    voucher: &str,
) -> Result<Vec<u8>, CsvError> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(s.delimiter as u8)
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(fields)?;
    let utf8 = w
        .into_inner()
        .map_err(|e| CsvError::Csv(e.into_error().into()))?;
    let text = String::from_utf8(utf8).expect("fields are UTF-8");
    match s.encoding {
        CsvEncoding::Utf8 => Ok(text.into_bytes()),
        CsvEncoding::Windows1252 => {
            let enc = encoding_rs::WINDOWS_1252;
            let (bytes, _, unmappable) = enc.encode(&text);
            if unmappable {
                let character = text
                    .chars()
                    .find(|c| {
                        let mut b = [0u8; 4];
                        enc.encode(c.encode_utf8(&mut b)).2
                    })
                    .unwrap_or('?');
                return Err(CsvError::Unrepresentable {
                    voucher: voucher.to_owned(),
                    character,
                    encoding: "windows-1252",
                });
            }
            Ok(bytes.into_owned())
        }
    }
}
