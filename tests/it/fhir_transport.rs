//! The FHIR transports over real HTTP on loopback: the pull client against a scripted test
//! server, and the push endpoint served with `axum::serve`. No mocked clients.

use crate::common::spawn_server;
use axum::Router;
use axum::body::Body;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use progression_gateway::sources::fhir_pull::{FhirPullClient, PullConfig, PullError};
use progression_gateway::sources::fhir_push::{self, PushConfig};
use progression_gateway::sources::{Accepted, BundleSink, Format, Refusal};
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use secrecy::SecretString;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// ---------------------------------------------------------------------------------------------
// A scripted FHIR server with a token endpoint
// ---------------------------------------------------------------------------------------------

const CLIENT_ID: &str = "gateway";
const CLIENT_SECRET: &str = "s3cret-Client-Value-42";
const GOOD_PAGE: &str = r#"{"resourceType":"Bundle","type":"searchset","entry":[]}"#;
const CUT_PAGE: &str = r#"{"resourceType":"Bundle","type":"searchs"#;
/// Bytes actually sent of a cut-off body (half its announced length).
const CUT_SENT: usize = 1 << 20;

/// What the server does with the next `/fhir/Bundle` request.
#[derive(Clone, Debug)]
enum Step {
    /// This status, empty body.
    Status(u16),
    /// This status with this `Retry-After`.
    RetryAfter(u16, &'static str),
    /// Waits this long, then answers the good page.
    Slow(Duration),
    /// Announces a length, sends half of it, closes the connection.
    CutOff,
    /// 401, even to the current token.
    Unauthorized,
    /// 200 with this `Content-Type` (empty: none) and body.
    Page(&'static str, &'static str),
}

struct Fake {
    script: Mutex<VecDeque<Step>>,
    /// What happens when the script is done.
    otherwise: Step,
    /// Whether `/fhir/Bundle` wants the latest issued token.
    require_token: bool,
    token_hits: AtomicUsize,
    bundle_hits: AtomicUsize,
    issued: AtomicUsize,
    /// Arrival time and step of every `/fhir/Bundle` request.
    log: Mutex<Vec<(Instant, String)>>,
    /// Query and `Accept` of every `/fhir/Bundle` request.
    seen: Mutex<Vec<(String, String)>>,
}

impl Fake {
    fn new(script: Vec<Step>, otherwise: Step, require_token: bool) -> Arc<Self> {
        Arc::new(Fake {
            script: Mutex::new(script.into()),
            otherwise,
            require_token,
            token_hits: AtomicUsize::new(0),
            bundle_hits: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
        })
    }
    fn token_hits(&self) -> usize {
        self.token_hits.load(Ordering::SeqCst)
    }
    fn bundle_hits(&self) -> usize {
        self.bundle_hits.load(Ordering::SeqCst)
    }
}

async fn token_endpoint(
    State(fake): State<Arc<Fake>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    fake.token_hits.fetch_add(1, Ordering::SeqCst);
    let field = |k: &str| form.get(k).map(String::as_str);
    if field("grant_type") != Some("client_credentials")
        || field("client_id") != Some(CLIENT_ID)
        || field("client_secret") != Some(CLIENT_SECRET)
    {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"invalid_client","error_description":"bad client"}"#,
        )
            .into_response();
    }
    let n = fake.issued.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(serde_json::json!({
        "access_token": format!("tok-{n}"),
        "token_type": "Bearer",
        "expires_in": 3600,
    }))
    .into_response()
}

fn page(content_type: &str, body: &'static str) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    if content_type.is_empty() {
        response.headers_mut().remove(header::CONTENT_TYPE);
    } else {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
    }
    response
}

async fn bundle_endpoint(State(fake): State<Arc<Fake>>, request: Request) -> Response {
    fake.bundle_hits.fetch_add(1, Ordering::SeqCst);
    let headers = request.headers();
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    fake.seen.lock().unwrap().push((
        request.uri().query().unwrap_or("").to_owned(),
        text(header::ACCEPT),
    ));
    if fake.require_token {
        let current = format!("Bearer tok-{}", fake.issued.load(Ordering::SeqCst));
        if text(header::AUTHORIZATION) != current {
            fake.log
                .lock()
                .unwrap()
                .push((Instant::now(), "stale token".into()));
            return StatusCode::UNAUTHORIZED.into_response();
        }
    }
    let step = fake.script.lock().unwrap().pop_front();
    let step = step.unwrap_or_else(|| fake.otherwise.clone());
    fake.log
        .lock()
        .unwrap()
        .push((Instant::now(), format!("{step:?}")));
    match step {
        Step::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Step::RetryAfter(code, after) => (
            StatusCode::from_u16(code).unwrap(),
            [(header::RETRY_AFTER, after)],
        )
            .into_response(),
        Step::Slow(wait) => {
            tokio::time::sleep(wait).await;
            page("application/fhir+json", GOOD_PAGE)
        }
        Step::CutOff => {
            // A streamed body (no known length) under a Content-Length it does not fill: the
            // server sends the head and what there is (large enough to be flushed before the
            // end), then closes the connection mid-body.
            let mut partial = CUT_PAGE.as_bytes().to_vec();
            partial.resize(CUT_SENT, b' ');
            let stream = Body::from(partial).into_data_stream();
            let mut response = Response::new(Body::from_stream(stream));
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(2 * CUT_SENT));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/fhir+json"),
            );
            response
        }
        Step::Unauthorized => StatusCode::UNAUTHORIZED.into_response(),
        Step::Page(content_type, body) => page(content_type, body),
    }
}

/// Starts the fake server; returns it and a client configuration pointing at it.
async fn fake_server(
    script: Vec<Step>,
    otherwise: Step,
    with_auth: bool,
) -> (Arc<Fake>, PullConfig) {
    let fake = Fake::new(script, otherwise, with_auth);
    let app = Router::new()
        .route("/oauth/token", post(token_endpoint))
        .route("/fhir/Bundle", get(bundle_endpoint))
        .with_state(fake.clone());
    let addr = spawn_server(app).await;
    let mut cfg = PullConfig::new(format!("http://{addr}/fhir"));
    if with_auth {
        cfg.token_url = Some(format!("http://{addr}/oauth/token"));
        cfg.client_id = Some(CLIENT_ID.into());
        cfg.client_secret = Some(SecretString::from(CLIENT_SECRET));
    }
    cfg.timeout_secs = 1;
    cfg.backoff_initial_ms = 20;
    cfg.backoff_max_ms = 2_000;
    (fake, cfg)
}

/// Log output collected in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Pull client
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn pull_survives_every_fault_and_ends_with_the_good_page() {
    let script = vec![
        Step::Status(500),
        Step::RetryAfter(429, "1"),
        Step::Status(503),
        Step::Slow(Duration::from_secs(3)),
        Step::CutOff,
        Step::Unauthorized,
        Step::Page("application/fhir+json; charset=utf-8", GOOD_PAGE),
    ];
    let (fake, mut cfg) =
        fake_server(script, Step::Page("application/fhir+json", GOOD_PAGE), true).await;
    // Five faults use up exactly the default budget of five retries: the 401 replay is not one.
    cfg.max_retries = 5;
    let client = FhirPullClient::new(cfg).unwrap();
    let url = client.search_url(Some("2026-03-01T00:00:00+01:00"));

    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter("progression_gateway=trace")
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .finish();
    // tracing caches each callsite's interest for the whole process, computed on the thread
    // that first reaches it: a test thread with no subscriber would cache `never` for the
    // retry log line while this one captures it. A global subscriber that keeps every callsite
    // of interest (and writes nothing) closes that window.
    static ANCHOR: std::sync::Once = std::sync::Once::new();
    ANCHOR.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let (body, format) = client.get(&url).await.expect("the good page in the end");
    drop(guard);
    assert_eq!(&body[..], GOOD_PAGE.as_bytes());
    assert_eq!(format, Format::Json);
    assert_eq!(fake.bundle_hits(), 7);
    // One token at first, one more after the 401, none otherwise.
    assert_eq!(fake.token_hits(), 2);

    // The request after the 429 came no earlier than its Retry-After of one second.
    let log = fake.log.lock().unwrap().clone();
    let after_429 = log
        .iter()
        .position(|(_, s)| s.starts_with("RetryAfter(429"))
        .unwrap();
    let gap = log[after_429 + 1].0 - log[after_429].0;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 honoured only {gap:?}"
    );

    // The search as sent: inclusive cursor, page size and format; Accept matching.
    let (query, accept) = fake.seen.lock().unwrap()[0].clone();
    assert_eq!(
        query,
        "_lastUpdated=ge2026-03-01T00%3A00%3A00%2B01%3A00&_count=100&_format=json"
    );
    assert_eq!(accept, "application/fhir+json");

    // Each retry logged, without tokens or the secret.
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        logs.matches("Request failed, retrying.").count(),
        5,
        "{logs}"
    );
    assert!(
        logs.contains("attempt=2") && logs.contains("/fhir/Bundle"),
        "{logs}"
    );
    // The slow answer timed out; the cut-off body failed while reading.
    assert!(logs.contains("error=timed out"), "{logs}");
    assert!(logs.contains("error=reading the body failed"), "{logs}");
    assert!(
        !logs.contains("tok-") && !logs.contains(CLIENT_SECRET),
        "{logs}"
    );

    // The cached token serves the next request: no third token request.
    let (body, _) = client.get(&url).await.unwrap();
    assert_eq!(&body[..], GOOD_PAGE.as_bytes());
    assert_eq!(fake.token_hits(), 2);
    assert_eq!(fake.bundle_hits(), 8);
}

#[tokio::test]
async fn pull_gives_up_after_max_retries_consecutive_500s() {
    let (fake, mut cfg) = fake_server(vec![], Step::Status(500), true).await;
    cfg.max_retries = 3;
    let client = FhirPullClient::new(cfg).unwrap();
    match client.get(&client.search_url(None)).await {
        Err(PullError::RetriesExhausted { attempts, last }) => {
            assert_eq!(attempts, 4);
            assert!(last.contains("500"), "{last}");
        }
        other => panic!("expected RetriesExhausted, got {other:?}"),
    }
    assert_eq!(fake.bundle_hits(), 4);
    assert_eq!(fake.token_hits(), 1);
}

#[tokio::test]
async fn pull_caps_retry_after_at_backoff_max() {
    let (fake, mut cfg) = fake_server(
        vec![Step::RetryAfter(503, "3600")],
        Step::Page("application/fhir+json", GOOD_PAGE),
        false,
    )
    .await;
    cfg.backoff_max_ms = 100;
    let client = FhirPullClient::new(cfg).unwrap();
    let started = Instant::now();
    client.get(&client.search_url(None)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(fake.bundle_hits(), 2);
}

#[tokio::test]
async fn pull_bad_credentials_are_an_auth_error_without_the_secret() {
    let (fake, mut cfg) =
        fake_server(vec![], Step::Page("application/fhir+json", GOOD_PAGE), true).await;
    let token_url = cfg.token_url.clone().unwrap();
    let wrong = "Wrong-Secret-Do-Not-Print-9";
    cfg.client_secret = Some(SecretString::from(wrong));
    let client = FhirPullClient::new(cfg).unwrap();
    let err = client.get(&client.search_url(None)).await.unwrap_err();
    let shown = err.to_string();
    let debug = format!("{err:?}");
    assert!(matches!(err, PullError::Auth { .. }), "{debug}");
    assert!(shown.contains(&token_url), "{shown}");
    assert!(shown.contains("invalid_client"), "{shown}");
    for text in [&shown, &debug, &format!("{client:?}")] {
        assert!(
            !text.contains(wrong) && !text.contains(CLIENT_SECRET),
            "{text}"
        );
    }
    // Not retried, and the FHIR server never asked.
    assert_eq!(fake.token_hits(), 1);
    assert_eq!(fake.bundle_hits(), 0);
}

#[tokio::test]
async fn pull_a_second_401_after_a_fresh_token_is_an_auth_error() {
    let (fake, cfg) = fake_server(vec![], Step::Unauthorized, true).await;
    let client = FhirPullClient::new(cfg).unwrap();
    let err = client.get(&client.search_url(None)).await.unwrap_err();
    assert!(matches!(err, PullError::Auth { .. }), "{err:?}");
    assert_eq!(fake.token_hits(), 2);
    assert_eq!(fake.bundle_hits(), 2);
}

#[tokio::test]
async fn pull_other_4xx_is_not_retried() {
    let (fake, cfg) = fake_server(vec![], Step::Status(404), false).await;
    let client = FhirPullClient::new(cfg).unwrap();
    match client.get(&client.search_url(None)).await {
        Err(PullError::Http { status: 404, url }) => assert!(url.contains("/fhir/Bundle"), "{url}"),
        other => panic!("expected Http 404, got {other:?}"),
    }
    assert_eq!(fake.bundle_hits(), 1);
}

#[tokio::test]
async fn pull_a_page_above_max_page_bytes_fails_at_once_without_reading_on() {
    let (fake, mut cfg) = fake_server(
        vec![],
        Step::Page("application/fhir+json", GOOD_PAGE),
        false,
    )
    .await;
    cfg.max_page_bytes = GOOD_PAGE.len() as u64 - 1;
    let client = FhirPullClient::new(cfg.clone()).unwrap();
    match client.get(&client.search_url(None)).await {
        Err(e @ PullError::TooLarge { .. }) => {
            let text = e.to_string();
            assert!(text.contains("max_page_bytes"), "{text}");
            assert!(
                text.contains(&format!("{} bytes", GOOD_PAGE.len() - 1)),
                "{text}"
            );
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(fake.bundle_hits(), 1, "not retried");
    cfg.max_page_bytes = GOOD_PAGE.len() as u64;
    let client = FhirPullClient::new(cfg).unwrap();
    assert!(client.get(&client.search_url(None)).await.is_ok());
}

#[tokio::test]
async fn pull_get_checked_retries_a_page_that_fails_the_check() {
    let (fake, cfg) = fake_server(
        vec![
            Step::Page("application/fhir+json", CUT_PAGE),
            Step::Page("application/fhir+json", GOOD_PAGE),
        ],
        Step::Status(500),
        true,
    )
    .await;
    let client = FhirPullClient::new(cfg).unwrap();
    let checks = AtomicUsize::new(0);
    let value = client
        .get_checked(&client.search_url(None), |body, format| {
            checks.fetch_add(1, Ordering::SeqCst);
            assert_eq!(format, Format::Json);
            serde_json::from_slice::<serde_json::Value>(body)
        })
        .await
        .unwrap();
    assert_eq!(value["resourceType"], "Bundle");
    assert_eq!(checks.load(Ordering::SeqCst), 2);
    assert_eq!(fake.bundle_hits(), 2);

    // A page that never passes uses up the budget like any other failure.
    let (fake, mut cfg) =
        fake_server(vec![], Step::Page("application/fhir+json", CUT_PAGE), false).await;
    cfg.max_retries = 2;
    let client = FhirPullClient::new(cfg).unwrap();
    let err = client
        .get_checked(&client.search_url(None), |body, _| {
            serde_json::from_slice::<serde_json::Value>(body)
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, PullError::RetriesExhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert_eq!(fake.bundle_hits(), 3);
}

#[tokio::test]
async fn pull_format_from_content_type_else_sniffed_else_configured() {
    let (_fake, mut cfg) = fake_server(
        vec![
            Step::Page(
                "application/fhir+xml",
                "<Bundle xmlns=\"http://hl7.org/fhir\"/>",
            ),
            Step::Page("", "  <Bundle xmlns=\"http://hl7.org/fhir\"/>"),
            Step::Page("", "{}"),
            Step::Page("", "?"),
        ],
        Step::Status(404),
        false,
    )
    .await;
    cfg.format = Format::Xml;
    let client = FhirPullClient::new(cfg).unwrap();
    let url = client.search_url(None);
    assert!(url.ends_with("_format=xml"), "{url}");
    let mut formats = Vec::new();
    for _ in 0..4 {
        formats.push(client.get(&url).await.unwrap().1);
    }
    assert_eq!(
        formats,
        [Format::Xml, Format::Xml, Format::Json, Format::Xml]
    );
}

#[tokio::test]
async fn pull_refuses_next_links_to_another_server() {
    let (fake, cfg) = fake_server(vec![], Step::Status(500), true).await;
    let client = FhirPullClient::new(cfg).unwrap();
    let err = client
        .get("http://127.0.0.2:9/fhir/Bundle?page=2")
        .await
        .unwrap_err();
    assert!(matches!(err, PullError::Invalid(_)), "{err:?}");
    assert_eq!(fake.token_hits(), 0);
}

// ---------------------------------------------------------------------------------------------
// Push endpoint
// ---------------------------------------------------------------------------------------------

const PUSH_TOKEN: &str = "push-token-0123456789";

#[derive(Clone, Default)]
struct TestSink {
    got: Arc<Mutex<Vec<(Bytes, Format)>>>,
    unavailable: Arc<AtomicBool>,
}

impl BundleSink for TestSink {
    async fn accept(&self, body: Bytes, format: Format) -> Result<Accepted, Refusal> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(Refusal::Unavailable {
                reason: "database is down (test)".into(),
            });
        }
        if body.windows(3).any(|w| w == b"BAD") {
            return Err(Refusal::Invalid {
                issues: vec![
                    "Bundle 1: Encounter 7f0c: period.start is missing".into(),
                    "Bundle 2: CarePlan 91ab: unknown code \"BAD\" <x> & y".into(),
                ],
            });
        }
        self.got.lock().unwrap().push((body, format));
        Ok(Accepted {
            bundles: 1,
            stored: 3,
            unchanged: 2,
        })
    }
}

async fn push_server(max_body_bytes: usize) -> (TestSink, String) {
    let sink = TestSink::default();
    let cfg = PushConfig {
        bearer_token: SecretString::from(PUSH_TOKEN),
        max_body_bytes,
        max_in_flight: fhir_push::DEFAULT_MAX_IN_FLIGHT,
    };
    let addr = spawn_server(fhir_push::router(sink.clone(), cfg)).await;
    (sink, format!("http://{addr}/fhir/Bundle"))
}

/// Status, headers and body as JSON (asserting the FHIR JSON content type).
async fn json_answer(response: reqwest::Response) -> (StatusCode, HeaderMap, serde_json::Value) {
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let mut headers = HeaderMap::new();
    for (k, v) in response.headers() {
        headers.insert(
            header::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
            HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json"),
        "{headers:?}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    (status, headers, body)
}

fn issue_codes(outcome: &serde_json::Value) -> Vec<(String, String)> {
    outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["severity"].as_str().unwrap().to_owned(),
                i["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Root local name, whether every element is in the FHIR namespace, and the `diagnostics`
/// values, read with quick-xml's namespace-aware reader (fails on malformed XML).
fn read_outcome_xml(xml: &[u8]) -> (String, bool, Vec<String>, Vec<String>) {
    let mut reader = NsReader::from_reader(xml);
    let mut buf = Vec::new();
    let mut root = None;
    let mut all_fhir = true;
    let mut diagnostics = Vec::new();
    let mut codes = Vec::new();
    loop {
        match reader
            .read_resolved_event_into(&mut buf)
            .expect("well-formed XML")
        {
            (ns, Event::Start(e)) | (ns, Event::Empty(e)) => {
                all_fhir &=
                    matches!(ns, ResolveResult::Bound(n) if n.as_ref() == "http://hl7.org/fhir");
                let name = e.local_name().as_ref().to_owned();
                root.get_or_insert_with(|| name.clone());
                let value = || {
                    e.try_get_attribute("value")
                        .unwrap()
                        .unwrap()
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .unwrap()
                        .into_owned()
                };
                match name.as_str() {
                    "diagnostics" => diagnostics.push(value()),
                    "code" => codes.push(value()),
                    _ => {}
                }
            }
            (_, Event::Eof) => break,
            _ => {}
        }
        buf.clear();
    }
    (root.unwrap_or_default(), all_fhir, diagnostics, codes)
}

#[tokio::test]
async fn push_requires_the_bearer_token() {
    let (sink, url) = push_server(1 << 20).await;
    let http = reqwest::Client::new();
    for auth in [
        None,
        Some("Bearer wrong-token"),
        Some("Basic cHVzaDp0b2tlbg=="),
    ] {
        let mut request = http
            .post(&url)
            .header("content-type", "application/fhir+json")
            .body(GOOD_PAGE);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let (status, headers, body) = json_answer(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(
            headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{headers:?}"
        );
        assert_eq!(issue_codes(&body), [("error".into(), "login".into())]);
    }
    assert!(sink.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn push_stores_the_exact_bytes_and_answers_200_with_a_summary() {
    let (sink, url) = push_server(1 << 20).await;
    let http = reqwest::Client::new();

    let response = http
        .post(&url)
        .bearer_auth(PUSH_TOKEN)
        .header("content-type", "application/fhir+json; charset=utf-8")
        .body(GOOD_PAGE)
        .send()
        .await
        .unwrap();
    let (status, _, body) = json_answer(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        issue_codes(&body),
        [("information".into(), "informational".into())]
    );
    let summary = body["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(
        summary.contains("1 bundle")
            && summary.contains("3 record")
            && summary.contains("2 unchanged"),
        "{summary}"
    );

    // XML without a Content-Type is sniffed, and answered in XML.
    let xml = "\n<Bundle xmlns=\"http://hl7.org/fhir\"><type value=\"collection\"/></Bundle>";
    let response = http
        .post(&url)
        .bearer_auth(PUSH_TOKEN)
        .body(xml)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+xml")
    );
    let (root, all_fhir, diagnostics, _) = read_outcome_xml(&response.bytes().await.unwrap());
    assert_eq!(root, "OperationOutcome");
    assert!(all_fhir);
    assert_eq!(diagnostics.len(), 1);

    let got = sink.got.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            (Bytes::from_static(GOOD_PAGE.as_bytes()), Format::Json),
            (Bytes::from_static(xml.as_bytes()), Format::Xml),
        ]
    );
}

#[tokio::test]
async fn push_invalid_is_422_with_one_issue_per_problem_in_json_and_xml() {
    let (sink, url) = push_server(1 << 20).await;
    let http = reqwest::Client::new();
    let bad = r#"{"resourceType":"Bundle","type":"BAD"}"#;

    let response = http
        .post(&url)
        .bearer_auth(PUSH_TOKEN)
        .header("content-type", "application/fhir+json")
        .body(bad)
        .send()
        .await
        .unwrap();
    let (status, _, body) = json_answer(response).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        issue_codes(&body),
        [
            ("error".into(), "invalid".into()),
            ("error".into(), "invalid".into())
        ]
    );
    assert_eq!(
        body["issue"][1]["diagnostics"],
        "Bundle 2: CarePlan 91ab: unknown code \"BAD\" <x> & y"
    );

    // The same refusal, asked for in XML.
    let response = http
        .post(&url)
        .bearer_auth(PUSH_TOKEN)
        .header("content-type", "application/fhir+json")
        .header("accept", "application/fhir+xml")
        .body(bad)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 422);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+xml")
    );
    let (root, all_fhir, diagnostics, codes) = read_outcome_xml(&response.bytes().await.unwrap());
    assert_eq!(root, "OperationOutcome");
    assert!(all_fhir, "every element in http://hl7.org/fhir");
    assert_eq!(codes, ["invalid", "invalid"]);
    assert_eq!(
        diagnostics,
        [
            "Bundle 1: Encounter 7f0c: period.start is missing",
            "Bundle 2: CarePlan 91ab: unknown code \"BAD\" <x> & y",
        ]
    );
    assert!(sink.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn push_unavailable_is_503_with_retry_after() {
    let (sink, url) = push_server(1 << 20).await;
    sink.unavailable.store(true, Ordering::SeqCst);
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(PUSH_TOKEN)
        .header("content-type", "application/fhir+json")
        .body(GOOD_PAGE)
        .send()
        .await
        .unwrap();
    let (status, headers, body) = json_answer(response).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers[header::RETRY_AFTER], "30");
    assert_eq!(issue_codes(&body), [("error".into(), "transient".into())]);
    // The internal reason is logged, not sent.
    assert!(!body.to_string().contains("database"), "{body}");
}

#[tokio::test]
async fn push_refuses_text_plain_with_415() {
    let (sink, url) = push_server(1 << 20).await;
    let http = reqwest::Client::new();
    let response = http
        .post(&url)
        .bearer_auth(PUSH_TOKEN)
        .header("content-type", "text/plain")
        .body(GOOD_PAGE)
        .send()
        .await
        .unwrap();
    let (status, _, body) = json_answer(response).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        issue_codes(&body),
        [("error".into(), "not-supported".into())]
    );

    // No Content-Type and a body that is neither JSON nor XML.
    let response = http
        .post(&url)
        .bearer_auth(PUSH_TOKEN)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 415);
    assert!(sink.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn push_refuses_too_large_bodies_with_413() {
    let limit = 1024;
    let (sink, url) = push_server(limit).await;
    let big = format!(
        "{{\"resourceType\":\"Bundle\",\"pad\":\"{}\"}}",
        "x".repeat(2 * limit)
    );

    // With a Content-Length.
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(PUSH_TOKEN)
        .header("content-type", "application/fhir+json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    let (status, _, body) = json_answer(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(issue_codes(&body), [("error".into(), "too-long".into())]);

    // Chunked, without a length: counted while reading.
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/fhir/Bundle")
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut request = format!(
        "POST /fhir/Bundle HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {PUSH_TOKEN}\r\n\
         Content-Type: application/fhir+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    for chunk in big.as_bytes().chunks(700) {
        request.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            std::str::from_utf8(chunk).unwrap()
        ));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too-long"), "{answer}");

    // Just under the limit is fine.
    let fits = format!(
        "{{\"resourceType\":\"Bundle\",\"pad\":\"{}\"}}",
        "x".repeat(limit - 40)
    );
    assert!(fits.len() <= limit);
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(PUSH_TOKEN)
        .header("content-type", "application/fhir+json")
        .body(fits)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(sink.got.lock().unwrap().len(), 1);
}
