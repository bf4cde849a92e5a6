//! The steering cockpit's HTTP side, merged into the operations server when `[cockpit]` is
//! configured: the page `/cockpit` (Danish, server-rendered, charts as SVG with a table behind
//! each, nothing fetched from elsewhere), and the API behind it.
//!
//! | Endpoint | Answer |
//! |---|---|
//! | `GET /cockpit` | the principal's overview (management: every team; a team leader: their team) |
//! | `GET /cockpit/team/{team}` | a team's page (`municipality`, `unassigned` for management) |
//! | `GET /cockpit/team/{team}/figure/{id}?month=&track=` | the courses behind a figure |
//! | `GET /cockpit/course/{id}` | a course's decision, evidence and supersessions |
//! | `GET/POST /cockpit/login`, `POST /cockpit/logout` | sign in with a token (a session cookie), sign out |
//! | `GET /cockpit/api/catalogue` | every figure's id, Danish name, definition, numerator, denominator, level |
//! | `GET /cockpit/api/figures?from=&to=&team=&track=&figure=&format=json\|csv` | the figures the principal may see |
//! | `GET /cockpit/api/courses?team=&month=&track=&figure=&format=` | the courses behind a figure |
//! | `GET /cockpit/api/course/{id}` | a course explained (no citizen) |
//! | `GET /cockpit/api/ending?team=` | courses ending in the next 14 days |
//! | `GET /cockpit/api/findings?team=` | data-quality findings with what to do |
//!
//! A request names its principal by `Authorization: Bearer <token>` (the configuration holds
//! only each token's SHA-256, compared in constant time), by the session cookie the sign-in
//! form gave for such a token, or, behind the municipality's single-sign-on reverse proxy, by
//! the configured trusted header. A team leader's scope is their teams; management's
//! (`all = true`) every team, the days without a team and the whole municipality. No
//! principal: 401 (the page sends the browser to the sign-in form). Outside the scope: 403,
//! logged with the principal's name and the path only. No CPR number or pseudonym is in any
//! answer: the figures and course facts hold none, and a course's explanation leaves its
//! citizen out.

#[allow(
    clippy::result_large_err,
    reason = "handlers' early returns are axum responses, built once per request"
)]
mod api;
pub mod cache;
pub mod chart;
pub mod format;
#[allow(
    clippy::result_large_err,
    reason = "handlers' early returns are axum responses, built once per request"
)]
mod page;
pub mod session;

use crate::config::Loaded;
use crate::domain::TeamId;
use crate::model::figures::{self, CATALOGUE, Figures, Scope, Unit};
use crate::store::Store;
use axum::Router;

use axum::http::{HeaderMap, StatusCode, header};

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
    /// Mark the sign-in cookie `Secure` (sent over HTTPS only). Set it when the cockpit is
    /// reached over HTTPS (behind the municipality's TLS proxy); default false, so a plain
    /// `http://127.0.0.1` cockpit (the demo) can sign in.
    #[serde(default)]
    pub secure_cookie: bool,
    /// Hours a sign-in lasts (default 8, at most 24).
    #[serde(default = "default_session_hours")]
    pub session_hours: u32,
    /// A folder of draft tariff files (`*.toml`, the format of `mappings/tariffs.toml`) whose
    /// budget effect management can see at `/cockpit/whatif` (relative to the configuration
    /// file; default: none).
    #[serde(default)]
    pub drafts_dir: Option<std::path::PathBuf>,
}

fn default_session_hours() -> u32 {
    8
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
        if !(1..=24).contains(&self.session_hours) {
            out.push(format!(
                "cockpit.session_hours is {}: give 1 to 24",
                self.session_hours
            ));
        }
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
    cache: Arc<cache::SnapshotCache>,
    sessions: Arc<session::Sessions>,
    secure_cookie: bool,
    session_ttl: std::time::Duration,
    drafts_dir: Option<std::path::PathBuf>,
    /// A fixed "today" (the demo's simulated morning); `None`: the clock.
    fixed_today: Option<NaiveDate>,
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
            cache: Arc::default(),
            sessions: Arc::default(),
            secure_cookie: settings.secure_cookie,
            session_ttl: std::time::Duration::from_secs(u64::from(settings.session_hours) * 3600),
            fixed_today: None,
            drafts_dir: settings.drafts_dir.clone(),
        })
    }

    /// The index of the principal whose token this is (every principal is compared, in
    /// constant time, without an early exit).
    fn by_token(&self, token: &str) -> Option<usize> {
        let given: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (i, p) in self.principals.iter().enumerate() {
            if let Some(want) = &p.token {
                let diff = given.iter().zip(want).fold(0u8, |a, (x, y)| a | (x ^ y));
                if std::hint::black_box(diff) == 0 {
                    found = Some(i);
                }
            }
        }
        found
    }

    /// The principal of a request: its bearer token, else its session cookie, else the
    /// trusted header's user.
    fn principal(&self, headers: &HeaderMap) -> Option<&Principal> {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
            .filter(|t| !t.is_empty());
        if let Some(token) = bearer {
            return self.by_token(token).map(|i| &self.principals[i]);
        }
        if let Some(id) = session::cookie_of(headers)
            && let Some(i) = self.sessions.principal(&id)
        {
            return self.principals.get(i);
        }
        let name = self.trusted_header.as_ref()?;
        let user = headers.get(name)?.to_str().ok()?.trim();
        self.principals
            .iter()
            .find(|p| p.user.as_deref() == Some(user))
    }

    /// Today in the municipality's time zone.
    fn today(&self) -> NaiveDate {
        if let Some(d) = self.fixed_today {
            return d;
        }
        chrono::Utc::now()
            .with_timezone(&self.loaded.settings.time_zone)
            .date_naive()
    }

    /// A period from optional bounds: `to` defaults to yesterday (the last whole day), `from`
    /// to 1 January of `to`'s year.
    fn period(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<(NaiveDate, NaiveDate), &'static str> {
        let to = to.unwrap_or(self.today() - chrono::Days::new(1));
        let from = from.unwrap_or_else(|| {
            NaiveDate::from_ymd_opt(chrono::Datelike::year(&to), 1, 1).expect("1 January")
        });
        if from > to {
            return Err("from ligger efter to");
        }
        if (to - from).num_days() > 3 * 366 {
            return Err("perioden er længere end tre år");
        }
        Ok((from, to))
    }

    /// The scope a name stands for: a team id of `teams.toml`, `unassigned` or
    /// `municipality`. Err: 400 for a malformed name, 404 for a team not in `teams.toml`.
    fn scope(&self, name: &str) -> Result<Scope, (StatusCode, &'static str)> {
        match name {
            "municipality" => Ok(Scope::Municipality),
            "unassigned" => Ok(Scope::Unassigned),
            t => match TeamId::parse(t) {
                Ok(id) if self.loaded.mappings.team(&id).is_some() => Ok(Scope::Team(id)),
                Ok(_) => Err((StatusCode::NOT_FOUND, "Teamet findes ikke i teams.toml.")),
                Err(_) => Err((StatusCode::BAD_REQUEST, "team er ikke et team-id")),
            },
        }
    }

    /// Whether `who` may see `scope`; a refusal is logged with the principal's name and the
    /// path only.
    fn allowed(&self, who: &Principal, scope: &Scope, path: &str) -> bool {
        let ok = who.sees.scope(scope);
        if !ok {
            tracing::warn!(
                principal = %who.name,
                path = %path,
                "Cockpit request refused: outside the principal's scope."
            );
        }
        ok
    }

    /// The scopes a principal sees, in the order the page lists them.
    fn scopes_of(&self, who: &Principal) -> Vec<Scope> {
        let teams = self
            .loaded
            .mappings
            .teams
            .iter()
            .map(|t| Scope::Team(t.team.id.clone()));
        match &who.sees {
            Sees::All => std::iter::once(Scope::Municipality)
                .chain(teams)
                .chain(std::iter::once(Scope::Unassigned))
                .collect(),
            Sees::Teams(_) => teams.filter(|s| who.sees.scope(s)).collect(),
        }
    }

    /// The cockpit with a fixed today (its default period ends the day before): the demo's
    /// simulated morning after its run.
    pub fn with_today(mut self, today: NaiveDate) -> Self {
        self.fixed_today = Some(today);
        self
    }

    /// The figures of a period as the store is now (kept while nothing changed).
    async fn snapshot(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Arc<crate::pipeline::Snapshot>> {
        self.cache
            .get(
                &self.store,
                &self.loaded.mappings,
                self.loaded.settings.time_zone,
                from,
                to,
            )
            .await
    }

    /// Computes the default period's figures now (after a nightly run), so the first
    /// person to open the cockpit does not wait for them.
    pub async fn warm(&self) {
        if let Ok((from, to)) = self.period(None, None)
            && let Err(e) = self.snapshot(from, to).await
        {
            tracing::warn!(message = "Cockpit figures could not be computed.", error = %format!("{e:#}"));
        }
    }

    /// A team's name for people (`Team Nord`), `Hele kommunen`, `Dage uden team`.
    fn scope_title(&self, scope: &Scope) -> String {
        match scope {
            Scope::Municipality => "Hele kommunen".into(),
            Scope::Unassigned => "Dage uden team".into(),
            Scope::Team(t) => self
                .loaded
                .mappings
                .team(t)
                .map_or_else(|| t.to_string(), |m| m.name.clone()),
        }
    }
}

/// The cockpit's routes (`/cockpit/...`), with their state.
pub fn router(state: CockpitState) -> Router {
    Router::new()
        .route("/cockpit", get(page::home))
        .route("/cockpit/", get(page::home))
        .route("/cockpit/login", get(page::login_form).post(page::login))
        .route("/cockpit/logout", axum::routing::post(page::logout))
        .route("/cockpit/cockpit.css", get(page::stylesheet))
        .route("/cockpit/team/{team}", get(page::team))
        .route("/cockpit/team/{team}/figure/{figure}", get(page::figure))
        .route("/cockpit/course/{id}", get(page::course))
        .route("/cockpit/whatif", get(page::whatif))
        .route("/cockpit/api/catalogue", get(api::catalogue))
        .route("/cockpit/api/figures", get(api::figures))
        .route("/cockpit/api/courses", get(api::courses))
        .route("/cockpit/api/course/{id}", get(api::course))
        .route("/cockpit/api/ending", get(api::ending_api))
        .route("/cockpit/api/findings", get(api::findings_api))
        .with_state(state)
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
