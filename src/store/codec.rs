//! How values are written to and read from the database columns: instants, dates, hashes,
//! payloads. Portable across SQLite and PostgreSQL because everything is text, integers,
//! booleans or bytes.

use super::StoreError;
use crate::domain::{DeliveryMode, Pseudonym, SourceId, Visit};
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

/// The stored form of a version instant in `record_versions`: microseconds since
/// 1970-01-01T00:00:00Z (years 1-9999). Anything below a microsecond is truncated.
pub(crate) fn instant_micros(what: &'static str, at: DateTime<Utc>) -> Result<i64, StoreError> {
    if !(1..=9999).contains(&at.year()) {
        return Err(StoreError::Invalid {
            what,
            reason: format!("year {} is outside 0001-9999", at.year()),
        });
    }
    Ok(at.timestamp_micros())
}

/// Reads an instant written by [`instant_micros`].
pub(crate) fn micros_instant(micros: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp_micros(micros)
        .filter(|t| (1..=9999).contains(&t.year()))
        .ok_or_else(|| "a version instant outside the years 1-9999".to_owned())
}

/// One record version as it goes into `record_versions` (serialized and hashed; built on the
/// thread that read it, stored by the one writer).
#[derive(Debug, Clone)]
pub struct VersionRow {
    pub kind: &'static str,
    pub source: String,
    /// The pseudonym's 32 bytes.
    pub citizen: Vec<u8>,
    /// Microseconds since 1970 ([`instant_micros`]).
    pub version_at: i64,
    pub withdrawn: bool,
    /// The first 16 bytes of [`content_hash`] of the whole serialized record.
    pub content_hash: [u8; HASH_BYTES],
    /// The record without its kind and citizen ([`compact_payload`]).
    pub payload: String,
}

/// Bytes of the content hash kept per version: 128 bits.
pub(crate) const HASH_BYTES: usize = 16;

impl VersionRow {
    /// Serializes and hashes a version.
    pub fn new(v: &Versioned) -> Result<Self, StoreError> {
        let whole = serde_json::to_string(&v.record).map_err(|e| StoreError::Invalid {
            what: "record",
            reason: format!("cannot be serialized: {}", json_problem(&e)),
        })?;
        let citizen = v.record.citizen();
        let kind = v.record.kind().as_str();
        let mut hash = [0u8; HASH_BYTES];
        hash.copy_from_slice(&content_hash_bytes(&whole, v.withdrawn)[..HASH_BYTES]);
        Ok(Self {
            kind,
            source: v.source.clone(),
            citizen: pseudonym_bytes(citizen),
            version_at: instant_micros("version_at", v.version_at)?,
            withdrawn: v.withdrawn,
            content_hash: hash,
            payload: compact_payload(&whole, kind, citizen),
        })
    }

    /// What makes two rows of one source the same stored version: the content hash (it
    /// covers the kind, the key and the citizen) and the version instant.
    pub fn identity(&self) -> (u128, u64) {
        (
            u128::from_be_bytes(self.content_hash),
            self.version_at as u64,
        )
    }

    /// The source it is stored under.
    pub fn source(&self) -> &str {
        &self.source
    }
}

/// The 32 bytes of a pseudonym (64 hex characters).
pub(crate) fn pseudonym_bytes(p: &Pseudonym) -> Vec<u8> {
    hex::decode(p.as_str()).expect("a pseudonym is 64 hex characters")
}

/// The pseudonym of 32 stored bytes.
pub(crate) fn bytes_pseudonym(bytes: &[u8]) -> Result<Pseudonym, String> {
    if bytes.len() != 32 {
        return Err(format!("a citizen of {} bytes, not 32", bytes.len()));
    }
    Pseudonym::parse(&hex::encode(bytes)).map_err(|e| e.to_string())
}

/// The opening of a whole serialized [`crate::model::Record`]: `{"kind":"KIND","record":`.
fn whole_prefix(kind: &str) -> String {
    format!("{{\"kind\":\"{kind}\",\"record\":")
}

/// The stored payload of a serialized record: the record's object without the kind (the
/// `kind` column) and without its `"citizen"` member (the `citizen` column), about a third
/// smaller. Where the text does not have exactly that shape the whole record is kept; the
/// reader tells the two apart by the opening `{"kind":` ([`decode_version_of`]).
pub(crate) fn compact_payload(whole: &str, kind: &str, citizen: &Pseudonym) -> String {
    let member = format!("\"citizen\":\"{}\"", citizen.as_str());
    let Some(inner) = whole
        .strip_prefix(whole_prefix(kind).as_str())
        .and_then(|rest| rest.strip_suffix('}'))
    else {
        return whole.to_owned();
    };
    // A quote inside a JSON string is escaped, so the member's text occurs only as a member;
    // exactly one occurrence is the record's own `citizen`.
    let mut found = inner.match_indices(member.as_str()).map(|(at, _)| at);
    let (Some(at), None) = (found.next(), found.next()) else {
        return whole.to_owned();
    };
    if !inner.starts_with('{') {
        return whole.to_owned();
    }
    let end = at + member.len();
    let (from, to) = if inner[end..].starts_with(',') {
        (at, end + 1)
    } else if inner[..at].ends_with(',') {
        (at - 1, end)
    } else {
        (at, end)
    };
    let mut out = String::with_capacity(inner.len() - (to - from));
    out.push_str(&inner[..from]);
    out.push_str(&inner[to..]);
    out
}

/// The whole serialized record of a stored payload ([`compact_payload`]): what
/// [`decode_version_of`] reads, as one text (the tests compare it with what was written).
#[cfg(test)]
pub(crate) fn expand_payload(payload: &str, kind: &str, citizen: &Pseudonym) -> String {
    if payload.starts_with("{\"kind\":") {
        return payload.to_owned();
    }
    let rest = payload.strip_prefix('{').unwrap_or(payload);
    let sep = if rest.trim_start().starts_with('}') {
        ""
    } else {
        ","
    };
    format!(
        "{}{{\"citizen\":\"{}\"{sep}{rest}}}",
        whole_prefix(kind),
        citizen.as_str()
    )
}

/// sha256 (lower-case hex) of the serialized record and the withdrawn flag.
#[cfg(test)]
pub(crate) fn content_hash(payload: &str, withdrawn: bool) -> String {
    hex::encode(content_hash_bytes(payload, withdrawn))
}

/// sha256 of the serialized record and the withdrawn flag.
pub(crate) fn content_hash_bytes(payload: &str, withdrawn: bool) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(payload.as_bytes());
    h.update(if withdrawn {
        b"\nwithdrawn=true".as_slice()
    } else {
        b"\nwithdrawn=false".as_slice()
    });
    h.finalize().into()
}

/// The columns of `record_versions` that [`decode_version`] reads, in `SELECT` order:
/// id, kind, citizen, source, version_at, withdrawn, payload.
pub(crate) type VersionColumns = (i64, String, Vec<u8>, String, i64, bool, String);

/// Rebuilds a stored version; the error text names the problem, never the payload.
pub(crate) fn decode_version(
    (id, kind, citizen, source, version_at, withdrawn, payload): VersionColumns,
) -> Result<(Pseudonym, Versioned), StoreError> {
    let who = bytes_pseudonym(&citizen).map_err(|reason| StoreError::Corrupt {
        what: "record version",
        row: id.to_string(),
        reason,
    })?;
    let version = decode_version_of(id, &kind, &who, source, version_at, withdrawn, &payload)?;
    Ok((who, version))
}

/// Rebuilds a stored version of a citizen already decoded: a compact payload is read straight
/// into its kind's record (no tag, no copy of the whole text), a whole one as before.
pub(crate) fn decode_version_of(
    id: i64,
    kind: &str,
    citizen: &Pseudonym,
    source: String,
    version_at: i64,
    withdrawn: bool,
    payload: &str,
) -> Result<Versioned, StoreError> {
    use crate::model::Record;
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "record version",
        row: id.to_string(),
        reason,
    };
    let version_at = micros_instant(version_at).map_err(corrupt)?;
    if kind == "visit"
        && let Some(visit) = compact_visit(payload, citizen)
    {
        return Ok(Versioned {
            source,
            version_at,
            withdrawn,
            record: Record::Visit(visit),
        });
    }
    let record: Record = if payload.starts_with("{\"kind\":") {
        serde_json::from_str(payload).map_err(|e| corrupt(json_problem(&e)))?
    } else {
        let rest = payload.strip_prefix('{').unwrap_or(payload);
        let sep = if rest.trim_start().starts_with('}') {
            ""
        } else {
            ","
        };
        let inner = format!("{{\"citizen\":\"{}\"{sep}{rest}", citizen.as_str());
        fn read<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
            serde_json::from_str(text)
        }
        let kind = crate::model::RecordKind::parse(kind)
            .ok_or_else(|| corrupt(format!("an unknown kind `{}`", crate::domain::shown(kind))))?;
        use crate::model::RecordKind as K;
        match kind {
            K::Citizen => read(&inner).map(Record::Citizen),
            K::Grant => read(&inner).map(Record::Grant),
            K::Visit => read(&inner).map(Record::Visit),
            K::Assessment => read(&inner).map(Record::Assessment),
            K::Goal => read(&inner).map(Record::Goal),
            K::Termination => read(&inner).map(Record::Termination),
            K::Assignment => read(&inner).map(Record::Assignment),
            K::Acute => read(&inner).map(Record::Acute),
            K::FollowUp => read(&inner).map(Record::FollowUp),
        }
        .map_err(|e| corrupt(json_problem(&e)))?
    };
    if record.citizen() != citizen {
        return Err(corrupt(
            "the payload's citizen differs from the citizen column".into(),
        ));
    }
    if record.kind().as_str() != kind {
        return Err(corrupt(
            "the payload's kind differs from the kind column".into(),
        ));
    }
    Ok(Versioned {
        source,
        version_at,
        withdrawn,
        record,
    })
}

/// A visit's compact payload read straight into a [`Visit`] with the citizen given (visits are
/// nearly every stored version): no copy of the text with the citizen put back, strings
/// borrowed from the text and validated once, and instants in the form the store writes them
/// read without the general parser. `None` for anything else (a whole record, escapes in a
/// string, another instant form, a `citizen` member, a value that does not validate):
/// [`decode_version_of`] then reads it as before, so it gives the same visit or the same error.
fn compact_visit(payload: &str, citizen: &Pseudonym) -> Option<Visit> {
    /// Visit's fields in its serialized form, without the citizen.
    #[derive(serde::Deserialize)]
    struct Compact<'a> {
        source_id: &'a str,
        start: UtcSeconds,
        end: UtcSeconds,
        employee: Option<&'a str>,
        mode: DeliveryMode,
        grants: Vec<&'a str>,
        citizen: Option<serde::de::IgnoredAny>,
    }
    if !payload.starts_with('{') || payload.starts_with("{\"kind\":") {
        return None;
    }
    let c: Compact<'_> = serde_json::from_str(payload).ok()?;
    if c.citizen.is_some() {
        return None;
    }
    Some(Visit {
        source_id: SourceId::parse(c.source_id).ok()?,
        citizen: citizen.clone(),
        start: c.start.0,
        end: c.end.0,
        employee: match c.employee {
            Some(e) => Some(Pseudonym::parse(e).ok()?),
            None => None,
        },
        mode: c.mode,
        grants: c
            .grants
            .into_iter()
            .map(|g| SourceId::parse(g).ok())
            .collect::<Option<_>>()?,
    })
}

/// An instant serialized as `YYYY-MM-DDTHH:MM:SSZ` (how a whole-second `DateTime<Utc>`
/// serializes); any other text is refused, for the general parser to read.
struct UtcSeconds(DateTime<Utc>);

impl<'de> serde::Deserialize<'de> for UtcSeconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Seconds;
        impl serde::de::Visitor<'_> for Seconds {
            type Value = UtcSeconds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an instant YYYY-MM-DDTHH:MM:SSZ")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<UtcSeconds, E> {
                utc_seconds(s)
                    .map(UtcSeconds)
                    .ok_or_else(|| E::custom("not YYYY-MM-DDTHH:MM:SSZ"))
            }
        }
        d.deserialize_str(Seconds)
    }
}

/// Reads `YYYY-MM-DDTHH:MM:SSZ` exactly (seconds 00-59): the same instant chrono's parser
/// reads from that text.
fn utc_seconds(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(num(0, 4)?).ok()?;
    NaiveDate::from_ymd_opt(year, num(5, 7)?, num(8, 10)?)?
        .and_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)
        .map(|t| t.and_utc())
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
    fn version_instants_are_microseconds_and_read_back() {
        let c: DateTime<Utc> = "2027-01-04T10:00:00.123456789Z".parse().unwrap();
        let m = instant_micros("t", c).unwrap();
        assert_eq!(m, 1_799_056_800_123_456);
        assert_eq!(
            micros_instant(m).unwrap(),
            "2027-01-04T10:00:00.123456Z"
                .parse::<DateTime<Utc>>()
                .unwrap()
        );
        let far = DateTime::<Utc>::from_timestamp(300_000_000_000, 0).unwrap();
        assert!(instant_micros("version_at", far).is_err());
        assert!(micros_instant(i64::MAX).is_err());
    }

    fn who() -> Pseudonym {
        Pseudonym::parse(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn a_payload_drops_the_kind_and_the_citizen_and_expands_to_the_same_text() {
        let citizen = who();
        let c = citizen.as_str();
        for (kind, inner, compact) in [
            (
                "visit",
                format!(r#"{{"source_id":"v1","citizen":"{c}","mode":"home"}}"#),
                r#"{"source_id":"v1","mode":"home"}"#.to_owned(),
            ),
            (
                "citizen",
                format!(r#"{{"citizen":"{c}","deceased":false}}"#),
                r#"{"deceased":false}"#.to_owned(),
            ),
            (
                "goal",
                format!(r#"{{"source_id":"g","citizen":"{c}"}}"#),
                r#"{"source_id":"g"}"#.to_owned(),
            ),
            (
                "citizen",
                format!(r#"{{"citizen":"{c}"}}"#),
                "{}".to_owned(),
            ),
        ] {
            let whole = format!(r#"{{"kind":"{kind}","record":{inner}}}"#);
            let stored = compact_payload(&whole, kind, &citizen);
            assert_eq!(stored, compact, "{whole}");
            let back: serde_json::Value =
                serde_json::from_str(&expand_payload(&stored, kind, &citizen)).unwrap();
            assert_eq!(
                back,
                serde_json::from_str::<serde_json::Value>(&whole).unwrap()
            );
        }
    }

    #[test]
    fn a_payload_of_another_shape_is_kept_whole_and_read_as_it_is() {
        let citizen = who();
        let c = citizen.as_str();
        // The citizen twice (a nested member), or not at all, or another kind's opening.
        for (kind, whole) in [
            (
                "visit",
                format!(
                    r#"{{"kind":"visit","record":{{"citizen":"{c}","x":{{"citizen":"{c}"}}}}}}"#
                ),
            ),
            (
                "visit",
                r#"{"kind":"visit","record":{"source_id":"v"}}"#.to_owned(),
            ),
            (
                "grant",
                format!(r#"{{"kind":"visit","record":{{"citizen":"{c}"}}}}"#),
            ),
        ] {
            let stored = compact_payload(&whole, kind, &citizen);
            assert_eq!(stored, whole);
            assert_eq!(expand_payload(&stored, kind, &citizen), whole);
        }
    }

    #[test]
    fn a_visit_read_the_quick_way_is_the_visit_written() {
        use crate::domain::{DeliveryMode, SourceId, Visit};
        use crate::model::Record;
        let citizen = who();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let visit = |id: &str, start: &str, employee: Option<Pseudonym>, grants: &[&str]| Visit {
            source_id: SourceId::parse(id).unwrap(),
            citizen: citizen.clone(),
            start: at(start),
            end: at("2027-03-01T08:30:00Z"),
            employee,
            mode: DeliveryMode::Clinic,
            grants: grants.iter().map(|g| SourceId::parse(g).unwrap()).collect(),
        };
        let plain = [
            visit("v1", "2027-03-01T08:00:00Z", None, &["g1"]),
            visit("v2", "2027-03-01T08:00:00Z", Some(who()), &["g1", "g2"]),
            visit("v3", "0001-01-01T00:00:00Z", None, &[]),
        ];
        // Read by the general parser: an escape, a fraction of a second.
        let other = [
            visit("v\"4", "2027-03-01T08:00:00Z", None, &["g1"]),
            visit("v5", "2027-03-01T08:00:00.5Z", None, &["g1"]),
            visit("v6", "2027-03-01T08:00:00Z", None, &["g\\1"]),
        ];
        for (quick, v) in plain
            .iter()
            .map(|v| (true, v))
            .chain(other.iter().map(|v| (false, v)))
        {
            let written = Versioned {
                source: "s".into(),
                version_at: at("2027-03-02T00:00:00Z"),
                withdrawn: false,
                record: Record::Visit(v.clone()),
            };
            let row = VersionRow::new(&written).unwrap();
            assert!(!row.payload.contains("citizen"), "{}", row.payload);
            let read = decode_version_of(
                7,
                row.kind,
                &citizen,
                "s".into(),
                row.version_at,
                false,
                &row.payload,
            )
            .unwrap();
            assert_eq!(read, written);
            assert_eq!(
                compact_visit(&row.payload, &citizen).is_some(),
                quick,
                "{}",
                row.payload
            );
        }
    }

    #[test]
    fn what_the_quick_way_refuses_is_read_as_before() {
        let citizen = who();
        let c = citizen.as_str();
        let body = r#""source_id":"v1","start":"2027-03-01T08:00:00Z","end":"2027-03-01T08:30:00Z","employee":null,"mode":"home","grants":["g1"]"#;
        let with = |from: &str, to: &str| format!("{{{}}}", body.replacen(from, to, 1));
        // A citizen member, a leap second, an hour 24, no such day, a source id the domain
        // refuses, a whole record, not an object: none of them the quick way; the general
        // parser reads them as it always did.
        for (payload, ok) in [
            (format!(r#"{{"citizen":"{c}",{body}}}"#), false),
            (with("08:00:00Z", "08:00:60Z"), true),
            (with("08:00:00Z", "24:00:00Z"), false),
            (with("2027-03-01T08:00", "2027-02-30T08:00"), false),
            (with(r#""v1""#, r#""""#), false),
            (
                format!(r#"{{"kind":"visit","record":{{"citizen":"{c}",{body}}}}}"#),
                true,
            ),
            (format!("[{body}]"), false),
        ] {
            assert!(compact_visit(&payload, &citizen).is_none(), "{payload}");
            let read = decode_version_of(7, "visit", &citizen, "s".into(), 0, false, &payload);
            assert_eq!(read.is_ok(), ok, "{payload}");
        }
    }

    #[test]
    fn whole_second_instants_read_as_chrono_reads_them() {
        for s in [
            "2027-03-01T08:00:00Z",
            "2024-02-29T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            assert_eq!(
                utc_seconds(s),
                Some(s.parse::<DateTime<Utc>>().unwrap()),
                "{s}"
            );
        }
        for s in [
            "2027-03-01T08:00:60Z",
            "2027-03-01T24:00:00Z",
            "2027-02-29T08:00:00Z",
            "2027-03-01T08:00:00+00:00",
            "2027-03-01 08:00:00Z",
            "2027-03-01T08:00:00.000Z",
            "+2027-03-01T08:00:0Z",
            "2027-0a-01T08:00:00Z",
        ] {
            assert_eq!(utc_seconds(s), None, "{s}");
        }
    }

    #[test]
    fn json_problems_do_not_quote_the_data() {
        let e = serde_json::from_str::<u8>("\"0101501234\"").unwrap_err();
        assert!(!json_problem(&e).contains("0101501234"));
    }
}
