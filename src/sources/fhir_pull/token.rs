//! OAuth2 client credentials: fetch, cache and renew the access token, with the refresh token
//! where the endpoint issues one (Keycloak, as KMD Nexus runs it), else with the credentials.

use super::retry::{loggable, parse_retry_after};
use super::{Failure, PullError, describe};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use std::time::{Duration, Instant};
use url::Url;

/// Lifetime assumed when the token endpoint gives no `expires_in`.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// Longest refresh margin: a token is replaced this long (or 10% of its lifetime, whichever is
/// shorter) before it expires.
const MAX_MARGIN: Duration = Duration::from_secs(30);

/// A token endpoint and the cached token.
pub(crate) struct TokenSource {
    url: Url,
    shown_url: String,
    client_id: String,
    client_secret: SecretString,
    scope: Option<String>,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    current: Option<Cached>,
    /// Counts tokens fetched; identifies the token a request used.
    generation: u64,
    /// A refresh token the endpoint issued (Keycloak does), and until when it may be used.
    refresh: Option<(SecretString, Instant)>,
}

/// What the token endpoint answered.
struct Issued {
    token: SecretString,
    lifetime: Duration,
    refresh: Option<(SecretString, Duration)>,
}

struct Cached {
    token: SecretString,
    refresh_at: Instant,
    generation: u64,
}

impl TokenSource {
    pub(crate) fn new(
        url: Url,
        client_id: String,
        client_secret: SecretString,
        scope: Option<String>,
    ) -> Self {
        TokenSource {
            shown_url: loggable(&url),
            url,
            client_id,
            client_secret,
            scope,
            state: tokio::sync::Mutex::new(State::default()),
        }
    }

    /// A valid access token and its generation: the cached one, or a new one. The lock is held
    /// while fetching, so concurrent requests share one fetch.
    pub(crate) async fn bearer(
        &self,
        http: &reqwest::Client,
    ) -> Result<(SecretString, u64), Failure> {
        let mut state = self.state.lock().await;
        if let Some(cached) = &state.current
            && Instant::now() < cached.refresh_at
        {
            return Ok((cached.token.clone(), cached.generation));
        }
        state.current = None;
        let refresh = state
            .refresh
            .take()
            .filter(|(_, until)| Instant::now() < *until);
        let issued = match refresh {
            Some((refresh, _)) => match self.fetch(http, Some(&refresh)).await {
                Ok(issued) => issued,
                // A refused refresh token (expired, revoked, server restarted): ask afresh
                // with the client credentials.
                Err(Failure::Fatal(_)) => {
                    tracing::debug!(token_url = %self.shown_url, "Refresh token refused; using the client credentials.");
                    self.fetch(http, None).await?
                }
                Err(other) => return Err(other),
            },
            None => self.fetch(http, None).await?,
        };
        let Issued {
            token,
            lifetime,
            refresh,
        } = issued;
        state.refresh = refresh.map(|(t, life)| {
            let margin = (life / 10).min(MAX_MARGIN);
            (t, Instant::now() + life.saturating_sub(margin))
        });
        let margin = (lifetime / 10).min(MAX_MARGIN);
        state.generation += 1;
        let cached = Cached {
            token: token.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(margin),
            generation: state.generation,
        };
        let generation = cached.generation;
        state.current = Some(cached);
        tracing::debug!(token_url = %self.shown_url, lifetime_s = lifetime.as_secs(), "Fetched an access token.");
        Ok((token, generation))
    }

    /// Forgets the token of `generation` (the server refused it), unless it was replaced already.
    pub(crate) async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state
            .current
            .as_ref()
            .is_some_and(|c| c.generation == generation)
        {
            state.current = None;
        }
    }

    fn auth_error(&self, detail: impl Into<String>) -> Failure {
        Failure::Fatal(PullError::Auth {
            url: self.shown_url.clone(),
            detail: detail.into(),
        })
    }

    /// Asks the token endpoint for a token: with the client credentials, or with a refresh
    /// token (`grant_type=refresh_token`, the client authenticating as well).
    async fn fetch(
        &self,
        http: &reqwest::Client,
        refresh: Option<&SecretString>,
    ) -> Result<Issued, Failure> {
        let mut form: Vec<(&str, &str)> = match refresh {
            Some(r) => vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", r.expose_secret()),
            ],
            None => vec![("grant_type", "client_credentials")],
        };
        form.push(("client_id", &self.client_id));
        form.push(("client_secret", self.client_secret.expose_secret()));
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        let response = http
            .post(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                if e.is_builder() {
                    self.auth_error(format!("cannot build the token request: {}", describe(&e)))
                } else {
                    Failure::Retry {
                        error: format!("token endpoint {}: {}", self.shown_url, describe(&e)),
                        after: None,
                    }
                }
            })?;
        let status = response.status();
        if status.is_success() {
            let body = response.bytes().await.map_err(|e| Failure::Retry {
                error: format!("token endpoint {}: {}", self.shown_url, describe(&e)),
                after: None,
            })?;
            return self.parse(&body);
        }
        if status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT
            || status.is_server_error()
        {
            let after = if status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE
            {
                retry_after(&response)
            } else {
                None
            };
            return Err(Failure::Retry {
                error: format!("token endpoint {} answered HTTP {status}", self.shown_url),
                after,
            });
        }
        // 400 (invalid_client, invalid_grant, ...), 401, 403 and the rest: credentials or
        // configuration are wrong; retrying will not help. Only the OAuth2 error code is shown,
        // never the body as a whole (it might echo the request).
        let code = response
            .bytes()
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("error")?.as_str().map(str::to_owned))
            .filter(|c| c.len() <= 40 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        let detail = match code {
            Some(code) => format!(
                "the token endpoint refused the client credentials of client `{}` (HTTP {status}, error {code})",
                self.client_id
            ),
            None => format!(
                "the token endpoint refused the client credentials of client `{}` (HTTP {status})",
                self.client_id
            ),
        };
        Err(self.auth_error(detail))
    }

    fn parse(&self, body: &[u8]) -> Result<Issued, Failure> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| Failure::Retry {
                error: format!("token endpoint {}: the answer is not JSON", self.shown_url),
                after: None,
            })?;
        let token = value
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                self.auth_error("the token endpoint answered without an access_token")
            })?;
        if let Some(kind) = value.get("token_type").and_then(|t| t.as_str())
            && !kind.eq_ignore_ascii_case("bearer")
        {
            return Err(self.auth_error(format!(
                "the token endpoint issued a `{kind}` token; only Bearer tokens are supported"
            )));
        }
        let seconds = |key: &str| match value.get(key) {
            Some(serde_json::Value::Number(n)) => n.as_u64().map(Duration::from_secs),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok().map(Duration::from_secs),
            _ => None,
        };
        let lifetime = seconds("expires_in").unwrap_or(DEFAULT_LIFETIME);
        // A refresh token is used only while its own lifetime lasts (without one given, as
        // long as the access token's).
        let refresh = value
            .get("refresh_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(|t| {
                (
                    SecretString::from(t.to_owned()),
                    seconds("refresh_expires_in").unwrap_or(lifetime),
                )
            });
        Ok(Issued {
            token: SecretString::from(token.to_owned()),
            lifetime,
            refresh,
        })
    }
}

/// The `Retry-After` of a response, if readable.
pub(crate) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    parse_retry_after(value, chrono::Utc::now())
}
