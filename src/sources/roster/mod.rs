//! The team roster file: which citizen belongs to which team when, where the municipality
//! keeps it outside the care system.
//!
//! CSV with the header `citizen,team,from,to`: `citizen` is a CPR number (pseudonymised on
//! read, never stored), the care system's Patient id of a citizen already received, or an
//! already pseudonymised citizen (64 hex characters); `team` a team
//! id of `mappings/teams.toml`; `from` and `to` local dates (`to` empty while it lasts).
//! The roster is a whole: each read replaces the previous one, and an assignment no longer in
//! the file is withdrawn.

use crate::domain::{Pseudonym, PseudonymKey, TeamAssignment, TeamId, shown};
use crate::mapping::Mappings;
use crate::model::{Record, RecordKind, Versioned};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// The source name roster assignments are stored under.
pub const SOURCE: &str = "roster";

/// The header a roster file must have.
pub const HEADER: [&str; 4] = ["citizen", "team", "from", "to"];

/// A problem in a roster file: the file, the line and what is wrong, naming the column. A
/// message never holds a value of the `citizen` column (nor the header's cells); a value of
/// another column is shown only cut to a short prefix and only if it cannot be a CPR number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct RosterError {
    /// The file.
    pub file: String,
    /// 1-based line (the header is line 1).
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// Reads a roster file. Every problem is reported; an empty result means a valid, empty roster.
/// `patients` maps the care system's Patient ids to pseudonyms (from the stored citizens).
pub fn read(
    path: &Path,
    key: &PseudonymKey,
    mappings: &Mappings,
    patients: &HashMap<String, Pseudonym>,
) -> Result<Vec<TeamAssignment>, Vec<RosterError>> {
    let file = path.display().to_string();
    let err = |line: u64, message: String| RosterError {
        file: file.clone(),
        line,
        message,
    };
    let mut reader = match csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
    {
        Ok(r) => r,
        Err(e) => return Err(vec![err(0, format!("cannot read the roster: {e}"))]),
    };
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
    for record in reader.records() {
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
        if record.len() != 4 {
            errors.push(err(
                line,
                format!("expected 4 fields, found {}", record.len()),
            ));
            continue;
        }
        let citizen = match super::csv_citizen(&record[0], "column 1 (`citizen`)", key, patients) {
            Ok(c) => c,
            Err(m) => {
                errors.push(err(line, m));
                continue;
            }
        };
        let team = match TeamId::parse(&record[1]) {
            Ok(t) if mappings.team(&t).is_some() => t,
            Ok(t) => {
                errors.push(err(
                    line,
                    format!(
                        "column 2 (`team`): unknown team {} (not in the team mappings)",
                        shown(t.as_str())
                    ),
                ));
                continue;
            }
            Err(_) => {
                errors.push(err(
                    line,
                    format!(
                        "column 2 (`team`): {} is not a team id (1-32 characters of a-z, 0-9, - \
                         and _)",
                        shown(&record[1])
                    ),
                ));
                continue;
            }
        };
        let from = match record[2].parse::<NaiveDate>() {
            Ok(d) => d,
            Err(_) => {
                errors.push(err(
                    line,
                    format!(
                        "column 3 (`from`): {} is not a date (YYYY-MM-DD)",
                        shown(&record[2])
                    ),
                ));
                continue;
            }
        };
        let to = match &record[3] {
            "" => None,
            s => match s.parse::<NaiveDate>() {
                Ok(d) => Some(d),
                Err(_) => {
                    errors.push(err(
                        line,
                        format!("column 4 (`to`): {} is not a date (YYYY-MM-DD)", shown(s)),
                    ));
                    continue;
                }
            },
        };
        match TeamAssignment::new(citizen, team, from, to) {
            Ok(a) => out.push(a),
            Err(e) => errors.push(err(line, e.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The care system's Patient ids of the stored citizens.
pub fn patients(all: &[(Pseudonym, Vec<Versioned>)]) -> HashMap<String, Pseudonym> {
    all.iter()
        .flat_map(|(who, versions)| {
            versions.iter().filter_map(move |v| match &v.record {
                Record::Citizen(c) => c
                    .patient_id
                    .as_ref()
                    .map(|id| (id.to_string(), who.clone())),
                _ => None,
            })
        })
        .collect()
}

/// The versions that make the store's roster equal to `assignments`: each assignment as a
/// version at `as_of`, and a withdrawal of every stored assignment no longer in the roster.
/// `stored` are the current roster assignments in the store (not withdrawn).
pub fn versions(
    assignments: &[TeamAssignment],
    stored: &[TeamAssignment],
    as_of: DateTime<Utc>,
) -> Vec<Versioned> {
    let keep: BTreeSet<String> = assignments
        .iter()
        .map(|a| Record::Assignment(a.clone()).key())
        .collect();
    let version = |a: &TeamAssignment, withdrawn| Versioned {
        source: SOURCE.into(),
        version_at: as_of,
        withdrawn,
        record: Record::Assignment(a.clone()),
    };
    assignments
        .iter()
        .map(|a| version(a, false))
        .chain(
            stored
                .iter()
                .filter(|a| !keep.contains(&Record::Assignment((*a).clone()).key()))
                .map(|a| version(a, true)),
        )
        .collect()
}

/// The current roster assignments among stored versions (for [`versions`]).
pub fn current(all: &[(Pseudonym, Vec<Versioned>)]) -> Vec<TeamAssignment> {
    let mut out = Vec::new();
    for (_, versions) in all {
        let roster: Vec<Versioned> = versions
            .iter()
            .filter(|v| v.source == SOURCE && v.record.kind() == RecordKind::Assignment)
            .cloned()
            .collect();
        if !roster.is_empty() {
            out.extend(crate::model::resolve_history(&roster, chrono_tz::UTC).assignments);
        }
    }
    out
}

/// What a roster sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RosterSummary {
    /// Assignments in the file.
    pub assignments: u64,
    /// Versions newly stored (new or withdrawn assignments).
    pub stored: u64,
}

/// A roster sync failed: the file is invalid (every problem listed) or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The file has problems; nothing was stored.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<RosterError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Reads the roster file and makes the store's roster equal to it, in one transaction. The
/// version instant is the file's modification time, so re-reading an unchanged file stores
/// nothing.
pub async fn sync(
    store: &crate::store::Store,
    path: &Path,
    key: &PseudonymKey,
    mappings: &Mappings,
) -> Result<RosterSummary, SyncError> {
    // Only what the sync needs (the Patient ids and the roster), not every visit.
    let all = store
        .versions_of_kinds(&[RecordKind::Citizen, RecordKind::Assignment])
        .await?;
    let assignments = read(path, key, mappings, &patients(&all)).map_err(SyncError::Invalid)?;
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(DateTime::<Utc>::from)
        .map_err(|e| {
            SyncError::Invalid(vec![RosterError {
                file: path.display().to_string(),
                line: 0,
                message: format!("cannot read the modification time: {e}"),
            }])
        })?;
    let stored = current(&all);
    let batch = versions(&assignments, &stored, modified);
    let put = store.put_batch(&batch, None).await?;
    Ok(RosterSummary {
        assignments: assignments.len() as u64,
        stored: put.inserted,
    })
}
