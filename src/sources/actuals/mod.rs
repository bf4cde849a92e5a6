//! The finance system's actuals: costs booked per cost centre and month, as CSV files in a
//! landing folder (`[actuals]`), for the cockpit's costs, balance and run-rate forecast.
//!
//! Each `*.csv` file directly in the folder has a header row naming at least the three
//! configured columns (default `cost_centre`, `month`, `amount`; other columns, such as the
//! account or a text, are allowed and not read). `cost_centre` is 1-10 digits, `month` is
//! `YYYY-MM` or `YYYYMM`, `amount` a decimal number (with `decimal_comma`, the Danish way:
//! `1.234,56`; else `1234.56`), costs positive. Rows of the same cost centre and month in one
//! file are added up (one row per account, say).
//!
//! Files stay in the folder (the finance system owns it) and are read on every pull; a file is
//! stored once per content (its SHA-256). A file read later replaces, for each cost centre and
//! month it holds, what earlier files said (the finance system re-exports restated months). A
//! file with any bad row stores nothing, and every problem is reported by file, line and
//! column; the other files are still read. Nothing about a citizen is in these files.

use crate::model::YearMonth;
use crate::model::figures::Actual;
use crate::sinks::finance::csv::CsvEncoding;
use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest actuals file read by default (bytes).
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The most data rows an actuals file may have.
pub const MAX_ROWS: u64 = 200_000;

/// The most `*.csv` files the folder may hold.
pub const MAX_FILES: usize = 10_000;

/// The largest amount (in kroner, either sign) a row may carry.
const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// `[actuals]`: where the finance system's actuals files land and how they are written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActualsSettings {
    /// The folder (relative to the configuration file); it must exist.
    pub dir: PathBuf,
    /// Field delimiter, an ASCII character (default `;`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// `utf-8` (default) or `windows-1252`.
    #[serde(default)]
    pub encoding: CsvEncoding,
    /// Amounts with a decimal comma and `.` between thousands (`1.234,56`; default true).
    #[serde(default = "default_true")]
    pub decimal_comma: bool,
    /// The header names of the columns read.
    #[serde(default)]
    pub columns: ActualsColumns,
    /// The largest file read (bytes, default 16 MiB); a larger one is refused unread.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
}

/// `[actuals.columns]`: the header names of the three columns read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ActualsColumns {
    /// The cost centre (default `cost_centre`).
    pub cost_centre: String,
    /// The month (default `month`).
    pub month: String,
    /// The amount (default `amount`).
    pub amount: String,
}

impl Default for ActualsColumns {
    fn default() -> Self {
        ActualsColumns {
            cost_centre: "cost_centre".into(),
            month: "month".into(),
            amount: "amount".into(),
        }
    }
}

fn default_delimiter() -> char {
    ';'
}

fn default_true() -> bool {
    true
}

fn default_max_file_bytes() -> u64 {
    DEFAULT_MAX_FILE_BYTES
}

impl ActualsSettings {
    /// What is wrong with the settings (the folder is checked by the loader).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.delimiter.is_ascii() || self.delimiter.is_ascii_alphanumeric() {
            out.push(format!(
                "actuals.delimiter `{}` must be an ASCII punctuation or whitespace character",
                self.delimiter
            ));
        }
        let c = &self.columns;
        for (key, name) in [
            ("cost_centre", &c.cost_centre),
            ("month", &c.month),
            ("amount", &c.amount),
        ] {
            if name.trim().is_empty() {
                out.push(format!("actuals.columns.{key} is empty"));
            }
        }
        if c.cost_centre == c.month || c.cost_centre == c.amount || c.month == c.amount {
            out.push("actuals.columns must name three different columns".into());
        }
        if self.max_file_bytes == 0 {
            out.push("actuals.max_file_bytes must be above 0".into());
        }
        out
    }
}

/// A problem with the actuals folder or one of its files: the file, the line (1 is the
/// header; 0 the file as a whole) and what is wrong, naming the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct ActualsError {
    /// The file (or the folder).
    pub file: String,
    /// The line.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// One file as read: its name, content hash and costs per cost centre and month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActualsFile {
    /// The file name (no folder).
    pub name: String,
    /// SHA-256 of its bytes, hex.
    pub content_hash: String,
    /// Costs per cost centre and month (rows of the same pair added up), sorted.
    pub actuals: Vec<Actual>,
}

/// A month written `YYYY-MM` or `YYYYMM`.
pub fn parse_month(text: &str) -> Option<YearMonth> {
    let t = text.trim();
    let (y, m) = match (t.len(), t.as_bytes().get(4)) {
        (7, Some(b'-')) => (&t[..4], &t[5..]),
        (6, _) => (&t[..4], &t[4..]),
        _ => return None,
    };
    if !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, month): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    ((1..=12).contains(&month) && (1900..=9999).contains(&year))
        .then_some(YearMonth { year, month })
}

/// An amount: with `decimal_comma`, `1.234,56` or `1234,56`; else `1234.56`. A leading minus
/// is a credit. At most two decimals.
pub fn parse_amount(text: &str, decimal_comma: bool) -> Result<Decimal, String> {
    let t = text.trim();
    let plain = if decimal_comma {
        let (whole, frac) = match t.split_once(',') {
            Some((w, f)) => (w, Some(f)),
            None => (t, None),
        };
        let digits = whole.strip_prefix('-').unwrap_or(whole);
        // Thousands separators must group by three.
        let groups: Vec<&str> = digits.split('.').collect();
        if groups.len() > 1
            && (groups[0].is_empty()
                || groups[0].len() > 3
                || groups[1..].iter().any(|g| g.len() != 3))
        {
            return Err("has `.` in the wrong places (thousands are grouped by three)".into());
        }
        let whole = whole.replace('.', "");
        match frac {
            Some(f) => format!("{whole}.{f}"),
            None => whole,
        }
    } else {
        if t.contains(',') {
            return Err("has a comma: write amounts as 1234.56 (or set decimal_comma)".into());
        }
        t.to_owned()
    };
    let ok_chars = plain
        .strip_prefix('-')
        .unwrap_or(&plain)
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.');
    if plain.is_empty() || !ok_chars {
        return Err("is not an amount".into());
    }
    let d = Decimal::from_str_exact(&plain).map_err(|_| "is not an amount".to_owned())?;
    if d.scale() > 2 {
        return Err("has more than two decimals".into());
    }
    if d.abs() >= Decimal::from(MAX_AMOUNT) {
        return Err("is too large".into());
    }
    Ok(d)
}

/// Reads one actuals file. Every problem is reported (file, line, column).
pub fn read(path: &Path, settings: &ActualsSettings) -> Result<ActualsFile, Vec<ActualsError>> {
    let file = path.display().to_string();
    let err = |line: u64, message: String| ActualsError {
        file: file.clone(),
        line,
        message,
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| vec![err(0, "the file name is not UTF-8".into())])?;
    let size = std::fs::metadata(path)
        .map_err(|e| vec![err(0, format!("cannot read the file: {e}"))])?
        .len();
    if size > settings.max_file_bytes {
        return Err(vec![err(
            0,
            format!(
                "the file has {size} bytes, more than actuals.max_file_bytes ({})",
                settings.max_file_bytes
            ),
        )]);
    }
    let bytes = std::fs::read(path).map_err(|e| vec![err(0, format!("cannot read: {e}"))])?;
    let content_hash = hex::encode(Sha256::digest(&bytes));
    let text = match settings.encoding {
        CsvEncoding::Utf8 => String::from_utf8(bytes).map_err(|e| {
            vec![err(
                0,
                format!(
                    "is not UTF-8 (byte {}); set actuals.encoding = \"windows-1252\" if the finance system writes that",
                    e.utf8_error().valid_up_to()
                ),
            )]
        })?,
        CsvEncoding::Windows1252 => encoding_rs::WINDOWS_1252.decode(&bytes).0.into_owned(),
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(settings.delimiter as u8)
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| vec![err(1, format!("cannot read the header: {e}"))])?
        .clone();
    let c = &settings.columns;
    let position = |want: &str| header.iter().position(|h| h.trim() == want);
    let (Some(ci), Some(mi), Some(ai)) = (
        position(&c.cost_centre),
        position(&c.month),
        position(&c.amount),
    ) else {
        let missing: Vec<String> = [&c.cost_centre, &c.month, &c.amount]
            .into_iter()
            .filter(|w| position(w).is_none())
            .map(|w| format!("`{w}`"))
            .collect();
        return Err(vec![err(
            1,
            format!(
                "the header has no column {} (columns are separated by `{}`)",
                missing.join(", "),
                settings.delimiter
            ),
        )]);
    };
    let mut sums: BTreeMap<(String, YearMonth), Decimal> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut rows = 0u64;
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                errors.push(err(line, format!("cannot read the row: {e}")));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        rows += 1;
        if rows > MAX_ROWS {
            errors.push(err(line, format!("more than {MAX_ROWS} rows")));
            break;
        }
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let needed = ci.max(mi).max(ai) + 1;
        if record.len() < needed {
            errors.push(err(
                line,
                format!(
                    "the row has {} fields, the header {}: too few",
                    record.len(),
                    header.len()
                ),
            ));
            continue;
        }
        let field = |i: usize| record.get(i).unwrap_or("").trim();
        let shown = |i: usize| crate::domain::shown(field(i));
        let cost_centre = field(ci);
        let cc_ok = (1..=10).contains(&cost_centre.len())
            && cost_centre.bytes().all(|b| b.is_ascii_digit());
        if !cc_ok {
            errors.push(err(
                line,
                format!(
                    "column `{}` ({}) is not a cost centre (1-10 digits)",
                    c.cost_centre,
                    shown(ci)
                ),
            ));
        }
        let month = parse_month(field(mi));
        if month.is_none() {
            errors.push(err(
                line,
                format!(
                    "column `{}` ({}) is not a month (YYYY-MM or YYYYMM)",
                    c.month,
                    shown(mi)
                ),
            ));
        }
        let amount = match parse_amount(field(ai), settings.decimal_comma) {
            Ok(a) => Some(a),
            Err(why) => {
                errors.push(err(
                    line,
                    format!("column `{}` ({}) {why}", c.amount, shown(ai)),
                ));
                None
            }
        };
        if let (true, Some(month), Some(amount)) = (cc_ok, month, amount) {
            *sums.entry((cost_centre.to_owned(), month)).or_default() += amount;
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ActualsFile {
        name,
        content_hash,
        actuals: sums
            .into_iter()
            .map(|((cost_centre, month), amount)| Actual {
                cost_centre,
                month,
                amount,
            })
            .collect(),
    })
}

/// The `*.csv` files directly in the folder, sorted by name.
fn files(dir: &Path) -> Result<Vec<PathBuf>, ActualsError> {
    let folder_err = |message: String| ActualsError {
        file: dir.display().to_string(),
        line: 0,
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| folder_err(format!("cannot list the actuals folder: {e}")))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| folder_err(format!("cannot list the actuals folder: {e}")))?
            .path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let csv = Path::new(&name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if csv && !name.starts_with('.') && path.is_file() {
            out.push(path);
        }
    }
    if out.len() > MAX_FILES {
        return Err(folder_err(format!(
            "the folder holds {} CSV files, more than the {MAX_FILES} read",
            out.len()
        )));
    }
    out.sort();
    Ok(out)
}

/// What an actuals sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ActualsSummary {
    /// Valid files in the folder.
    pub files: u64,
    /// Of those, read for the first time (new content) and stored.
    pub stored_files: u64,
    /// Cost centre and month pairs in the stored files.
    pub stored_months: u64,
}

/// Why a sync did not read everything.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Some files (or the folder) are invalid; the valid files were stored.
    #[error("{}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// Every problem.
        errors: Vec<ActualsError>,
        /// What was stored anyway.
        summary: ActualsSummary,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Reads every `*.csv` of the folder and stores the files not stored before (by content),
/// each in its own transaction, in name order.
pub async fn sync(
    store: &crate::store::Store,
    settings: &ActualsSettings,
) -> Result<ActualsSummary, SyncError> {
    let paths = files(&settings.dir).map_err(|e| SyncError::Invalid {
        errors: vec![e],
        summary: ActualsSummary::default(),
    })?;
    let mut summary = ActualsSummary::default();
    let mut errors = Vec::new();
    for path in &paths {
        let file = match read(path, settings) {
            Ok(f) => f,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        summary.files += 1;
        if store.put_actuals_file(&file).await? {
            summary.stored_files += 1;
            summary.stored_months += file.actuals.len() as u64;
            tracing::info!(
                message = "Finance actuals stored.",
                file = %file.name,
                months = file.actuals.len()
            );
        }
    }
    if errors.is_empty() {
        Ok(summary)
    } else {
        Err(SyncError::Invalid { errors, summary })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_yyyy_mm_or_yyyymm() {
        assert_eq!(
            parse_month("2027-01"),
            Some(YearMonth {
                year: 2027,
                month: 1
            })
        );
        assert_eq!(
            parse_month("202712"),
            Some(YearMonth {
                year: 2027,
                month: 12
            })
        );
        for bad in [
            "2027-13", "2027-1", "27-01", "2027/01", "jan 2027", "", "2027-00",
        ] {
            assert_eq!(parse_month(bad), None, "{bad}");
        }
    }

    #[test]
    fn amounts_the_danish_way_and_the_plain_way() {
        let d = |s: &str| Decimal::from_str_exact(s).unwrap();
        assert_eq!(parse_amount("1.234.567,89", true), Ok(d("1234567.89")));
        assert_eq!(parse_amount("-1234,5", true), Ok(d("-1234.5")));
        assert_eq!(parse_amount("1234", true), Ok(d("1234")));
        assert_eq!(parse_amount("1234.56", false), Ok(d("1234.56")));
        assert!(parse_amount("1.23,45", true).is_err());
        assert!(parse_amount("1234,567", true).is_err());
        assert!(parse_amount("1,234.56", false).is_err());
        assert!(parse_amount("12e3", false).is_err());
        assert!(parse_amount("", true).is_err());
        assert!(parse_amount("1000000000000", false).is_err());
    }
}
