//! The steering cockpit's HTTP side: who may see which team, and the figures API, merged into
//! the operations server when `[cockpit]` is configured.
//!
//! | Endpoint | Answer |
//! |---|---|
//! | `GET /cockpit/api/catalogue` | 200, JSON: every figure's id, Danish name, definition, numerator, denominator, level |
//! | `GET /cockpit/api/figures?from=&to=&team=&track=&figure=&format=json\|csv` | 200, the figures the principal may see; 403 for a team outside its scope; 404 for a team not in `teams.toml` |
//!
//! A request names its principal by `Authorization: Bearer <token>` (the configuration holds
//! only each token's SHA-256, compared in constant time) or, behind the municipality's
//! single-sign-on reverse proxy, by the configured trusted header. A team leader's scope is
//! their teams; management's (`all = true`) every team, the days without a team and the whole
//! municipality. No principal: 401. A team outside the scope: 403, logged with the principal's
//! name and the path only. No CPR number or pseudonym is in any answer.

use crate::config::Loaded;
use crate::domain::TeamId;
use crate::model::figures::{self, CATALOGUE, Figures, Scope, Unit};
use crate::store::Store;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// `[cockpit]` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CockpitSettings {
    /// A request header the single-sign-on reverse proxy sets to the signed-in user's name
    /// (for example `X-Remote-User`); only requests through that proxy may reach the gateway.
    #[serde(default)]
    pub trusted_header: Option<String>,
    /// `[[cockpit.principal]]`: who may see what.
    #[serde(default, rename = "principal")]
    pub principals: Vec<PrincipalSettings>,
}

/// `[[cockpit.principal]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSettings {
    /// A name for the logs (never personal data: a role, such as `leder-nord`).
    pub name: String,
    /// SHA-256 (64 hex characters) of the principal's bearer token; the token itself is
    /// never written in the configuration (`printf %s TOKEN | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// The user name the trusted header carries.
    #[serde(default)]
    pub user: Option<String>,
    /// The teams (ids in `teams.toml`) the principal sees.
    #[serde(default)]
    pub teams: Vec<String>,
    /// Every team and the whole municipality (management).
    #[serde(default)]
    pub all: bool,
}

impl CockpitSettings {
    /// What is wrong with the settings, each problem named by its principal; `teams` are the
    /// team ids of `teams.toml`.
    pub fn problems(&self, teams: &[TeamId]) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(h) = &self.trusted_header
            && header::HeaderName::from_bytes(h.as_bytes()).is_err()
        {
            out.push(format!("cockpit.trusted_header `{h}` is not a header name"));
        }
        for (i, p) in self.principals.iter().enumerate() {
            let at = format!("cockpit.principal[{i}] `{}`", p.name);
            match (&p.token_sha256, &p.user) {
                (Some(t), None) => {
                    if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
                        out.push(format!(
                            "{at}: token_sha256 must be 64 hex characters (the SHA-256 of the token)"
                        ));
                    }
                }
                (None, Some(_)) if self.trusted_header.is_none() => out.push(format!(
                    "{at}: a user needs cockpit.trusted_header (the header the sign-on proxy sets)"
                )),
                (None, Some(_)) => {}
                _ => out.push(format!("{at}: give exactly one of token_sha256 and user")),
            }
            if p.all != p.teams.is_empty() {
                out.push(format!(
                    "{at}: give teams (the teams it sees) or all = true, not both"
                ));
            }
            for t in &p.teams {
                if !teams.iter().any(|k| k.as_str() == t) {
                    out.push(format!("{at}: team `{t}` is not in teams.toml"));
                }
            }
        }
        out
    }
}

/// What a principal may see.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sees {
    All,
    Teams(Vec<String>),
}

impl Sees {
    fn scope(&self, scope: &Scope) -> bool {
        match (self, scope) {
            (Sees::All, _) => true,
            (Sees::Teams(ts), Scope::Team(t)) => ts.iter().any(|x| x == t.as_str()),
            (Sees::Teams(_), _) => false,
        }
    }
}

/// A principal as the server checks it.
#[derive(Debug, Clone)]
struct Principal {
    name: String,
    token: Option<[u8; 32]>,
    user: Option<String>,
    sees: Sees,
}

/// What the cockpit's handlers share.
#[derive(Clone)]
pub struct CockpitState {
    store: Store,
    loaded: Arc<Loaded>,
    principals: Arc<Vec<Principal>>,
    trusted_header: Option<header::HeaderName>,
}

impl CockpitState {
    /// The cockpit over `store` with the loaded configuration's `[cockpit]`; an error names
    /// what is wrong with it.
    pub fn new(
        store: Store,
        loaded: Arc<Loaded>,
        settings: &CockpitSettings,
    ) -> anyhow::Result<Self> {
        let teams: Vec<TeamId> = loaded
            .mappings
            .teams
            .iter()
            .map(|t| t.team.id.clone())
            .collect();
        let problems = settings.problems(&teams);
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        let principals = settings
            .principals
            .iter()
            .map(|p| Principal {
                name: p.name.clone(),
                token: p.token_sha256.as_deref().and_then(|t| {
                    let mut out = [0u8; 32];
                    hex::decode_to_slice(t.to_ascii_lowercase(), &mut out).ok()?;
                    Some(out)
                }),
                user: p.user.clone(),
                sees: if p.all {
                    Sees::All
                } else {
                    Sees::Teams(p.teams.clone())
                },
            })
            .collect();
        Ok(CockpitState {
            store,
            loaded,
            principals: Arc::new(principals),
            trusted_header: settings
                .trusted_header
                .as_deref()
                .and_then(|h| header::HeaderName::from_bytes(h.as_bytes()).ok()),
        })
    }

    /// The principal of a request: its bearer token's digest, else the trusted header's user.
    fn principal(&self, headers: &HeaderMap) -> Option<&Principal> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty());
        if let Some(token) = bearer {
            let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            // Every principal is compared, without an early exit.
            let mut found = None;
            for p in self.principals.iter() {
                if let Some(want) = &p.token {
                    let diff = given.iter().zip(want).fold(0u8, |a, (x, y)| a | (x ^ y));
                    if std::hint::black_box(diff) == 0 {
                        found = Some(p);
                    }
                }
            }
            return found;
        }
        let name = self.trusted_header.as_ref()?;
        let user = headers.get(name)?.to_str().ok()?.trim();
        self.principals
            .iter()
            .find(|p| p.user.as_deref() == Some(user))
    }
}

/// The cockpit's routes (`/cockpit/...`), with their state.
pub fn router(state: CockpitState) -> Router {
    Router::new()
        .route("/cockpit/api/catalogue", get(catalogue))
        .route("/cockpit/api/figures", get(figures_api))
        .with_state(state)
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
}

fn unauthorized() -> Response {
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

async fn catalogue(State(state): State<CockpitState>, headers: HeaderMap) -> Response {
    if state.principal(&headers).is_none() {
        return unauthorized();
    }
    axum::Json(CATALOGUE).into_response()
}

/// The query of `/cockpit/api/figures`.
#[derive(Debug, Deserialize)]
pub struct FiguresQuery {
    /// First day (default: 1 January of `to`'s year).
    pub from: Option<NaiveDate>,
    /// The as-of date (default: yesterday in the municipality's time zone).
    pub to: Option<NaiveDate>,
    /// A team id, `unassigned` or `municipality`.
    pub team: Option<String>,
    /// `care` or `nursing`.
    pub track: Option<String>,
    /// A figure id.
    pub figure: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

async fn figures_api(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Query(q): Query<FiguresQuery>,
) -> Response {
    let Some(who) = state.principal(&headers) else {
        return unauthorized();
    };
    if let Some(team) = q.team.as_deref() {
        let scope = match team {
            "municipality" => Scope::Municipality,
            "unassigned" => Scope::Unassigned,
            t => match TeamId::parse(t) {
                Ok(id) => Scope::Team(id),
                Err(_) => return error(StatusCode::BAD_REQUEST, "team er ikke et team-id"),
            },
        };
        if let Scope::Team(id) = &scope
            && state.loaded.mappings.team(id).is_none()
        {
            return error(StatusCode::NOT_FOUND, "Teamet findes ikke i teams.toml.");
        }
        if !who.sees.scope(&scope) {
            tracing::warn!(
                principal = %who.name,
                path = "/cockpit/api/figures",
                "Cockpit request refused: the team is outside the principal's scope."
            );
            return error(StatusCode::FORBIDDEN, "Du har ikke adgang til dette team.");
        }
    }
    let tz = state.loaded.settings.time_zone;
    let today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let to = q.to.unwrap_or(today - chrono::Days::new(1));
    let from = q.from.unwrap_or_else(|| {
        NaiveDate::from_ymd_opt(chrono::Datelike::year(&to), 1, 1).expect("1 January")
    });
    if from > to {
        return error(StatusCode::BAD_REQUEST, "from ligger efter to");
    }
    let filter = Filter {
        team: q.team.clone(),
        track: q.track.clone(),
        figure: q.figure.clone(),
    };
    if let Err(e) = filter.check() {
        return error(StatusCode::BAD_REQUEST, &e);
    }
    let figs =
        match crate::pipeline::figures(&state.store, &state.loaded.mappings, tz, from, to).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "Cockpit figures could not be computed.");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Tallene kan ikke beregnes lige nu.",
                );
            }
        };
    let rows: Vec<FigureRow> = rows(&figs.figures, &filter, Number::Plain)
        .into_iter()
        .filter(|(scope, _)| who.sees.scope(scope))
        .map(|(_, r)| r)
        .collect();
    match q.format.as_deref() {
        None | Some("json") => axum::Json(rows).into_response(),
        Some("csv") => match csv_text(&rows, b',') {
            Ok(text) => ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], text).into_response(),
            Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "CSV kunne ikke skrives"),
        },
        Some(_) => error(StatusCode::BAD_REQUEST, "format er json eller csv"),
    }
}

/// Which figures to show.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A team id, `unassigned` or `municipality`.
    pub team: Option<String>,
    /// `care` or `nursing`.
    pub track: Option<String>,
    /// A figure id.
    pub figure: Option<String>,
}

impl Filter {
    /// A message for a track or figure that does not exist.
    pub fn check(&self) -> Result<(), String> {
        if let Some(id) = self.figure.as_deref()
            && figures::definition(id).is_none()
        {
            return Err(format!("no figure `{id}`"));
        }
        if let Some(t) = self.track.as_deref()
            && !["care", "nursing", "all"].contains(&t)
        {
            return Err(format!("the track is care, nursing or all, not `{t}`"));
        }
        Ok(())
    }
}

/// How numbers are written in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Number {
    /// `1552635.00`, `0.5`.
    Plain,
    /// `1.552.635,00`, `0,5` (amounts with thousands separators, as Danish spreadsheets read).
    Danish,
}

/// One figure of one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FigureRow {
    /// A team id, `unassigned` or `municipality`.
    pub team: String,
    /// `YYYY-MM`.
    pub month: String,
    /// `care` or `nursing`.
    pub track: &'static str,
    /// The figure's id.
    pub figure: &'static str,
    /// The value; `None`: no data (the denominator is zero).
    pub value: Option<String>,
    /// What is counted.
    pub numerator: String,
    /// What it is divided by, for a ratio.
    pub denominator: Option<String>,
}

/// The rows of `figs` that `filter` keeps, each with its cell's scope, cell by cell and in
/// catalogue order. Used by the API and the `figures` command alike.
pub fn rows(figs: &Figures, filter: &Filter, number: Number) -> Vec<(Scope, FigureRow)> {
    let plain = |d: Decimal| {
        // Numerators and denominators such as paid minutes are exact sums of quotients.
        let d = d.round_dp_with_strategy(figures::FIGURE_DECIMALS, figures::FIGURE_ROUNDING);
        let text = d.normalize().to_string();
        match number {
            Number::Plain => text,
            Number::Danish => text.replace('.', ","),
        }
    };
    let money = |d: Decimal| {
        let d = crate::model::round_money(d);
        match number {
            Number::Plain => format!("{d:.2}"),
            Number::Danish => crate::explain::kroner(d)
                .trim_end_matches(" kr.")
                .to_owned(),
        }
    };
    let mut out = Vec::new();
    for (cell, tally) in &figs.cells {
        let team = match &cell.scope {
            Scope::Team(t) => t.to_string(),
            Scope::Unassigned => "unassigned".to_owned(),
            Scope::Municipality => "municipality".to_owned(),
        };
        if filter.team.as_deref().is_some_and(|t| t != team)
            || filter
                .track
                .as_deref()
                .is_some_and(|t| t != figures::track_name(cell.track))
        {
            continue;
        }
        for d in CATALOGUE {
            if filter.figure.as_deref().is_some_and(|f| f != d.id)
                || (cell.track.is_some() && !d.per_track)
            {
                continue;
            }
            let v = figures::value(d.id, tally).expect("every catalogued figure has a value");
            let shown = |x: Decimal| {
                if d.unit == Unit::Money {
                    money(x)
                } else {
                    plain(x)
                }
            };
            out.push((
                cell.scope.clone(),
                FigureRow {
                    team: team.clone(),
                    month: cell.month.to_string(),
                    track: figures::track_name(cell.track),
                    figure: d.id,
                    value: v.value.map(shown),
                    numerator: shown(v.numerator),
                    denominator: v.denominator.map(plain),
                },
            ));
        }
    }
    out
}

/// The rows as CSV with a header line.
pub fn csv_text(rows: &[FigureRow], delimiter: u8) -> Result<String, csv::Error> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .from_writer(Vec::new());
    w.write_record([
        "team",
        "month",
        "track",
        "figure",
        "value",
        "numerator",
        "denominator",
    ])?;
    for r in rows {
        w.write_record([
            r.team.as_str(),
            r.month.as_str(),
            r.track,
            r.figure,
            r.value.as_deref().unwrap_or(""),
            r.numerator.as_str(),
            r.denominator.as_deref().unwrap_or(""),
        ])?;
    }
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 text"))
}
