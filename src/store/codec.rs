//! How values are written to and read from the database columns: instants, dates, hashes,
//! payloads. Portable across SQLite and PostgreSQL because everything is text, integers or
//! booleans.

use super::StoreError;
use crate::domain::Pseudonym;
use crate::model::{Course, DailyTariff, Versioned};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use sha2::{Digest, Sha256};

/// The stored form of an instant: fixed-width RFC 3339 UTC with microseconds, so text order
/// is time order. Anything below a microsecond is truncated.
pub(crate) fn instant_text(what: &'static str, at: DateTime<Utc>) -> Result<String, StoreError> {
    if !(1..=9999).contains(&at.year()) {
        return Err(StoreError::Invalid {
            what,
            reason: format!("year {} is outside 0001-9999", at.year()),
        });
    }
    Ok(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// Reads an instant written by [`instant_text`].
pub(crate) fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| "an instant that is not RFC 3339".to_owned())
}

/// The stored form of a date: `YYYY-MM-DD`.
pub(crate) fn date_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// Describes a serde_json error without quoting the data it failed on.
pub(crate) fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let kind = match e.classify() {
        Category::Io => "an I/O error",
        Category::Syntax => "invalid JSON",
        Category::Data => "JSON that does not fit the type",
        Category::Eof => "truncated JSON",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// One record version as it goes into `record_versions` (serialized and hashed; built on the
/// thread that read it, stored by the one writer).
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub kind: &'static str,
    pub source: String,
    pub record_key: String,
    pub citizen: String,
    pub version_at: String,
    pub withdrawn: bool,
    pub content_hash: String,
    pub payload: String,
}

impl VersionRow {
    /// Serializes and hashes a version.
    pub fn new(v: &Versioned) -> Result<Self, StoreError> {
        let payload = serde_json::to_string(&v.record).map_err(|e| StoreError::Invalid {
            what: "record",
            reason: format!("cannot be serialized: {}", json_problem(&e)),
        })?;
        Ok(Self {
            kind: v.record.kind().as_str(),
            source: v.source.clone(),
            record_key: v.record.key(),
            citizen: v.record.citizen().to_string(),
            version_at: instant_text("version_at", v.version_at)?,
            withdrawn: v.withdrawn,
            content_hash: content_hash(&payload, v.withdrawn),
            payload,
        })
    }
}

impl VersionRow {
    /// What makes two rows the same version (`kind`, `record_key` and the citizen are in the
    /// payload the content hash covers): half the content hash's bits and a hash of the version
    /// instant.
    /// Two rows of one source with the same identity are one stored version.
    pub fn identity(&self) -> (u128, u64) {
        use std::hash::{Hash, Hasher};
        let prefix = self.content_hash.get(..32).unwrap_or(&self.content_hash);
        // SipHash with fixed keys: the same in every process.
        let mut at = std::hash::DefaultHasher::new();
        self.version_at.hash(&mut at);
        (
            u128::from_str_radix(prefix, 16).unwrap_or_default(),
            at.finish(),
        )
    }

    /// The source it is stored under.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// sha256 (lower-case hex) of the serialized record and the withdrawn flag.
pub(crate) fn content_hash(payload: &str, withdrawn: bool) -> String {
    let mut h = Sha256::new();
    h.update(payload.as_bytes());
    h.update(if withdrawn {
        b"\nwithdrawn=true".as_slice()
    } else {
        b"\nwithdrawn=false".as_slice()
    });
    hex::encode(h.finalize())
}

/// The columns of `record_versions` that [`decode_version`] reads, in `SELECT` order:
/// id, citizen, source, version_at, withdrawn, payload.
pub(crate) type VersionColumns = (i64, String, String, String, bool, String);

/// Rebuilds a stored version; the error text names the problem, never the payload.
pub(crate) fn decode_version(
    (id, citizen, source, version_at, withdrawn, payload): VersionColumns,
) -> Result<(Pseudonym, Versioned), StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "record version",
        row: id.to_string(),
        reason,
    };
    let citizen = Pseudonym::parse(&citizen).map_err(|e| corrupt(e.to_string()))?;
    let version_at = parse_instant(&version_at).map_err(corrupt)?;
    let record: crate::model::Record =
        serde_json::from_str(&payload).map_err(|e| corrupt(json_problem(&e)))?;
    if record.citizen() != &citizen {
        return Err(corrupt(
            "the payload's citizen differs from the citizen column".into(),
        ));
    }
    Ok((
        citizen,
        Versioned {
            source,
            version_at,
            withdrawn,
            record,
        },
    ))
}

/// One course as it goes into `courses`.
pub(crate) struct CourseRow {
    pub id: String,
    pub citizen: String,
    pub track: &'static str,
    pub kind: &'static str,
    pub need_score: i64,
    pub need_group: Option<i32>,
    pub tariff_year: i32,
    pub tariff_type: &'static str,
    pub tariff_amount: String,
    pub start_date: String,
    pub planned_end: String,
    pub end_date: String,
    pub end_reason: &'static str,
    pub payload: String,
}

impl CourseRow {
    pub(crate) fn new(c: &Course) -> Result<Self, StoreError> {
        let payload = serde_json::to_string(c).map_err(|e| StoreError::Invalid {
            what: "course",
            reason: format!("cannot be serialized: {}", json_problem(&e)),
        })?;
        let (tariff_type, amount) = match c.tariff {
            DailyTariff::Locked { amount } => ("locked", amount),
            DailyTariff::Individual { hourly_rate } => ("individual", hourly_rate),
        };
        Ok(Self {
            id: c.id.0.clone(),
            citizen: c.citizen.to_string(),
            track: c.track.as_str(),
            kind: c.kind.as_str(),
            need_score: i64::from(c.need_score),
            need_group: c.group.map(i32::from),
            tariff_year: c.tariff_year,
            tariff_type,
            tariff_amount: amount.to_string(),
            start_date: date_text(c.start),
            planned_end: date_text(c.planned_end),
            end_date: date_text(c.end),
            end_reason: c.end_reason.as_str(),
            payload,
        })
    }
}

/// Rebuilds a stored course from its payload.
pub(crate) fn decode_course((id, payload): (String, String)) -> Result<Course, StoreError> {
    let course: Course = serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt {
        what: "course",
        row: id.clone(),
        reason: json_problem(&e),
    })?;
    if course.id.0 != id {
        return Err(StoreError::Corrupt {
            what: "course",
            row: id,
            reason: "the payload's id differs from the id column".into(),
        });
    }
    Ok(course)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_fixed_width_and_ordered_as_text() {
        let a: DateTime<Utc> = "2027-01-04T10:00:00Z".parse().unwrap();
        let b: DateTime<Utc> = "2027-01-04T10:00:00.5Z".parse().unwrap();
        let c: DateTime<Utc> = "2027-01-04T10:00:00.123456789Z".parse().unwrap();
        assert_eq!(instant_text("t", a).unwrap(), "2027-01-04T10:00:00.000000Z");
        assert_eq!(instant_text("t", b).unwrap(), "2027-01-04T10:00:00.500000Z");
        assert_eq!(instant_text("t", c).unwrap(), "2027-01-04T10:00:00.123456Z");
        assert!(instant_text("t", a).unwrap() < instant_text("t", c).unwrap());
        assert!(instant_text("t", c).unwrap() < instant_text("t", b).unwrap());
        assert_eq!(parse_instant("2027-01-04T10:00:00.500000Z").unwrap(), b);
    }

    #[test]
    fn instants_outside_four_digit_years_are_refused() {
        let far = DateTime::<Utc>::from_timestamp(300_000_000_000, 0).unwrap();
        assert!(instant_text("version_at", far).is_err());
    }

    #[test]
    fn the_hash_covers_the_withdrawn_flag() {
        assert_ne!(content_hash("{}", false), content_hash("{}", true));
        assert_eq!(content_hash("{}", false).len(), 64);
    }

    #[test]
    fn json_problems_do_not_quote_the_data() {
        let e = serde_json::from_str::<u8>("\"0101501234\"").unwrap_err();
        assert!(!json_problem(&e).contains("0101501234"));
    }
}
