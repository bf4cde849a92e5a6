//! The cockpit's API: the figures, the courses behind a figure, a course explained, the
//! courses ending soon and the data-quality findings, as JSON (and CSV where a table is
//! useful). Every answer holds only the principal's scope and no citizen.

use super::{CockpitState, Filter, Number, Principal, csv_text, rows};
use crate::model::figures::{self, CATALOGUE, Cell, CourseFacts, Scope};
use crate::pipeline::Snapshot;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A JSON error answer.
pub(super) fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

/// 401 with a `WWW-Authenticate` challenge.
pub(super) fn unauthorized() -> Response {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "Log ind: en gyldig adgangsnøgle (Authorization: Bearer) eller log-ind via kommunens portal kræves.",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"cockpit\""),
    );
    r
}

fn forbidden() -> Response {
    error(StatusCode::FORBIDDEN, "Du har ikke adgang til dette team.")
}

/// The principal, or the 401 answer.
fn who<'s>(state: &'s CockpitState, headers: &HeaderMap) -> Result<&'s Principal, Response> {
    state.principal(headers).ok_or_else(unauthorized)
}

/// The snapshot of a period, or a 400/503 answer.
async fn snapshot_of(
    state: &CockpitState,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<Arc<Snapshot>, Response> {
    let (from, to) = state
        .period(from, to)
        .map_err(|m| error(StatusCode::BAD_REQUEST, m))?;
    state.snapshot(from, to).await.map_err(|e| {
        tracing::warn!(message = "Cockpit figures could not be computed.", error = %format!("{e:#}"));
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Tallene kan ikke beregnes lige nu.",
        )
    })
}

/// The scope a `team` parameter names, checked against the principal; `None` when not given.
fn scope_param(
    state: &CockpitState,
    who: &Principal,
    team: Option<&str>,
    path: &str,
) -> Result<Option<Scope>, Response> {
    let Some(team) = team else { return Ok(None) };
    let scope = state.scope(team).map_err(|(s, m)| error(s, m))?;
    if !state.allowed(who, &scope, path) {
        return Err(forbidden());
    }
    Ok(Some(scope))
}

pub(super) async fn catalogue(State(state): State<CockpitState>, headers: HeaderMap) -> Response {
    if let Err(r) = who(&state, &headers) {
        return r;
    }
    axum::Json(CATALOGUE).into_response()
}

/// The query of `/cockpit/api/figures`.
#[derive(Debug, Deserialize)]
pub(super) struct FiguresQuery {
    /// First day (default: 1 January of `to`'s year).
    from: Option<NaiveDate>,
    /// The as-of date (default: yesterday in the municipality's time zone).
    to: Option<NaiveDate>,
    /// A team id, `unassigned` or `municipality`.
    team: Option<String>,
    /// `care`, `nursing` or `all`.
    track: Option<String>,
    /// A figure id.
    figure: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
}

pub(super) async fn figures(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Query(q): Query<FiguresQuery>,
) -> Response {
    let who = match who(&state, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    if let Err(r) = scope_param(&state, who, q.team.as_deref(), "/cockpit/api/figures") {
        return r;
    }
    let filter = Filter {
        team: q.team.clone(),
        track: q.track.clone(),
        figure: q.figure.clone(),
    };
    if let Err(e) = filter.check() {
        return error(StatusCode::BAD_REQUEST, &e);
    }
    let snap = match snapshot_of(&state, q.from, q.to).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let rows: Vec<super::FigureRow> = rows(&snap.figures, &filter, Number::Plain)
        .into_iter()
        .filter(|(scope, _)| who.sees.scope(scope))
        .map(|(_, r)| r)
        .collect();
    respond(q.format.as_deref(), &rows, |rows| csv_text(rows, b','))
}

/// JSON, or CSV by `to_csv`.
fn respond<T: Serialize>(
    format: Option<&str>,
    rows: &[T],
    to_csv: impl Fn(&[T]) -> Result<String, csv::Error>,
) -> Response {
    match format {
        None | Some("json") => axum::Json(rows).into_response(),
        Some("csv") => match to_csv(rows) {
            Ok(text) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response(),
            Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "CSV kunne ikke skrives"),
        },
        Some(_) => error(StatusCode::BAD_REQUEST, "format er json eller csv"),
    }
}

/// The query of `/cockpit/api/courses`.
#[derive(Debug, Deserialize)]
pub(super) struct CoursesQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    /// A team id, `unassigned` or `municipality` (required).
    team: Option<String>,
    /// `YYYY-MM` (required).
    month: Option<String>,
    /// `care`, `nursing` or `all` (default).
    track: Option<String>,
    /// A figure id (required).
    figure: Option<String>,
    format: Option<String>,
}

/// One course behind a figure.
#[derive(Debug, Clone, Serialize)]
pub struct CourseBehind {
    /// Whether it counts in the figure (its numerator); `false`: only in its denominator.
    pub counts: bool,
    /// The course.
    #[serde(flatten)]
    pub course: CourseFacts,
}

/// The cell a drill-down asks for, checked: scope, month, track, figure.
pub(super) fn drill_cell(
    state: &CockpitState,
    who: &Principal,
    team: Option<&str>,
    month: Option<&str>,
    track: Option<&str>,
    figure: Option<&str>,
    path: &str,
) -> Result<(Cell, &'static figures::FigureDef), Response> {
    let bad = |m: &str| error(StatusCode::BAD_REQUEST, m);
    let scope = scope_param(state, who, team, path)?.ok_or_else(|| bad("team mangler"))?;
    let month = month
        .and_then(crate::sources::actuals::parse_month)
        .ok_or_else(|| bad("month skal være YYYY-MM"))?;
    let track = match track.unwrap_or("all") {
        "all" => None,
        t => Some(
            crate::domain::Track::parse(t).map_err(|_| bad("track er care, nursing eller all"))?,
        ),
    };
    let def = figure
        .and_then(figures::definition)
        .ok_or_else(|| bad("figure er ikke et nøgletal i kataloget"))?;
    Ok((
        Cell {
            scope,
            month,
            track,
        },
        def,
    ))
}

/// The courses behind figure `id` in `cell`.
pub(super) fn behind(snap: &Snapshot, id: &str, cell: &Cell) -> Vec<CourseBehind> {
    snap.courses
        .iter()
        .filter_map(|c| {
            c.behind(id, cell).map(|counts| CourseBehind {
                counts,
                course: c.clone(),
            })
        })
        .collect()
}

pub(super) async fn courses(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Query(q): Query<CoursesQuery>,
) -> Response {
    let who = match who(&state, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (cell, def) = match drill_cell(
        &state,
        who,
        q.team.as_deref(),
        q.month.as_deref(),
        q.track.as_deref(),
        q.figure.as_deref(),
        "/cockpit/api/courses",
    ) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let snap = match snapshot_of(&state, q.from, q.to).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let list = behind(&snap, def.id, &cell);
    respond(q.format.as_deref(), &list, courses_csv)
}

fn courses_csv(list: &[CourseBehind]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "course",
        "counts",
        "track",
        "kind",
        "need_score",
        "group",
        "start",
        "planned_end",
        "end",
        "end_reason",
        "revision",
    ])?;
    for c in list {
        let f = &c.course;
        w.write_record([
            f.id.0.as_str(),
            if c.counts { "true" } else { "false" },
            f.track.as_str(),
            f.kind.as_str(),
            &f.need_score.to_string(),
            &f.group.map(|g| g.to_string()).unwrap_or_default(),
            &f.start.to_string(),
            &f.planned_end.to_string(),
            &f.end.to_string(),
            f.end_reason,
            &f.revision.to_string(),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 text"))
}

/// A course as the cockpit explains it: its facts in the period, and its recorded decision,
/// evidence and supersessions (none while it is not recorded yet). No citizen.
#[derive(Debug, Clone, Serialize)]
pub struct CourseView {
    /// What it contributes to the period's figures.
    pub facts: CourseFacts,
    /// Every recorded revision, oldest first; empty: not recorded yet (as it would be decided).
    pub revisions: Vec<RevisionView>,
}

/// One recorded revision of a course, without its citizen.
#[derive(Debug, Clone, Serialize)]
pub struct RevisionView {
    /// 1 for the first decision.
    pub revision: u32,
    /// `decided`, `end_moved`, `decided_afresh`, `repriced`, `cancelled`.
    pub change: &'static str,
    /// Why, for people.
    pub reason: String,
    /// The as-of date of the run that recorded it.
    pub recorded_on: NaiveDate,
    /// The decision in force from it (`None`: cancelled).
    pub decision: Option<DecisionView>,
    /// Last paid day.
    pub end: Option<NaiveDate>,
    /// Why it ends then.
    pub end_reason: Option<&'static str>,
}

/// A decision without its citizen.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionView {
    /// The kind.
    pub kind: crate::domain::CourseKind,
    /// Need score on the start day.
    pub need_score: u32,
    /// Need group.
    pub group: Option<u8>,
    /// The tariff table (`care/2027`) and its content hash.
    pub table: crate::model::TableRef,
    /// The locked tariff or the hourly rate.
    pub tariff: crate::model::DailyTariff,
    /// Last day by the course length.
    pub planned_end: NaiveDate,
    /// The rule that fired.
    pub rule: String,
    /// The record versions it read.
    pub evidence: Vec<crate::model::Evidence>,
}

/// The course `id` as the principal may see it: in the default period's snapshot (or the
/// given one), touching one of the principal's scopes. Err: 404 or 403.
pub(super) async fn course_view(
    state: &CockpitState,
    who: &Principal,
    id: &str,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    path: &str,
) -> Result<CourseView, Response> {
    let snap = snapshot_of(state, from, to).await?;
    let Some(facts) = snap.courses.iter().find(|c| c.id.0 == id) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "Forløbet findes ikke i perioden.",
        ));
    };
    let visible = state.scopes_of(who).iter().any(|s| facts.touches(s));
    if !visible {
        let _ = state.allowed(who, &Scope::Municipality, path);
        return Err(forbidden());
    }
    let rows = state.store.ledger_of_course(id).await.map_err(|e| {
        tracing::warn!(message = "A course's ledger could not be read.", error = %e);
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Forløbet kan ikke læses lige nu.",
        )
    })?;
    let revisions = rows
        .into_iter()
        .map(|r| RevisionView {
            revision: r.entry.revision,
            change: r.entry.change.as_str(),
            reason: r.entry.change.to_string(),
            recorded_on: r.recorded_on,
            decision: r.entry.decision.map(|d| DecisionView {
                kind: d.kind,
                need_score: d.need_score,
                group: d.group,
                table: d.table,
                tariff: d.tariff,
                planned_end: d.planned_end,
                rule: d.rule,
                evidence: d.evidence,
            }),
            end: r.entry.end,
            end_reason: r.entry.end_reason.map(|e| e.as_str()),
        })
        .collect();
    Ok(CourseView {
        facts: facts.clone(),
        revisions,
    })
}

/// The period of a request.
#[derive(Debug, Deserialize)]
pub(super) struct PeriodQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    team: Option<String>,
}

pub(super) async fn course(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PeriodQuery>,
) -> Response {
    let who = match who(&state, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    match course_view(&state, who, &id, q.from, q.to, "/cockpit/api/course").await {
        Ok(v) => axum::Json(v).into_response(),
        Err(r) => r,
    }
}

/// A course ending soon.
#[derive(Debug, Clone, Serialize)]
pub struct Ending {
    /// Days from the as-of date to its last day (1-14).
    pub days_left: i64,
    /// The team it runs in on the as-of date (`None`: without a team).
    pub team: Option<crate::domain::TeamId>,
    /// The course.
    #[serde(flatten)]
    pub course: CourseFacts,
}

/// The courses running on the as-of date, in `scope`, whose last day is within 14 days after.
pub(super) fn ending(snap: &Snapshot, scope: &Scope) -> Vec<Ending> {
    let mut out: Vec<Ending> = snap
        .courses
        .iter()
        .filter_map(|c| {
            let team = c.running.as_ref()?;
            let days_left = (c.end - snap.to).num_days();
            ((1..=14).contains(&days_left) && scope.holds(team.as_ref())).then(|| Ending {
                days_left,
                team: team.clone(),
                course: c.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.course.end, &a.course.id).cmp(&(b.course.end, &b.course.id)));
    out
}

/// The principal's scopes (the one `team` names, or all theirs) and the period's snapshot,
/// or the answer refusing the request.
async fn scoped_snapshot(
    state: &CockpitState,
    headers: &HeaderMap,
    q: &PeriodQuery,
    path: &str,
) -> Result<(Vec<Scope>, std::sync::Arc<Snapshot>), Response> {
    let who = who(state, headers)?;
    let scopes = match scope_param(state, who, q.team.as_deref(), path)? {
        Some(s) => vec![s],
        None => state.scopes_of(who),
    };
    let snap = snapshot_of(state, q.from, q.to).await?;
    Ok((scopes, snap))
}

pub(super) async fn ending_api(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Query(q): Query<PeriodQuery>,
) -> Response {
    const PATH: &str = "/cockpit/api/ending";
    let (scopes, snap) = match scoped_snapshot(&state, &headers, &q, PATH).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let list: Vec<Ending> = scopes
        .iter()
        .filter(|s| **s != Scope::Municipality || scopes.len() == 1)
        .flat_map(|s| ending(&snap, s))
        .collect();
    axum::Json(list).into_response()
}

/// A data-quality finding with what to do about it.
#[derive(Debug, Clone, Serialize)]
pub struct Advice {
    /// The finding's kind.
    pub kind: &'static str,
    /// Whose it is (`municipality`, `unassigned` or a team id).
    pub scope: String,
    /// What it is about (a code, a table, a SOR code).
    pub detail: String,
    /// How many.
    pub count: u64,
    /// What it means, in Danish.
    pub what: String,
    /// What to do about it, in Danish.
    pub todo: String,
}

/// The findings a scope shows: its own (the municipality's: all).
pub(super) fn advice(snap: &Snapshot, scope: &Scope) -> Vec<Advice> {
    snap.findings
        .iter()
        .filter(|f| *scope == Scope::Municipality || f.key.scope == *scope)
        .map(|f| {
            let (what, todo) = super::page::explain_finding(&f.key, f.count);
            Advice {
                kind: f.key.kind,
                scope: f.key.scope.name(),
                detail: f.key.detail.clone(),
                count: f.count,
                what,
                todo,
            }
        })
        .collect()
}

pub(super) async fn findings_api(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Query(q): Query<PeriodQuery>,
) -> Response {
    const PATH: &str = "/cockpit/api/findings";
    let (scopes, snap) = match scoped_snapshot(&state, &headers, &q, PATH).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let list: Vec<Advice> = if scopes.contains(&Scope::Municipality) {
        advice(&snap, &Scope::Municipality)
    } else {
        scopes.iter().flat_map(|s| advice(&snap, s)).collect()
    };
    axum::Json(list).into_response()
}
