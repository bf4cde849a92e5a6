//! The HTTP side of pulling Bundles from a FHIR server.
//!
//! [`FhirPullClient`] builds the search URL (`GET {base}/Bundle?_lastUpdated=ge{cursor}`) and
//! fetches a search page or a `next` link with OAuth2 client credentials, a time limit per
//! request and bounded retries. Reading the pages and following `next` links is the caller's
//! work; [`FhirPullClient::get_checked`] lets the caller's reader decide that a page which does
//! not parse (say, truncated) is retried like a transport failure.
//!
//! # Retry policy
//!
//! One call makes at most `1 + max_retries` attempts. Retried: connection errors, timeouts,
//! a body that fails to read, a body the check refuses, HTTP 408, 429 and 5xx (from the FHIR
//! server or the token endpoint). The delay is the server's `Retry-After` on 429 and 503
//! (delay seconds or an HTTP date, capped at `backoff_max_ms`), otherwise exponential backoff
//! from `backoff_initial_ms`, doubled per retry up to `backoff_max_ms`, with equal jitter.
//! Not retried: other 4xx ([`PullError::Http`]), and refused credentials ([`PullError::Auth`]).
//! A 401 from the FHIR server makes the client fetch a new token and repeat the request once
//! (not counted as a retry); a second 401 is [`PullError::Auth`].
//!
//! Every retry is logged at `warn` with the URL (query values other than the FHIR search
//! parameters hidden), the attempt and the error; tokens and secrets are never logged.
//!
//! # Credentials
//!
//! The access token is only sent to the origin (scheme, host, port) of `base_url`: a `next`
//! link pointing elsewhere is refused with [`PullError::Invalid`]. The token is cached until
//! 30 s (or 10% of its lifetime, whichever is shorter) before `expires_in` runs out (300 s is
//! assumed when the token endpoint gives no `expires_in`).

mod config;
mod retry;
mod token;

pub(crate) use config::secret;
pub use config::{
    DEFAULT_BACKOFF_INITIAL_MS, DEFAULT_BACKOFF_MAX_MS, DEFAULT_FORMAT, DEFAULT_MAX_RETRIES,
    DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT_SECS, PullConfig,
};

use crate::sources::Format;
use bytes::Bytes;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use token::TokenSource;
use url::Url;

/// Why a pull request failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The credentials were refused: by the token endpoint (named by `url`), or by the FHIR
    /// server even with a freshly issued token. Not retried. Never contains the secret.
    #[error("authentication failed at {url}: {detail}")]
    Auth {
        /// The token endpoint or the FHIR URL (query values hidden).
        url: String,
        /// What was refused.
        detail: String,
    },
    /// The FHIR server answered with an HTTP status that is not retried (a 4xx other than
    /// 401, 408 and 429, or an unexpected 3xx).
    #[error("HTTP {status} from {url}")]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The URL (query values hidden).
        url: String,
    },
    /// A transport failure that is not worth retrying (the HTTP client could not be built, or
    /// the request could not be formed).
    #[error("transport error: {0}")]
    Transport(String),
    /// Every attempt failed with a retryable error.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// Attempts made (`1 + max_retries`).
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// A URL that cannot be fetched: unreadable, or not on the configured FHIR server.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A response body above `max_page_bytes`; not retried.
    #[error(
        "the response from {url} is larger than max_page_bytes ({limit} bytes); lower page_size or raise the limit"
    )]
    TooLarge {
        /// The URL (query values hidden).
        url: String,
        /// The limit.
        limit: u64,
    },
}

/// One attempt's failure, before the retry decision.
pub(crate) enum Failure {
    /// Worth retrying; `after` is the server's `Retry-After`.
    Retry {
        error: String,
        after: Option<Duration>,
    },
    /// The FHIR server answered 401 to the token of this generation (0: no token sent).
    Unauthorized { generation: u64 },
    /// Give up now.
    Fatal(PullError),
}

/// A client for one FHIR server. Cheap to clone: clones share the HTTP connection pool and the
/// cached access token.
#[derive(Clone)]
pub struct FhirPullClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    cfg: PullConfig,
    tokens: Option<TokenSource>,
    /// The `Accept` header: the FHIR media type of `cfg.format`, or plain JSON for a JSON API
    /// ([`FhirPullClient::json_api`]).
    accept: &'static str,
    /// What the server is called in logs: `FHIR`, or `Nexus` for a JSON API.
    label: &'static str,
}

impl fmt::Debug for FhirPullClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FhirPullClient")
            .field("base_url", &retry::loggable(&self.inner.base))
            .field("authenticated", &self.inner.tokens.is_some())
            .finish()
    }
}

fn parse_http_url(what: &str, value: &str) -> Result<Url, PullError> {
    let url = Url::parse(value.trim())
        .map_err(|e| PullError::Config(format!("{what} is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(PullError::Config(format!(
            "{what} must be an http or https URL, not `{}:`",
            url.scheme()
        )));
    }
    if url.cannot_be_a_base() || url.host().is_none() {
        return Err(PullError::Config(format!("{what} has no host")));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

impl FhirPullClient {
    /// Validates the configuration and builds the client (no request is made yet).
    pub fn new(cfg: PullConfig) -> Result<Self, PullError> {
        let mut base = parse_http_url("base_url", &cfg.base_url)?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(PullError::Config(
                "base_url must not have a query or a fragment".into(),
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(PullError::Config(
                "base_url must not carry user info; use token_url, client_id and client_secret"
                    .into(),
            ));
        }
        // Drop a trailing slash so that `{base}/Bundle` has exactly one.
        if base.path().ends_with('/') {
            let trimmed = base.path().trim_end_matches('/').to_owned();
            base.set_path(&trimmed);
        }
        if cfg.page_size == 0 {
            return Err(PullError::Config("page_size must be at least 1".into()));
        }
        if cfg.timeout_secs == 0 {
            return Err(PullError::Config("timeout_secs must be at least 1".into()));
        }
        if cfg.backoff_initial_ms > cfg.backoff_max_ms {
            return Err(PullError::Config(format!(
                "backoff_initial_ms ({}) is larger than backoff_max_ms ({})",
                cfg.backoff_initial_ms, cfg.backoff_max_ms
            )));
        }
        let tokens = match (&cfg.token_url, &cfg.client_id, &cfg.client_secret) {
            (None, None, None) => None,
            (Some(url), Some(id), Some(secret)) => {
                let url = parse_http_url("token_url", url)?;
                if id.trim().is_empty() {
                    return Err(PullError::Config("client_id is empty".into()));
                }
                if secret.expose_secret().is_empty() {
                    return Err(PullError::Config("client_secret is empty".into()));
                }
                for u in [&url, &base] {
                    if u.scheme() == "http" && !is_loopback(u) {
                        tracing::warn!(
                            url = %retry::loggable(u),
                            "Credentials will travel unencrypted over plain http."
                        );
                    }
                }
                Some(TokenSource::new(
                    url,
                    id.trim().to_owned(),
                    secret.clone(),
                    cfg.scope.clone(),
                ))
            }
            (None, _, _) => {
                return Err(PullError::Config(
                    "client_id or client_secret is set without token_url".into(),
                ));
            }
            (Some(_), None, _) => {
                return Err(PullError::Config(
                    "token_url is set without client_id".into(),
                ));
            }
            (Some(_), _, None) => {
                return Err(PullError::Config(
                    "token_url is set without client_secret".into(),
                ));
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .connect_timeout(Duration::from_secs(cfg.timeout_secs.min(10)))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("progression-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                PullError::Transport(format!("cannot build the HTTP client: {}", describe(&e)))
            })?;
        let accept = cfg.format.media_type();
        Ok(FhirPullClient {
            inner: Arc::new(Inner {
                http,
                base,
                cfg,
                tokens,
                accept,
                label: "FHIR",
            }),
        })
    }

    /// The same client for a REST API that answers plain JSON (KMD Nexus): the same token
    /// handling, time limits, retries, size limit and origin check, asking for
    /// `application/json`.
    pub fn json_api(mut cfg: PullConfig, label: &'static str) -> Result<Self, PullError> {
        cfg.format = Format::Json;
        let mut client = Self::new(cfg)?;
        let inner = Arc::get_mut(&mut client.inner).expect("a new client is not shared yet");
        inner.accept = "application/json";
        inner.label = label;
        Ok(client)
    }

    /// The configuration the client was built from.
    pub fn config(&self) -> &PullConfig {
        &self.inner.cfg
    }

    /// The first search URL:
    /// `{base}/Bundle?_lastUpdated=ge{cursor}&_count={page_size}&_format={json|xml}`, without
    /// `_lastUpdated` when `cursor` is `None`. `ge` (inclusive) on purpose: the store makes a
    /// re-read harmless, while `gt` could skip Bundles sharing the cursor's instant. The
    /// cursor is percent-encoded (a `+01:00` offset stays a plus).
    pub fn search_url(&self, cursor: Option<&str>) -> String {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("base_url was checked to be a base")
            .pop_if_empty()
            .push("Bundle");
        {
            let mut query = url.query_pairs_mut();
            if let Some(cursor) = cursor {
                query.append_pair("_lastUpdated", &format!("ge{cursor}"));
            }
            query
                .append_pair("_count", &self.inner.cfg.page_size.to_string())
                .append_pair("_format", &self.inner.cfg.format.to_string());
        }
        url.into()
    }

    /// GETs one URL (a search or a `next` link, on the configured server) with auth, time
    /// limit and bounded retries. Returns the body and its format: from `Content-Type`, else
    /// sniffed, else the configured one.
    pub async fn get(&self, url: &str) -> Result<(Bytes, Format), PullError> {
        self.get_checked(url, |body, format| {
            Ok::<_, Infallible>((body.clone(), format))
        })
        .await
    }

    /// Like [`get`](Self::get), then passes the body to `check` (the caller's reader); a body
    /// that `check` refuses (a truncated page that does not parse) is retried like a transport
    /// failure, within the same retry budget.
    pub async fn get_checked<T, E>(
        &self,
        url: &str,
        check: impl Fn(&Bytes, Format) -> Result<T, E>,
    ) -> Result<T, PullError>
    where
        E: fmt::Display,
    {
        let target = self.target(url)?;
        let shown = retry::loggable(&target);
        let cfg = &self.inner.cfg;
        let max_attempts = cfg.max_retries.saturating_add(1);
        let initial = Duration::from_millis(cfg.backoff_initial_ms);
        let max = Duration::from_millis(cfg.backoff_max_ms);
        let mut attempt = 0u32;
        let mut replayed_after_401 = false;
        loop {
            attempt += 1;
            let (error, after) = match self.attempt(&target, &shown, &check).await {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Unauthorized { generation }) => {
                    match &self.inner.tokens {
                        Some(tokens) if !replayed_after_401 => {
                            // Refresh the token and repeat once, even when it looked valid
                            // (revoked, server restarted, clocks apart). Not a retry.
                            replayed_after_401 = true;
                            tokens.invalidate(generation).await;
                            tracing::info!(url = %shown, server = self.inner.label, "The server refused the access token; fetching a new one.");
                            attempt -= 1;
                            continue;
                        }
                        Some(_) => {
                            return Err(PullError::Auth {
                                url: shown,
                                detail: "the FHIR server refused a freshly issued access token (HTTP 401)".into(),
                            });
                        }
                        None => {
                            return Err(PullError::Auth {
                                url: shown,
                                detail: "the FHIR server requires authentication (HTTP 401) and no token_url is configured".into(),
                            });
                        }
                    }
                }
                Err(Failure::Retry { error, after }) => (error, after),
            };
            if attempt >= max_attempts {
                tracing::warn!(url = %shown, server = self.inner.label, attempt, error = %error, "Request failed; giving up.");
                return Err(PullError::RetriesExhausted {
                    attempts: attempt,
                    last: error,
                });
            }
            let delay = match after {
                Some(after) => after.min(max),
                None => retry::backoff(initial, max, attempt),
            };
            tracing::warn!(
                message = "Request failed, retrying.",
                server = self.inner.label,
                url = %shown,
                attempt,
                delay_ms = delay.as_millis() as u64,
                error = %error,
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Parses `url` (absolute, or relative to the base) and checks it is on the configured
    /// server, so that the access token goes nowhere else.
    fn target(&self, url: &str) -> Result<Url, PullError> {
        let base = &self.inner.base;
        let target = Url::parse(url)
            .or_else(|_| base.join(url))
            .map_err(|e| PullError::Invalid(format!("not a URL ({e})")))?;
        if target.origin() != base.origin() {
            return Err(PullError::Invalid(format!(
                "refusing to fetch {}: not on the configured FHIR server {}",
                retry::loggable(&target),
                base.origin().ascii_serialization()
            )));
        }
        Ok(target)
    }

    async fn attempt<T, E: fmt::Display>(
        &self,
        target: &Url,
        shown: &str,
        check: &impl Fn(&Bytes, Format) -> Result<T, E>,
    ) -> Result<T, Failure> {
        let inner = &*self.inner;
        let mut request = inner
            .http
            .get(target.clone())
            .header(reqwest::header::ACCEPT, inner.accept);
        let mut generation = 0;
        if let Some(tokens) = &inner.tokens {
            let (token, g) = tokens.bearer(&inner.http).await?;
            generation = g;
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request.send().await.map_err(|e| {
            if e.is_builder() {
                Failure::Fatal(PullError::Transport(describe(&e)))
            } else {
                Failure::Retry {
                    error: describe(&e),
                    after: None,
                }
            }
        })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return Err(Failure::Unauthorized { generation });
        }
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            let after = if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE
            {
                token::retry_after(&response)
            } else {
                None
            };
            return Err(Failure::Retry {
                error: format!("HTTP {status}"),
                after,
            });
        }
        if !status.is_success() {
            return Err(Failure::Fatal(PullError::Http {
                status: status.as_u16(),
                url: shown.to_owned(),
            }));
        }
        let declared = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Format::from_content_type);
        let limit = inner.cfg.max_page_bytes;
        let too_large = || {
            Failure::Fatal(PullError::TooLarge {
                url: shown.to_owned(),
                limit,
            })
        };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let mut response = response;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| Failure::Retry {
            error: describe(&e),
            after: None,
        })? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let body = bytes::Bytes::from(body);
        let format = declared
            .or_else(|| Format::sniff(&body))
            .unwrap_or(inner.cfg.format);
        check(&body, format).map_err(|e| Failure::Retry {
            error: format!("the {format} body ({} bytes) was refused: {e}", body.len()),
            after: None,
        })
    }
}

/// A reqwest error as one line, with its causes, without the URL (callers name it
/// themselves, query values hidden).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else if e.is_redirect() {
        "redirect failed"
    } else if e.is_builder() {
        "invalid request"
    } else {
        "request failed"
    };
    let mut out = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str, format: Format) -> FhirPullClient {
        let mut cfg = PullConfig::new(base);
        cfg.format = format;
        cfg.page_size = 50;
        FhirPullClient::new(cfg).unwrap()
    }

    #[test]
    fn search_urls() {
        let c = client("https://care.example.dk/fhir/", Format::Json);
        assert_eq!(
            c.search_url(None),
            "https://care.example.dk/fhir/Bundle?_count=50&_format=json"
        );
        assert_eq!(
            c.search_url(Some("2026-03-01T10:00:00+01:00")),
            "https://care.example.dk/fhir/Bundle?_lastUpdated=ge2026-03-01T10%3A00%3A00%2B01%3A00&_count=50&_format=json"
        );
        let c = client("http://127.0.0.1:8080", Format::Xml);
        assert_eq!(
            c.search_url(None),
            "http://127.0.0.1:8080/Bundle?_count=50&_format=xml"
        );
    }

    #[test]
    fn only_the_configured_server_gets_requests() {
        let c = client("https://care.example.dk/fhir", Format::Json);
        assert!(
            c.target("https://care.example.dk/fhir/Bundle?page=2")
                .is_ok()
        );
        assert!(c.target("Bundle?page=2").is_ok());
        for other in [
            "https://evil.example/fhir/Bundle",
            "http://care.example.dk/fhir/Bundle",
            "https://care.example.dk:8443/fhir/Bundle",
        ] {
            assert!(
                matches!(c.target(other), Err(PullError::Invalid(_))),
                "{other}"
            );
        }
    }

    #[test]
    fn configuration_is_checked() {
        let bad = |f: &dyn Fn(&mut PullConfig)| {
            let mut cfg = PullConfig::new("https://care.example.dk/fhir");
            f(&mut cfg);
            match FhirPullClient::new(cfg) {
                Err(PullError::Config(m)) => m,
                other => panic!("expected a configuration error, got {other:?}"),
            }
        };
        bad(&|c| c.base_url = "ftp://x/fhir".into());
        bad(&|c| c.base_url = "not a url".into());
        bad(&|c| c.page_size = 0);
        bad(&|c| c.timeout_secs = 0);
        bad(&|c| c.backoff_initial_ms = 60_000);
        bad(&|c| c.token_url = Some("https://idp/token".into()));
        let m = bad(&|c| {
            c.token_url = Some("https://idp/token".into());
            c.client_id = Some("gw".into());
        });
        assert!(m.contains("client_secret"));
        bad(&|c| c.client_secret = Some("topsecret".into()));
    }
}
