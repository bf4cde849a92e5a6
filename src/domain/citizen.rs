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

    /// The first 12 characters, enough to tell citizens apart in a table.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

string_newtype!(Pseudonym);

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
    fn short_keys_are_refused_and_never_printed() {
        assert!(PseudonymKey::new(SecretString::from("short")).is_err());
        let k = key();
        assert!(!format!("{k:?}").contains("demo-key"));
    }
}
