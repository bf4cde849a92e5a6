//! Delivery by HTTP POST: the finance system answers at once.

use super::{Delivery, HttpConfig, TransportError};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

/// POSTs documents (voucher JSON, figure CSV) to one URL.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    url: reqwest::Url,
    bearer_token: Option<SecretString>,
}

impl HttpTransport {
    /// Checks the URL and builds the client.
    pub fn new(config: &HttpConfig) -> Result<Self, TransportError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|e| TransportError::Config(format!("url `{}`: {e}", config.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(TransportError::Config(format!(
                "url `{}` must be http or https",
                config.url
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_secs.max(1)))
            .build()
            .map_err(|e| TransportError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            url,
            bearer_token: config.bearer_token.clone(),
        })
    }

    /// One POST, no retry: 200/201/409 give the body; anything else is an error
    /// (5xx and connection errors retryable).
    pub async fn deliver(
        &self,
        content: &[u8],
        idempotency_key: &str,
        content_type: &str,
    ) -> Result<Delivery, TransportError> {
        if idempotency_key.is_empty() {
            return Err(TransportError::Config("empty idempotency key".into()));
        }
        let mut request = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header("Idempotency-Key", idempotency_key)
            .body(content.to_vec());
        if let Some(token) = &self.bearer_token {
            request = request.bearer_auth(token.expose_secret());
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                TransportError::Http(format!("timed out: {e}"))
            } else {
                TransportError::Http(e.to_string())
            }
        })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| TransportError::Http(format!("reading the answer: {e}")))?;
        match status {
            200 | 201 | 409 => Ok(Delivery::Answered(body.to_vec())),
            _ => {
                let text = String::from_utf8_lossy(&body);
                let text: String = text.chars().take(500).collect();
                Err(TransportError::Status { status, body: text })
            }
        }
    }
}
