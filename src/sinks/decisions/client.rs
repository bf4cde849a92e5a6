//! Writing `ChargeItem`s by FHIR conditional update.

use super::{ChargeItemDoc, DecisionsConfig};
use crate::sources::Format;
use crate::sources::fhir_pull::describe;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use url::Url;

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpsertOutcome {
    /// No `ChargeItem` had the identifier: one was created (HTTP 201).
    Created,
    /// The `ChargeItem` with the identifier was replaced (HTTP 200).
    Updated,
    /// HTTP 200 with the same `ETag` (version) this client saw at its previous write of the
    /// identifier: the server found nothing to change (a no-op update, as HAPI and the
    /// simulator do for identical content). Only known within one client's lifetime; a first
    /// write after a restart reports [`UpsertOutcome::Updated`].
    Unchanged,
}

/// Why a write failed. Messages name the URL (the base URL and the identifier, which is the
/// identifier system and the course id) and never carry a secret, a token or a CPR number.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The token endpoint refused the client credentials, or the FHIR server refused a freshly
    /// issued token. Not retried.
    #[error("authentication failed at {url}: {detail}")]
    Auth {
        /// The token endpoint or the FHIR URL.
        url: String,
        /// What was refused.
        detail: String,
    },
    /// More than one `ChargeItem` has the identifier (HTTP 412 to the conditional update): the
    /// care system holds duplicates that someone must resolve. Not retried.
    #[error("more than one ChargeItem matches {url} (HTTP 412){}", diag(.diagnostics))]
    MultipleMatches {
        /// The conditional-update URL.
        url: String,
        /// `OperationOutcome.issue.diagnostics`, if the server sent one.
        diagnostics: Option<String>,
    },
    /// The server answered with a status that is not retried (a 4xx but 401, 408, 412, 429).
    #[error("HTTP {status} from {url}{}", diag(.diagnostics))]
    Http {
        /// The HTTP status code.
        status: u16,
        /// The conditional-update URL.
        url: String,
        /// `OperationOutcome.issue.diagnostics`, if the server sent one.
        diagnostics: Option<String>,
    },
    /// Every attempt failed with a retryable error (connection, timeout, 408, 429, 5xx).
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// Attempts made (`1 + max_retries`).
        attempts: u32,
        /// The last error.
        last: String,
    },
}

fn diag(d: &Option<String>) -> String {
    d.as_ref().map(|d| format!(": {d}")).unwrap_or_default()
}

/// Writes `ChargeItem`s to one FHIR server. Cheap to clone: clones share the connection pool,
/// the access token and the versions seen.
#[derive(Clone)]
pub struct DecisionsClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    max_retries: u32,
    tokens: Option<Tokens>,
    /// The last `ETag` seen per identifier token.
    etags: Mutex<HashMap<String, String>>,
}

impl fmt::Debug for DecisionsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecisionsClient")
            .field("base", &self.inner.base.as_str())
            .field("authenticated", &self.inner.tokens.is_some())
            .finish()
    }
}

fn parse_http_url(what: &str, value: &str) -> Result<Url, DecisionError> {
    let url = Url::parse(value)
        .map_err(|e| DecisionError::Config(format!("{what} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DecisionError::Config(format!(
            "{what} must be an http or https URL"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DecisionError::Config(format!(
            "{what} must not carry user info"
        )));
    }
    Ok(url)
}

/// One attempt's failure, before the retry decision.
enum Failure {
    Retry(String),
    Unauthorized,
    Fatal(DecisionError),
}

impl DecisionsClient {
    /// Validates the configuration and builds the client (no request is made yet).
    pub fn new(cfg: &DecisionsConfig) -> Result<Self, DecisionError> {
        let mut base = parse_http_url("base_url", &cfg.base_url)?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(DecisionError::Config(
                "base_url must not have a query or a fragment".into(),
            ));
        }
        if base.path().ends_with('/') {
            let trimmed = base.path().trim_end_matches('/').to_owned();
            base.set_path(&trimmed);
        }
        if cfg.timeout_secs == 0 {
            return Err(DecisionError::Config(
                "timeout_secs must be at least 1".into(),
            ));
        }
        if cfg.identifier_system.trim().is_empty() || cfg.identifier_system.contains('|') {
            return Err(DecisionError::Config(
                "identifier_system must be non-empty and contain no `|`".into(),
            ));
        }
        let tokens = match (&cfg.token_url, &cfg.client_id, &cfg.client_secret) {
            (None, None, None) => None,
            (Some(url), Some(id), Some(secret))
                if !id.trim().is_empty() && !secret.expose_secret().is_empty() =>
            {
                Some(Tokens {
                    url: parse_http_url("token_url", url)?,
                    client_id: id.trim().to_owned(),
                    client_secret: secret.clone(),
                    scope: cfg.scope.clone(),
                    current: tokio::sync::Mutex::new(None),
                })
            }
            _ => {
                return Err(DecisionError::Config(
                    "token_url, client_id and client_secret go together (all set and non-empty, \
                     or none)"
                        .into(),
                ));
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(cfg.timeout_secs))
            .connect_timeout(Duration::from_secs(cfg.timeout_secs.min(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("progression-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                DecisionError::Config(format!("cannot build the HTTP client: {}", describe(&e)))
            })?;
        Ok(DecisionsClient {
            inner: Arc::new(Inner {
                http,
                base,
                max_retries: cfg.max_retries,
                tokens,
                etags: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The conditional-update URL of a document: `{base}/ChargeItem?identifier={system}|{id}`,
    /// the token URL-encoded.
    pub fn upsert_url(&self, item: &ChargeItemDoc) -> Url {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .expect("an http URL has path segments")
            .push("ChargeItem");
        url.query_pairs_mut()
            .append_pair("identifier", &item.identifier_token());
        url
    }

    /// Writes `item` by conditional update: creates the `ChargeItem` with its identifier, or
    /// replaces the one that has it. Retries connection errors, timeouts, 408, 429 and 5xx up to
    /// `max_retries` times (100 ms, 200 ms, 400 ms, ... apart; the update is idempotent); a 401
    /// fetches a new token and repeats once.
    pub async fn upsert(&self, item: &ChargeItemDoc) -> Result<UpsertOutcome, DecisionError> {
        let url = self.upsert_url(item);
        let shown = url.to_string();
        let attempts = 1 + self.inner.max_retries;
        let mut reauthorized = false;
        let mut attempt = 0;
        let mut last = String::new();
        while attempt < attempts {
            if attempt > 0 {
                tracing::warn!(url = %shown, attempt, error = %last, "Retrying a ChargeItem write.");
                tokio::time::sleep(Duration::from_millis(100 << (attempt - 1).min(6))).await;
            }
            match self.attempt(&url, &shown, item).await {
                Ok((status, etag)) => return Ok(self.outcome(item, status, etag)),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Unauthorized) if !reauthorized && self.inner.tokens.is_some() => {
                    reauthorized = true;
                    if let Some(tokens) = &self.inner.tokens {
                        *tokens.current.lock().await = None;
                    }
                    continue;
                }
                Err(Failure::Unauthorized) => {
                    return Err(DecisionError::Auth {
                        url: shown,
                        detail: "the FHIR server answered HTTP 401".into(),
                    });
                }
                Err(Failure::Retry(e)) => last = e,
            }
            attempt += 1;
        }
        Err(DecisionError::RetriesExhausted { attempts, last })
    }

    fn outcome(
        &self,
        item: &ChargeItemDoc,
        status: StatusCode,
        etag: Option<String>,
    ) -> UpsertOutcome {
        let mut etags = self.inner.etags.lock().expect("etag map poisoned");
        let key = item.identifier_token();
        let previous = match etag {
            Some(etag) => etags
                .insert(key.clone(), etag.clone())
                .filter(|p| *p == etag),
            None => {
                etags.remove(&key);
                None
            }
        };
        match (status, previous) {
            (StatusCode::CREATED, _) => UpsertOutcome::Created,
            (_, Some(_)) => UpsertOutcome::Unchanged,
            _ => UpsertOutcome::Updated,
        }
    }

    async fn attempt(
        &self,
        url: &Url,
        shown: &str,
        item: &ChargeItemDoc,
    ) -> Result<(StatusCode, Option<String>), Failure> {
        let mut request = self
            .inner
            .http
            .put(url.clone())
            .header(reqwest::header::CONTENT_TYPE, item.format.media_type())
            .header(reqwest::header::ACCEPT, item.format.media_type())
            .body(item.body.clone());
        if let Some(tokens) = &self.inner.tokens {
            let token = tokens.bearer(&self.inner.http).await?;
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request.send().await.map_err(|e| {
            if e.is_builder() {
                Failure::Fatal(DecisionError::Config(format!(
                    "cannot build the request to {shown}: {}",
                    describe(&e)
                )))
            } else {
                Failure::Retry(format!("{shown}: {}", describe(&e)))
            }
        })?;
        let status = response.status();
        if status == StatusCode::OK || status == StatusCode::CREATED {
            let etag = response
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Ok((status, etag));
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(Failure::Unauthorized);
        }
        let retry = status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error();
        let format = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(Format::from_content_type);
        let body = response.bytes().await.unwrap_or_default();
        let diagnostics = diagnostics(&body, format);
        if retry {
            return Err(Failure::Retry(format!(
                "HTTP {status} from {shown}{}",
                diag(&diagnostics)
            )));
        }
        let url = shown.to_owned();
        Err(Failure::Fatal(
            if status == StatusCode::PRECONDITION_FAILED {
                DecisionError::MultipleMatches { url, diagnostics }
            } else {
                DecisionError::Http {
                    status: status.as_u16(),
                    url,
                    diagnostics,
                }
            },
        ))
    }
}

/// The `issue.diagnostics` of an `OperationOutcome` (JSON or XML), joined by `; `, at most 500
/// characters, control characters removed.
fn diagnostics(body: &[u8], format: Option<Format>) -> Option<String> {
    let mut found = Vec::new();
    match format.or_else(|| Format::sniff(body))? {
        Format::Json => {
            let v: serde_json::Value = serde_json::from_slice(body).ok()?;
            for issue in v.get("issue")?.as_array()? {
                if let Some(d) = issue.get("diagnostics").and_then(|d| d.as_str()) {
                    found.push(d.to_owned());
                }
            }
        }
        Format::Xml => {
            let mut reader = quick_xml::Reader::from_reader(body);
            let mut buf = Vec::new();
            loop {
                match reader.read_event_into(&mut buf) {
                    Ok(quick_xml::events::Event::Empty(e) | quick_xml::events::Event::Start(e))
                        if e.local_name().as_ref() == "diagnostics" =>
                    {
                        if let Some(Ok(a)) = e
                            .attributes()
                            .find(|a| a.as_ref().is_ok_and(|a| a.key.as_ref() == "value"))
                            && let Ok(v) = a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        {
                            found.push(v.into_owned());
                        }
                    }
                    Ok(quick_xml::events::Event::Eof) | Err(_) => break,
                    _ => {}
                }
                buf.clear();
            }
        }
    }
    let mut text: String = found
        .join("; ")
        .chars()
        .filter(|c| !c.is_control())
        .take(500)
        .collect();
    text.truncate(text.trim_end().len());
    (!text.is_empty()).then_some(text)
}

/// OAuth2 client credentials with a cached token.
struct Tokens {
    url: Url,
    client_id: String,
    client_secret: SecretString,
    scope: Option<String>,
    current: tokio::sync::Mutex<Option<(SecretString, Instant)>>,
}

impl Tokens {
    async fn bearer(&self, http: &reqwest::Client) -> Result<SecretString, Failure> {
        let mut current = self.current.lock().await;
        if let Some((token, refresh_at)) = &*current
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let shown = self.url.to_string();
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id),
            ("client_secret", self.client_secret.expose_secret()),
        ];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let response = http
            .post(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| Failure::Retry(format!("token endpoint {shown}: {}", describe(&e))))?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Failure::Retry(format!(
                "token endpoint {shown} answered HTTP {status}"
            )));
        }
        let auth = |detail: String| {
            Failure::Fatal(DecisionError::Auth {
                url: shown.clone(),
                detail,
            })
        };
        if !status.is_success() {
            return Err(auth(format!(
                "the token endpoint refused the client credentials of client `{}` (HTTP {status})",
                self.client_id
            )));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::Retry(format!("token endpoint {shown}: {}", describe(&e))))?;
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            Failure::Retry(format!("token endpoint {shown}: the answer is not JSON"))
        })?;
        let token = value
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| auth("the token endpoint answered without an access_token".into()))?;
        let lifetime = value
            .get("expires_in")
            .and_then(|v| v.as_u64())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(300));
        let margin = (lifetime / 10).min(Duration::from_secs(30));
        let token = SecretString::from(token.to_owned());
        *current = Some((token.clone(), Instant::now() + lifetime - margin));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_outcome_diagnostics_json_and_xml() {
        let json = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"bad period"}]}"#;
        assert_eq!(
            diagnostics(json, Some(Format::Json)).as_deref(),
            Some("bad period")
        );
        let xml = br#"<OperationOutcome xmlns="http://hl7.org/fhir"><issue><severity value="error"/><diagnostics value="bad &amp; worse"/></issue></OperationOutcome>"#;
        assert_eq!(diagnostics(xml, None).as_deref(), Some("bad & worse"));
        assert_eq!(diagnostics(b"oops", None), None);
    }
}
