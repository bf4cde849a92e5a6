//! Reading and validating the mapping files of a municipality (the folder `mappings/`):
//!
//! | file | what |
//! |---|---|
//! | `interventions.csv` | one row per intervention code: track, service kind, law, course hint, nursing weight, norm minutes |
//! | `functional_levels.csv` | functional level codes (UUID and legacy) and their level |
//! | `teams.toml` | `[[team]]`: id, name, cost centre, SOR codes, Nexus supplier ids |
//! | `tariffs.toml` | `[[table]]` per track and tariff year, with `[[table.group]]` need groups |
//! | `accounts.toml` | GL accounts of the two tracks, purchaser and fallback cost centres |
//!
//! Every problem found becomes a [`Diagnostic`] naming the file and, wherever there is one, the
//! 1-based line; loading goes on after a problem so that all of them are reported at once.
//! Money is written as quoted decimal strings and parsed to [`Decimal`]: a TOML float is refused.

use super::{
    Accounts, CourseHint, CourseLengths, IndividualRule, InterventionMap, InterventionMapping, Law,
    LevelMap, Mappings, NeedBasis, NeedGroup, ServiceKind, TariffBook, TariffTable, TeamMapping,
};
use crate::domain::{CostCentre, FunctionalLevel, Team, TeamId, Track};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// File name of the intervention code table.
pub const INTERVENTIONS_FILE: &str = "interventions.csv";
/// File name of the functional level code table.
pub const LEVELS_FILE: &str = "functional_levels.csv";
/// File name of the team table.
pub const TEAMS_FILE: &str = "teams.toml";
/// File name of the tariff tables.
pub const TARIFFS_FILE: &str = "tariffs.toml";
/// File name of the accounts.
pub const ACCOUNTS_FILE: &str = "accounts.toml";

/// The header `interventions.csv` must start with.
pub const INTERVENTIONS_HEADER: [&str; 9] = [
    "code",
    "legacy_code",
    "display",
    "track",
    "service_kind",
    "law",
    "course_hint",
    "nursing_weight",
    "norm_minutes_per_week",
];

/// The header `functional_levels.csv` must start with.
pub const LEVELS_HEADER: [&str; 2] = ["code", "level"];

/// One problem in a configuration or mapping file, or in an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as given (or `env NAME` for an environment variable).
    pub file: String,
    /// 1-based line, where the problem has one.
    pub line: Option<usize>,
    /// What is wrong, for a person. Never contains a secret.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic about a whole file (no line).
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: None,
            message: message.into(),
        }
    }

    /// A diagnostic about one line of a file.
    pub fn at(file: impl Into<String>, line: usize, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            line: Some(line),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Loads and validates every mapping file in `dir`, collecting all problems.
pub fn load_dir(dir: &Path) -> Result<Mappings, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let interventions = read(&dir.join(INTERVENTIONS_FILE), &mut diags)
        .map(|src| parse_interventions(&src, &mut diags));
    let levels = read(&dir.join(LEVELS_FILE), &mut diags).map(|src| parse_levels(&src, &mut diags));
    let teams = read(&dir.join(TEAMS_FILE), &mut diags).map(|src| parse_teams(&src, &mut diags));
    let tariffs =
        read(&dir.join(TARIFFS_FILE), &mut diags).map(|src| parse_tariffs(&src, &mut diags));
    let accounts_src = read(&dir.join(ACCOUNTS_FILE), &mut diags);
    let accounts = accounts_src
        .as_ref()
        .and_then(|src| parse_accounts(src, &mut diags));
    if let (Some(src), Some(accounts), Some(teams)) = (&accounts_src, &accounts, &teams) {
        check_accounts_against_teams(src, accounts, teams, &mut diags);
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    match (interventions, levels, teams, tariffs, accounts) {
        (Some(interventions), Some(levels), Some(teams), Some(tariffs), Some(accounts)) => {
            Ok(Mappings {
                interventions,
                levels,
                teams: teams.into_iter().map(|t| t.mapping).collect(),
                tariffs,
                accounts: Some(accounts.accounts),
            })
        }
        // Every `None` above comes with a diagnostic; this is a guard, not a path.
        _ => Err(vec![Diagnostic::file(
            dir.display().to_string(),
            "mappings could not be loaded",
        )]),
    }
}

/// Reads one tariff file in the format of `mappings/tariffs.toml` on its own (a draft for
/// `whatif`, a calibrated table for review): every table, each checked as `load_dir` checks
/// them, every problem with file and line.
pub fn load_tariffs_file(path: &Path) -> Result<Vec<TariffTable>, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let book = read(path, &mut diags).map(|src| parse_tariffs(&src, &mut diags));
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(book.map(|b| b.tables().to_vec()).unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// Source text, lines, TOML helpers (shared with `crate::config`)
// ---------------------------------------------------------------------------------------------

/// The text of one file and its name as shown in diagnostics.
pub(crate) struct Source {
    /// The file name as shown.
    pub name: String,
    /// The whole text.
    pub text: String,
}

impl Source {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// A diagnostic at the line where `span` starts.
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.name, self.line_of(span.start), message)
    }

    /// A diagnostic about the whole file.
    pub fn whole(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic::file(&self.name, message)
    }

    /// A diagnostic from a TOML parse or deserialization error.
    pub fn toml_error(&self, error: &toml::de::Error) -> Diagnostic {
        let mut message = humanize(error.message());
        if message == "duplicate key"
            && let Some(key) = error.span().and_then(|s| self.text.get(s))
        {
            message = format!("duplicate key `{}`", key.trim());
        }
        match error.span() {
            Some(span) => self.at(span, message),
            None => self.whole(message),
        }
    }
}

/// Reads a file, or records why it could not be read.
pub(crate) fn read(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<Source> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Some(Source { name, text }),
        Err(e) => {
            diags.push(Diagnostic::file(name, format!("cannot read the file: {e}")));
            None
        }
    }
}

/// Parses a TOML document into its spanned tree, recording every syntax error.
pub(crate) fn parse_toml<'a>(
    src: &'a Source,
    diags: &mut Vec<Diagnostic>,
) -> Option<Spanned<DeTable<'a>>> {
    let (table, errors) = DeTable::parse_recoverable(&src.text);
    if errors.is_empty() {
        Some(table)
    } else {
        diags.extend(errors.iter().map(|e| src.toml_error(e)));
        None
    }
}

/// Deserializes one spanned TOML value, recording the error (with its line) if it fails.
pub(crate) fn de_value<T: DeserializeOwned>(
    src: &Source,
    value: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    // An unknown key is reported, taken out and the rest deserialized again, so that every
    // unknown key of a file is reported at once, not only the first.
    let mut value = value.clone();
    for _ in 0..MAX_UNKNOWN_KEYS {
        match T::deserialize(ValueDeserializer::from(value.clone())) {
            // After unknown keys only, the rest is still checked (the diagnostics fail the file).
            Ok(v) => return Some(v),
            Err(e) => {
                diags.push(src.toml_error(&e));
                let unknown = e.message().starts_with("unknown field ");
                match e.span() {
                    Some(span) if unknown && remove_key_at(&mut value, &span) => continue,
                    _ => return None,
                }
            }
        }
    }
    None
}

/// At most this many unknown keys of one value are reported.
const MAX_UNKNOWN_KEYS: usize = 50;

/// Removes the key whose span is `span` from the tree; whether one was found.
fn remove_key_at(value: &mut Spanned<DeValue<'_>>, span: &Range<usize>) -> bool {
    match value.get_mut() {
        DeValue::Table(table) => {
            let found = table
                .keys()
                .find(|k| k.span() == *span)
                .map(|k| k.get_ref().to_string());
            if let Some(key) = found {
                table.remove(key.as_str());
                return true;
            }
            table.iter_mut().any(|(_, v)| remove_key_at(v, span))
        }
        DeValue::Array(items) => items.iter_mut().any(|v| remove_key_at(v, span)),
        _ => false,
    }
}

/// Deserializes a whole TOML document, recording the error (with its line) if it fails.
pub(crate) fn de_document<T: DeserializeOwned>(
    src: &Source,
    table: &Spanned<DeTable<'_>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    let span = table.span();
    let value = Spanned::new(span, DeValue::Table(table.get_ref().clone()));
    de_value(src, &value, diags)
}

/// The elements of an array of tables `[[key]]` at the top of a document. Keys other than
/// `key` are reported as unknown.
fn array_of_tables<'t, 'a>(
    src: &Source,
    root: &'t Spanned<DeTable<'a>>,
    key: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<&'t Spanned<DeValue<'a>>> {
    let mut out = Vec::new();
    for (k, v) in root.get_ref().iter() {
        if k.get_ref() == key {
            match v.get_ref() {
                DeValue::Array(items) => out.extend(items.iter()),
                _ => diags.push(src.at(
                    v.span(),
                    format!("`{key}` must be written as [[{key}]] tables"),
                )),
            }
        } else {
            diags.push(src.at(k.span(), unknown_key_message(k.get_ref(), &[key])));
        }
    }
    out
}

/// The message for an unknown key, with a suggestion where one is close.
pub(crate) fn unknown_key_message(key: &str, known: &[&str]) -> String {
    let mut msg = format!("unknown key `{key}`");
    if let Some(s) = did_you_mean(key, known.iter().copied()) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    if !known.is_empty() {
        msg.push_str(&format!(" (known keys: {})", known.join(", ")));
    }
    msg
}

/// The message for an unknown value among a fixed set, with a suggestion where one is close.
pub(crate) fn unknown_value_message(what: &str, value: &str, known: &[&str]) -> String {
    let mut msg = format!("unknown {what} `{value}`");
    if let Some(s) = did_you_mean(value, known.iter().copied()) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    msg.push_str(&format!(" (expected one of: {})", known.join(", ")));
    msg
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let word_l = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word_l, &c.to_lowercase()), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Edit distance between two strings, by characters, counting a swap of two neighbours as one
/// edit (optimal string alignment), so `jsno` is one edit from `json`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The names between backticks in a serde message.
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Rewrites serde's wording ("field", "variant") into the words of a file editor ("key",
/// "value"), adding a did-you-mean suggestion.
pub(crate) fn humanize(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = backticked(rest);
        if let Some((key, known)) = names.split_first() {
            return unknown_key_message(key, known);
        }
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let names = backticked(rest);
        if let Some((value, known)) = names.split_first() {
            return unknown_value_message("value", value, known);
        }
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        return format!("missing key {rest}");
    }
    message.to_owned()
}

// ---------------------------------------------------------------------------------------------
// Money
// ---------------------------------------------------------------------------------------------

/// An amount of money in a TOML file: a quoted decimal string ("250.00"), never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Money(pub Decimal);

const MONEY_HINT: &str = "write money as a quoted decimal string like \"250.00\"";

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Money;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(MONEY_HINT)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Money, E> {
                s.trim()
                    .parse::<Decimal>()
                    .ok()
                    .filter(|_| {
                        let t = s.trim();
                        // Plain decimal notation only: no exponent, no separators.
                        !t.is_empty()
                            && t.bytes()
                                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
                    })
                    .map(Money)
                    .ok_or_else(|| E::custom(format!("`{s}` is not an amount: {MONEY_HINT}")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Money, E> {
                Err(E::custom(format!(
                    "money must be quoted: write \"{v:.2}\" instead of {v:?}; \
                     a TOML float is refused because floats are never used for money"
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Money, E> {
                Err(E::custom(format!(
                    "money must be quoted: write \"{v}.00\" instead of {v}"
                )))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Money, E> {
                Err(E::custom(format!(
                    "money must be quoted: write \"{v}.00\" instead of {v}"
                )))
            }
        }
        d.deserialize_any(Visitor)
    }
}

// ---------------------------------------------------------------------------------------------
// interventions.csv
// ---------------------------------------------------------------------------------------------

/// Names of the tracks in `interventions.csv` (`none` = outside both tracks).
const TRACK_NAMES: [&str; 3] = ["care", "nursing", "none"];

/// Service kinds by their file name.
const SERVICE_KINDS: [(&str, ServiceKind); 9] = [
    ("personal_care", ServiceKind::PersonalCare),
    ("practical_help", ServiceKind::PracticalHelp),
    ("meals", ServiceKind::Meals),
    ("rehabilitation", ServiceKind::Rehabilitation),
    ("relief", ServiceKind::Relief),
    ("training", ServiceKind::Training),
    ("nursing", ServiceKind::Nursing),
    ("zero_service", ServiceKind::ZeroService),
    ("holistic_care", ServiceKind::HolisticCare),
];

/// Laws by their file name.
const LAWS: [(&str, Law); 9] = [
    ("sel83_personal_care", Law::Sel83PersonalCare),
    ("sel83_practical_help", Law::Sel83PracticalHelp),
    ("sel83_meals", Law::Sel83Meals),
    ("sel83a", Law::Sel83a),
    ("sel84", Law::Sel84),
    ("sel86", Law::Sel86),
    ("sul138", Law::Sul138),
    ("aeldrelov", Law::Aeldrelov),
    ("none", Law::None),
];

/// Course hints by their file name.
const COURSE_HINTS: [(&str, CourseHint); 3] = [
    ("none", CourseHint::None),
    ("development", CourseHint::Development),
    ("individual", CourseHint::Individual),
];

fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

fn names<T>(table: &[(&'static str, T)]) -> Vec<&'static str> {
    table.iter().map(|&(n, _)| n).collect()
}

/// Reads the records of a CSV file with a fixed header; each record comes with its 1-based line.
fn csv_records(
    src: &Source,
    header: &[&str],
    diags: &mut Vec<Diagnostic>,
) -> Vec<(usize, Vec<String>)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(src.text.as_bytes());
    let mut out = Vec::new();
    let mut seen_header = false;
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize);
                diags.push(Diagnostic {
                    file: src.name.clone(),
                    line,
                    message: format!("not valid CSV: {e}"),
                });
                return Vec::new();
            }
        };
        let line = record.position().map_or(0, |p| p.line() as usize);
        let fields: Vec<String> = record.iter().map(str::to_owned).collect();
        if !seen_header {
            seen_header = true;
            // A byte-order mark from a spreadsheet program is tolerated.
            let first = fields.first().map(|f| f.trim_start_matches('\u{feff}'));
            let same = fields.len() == header.len()
                && first == Some(header[0])
                && fields[1..].iter().zip(&header[1..]).all(|(f, h)| f == h);
            if !same {
                diags.push(Diagnostic::at(
                    &src.name,
                    line,
                    format!(
                        "the header must be `{}`, found `{}`",
                        header.join(","),
                        fields.join(",")
                    ),
                ));
                return Vec::new();
            }
            continue;
        }
        if fields.len() != header.len() {
            diags.push(Diagnostic::at(
                &src.name,
                line,
                format!(
                    "expected {} columns ({}), found {}",
                    header.len(),
                    header.join(","),
                    fields.len()
                ),
            ));
            continue;
        }
        out.push((line, fields));
    }
    if !seen_header {
        diags.push(src.whole(format!(
            "the file is empty; it must start with the header `{}`",
            header.join(",")
        )));
    }
    out
}

/// Checks a code: not empty, no spaces.
fn check_code(code: &str) -> Result<(), String> {
    if code.is_empty() {
        Err("the code is empty".to_owned())
    } else if code.chars().any(char::is_whitespace) {
        Err(format!("the code `{code}` contains a space"))
    } else {
        Ok(())
    }
}

fn parse_number(column: &str, value: &str) -> Result<u32, String> {
    value.parse::<u32>().map_err(|_| {
        format!("bad number `{value}` in column {column} (expected a whole number 0 or more)")
    })
}

fn parse_interventions(src: &Source, diags: &mut Vec<Diagnostic>) -> InterventionMap {
    let mut rows = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, f) in csv_records(src, &INTERVENTIONS_HEADER, diags) {
        let before = diags.len();
        let mut err = |msg: String| diags.push(Diagnostic::at(&src.name, line, msg));
        let code = f[0].clone();
        let legacy = (!f[1].is_empty()).then(|| f[1].clone());
        for c in std::iter::once(&code).chain(legacy.as_ref()) {
            if let Err(m) = check_code(c) {
                err(m);
            } else if let Some(first) = seen.get(c) {
                err(format!("duplicate code `{c}` (already on line {first})"));
            }
        }
        if legacy.as_ref() == Some(&code) {
            err(format!(
                "code `{code}` is given as both code and legacy_code"
            ));
        }
        let display = f[2].clone();
        if display.is_empty() {
            err("display is empty".to_owned());
        }
        let track = match f[3].as_str() {
            "none" => Some(None),
            t => match Track::parse(t) {
                Ok(t) => Some(Some(t)),
                Err(_) => {
                    err(unknown_value_message("track", t, &TRACK_NAMES));
                    None
                }
            },
        };
        let service_kind = lookup(&SERVICE_KINDS, &f[4]);
        if service_kind.is_none() {
            err(unknown_value_message(
                "service_kind",
                &f[4],
                &names(&SERVICE_KINDS),
            ));
        }
        let law = lookup(&LAWS, &f[5]);
        if law.is_none() {
            err(unknown_value_message("law", &f[5], &names(&LAWS)));
        }
        let course_hint = lookup(&COURSE_HINTS, &f[6]);
        if course_hint.is_none() {
            err(unknown_value_message(
                "course_hint",
                &f[6],
                &names(&COURSE_HINTS),
            ));
        }
        let nursing_weight = parse_number("nursing_weight", &f[7]).map_err(&mut err).ok();
        let norm_minutes = parse_number("norm_minutes_per_week", &f[8])
            .map_err(&mut err)
            .ok();
        if let (Some(track), Some(weight)) = (track, nursing_weight)
            && weight > 0
            && track != Some(Track::Nursing)
        {
            err(format!(
                "nursing_weight is {weight} but the track is not nursing: \
                 only nursing codes carry a weight (write 0)"
            ));
        }
        // Record the codes even on a bad row, so a later duplicate is still caught.
        seen.entry(code.clone()).or_insert(line);
        if let Some(l) = &legacy {
            seen.entry(l.clone()).or_insert(line);
        }
        if diags.len() != before {
            continue;
        }
        if let (
            Some(track),
            Some(service_kind),
            Some(law),
            Some(course_hint),
            Some(nursing_weight),
            Some(norm_minutes_per_week),
        ) = (
            track,
            service_kind,
            law,
            course_hint,
            nursing_weight,
            norm_minutes,
        ) {
            rows.push(InterventionMapping {
                code,
                legacy_code: legacy,
                display,
                track,
                service_kind,
                law,
                course_hint,
                nursing_weight,
                norm_minutes_per_week,
            });
        }
    }
    if rows.is_empty() && !diags.iter().any(|d| d.file == src.name) {
        diags.push(src.whole("no intervention codes: the file has a header only"));
    }
    InterventionMap::new(rows)
}

// ---------------------------------------------------------------------------------------------
// functional_levels.csv
// ---------------------------------------------------------------------------------------------

fn parse_levels(src: &Source, diags: &mut Vec<Diagnostic>) -> LevelMap {
    let mut pairs = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, f) in csv_records(src, &LEVELS_HEADER, diags) {
        let code = f[0].clone();
        let mut ok = true;
        if let Err(m) = check_code(&code) {
            diags.push(Diagnostic::at(&src.name, line, m));
            ok = false;
        } else if let Some(first) = seen.get(&code) {
            diags.push(Diagnostic::at(
                &src.name,
                line,
                format!("duplicate level code `{code}` (already on line {first})"),
            ));
            ok = false;
        } else {
            seen.insert(code.clone(), line);
        }
        let level = f[1]
            .parse::<u8>()
            .ok()
            .and_then(|l| FunctionalLevel::new(l).ok());
        if level.is_none() {
            diags.push(Diagnostic::at(
                &src.name,
                line,
                format!(
                    "bad functional level `{}` (expected 0, 1, 2, 3, 4 or 9)",
                    f[1]
                ),
            ));
        }
        if let (true, Some(level)) = (ok, level) {
            pairs.push((code, level));
        }
    }
    if pairs.is_empty() && !diags.iter().any(|d| d.file == src.name) {
        diags.push(src.whole("no functional level codes: the file has a header only"));
    }
    LevelMap::new(pairs)
}

// ---------------------------------------------------------------------------------------------
// teams.toml
// ---------------------------------------------------------------------------------------------

/// One `[[team]]` of `teams.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeam {
    /// Stable id: 1-32 characters of `a-z0-9-_`.
    id: Spanned<String>,
    /// Name shown to people.
    name: Spanned<String>,
    /// The team's cost centre (1-10 digits, quoted).
    cost_centre: Spanned<String>,
    /// Custodian SOR codes that mean this team (default: none).
    #[serde(default)]
    sor_codes: Vec<Spanned<String>>,
    /// KMD Nexus supplier ids that mean this team (default: none), quoted or not: Nexus ids
    /// are integers, so `[11]` and `["11"]` mean the same.
    #[serde(default)]
    nexus_supplier_ids: Vec<Spanned<SupplierId>>,
}

/// A Nexus supplier id as written: a string, or an integer read as its decimal text.
#[derive(Debug)]
struct SupplierId(String);

impl<'de> Deserialize<'de> for SupplierId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SupplierId;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a Nexus supplier id (an integer or a string)")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SupplierId, E> {
                Ok(SupplierId(s.to_owned()))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<SupplierId, E> {
                Ok(SupplierId(n.to_string()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A validated team with the line of its `[[team]]`.
struct LoadedTeam {
    mapping: TeamMapping,
    line: usize,
}

fn parse_teams(src: &Source, diags: &mut Vec<Diagnostic>) -> Vec<LoadedTeam> {
    let Some(root) = parse_toml(src, diags) else {
        return Vec::new();
    };
    let mut teams = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut sors: HashMap<String, (String, usize)> = HashMap::new();
    let mut suppliers: HashMap<String, (String, usize)> = HashMap::new();
    let elements = array_of_tables(src, &root, "team", diags);
    if elements.is_empty() {
        diags.push(src.whole("no teams: add at least one [[team]]"));
    }
    for element in elements {
        let Some(raw) = de_value::<RawTeam>(src, element, diags) else {
            continue;
        };
        let line = src.line_of(element.span().start);
        let before = diags.len();
        let id = match TeamId::parse(raw.id.get_ref()) {
            Ok(id) => Some(id),
            Err(e) => {
                diags.push(src.at(raw.id.span(), e.to_string()));
                None
            }
        };
        if let Some(first) = ids.get(raw.id.get_ref()) {
            diags.push(src.at(
                raw.id.span(),
                format!(
                    "duplicate team id `{}` (already used on line {first})",
                    raw.id.get_ref()
                ),
            ));
        } else {
            ids.insert(raw.id.get_ref().clone(), src.line_of(raw.id.span().start));
        }
        if raw.name.get_ref().trim().is_empty() {
            diags.push(src.at(raw.name.span(), "the team name is empty"));
        }
        let cost_centre = match CostCentre::parse(raw.cost_centre.get_ref()) {
            Ok(c) => Some(c),
            Err(e) => {
                diags.push(src.at(raw.cost_centre.span(), e.to_string()));
                None
            }
        };
        let team_id = raw.id.get_ref().clone();
        for sor in &raw.sor_codes {
            let s = sor.get_ref();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                diags.push(src.at(sor.span(), format!("SOR code `{s}` must be digits only")));
            } else if let Some((other, l)) = sors.get(s) {
                diags.push(src.at(
                    sor.span(),
                    format!(
                        "SOR code `{s}` is used by two teams: `{other}` (line {l}) and `{team_id}`"
                    ),
                ));
            } else {
                sors.insert(s.clone(), (team_id.clone(), src.line_of(sor.span().start)));
            }
        }
        for supplier in &raw.nexus_supplier_ids {
            let s = &supplier.get_ref().0;
            if s.trim().is_empty() {
                diags.push(src.at(supplier.span(), "empty Nexus supplier id"));
            } else if let Some((other, l)) = suppliers.get(s) {
                diags.push(src.at(
                    supplier.span(),
                    format!(
                        "Nexus supplier id `{s}` is used by two teams: `{other}` (line {l}) and `{team_id}`"
                    ),
                ));
            } else {
                suppliers.insert(
                    s.clone(),
                    (team_id.clone(), src.line_of(supplier.span().start)),
                );
            }
        }
        if let (Some(id), Some(cost_centre), true) = (id, cost_centre, diags.len() == before) {
            teams.push(LoadedTeam {
                mapping: TeamMapping {
                    team: Team {
                        id,
                        name: raw.name.into_inner(),
                        cost_centre,
                    },
                    sor_codes: raw.sor_codes.into_iter().map(Spanned::into_inner).collect(),
                    nexus_supplier_ids: raw
                        .nexus_supplier_ids
                        .into_iter()
                        .map(|s| s.into_inner().0)
                        .collect(),
                },
                line,
            });
        }
    }
    teams
}

// ---------------------------------------------------------------------------------------------
// tariffs.toml
// ---------------------------------------------------------------------------------------------

/// Need bases by their file name.
const BASES: [(&str, NeedBasis); 3] = [
    ("functional_level", NeedBasis::FunctionalLevel),
    ("weekly_minutes", NeedBasis::WeeklyMinutes),
    ("intervention_weight", NeedBasis::InterventionWeight),
];

/// One `[[table]]` of `tariffs.toml`, without its groups (read one by one, see [`RawGroup`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    /// `care` or `nursing`.
    track: Spanned<String>,
    /// The tariff year.
    year: Spanned<i32>,
    /// `functional_level`, `weekly_minutes` or `intervention_weight`.
    basis: Spanned<String>,
    /// A need score at or above this makes the course individual (default: no individual courses).
    individual_threshold: Option<Spanned<u32>>,
    /// DKK per visitated hour of an individual course; given exactly when the threshold is.
    hourly_rate: Option<Spanned<Money>>,
    /// Length of a development course in days (default 84).
    development_days: Option<Spanned<u32>>,
    /// Length of a stabilisation course in days (default 182).
    stabilisation_days: Option<Spanned<u32>>,
    /// The `[[table.group]]` entries: accepted here, read one by one.
    #[serde(default, rename = "group")]
    _group: Option<IgnoredAny>,
}

/// One `[[table.group]]`: a need group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    /// Group number, 1 upwards, in order.
    group: Spanned<u8>,
    /// Lowest need score in the group.
    min: Spanned<u32>,
    /// Highest need score in the group; absent = open top (last group only).
    max: Option<Spanned<u32>>,
    /// Daily tariff of a development course.
    development: Spanned<Money>,
    /// Daily tariff of a stabilisation course.
    stabilisation: Spanned<Money>,
}

/// A table read and checked on its own, with what the cross-table checks need.
struct LoadedTable {
    table: TariffTable,
    line: usize,
}

fn parse_tariffs(src: &Source, diags: &mut Vec<Diagnostic>) -> TariffBook {
    let Some(root) = parse_toml(src, diags) else {
        return TariffBook::default();
    };
    let elements = array_of_tables(src, &root, "table", diags);
    if elements.is_empty() {
        diags.push(src.whole("no tariff tables: add at least one [[table]]"));
    }
    let mut loaded: Vec<LoadedTable> = Vec::new();
    let mut seen: HashMap<(Track, i32), usize> = HashMap::new();
    for element in elements {
        let line = src.line_of(element.span().start);
        let raw = de_value::<RawTable>(src, element, diags);
        let groups = read_groups(src, element, diags);
        let (Some(raw), Some(groups)) = (raw, groups) else {
            continue;
        };
        let Some(table) = check_table(src, line, raw, groups, diags) else {
            continue;
        };
        if let Some(first) = seen.get(&(table.track, table.year)) {
            diags.push(Diagnostic::at(
                &src.name,
                line,
                format!(
                    "a second {} table for {} (the first is on line {first})",
                    table.track, table.year
                ),
            ));
            continue;
        }
        seen.insert((table.track, table.year), line);
        loaded.push(LoadedTable { table, line });
    }
    check_years_agree(src, &loaded, diags);
    TariffBook::new(loaded.into_iter().map(|t| t.table).collect())
}

/// Reads the `[[table.group]]` entries of one table one by one, so every bad group is reported.
fn read_groups(
    src: &Source,
    element: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Vec<RawGroup>> {
    let DeValue::Table(table) = element.get_ref() else {
        diags.push(src.at(
            element.span(),
            "`table` must be written as [[table]] tables",
        ));
        return None;
    };
    let Some((_, groups)) = table.iter().find(|(k, _)| k.get_ref() == "group") else {
        diags.push(src.at(
            element.span(),
            "the table has no need groups: add [[table.group]] entries",
        ));
        return None;
    };
    let DeValue::Array(items) = groups.get_ref() else {
        diags.push(src.at(
            groups.span(),
            "`group` must be written as [[table.group]] tables",
        ));
        return None;
    };
    let before = diags.len();
    let out: Vec<RawGroup> = items
        .iter()
        .filter_map(|g| de_value::<Spanned<RawGroup>>(src, g, diags))
        .map(Spanned::into_inner)
        .collect();
    (diags.len() == before && !out.is_empty()).then_some(out)
}

/// Checks one table on its own: track, basis, groups, individual rule, lengths, money.
fn check_table(
    src: &Source,
    line: usize,
    raw: RawTable,
    groups: Vec<RawGroup>,
    diags: &mut Vec<Diagnostic>,
) -> Option<TariffTable> {
    let before = diags.len();
    let track = Track::parse(raw.track.get_ref())
        .map_err(|_| {
            diags.push(src.at(
                raw.track.span(),
                unknown_value_message("track", raw.track.get_ref(), &["care", "nursing"]),
            ))
        })
        .ok();
    let basis = lookup(&BASES, raw.basis.get_ref());
    if basis.is_none() {
        diags.push(src.at(
            raw.basis.span(),
            unknown_value_message("basis", raw.basis.get_ref(), &names(&BASES)),
        ));
    }
    let year = *raw.year.get_ref();
    if !(2000..=2200).contains(&year) {
        diags.push(src.at(
            raw.year.span(),
            format!("tariff year {year} is not a year between 2000 and 2200"),
        ));
    }
    let mut lengths = CourseLengths::default();
    for (field, value, target) in [
        (
            "development_days",
            &raw.development_days,
            &mut lengths.development_days,
        ),
        (
            "stabilisation_days",
            &raw.stabilisation_days,
            &mut lengths.stabilisation_days,
        ),
    ] {
        if let Some(v) = value {
            if *v.get_ref() == 0 {
                diags.push(src.at(v.span(), format!("{field} must be at least 1")));
            }
            *target = *v.get_ref();
        }
    }

    // Need groups: numbered 1..n in order, from 0, no gaps, no overlaps, only the last open.
    let numbers: Vec<u8> = groups.iter().map(|g| *g.group.get_ref()).collect();
    if numbers.iter().copied().ne(1..=numbers.len() as u8) {
        diags.push(Diagnostic::at(
            &src.name,
            line,
            format!(
                "need groups must be numbered 1 to {} in order; found {}{}",
                numbers.len(),
                join_numbers(&numbers),
                missing_groups(&numbers)
            ),
        ));
    }
    let first = &groups[0];
    if *first.min.get_ref() != 0 {
        diags.push(src.at(
            first.min.span(),
            format!(
                "need groups must start at 0; the first group starts at {}",
                first.min.get_ref()
            ),
        ));
    }
    for g in &groups {
        if let Some(max) = &g.max
            && max.get_ref() < g.min.get_ref()
        {
            diags.push(src.at(
                max.span(),
                format!(
                    "group {}: max {} is below min {}",
                    g.group.get_ref(),
                    max.get_ref(),
                    g.min.get_ref()
                ),
            ));
        }
        for (name, m) in [
            ("development", &g.development),
            ("stabilisation", &g.stabilisation),
        ] {
            if m.get_ref().0.is_sign_negative() && !m.get_ref().0.is_zero() {
                diags.push(src.at(
                    m.span(),
                    format!(
                        "group {}: negative {name} tariff {}",
                        g.group.get_ref(),
                        m.get_ref().0
                    ),
                ));
            }
        }
    }
    for pair in groups.windows(2) {
        let (prev, cur) = (&pair[0], &pair[1]);
        let cur_min = *cur.min.get_ref();
        match &prev.max {
            None => diags.push(src.at(
                cur.group.span(),
                format!(
                    "group {} follows group {}, which is open-topped (no max): \
                     only the last group may leave out max",
                    cur.group.get_ref(),
                    prev.group.get_ref()
                ),
            )),
            Some(prev_max) => {
                let prev_max = *prev_max.get_ref();
                if cur_min <= prev_max {
                    diags.push(src.at(
                        cur.min.span(),
                        format!(
                            "need group {} ({}) overlaps group {} ({}): score {cur_min} would be in both",
                            cur.group.get_ref(),
                            range_text(cur),
                            prev.group.get_ref(),
                            range_text(prev)
                        ),
                    ));
                } else if cur_min > prev_max + 1 {
                    diags.push(src.at(
                        cur.min.span(),
                        format!(
                            "gap between need groups {} and {}: scores {}-{} are in no group",
                            prev.group.get_ref(),
                            cur.group.get_ref(),
                            prev_max + 1,
                            cur_min - 1
                        ),
                    ));
                }
            }
        }
    }

    // Individual rule: threshold and hourly rate together; the threshold above every bounded group.
    let individual = match (&raw.individual_threshold, &raw.hourly_rate) {
        (None, None) => None,
        (Some(threshold), Some(rate)) => {
            let t = *threshold.get_ref();
            let last = groups.last().expect("at least one group");
            let bounded_max = groups
                .iter()
                .filter_map(|g| g.max.as_ref())
                .map(|m| *m.get_ref())
                .max();
            if let Some(bm) = bounded_max
                && t <= bm
            {
                diags.push(src.at(
                    threshold.span(),
                    format!(
                        "individual_threshold {t} must be above the highest bounded need score {bm}"
                    ),
                ));
            } else if let Some(last_max) = &last.max
                && *last_max.get_ref() + 1 < t
            {
                diags.push(src.at(
                    threshold.span(),
                    format!(
                        "scores {}-{} are in no need group and below individual_threshold {t}: \
                         the groups must cover 0 to {} or the last group must be open-topped",
                        last_max.get_ref() + 1,
                        t - 1,
                        t - 1
                    ),
                ));
            }
            if rate.get_ref().0.is_sign_negative() && !rate.get_ref().0.is_zero() {
                diags.push(src.at(rate.span(), "negative hourly_rate"));
            }
            Some(IndividualRule {
                threshold: t,
                hourly_rate: rate.get_ref().0,
            })
        }
        (Some(t), None) => {
            diags.push(src.at(
                t.span(),
                "individual_threshold is given without hourly_rate: give both or neither",
            ));
            None
        }
        (None, Some(r)) => {
            diags.push(src.at(
                r.span(),
                "hourly_rate is given without individual_threshold: give both or neither",
            ));
            None
        }
    };
    if individual.is_none()
        && raw.individual_threshold.is_none()
        && let Some(last) = groups.last()
        && let Some(max) = &last.max
    {
        diags.push(src.at(
            max.span(),
            format!(
                "scores above {} are in no need group: leave out max in the last group \
                 (open top) or give individual_threshold and hourly_rate",
                max.get_ref()
            ),
        ));
    }

    if diags.len() != before {
        return None;
    }
    Some(TariffTable {
        track: track?,
        year,
        basis: basis?,
        groups: groups
            .into_iter()
            .map(|g| NeedGroup {
                group: g.group.into_inner(),
                min: g.min.into_inner(),
                max: g.max.map(Spanned::into_inner),
                development: g.development.into_inner().0,
                stabilisation: g.stabilisation.into_inner().0,
            })
            .collect(),
        individual,
        lengths,
    })
}

fn range_text(g: &RawGroup) -> String {
    match &g.max {
        Some(max) => format!("{}-{}", g.min.get_ref(), max.get_ref()),
        None => format!("{} and above", g.min.get_ref()),
    }
}

fn join_numbers(numbers: &[u8]) -> String {
    numbers
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn missing_groups(numbers: &[u8]) -> String {
    let Some(&max) = numbers.iter().max() else {
        return String::new();
    };
    let missing: Vec<u8> = (1..=max).filter(|n| !numbers.contains(n)).collect();
    match missing.len() {
        0 => String::new(),
        1 => format!(" (group {} is missing)", missing[0]),
        _ => format!(" (groups {} are missing)", join_numbers(&missing)),
    }
}

/// Every year of a track must have the same need groups (numbers), so a course's group means
/// the same thing across a year end.
fn check_years_agree(src: &Source, tables: &[LoadedTable], diags: &mut Vec<Diagnostic>) {
    let mut by_track: BTreeMap<Track, Vec<&LoadedTable>> = BTreeMap::new();
    for t in tables {
        by_track.entry(t.table.track).or_default().push(t);
    }
    for (track, mut list) in by_track {
        list.sort_by_key(|t| t.table.year);
        let Some((reference, rest)) = list.split_first() else {
            continue;
        };
        let ref_groups: Vec<u8> = reference.table.groups.iter().map(|g| g.group).collect();
        for t in rest {
            let groups: Vec<u8> = t.table.groups.iter().map(|g| g.group).collect();
            if groups != ref_groups {
                let missing: Vec<u8> = ref_groups
                    .iter()
                    .copied()
                    .filter(|g| !groups.contains(g))
                    .collect();
                let detail = if missing.is_empty() {
                    String::new()
                } else {
                    format!(" (missing group {})", join_numbers(&missing))
                };
                diags.push(Diagnostic::at(
                    &src.name,
                    t.line,
                    format!(
                        "{track} {} has need groups {} but {track} {} (line {}) has groups {}{detail}: \
                         every year of a track needs the same groups",
                        t.table.year,
                        join_numbers(&groups),
                        reference.table.year,
                        reference.line,
                        join_numbers(&ref_groups)
                    ),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// accounts.toml
// ---------------------------------------------------------------------------------------------

/// `accounts.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    /// GL account (8 digits) of the care track.
    care_gl_account: Spanned<String>,
    /// GL account (8 digits) of the nursing track.
    nursing_gl_account: Spanned<String>,
    /// The purchaser's (myndighedens) cost centre.
    purchaser_cost_centre: Spanned<String>,
    /// The cost centre paid for days without a team assignment.
    fallback_cost_centre: Spanned<String>,
}

/// Validated accounts with the line of the purchaser cost centre (for cross-checks).
struct LoadedAccounts {
    accounts: Accounts,
    purchaser_span: Range<usize>,
}

fn parse_accounts(src: &Source, diags: &mut Vec<Diagnostic>) -> Option<LoadedAccounts> {
    let root = parse_toml(src, diags)?;
    let raw: RawAccounts = de_document(src, &root, diags)?;
    let before = diags.len();
    for (name, v) in [
        ("care_gl_account", &raw.care_gl_account),
        ("nursing_gl_account", &raw.nursing_gl_account),
    ] {
        let s = v.get_ref();
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
            diags.push(src.at(v.span(), format!("{name} `{s}` must be exactly 8 digits")));
        }
    }
    let mut centre = |name: &str, v: &Spanned<String>| match CostCentre::parse(v.get_ref()) {
        Ok(c) => Some(c),
        Err(e) => {
            diags.push(src.at(v.span(), format!("{name}: {e}")));
            None
        }
    };
    let purchaser = centre("purchaser_cost_centre", &raw.purchaser_cost_centre);
    let fallback = centre("fallback_cost_centre", &raw.fallback_cost_centre);
    if diags.len() != before {
        return None;
    }
    Some(LoadedAccounts {
        accounts: Accounts {
            care_gl_account: raw.care_gl_account.into_inner(),
            nursing_gl_account: raw.nursing_gl_account.into_inner(),
            purchaser_cost_centre: purchaser?,
            fallback_cost_centre: fallback?,
        },
        purchaser_span: raw.purchaser_cost_centre.span(),
    })
}

/// The purchaser's cost centre is the other side of every voucher: a team with the same cost
/// centre would post to itself.
fn check_accounts_against_teams(
    src: &Source,
    accounts: &LoadedAccounts,
    teams: &[LoadedTeam],
    diags: &mut Vec<Diagnostic>,
) {
    let purchaser = &accounts.accounts.purchaser_cost_centre;
    for t in teams {
        if &t.mapping.team.cost_centre == purchaser {
            diags.push(src.at(
                accounts.purchaser_span.clone(),
                format!(
                    "purchaser_cost_centre {purchaser} is also the cost centre of team `{}` \
                     ({TEAMS_FILE} line {}): a voucher would post to itself",
                    t.mapping.team.id, t.line
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> Source {
        Source {
            name: name.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn file_names_match_the_serde_names_of_the_enums() {
        for (name, v) in SERVICE_KINDS {
            assert_eq!(serde_json::to_value(v).unwrap(), name);
        }
        for (name, v) in LAWS {
            assert_eq!(serde_json::to_value(v).unwrap(), name);
        }
        for (name, v) in COURSE_HINTS {
            assert_eq!(serde_json::to_value(v).unwrap(), name);
        }
        for (name, v) in BASES {
            assert_eq!(serde_json::to_value(v).unwrap(), name);
        }
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let known = [
            "id",
            "name",
            "cost_centre",
            "sor_codes",
            "nexus_supplier_ids",
        ];
        assert_eq!(did_you_mean("cost_center", known), Some("cost_centre"));
        assert_eq!(did_you_mean("sor_code", known), Some("sor_codes"));
        assert_eq!(did_you_mean("colour", known), None);
        assert_eq!(
            humanize("unknown field `cost_center`, expected one of `id`, `cost_centre`"),
            "unknown key `cost_center`; did you mean `cost_centre`? (known keys: id, cost_centre)"
        );
        assert_eq!(
            humanize("missing field `cost_centre`"),
            "missing key `cost_centre`"
        );
    }

    #[test]
    fn toml_syntax_errors_name_their_line() {
        let mut diags = Vec::new();
        parse_teams(
            &src("t.toml", "[[team]]\nid = \"a\"\nid = \"b\"\n"),
            &mut diags,
        );
        assert_eq!(diags[0].to_string(), "t.toml:3: duplicate key `id`");
    }

    #[test]
    fn lines_are_one_based() {
        let s = src("f", "a\nb\nc");
        assert_eq!(s.line_of(0), 1);
        assert_eq!(s.line_of(2), 2);
        assert_eq!(s.line_of(4), 3);
        assert_eq!(s.line_of(99), 3);
    }

    #[test]
    fn money_is_a_quoted_decimal() {
        #[derive(Deserialize)]
        struct M {
            m: Money,
        }
        let ok: M = toml::from_str("m = \"123.4567\"").unwrap();
        assert_eq!(ok.m.0, "123.4567".parse::<Decimal>().unwrap());
        for bad in [
            "m = 250.0",
            "m = 250",
            "m = \"1e3\"",
            "m = \"abc\"",
            "m = \"\"",
        ] {
            let err = toml::from_str::<M>(bad).err().unwrap().to_string();
            assert!(
                err.contains("quoted") || err.contains("not an amount"),
                "{bad}: {err}"
            );
        }
        let err = toml::from_str::<M>("m = 250.0").err().unwrap().to_string();
        assert!(err.contains("floats are never used for money"), "{err}");
    }

    #[test]
    fn csv_errors_name_their_line() {
        let text = "code,legacy_code,display,track,service_kind,law,course_hint,nursing_weight,norm_minutes_per_week\n\
                    a,A1,Alpha,care,personal_care,sel83_personal_care,none,0,100\n\
                    b,A1,Beta,carre,personal_care,sel83_personal_care,none,x,100\n\
                    c,,Gamma,nursing,nursing,sul138,none,2,30,9\n\
                    d,,Delta,care,meal,sel83_meals,maybe,2,0\n";
        let mut diags = Vec::new();
        let map = parse_interventions(&src("i.csv", text), &mut diags);
        let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert!(
            shown
                .iter()
                .any(|d| d.starts_with("i.csv:3: duplicate code `A1` (already on line 2)")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|d| d.starts_with("i.csv:3: unknown track `carre`; did you mean `care`?")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|d| d.starts_with("i.csv:3: bad number `x`")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|d| d.starts_with("i.csv:4: expected 9 columns")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|d| d
                    .starts_with("i.csv:5: unknown service_kind `meal`; did you mean `meals`?")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|d| d.starts_with("i.csv:5: unknown course_hint `maybe`")),
            "{shown:#?}"
        );
        assert!(shown.iter().any(|d| d.starts_with("i.csv:5: nursing_weight is 2 but the track is not nursing")), "{shown:#?}");
        assert_eq!(map.rows().len(), 1);
    }

    #[test]
    fn level_errors_name_their_line() {
        let text = "code,level\nB1,0\nB2,5\nB1,1\nB9,x\n";
        let mut diags = Vec::new();
        parse_levels(&src("l.csv", text), &mut diags);
        let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "l.csv:3: bad functional level `5` (expected 0, 1, 2, 3, 4 or 9)",
                "l.csv:4: duplicate level code `B1` (already on line 2)",
                "l.csv:5: bad functional level `x` (expected 0, 1, 2, 3, 4 or 9)",
            ]
        );
    }

    fn tariff_diags(text: &str) -> Vec<String> {
        let mut diags = Vec::new();
        parse_tariffs(&src("t.toml", text), &mut diags);
        diags.iter().map(ToString::to_string).collect()
    }

    const GROUP: &str = "development = \"1.00\"\nstabilisation = \"1.00\"\n";

    #[test]
    fn tariff_groups_must_tile_the_scores() {
        let text = format!(
            "[[table]]\ntrack = \"care\"\nyear = 2027\nbasis = \"functional_level\"\n\
             [[table.group]]\ngroup = 1\nmin = 1\nmax = 3\n{GROUP}\
             [[table.group]]\ngroup = 2\nmin = 6\nmax = 7\n{GROUP}\
             [[table.group]]\ngroup = 3\nmin = 7\n{GROUP}"
        );
        let shown = tariff_diags(&text);
        assert!(
            shown.contains(
                &"t.toml:7: need groups must start at 0; the first group starts at 1".to_owned()
            ),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|d| d.starts_with("t.toml:13: gap between need groups 1 and 2: scores 4-5")),
            "{shown:#?}"
        );
        assert!(
            shown
                .iter()
                .any(|d| d
                    .starts_with("t.toml:19: need group 3 (7 and above) overlaps group 2 (6-7)")),
            "{shown:#?}"
        );
    }

    #[test]
    fn individual_threshold_must_follow_the_groups() {
        let head = "[[table]]\ntrack = \"care\"\nyear = 2027\nbasis = \"functional_level\"\n";
        let g = |n: u8, min: u32, max: u32| {
            format!("[[table.group]]\ngroup = {n}\nmin = {min}\nmax = {max}\n{GROUP}")
        };
        let below = format!(
            "{head}individual_threshold = 3\nhourly_rate = \"450.00\"\n{}{}",
            g(1, 0, 3),
            g(2, 4, 7)
        );
        assert!(
            tariff_diags(&below)[0].starts_with("t.toml:5: individual_threshold 3 must be above")
        );
        let gap = format!(
            "{head}individual_threshold = 10\nhourly_rate = \"450.00\"\n{}{}",
            g(1, 0, 3),
            g(2, 4, 7)
        );
        assert!(tariff_diags(&gap)[0].starts_with("t.toml:5: scores 8-9 are in no need group"));
        let one_sided = format!(
            "{head}individual_threshold = 8\n{}{}",
            g(1, 0, 3),
            g(2, 4, 7)
        );
        assert!(tariff_diags(&one_sided)[0].contains("give both or neither"));
        let no_top = format!("{head}{}{}", g(1, 0, 3), g(2, 4, 7));
        assert!(
            tariff_diags(&no_top)[0].starts_with("t.toml:14: scores above 7 are in no need group")
        );
        let fine = format!(
            "{head}individual_threshold = 8\nhourly_rate = \"450.00\"\n{}{}",
            g(1, 0, 3),
            g(2, 4, 7)
        );
        assert_eq!(tariff_diags(&fine), Vec::<String>::new());
    }

    #[test]
    fn tariff_tables_are_unique_and_agree_across_years() {
        let table = |year: i32, groups: &[u8]| {
            let mut s = format!(
                "[[table]]\ntrack = \"nursing\"\nyear = {year}\nbasis = \"intervention_weight\"\n"
            );
            for (i, n) in groups.iter().enumerate() {
                let max = if i + 1 == groups.len() {
                    String::new()
                } else {
                    format!("max = {i}\n")
                };
                s.push_str(&format!(
                    "[[table.group]]\ngroup = {n}\nmin = {i}\n{max}{GROUP}"
                ));
            }
            s
        };
        let text = format!(
            "{}{}{}",
            table(2027, &[1, 2]),
            table(2027, &[1, 2]),
            table(2028, &[1])
        );
        let shown = tariff_diags(&text);
        assert_eq!(shown.len(), 2, "{shown:#?}");
        assert!(
            shown[0]
                .starts_with("t.toml:16: a second nursing table for 2027 (the first is on line 1)"),
            "{shown:#?}"
        );
        assert!(shown[1].starts_with("t.toml:31: nursing 2028 has need groups 1 but nursing 2027 (line 1) has groups 1, 2 (missing group 2)"), "{shown:#?}");
        let skipped = tariff_diags(&table(2027, &[1, 3]));
        assert!(skipped[0].starts_with("t.toml:1: need groups must be numbered 1 to 2 in order; found 1, 3 (group 2 is missing)"), "{skipped:#?}");
    }

    #[test]
    fn negative_money_is_refused() {
        let text = "[[table]]\ntrack = \"care\"\nyear = 2027\nbasis = \"weekly_minutes\"\n\
                    [[table.group]]\ngroup = 1\nmin = 0\ndevelopment = \"-1.00\"\nstabilisation = \"0.00\"\n";
        assert_eq!(
            tariff_diags(text),
            ["t.toml:8: group 1: negative development tariff -1.00"]
        );
    }

    #[test]
    fn teams_report_every_bad_team() {
        let text = "[[team]]\nid = \"Nord\"\nname = \"N\"\ncost_centre = \"10a\"\nsor_codes = [\"1\"]\n\
                    [[team]]\nid = \"syd\"\nname = \"S\"\n\
                    [[team]]\nid = \"vest\"\nname = \"V\"\ncost_centre = \"3\"\nsor_codes = [\"1\"]\n\
                    [[team]]\nid = \"vest\"\nname = \"V2\"\ncost_centre = \"4\"\nteam_colour = \"red\"\n";
        let mut diags = Vec::new();
        parse_teams(&src("teams.toml", text), &mut diags);
        let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert!(
            shown[0].starts_with("teams.toml:2: team id: `Nord` must be"),
            "{shown:#?}"
        );
        assert!(
            shown[1].starts_with("teams.toml:4: cost centre: `10a` must be 1-10 digits"),
            "{shown:#?}"
        );
        assert_eq!(shown[2], "teams.toml:6: missing key `cost_centre`");
        assert!(
            shown[3].starts_with(
                "teams.toml:13: SOR code `1` is used by two teams: `Nord` (line 5) and `vest`"
            ),
            "{shown:#?}"
        );
        assert!(
            shown[4].starts_with("teams.toml:18: unknown key `team_colour`"),
            "{shown:#?}"
        );
        // Past an unknown key the team is still checked: its duplicate id is found too.
        assert_eq!(
            shown[5],
            "teams.toml:15: duplicate team id `vest` (already used on line 10)"
        );
        assert_eq!(shown.len(), 6, "{shown:#?}");
    }

    #[test]
    fn nexus_supplier_ids_may_be_integers_and_a_shared_one_names_both_lines() {
        let text = "[[team]]\nid = \"nord\"\nname = \"N\"\ncost_centre = \"1\"\n\
                    nexus_supplier_ids = [11, \"21\"]\n\
                    [[team]]\nid = \"syd\"\nname = \"S\"\ncost_centre = \"2\"\n\
                    nexus_supplier_ids = [12]\n";
        let mut diags = Vec::new();
        let teams = parse_teams(&src("teams.toml", text), &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        let ids: Vec<&[String]> = teams
            .iter()
            .map(|t| t.mapping.nexus_supplier_ids.as_slice())
            .collect();
        assert_eq!(
            ids,
            [
                &["11".to_owned(), "21".to_owned()][..],
                &["12".to_owned()][..]
            ]
        );
        // `11` and `"11"` are the same supplier.
        let shared = text.replace("[12]", "[\"11\"]");
        parse_teams(&src("teams.toml", &shared), &mut diags);
        let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "teams.toml:10: Nexus supplier id `11` is used by two teams: `nord` (line 5) and `syd`"
            ]
        );
        let mut diags = Vec::new();
        parse_teams(
            &src("teams.toml", &text.replace("[11,", "[true,")),
            &mut diags,
        );
        let shown: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert!(
            shown[0].starts_with("teams.toml:5:") && shown[0].contains("a Nexus supplier id"),
            "{shown:#?}"
        );
        assert_eq!(shown.len(), 1, "{shown:#?}");
    }
}
