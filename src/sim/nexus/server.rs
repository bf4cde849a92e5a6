//! The simulated Nexus HTTP server: OAuth2 tokens, the HAL API and switchable faults.

use super::{NexusMunicipality, Patient, Repetition, latest};
use crate::domain::{DeliveryMode, GrantStatus};
use crate::sim::faults::{Fault, Faults, lock};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most patients per list page; a larger `pageSize` is answered 414.
const MAX_PAGE_SIZE: usize = 50;
/// The CVR number of the suppliers.
const CVR: &str = "29189129";

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct NexusServerConfig {
    /// The Nexus instance in the paths (`/authx/realms/{instance}/...`,
    /// `/api/core/mobile/{instance}/v2/`). Default `sim`.
    pub instance: String,
    /// The OAuth2 client id it accepts.
    pub client_id: String,
    /// The OAuth2 client secret it accepts.
    pub client_secret: String,
    /// How long an access token lives.
    pub token_ttl: Duration,
    /// How long a refresh token lives.
    pub refresh_ttl: Duration,
}

impl Default for NexusServerConfig {
    /// Instance `sim`, client `progression-gateway` / `sim-secret`, tokens of 5 minutes,
    /// refresh tokens of 30 minutes.
    fn default() -> Self {
        NexusServerConfig {
            instance: "sim".into(),
            client_id: "progression-gateway".into(),
            client_secret: "sim-secret".into(),
            token_ttl: Duration::from_secs(300),
            refresh_ttl: Duration::from_secs(1800),
        }
    }
}

struct Inner {
    sim: Arc<NexusMunicipality>,
    cfg: NexusServerConfig,
    /// `http://127.0.0.1:PORT/api/core/mobile/{instance}/v2/`.
    api_root: String,
    /// The path of the API root.
    api_path: String,
    /// Access token -> when it expires.
    tokens: Mutex<HashMap<String, Instant>>,
    /// Refresh token -> when it expires.
    refresh: Mutex<HashMap<String, Instant>>,
    seq: AtomicU64,
    visible_until: Mutex<Option<DateTime<Utc>>>,
    faults: Faults,
}

/// A running simulated Nexus. Dropping it stops it too; [`NexusServer::shutdown`] waits.
pub struct NexusServer {
    /// The token endpoint,
    /// `http://127.0.0.1:PORT/authx/realms/{instance}/protocol/openid-connect/token`.
    pub token_url: String,
    /// The API root, `http://127.0.0.1:PORT/api/core/mobile/{instance}/v2/`.
    pub api_root: String,
    /// Faults and counters.
    pub faults: Faults,
    inner: Arc<Inner>,
    served: crate::sim::Served,
}

impl std::fmt::Debug for NexusServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexusServer")
            .field("api_root", &self.api_root)
            .finish_non_exhaustive()
    }
}

impl NexusServer {
    /// Only what was reported at or before `t` is visible from now on: each thing as its
    /// latest version at or before `t`.
    pub fn set_visible_until(&self, t: DateTime<Utc>) {
        *lock(&self.inner.visible_until) = Some(t);
    }

    /// Everything is visible (the default).
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

    /// Makes every refresh token issued so far expire now.
    pub fn expire_refresh_tokens(&self) {
        let now = Instant::now();
        for exp in lock(&self.inner.refresh).values_mut() {
            *exp = now;
        }
    }

    /// API requests received.
    pub fn api_requests(&self) -> u64 {
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

/// Starts the simulated Nexus on `127.0.0.1` on a free port.
///
/// - `POST /authx/realms/{instance}/protocol/openid-connect/token`, form-encoded:
///   `grant_type=client_credentials` or `grant_type=refresh_token&refresh_token=..`, with
///   `client_id` and `client_secret` (in the form or as HTTP Basic). Answers `access_token`,
///   `token_type`, `expires_in`, `refresh_token`, `refresh_expires_in`; wrong credentials 401
///   `invalid_client`, an unknown or expired refresh token 400 `invalid_grant`.
/// - `GET /api/core/mobile/{instance}/v2/` and below (links only; see the module doc and
///   `deploy/nexus-wire.md`), each with `Authorization: Bearer <token>` (else 401):
///   - `organizations`, `organizations/{id}`, `organizations/{id}/patients?pageSize=N`;
///   - `patients?pageSize=N` (every patient), `patients?ids=1,2,3` (a page's content);
///   - `patients/{id}`, `patients/{id}/preferences`,
///     `patients/{id}/pathways/{view}/references`,
///     `patients/{id}/calendars/{view}/events?from=..&to=..`;
///   - `grants/{id}`, `conditions/{id}`.
pub async fn serve(
    sim: Arc<NexusMunicipality>,
    cfg: NexusServerConfig,
) -> std::io::Result<NexusServer> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let token_path = format!(
        "/authx/realms/{}/protocol/openid-connect/token",
        cfg.instance
    );
    let api_path = format!("/api/core/mobile/{}/v2/", cfg.instance);
    let token_url = format!("http://{addr}{token_path}");
    let api_root = format!("http://{addr}{api_path}");
    let faults = Faults::default();
    let inner = Arc::new(Inner {
        sim,
        cfg,
        api_root: api_root.clone(),
        api_path,
        tokens: Mutex::new(HashMap::new()),
        refresh: Mutex::new(HashMap::new()),
        seq: AtomicU64::new(0),
        visible_until: Mutex::new(None),
        faults: faults.clone(),
    });
    let app = Router::new()
        .route(&token_path, post(token))
        .fallback(api)
        .with_state(inner.clone());
    let served = crate::sim::Served::spawn(listener, app);
    Ok(NexusServer {
        token_url,
        api_root,
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
    let (id, secret) = match (&basic, form.get("client_id"), form.get("client_secret")) {
        (Some((id, secret)), _, _) => (id.clone(), secret.clone()),
        (None, Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client"),
    };
    if id != s.cfg.client_id || secret != s.cfg.client_secret {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some("refresh_token") => {
            let given = form.get("refresh_token").map(String::as_str).unwrap_or("");
            let live = lock(&s.refresh)
                .get(given)
                .is_some_and(|exp| *exp > Instant::now());
            if !live {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    let seq = s.seq.fetch_add(1, Ordering::SeqCst);
    let random = RandomState::new().hash_one(seq);
    let access_token = format!("nexus-sim-{seq:x}-{random:016x}");
    let refresh_token = format!(
        "nexus-refresh-{seq:x}-{:016x}",
        RandomState::new().hash_one(random)
    );
    let now = Instant::now();
    lock(&s.tokens).insert(access_token.clone(), now + s.cfg.token_ttl);
    lock(&s.refresh).insert(refresh_token.clone(), now + s.cfg.refresh_ttl);
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": s.cfg.token_ttl.as_secs(),
        "refresh_token": refresh_token,
        "refresh_expires_in": s.cfg.refresh_ttl.as_secs(),
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

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({ "error": error }).to_string(),
    )
        .into_response()
}

/// `None` if the request carries a live access token, else the 401 to answer.
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
        return Some(unauthorized("An access token is required"));
    };
    match lock(&s.tokens).get(token) {
        Some(exp) if *exp > Instant::now() => None,
        Some(_) => Some(unauthorized("The access token expired")),
        None => Some(unauthorized("Unknown access token")),
    }
}

fn unauthorized(text: &str) -> Response {
    let mut r = error(StatusCode::UNAUTHORIZED, text);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"sim-nexus\", error=\"invalid_token\""),
    );
    r
}

fn error(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"errorCode": status.as_u16(), "message": text}).to_string(),
    )
        .into_response()
}

// --- the API ---------------------------------------------------------------------------------

/// Why a request gets no body: a status and a message.
type Failure = (StatusCode, String);

fn not_found(what: &str) -> Failure {
    (StatusCode::NOT_FOUND, format!("no such {what}"))
}

fn bad_request(text: impl Into<String>) -> Failure {
    (StatusCode::BAD_REQUEST, text.into())
}

async fn api(
    State(s): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    let rest = if path == s.api_path.trim_end_matches('/') {
        Some("")
    } else {
        path.strip_prefix(s.api_path.as_str())
    };
    let Some(rest) = rest else {
        return error(StatusCode::NOT_FOUND, "not found");
    };
    if method != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "only GET");
    }
    s.faults.count_request();
    let mut truncate = false;
    match s.faults.next_fault() {
        None => {}
        Some(Fault::ServerError) => {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "simulated server error");
        }
        Some(Fault::TooManyRequests { retry_after_secs }) => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "slow down");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return r;
        }
        Some(Fault::Unavailable { retry_after_secs }) => {
            let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "simulated maintenance");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            return r;
        }
        Some(Fault::ExpiredToken) => return unauthorized("The access token expired"),
        Some(Fault::Slow(d)) => tokio::time::sleep(d).await,
        Some(Fault::TruncatedPage) => truncate = true,
    }
    if let Some(r) = check_bearer(&s, &headers) {
        return r;
    }
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let view = View {
        sim: &s.sim,
        root: &s.api_root,
        t: *lock(&s.visible_until),
    };
    let segments: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let answer = view.route(&segments, &params);
    match answer {
        Ok(v) => {
            let mut body = v.to_string().into_bytes();
            if truncate {
                body.truncate(body.len() / 2);
            }
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                body,
            )
                .into_response()
        }
        Err((status, text)) => error(status, &text),
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn id_of(segment: &str, what: &str) -> Result<i64, Failure> {
    segment.parse().map_err(|_| not_found(what))
}

fn href(url: String) -> Value {
    json!({ "href": url })
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an RFC 3339 instant (a `+` sent unencoded arrives as a space).
fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&s.trim().replace(' ', "+"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The pathway views of every patient: a decoy first, then the full one.
const PATHWAY_VIEWS: [(i64, &str); 2] = [(1, "Ældre - Myndighed"), (2, "Ældre - Alt")];
/// The full pathway view.
const FULL_VIEW: i64 = 2;
/// The calendar view.
const CALENDAR_VIEW: i64 = 3;

/// The state as of a visibility limit, rendered with links under `root`.
struct View<'a> {
    sim: &'a NexusMunicipality,
    root: &'a str,
    t: Option<DateTime<Utc>>,
}

impl View<'_> {
    fn route(&self, seg: &[&str], params: &[(String, String)]) -> Result<Value, Failure> {
        match seg {
            [] => Ok(self.root_document()),
            ["organizations"] => Ok(Value::Array(
                (0..self.sim.sor_codes.len())
                    .map(|i| self.organisation(i))
                    .collect(),
            )),
            ["organizations", id] => self.org_index(id).map(|i| self.organisation(i)),
            ["organizations", id, "patients"] => {
                let org = self.org_index(id)?;
                self.patient_list(Some(org), params)
            }
            ["patients"] => match param(params, "ids") {
                Some(ids) => self.page_content(ids),
                None => self.patient_list(None, params),
            },
            ["patients", id] => self.patient(id).map(|p| self.patient_document(p)),
            ["patients", id, "preferences"] => self.patient(id).map(|p| self.preferences(p)),
            ["patients", id, "pathways", view, "references"] => {
                let p = self.patient(id)?;
                match view.parse::<i64>() {
                    Ok(v) if PATHWAY_VIEWS.iter().any(|(id, _)| *id == v) => {
                        Ok(self.pathway(p, v == FULL_VIEW))
                    }
                    _ => Err(not_found("pathway view")),
                }
            }
            ["patients", id, "calendars", view, "events"] => {
                let p = self.patient(id)?;
                if view.parse::<i64>().ok() != Some(CALENDAR_VIEW) {
                    return Err(not_found("calendar view"));
                }
                let from = param(params, "from").ok_or_else(|| bad_request("from is required"))?;
                let to = param(params, "to").ok_or_else(|| bad_request("to is required"))?;
                let from = parse_instant(from)
                    .ok_or_else(|| bad_request("from is not an RFC 3339 instant"))?;
                let to = parse_instant(to)
                    .ok_or_else(|| bad_request("to is not an RFC 3339 instant"))?;
                Ok(self.events(p, from, to))
            }
            ["grants", id] => self.grant(id_of(id, "grant")?),
            ["conditions", id] => self.condition(id_of(id, "condition")?),
            _ => Err(not_found("resource")),
        }
    }

    fn root_document(&self) -> Value {
        json!({
            "_links": {
                "self": href(self.root.to_string()),
                "organizations": href(format!("{}organizations", self.root)),
                "patients": href(format!("{}patients", self.root)),
            }
        })
    }

    fn org_index(&self, id: &str) -> Result<usize, Failure> {
        let id = id_of(id, "organisation")?;
        usize::try_from(id - 3)
            .ok()
            .filter(|i| *i < self.sim.sor_codes.len())
            .ok_or_else(|| not_found("organisation"))
    }

    fn organisation(&self, i: usize) -> Value {
        let id = 3 + i as i64;
        json!({
            "id": id,
            "name": self.sim.org_names[i],
            "_links": {
                "self": href(format!("{}organizations/{id}", self.root)),
                "patients": href(format!("{}organizations/{id}/patients", self.root)),
            }
        })
    }

    fn visible(&self, p: &Patient) -> bool {
        latest(&p.citizen, self.t).is_some()
    }

    fn patient(&self, id: &str) -> Result<&Patient, Failure> {
        let id = id_of(id, "patient")?;
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.sim.patients.get(i))
            .filter(|p| self.visible(p))
            .ok_or_else(|| not_found("patient"))
    }

    fn patient_list(
        &self,
        org: Option<usize>,
        params: &[(String, String)],
    ) -> Result<Value, Failure> {
        let size = match param(params, "pageSize") {
            None => MAX_PAGE_SIZE,
            Some(s) => s
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad_request("pageSize must be a positive number"))?,
        };
        if size > MAX_PAGE_SIZE {
            return Err((
                StatusCode::URI_TOO_LONG,
                format!("pageSize above {MAX_PAGE_SIZE}"),
            ));
        }
        let ids: Vec<i64> = self
            .sim
            .patients
            .iter()
            .filter(|p| org.is_none_or(|o| p.org == o) && self.visible(p))
            .map(|p| p.id)
            .collect();
        let pages: Vec<Value> = ids
            .chunks(size)
            .map(|chunk| {
                let list: Vec<String> = chunk.iter().map(i64::to_string).collect();
                json!({"_links": {"content": href(format!("{}patients?ids={}", self.root, list.join(",")))}})
            })
            .collect();
        Ok(json!({"totalItems": ids.len(), "pageSize": size, "pages": pages}))
    }

    fn page_content(&self, ids: &str) -> Result<Value, Failure> {
        let mut out = Vec::new();
        for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let id: i64 = id
                .parse()
                .map_err(|_| bad_request("ids must be patient ids"))?;
            let found = usize::try_from(id - 1)
                .ok()
                .and_then(|i| self.sim.patients.get(i))
                .filter(|p| self.visible(p));
            if let Some(p) = found {
                out.push(json!({
                    "id": p.id,
                    "_links": {"self": href(format!("{}patients/{}", self.root, p.id))},
                }));
            }
        }
        Ok(Value::Array(out))
    }

    fn patient_document(&self, p: &Patient) -> Value {
        let deceased = latest(&p.citizen, self.t).is_some_and(|v| v.record.deceased);
        let cpr = if p.cpr.len() == 10 {
            format!("{}-{}", &p.cpr[..6], &p.cpr[6..])
        } else {
            p.cpr.clone()
        };
        json!({
            "id": p.id,
            "firstName": "Borger",
            "lastName": p.id.to_string(),
            "patientIdentifier": {"type": "cpr", "identifier": cpr},
            "patientState": {"name": if deceased { "Død" } else { "Aktiv" }},
            "_links": {
                "self": href(format!("{}patients/{}", self.root, p.id)),
                "patientPreferences": href(format!("{}patients/{}/preferences", self.root, p.id)),
            }
        })
    }

    fn preferences(&self, p: &Patient) -> Value {
        let pathways: Vec<Value> = PATHWAY_VIEWS
            .iter()
            .map(|(id, name)| {
                json!({
                    "id": id,
                    "name": name,
                    "_links": {"pathwayReferences": href(format!(
                        "{}patients/{}/pathways/{id}/references", self.root, p.id
                    ))},
                })
            })
            .collect();
        json!({
            "CITIZEN_PATHWAY": pathways,
            "CITIZEN_CALENDAR": [{
                "id": CALENDAR_VIEW,
                "name": "Kalender",
                "_links": {"events": href(format!(
                    "{}patients/{}/calendars/{CALENDAR_VIEW}/events", self.root, p.id
                ))},
            }],
        })
    }

    /// The pathway tree. The decoy view holds no leaves; in the full one, every third patient
    /// has the grants one level deeper, and every patient has a form leaf to be ignored.
    fn pathway(&self, p: &Patient, full: bool) -> Value {
        let mut grants = Vec::new();
        let mut conditions = Vec::new();
        if full {
            for &gi in &p.grants {
                let g = &self.sim.grants[gi];
                let Some(v) = latest(&g.versions, self.t) else {
                    continue;
                };
                grants.push(json!({
                    "type": "basketGrantReference",
                    "name": grant_name(&v.record.code).0,
                    "grantId": g.id,
                    "workflowState": {"name": workflow_state(v.withdrawn, v.record.status).1},
                    "_links": {"referencedObject": href(format!("{}grants/{}", self.root, g.id))},
                    "children": [],
                }));
            }
            for &ci in &p.conditions {
                let c = &self.sim.conditions[ci];
                let Some(v) = latest(&c.versions, self.t).filter(|v| !v.withdrawn) else {
                    continue;
                };
                conditions.push(json!({
                    "type": "conditionReference",
                    "name": v.record.condition_code,
                    "conditionId": c.id,
                    "_links": {"referencedObject": href(format!("{}conditions/{}", self.root, c.id))},
                    "children": [],
                }));
            }
        }
        let mut children = Vec::new();
        if full && p.id % 3 == 0 {
            children.push(json!({
                "type": "pathwayReference",
                "name": "Indsatser",
                "children": grants,
            }));
        } else {
            children.extend(grants);
        }
        children.extend(conditions);
        if full {
            children.push(json!({
                "type": "formDataV2Reference",
                "name": "Funktionsevnetilstand",
                "children": [],
            }));
        }
        json!([{"type": "patientPathway", "name": "Forløb", "children": children}])
    }

    fn grant(&self, id: i64) -> Result<Value, Failure> {
        let g = usize::try_from(id - super::FIRST_GRANT)
            .ok()
            .and_then(|i| self.sim.grants.get(i))
            .ok_or_else(|| not_found("grant"))?;
        let v = latest(&g.versions, self.t).ok_or_else(|| not_found("grant"))?;
        let patient = &self.sim.patients[g.patient];
        if !self.visible(patient) {
            return Err(not_found("grant"));
        }
        let r = &v.record;
        let (name, section) = grant_name(&r.code);
        let (state_id, state) = workflow_state(v.withdrawn, r.status);
        let supplier = 11 + patient.org as i64;
        let mut elements = vec![
            json!({"type": "paragraph", "section": section, "group": {"id": 1}}),
            json!({"type": "visitatedDurationInMinutes", "number": g.minutes}),
        ];
        if let Some(rep) = g.repetition {
            elements.push(repetition_element(rep));
        }
        elements.push(json!({
            "type": "supplier",
            "supplier": {"id": supplier, "name": self.sim.org_names[patient.org], "cvrNumber": CVR},
        }));
        elements.push(json!({"type": "billingStartDate", "date": r.start.to_string()}));
        elements.push(json!({"type": "billingEndDate", "date": r.end.map(|d| d.to_string())}));
        let in_force = self
            .t
            .is_none_or(|t| r.start <= t.with_timezone(&self.sim.time_zone).date_naive());
        let (current, future) = if in_force {
            (elements, Vec::new())
        } else {
            (Vec::new(), elements)
        };
        Ok(json!({
            "id": g.id,
            "name": name,
            "workflowState": {"id": state_id, "name": state},
            "currentElements": current,
            "futureElements": future,
            "_links": {"self": href(format!("{}grants/{}", self.root, g.id))},
        }))
    }

    fn condition(&self, id: i64) -> Result<Value, Failure> {
        let c = usize::try_from(id - super::FIRST_CONDITION)
            .ok()
            .and_then(|i| self.sim.conditions.get(i))
            .ok_or_else(|| not_found("condition"))?;
        let v = latest(&c.versions, self.t)
            .filter(|v| !v.withdrawn)
            .ok_or_else(|| not_found("condition"))?;
        let patient = &self.sim.patients[c.patient];
        if !self.visible(patient) {
            return Err(not_found("condition"));
        }
        let a = &v.record;
        let expected = patient
            .goals
            .iter()
            .filter_map(|&gi| latest(&self.sim.goals[gi], self.t))
            .filter(|g| !g.withdrawn && g.record.active && g.record.condition_id == a.condition_id)
            .filter_map(|g| g.record.target_level.map(|l| (g.at, l)))
            .max_by_key(|(at, _)| *at)
            .map(|(_, l)| format!("B{}", l.value() + 1));
        Ok(json!({
            "id": c.id,
            "code": a.condition_code,
            "state": {"name": if a.in_focus { "Aktiv" } else { "Inaktiv" }},
            "inFocus": a.in_focus,
            "level": a.level_code,
            "expectedLevel": expected,
            "_links": {"self": href(format!("{}conditions/{}", self.root, c.id))},
        }))
    }

    fn events(&self, p: &Patient, from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
        let mut events = Vec::new();
        for &vi in &p.visits {
            let e = &self.sim.visits[vi];
            let Some(v) = latest(&e.versions, self.t).filter(|v| !v.withdrawn) else {
                continue;
            };
            let r = &v.record;
            if r.start < from || r.start >= to {
                continue;
            }
            let grant_ids: Vec<i64> = r
                .grants
                .iter()
                .filter_map(|g| self.sim.grant_by_source.get(g.as_str()))
                .map(|&gi| self.sim.grants[gi].id)
                .collect();
            let title = r
                .grants
                .first()
                .and_then(|g| self.sim.grant_by_source.get(g.as_str()))
                .and_then(|&gi| self.sim.grants[gi].versions.first())
                .map_or_else(|| "Besøg".to_string(), |g| grant_name(&g.record.code).0);
            let day: NaiveDate = r.start.with_timezone(&self.sim.time_zone).date_naive();
            let (pro_id, pro_name) = self.sim.professional(p, day);
            let location = match r.mode {
                DeliveryMode::Home => "Hjemme",
                DeliveryMode::Clinic => "Klinik",
                DeliveryMode::Phone => "Telefon",
                DeliveryMode::Screen => "Skærm",
            };
            events.push((
                r.start,
                e.id,
                json!({
                    "id": e.id,
                    "title": title,
                    "startDate": instant(r.start),
                    "endDate": instant(r.end),
                    "registeredStartDate": instant(r.start),
                    "registeredEndDate": instant(r.end),
                    "status": {"name": "Udført"},
                    "location": {"name": location},
                    "professional": {"id": pro_id, "name": pro_name},
                    "grantIds": grant_ids,
                }),
            ));
        }
        events.sort_by_key(|(start, id, _)| (*start, *id));
        json!({"eventResources": events.into_iter().map(|e| e.2).collect::<Vec<_>>()})
    }
}

/// The Danish name and the section of an intervention code; a code the simulator does not
/// know is named by itself, section `ukendt`.
fn grant_name(code: &str) -> (String, &'static str) {
    match super::codes::intervention(code) {
        Some(c) => (c.display.to_string(), super::codes::section(c)),
        None => (code.to_string(), "ukendt"),
    }
}

/// The workflow state `(id, name)` of a grant version.
fn workflow_state(withdrawn: bool, status: GrantStatus) -> (i64, &'static str) {
    if withdrawn {
        return (9, "Annulleret");
    }
    match status {
        GrantStatus::Active | GrantStatus::OnHold | GrantStatus::Unknown | GrantStatus::Draft => {
            (5, "Bevilget")
        }
        GrantStatus::Completed => (7, "Afsluttet"),
        GrantStatus::Revoked => (8, "Ophørt"),
        GrantStatus::EnteredInError => (9, "Annulleret"),
    }
}

fn repetition_element(rep: Repetition) -> Value {
    match rep {
        Repetition::Day { count, visits } => json!({
            "type": "repetition", "pattern": "DAY", "count": count,
            "next": {"visits": visits},
        }),
        Repetition::Week {
            count,
            weekdays,
            weekenddays,
            visits,
        } => json!({
            "type": "repetition", "pattern": "WEEK", "count": count,
            "next": {"weekdays": weekdays, "weekenddays": weekenddays, "next": {"visits": visits}},
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_states_by_status() {
        assert_eq!(workflow_state(false, GrantStatus::Active).1, "Bevilget");
        assert_eq!(workflow_state(false, GrantStatus::Completed).1, "Afsluttet");
        assert_eq!(workflow_state(false, GrantStatus::Revoked).1, "Ophørt");
        assert_eq!(workflow_state(true, GrantStatus::Active).1, "Annulleret");
    }

    #[test]
    fn unknown_codes_are_named_by_themselves() {
        assert_eq!(grant_name("X1.1"), ("X1.1".to_string(), "ukendt"));
        assert_eq!(grant_name("H2.5").1, "§ 83 a");
    }

    #[test]
    fn instants_with_an_unencoded_plus() {
        assert_eq!(
            parse_instant("2027-01-05T21:00:00 01:00").map(instant),
            Some("2027-01-05T20:00:00Z".to_string())
        );
        assert!(parse_instant("2027-01-05").is_none());
    }
}
