//! KMD Nexus: pull grants with their visitated minutes, suppliers as teams, FSIII conditions
//! and calendar visits with their performers, from the Nexus REST API.
//!
//! The wire shapes are in `deploy/nexus-wire.md`; every field path public code does not show
//! is configuration ([`NexusConfig`]).
//!
//! - [`NexusClient`]: OAuth2 client credentials with the refresh token Keycloak issues, a time
//!   limit per request, retries honouring `Retry-After`, a size limit per answer and a request
//!   rate limit (the HTTP side is the FHIR pull's client, asking for plain JSON).
//! - [`read`]: one patient's resources to records (pure).
//! - [`pull`]: root → the configured organisations → their patients (pages of at most 50) →
//!   each patient's preferences → the `CITIZEN_PATHWAY` view's tree (grants, conditions) and
//!   the `CITIZEN_CALENDAR` view's events in a window. Nexus has no change feed, so every pull
//!   reads every patient and stores only what changed since the last pull: a record equal to
//!   its latest stored version is not stored again; a changed one is stored as a new version at
//!   the pull's instant; a grant, condition or team span no longer there, and a visit of the
//!   window no longer delivered, is withdrawn; a goal no longer there becomes inactive.
//!
//! Records are stored under the care system `nexus` ([`NEXUS_RECORDS`]): the same store and
//! ledger as KL Gateway's records. The CPR number is read, pseudonymised and dropped: it is in
//! no record, message or log; a professional is stored as a keyed pseudonym.

mod config;
pub mod read;

pub use config::{
    CalendarPaths, ConditionPaths, GRANTS_FILE, GRANTS_HEADER, GrantCodes, MAX_PAGE_SIZE,
    NexusConfig, PatientPaths, WorkflowStates,
};

use super::fhir_pull::{FhirPullClient, PullError};
use super::ingest::{ImportSummary, Ingestor};
use super::pull::PullRunError;
use crate::model::{Record, RecordKind, Versioned};
use chrono::{DateTime, Duration as Days, Utc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;

/// The care system every Nexus record is stored under.
pub const NEXUS_RECORDS: &str = "nexus";

/// Most entries of any list Nexus answers (organisations, pathway nodes, events) that the
/// gateway takes.
const MAX_LIST: usize = 100_000;

/// Patients whose versions are stored in one transaction at most (or `BATCH_VERSIONS`).
const FLUSH_PATIENTS: usize = 50;

/// A configured Nexus source: its settings and its grant-code mapping.
#[derive(Debug, Clone)]
pub struct NexusSettings {
    /// The settings.
    pub config: NexusConfig,
    /// `mappings/nexus_grants.csv` (or the configured file), read and checked.
    pub grant_codes: Arc<GrantCodes>,
}

/// A client for one Nexus instance. Cheap to clone.
#[derive(Clone)]
pub struct NexusClient {
    http: FhirPullClient,
    limiter: Arc<governor::DefaultDirectRateLimiter>,
    requests: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for NexusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexusClient").finish_non_exhaustive()
    }
}

impl NexusClient {
    /// Checks the settings and builds the client (no request yet).
    pub fn new(cfg: &NexusConfig) -> Result<Self, PullError> {
        if let Some((_, p)) = cfg.problems().into_iter().next() {
            return Err(PullError::Config(p));
        }
        let http = FhirPullClient::json_api(cfg.http(), "Nexus")?;
        let rate = NonZeroU32::new(cfg.requests_per_second).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            http,
            limiter: Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
                rate,
            ))),
            requests: Arc::default(),
        })
    }

    /// GETs a JSON document (within the rate limit); an answer that is not JSON (cut short)
    /// is fetched again like a failed request.
    pub async fn get(&self, url: &str) -> Result<Value, PullError> {
        self.limiter.until_ready().await;
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.http
            .get_checked(url, |body, _| serde_json::from_slice::<Value>(body))
            .await
    }
}

impl NexusClient {
    /// Documents asked for so far (retries not counted).
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The `href` of `_links.{rel}`.
fn link<'v>(v: &'v Value, rel: &str) -> Option<&'v str> {
    v.get("_links")?.get(rel)?.get("href")?.as_str()
}

fn need_link<'v>(v: &'v Value, rel: &str, what: &str) -> Result<&'v str, PullError> {
    link(v, rel).ok_or_else(|| PullError::Invalid(format!("{what} has no `{rel}` link")))
}

/// `url` with `key=value` added to its query.
fn with_query(url: &str, pairs: &[(&str, &str)]) -> Result<String, PullError> {
    let mut u = url::Url::parse(url).map_err(|e| PullError::Invalid(format!("a link: {e}")))?;
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    Ok(u.into())
}

fn array(v: Value, what: &str) -> Result<Vec<Value>, PullError> {
    match v {
        Value::Array(items) if items.len() <= MAX_LIST => Ok(items),
        Value::Array(_) => Err(PullError::Invalid(format!(
            "{what} has more than {MAX_LIST} entries"
        ))),
        _ => Err(PullError::Invalid(format!("{what} is not a JSON array"))),
    }
}

/// The patients of one organisation: every page of its list.
async fn patients_of(
    client: &NexusClient,
    org: &Value,
    org_id: i64,
    page_size: u32,
) -> Result<Vec<(String, String)>, PullError> {
    let what = format!("organisation {org_id}");
    let url = with_query(
        need_link(org, "patients", &what)?,
        &[("pageSize", &page_size.to_string())],
    )?;
    let list = client.get(&url).await?;
    let pages = list
        .get("pages")
        .and_then(Value::as_array)
        .ok_or_else(|| PullError::Invalid(format!("the patient list of {what} has no pages")))?;
    let mut out = Vec::new();
    for (n, page) in pages.iter().enumerate() {
        let content = need_link(page, "content", &format!("page {} of {what}", n + 1))?;
        for p in array(
            client.get(content).await?,
            &format!("page {} of {what}", n + 1),
        )? {
            let id = read::id_at(&p, "/id")
                .ok_or_else(|| PullError::Invalid(format!("a patient of {what} has no id")))?;
            let href = need_link(&p, "self", &format!("patient {id}"))?.to_owned();
            out.push((id, href));
        }
    }
    if let Some(total) = list.get("totalItems").and_then(Value::as_u64)
        && total != out.len() as u64
    {
        tracing::warn!(
            organisation = org_id,
            total,
            read = out.len(),
            "Nexus's patient list counted another number of patients than its pages hold."
        );
    }
    Ok(out)
}

/// Walks a pathway tree, collecting the referenced objects' links of grant and condition
/// leaves.
fn walk(node: &Value, leaf_type: &str, grants: &mut Vec<String>, conditions: &mut Vec<String>) {
    match node {
        Value::Array(items) => {
            for i in items {
                walk(i, leaf_type, grants, conditions);
            }
        }
        Value::Object(o) => {
            let t = o.get("type").and_then(Value::as_str).unwrap_or("");
            if (t == "basketGrantReference" || t == leaf_type)
                && let Some(href) = link(node, "referencedObject")
            {
                if t == "basketGrantReference" {
                    grants.push(href.to_owned());
                } else {
                    conditions.push(href.to_owned());
                }
            }
            if let Some(children) = o.get("children") {
                walk(children, leaf_type, grants, conditions);
            }
        }
        _ => {}
    }
}

/// Fetches what the gateway reads of one patient. `Ok(Err(reason))` refuses the patient: a
/// configured view it does not have (renamed in Nexus, mistyped here) would otherwise read as
/// "no grants, no visits" and withdraw everything stored of the patient.
async fn fetch_patient(
    client: &NexusClient,
    cfg: &NexusConfig,
    id: &str,
    href: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Result<read::PatientDocs, String>, PullError> {
    let what = format!("patient {id}");
    let patient = client.get(href).await?;
    let prefs = client
        .get(need_link(&patient, "patientPreferences", &what)?)
        .await?;
    let mut docs = read::PatientDocs {
        patient,
        ..Default::default()
    };
    let views = |kind: &str| {
        prefs
            .get(kind)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let pathway = views("CITIZEN_PATHWAY").into_iter().find(|v| {
        v.get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| n.trim_end().ends_with(cfg.pathway_view.trim()))
    });
    if let Some(view) = pathway {
        let tree = client
            .get(need_link(&view, "pathwayReferences", &what)?)
            .await?;
        let (mut grants, mut conditions) = (Vec::new(), Vec::new());
        walk(
            &tree,
            &cfg.conditions.leaf_type,
            &mut grants,
            &mut conditions,
        );
        let dedup = |v: &mut Vec<String>| {
            let mut seen = BTreeSet::new();
            v.retain(|h| seen.insert(h.clone()));
        };
        dedup(&mut grants);
        dedup(&mut conditions);
        for g in grants {
            docs.grants.push(client.get(&g).await?);
        }
        for c in conditions {
            docs.conditions.push(client.get(&c).await?);
        }
    } else {
        return Ok(Err(format!(
            "patient {id} has no CITIZEN_PATHWAY view named like `{}` (pathway_view); nothing of \
             the patient is read and what is stored stays",
            cfg.pathway_view
        )));
    }
    let calendar = views("CITIZEN_CALENDAR").into_iter().find(|v| {
        cfg.calendar_view.as_deref().is_none_or(|want| {
            v.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n == want)
        })
    });
    if let Some(view) = calendar {
        let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let url = with_query(
            need_link(&view, "events", &what)?,
            &[("from", &fmt(from)), ("to", &fmt(to))],
        )?;
        let answer = client.get(&url).await?;
        let events = answer.get("eventResources").cloned().ok_or_else(|| {
            PullError::Invalid(format!("the calendar of {what} has no eventResources"))
        })?;
        docs.events = array(events, &format!("the calendar of {what}"))?;
    } else {
        return Ok(Err(format!(
            "patient {id} has no CITIZEN_CALENDAR view{} (calendar_view); nothing of the patient \
             is read and what is stored stays",
            cfg.calendar_view
                .as_deref()
                .map(|v| format!(" named `{v}`"))
                .unwrap_or_default()
        )));
    }
    Ok(Ok(docs))
}

/// A record made comparable with its stored version: the instant of an assessment or goal read
/// now is the pull's, so it is taken from the stored version before comparing.
fn same(stored: &Record, fresh: &Record) -> bool {
    match (stored, fresh) {
        (Record::Assessment(a), Record::Assessment(b)) => {
            let mut b = b.clone();
            b.assessed_at = a.assessed_at;
            b.assessed_on = a.assessed_on;
            *a == b
        }
        (Record::Goal(a), Record::Goal(b)) => {
            let mut b = b.clone();
            b.set_on = a.set_on;
            *a == b
        }
        (a, b) => a == b,
    }
}

/// What [`changes`] found.
#[derive(Debug, Default)]
struct Changes {
    /// The versions to store.
    versions: Vec<Versioned>,
    /// Records equal to their latest stored version.
    unchanged: u64,
    /// Records no longer there, withdrawn.
    gone: u64,
}

/// The versions a patient's records add to what is stored: new and changed records, and
/// records no longer there withdrawn (goals made inactive; visits only within the window).
fn changes(
    stored: &[Versioned],
    fresh: Vec<(Record, bool)>,
    now: DateTime<Utc>,
    today: chrono::NaiveDate,
    window: (DateTime<Utc>, DateTime<Utc>),
) -> Changes {
    let mut latest: BTreeMap<(RecordKind, String), &Versioned> = BTreeMap::new();
    for v in stored.iter().filter(|v| v.source == NEXUS_RECORDS) {
        let k = (v.record.kind(), v.record.key());
        if latest.get(&k).is_none_or(|l| l.version_at <= v.version_at) {
            latest.insert(k, v);
        }
    }
    let version = |record: Record, withdrawn: bool| Versioned {
        source: NEXUS_RECORDS.to_owned(),
        version_at: now,
        withdrawn,
        record,
    };
    let mut out = Changes::default();
    let mut present = BTreeSet::new();
    for (record, withdrawn) in fresh {
        let k = (record.kind(), record.key());
        if !present.insert(k.clone()) {
            continue;
        }
        match latest.get(&k) {
            Some(l) if l.withdrawn == withdrawn && same(&l.record, &record) => out.unchanged += 1,
            _ => out.versions.push(version(record, withdrawn)),
        }
    }
    for (k, l) in latest {
        if present.contains(&k) || l.withdrawn {
            continue;
        }
        match &l.record {
            Record::Goal(g) if g.active => {
                let mut g = g.clone();
                g.active = false;
                g.set_on = today;
                out.versions.push(version(Record::Goal(g), false));
            }
            Record::Goal(_) | Record::Citizen(_) => {}
            Record::Visit(v) if v.start < window.0 || v.start >= window.1 => {}
            other => {
                out.gone += 1;
                out.versions.push(version(other.clone(), true));
            }
        }
    }
    out
}

/// Pulls every patient of the configured organisations once, storing what changed, at the
/// instant `now`. The first pull (no cursor stored) reads `history_days` of calendar, later
/// ones `calendar_days`. What was read is stored every 50 patients (or 5,000 versions), each
/// time in one transaction; the cursor (the pull's instant) is stored last, so a pull cut short
/// is simply pulled again: what it stored is found unchanged, the rest is stored.
pub async fn pull(
    ingestor: &Ingestor,
    settings: &NexusSettings,
    client: &NexusClient,
    now: DateTime<Utc>,
) -> Result<ImportSummary, PullRunError> {
    let cfg = &settings.config;
    let store = ingestor.store();
    let tz = ingestor.time_zone();
    let first = store.cursor(ingestor.source()).await?.is_none();
    let back = if first {
        cfg.history_days
    } else {
        cfg.calendar_days
    };
    let today = now.with_timezone(&tz).date_naive();
    let midnight = |d: chrono::NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .and_then(|t| t.and_local_timezone(tz).earliest())
            .map_or(now, |t| t.with_timezone(&Utc))
    };
    let window = (
        midnight(today - Days::days(i64::from(back))),
        midnight(today + Days::days(2)),
    );
    let root = client.get(&cfg.api_root).await?;
    let orgs = array(
        client
            .get(need_link(&root, "organizations", "the API root")?)
            .await?,
        "the organisations",
    )?;
    let mut batch = ingestor.batch();
    let mut patients: Vec<(String, String)> = Vec::new();
    let mut seen = BTreeSet::new();
    for org_id in &cfg.organisations {
        let Some(org) = orgs
            .iter()
            .find(|o| o.get("id").and_then(Value::as_i64) == Some(*org_id))
        else {
            batch.reject(
                format!("{} organisation {org_id}", ingestor.source()),
                format!("Nexus has no organisation {org_id}; its patients were not read"),
            );
            continue;
        };
        for (id, href) in patients_of(client, org, *org_id, cfg.page_size).await? {
            if seen.insert(id.clone()) {
                patients.push((id, href));
            }
        }
        if patients.len() > cfg.max_patients {
            return Err(PullError::Invalid(format!(
                "the organisations hold more than max_patients ({}) patients",
                cfg.max_patients
            ))
            .into());
        }
    }
    let ctx = read::ReadContext {
        cfg,
        grant_codes: &settings.grant_codes,
        key: ingestor.key(),
        mappings: ingestor.mappings(),
        now,
        today,
    };
    let mut citizens = HashSet::new();
    // Patients are fetched `concurrent_patients` at a time (within the rate limit), and read
    // and stored one after the other in list order.
    // (Owned items: a stream borrowing them would not be `Send` for every lifetime.)
    use futures_util::StreamExt;
    let shared = Arc::new(cfg.clone());
    let mut fetched = futures_util::stream::iter(patients.clone())
        .map(|(id, href)| {
            let (client, cfg) = (client.clone(), shared.clone());
            async move {
                let docs = fetch_patient(&client, &cfg, &id, &href, window.0, window.1).await;
                (id, docs)
            }
        })
        .boxed()
        .buffered(cfg.concurrent_patients.max(1));
    let started = std::time::Instant::now();
    let mut last_log = started;
    let mut done = 0usize;
    let mut unknown: BTreeMap<(String, &'static str), (u64, String)> = BTreeMap::new();
    tracing::info!(
        message = "Nexus pull started.",
        source = ingestor.source(),
        patients = patients.len(),
        calendar_from = %window.0,
    );
    while let Some((id, docs)) = fetched.next().await {
        done += 1;
        if last_log.elapsed() >= std::time::Duration::from_secs(60) {
            last_log = std::time::Instant::now();
            let per_s = done as f64 / started.elapsed().as_secs_f64().max(0.001);
            tracing::info!(
                message = "Nexus pull progress.",
                source = ingestor.source(),
                patients = done,
                of = patients.len(),
                requests = client.requests(),
                remaining_min = ((patients.len() - done) as f64 / per_s / 60.0).ceil() as u64,
            );
        }
        let origin = format!("{} patient {id}", ingestor.source());
        let docs = match docs? {
            Ok(docs) => docs,
            Err(refusal) => {
                tracing::warn!(message = "Nexus patient refused.", patient = %id, error = %refusal);
                batch.reject(origin, refusal);
                continue;
            }
        };
        let read = match read::read_patient(&docs, &ctx) {
            Ok(r) => r,
            Err(problem) => {
                tracing::warn!(message = "Nexus patient refused.", patient = %id, error = %problem);
                batch.reject(origin, problem);
                continue;
            }
        };
        for problem in &read.problems {
            tracing::warn!(message = "Nexus resource refused.", patient = %id, error = %problem);
            batch.reject(origin.clone(), problem.clone());
        }
        for u in &read.unknown {
            unknown
                .entry((u.code.clone(), u.kind))
                .or_insert((0, u.resource.clone()))
                .0 += 1;
        }
        let tally = batch.tally();
        tally.add_counts(&read.counts);
        tally.add_unknown(&read.unknown);
        tally.add_citizen(&read.citizen);
        if !citizens.insert(read.citizen.clone()) {
            batch.reject(
                origin,
                format!(
                    "patient {id} has the CPR number of a patient read before; it is not read twice"
                ),
            );
            continue;
        }
        let stored = store.versions(&read.citizen).await?;
        let found = changes(&stored, read.records, now, today, window);
        let tally = batch.tally();
        tally.add_unchanged(found.unchanged);
        tally.add_counts(&crate::sources::klgateway::Counts {
            withdrawn: found.gone,
            ..Default::default()
        });
        let outcome = super::ingest::ReadOutcome {
            versions: found.versions,
            rows: Vec::new(),
            problems: Vec::new(),
            last_updated: None,
            next: None,
        };
        batch.push(outcome, None).await?;
        // Stored every `FLUSH_PATIENTS` patients too, so a pull cut off after hours keeps most
        // of what it read (the next pull stores only the rest).
        if done.is_multiple_of(FLUSH_PATIENTS) {
            batch.flush(None).await?;
        }
    }
    let cursor = now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    batch.flush(Some(&cursor)).await?;
    for ((code, kind), (count, example)) in &unknown {
        tracing::warn!(
            message = "Nexus code the mappings do not know: stored and reported.",
            source = ingestor.source(),
            kind,
            code = %crate::domain::shown(code),
            count,
            example = %example,
        );
    }
    tracing::info!(
        message = "Nexus pull done.",
        source = ingestor.source(),
        patients = patients.len(),
        requests = client.requests(),
        elapsed_s = started.elapsed().as_secs(),
    );
    Ok(batch.finish().await?)
}
