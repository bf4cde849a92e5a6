//! The simulated care system's FHIR server: OAuth2 client credentials, a `_lastUpdated` search
//! over the delivery-report Bundles with stable paging, and switchable faults.

use super::Municipality;
use super::fhir::{json_to_fhir_xml, to_fhir_json};
use crate::sim::faults::lock;
pub use crate::sim::faults::{Fault, Faults};
use crate::sources::Format;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The OAuth2 client id it accepts.
    pub client_id: String,
    /// The OAuth2 client secret it accepts.
    pub client_secret: String,
    /// Entries per search page when the request has no `_count`.
    pub page_size: usize,
    /// How long an access token lives.
    pub token_ttl: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            client_id: "progression-gateway".into(),
            client_secret: "sim-secret".into(),
            page_size: 50,
            token_ttl: Duration::from_secs(300),
        }
    }
}

struct Inner {
    municipality: Arc<Municipality>,
    cfg: ServerConfig,
    base_url: String,
    /// Access token -> when it expires.
    tokens: Mutex<HashMap<String, Instant>>,
    token_seq: AtomicU64,
    searches_served: AtomicU64,
    /// Bundles reported after this are not (yet) visible; `None`: all are.
    visible_until: Mutex<Option<DateTime<Utc>>>,
    faults: Faults,
}

/// A running simulated FHIR server. Dropping it stops it too; [`SimServer::shutdown`] waits.
pub struct SimServer {
    /// FHIR base, `http://127.0.0.1:PORT/fhir`.
    pub base_url: String,
    /// OAuth2 token endpoint, `http://127.0.0.1:PORT/oauth/token`.
    pub token_url: String,
    /// Faults and counters.
    pub faults: Faults,
    inner: Arc<Inner>,
    served: crate::sim::Served,
}

impl std::fmt::Debug for SimServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimServer")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SimServer {
    /// Only Bundles reported at or before `t` are visible from now on (a later search sees
    /// more as `t` moves on; a paging in progress keeps its snapshot).
    pub fn set_visible_until(&self, t: DateTime<Utc>) {
        *lock(&self.inner.visible_until) = Some(t);
    }

    /// Every Bundle is visible (the default).
    pub fn show_everything(&self) {
        *lock(&self.inner.visible_until) = None;
    }

    /// The current visibility limit.
    pub fn visible_until(&self) -> Option<DateTime<Utc>> {
        *lock(&self.inner.visible_until)
    }

    /// Makes every access token issued so far expire now.
    pub fn expire_tokens(&self) {
        let now = Instant::now();
        for exp in lock(&self.inner.tokens).values_mut() {
            *exp = now;
        }
    }

    /// Search requests received.
    pub fn search_requests(&self) -> u64 {
        self.faults.requests()
    }

    /// Token requests received.
    pub fn token_requests(&self) -> u64 {
        self.faults.token_requests()
    }

    /// Stops the server and waits for it (at most 5 seconds, then it is aborted).
    pub async fn shutdown(self) {
        self.served.shutdown().await;
    }
}

/// Starts the server on `127.0.0.1` on a free port.
///
/// - `POST /oauth/token`: `grant_type=client_credentials` with `client_id` and `client_secret`
///   in the form or as HTTP Basic; answers `{"access_token", "token_type": "Bearer", "expires_in"}`,
///   401 `{"error": "invalid_client"}` for wrong credentials.
/// - `GET /fhir/Bundle?_lastUpdated=ge<instant>&_count=N&_format=json|xml` (also `gt`, `le`,
///   `lt`, several `_lastUpdated`; `Accept: application/fhir+xml`): a `searchset` Bundle of the
///   delivery reports, sorted by (`meta.lastUpdated`, id), with `total` and `self`/`next` links.
/// - `GET /fhir/Bundle/{id}`: one delivery report.
///
/// Both FHIR routes need `Authorization: Bearer <token>` (else 401 with `WWW-Authenticate: Bearer`).
pub async fn serve(
    municipality: Arc<Municipality>,
    cfg: ServerConfig,
) -> std::io::Result<SimServer> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let base_url = format!("http://{addr}/fhir");
    let token_url = format!("http://{addr}/oauth/token");
    let faults = Faults::default();
    let inner = Arc::new(Inner {
        municipality,
        cfg,
        base_url: base_url.clone(),
        tokens: Mutex::new(HashMap::new()),
        token_seq: AtomicU64::new(0),
        searches_served: AtomicU64::new(0),
        visible_until: Mutex::new(None),
        faults: faults.clone(),
    });
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/fhir/Bundle", get(search))
        .route("/fhir/Bundle/{id}", get(read))
        .with_state(inner.clone());
    let served = crate::sim::Served::spawn(listener, app);
    Ok(SimServer {
        base_url,
        token_url,
        faults,
        inner,
        served,
    })
}

// --- OAuth2 ----------------------------------------------------------------------------------

async fn token(State(s): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> Response {
    s.faults.count_token();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let basic = crate::sim::basic_credentials(&headers);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", false);
    }
    let (id, secret) = match (&basic, form.get("client_id"), form.get("client_secret")) {
        (Some((id, secret)), _, _) => (id.clone(), secret.clone()),
        (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", false),
    };
    if id != s.cfg.client_id || secret != s.cfg.client_secret {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", basic.is_some());
    }
    let seq = s.token_seq.fetch_add(1, Ordering::SeqCst);
    let random = std::collections::hash_map::RandomState::new().hash_one(seq);
    let access_token = format!("sim-{seq:x}-{random:016x}");
    lock(&s.tokens).insert(access_token.clone(), Instant::now() + s.cfg.token_ttl);
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": s.cfg.token_ttl.as_secs(),
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str, basic: bool) -> Response {
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": error }).to_string(),
    )
        .into_response();
    if basic {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sim-care\""),
        );
    }
    r
}

/// `None` if the request carries a live token, else the 401 to answer.
fn check_bearer(s: &Inner, headers: &HeaderMap) -> Option<Response> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return Some(unauthorized(None));
    };
    match lock(&s.tokens).get(token) {
        Some(exp) if *exp > Instant::now() => None,
        Some(_) => Some(unauthorized(Some("The access token expired"))),
        None => Some(unauthorized(Some("Unknown access token"))),
    }
}

fn unauthorized(error: Option<&str>) -> Response {
    let challenge = match error {
        None => "Bearer realm=\"sim-care\"".to_string(),
        Some(d) => {
            format!("Bearer realm=\"sim-care\", error=\"invalid_token\", error_description=\"{d}\"")
        }
    };
    let mut r = outcome(
        StatusCode::UNAUTHORIZED,
        "login",
        error.unwrap_or("An access token is required"),
        Format::Json,
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

fn outcome(status: StatusCode, code: &str, text: &str, format: Format) -> Response {
    let v = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    });
    fhir_response(status, &v, format)
}

fn fhir_response(status: StatusCode, v: &Value, format: Format) -> Response {
    let body = match format {
        Format::Json => to_fhir_json(v, false),
        Format::Xml => json_to_fhir_xml(v),
    };
    bytes_response(status, body, format)
}

fn bytes_response(status: StatusCode, body: Vec<u8>, format: Format) -> Response {
    let ct = match format {
        Format::Json => "application/fhir+json; charset=utf-8",
        Format::Xml => "application/fhir+xml; charset=utf-8",
    };
    (status, [(header::CONTENT_TYPE, ct)], body).into_response()
}

// --- search --------------------------------------------------------------------------------

/// A bound on `meta.lastUpdated`, in microseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    micros: i64,
    inclusive: bool,
}

/// A search and its position: everything a `next` link needs, so the pages of one search are
/// cut from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    lower: Option<Bound>,
    upper: Option<Bound>,
    /// The visibility limit when the search started (the snapshot).
    visible: Option<i64>,
    /// The key (`lastUpdated`, id) of the last entry already sent.
    after: Option<(i64, String)>,
    count: usize,
}

impl Cursor {
    /// The opaque page token: hex of `v1|lower|upper|visible|after|count`.
    fn encode(&self) -> String {
        let b = |b: &Option<Bound>| match b {
            Some(b) => format!("{}{}", if b.inclusive { 'i' } else { 'x' }, b.micros),
            None => "-".into(),
        };
        let raw = format!(
            "v1|{}|{}|{}|{}|{}",
            b(&self.lower),
            b(&self.upper),
            self.visible.map_or("-".into(), |v| v.to_string()),
            self.after
                .as_ref()
                .map_or("-".into(), |(t, id)| format!("{t}/{id}")),
            self.count
        );
        raw.bytes().map(|b| format!("{b:02x}")).collect()
    }

    fn decode(token: &str) -> Option<Cursor> {
        if !token.len().is_multiple_of(2) || !token.is_ascii() {
            return None;
        }
        let bytes: Option<Vec<u8>> = (0..token.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
            .collect();
        let raw = String::from_utf8(bytes?).ok()?;
        let parts: Vec<&str> = raw.split('|').collect();
        if parts.len() != 6 || parts[0] != "v1" {
            return None;
        }
        let bound = |s: &str| -> Option<Option<Bound>> {
            if s == "-" {
                return Some(None);
            }
            let inclusive = match s.as_bytes().first()? {
                b'i' => true,
                b'x' => false,
                _ => return None,
            };
            Some(Some(Bound {
                micros: s[1..].parse().ok()?,
                inclusive,
            }))
        };
        let visible = match parts[3] {
            "-" => None,
            v => Some(v.parse().ok()?),
        };
        let after = match parts[4] {
            "-" => None,
            a => {
                let (t, id) = a.split_once('/')?;
                Some((t.parse().ok()?, id.to_string()))
            }
        };
        Some(Cursor {
            lower: bound(parts[1])?,
            upper: bound(parts[2])?,
            visible,
            after,
            count: parts[5].parse().ok()?,
        })
    }
}

/// Parses a FHIR instant, dateTime or date (a date means its start, UTC).
fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim().replace(' ', "+"); // a '+' sent unencoded arrives as a space
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M") {
        return Some(t.and_utc());
    }
    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn format_of(params: &[(String, String)], headers: &HeaderMap) -> Result<(Format, bool), String> {
    if let Some((_, f)) = params.iter().find(|(k, _)| k == "_format") {
        let f = f.trim().to_ascii_lowercase();
        return match f.as_str() {
            "json" => Ok((Format::Json, true)),
            "xml" => Ok((Format::Xml, true)),
            other => Format::from_content_type(other)
                .map(|f| (f, true))
                .ok_or_else(|| format!("unknown _format {other}")),
        };
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let xml = accept
        .split(',')
        .any(|part| matches!(Format::from_content_type(part), Some(Format::Xml)));
    let json = accept
        .split(',')
        .any(|part| matches!(Format::from_content_type(part), Some(Format::Json)));
    Ok((
        if xml && !json {
            Format::Xml
        } else {
            Format::Json
        },
        false,
    ))
}

fn key_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

async fn search(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    s.faults.count_request();
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let (format, explicit_format) = match format_of(&params, &headers) {
        Ok(f) => f,
        Err(e) => return outcome(StatusCode::BAD_REQUEST, "invalid", &e, Format::Json),
    };
    let mut truncate = false;
    match s.faults.next_fault() {
        None => {}
        Some(Fault::ServerError) => {
            return outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "simulated server error",
                format,
            );
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut r = outcome(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "slow down",
                format,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return r;
        }
        Some(Fault::Unavailable { retry_after_secs }) => {
            let mut r = outcome(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "simulated maintenance",
                format,
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return r;
        }
        Some(Fault::ExpiredToken) => return unauthorized(Some("The access token expired")),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::TruncatedPage) => truncate = true,
    }
    if let Some(r) = check_bearer(&s, &headers) {
        return r;
    }
    let cursor = match cursor_of(&s, &params) {
        Ok(c) => c,
        Err(e) => return outcome(StatusCode::BAD_REQUEST, "invalid", &e, format),
    };
    let page = page(
        &s,
        &cursor,
        query.as_deref().unwrap_or(""),
        explicit_format.then_some(format),
    );
    let mut r = match format {
        Format::Json => bytes_response(StatusCode::OK, page, Format::Json),
        Format::Xml => match serde_json::from_slice::<Value>(&page) {
            Ok(v) => fhir_response(StatusCode::OK, &v, Format::Xml),
            Err(e) => outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                &e.to_string(),
                format,
            ),
        },
    };
    if truncate {
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let half = bytes.slice(..bytes.len() / 2);
        r = Response::from_parts(parts, axum::body::Body::from(half));
        r.headers_mut().remove(header::CONTENT_LENGTH);
    }
    r
}

/// The search of a request: from its `_cursor`, or from `_lastUpdated` and `_count`.
fn cursor_of(s: &Inner, params: &[(String, String)]) -> Result<Cursor, String> {
    if let Some((_, token)) = params.iter().find(|(k, _)| k == "_cursor") {
        return Cursor::decode(token).ok_or_else(|| "invalid or damaged _cursor".to_string());
    }
    let mut lower: Option<Bound> = None;
    let mut upper: Option<Bound> = None;
    for (_, v) in params.iter().filter(|(k, _)| k == "_lastUpdated") {
        let (prefix, rest) = if v.len() > 2 && v.as_bytes()[..2].iter().all(u8::is_ascii_alphabetic)
        {
            v.split_at(2)
        } else {
            ("eq", v.as_str())
        };
        let t = parse_instant(rest).ok_or_else(|| format!("cannot read _lastUpdated={v}"))?;
        let micros = key_micros(t);
        match prefix {
            "ge" => {
                lower = Some(Bound {
                    micros,
                    inclusive: true,
                })
            }
            "gt" | "sa" => {
                lower = Some(Bound {
                    micros,
                    inclusive: false,
                })
            }
            "le" => {
                upper = Some(Bound {
                    micros,
                    inclusive: true,
                })
            }
            "lt" | "eb" => {
                upper = Some(Bound {
                    micros,
                    inclusive: false,
                })
            }
            "eq" => {
                lower = Some(Bound {
                    micros,
                    inclusive: true,
                });
                upper = Some(Bound {
                    micros,
                    inclusive: true,
                });
            }
            other => return Err(format!("unsupported _lastUpdated prefix {other}")),
        }
    }
    let count = match params.iter().find(|(k, _)| k == "_count") {
        Some((_, c)) => c
            .trim()
            .parse::<usize>()
            .map_err(|_| format!("cannot read _count={c}"))?,
        None => s.cfg.page_size,
    }
    .min(1000);
    Ok(Cursor {
        lower,
        upper,
        visible: lock(&s.visible_until).map(key_micros),
        after: None,
        count,
    })
}

/// The `searchset` page of `cursor`, as compact JSON (the entries spliced in as they are).
fn page(s: &Inner, cursor: &Cursor, query: &str, format: Option<Format>) -> Vec<u8> {
    let all = &s.municipality.bundles;
    // The bundles are sorted by (last_updated, id): every bound is a cut of the slice.
    let key = |i: usize| (key_micros(all[i].last_updated), all[i].id.as_str());
    let cut = |pred: &dyn Fn(usize) -> bool| -> usize {
        // The first index where `pred` is false (it holds on a prefix).
        let (mut lo, mut hi) = (0usize, all.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if pred(mid) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let lo = match cursor.lower {
        Some(b) => cut(&|i| {
            let t = key(i).0;
            if b.inclusive {
                t < b.micros
            } else {
                t <= b.micros
            }
        }),
        None => 0,
    };
    let mut hi = all.len();
    if let Some(b) = cursor.upper {
        hi = hi.min(cut(&|i| {
            let t = key(i).0;
            if b.inclusive {
                t <= b.micros
            } else {
                t < b.micros
            }
        }));
    }
    if let Some(v) = cursor.visible {
        hi = hi.min(cut(&|i| key(i).0 <= v));
    }
    let hi = hi.max(lo);
    let from = match &cursor.after {
        Some((t, id)) => cut(&|i| key(i) <= (*t, id.as_str())).max(lo),
        None => lo,
    };
    let to = (from + cursor.count).min(hi).max(from);

    let fmt = format.map_or(String::new(), |f| format!("&_format={f}"));
    let mut links = vec![json!({
        "relation": "self",
        "url": format!("{}/Bundle{}{}", s.base_url, if query.is_empty() { "" } else { "?" }, query),
    })];
    if to < hi && to > from {
        let last = &all[to - 1];
        let next = Cursor {
            after: Some((key_micros(last.last_updated), last.id.clone())),
            ..cursor.clone()
        };
        links.push(json!({
            "relation": "next",
            "url": format!("{}/Bundle?_cursor={}{}", s.base_url, next.encode(), fmt),
        }));
    }
    let seq = s.searches_served.fetch_add(1, Ordering::Relaxed);
    let envelope = json!({
        "resourceType": "Bundle",
        "id": format!("search-{:016x}", std::collections::hash_map::RandomState::new().hash_one(seq)),
        "meta": {"lastUpdated": Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)},
        "type": "searchset",
        "total": hi - lo,
        "link": links,
    });
    let mut out = to_fhir_json(&envelope, false);
    out.pop(); // the closing brace: the entries follow
    if to > from {
        out.extend_from_slice(br#","entry":["#);
        for (i, b) in all[from..to].iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"fullUrl":"#);
            serde_json::to_writer(&mut out, &format!("{}/Bundle/{}", s.base_url, b.id))
                .expect("writing to a Vec never fails");
            out.extend_from_slice(br#","resource":"#);
            out.extend_from_slice(&b.json);
            out.extend_from_slice(br#","search":{"mode":"match"}}"#);
        }
        out.push(b']');
    }
    out.push(b'}');
    out
}

async fn read(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let format = format_of(&params, &headers).map_or(Format::Json, |f| f.0);
    if let Some(r) = check_bearer(&s, &headers) {
        return r;
    }
    let visible = *lock(&s.visible_until);
    let found = s
        .municipality
        .bundles
        .iter()
        .find(|b| b.id == id && visible.is_none_or(|v| b.last_updated <= v));
    match found {
        Some(b) => match format {
            Format::Json => bytes_response(StatusCode::OK, b.to_json(), format),
            Format::Xml => bytes_response(StatusCode::OK, b.to_xml(), format),
        },
        None => outcome(StatusCode::NOT_FOUND, "not-found", "no such Bundle", format),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let c = Cursor {
            lower: Some(Bound {
                micros: 1_700_000_000_000_000,
                inclusive: true,
            }),
            upper: None,
            visible: Some(42),
            after: Some((1_700_000_000_000_000, "ab-cd".into())),
            count: 7,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("zz"), None);
    }

    #[test]
    fn instants_dates_and_offsets() {
        let t = parse_instant("2027-01-05T21:00:00 01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2027-01-05T20:00:00+00:00");
        assert!(parse_instant("2027-01-05").is_some());
        assert!(parse_instant("junk").is_none());
    }
}
