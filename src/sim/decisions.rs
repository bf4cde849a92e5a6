//! A simulated FHIR endpoint for `ChargeItem`s: what the care system does with the gateway's
//! tariff decisions, over real HTTP on loopback.
//!
//! - `PUT /fhir/ChargeItem?identifier={system}|{value}`: conditional update. No match: the
//!   resource is created with a new server id (`201`); one match: it is replaced, keeping the
//!   id (`200`; the version is bumped only when the body differs, so an identical write is a
//!   no-op with the same `ETag`, as HAPI does); more than one match: `412`. JSON and XML bodies
//!   (by `Content-Type`); the identifier in the body must be the one searched for.
//! - `GET /fhir/ChargeItem[?identifier=...]`: a `searchset` Bundle (JSON) of the stored items.
//! - `POST /token`: OAuth2 client credentials (`client_id`/`client_secret` given to
//!   [`serve_with`]), issuing the configured bearer token.
//!
//! The stored body is kept as received (so tests can check it byte by byte, with the decimal
//! text of the price as sent), next to the elements read from it.

use crate::sources::Format;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

/// Bearer-token protection of the simulated endpoint.
#[derive(Debug, Clone)]
pub struct SimAuth {
    /// Accepted at `POST /token`.
    pub client_id: String,
    /// Accepted at `POST /token`.
    pub client_secret: String,
    /// Issued by `POST /token` and required on every `ChargeItem` request.
    pub token: String,
}

/// A stored `ChargeItem`, with the elements read from its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimChargeItem {
    /// The server id.
    pub id: String,
    /// `identifier.system`.
    pub identifier_system: String,
    /// `identifier.value`.
    pub identifier_value: String,
    /// `status`.
    pub status: String,
    /// `subject.reference`.
    pub subject: String,
    /// `occurrencePeriod.start`.
    pub period_start: String,
    /// `occurrencePeriod.end`.
    pub period_end: String,
    /// `priceOverride.value`, the decimal text as written in the body.
    pub price_text: String,
    /// `priceOverride.currency`.
    pub currency: String,
    /// `code.coding.code`, in order.
    pub codes: Vec<String>,
    /// `note.text`, in order.
    pub notes: Vec<String>,
    /// The format of `body`.
    pub format: Format,
    /// The body as last written.
    pub body: String,
    /// Versions: 1 on create, bumped by each write that changed the body.
    pub version: u32,
}

#[derive(Default)]
struct Inner {
    items: Vec<SimChargeItem>,
    writes: usize,
    next_id: u64,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    auth: Option<Arc<SimAuth>>,
}

/// A running simulated endpoint. The server stops when the runtime does.
#[derive(Clone)]
pub struct SimChargeItems {
    /// The FHIR base URL, `http://127.0.0.1:{port}/fhir`.
    pub base_url: String,
    /// The token endpoint, `http://127.0.0.1:{port}/token`.
    pub token_url: String,
    shared: Shared,
}

impl SimChargeItems {
    /// The stored items, in creation order.
    pub fn items(&self) -> Vec<SimChargeItem> {
        self.shared.inner.lock().expect("poisoned").items.clone()
    }

    /// `PUT` requests that reached the store (created, replaced or no-op; not refused ones).
    pub fn writes(&self) -> usize {
        self.shared.inner.lock().expect("poisoned").writes
    }

    /// Stores a copy of the item with `identifier_value` under a new id (a duplicate, as a care
    /// system may hold), so that the next conditional update of it answers `412`.
    pub fn duplicate(&self, identifier_value: &str) -> bool {
        let mut inner = self.shared.inner.lock().expect("poisoned");
        let Some(mut copy) = inner
            .items
            .iter()
            .find(|i| i.identifier_value == identifier_value)
            .cloned()
        else {
            return false;
        };
        inner.next_id += 1;
        copy.id = format!("ci-{}", inner.next_id);
        inner.items.push(copy);
        true
    }
}

/// Serves the endpoint without authentication on `127.0.0.1:0`.
pub async fn serve() -> io::Result<SimChargeItems> {
    serve_with(None).await
}

/// Serves the endpoint on `127.0.0.1:0`, requiring `auth.token` as bearer token if given.
pub async fn serve_with(auth: Option<SimAuth>) -> io::Result<SimChargeItems> {
    let shared = Shared {
        inner: Arc::new(Mutex::new(Inner::default())),
        auth: auth.map(Arc::new),
    };
    let app = Router::new()
        .route("/fhir/ChargeItem", put(put_item).get(search))
        .route("/token", post(token))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(SimChargeItems {
        base_url: format!("http://{addr}/fhir"),
        token_url: format!("http://{addr}/token"),
        shared,
    })
}

fn outcome(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    });
    (
        status,
        [(header::CONTENT_TYPE, Format::Json.media_type())],
        body.to_string(),
    )
        .into_response()
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(auth) = &shared.auth else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t == auth.token)
}

async fn token(
    State(shared): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(auth) = &shared.auth else {
        return (StatusCode::NOT_FOUND, "no token endpoint").into_response();
    };
    let ok = form.get("grant_type").map(String::as_str) == Some("client_credentials")
        && form.get("client_id") == Some(&auth.client_id)
        && form.get("client_secret") == Some(&auth.client_secret);
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"invalid_client"}"#,
        )
            .into_response();
    }
    axum::Json(json!({"access_token": auth.token, "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

async fn put_item(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorized(&shared, &headers) {
        return outcome(
            StatusCode::UNAUTHORIZED,
            "login",
            "a valid bearer token is required",
        );
    }
    let Some((system, value)) = query.get("identifier").and_then(|i| i.split_once('|')) else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "conditional update needs ?identifier=system|value",
        );
    };
    let Some(format) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_content_type)
    else {
        return outcome(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not-supported",
            "Content-Type must be FHIR JSON or XML",
        );
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "structure",
            "the body is not UTF-8",
        );
    };
    let parsed = match format {
        Format::Json => parse_json(&text),
        Format::Xml => parse_xml(&text),
    };
    let mut item = match parsed {
        Ok(item) => item,
        Err(e) => return outcome(StatusCode::BAD_REQUEST, "structure", &e),
    };
    if item.identifier_system != system || item.identifier_value != value {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the identifier of the body is not the one searched for",
        );
    }
    item.format = format;
    item.body = text;
    let mut inner = shared.inner.lock().expect("poisoned");
    let matches: Vec<usize> = inner
        .items
        .iter()
        .enumerate()
        .filter(|(_, i)| i.identifier_system == system && i.identifier_value == value)
        .map(|(n, _)| n)
        .collect();
    let (status, stored) = match matches.as_slice() {
        [] => {
            inner.next_id += 1;
            item.id = format!("ci-{}", inner.next_id);
            item.version = 1;
            inner.items.push(item.clone());
            (StatusCode::CREATED, item)
        }
        [n] => {
            let old = &mut inner.items[*n];
            item.id = old.id.clone();
            item.version = if old.body == item.body && old.format == item.format {
                old.version
            } else {
                old.version + 1
            };
            *old = item.clone();
            (StatusCode::OK, item)
        }
        _ => {
            return outcome(
                StatusCode::PRECONDITION_FAILED,
                "multiple-matches",
                &format!("{} ChargeItems match the identifier", matches.len()),
            );
        }
    };
    inner.writes += 1;
    drop(inner);
    let mut response = (
        status,
        [(header::CONTENT_TYPE, format.media_type())],
        stored.body.clone(),
    )
        .into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", stored.version)) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "ChargeItem/{}/_history/{}",
        stored.id, stored.version
    )) {
        h.insert(header::LOCATION, v);
    }
    response
}

async fn search(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&shared, &headers) {
        return outcome(
            StatusCode::UNAUTHORIZED,
            "login",
            "a valid bearer token is required",
        );
    }
    let wanted = query.get("identifier").map(|i| match i.split_once('|') {
        Some((s, v)) => (Some(s.to_owned()), v.to_owned()),
        None => (None, i.clone()),
    });
    let inner = shared.inner.lock().expect("poisoned");
    let entries: Vec<String> = inner
        .items
        .iter()
        .filter(|i| match &wanted {
            None => true,
            Some((s, v)) => {
                s.as_ref().is_none_or(|s| *s == i.identifier_system) && *v == i.identifier_value
            }
        })
        .map(|i| {
            // Built as text so that the price keeps its decimal text.
            let resource = json!({
                "resourceType": "ChargeItem",
                "id": i.id,
                "meta": {"versionId": i.version.to_string()},
                "identifier": [{"system": i.identifier_system, "value": i.identifier_value}],
                "status": i.status,
                "code": {"coding": i.codes.iter().map(|c| json!({"code": c})).collect::<Vec<_>>()},
                "subject": {"reference": i.subject},
                "occurrencePeriod": {"start": i.period_start, "end": i.period_end},
                "note": i.notes.iter().map(|t| json!({"text": t})).collect::<Vec<_>>(),
            })
            .to_string();
            let price = format!(
                ",\"priceOverride\":{{\"value\":{},\"currency\":{}}}}}",
                i.price_text,
                Value::String(i.currency.clone())
            );
            let resource = format!("{}{price}", &resource[..resource.len() - 1]);
            format!(
                "{{\"fullUrl\":\"ChargeItem/{}\",\"resource\":{resource},\"search\":{{\"mode\":\"match\"}}}}",
                i.id
            )
        })
        .collect();
    let body = format!(
        "{{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":{},\"entry\":[{}]}}",
        entries.len(),
        entries.join(",")
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, Format::Json.media_type())],
        body,
    )
        .into_response()
}

fn empty_item() -> SimChargeItem {
    SimChargeItem {
        id: String::new(),
        identifier_system: String::new(),
        identifier_value: String::new(),
        status: String::new(),
        subject: String::new(),
        period_start: String::new(),
        period_end: String::new(),
        price_text: String::new(),
        currency: String::new(),
        codes: Vec::new(),
        notes: Vec::new(),
        format: Format::Json,
        body: String::new(),
        version: 0,
    }
}

fn parse_json(text: &str) -> Result<SimChargeItem, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    if v["resourceType"] != "ChargeItem" {
        return Err("not a ChargeItem".into());
    }
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut item = empty_item();
    item.identifier_system = s(&v["identifier"][0]["system"]);
    item.identifier_value = s(&v["identifier"][0]["value"]);
    item.status = s(&v["status"]);
    item.subject = s(&v["subject"]["reference"]);
    item.period_start = s(&v["occurrencePeriod"]["start"]);
    item.period_end = s(&v["occurrencePeriod"]["end"]);
    item.currency = s(&v["priceOverride"]["currency"]);
    item.codes = v["code"]["coding"]
        .as_array()
        .map(|c| c.iter().map(|c| s(&c["code"])).collect())
        .unwrap_or_default();
    item.notes = v["note"]
        .as_array()
        .map(|n| n.iter().map(|n| s(&n["text"])).collect())
        .unwrap_or_default();
    item.price_text = json_price_text(text).ok_or("priceOverride.value is not a number")?;
    Ok(item)
}

/// The number text of `priceOverride.value` as written (serde_json would read it as `f64`).
fn json_price_text(text: &str) -> Option<String> {
    let at = text.find("\"priceOverride\"")?;
    let rest = &text[at..];
    let rest = &rest[rest.find("\"value\"")? + "\"value\"".len()..];
    let rest = rest.trim_start().strip_prefix(':')?.trim_start();
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
        .collect();
    (!number.is_empty()).then_some(number)
}

fn parse_xml(text: &str) -> Result<SimChargeItem, String> {
    use quick_xml::events::{BytesStart, Event};
    let mut reader = quick_xml::Reader::from_str(text);
    let mut item = empty_item();
    let mut path: Vec<String> = Vec::new();
    let mut root_ok = false;
    let mut on_element = |path: &[String], start: &BytesStart<'_>| -> Result<(), String> {
        let mut value = None;
        for attr in start.attributes() {
            let attr = attr.map_err(|e| e.to_string())?;
            if attr.key.as_ref() == "value" {
                value = Some(
                    attr.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| e.to_string())?
                        .into_owned(),
                );
            }
        }
        let Some(value) = value else { return Ok(()) };
        match path.join("/").as_str() {
            "ChargeItem/identifier/system" => item.identifier_system = value,
            "ChargeItem/identifier/value" => item.identifier_value = value,
            "ChargeItem/status" => item.status = value,
            "ChargeItem/subject/reference" => item.subject = value,
            "ChargeItem/occurrencePeriod/start" => item.period_start = value,
            "ChargeItem/occurrencePeriod/end" => item.period_end = value,
            "ChargeItem/priceOverride/value" => item.price_text = value,
            "ChargeItem/priceOverride/currency" => item.currency = value,
            "ChargeItem/code/coding/code" => item.codes.push(value),
            "ChargeItem/note/text" => item.notes.push(value),
            _ => {}
        }
        Ok(())
    };
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("invalid XML: {e}"))?
        {
            Event::Start(e) => {
                path.push(e.local_name().as_ref().to_owned());
                if path.len() == 1 {
                    root_ok = path[0] == "ChargeItem";
                }
                on_element(&path, &e)?;
            }
            Event::Empty(e) => {
                path.push(e.local_name().as_ref().to_owned());
                on_element(&path, &e)?;
                path.pop();
            }
            Event::End(_) => {
                path.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_ok {
        return Err("not a ChargeItem".into());
    }
    if item.price_text.is_empty() {
        return Err("priceOverride.value is missing".into());
    }
    Ok(item)
}
