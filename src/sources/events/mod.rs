//! The termination events folder: the deaths, moves out of the municipality and permanent
//! moves to a nursing home that the municipality exports, as CSV files in one folder.
//!
//! Each `*.csv` file directly in the folder has the header `citizen,event,date`: `citizen` is a
//! CPR number (`ddmmyyxxxx` or `ddmmyy-xxxx`, pseudonymised on read, never stored), the care
//! system's Patient id of a citizen already received, or an already pseudonymised citizen (64
//! hex characters), as in the roster; `event` is `death`, `moved_out` or `nursing_home`; `date`
//! the local date of the event (`YYYY-MM-DD`), the last paid day of a running course.
//!
//! Every file is read again on each sync. A file is a whole, like the roster: its lines are
//! stored as termination versions under the source [`SOURCE`], and a line stored from a file
//! of the same name that is no longer in it is withdrawn. A file with any bad line stores and
//! withdraws nothing (every problem is reported with file, line and column, never a CPR); the
//! other files are still read. A file that disappears from the folder withdraws nothing.

use crate::domain::{Pseudonym, PseudonymKey, SourceId, Termination, TerminationReason};
use crate::model::{Record, Versioned};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The source name termination events are stored under.
pub const SOURCE: &str = "events";

/// The header an events file must have.
pub const HEADER: [&str; 3] = ["citizen", "event", "date"];

/// The largest events file read (bytes).
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// The most lines (after the header) an events file may have.
pub const MAX_LINES: u64 = 100_000;

/// The most `*.csv` files the folder may hold.
pub const MAX_FILES: usize = 10_000;

/// The longest file name (bytes): the name is part of each event's source id.
pub const MAX_FILE_NAME: usize = 100;

/// A problem in the events folder or one of its files: the file, the line and what is wrong
/// (never a CPR number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct EventsError {
    /// The file (or the folder).
    pub file: String,
    /// 1-based line (the header is line 1); 0 for the file as a whole.
    pub line: u64,
    /// What is wrong, naming the column.
    pub message: String,
}

/// The event code of a file line (`death`, `moved_out`, `nursing_home`).
pub fn parse_event(code: &str) -> Option<TerminationReason> {
    [
        TerminationReason::Death,
        TerminationReason::MovedOut,
        TerminationReason::NursingHome,
    ]
    .into_iter()
    .find(|r| r.as_str() == code)
}

/// The source id of an event read from `file_name`: `{file_name}/{pseudonym}/{event}/{date}`.
/// Deterministic, and without a CPR number: the citizen is always its pseudonym (also when
/// the line names the Patient id), and the file name is refused when it looks like one.
pub fn source_id(
    file_name: &str,
    citizen: &Pseudonym,
    reason: TerminationReason,
    on: NaiveDate,
) -> String {
    format!("{file_name}/{citizen}/{}/{on}", reason.as_str())
}

/// Reads one events file. Every problem is reported; an empty result is a valid file without
/// events. `patients` maps the care system's Patient ids to pseudonyms (from the stored
/// citizens, see [`crate::sources::roster::patients`]).
pub fn read(
    path: &Path,
    key: &PseudonymKey,
    patients: &HashMap<String, Pseudonym>,
) -> Result<Vec<Termination>, Vec<EventsError>> {
    let file = path.display().to_string();
    let err = |line: u64, message: String| EventsError {
        file: file.clone(),
        line,
        message,
    };
    let file_name = match path.file_name().and_then(|n| n.to_str()) {
        Some(n) => n,
        None => return Err(vec![err(0, "the file name is not UTF-8".into())]),
    };
    if let Err(m) = check_file_name(file_name) {
        // The name may hold a CPR number: name the folder only.
        let folder = path
            .parent()
            .map_or_else(String::new, |p| p.display().to_string());
        return Err(vec![EventsError {
            file: folder,
            line: 0,
            message: m,
        }]);
    }
    let bytes = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            return Err(vec![err(
                0,
                format!(
                    "the file has {} bytes, more than the {MAX_FILE_BYTES} an events file may have",
                    m.len()
                ),
            )]);
        }
        Ok(_) => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return Err(vec![err(0, format!("cannot read the file: {e}"))]),
        },
        Err(e) => return Err(vec![err(0, format!("cannot read the file: {e}"))]),
    };
    // A spreadsheet's UTF-8 byte order mark is not part of the header.
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text);
    let mut errors = Vec::new();
    match reader.headers() {
        Ok(h) if h.iter().eq(HEADER) => {}
        Ok(h) => errors.push(err(1, super::csv_header_problem(&HEADER, h))),
        Err(_) => errors.push(err(1, "an unreadable header".into())),
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut out = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut lines = 0u64;
    for record in reader.records() {
        lines += 1;
        if lines > MAX_LINES {
            errors.push(err(
                0,
                format!("the file has more than the {MAX_LINES} lines an events file may have"),
            ));
            break;
        }
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                // The csv error text may quote the row; say only where and what kind.
                errors.push(err(line, "a malformed CSV row".into()));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != HEADER.len() {
            errors.push(err(
                line,
                format!("expected {} fields, found {}", HEADER.len(), record.len()),
            ));
            continue;
        }
        let citizen = super::csv_citizen(&record[0], "column `citizen`", key, patients);
        let reason = match parse_event(&record[1]) {
            Some(r) => Ok(r),
            None => Err(format!(
                "column `event`: unknown event {} (expected death, moved_out or nursing_home)",
                quoted(&record[1])
            )),
        };
        let on = record[2].parse::<NaiveDate>().map_err(|_| {
            format!(
                "column `date`: {} is not a date (YYYY-MM-DD)",
                quoted(&record[2])
            )
        });
        let (citizen, reason, on) = match (citizen, reason, on) {
            (Ok(c), Ok(r), Ok(d)) => (c, r, d),
            (c, r, d) => {
                for m in [c.err(), r.err(), d.err()].into_iter().flatten() {
                    errors.push(err(line, m));
                }
                continue;
            }
        };
        let id = source_id(file_name, &citizen, reason, on);
        if let Some(first) = seen.get(&id) {
            errors.push(err(
                line,
                format!("the same citizen, event and date as line {first}"),
            ));
            continue;
        }
        let source_id = match SourceId::parse(&id) {
            Ok(s) => s,
            Err(e) => {
                errors.push(err(line, e.to_string()));
                continue;
            }
        };
        seen.insert(id, line);
        out.push(Termination {
            source_id,
            citizen,
            on,
            reason,
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// A file name can be part of a source id: not too long, and not holding what looks like a
/// CPR number (a run of exactly ten digits that starts with a date, or `ddmmyy-xxxx`).
fn check_file_name(name: &str) -> Result<(), String> {
    if crate::domain::holds_cpr(name) {
        return Err(
            "a file whose name holds what looks like a CPR number is not read; rename it".into(),
        );
    }
    if name.len() > MAX_FILE_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "the file name must be at most {MAX_FILE_NAME} bytes without control characters"
        ));
    }
    Ok(())
}

/// A field for a message: quoted, unless it may hold a CPR number (six digits in a row) or is
/// long.
fn quoted(field: &str) -> String {
    let run = field
        .as_bytes()
        .split(|b| !b.is_ascii_digit())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    if run >= 6 {
        "(not shown: it holds digits that may be a CPR number)".into()
    } else if field.chars().count() > 40 {
        "(not shown: longer than 40 characters)".into()
    } else {
        format!("`{field}`")
    }
}

/// The latest stored version of an event (for [`versions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its version instant.
    pub version_at: DateTime<Utc>,
    /// Whether that version withdraws it.
    pub withdrawn: bool,
    /// The event.
    pub termination: Termination,
}

/// The latest version of every event stored under [`SOURCE`], by source id (on equal
/// instants the one received later).
pub fn current(all: &[(Pseudonym, Vec<Versioned>)]) -> BTreeMap<String, StoredEvent> {
    let mut out: BTreeMap<String, StoredEvent> = BTreeMap::new();
    for v in all.iter().flat_map(|(_, vs)| vs) {
        let Record::Termination(t) = &v.record else {
            continue;
        };
        if v.source != SOURCE {
            continue;
        }
        let id = t.source_id.to_string();
        if out.get(&id).is_some_and(|s| s.version_at > v.version_at) {
            continue;
        }
        out.insert(
            id,
            StoredEvent {
                version_at: v.version_at,
                withdrawn: v.withdrawn,
                termination: t.clone(),
            },
        );
    }
    out
}

/// The versions that make the store's events from `file_name` equal to `events`: each event
/// not stored as it is (new, or withdrawn before) as a version, and a withdrawal of each stored
/// event of that file no longer in it. An event already stored as it is gets no version, so
/// re-reading an unchanged file stores nothing. A version's instant is the file's
/// modification time `modified`, but always after the event's latest stored version, so it
/// is the current one whatever the file's timestamp says.
pub fn versions(
    file_name: &str,
    events: &[Termination],
    stored: &BTreeMap<String, StoredEvent>,
    modified: DateTime<Utc>,
) -> Vec<Versioned> {
    let after = |s: Option<&StoredEvent>| match s {
        Some(s) if s.version_at >= modified => s.version_at + chrono::Duration::microseconds(1),
        _ => modified,
    };
    let version = |t: &Termination, version_at, withdrawn| Versioned {
        source: SOURCE.into(),
        version_at,
        withdrawn,
        record: Record::Termination(t.clone()),
    };
    let mut out = Vec::new();
    let mut keep = std::collections::BTreeSet::new();
    for t in events {
        let id = t.source_id.to_string();
        let s = stored.get(&id);
        if !s.is_some_and(|s| !s.withdrawn && s.termination == *t) {
            out.push(version(t, after(s), false));
        }
        keep.insert(id);
    }
    let prefix = format!("{file_name}/");
    for (id, s) in stored.range(prefix.clone()..) {
        if !id.starts_with(&prefix) {
            break;
        }
        if !s.withdrawn && !keep.contains(id) {
            out.push(version(&s.termination, after(Some(s)), true));
        }
    }
    out
}

/// The `*.csv` files directly in the folder (not starting with `.`), sorted by name.
fn files(dir: &Path) -> Result<Vec<PathBuf>, EventsError> {
    let folder_err = |message: String| EventsError {
        file: dir.display().to_string(),
        line: 0,
        message,
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|e| folder_err(format!("cannot list the events folder: {e}")))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| folder_err(format!("cannot list the events folder: {e}")))?;
        let path = entry.path();
        let Some(name) = path.file_name() else {
            continue;
        };
        let name = name.to_string_lossy();
        let csv = Path::new(&*name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if !csv || name.starts_with('.') || !path.is_file() {
            continue;
        }
        out.push(path);
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

/// What an events sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct EventsSummary {
    /// Files read (valid ones).
    pub files: u64,
    /// Events in those files.
    pub events: u64,
    /// Versions newly stored (new events, withdrawals included).
    pub stored: u64,
    /// Of those, withdrawals of lines no longer in their file.
    pub withdrawn: u64,
}

/// An events sync failed, in part or whole.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Files with problems (every problem listed): those files stored and withdrew nothing,
    /// the other files were stored (`summary`). Or the folder could not be listed.
    #[error("{}", .errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// Every problem.
        errors: Vec<EventsError>,
        /// What the valid files stored.
        summary: EventsSummary,
    },
    /// The store failed; nothing was stored.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Reads every events file of `dir` and makes the store's events from each valid file equal to
/// its lines, in one transaction.
pub async fn sync(
    store: &crate::store::Store,
    dir: &Path,
    key: &PseudonymKey,
) -> Result<EventsSummary, SyncError> {
    let paths = files(dir).map_err(|e| SyncError::Invalid {
        errors: vec![e],
        summary: EventsSummary::default(),
    })?;
    // Only what the sync needs (the Patient ids and the terminations), not every visit.
    let all = store
        .versions_of_kinds(&[
            crate::model::RecordKind::Citizen,
            crate::model::RecordKind::Termination,
        ])
        .await?;
    let patients = crate::sources::roster::patients(&all);
    let stored = current(&all);
    drop(all);
    let mut summary = EventsSummary::default();
    let mut errors = Vec::new();
    let mut batch = Vec::new();
    for path in &paths {
        let events = match read(path, key, &patients) {
            Ok(events) => events,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        let modified = match std::fs::metadata(path).and_then(|m| m.modified()) {
            // Microseconds: what the store keeps.
            Ok(t) => {
                let t = DateTime::<Utc>::from(t);
                DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
            }
            Err(e) => {
                errors.push(EventsError {
                    file: path.display().to_string(),
                    line: 0,
                    message: format!("cannot read the modification time: {e}"),
                });
                continue;
            }
        };
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("read checks the file name");
        let new = versions(file_name, &events, &stored, modified);
        summary.files += 1;
        summary.events += events.len() as u64;
        summary.withdrawn += new.iter().filter(|v| v.withdrawn).count() as u64;
        batch.extend(new);
    }
    let put = store.put_batch(&batch, None).await?;
    summary.stored = put.inserted;
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
    fn file_names_with_a_cpr_number_are_refused() {
        for name in [
            "0101501234.csv",
            "events-010150-1234.csv",
            "x_3112991234_y.csv",
        ] {
            assert!(check_file_name(name).is_err(), "{name}");
        }
        for name in [
            "events.csv",
            "events-20270120.csv",
            "events-20270120093000.csv",
            "2027012009.csv",
            "01015012345.csv",
        ] {
            assert!(check_file_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn fields_that_may_be_a_cpr_number_are_not_quoted() {
        assert_eq!(quoted("dead"), "`dead`");
        assert_eq!(quoted("2027-13-01"), "`2027-13-01`");
        assert!(!quoted("0101501234").contains("0101501234"));
        assert!(!quoted("010150-1234").contains("010150"));
        assert!(!quoted("20270101").contains("20270101"));
    }

    #[test]
    fn every_event_code_reads() {
        for r in [
            TerminationReason::Death,
            TerminationReason::MovedOut,
            TerminationReason::NursingHome,
        ] {
            assert_eq!(parse_event(r.as_str()), Some(r));
        }
        assert_eq!(parse_event("Death"), None);
        assert_eq!(parse_event("moved-out"), None);
    }
}
