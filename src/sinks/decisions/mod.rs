//! Tariff decisions back to the care system, as FHIR R4 `ChargeItem`s: one per course, so a
//! caseworker sees each course and its tariff in the citizen's own record.
//!
//! - [`charge_item`] / [`ChargeItemDoc`]: the `ChargeItem` of a course (JSON or XML, with the
//!   tariff written exactly as the decimal it is).
//! - [`decisions_to_write`]: the documents of many courses, and the citizens that cannot be
//!   written because the care system's `Patient` id is not known.
//! - [`DecisionsClient`]: writes a document by FHIR conditional update
//!   (`PUT {base}/ChargeItem?identifier={system}|{course id}`), so writing the same course
//!   again (the same decision, or a later end after a termination event) replaces the same
//!   `ChargeItem` instead of adding one.
//! - [`code_system`]: the published local `CodeSystem` of the course codes
//!   (`codesystems/progression-course.json` in the repository).
//!
//! # The `ChargeItem` of a course
//!
//! | element | content |
//! |---|---|
//! | `identifier` | `{system: identifier_system, value: course id}`: the key of the conditional update |
//! | `status` | always `billable`: the course is a tariff decision the municipality pays; an early end changes the period, not the status |
//! | `code` | one coding from the local code system: `{track}-{kind}-{group}` (`care-development-2`, `nursing-stabilisation-5`), or `{track}-individual` for an individual course (no group); `text` is the Danish display |
//! | `subject` | `Patient/{patient id}`: the care system's own id. Never a CPR number, never the gateway's pseudonym |
//! | `occurrencePeriod` | first and last paid day (`start`, `end`, dates) |
//! | `quantity` | paid days (locked daily tariff only) |
//! | `priceOverride` | `{value, currency: DKK}`: the locked daily tariff, or for an individual course the locked hourly rate (DKK per visitated hour; the daily amount varies with the grants) |
//! | `note` | what the price is (daily tariff or hourly rate), and, when the course ended early, why (death, moved out, nursing home) |
//!
//! The tariff is written as its exact decimal text (`250.00`, `123.4567`), in JSON as a number
//! and in XML as the `value` attribute; it never passes through a floating-point number.

mod charge_item;
mod client;

pub use charge_item::{
    ChargeItemDoc, MAX_PUBLISHED_GROUP, charge_item, code_system, course_code, decisions_to_write,
};
pub use client::{DecisionError, DecisionsClient, UpsertOutcome};

use crate::sources::Format;
use secrecy::SecretString;
use serde::Deserialize;

/// Default of [`DecisionsConfig::identifier_system`].
pub const DEFAULT_IDENTIFIER_SYSTEM: &str = "urn:progression-gateway:course";
/// Default of [`DecisionsConfig::code_system`]: the url of the published local code system.
pub const DEFAULT_CODE_SYSTEM: &str = "http://progression-gateway.example/CodeSystem/course";
/// Default of [`DecisionsConfig::timeout_secs`].
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Default of [`DecisionsConfig::max_retries`].
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// Where and how to write tariff decisions (`[decisions]` in the gateway's configuration).
///
/// Unknown keys are refused; every key but `base_url` has a default. The client secret is never
/// printed: `Debug` shows `[REDACTED]`, and a value of the wrong type is refused without
/// echoing it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionsConfig {
    /// The care system's FHIR base URL, e.g. `https://care.example.dk/fhir`; the write is
    /// `PUT {base_url}/ChargeItem?identifier=...`. Required; `http` or `https`.
    pub base_url: String,
    /// The identifier system of the course id in `ChargeItem.identifier`, the key of the
    /// conditional update. Default `urn:progression-gateway:course`.
    #[serde(default = "default_identifier_system")]
    pub identifier_system: String,
    /// The url of the local code system of the course codes in `ChargeItem.code`. Default
    /// `http://progression-gateway.example/CodeSystem/course` (published as
    /// `codesystems/progression-course.json`).
    #[serde(default = "default_code_system")]
    pub code_system: String,
    /// The wire format written: `json` (default) or `xml`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// The OAuth2 token endpoint (client credentials grant). `None` (the default): requests
    /// carry no `Authorization` header.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The OAuth2 client id; required with `token_url`. Default none.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The OAuth2 client secret; required with `token_url`. Default none.
    #[serde(
        default,
        deserialize_with = "crate::sources::fhir_pull::secret::optional"
    )]
    pub client_secret: Option<SecretString>,
    /// An OAuth2 `scope` to ask for. Default none.
    #[serde(default)]
    pub scope: Option<String>,
    /// Time limit of one HTTP request, body included, in seconds. Default 30; at least 1.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries of one write after the first attempt, on connection errors, timeouts, 408, 429
    /// and 5xx (the conditional update is idempotent). Default 2.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
}

impl DecisionsConfig {
    /// A configuration with every default and no authentication.
    pub fn new(base_url: impl Into<String>) -> Self {
        DecisionsConfig {
            base_url: base_url.into(),
            identifier_system: default_identifier_system(),
            code_system: default_code_system(),
            format: default_format(),
            token_url: None,
            client_id: None,
            client_secret: None,
            scope: None,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

fn default_identifier_system() -> String {
    DEFAULT_IDENTIFIER_SYSTEM.to_owned()
}
fn default_code_system() -> String {
    DEFAULT_CODE_SYSTEM.to_owned()
}
fn default_format() -> Format {
    Format::Json
}
fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}
fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn reads_from_toml_with_defaults() {
        let cfg: DecisionsConfig = toml::from_str(
            r#"
            base_url = "https://care.example.dk/fhir"
            token_url = "https://care.example.dk/token"
            client_id = "gateway"
            client_secret = "s3cret"
            format = "xml"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.format, Format::Xml);
        assert_eq!(cfg.identifier_system, DEFAULT_IDENTIFIER_SYSTEM);
        assert_eq!(cfg.code_system, DEFAULT_CODE_SYSTEM);
        assert_eq!((cfg.timeout_secs, cfg.max_retries), (30, 2));
        assert_eq!(
            cfg.client_secret.as_ref().unwrap().expose_secret(),
            "s3cret"
        );
        assert!(!format!("{cfg:?}").contains("s3cret"));
        let err = toml::from_str::<DecisionsConfig>("base_url = \"http://x\"\nformt = \"xml\"")
            .unwrap_err();
        assert!(err.message().contains("formt"), "{}", err.message());
        let err = toml::from_str::<DecisionsConfig>("base_url = \"http://x\"\nclient_secret = 987")
            .unwrap_err();
        assert!(!err.message().contains("987"), "{}", err.message());
    }
}
