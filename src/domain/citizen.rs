//! Citizens are known only by a keyed pseudonym of their CPR number.

use super::InvalidValue;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;

/// A CPR number (10 digits). It lives only long enough to be pseudonymised:
/// it is not `Serialize`, and its `Debug` and `Display` never show the digits.
#[derive(Clone, PartialEq, Eq)]
pub struct Cpr(String);

/// Why a CPR number was refused. Never contains the number itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CprError {
    /// Not exactly 10 characters (after removing one optional dash).
    #[error("a CPR number must have 10 digits, this one has {0} characters")]
    Length(usize),
    /// A character that is not a digit.
    #[error("a CPR number must be digits only")]
    NotDigits,
    /// The first six digits are not a date (DDMMYY).
    #[error("a CPR number must start with a valid date (DDMMYY)")]
    BadDate,
}

impl Cpr {
    /// Validates a CPR number: 10 digits (a dash after the sixth is accepted), the first six a
    /// calendar day DDMMYY. No modulus-11 check: CPR numbers issued since 2007 need not pass it.
    pub fn parse(raw: &str) -> Result<Self, CprError> {
        let trimmed = raw.trim();
        let digits: String = match trimmed.len() {
            11 if trimmed.as_bytes()[6] == b'-' => {
                let mut s = trimmed[..6].to_owned();
                s.push_str(&trimmed[7..]);
                s
            }
            _ => trimmed.to_owned(),
        };
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(CprError::NotDigits);
        }
        if digits.len() != 10 {
            return Err(CprError::Length(digits.chars().count()));
        }
        let day: u32 = digits[0..2].parse().map_err(|_| CprError::BadDate)?;
        let month: u32 = digits[2..4].parse().map_err(|_| CprError::BadDate)?;
        let year: i32 = digits[4..6].parse().map_err(|_| CprError::BadDate)?;
        // The century is not needed to check the day: use a leap year candidate for 29 Feb.
        let probe_year = if year % 4 == 0 { 2000 } else { 2001 };
        chrono::NaiveDate::from_ymd_opt(probe_year, month, day).ok_or(CprError::BadDate)?;
        Ok(Cpr(digits))
    }

    fn digits(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cpr(**********)")
    }
}

/// The separators accepted between the date and the serial number of a CPR number when
/// looking for one in text: `ddmmyy-xxxx`, `ddmmyy_xxxx`, `ddmmyy xxxx`, `ddmmyy.xxxx`,
/// `ddmmyy/xxxx`.
const CPR_SEPARATORS: &[u8] = b"-_ ./";

/// Whether `text` holds what looks like a CPR number: a run of exactly ten digits, or six
/// digits, one separator (`-`, `_`, space, `.`, `/`) and four digits, not part of a longer run
/// of digits, whose first six digits are a calendar day (DDMMYY). A UUID
/// (`8-4-4-4-12` hex digits) is never taken for one, whatever digits it holds.
pub fn holds_cpr(text: &str) -> bool {
    find_cpr(text.as_bytes(), 0).is_some()
}

/// Where the next CPR-shaped run starts in `b` at or after `from`, and its length.
fn find_cpr(b: &[u8], from: usize) -> Option<(usize, usize)> {
    let digit = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let mut i = from;
    while i < b.len() {
        if let Some(len) = uuid_at(b, i) {
            i += len;
            continue;
        }
        if !digit(i) || (i > 0 && digit(i - 1)) {
            i += 1;
            continue;
        }
        let plain = (i..i + 10).all(digit) && !digit(i + 10);
        let separated = (i..i + 6).all(digit)
            && b.get(i + 6).is_some_and(|c| CPR_SEPARATORS.contains(c))
            && (i + 7..i + 11).all(digit)
            && !digit(i + 11);
        let len = if plain {
            10
        } else if separated {
            11
        } else {
            i += 1;
            continue;
        };
        let mut digits = b[i..i + 6].to_vec();
        digits.extend_from_slice(&b[i + len - 4..i + len]);
        if std::str::from_utf8(&digits).is_ok_and(|d| Cpr::parse(d).is_ok()) {
            return Some((i, len));
        }
        i += 1;
    }
    None
}

/// The length of a UUID (36 characters, `8-4-4-4-12` hex digits) starting at `i`, not glued to
/// other letters or digits.
fn uuid_at(b: &[u8], i: usize) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let mut at = i;
    for (n, len) in GROUPS.iter().enumerate() {
        if n > 0 {
            if b.get(at) != Some(&b'-') {
                return None;
            }
            at += 1;
        }
        if !(at..at + len).all(|j| b.get(j).is_some_and(u8::is_ascii_hexdigit)) {
            return None;
        }
        at += len;
    }
    if b.get(at).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some(at - i)
}

/// Masks every CPR-shaped run of `text` (see [`holds_cpr`]) with ten asterisks. A last line of
/// defence for text the gateway does not write itself (a parser's message): messages are built
/// not to hold field values in the first place.
pub fn mask_cpr(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some((i, len)) = find_cpr(b, at) {
        out.push_str(&text[at..i]);
        out.push_str("**********");
        at = i + len;
    }
    out.push_str(&text[at..]);
    out
}

/// The longest value quoted in a message, in characters.
pub const SHOWN_CHARS: usize = 40;

/// A value for a message: in backticks, cut to [`SHOWN_CHARS`] characters (and `…`), or not
/// shown at all when it may hold a CPR number. Values of CPR-bearing fields are never passed
/// here: messages name their file, line, column or element instead.
pub fn shown(value: &str) -> String {
    if holds_cpr(value) {
        return "(not shown: it may hold a CPR number)".into();
    }
    format!("`{}`", cut(value, SHOWN_CHARS))
}

/// `text` cut to `max` characters, with `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

/// The secret key of the citizen pseudonyms (HMAC-SHA256). `Debug` prints nothing of it.
#[derive(Clone)]
pub struct PseudonymKey(SecretString);

impl fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PseudonymKey([REDACTED])")
    }
}

impl PseudonymKey {
    /// At least 16 bytes, so a pseudonym cannot be reversed by trying all CPR numbers without it.
    pub const MIN_LEN: usize = 16;

    /// Wraps a secret key, refusing one shorter than [`PseudonymKey::MIN_LEN`] bytes.
    pub fn new(secret: SecretString) -> Result<Self, InvalidValue> {
        let len = secret.expose_secret().len();
        if len < Self::MIN_LEN {
            return Err(InvalidValue::new(
                "pseudonym key",
                format!("must be at least {} bytes, it has {len}", Self::MIN_LEN),
            ));
        }
        Ok(Self(secret))
    }

    /// The pseudonym of a citizen: HMAC-SHA256 of the 10 digits under this key, lower-case hex.
    pub fn citizen(&self, cpr: &Cpr) -> Pseudonym {
        Pseudonym(self.hmac_hex(b"citizen:", cpr.digits().as_bytes()))
    }

    /// The pseudonym of another identifier (an employee id, a source-local person id), kept
    /// apart from citizen pseudonyms by a domain prefix.
    pub fn other(&self, domain: &str, id: &str) -> Pseudonym {
        let mut prefix = domain.as_bytes().to_vec();
        prefix.push(b':');
        Pseudonym(self.hmac_hex(&prefix, id.as_bytes()))
    }

    fn hmac_hex(&self, prefix: &[u8], value: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(prefix);
        mac.update(value);
        hex::encode(mac.finalize().into_bytes())
    }
}

/// A keyed pseudonym (64 lower-case hex characters): the only identity of a citizen or employee
/// that the gateway stores, logs or prints.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pseudonym(String);

impl Pseudonym {
    /// Accepts a stored pseudonym: 64 lower-case hex characters.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidValue::new(
                "pseudonym",
                "must be 64 lower-case hex characters",
            ))
        }
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 characters in groups of four (`004c-5528-a250`), enough to tell citizens
    /// apart in a table. Grouped so that no run of ten digits appears in a log or a table,
    /// which a municipality's scanner for CPR numbers would flag (1.6 % of pseudonyms have one
    /// among their first 12 hex characters: 160 citizens of 10,000).
    pub fn short(&self) -> String {
        short_form(&self.0)
    }
}

string_newtype!(Pseudonym);

/// [`Pseudonym::short`] of a pseudonym's hex text (the first 12 characters, fewer if it is
/// shorter, in groups of four).
pub fn short_form(hex: &str) -> String {
    let head: Vec<char> = hex.chars().take(12).collect();
    head.chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PseudonymKey {
        PseudonymKey::new(SecretString::from("a-demo-key-of-32-bytes-----------")).unwrap()
    }

    #[test]
    fn cpr_accepts_ten_digits_and_a_dash() {
        assert!(Cpr::parse("0101501234").is_ok());
        assert!(Cpr::parse("010150-1234").is_ok());
        assert_eq!(Cpr::parse("0101501234"), Cpr::parse("010150-1234"));
    }

    #[test]
    fn cpr_refuses_bad_input_without_echoing_it() {
        for bad in [
            "010150123",
            "01015012345",
            "01015O1234",
            "3202501234",
            "0013501234",
        ] {
            let err = Cpr::parse(bad).unwrap_err().to_string();
            assert!(!err.contains(bad), "{err}");
            assert!(!err.contains(&bad[..6]), "{err}");
        }
        assert_eq!(Cpr::parse("2902011234"), Err(CprError::BadDate));
        assert!(Cpr::parse("2902001234").is_ok());
    }

    #[test]
    fn cpr_shapes_are_found_and_masked_but_uuids_are_not() {
        for text in [
            "0101501234",
            "x 010150-1234 y",
            "010150_1234",
            "010150 1234",
            "id=010150.1234;",
            "abc0101501234",
        ] {
            assert!(holds_cpr(text), "{text}");
            assert!(!mask_cpr(text).contains("1234"), "{text}");
        }
        for text in [
            "01015012345",
            "3202501234",
            "line 12, column 345",
            "Patient/4081aaa6-1c2d-4e5f-9a0b-5d0101501234",
        ] {
            assert!(!holds_cpr(text), "{text}");
            assert_eq!(mask_cpr(text), text);
        }
        assert_eq!(mask_cpr("a 010150_1234 b"), "a ********** b");
        assert_eq!(shown(&"x".repeat(100)), format!("`{}…`", "x".repeat(40)));
        assert!(!shown("010150_1234").contains("1234"));
        assert_eq!(cut("æøå", 2), "æø…");
    }

    #[test]
    fn cpr_debug_hides_the_digits() {
        let cpr = Cpr::parse("0101501234").unwrap();
        assert!(!format!("{cpr:?}").contains("0101501234"));
    }

    #[test]
    fn pseudonym_is_keyed_stable_and_hides_the_cpr() {
        let cpr = Cpr::parse("0101501234").unwrap();
        let p1 = key().citizen(&cpr);
        let p2 = key().citizen(&cpr);
        assert_eq!(p1, p2);
        assert_eq!(p1.as_str().len(), 64);
        assert!(!p1.as_str().contains("0101501234"));
        let other_key =
            PseudonymKey::new(SecretString::from("another-key-of-enough-length")).unwrap();
        assert_ne!(other_key.citizen(&cpr), p1);
        assert_ne!(key().other("employee", "0101501234"), p1);
        assert!(Pseudonym::parse(p1.as_str()).is_ok());
    }

    #[test]
    fn the_short_form_is_grouped_so_no_ten_digits_run_together() {
        let key = key();
        let mut had_run = 0;
        for n in 0..20_000u32 {
            let who = key.citizen(
                &Cpr::parse(&format!("{:06}{:04}", 10_150 + n / 10_000, n % 10_000)).unwrap(),
            );
            let short = who.short();
            assert_eq!(short.len(), 14);
            assert_eq!(short.replace('-', ""), who.as_str()[..12]);
            assert!(
                short.split('-').all(|g| g.len() == 4),
                "{short} is not three groups of four"
            );
            let longest = short
                .split(|c: char| !c.is_ascii_digit())
                .map(str::len)
                .max()
                .unwrap_or(0);
            assert!(longest <= 4, "{short}");
            let head = &who.as_str()[..12];
            if head
                .split(|c: char| !c.is_ascii_digit())
                .any(|r| r.len() >= 10)
            {
                had_run += 1;
            }
        }
        // About 1.6 % of the ungrouped prefixes hold a run a CPR scanner would flag.
        assert!((150..500).contains(&had_run), "{had_run}");
        assert_eq!(short_form("abc"), "abc");
    }

    #[test]
    fn short_keys_are_refused_and_never_printed() {
        assert!(PseudonymKey::new(SecretString::from("short")).is_err());
        let k = key();
        assert!(!format!("{k:?}").contains("demo-key"));
    }
}
