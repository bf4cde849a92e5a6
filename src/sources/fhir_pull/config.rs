//! The configuration of a FHIR pull source (`[[source]] kind = "fhir-pull"`).

use crate::sources::Format;
use secrecy::SecretString;
use serde::Deserialize;
use std::fmt;

/// Default of [`PullConfig::format`].
pub const DEFAULT_FORMAT: Format = Format::Json;
/// Default of [`PullConfig::page_size`].
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Default of [`PullConfig::timeout_secs`].
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;
/// Default of [`PullConfig::max_retries`].
pub const DEFAULT_MAX_RETRIES: u32 = 5;
/// Default of [`PullConfig::backoff_initial_ms`].
pub const DEFAULT_BACKOFF_INITIAL_MS: u64 = 500;
/// Default of [`PullConfig::backoff_max_ms`].
pub const DEFAULT_BACKOFF_MAX_MS: u64 = 30_000;

/// How to reach a FHIR server and search it for Bundles.
///
/// Deserializes from the gateway's TOML configuration (unknown keys are refused); every key
/// but `base_url` has a default. The client secret is never printed: `Debug` shows
/// `[REDACTED]`, and a value of the wrong type is refused without echoing it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullConfig {
    /// The FHIR base URL, e.g. `https://care.example.dk/fhir`; the search is
    /// `GET {base_url}/Bundle`. Required; `http` or `https`.
    pub base_url: String,
    /// The OAuth2 token endpoint (client credentials grant). `None` (the default): requests
    /// carry no `Authorization` header.
    #[serde(default)]
    pub token_url: Option<String>,
    /// The OAuth2 client id; required with `token_url`. Default none.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The OAuth2 client secret; required with `token_url`. Default none. In production it
    /// comes from the environment or a file, not the configuration file itself.
    #[serde(default, deserialize_with = "secret::optional")]
    pub client_secret: Option<SecretString>,
    /// An OAuth2 `scope` to ask for (some identity providers require one). Default none.
    #[serde(default)]
    pub scope: Option<String>,
    /// The wire format asked for, sent as `_format` and `Accept`: `json` (default) or `xml`.
    #[serde(default = "default_format")]
    pub format: Format,
    /// Bundles per search page, sent as `_count`. Default 100; at least 1.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Time limit of one HTTP request, body included, in seconds. Default 30; at least 1.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Retries after the first attempt of one request before giving up. Default 5.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First backoff delay in milliseconds; doubled each retry, with jitter. Default 500.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Longest backoff delay in milliseconds, also the cap of a server's `Retry-After`.
    /// Default 30000.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// Largest response body read, in bytes (default 32 MiB): a larger page fails the pull
    /// (not retried) instead of exhausting memory; lower `page_size` to stay under it.
    #[serde(default = "default_max_page_bytes")]
    pub max_page_bytes: u64,
}

/// Default of [`PullConfig::max_page_bytes`]: 32 MiB.
pub const DEFAULT_MAX_PAGE_BYTES: u64 = 32 * 1024 * 1024;

fn default_max_page_bytes() -> u64 {
    DEFAULT_MAX_PAGE_BYTES
}

impl PullConfig {
    /// A configuration with every default and no authentication.
    pub fn new(base_url: impl Into<String>) -> Self {
        PullConfig {
            base_url: base_url.into(),
            token_url: None,
            client_id: None,
            client_secret: None,
            scope: None,
            format: DEFAULT_FORMAT,
            page_size: DEFAULT_PAGE_SIZE,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
            max_retries: DEFAULT_MAX_RETRIES,
            backoff_initial_ms: DEFAULT_BACKOFF_INITIAL_MS,
            backoff_max_ms: DEFAULT_BACKOFF_MAX_MS,
            max_page_bytes: DEFAULT_MAX_PAGE_BYTES,
        }
    }
}

fn default_format() -> Format {
    DEFAULT_FORMAT
}
fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}
fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}
fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}
fn default_backoff_initial_ms() -> u64 {
    DEFAULT_BACKOFF_INITIAL_MS
}
fn default_backoff_max_ms() -> u64 {
    DEFAULT_BACKOFF_MAX_MS
}

/// Deserializers for secrets that never echo the value in an error (serde's own
/// "invalid type: integer `123`" would).
pub(crate) mod secret {
    use super::*;

    struct Visitor;

    impl serde::de::Visitor<'_> for Visitor {
        type Value = SecretString;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a quoted string")
        }
        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SecretString, E> {
            Ok(SecretString::from(s.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, s: String) -> Result<SecretString, E> {
            Ok(SecretString::from(s))
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<SecretString, E> {
            Err(E::custom(WRONG))
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<SecretString, E> {
            Err(E::custom(WRONG))
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<SecretString, E> {
            Err(E::custom(WRONG))
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<SecretString, E> {
            Err(E::custom(WRONG))
        }
    }

    const WRONG: &str = "a secret must be a quoted string";

    /// A required secret.
    pub(crate) fn required<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<SecretString, D::Error> {
        d.deserialize_any(Visitor)
    }

    /// An optional secret (use with `#[serde(default)]`).
    pub(crate) fn optional<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SecretString>, D::Error> {
        d.deserialize_any(Visitor).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    /// The shape the gateway's configuration gives it: an internally tagged `[[source]]` list.
    #[derive(Debug, Deserialize)]
    #[serde(tag = "kind", rename_all = "kebab-case")]
    enum Source {
        FhirPull(PullConfig),
    }

    #[derive(Debug, Deserialize)]
    struct File {
        source: Vec<Source>,
    }

    #[test]
    fn reads_from_toml_with_defaults() {
        let file: File = toml::from_str(
            r#"
            [[source]]
            kind = "fhir-pull"
            base_url = "https://care.example.dk/fhir"
            token_url = "https://care.example.dk/token"
            client_id = "gateway"
            client_secret = "s3cret"
            format = "xml"
            "#,
        )
        .unwrap();
        let Source::FhirPull(cfg) = &file.source[0];
        assert_eq!(cfg.base_url, "https://care.example.dk/fhir");
        assert_eq!(cfg.format, Format::Xml);
        assert_eq!(cfg.page_size, 100);
        assert_eq!(cfg.timeout_secs, 30);
        assert_eq!(cfg.max_retries, 5);
        assert_eq!((cfg.backoff_initial_ms, cfg.backoff_max_ms), (500, 30_000));
        assert_eq!(
            cfg.client_secret.as_ref().unwrap().expose_secret(),
            "s3cret"
        );
        assert!(!format!("{cfg:?}").contains("s3cret"));

        let minimal: PullConfig = toml::from_str(r#"base_url = "http://x/fhir""#).unwrap();
        assert_eq!(minimal.format, Format::Json);
        assert!(minimal.token_url.is_none());
    }

    #[test]
    fn refuses_unknown_keys_and_never_echoes_a_secret() {
        let err = toml::from_str::<PullConfig>("base_url = \"http://x\"\npage_sise = 5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("page_sise"), "{err}");
        // The message (toml's Display also quotes the source line; the gateway's configuration
        // loader reports message and line only).
        let err =
            toml::from_str::<PullConfig>("base_url = \"http://x\"\nclient_secret = 987654321")
                .unwrap_err();
        assert!(!err.message().contains("987654321"), "{}", err.message());
        assert!(err.message().contains("quoted string"), "{}", err.message());
    }
}
