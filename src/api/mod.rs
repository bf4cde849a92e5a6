//! The operations HTTP server: liveness, readiness, Prometheus metrics and the run journal,
//! with the FHIR push endpoint merged in when it is configured.
//!
//! | Endpoint | Token | Answer |
//! |---|---|---|
//! | `GET /healthz` | no | 200 `ok` while the process serves |
//! | `GET /readyz` | yes | 200 or 503, JSON: store reachable and the newest finished run |
//! | `GET /metrics` | yes | 200, OpenMetrics text (process counters and store gauges) |
//! | `GET /runs?last=N&job=NAME` | yes | 200, JSON array of journaled runs, newest first |
//! | `GET /explain/course/{id}` | yes | 200, JSON: the course's decision, rule, evidence and supersessions; 404 |
//! | `GET /explain/voucher/{number}` | yes | 200, JSON: the course-days a voucher's amount is made of; 404 |
//! | `POST /explain/citizen` | yes | body `{"cpr": "..."}` (never in the URL): 200, JSON array of the citizen's courses; 404 |
//! | `POST /fhir/Bundle` | its own | the push router ([`crate::sources::fhir_push`]) |
//!
//! Every endpoint but `/healthz` wants `Authorization: Bearer <token>`, compared in constant
//! time (SHA-256 digests of both sides); otherwise 401 with `WWW-Authenticate: Bearer` and a
//! JSON error. An empty configured token refuses everyone. The token is never logged or
//! echoed. Store errors are logged with `tracing::warn` and never sent: they may name a
//! database URL. The push router keeps its own token and body limit.

mod metrics;

pub use metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, Metrics, PREFIX as METRICS_PREFIX};

use crate::store::{Outcome, RunRecord, Store};
use axum::Router;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use metrics::{StoreGauges, ask};
use secrecy::SecretString;
use serde::Serialize;
use std::fmt;
use std::sync::Arc;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

/// Default of `last` in `/runs`.
pub const DEFAULT_RUNS: u32 = 20;
/// Largest `last` accepted by `/runs`.
pub const MAX_RUNS: u32 = 1000;
/// Largest request body accepted by the operations endpoints (they take none).
const MAX_BODY_BYTES: usize = 16 * 1024;
/// How many of the newest runs `/readyz` looks through for the newest finished one (more than
/// the jobs that can be running at once).
const READY_WINDOW: u32 = 64;

/// What the operations endpoints share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    store: Store,
    /// The bearer token wanted; never printed (`Debug` shows `[REDACTED]`).
    token: SecretString,
    metrics: Arc<Metrics>,
    /// The pseudonym key, for `POST /explain/citizen` (absent: that endpoint answers 503).
    key: Option<crate::domain::PseudonymKey>,
    /// The configured jobs, each with a `seconds_since_last_success` series from start-up.
    jobs: Vec<String>,
    /// When the server was set up.
    started: DateTime<Utc>,
}

impl fmt::Debug for ApiState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiState")
            .field("store", &self.store)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The state of the operations endpoints: the store they read, the bearer token they
    /// want (an empty one refuses every request), and the process's counters.
    pub fn new(store: Store, token: SecretString, metrics: Arc<Metrics>) -> Self {
        ApiState {
            store,
            token,
            metrics,
            key: None,
            jobs: Vec::new(),
            started: Utc::now(),
        }
    }

    /// The same, with a last-success series for each of these configured jobs from start-up.
    pub fn with_jobs(mut self, jobs: Vec<String>) -> Self {
        self.jobs = jobs;
        self
    }

    /// The same, able to pseudonymise a CPR given to `POST /explain/citizen`.
    pub fn with_pseudonym_key(mut self, key: crate::domain::PseudonymKey) -> Self {
        self.key = Some(key);
        self
    }
}

/// The router: `/healthz`, `/readyz`, `/metrics`, `/runs`, merged with `push` (the FHIR push
/// router [`crate::sources::fhir_push::router`], which serves `POST /fhir/Bundle` with its own
/// token) when given.
pub fn router(state: ApiState, push: Option<Router>) -> Router {
    let guarded = Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/runs", get(runs))
        .route("/explain/course/{id}", get(explain_course))
        .route("/explain/voucher/{number}", get(explain_voucher))
        .route("/explain/citizen", axum::routing::post(explain_citizen))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let mut app = Router::new()
        .route("/healthz", get(healthz))
        .merge(guarded)
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .with_state(state);
    if let Some(push) = push {
        app = app.merge(push);
    }
    app.layer(TraceLayer::new_for_http())
}

/// A JSON error answer: `{"error": message}`.
fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Body {
        error: String,
    }
    (
        status,
        axum::Json(Body {
            error: message.into(),
        }),
    )
        .into_response()
}

async fn require_token(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let verdict = crate::bearer::check(
        request.headers(),
        crate::bearer::digest(&state.token).as_ref(),
    );
    let (message, challenge) = match verdict {
        crate::bearer::Verdict::Allowed => return next.run(request).await,
        crate::bearer::Verdict::Missing => (
            "An `Authorization: Bearer` token is required.",
            "Bearer realm=\"progression-gateway\"",
        ),
        crate::bearer::Verdict::Wrong => (
            "The bearer token is not valid for this endpoint.",
            "Bearer realm=\"progression-gateway\", error=\"invalid_token\"",
        ),
    };
    tracing::warn!(
        path = request.uri().path(),
        token_given = verdict == crate::bearer::Verdict::Wrong,
        "Operations request refused: not authorized."
    );
    let mut response = json_error(StatusCode::UNAUTHORIZED, message);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

async fn healthz() -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "ok").into_response()
}

/// The newest finished run, as `/readyz` shows it.
#[derive(Debug, Serialize)]
struct LastRun {
    id: i64,
    job: String,
    outcome: Outcome,
    started_at: DateTime<Utc>,
    ended_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    store: &'static str,
    last_run: Option<LastRun>,
}

async fn readyz(State(state): State<ApiState>) -> Response {
    const WHAT: &str = "readiness";
    let mut newest = None;
    let mut reachable = ask(WHAT, state.store.ping()).await.is_some();
    if reachable {
        match ask(WHAT, state.store.runs(READY_WINDOW, None)).await {
            Some(runs) => newest = runs.into_iter().find(|r| r.outcome != Outcome::Running),
            None => reachable = false,
        }
    }
    let last_run = newest.map(|r: RunRecord| LastRun {
        id: r.id,
        job: r.job,
        outcome: r.outcome,
        started_at: r.started_at,
        ended_at: r.ended_at,
    });
    let failed = last_run
        .as_ref()
        .is_some_and(|r| matches!(r.outcome, Outcome::Failed | Outcome::Abandoned));
    let ready = reachable && !failed;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        ready,
        store: if reachable { "ok" } else { "unreachable" },
        last_run,
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    let gauges = StoreGauges::read(&state.store, &state.jobs, Some(state.started)).await;
    match metrics::encode(&state.metrics, &gauges, Utc::now()) {
        Ok(body) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "The metrics could not be encoded.");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The metrics could not be encoded.",
            )
        }
    }
}

/// The parameters of `/runs`.
#[derive(Debug, PartialEq, Eq)]
struct RunsQuery {
    last: u32,
    job: Option<String>,
}

/// Parses `last` and `job`; any other parameter, a repeated one, or a `last` that is not a
/// whole number from 1 to [`MAX_RUNS`] is an error (said without quoting the value back).
fn runs_query(query: Option<&str>) -> Result<RunsQuery, String> {
    let mut out = RunsQuery {
        last: DEFAULT_RUNS,
        job: None,
    };
    let (mut seen_last, mut seen_job) = (false, false);
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "last" if !seen_last => {
                seen_last = true;
                out.last = value
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_RUNS).contains(n))
                    .ok_or_else(|| {
                        format!("`last` must be a whole number from 1 to {MAX_RUNS}.")
                    })?;
            }
            "job" if !seen_job => {
                seen_job = true;
                if value.is_empty() {
                    return Err("`job` must not be empty.".to_owned());
                }
                out.job = Some(value.into_owned());
            }
            "last" | "job" => return Err(format!("`{key}` is given more than once.")),
            _ => return Err("Only the parameters `last` and `job` are known.".to_owned()),
        }
    }
    Ok(out)
}

async fn runs(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Response {
    let q = match runs_query(query.as_deref()) {
        Ok(q) => q,
        Err(message) => return json_error(StatusCode::BAD_REQUEST, message),
    };
    match ask("run journal", state.store.runs(q.last, q.job.as_deref())).await {
        Some(runs) => axum::Json(runs).into_response(),
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store is unreachable; try again later.",
        ),
    }
}

async fn explain_course(
    State(state): State<ApiState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match ask("course ledger", crate::explain::course(&state.store, &id)).await {
        Some(Some(c)) => axum::Json(c).into_response(),
        Some(None) => json_error(
            StatusCode::NOT_FOUND,
            "The course ledger holds no such course.",
        ),
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store is unreachable; try again later.",
        ),
    }
}

async fn explain_voucher(
    State(state): State<ApiState>,
    axum::extract::Path(number): axum::extract::Path<String>,
) -> Response {
    match ask("outbox", crate::explain::voucher(&state.store, &number)).await {
        Some(Some(v)) => axum::Json(v).into_response(),
        Some(None) => json_error(StatusCode::NOT_FOUND, "The outbox holds no such voucher."),
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store is unreachable; try again later.",
        ),
    }
}

/// The body of `POST /explain/citizen`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CitizenQuery {
    cpr: SecretString,
}

async fn explain_citizen(State(state): State<ApiState>, body: axum::body::Bytes) -> Response {
    let Some(key) = &state.key else {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "This server cannot pseudonymise a CPR number.",
        );
    };
    // The CPR is never echoed: a bad body gets a fixed message.
    let Ok(q) = serde_json::from_slice::<CitizenQuery>(&body) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "The body must be JSON: {\"cpr\": \"ddmmyyxxxx\"}.",
        );
    };
    use secrecy::ExposeSecret;
    let Ok(cpr) = crate::domain::Cpr::parse(q.cpr.expose_secret()) else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "`cpr` is not a CPR number (10 digits, ddmmyy-xxxx accepted).",
        );
    };
    let who = key.citizen(&cpr);
    match ask("course ledger", crate::explain::citizen(&state.store, &who)).await {
        Some(courses) if courses.is_empty() => json_error(
            StatusCode::NOT_FOUND,
            "The course ledger holds no course of this citizen.",
        ),
        Some(courses) => axum::Json(courses).into_response(),
        None => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "The store is unreachable; try again later.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_parameters() {
        let ok = |q| runs_query(q).unwrap();
        assert_eq!(
            ok(None),
            RunsQuery {
                last: DEFAULT_RUNS,
                job: None
            }
        );
        assert_eq!(
            ok(Some("last=2&job=nightly")),
            RunsQuery {
                last: 2,
                job: Some("nightly".into())
            }
        );
        assert_eq!(ok(Some("last=1000")).last, 1000);
        for bad in [
            "last=0",
            "last=1001",
            "last=-1",
            "last=abc",
            "last=",
            "last=1&last=2",
            "job=",
            "jobs=nightly",
        ] {
            assert!(runs_query(Some(bad)).is_err(), "{bad}");
        }
    }
}
