//! Steering figures to the finance system and BI: each night a CSV file of the year's
//! figures so far, one row per cost centre (a team's, or the fallback cost centre for the days
//! without a team), figure and month, both tracks together, with the columns the receiver
//! wants. It goes through the same kinds of transport as the vouchers (`[finance.transport]`
//! unless `[figures_export.transport]` names another).
//!
//! The file is named by its as-of date and the first 12 hex characters of its content's
//! SHA-256 (`styringstal-2027-02-28-0123456789ab.csv`): the same figures delivered again are
//! the same file (a folder or SFTP server that has it already counts as delivered; HTTP gets
//! the hash as its `Idempotency-Key`), and changed figures (late data for an earlier month)
//! are a new file that replaces the year so far. Nothing in it names a citizen.

use crate::cockpit::{Filter, Number, rows};
use crate::mapping::Mappings;
use crate::model::figures::{Figures, Scope};
use crate::sinks::finance::transport::{Transport, TransportConfig, TransportError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// A column of the export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    /// The cost centre (`teams.toml`'s `cost_centre`, or the fallback cost centre).
    CostCentre,
    /// The team id (`unassigned` for the days without a team).
    Team,
    /// `YYYY-MM`.
    Month,
    /// The month's first day, `YYYY-MM-DD`.
    MonthStart,
    /// The figure's id (`income`, `inflow`, ...).
    Figure,
    /// The figure's Danish name.
    FigureName,
    /// The value (empty: no data).
    Value,
    /// What is counted.
    Numerator,
    /// What it is divided by, for a ratio (empty otherwise).
    Denominator,
    /// The as-of date of the night, `YYYY-MM-DD`.
    AsOf,
}

impl Column {
    /// Its name in the configuration (and the default header).
    pub fn name(self) -> &'static str {
        match self {
            Column::CostCentre => "cost_centre",
            Column::Team => "team",
            Column::Month => "month",
            Column::MonthStart => "month_start",
            Column::Figure => "figure",
            Column::FigureName => "figure_name",
            Column::Value => "value",
            Column::Numerator => "numerator",
            Column::Denominator => "denominator",
            Column::AsOf => "as_of",
        }
    }
}

fn default_columns() -> Vec<Column> {
    vec![
        Column::CostCentre,
        Column::Month,
        Column::Figure,
        Column::Value,
    ]
}

fn default_delimiter() -> char {
    ';'
}

fn default_true() -> bool {
    true
}

fn default_prefix() -> String {
    "styringstal".into()
}

/// `[figures_export]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiguresExportSettings {
    /// Where the file goes; default the vouchers' `[finance.transport]`. A folder or SFTP
    /// transport's `reply_dir` is not read for the export.
    #[serde(default)]
    pub transport: Option<TransportConfig>,
    /// The columns, in order (default `cost_centre`, `month`, `figure`, `value`).
    #[serde(default = "default_columns")]
    pub columns: Vec<Column>,
    /// The header line's names, one per column (default: the column names).
    #[serde(default)]
    pub headers: Option<Vec<String>>,
    /// The figures exported, by id (default: every figure of the catalogue).
    #[serde(default)]
    pub figures: Vec<String>,
    /// The field delimiter (default `;`).
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    /// Decimal comma, as Danish finance systems read numbers (default true): `1552635,00`.
    #[serde(default = "default_true")]
    pub decimal_comma: bool,
    /// The file name's first part (default `styringstal`).
    #[serde(default = "default_prefix")]
    pub file_prefix: String,
}

impl FiguresExportSettings {
    /// What is wrong with the settings.
    pub fn problems(&self, finance_transport: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.transport.is_none() && !finance_transport {
            out.push(
                "figures_export: give [figures_export.transport] or configure [finance]".into(),
            );
        }
        if self.columns.is_empty() {
            out.push("figures_export.columns is empty".into());
        }
        if let Some(h) = &self.headers
            && h.len() != self.columns.len()
        {
            out.push(format!(
                "figures_export.headers has {} names for {} columns",
                h.len(),
                self.columns.len()
            ));
        }
        for f in &self.figures {
            if crate::model::figures::definition(f).is_none() {
                out.push(format!("figures_export.figures: no figure `{f}`"));
            }
        }
        if !self.delimiter.is_ascii() || self.delimiter.is_ascii_alphanumeric() {
            out.push(format!(
                "figures_export.delimiter `{}` must be one ASCII punctuation or tab character",
                self.delimiter
            ));
        }
        if self.file_prefix.is_empty()
            || !self
                .file_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            out.push(format!(
                "figures_export.file_prefix `{}` must be letters, digits, - and _",
                self.file_prefix
            ));
        }
        out
    }
}

/// The file of a night: its name, content and the number of rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    /// `{prefix}-{as_of}-{sha256[..12]}.csv`.
    pub name: String,
    /// The CSV text (UTF-8).
    pub content: Vec<u8>,
    /// Data rows (the header not counted).
    pub rows: usize,
    /// The content's SHA-256, hex.
    pub hash: String,
}

/// The export file of `figs` (a snapshot from 1 January to `as_of`): one row per cost centre,
/// figure and month, both tracks together. Pure.
pub fn file(
    settings: &FiguresExportSettings,
    figs: &Figures,
    mappings: &Mappings,
    as_of: chrono::NaiveDate,
) -> Result<ExportFile, csv::Error> {
    let filter = Filter {
        team: None,
        track: Some("all".into()),
        figure: None,
    };
    let number = if settings.decimal_comma {
        Number::Danish
    } else {
        Number::Plain
    };
    // Danish numbers without thousands separators: a receiver parses them as numbers.
    let unthousand = |s: String| {
        if settings.decimal_comma {
            s.replace('.', "")
        } else {
            s
        }
    };
    let mut w = csv::WriterBuilder::new()
        .delimiter(settings.delimiter as u8)
        .from_writer(Vec::new());
    let header: Vec<String> = match &settings.headers {
        Some(h) => h.clone(),
        None => settings
            .columns
            .iter()
            .map(|c| c.name().to_owned())
            .collect(),
    };
    w.write_record(&header)?;
    // Every cost centre has every month of the year so far, also a month nothing happened in.
    let mut figs = figs.clone();
    let mut scopes: Vec<Scope> = mappings
        .teams
        .iter()
        .map(|t| Scope::Team(t.team.id.clone()))
        .collect();
    if mappings.accounts.is_some() {
        scopes.push(Scope::Unassigned);
    }
    let mut month = crate::model::YearMonth {
        year: chrono::Datelike::year(&as_of),
        month: 1,
    };
    while month <= crate::model::YearMonth::of(as_of) {
        for scope in &scopes {
            figs.cells
                .entry(crate::model::figures::Cell {
                    scope: scope.clone(),
                    month,
                    track: None,
                })
                .or_default();
        }
        month = crate::model::YearMonth::of(
            month
                .first_day()
                .checked_add_months(chrono::Months::new(1))
                .expect("a month"),
        );
    }
    let mut n = 0;
    for (scope, row) in rows(&figs, &filter, number) {
        let cost_centre = match &scope {
            Scope::Team(t) => match mappings.team(t) {
                Some(m) => m.cost_centre.as_str().to_owned(),
                None => continue,
            },
            Scope::Unassigned => match &mappings.accounts {
                Some(a) => a.fallback_cost_centre.as_str().to_owned(),
                None => continue,
            },
            Scope::Municipality => continue,
        };
        if !settings.figures.is_empty() && !settings.figures.iter().any(|f| f == row.figure) {
            continue;
        }
        let def = crate::model::figures::definition(row.figure).expect("a catalogued figure");
        let record: Vec<String> = settings
            .columns
            .iter()
            .map(|c| match c {
                Column::CostCentre => cost_centre.clone(),
                Column::Team => row.team.clone(),
                Column::Month => row.month.clone(),
                Column::MonthStart => format!("{}-01", row.month),
                Column::Figure => row.figure.to_owned(),
                Column::FigureName => def.name.to_owned(),
                Column::Value => unthousand(row.value.clone().unwrap_or_default()),
                Column::Numerator => unthousand(row.numerator.clone()),
                Column::Denominator => unthousand(row.denominator.clone().unwrap_or_default()),
                Column::AsOf => as_of.to_string(),
            })
            .collect();
        w.write_record(&record)?;
        n += 1;
    }
    let content = w.into_inner().map_err(|e| e.into_error())?;
    let hash = hex::encode(Sha256::digest(&content));
    Ok(ExportFile {
        name: format!("{}-{as_of}-{}.csv", settings.file_prefix, &hash[..12]),
        content,
        rows: n,
        hash,
    })
}

/// How a delivery went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Delivered now.
    Delivered,
    /// The receiver had this file already (the same name in the folder, or HTTP 409).
    AlreadyThere,
}

/// Delivers the file through `transport`; the same file twice is delivered once.
pub async fn deliver(transport: &TransportConfig, f: &ExportFile) -> Result<Sent, TransportError> {
    let t = Transport::new(transport)?;
    match t
        .deliver_as(&f.name, &f.content, &f.hash, "text/csv; charset=utf-8")
        .await
    {
        Ok(_) => Ok(Sent::Delivered),
        Err(TransportError::Exists(_)) => Ok(Sent::AlreadyThere),
        Err(e) => Err(e),
    }
}
