//! The push endpoint: care systems `POST` Bundles to `/fhir/Bundle`.
//!
//! [`router`] serves `POST /fhir/Bundle` and hands each body to a [`BundleSink`], answering
//! only after the sink returned (the sink stores durably before it returns `Ok`).
//!
//! # Answers
//!
//! Every answer carries a FHIR `OperationOutcome`, in the format the sender asked for
//! (`_format` query parameter, else `Accept`, else the body's format, else JSON).
//!
//! | situation | status | issue code |
//! |---|---|---|
//! | stored (or already stored before) | **200 OK**, severity `information` summarising bundles, stored and unchanged record versions | `informational` |
//! | no or wrong `Authorization: Bearer` token | 401, `WWW-Authenticate: Bearer` | `login` |
//! | `Content-Type` not FHIR JSON or XML, or none and the body is neither | 415 | `not-supported` |
//! | body larger than `max_body_bytes` | 413 | `too-long` |
//! | body cut off while receiving | 400 | `incomplete` |
//! | empty body | 422 | `invalid` |
//! | the sink finds the document invalid | 422, one issue per problem | `invalid` |
//! | the sink cannot store now, or `max_in_flight` pushes were busy for 30 s | 503, `Retry-After: 30` | `transient` |
//!
//! 200 rather than 201: nothing is created at a location the sender could read back; the
//! Bundle's contents are taken in, and sending it again is harmless (counted as unchanged).
//!
//! The token is checked before the body is read, in constant time (SHA-256 digests of both
//! tokens compared byte by byte, so neither content nor length leaks through timing). An empty
//! configured token refuses everyone. The body is read up to `max_body_bytes`
//! (a `Content-Length` above it is refused before reading). At most `max_in_flight` pushes
//! are read and stored at once (a push waits for its turn before its body is read, so memory
//! is bounded by `max_in_flight` documents, and SQLite writers queue instead of failing with
//! "database is locked"); one that waits longer than 30 s gets a 503. The sink runs in its own task, so a
//! sender that disconnects does not cancel a store half-way; it will send again and find the
//! versions unchanged.

mod outcome;

pub use outcome::{FHIR_NS, Issue, IssueType, OperationOutcome, Severity};

use crate::sources::{Accepted, BundleSink, Format, Refusal};
use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The path served.
pub const PATH: &str = "/fhir/Bundle";
/// Default of [`PushConfig::max_body_bytes`]: 20 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 20 * 1024 * 1024;
/// The `Retry-After` (seconds) of a 503 answer.
pub const RETRY_AFTER_SECS: u32 = 30;
/// Default of [`PushConfig::max_in_flight`].
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;
/// How long a push waits for one of the `max_in_flight` turns before a 503.
pub const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The push endpoint's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// The token care systems must send as `Authorization: Bearer <token>`. Required; never
    /// printed (`Debug` shows `[REDACTED]`). An empty token refuses every request.
    #[serde(deserialize_with = "crate::sources::fhir_pull::secret::required")]
    pub bearer_token: SecretString,
    /// Largest accepted body in bytes. Default 20 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Pushes read and stored at once; more wait (up to 30 s, then 503). Default 4.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
}

impl PushConfig {
    /// Settings with the default body limit.
    pub fn new(bearer_token: SecretString) -> Self {
        PushConfig {
            bearer_token,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}

fn default_max_in_flight() -> usize {
    DEFAULT_MAX_IN_FLIGHT
}

struct Shared<S> {
    sink: S,
    /// SHA-256 of the expected token; `None` when it is empty (nobody is let in).
    token_digest: Option<[u8; 32]>,
    max_body_bytes: usize,
    /// One permit per push being read and stored.
    turns: Arc<tokio::sync::Semaphore>,
}

/// The push endpoint: `POST /fhir/Bundle` into `sink`. Merge it into the gateway's router or
/// serve it alone.
pub fn router<S: BundleSink>(sink: S, cfg: PushConfig) -> Router {
    let token = cfg.bearer_token.expose_secret().as_bytes();
    let token_digest = (!token.is_empty()).then(|| Sha256::digest(token).into());
    let shared = Arc::new(Shared {
        sink,
        token_digest,
        max_body_bytes: cfg.max_body_bytes,
        turns: Arc::new(tokio::sync::Semaphore::new(cfg.max_in_flight.max(1))),
    });
    Router::new()
        .route(PATH, post(receive::<S>))
        .with_state(shared)
}

/// An `OperationOutcome` answer.
fn answer(status: StatusCode, format: Format, outcome: &OperationOutcome) -> Response {
    let mut response = (status, outcome.render(format)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(match format {
            Format::Json => "application/fhir+json; charset=utf-8",
            Format::Xml => "application/fhir+xml; charset=utf-8",
        }),
    );
    response
}

fn error(
    status: StatusCode,
    format: Format,
    code: IssueType,
    message: impl Into<String>,
) -> Response {
    answer(
        status,
        format,
        &OperationOutcome::single(Severity::Error, code, message),
    )
}

/// The format the sender wants the answer in: `_format`, else the first FHIR type in `Accept`.
fn wanted_format(uri: &axum::http::Uri, headers: &HeaderMap) -> Option<Format> {
    let by_name = |v: &str| match v.trim().to_ascii_lowercase().as_str() {
        "json" => Some(Format::Json),
        "xml" => Some(Format::Xml),
        other => Format::from_content_type(other),
    };
    if let Some(query) = uri.query() {
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if key == "_format"
                && let Some(format) = by_name(&value)
            {
                return Some(format);
            }
        }
    }
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(Format::from_content_type)
}

/// Whether the request carries the expected bearer token (compared in constant time).
fn authorized(headers: &HeaderMap, expected: Option<&[u8; 32]>) -> bool {
    crate::bearer::check(headers, expected) == crate::bearer::Verdict::Allowed
}

/// Why a body could not be read.
enum ReadError {
    TooLarge,
    Broken(String),
}

/// Reads `body` up to `limit` bytes.
async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, ReadError> {
    let mut out = bytes::BytesMut::new();
    loop {
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(out.freeze()),
            Some(Err(e)) => return Err(ReadError::Broken(e.to_string())),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if out.len().saturating_add(data.len()) > limit {
                        return Err(ReadError::TooLarge);
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

async fn receive<S: BundleSink>(
    State(shared): State<Arc<Shared<S>>>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let wanted = wanted_format(&parts.uri, headers);
    // None: no Content-Type; Some(None): one that is not FHIR JSON or XML.
    let declared = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().ok().and_then(Format::from_content_type));
    let early = wanted.or(declared.flatten()).unwrap_or(Format::Json);

    if !authorized(headers, shared.token_digest.as_ref()) {
        let wrong = headers.contains_key(header::AUTHORIZATION);
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            early,
            IssueType::Login,
            if wrong {
                "The bearer token is not valid for this endpoint."
            } else {
                "An `Authorization: Bearer` token is required."
            },
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(if wrong {
                "Bearer realm=\"progression-gateway\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"progression-gateway\""
            }),
        );
        tracing::warn!(token_given = wrong, "FHIR push refused: not authorized.");
        return response;
    }

    if let Some(None) = declared {
        let shown = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("(not text)")
            .chars()
            .take(100)
            .collect::<String>();
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            early,
            IssueType::NotSupported,
            format!(
                "Content-Type `{shown}` is not supported; send application/fhir+json or application/fhir+xml."
            ),
        );
    }

    let limit = shared.max_body_bytes;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let busy = |format| {
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            format,
            IssueType::Transient,
            format!(
                "The gateway is busy with other documents; send it again in {RETRY_AFTER_SECS} seconds."
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        response
    };
    // Its turn before its body is read: memory holds at most `max_in_flight` bodies.
    // (A body announced too large is refused at once, without a turn.)
    let turn = if announced.is_some_and(|n| n > limit as u64) {
        None
    } else {
        match tokio::time::timeout(TURN_WAIT, shared.turns.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                tracing::warn!("FHIR push refused: every turn busy for {TURN_WAIT:?}.");
                return busy(early);
            }
        }
    };
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            early,
            IssueType::TooLong,
            format!("The body is larger than the limit of {limit} bytes."),
        )
    };
    if announced.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let body = match read_limited(body, limit).await {
        Ok(body) => body,
        Err(ReadError::TooLarge) => return too_large(),
        Err(ReadError::Broken(e)) => {
            return error(
                StatusCode::BAD_REQUEST,
                early,
                IssueType::Incomplete,
                format!("The body could not be received completely: {e}"),
            );
        }
    };

    let Some(format) = declared.flatten().or_else(|| Format::sniff(&body)) else {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            early,
            IssueType::NotSupported,
            "No Content-Type and the body is neither FHIR JSON nor FHIR XML; send application/fhir+json or application/fhir+xml.",
        );
    };
    let reply = wanted.unwrap_or(format);
    if body.iter().all(u8::is_ascii_whitespace) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            reply,
            IssueType::Invalid,
            "The body is empty.",
        );
    }

    let size = body.len();
    let sink = shared.sink.clone();
    // Its own task: the store completes even if the sender hangs up meanwhile.
    // The turn goes with the task: it is given back when the store is done, not when the
    // sender hangs up.
    let result = tokio::spawn(async move {
        let _turn = turn;
        sink.accept(body, format).await
    })
    .await;
    match result {
        Ok(Ok(accepted)) => accepted_answer(reply, format, size, &accepted),
        Ok(Err(Refusal::Invalid { issues })) => {
            tracing::warn!(%format, bytes = size, issues = issues.len(), "FHIR push refused: invalid document.");
            let mut outcome = OperationOutcome::default();
            for issue in issues {
                outcome = outcome.with(Severity::Error, IssueType::Invalid, issue);
            }
            if outcome.issues.is_empty() {
                outcome = outcome.with(
                    Severity::Error,
                    IssueType::Invalid,
                    "The document is invalid.",
                );
            }
            answer(StatusCode::UNPROCESSABLE_ENTITY, reply, &outcome)
        }
        Ok(Err(Refusal::Unavailable { reason })) => {
            // The reason may name internals (database errors): logged, not sent.
            tracing::warn!(%format, bytes = size, %reason, "FHIR push not stored: store unavailable.");
            let mut response = error(
                StatusCode::SERVICE_UNAVAILABLE,
                reply,
                IssueType::Transient,
                format!(
                    "The gateway cannot store the document now; send it again in {RETRY_AFTER_SECS} seconds."
                ),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
            response
        }
        Err(join) => {
            tracing::error!(error = %join, "FHIR push: the sink failed unexpectedly.");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                reply,
                IssueType::Exception,
                "The gateway failed while storing the document; nothing is confirmed stored.",
            )
        }
    }
}

fn accepted_answer(reply: Format, format: Format, size: usize, accepted: &Accepted) -> Response {
    tracing::info!(
        %format,
        bytes = size,
        bundles = accepted.bundles,
        stored = accepted.stored,
        unchanged = accepted.unchanged,
        "FHIR push stored."
    );
    answer(
        StatusCode::OK,
        reply,
        &OperationOutcome::single(
            Severity::Information,
            IssueType::Informational,
            format!(
                "Accepted {} bundle(s): {} record version(s) stored, {} unchanged.",
                accepted.bundles, accepted.stored, accepted.unchanged
            ),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens() {
        let digest: [u8; 32] = Sha256::digest(b"tok-123").into();
        let ok = |pairs: &[(&'static str, &str)]| authorized(&headers(pairs), Some(&digest));
        assert!(ok(&[("authorization", "Bearer tok-123")]));
        assert!(ok(&[("authorization", "bearer  tok-123 ")]));
        assert!(!ok(&[("authorization", "Bearer tok-1234")]));
        assert!(!ok(&[("authorization", "Bearer tok-12")]));
        assert!(!ok(&[("authorization", "Basic tok-123")]));
        assert!(!ok(&[("authorization", "Bearer ")]));
        assert!(!ok(&[]));
        assert!(!authorized(&headers(&[("authorization", "Bearer ")]), None));
    }

    #[test]
    fn answer_format() {
        let uri: axum::http::Uri = "/fhir/Bundle?_format=xml".parse().unwrap();
        assert_eq!(wanted_format(&uri, &HeaderMap::new()), Some(Format::Xml));
        let uri: axum::http::Uri = "/fhir/Bundle".parse().unwrap();
        assert_eq!(
            wanted_format(
                &uri,
                &headers(&[("accept", "text/html, application/fhir+xml;q=0.9")])
            ),
            Some(Format::Xml)
        );
        assert_eq!(wanted_format(&uri, &headers(&[("accept", "*/*")])), None);
    }

    #[tokio::test]
    async fn reads_up_to_the_limit() {
        // (Chunked bodies without a length are covered by tests/fhir_transport.rs.)
        let got = read_limited(Body::from("123456789"), 9).await.ok().unwrap();
        assert_eq!(&got[..], b"123456789");
        assert!(matches!(
            read_limited(Body::from("123456789"), 8).await,
            Err(ReadError::TooLarge)
        ));
    }
}
