//! The cockpit's web page, in Danish, rendered on the server from templates
//! (`templates/cockpit/`, askama): an overview of the principal's teams, a page per team with
//! its key figures, month-by-month charts (SVG) each with its table, the transitions between
//! course kinds, the courses ending in the next 14 days and the data-quality findings with what
//! to do; the courses behind a figure; a course's decision. No script, nothing fetched from
//! elsewhere, readable when printed. Every number in a table carries the API's value in
//! `data-value`, so the page and the API can be compared.

use super::api::{self, Advice, CourseView, Ending};
use super::chart::{self, Series};
use super::format as fmt;
use super::session;
use super::{CockpitState, Filter, Number, Principal};
use crate::domain::{CourseKind, Track};
use crate::model::YearMonth;
use crate::model::figures::{self, CATALOGUE, Cell, FigureDef, QualityKey, Scope, Tally};
use crate::pipeline::Snapshot;
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The stylesheet, served from the binary.
const CSS: &str = include_str!("cockpit.css");

pub(super) async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

/// A link in the page's navigation.
struct NavItem {
    href: String,
    label: String,
    current: bool,
}

/// What every page shows in its frame.
struct Frame {
    title: String,
    nav: Vec<NavItem>,
    signed_in: bool,
    principal: String,
}

impl Frame {
    fn new(state: &CockpitState, who: &Principal, title: String, current: Option<&Scope>) -> Self {
        let scopes = state.scopes_of(who);
        let mut nav = Vec::new();
        if scopes.len() > 1 {
            nav.push(NavItem {
                href: "/cockpit".into(),
                label: "Oversigt".into(),
                current: current.is_none(),
            });
        }
        for s in &scopes {
            nav.push(NavItem {
                href: format!("/cockpit/team/{}", s.name()),
                label: state.scope_title(s),
                current: current == Some(s),
            });
        }
        if who.sees == super::Sees::All {
            nav.push(NavItem {
                href: "/cockpit/whatif".into(),
                label: "Hvad nu hvis".into(),
                current: false,
            });
        }
        Frame {
            title,
            nav,
            signed_in: true,
            principal: who.name.clone(),
        }
    }

    fn anonymous(title: &str) -> Self {
        Frame {
            title: title.to_owned(),
            nav: Vec::new(),
            signed_in: false,
            principal: String::new(),
        }
    }
}

/// A page with an HTTP status.
fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => {
            let mut r = (status, Html(html)).into_response();
            r.headers_mut().insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
                ),
            );
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(message = "A cockpit page could not be rendered.", error = %e);
            (StatusCode::INTERNAL_SERVER_ERROR, "Siden kunne ikke vises.").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "cockpit/message.html")]
struct MessagePage {
    frame: Frame,
    heading: String,
    text: String,
}

/// An error page: 403, 404, 400 or 503, in Danish.
fn message(
    state: &CockpitState,
    who: Option<&Principal>,
    status: StatusCode,
    text: &str,
) -> Response {
    let heading = match status {
        StatusCode::FORBIDDEN => "Ingen adgang",
        StatusCode::NOT_FOUND => "Findes ikke",
        StatusCode::BAD_REQUEST => "Forkert forespørgsel",
        _ => "Tallene kan ikke vises lige nu",
    };
    let frame = match who {
        Some(w) => Frame::new(state, w, heading.into(), None),
        None => Frame::anonymous(heading),
    };
    render(
        status,
        &MessagePage {
            frame,
            heading: heading.into(),
            text: text.into(),
        },
    )
}

/// The principal of a page request, or the way to the sign-in form.
fn signed_in<'s>(state: &'s CockpitState, headers: &HeaderMap) -> Result<&'s Principal, Response> {
    state
        .principal(headers)
        .ok_or_else(|| Redirect::to("/cockpit/login").into_response())
}

/// The snapshot of a period, or an error page.
async fn snapshot_page(
    state: &CockpitState,
    who: &Principal,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<std::sync::Arc<Snapshot>, Response> {
    let (from, to) = state
        .period(from, to)
        .map_err(|m| message(state, Some(who), StatusCode::BAD_REQUEST, m))?;
    state.snapshot(from, to).await.map_err(|e| {
        tracing::warn!(message = "Cockpit figures could not be computed.", error = %format!("{e:#}"));
        message(
            state,
            Some(who),
            StatusCode::SERVICE_UNAVAILABLE,
            "Tallene kan ikke beregnes lige nu. Prøv igen om lidt; driften kan se årsagen i loggen.",
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Sign in and out
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "cockpit/login.html")]
struct LoginPage {
    frame: Frame,
    failed: bool,
}

pub(super) async fn login_form(State(state): State<CockpitState>, headers: HeaderMap) -> Response {
    if state.principal(&headers).is_some() {
        return Redirect::to("/cockpit").into_response();
    }
    render(
        StatusCode::OK,
        &LoginPage {
            frame: Frame::anonymous("Log ind"),
            failed: false,
        },
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    token: String,
}

pub(super) async fn login(
    State(state): State<CockpitState>,
    Form(form): Form<LoginForm>,
) -> Response {
    let token = form.token.trim();
    let Some(index) = (!token.is_empty() && token.len() <= 512)
        .then(|| state.by_token(token))
        .flatten()
    else {
        tracing::warn!(message = "Cockpit sign-in refused: the token is not a principal's.");
        return render(
            StatusCode::UNAUTHORIZED,
            &LoginPage {
                frame: Frame::anonymous("Log ind"),
                failed: true,
            },
        );
    };
    let id = state.sessions.open(index, state.session_ttl);
    tracing::info!(message = "Cockpit sign-in.", principal = %state.principals[index].name);
    let secure = if state.secure_cookie { "; Secure" } else { "" };
    let cookie = format!(
        "{}={id}; Path=/cockpit; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session::COOKIE,
        state.session_ttl.as_secs()
    );
    let mut r = Redirect::to("/cockpit").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub(super) async fn logout(State(state): State<CockpitState>, headers: HeaderMap) -> Response {
    if let Some(id) = session::cookie_of(&headers) {
        state.sessions.close(&id);
    }
    let mut r = Redirect::to("/cockpit/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{}=; Path=/cockpit; HttpOnly; SameSite=Strict; Max-Age=0",
            session::COOKIE
        ))
        .expect("a cookie header"),
    );
    r
}

// ---------------------------------------------------------------------------------------------
// Figures as people read them
// ---------------------------------------------------------------------------------------------

/// One figure in a table cell: the Danish text, the API's value and where it drills down to.
struct FigureCell {
    figure: &'static str,
    month: String,
    track: &'static str,
    text: String,
    /// The value exactly as the API gives it (`""`: no data).
    value: String,
    href: Option<String>,
}

/// A row of a month table.
struct MonthRow {
    label: String,
    cells: Vec<FigureCell>,
}

/// A column of a month table.
struct Column {
    name: &'static str,
    definition: &'static str,
}

/// A table of figures by month.
struct MonthTable {
    caption: String,
    columns: Vec<Column>,
    rows: Vec<MonthRow>,
}

/// The months of a period.
fn months(from: NaiveDate, to: NaiveDate) -> Vec<YearMonth> {
    let mut out = Vec::new();
    let mut m = YearMonth::of(from);
    while m <= YearMonth::of(to) {
        out.push(m);
        m = if m.month == 12 {
            YearMonth {
                year: m.year + 1,
                month: 1,
            }
        } else {
            YearMonth {
                year: m.year,
                month: m.month + 1,
            }
        };
    }
    out
}

/// The API's rows of a scope and track, by (month, figure).
fn api_values(
    snap: &Snapshot,
    scope: &Scope,
    track: Option<Track>,
) -> BTreeMap<(String, &'static str), Option<String>> {
    let filter = Filter {
        team: Some(scope.name()),
        track: Some(figures::track_name(track).to_owned()),
        figure: None,
    };
    super::rows(&snap.figures, &filter, Number::Plain)
        .into_iter()
        .map(|(_, r)| ((r.month, r.figure), r.value))
        .collect()
}

fn cell_of(
    snap: &Snapshot,
    values: &BTreeMap<(String, &'static str), Option<String>>,
    scope: &Scope,
    month: YearMonth,
    track: Option<Track>,
    def: &'static FigureDef,
) -> FigureCell {
    let tally = snap.figures.tally(&Cell {
        scope: scope.clone(),
        month,
        track,
    });
    let v = figures::value(def.id, &tally).and_then(|v| v.value);
    let drills = !matches!(def.id, "costs" | "balance" | "forecast_balance");
    FigureCell {
        figure: def.id,
        month: month.to_string(),
        track: figures::track_name(track),
        text: fmt::figure_value(def, v),
        value: values
            .get(&(month.to_string(), def.id))
            .cloned()
            .flatten()
            .unwrap_or_default(),
        href: (drills && v.is_some()).then(|| {
            format!(
                "/cockpit/team/{}/figure/{}?month={month}&track={}&to={}",
                scope.name(),
                def.id,
                figures::track_name(track),
                snap.to
            )
        }),
    }
}

fn month_table(
    snap: &Snapshot,
    scope: &Scope,
    track: Option<Track>,
    caption: String,
    ids: &[&str],
) -> MonthTable {
    let values = api_values(snap, scope, track);
    let defs: Vec<&'static FigureDef> = ids
        .iter()
        .filter_map(|id| figures::definition(id))
        .filter(|d| track.is_none() || d.per_track)
        .collect();
    MonthTable {
        caption,
        columns: defs
            .iter()
            .map(|d| Column {
                name: d.name,
                definition: d.definition,
            })
            .collect(),
        rows: months(snap.from, snap.to)
            .into_iter()
            .map(|m| MonthRow {
                label: fmt::month(m),
                cells: defs
                    .iter()
                    .map(|d| cell_of(snap, &values, scope, m, track, d))
                    .collect(),
            })
            .collect(),
    }
}

/// The months' tallies of a scope and track added up (counts and sums; not distinct
/// citizens).
fn period_tally(snap: &Snapshot, scope: &Scope, track: Option<Track>) -> Tally {
    let mut t = Tally::default();
    for m in months(snap.from, snap.to) {
        t.merge(&snap.figures.tally(&Cell {
            scope: scope.clone(),
            month: m,
            track,
        }));
    }
    t
}

/// A key figure on the page.
struct Card {
    label: String,
    text: String,
    note: String,
    href: Option<String>,
}

fn value_text(id: &str, t: &Tally) -> (String, Option<Decimal>) {
    let def = figures::definition(id).expect("a catalogued figure");
    let v = figures::value(id, t).and_then(|v| v.value);
    (fmt::figure_value(def, v), v)
}

/// A chart with the table that holds its numbers.
struct Chart {
    svg: String,
}

// ---------------------------------------------------------------------------------------------
// The overview
// ---------------------------------------------------------------------------------------------

/// A row of the overview: one scope's year to date.
struct OverviewRow {
    href: String,
    title: String,
    income: String,
    costs: String,
    balance: String,
    forecast: String,
    inflow: String,
    outflow: String,
    progression: String,
    self_reliance: String,
}

#[derive(Template)]
#[template(path = "cockpit/home.html")]
struct HomePage {
    frame: Frame,
    period: String,
    rows: Vec<OverviewRow>,
}

#[derive(Deserialize)]
pub(super) struct PageQuery {
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    track: Option<String>,
    month: Option<String>,
}

pub(super) async fn home(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Response {
    let who = match signed_in(&state, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let scopes = state.scopes_of(who);
    if let [only] = scopes.as_slice() {
        return Redirect::to(&format!("/cockpit/team/{}", only.name())).into_response();
    }
    let snap = match snapshot_page(&state, who, q.from, q.to).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let rows = scopes
        .iter()
        .map(|s| {
            let t = period_tally(&snap, s, None);
            let forecast = snap.figures.tally(&Cell {
                scope: s.clone(),
                month: YearMonth::of(snap.to),
                track: None,
            });
            OverviewRow {
                href: format!("/cockpit/team/{}", s.name()),
                title: state.scope_title(s),
                income: value_text("income", &t).0,
                costs: value_text("costs", &t).0,
                balance: value_text("balance", &t).0,
                forecast: value_text("forecast_balance", &forecast).0,
                inflow: value_text("inflow", &t).0,
                outflow: value_text("outflow", &t).0,
                progression: value_text("progression_fell", &t).0,
                self_reliance: value_text("self_reliance", &t).0,
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &HomePage {
            frame: Frame::new(&state, who, "Styringscockpit".into(), None),
            period: period_text(&snap),
            rows,
        },
    )
}

fn period_text(snap: &Snapshot) -> String {
    format!(
        "{} – {} (opgjort pr. {})",
        fmt::date(snap.from),
        fmt::date(snap.to),
        fmt::date(snap.to)
    )
}

// ---------------------------------------------------------------------------------------------
// A team's page
// ---------------------------------------------------------------------------------------------

/// A track choice on a team's page.
struct TrackLink {
    href: String,
    label: &'static str,
    current: bool,
}

/// The transitions between kinds: a row per kind of the ended course.
struct TransitionRow {
    kind: &'static str,
    cells: Vec<String>,
    total: String,
}

/// A course ending soon, for people.
struct EndingRow {
    href: String,
    id: String,
    track: &'static str,
    kind: &'static str,
    group: String,
    start: String,
    end: String,
    days_left: i64,
    tariff: String,
}

#[derive(Template)]
#[template(path = "cockpit/team.html")]
struct TeamPage {
    frame: Frame,
    scope: String,
    heading: String,
    cost_centre: String,
    period: String,
    as_of_month: String,
    tracks: Vec<TrackLink>,
    track_label: &'static str,
    cards: Vec<Card>,
    money_chart: Chart,
    flow_chart: Chart,
    tables: Vec<MonthTable>,
    transition_columns: Vec<&'static str>,
    transitions: Vec<TransitionRow>,
    ending: Vec<EndingRow>,
    findings: Vec<Advice>,
    catalogue: Vec<&'static FigureDef>,
    computed: String,
}

const KINDS: [CourseKind; 3] = [
    CourseKind::Development,
    CourseKind::Stabilisation,
    CourseKind::Individual,
];

fn tariff_text(t: &crate::model::DailyTariff) -> String {
    match t {
        crate::model::DailyTariff::Locked { amount } => format!("{} pr. dag", fmt::kroner(*amount)),
        crate::model::DailyTariff::Individual { hourly_rate } => {
            format!("individuel, {} pr. time", fmt::kroner(*hourly_rate))
        }
    }
}

pub(super) async fn team(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Path(team): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let who = match signed_in(&state, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let scope = match state.scope(&team) {
        Ok(s) => s,
        Err((status, m)) => return message(&state, Some(who), status, m),
    };
    if !state.allowed(who, &scope, "/cockpit/team") {
        return message(
            &state,
            Some(who),
            StatusCode::FORBIDDEN,
            "Du har ikke adgang til dette team. En teamleder ser sit eget team; ledelsen ser alle.",
        );
    }
    let track = match q.track.as_deref().unwrap_or("all") {
        "all" => None,
        t => match Track::parse(t) {
            Ok(t) => Some(t),
            Err(_) => {
                return message(
                    &state,
                    Some(who),
                    StatusCode::BAD_REQUEST,
                    "Sporet er care, nursing eller all.",
                );
            }
        },
    };
    let snap = match snapshot_page(&state, who, q.from, q.to).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let name = scope.name();
    let base = format!("/cockpit/team/{name}");
    let to_q = format!("to={}", snap.to);
    let year = period_tally(&snap, &scope, track);
    let this_month = YearMonth::of(snap.to);
    let month_tally = snap.figures.tally(&Cell {
        scope: scope.clone(),
        month: this_month,
        track,
    });
    let all_month = snap.figures.tally(&Cell {
        scope: scope.clone(),
        month: this_month,
        track: None,
    });
    let drill = |id: &str, month: YearMonth| {
        Some(format!(
            "{base}/figure/{id}?month={month}&track={}&{to_q}",
            figures::track_name(track)
        ))
    };
    let mut cards = vec![Card {
        label: "Indtægt i perioden".into(),
        text: value_text("income", &year).0,
        note: format!("{} forløbsdage", value_text("course_days", &year).0),
        href: drill("income", this_month),
    }];
    if track.is_none() {
        let all_year = period_tally(&snap, &scope, None);
        cards.push(Card {
            label: "Omkostninger i perioden".into(),
            text: value_text("costs", &all_year).0,
            note: "fra økonomisystemets regnskabsfiler".into(),
            href: None,
        });
        cards.push(Card {
            label: "Resultat i perioden".into(),
            text: value_text("balance", &all_year).0,
            note: "indtægt minus omkostninger".into(),
            href: None,
        });
        cards.push(Card {
            label: "Prognose for årets resultat".into(),
            text: value_text("forecast_balance", &all_month).0,
            note: "ved nuværende takt til årets udgang".into(),
            href: None,
        });
    }
    cards.extend([
        Card {
            label: format!("Tilgang i {}", fmt::month(this_month)),
            text: value_text("inflow", &month_tally).0,
            note: format!("{} i perioden", value_text("inflow", &year).0),
            href: drill("inflow", this_month),
        },
        Card {
            label: format!("Afgang i {}", fmt::month(this_month)),
            text: value_text("outflow", &month_tally).0,
            note: format!("{} i perioden", value_text("outflow", &year).0),
            href: drill("outflow", this_month),
        },
        Card {
            label: "Progression: lavere behov".into(),
            text: value_text("progression_fell", &year).0,
            note: format!(
                "af {} afsluttede udviklingsforløb i perioden",
                year.development_ended
            ),
            href: None,
        },
        Card {
            label: "Selvhjulpenhed".into(),
            text: value_text("self_reliance", &year).0,
            note: "uden aktiv bevilling dagen efter et udviklingsforløb".into(),
            href: None,
        },
        Card {
            label: "Kontinuitet".into(),
            text: value_text("continuity", &year).0,
            note: "medarbejdere pr. borger pr. 14 dage".into(),
            href: None,
        },
    ]);

    let ms = months(snap.from, snap.to);
    let labels: Vec<String> = ms.iter().map(|m| fmt::month_short(*m)).collect();
    let tally_of = |m: YearMonth, t: Option<Track>| {
        snap.figures.tally(&Cell {
            scope: scope.clone(),
            month: m,
            track: t,
        })
    };
    let series = |name: &str, class: &'static str, id: &str, t: Option<Track>| Series {
        name: name.into(),
        class,
        values: ms
            .iter()
            .map(|m| figures::value(id, &tally_of(*m, t)).and_then(|v| v.value))
            .collect(),
    };
    let mut money = vec![series("Indtægt", "s1", "income", track)];
    if track.is_none() {
        money.push(series("Omkostninger", "s2", "costs", None));
        money.push(series("Resultat", "s3", "balance", None));
    }
    let money_chart = Chart {
        svg: chart::bars(
            "penge",
            &format!(
                "Indtægt{} pr. måned",
                if track.is_none() {
                    " og omkostninger"
                } else {
                    ""
                }
            ),
            &labels,
            &money,
            |d| fmt::number(d, 0),
        ),
    };
    let flow_chart = Chart {
        svg: chart::bars(
            "flow",
            "Tilgang og afgang pr. måned",
            &labels,
            &[
                series("Tilgang", "s1", "inflow", track),
                series("Afgang", "s2", "outflow", track),
            ],
            |d| fmt::number(d, 0),
        ),
    };
    let flow = month_table(
        &snap,
        &scope,
        track,
        "Økonomi og flow pr. måned".into(),
        &[
            "citizens",
            "course_days",
            "inflow",
            "outflow",
            "income",
            "costs",
            "balance",
        ],
    );
    let effect = month_table(
        &snap,
        &scope,
        track,
        "Progression, effekt og kvalitet pr. måned".into(),
        &[
            "progression_fell",
            "progression_stayed",
            "progression_rose",
            "progression_mean_change",
            "self_reliance",
            "continuity",
            "time_ratio",
            "nursing_ended",
            "clinic_share",
        ],
    );

    let mut transition_columns: Vec<&'static str> = KINDS.iter().map(|k| fmt::kind(*k)).collect();
    transition_columns.push("intet nyt forløb");
    let transitions = KINDS
        .iter()
        .map(|from| {
            let mut total = 0u64;
            let mut cells: Vec<String> = KINDS
                .iter()
                .map(|to| {
                    let n = year
                        .transitions
                        .get(&(*from, Some(*to)))
                        .copied()
                        .unwrap_or(0);
                    total += n;
                    fmt::number(Decimal::from(n), 0)
                })
                .collect();
            let none = year.transitions.get(&(*from, None)).copied().unwrap_or(0);
            total += none;
            cells.push(fmt::number(Decimal::from(none), 0));
            TransitionRow {
                kind: fmt::kind(*from),
                cells,
                total: fmt::number(Decimal::from(total), 0),
            }
        })
        .collect();

    let ending = api::ending(&snap, &scope)
        .into_iter()
        .filter(|e| track.is_none_or(|t| e.course.track == t))
        .map(|e: Ending| EndingRow {
            href: format!("/cockpit/course/{}?{to_q}", e.course.id),
            id: e.course.id.0.chars().take(12).collect(),
            track: fmt::track(Some(e.course.track)),
            kind: fmt::kind(e.course.kind),
            group: e.course.group.map_or("–".into(), |g| g.to_string()),
            start: fmt::date(e.course.start),
            end: fmt::date(e.course.end),
            days_left: e.days_left,
            tariff: tariff_text(&e.course.tariff),
        })
        .collect();

    let cost_centre = match &scope {
        Scope::Team(t) => state
            .loaded
            .mappings
            .team(t)
            .map(|m| format!("omkostningssted {}", m.cost_centre.as_str()))
            .unwrap_or_default(),
        Scope::Unassigned => state
            .loaded
            .mappings
            .accounts
            .as_ref()
            .map(|a| {
                format!(
                    "fallback-omkostningssted {}",
                    a.fallback_cost_centre.as_str()
                )
            })
            .unwrap_or_default(),
        Scope::Municipality => "alle teams og dage uden team".into(),
    };
    let tracks = [
        (None, "Begge spor"),
        (Some(Track::Care), "Pleje"),
        (Some(Track::Nursing), "Sygepleje"),
    ]
    .into_iter()
    .map(|(t, label)| TrackLink {
        href: format!("{base}?track={}&{to_q}", figures::track_name(t)),
        label,
        current: t == track,
    })
    .collect();
    let heading = state.scope_title(&scope);
    render(
        StatusCode::OK,
        &TeamPage {
            frame: Frame::new(
                &state,
                who,
                format!("{heading} – styringscockpit"),
                Some(&scope),
            ),
            scope: name,
            heading,
            cost_centre,
            period: period_text(&snap),
            as_of_month: fmt::month(this_month),
            tracks,
            track_label: fmt::track(track),
            cards,
            money_chart,
            flow_chart,
            tables: vec![flow, effect],
            transition_columns,
            transitions,
            ending,
            findings: api::advice(&snap, &scope),
            catalogue: CATALOGUE.iter().collect(),
            computed: format!(
                "{} borgere, {} forløb",
                fmt::number(Decimal::from(snap.citizens), 0),
                fmt::number(Decimal::from(snap.courses.len() as u64), 0)
            ),
        },
    )
}

// ---------------------------------------------------------------------------------------------
// The courses behind a figure
// ---------------------------------------------------------------------------------------------

/// A course behind a figure, for people.
struct BehindRow {
    href: String,
    id: String,
    counts: &'static str,
    track: &'static str,
    kind: &'static str,
    score: String,
    group: String,
    tariff: String,
    start: String,
    end: String,
    end_reason: &'static str,
    days: String,
    income: String,
}

#[derive(Template)]
#[template(path = "cockpit/figure.html")]
struct FigurePage {
    frame: Frame,
    back: String,
    heading: String,
    def: &'static FigureDef,
    value: String,
    cell_text: String,
    ratio: bool,
    from_visits: bool,
    rows: Vec<BehindRow>,
}

pub(super) async fn figure(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Path((team, figure)): Path<(String, String)>,
    Query(q): Query<PageQuery>,
) -> Response {
    let who = match signed_in(&state, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (cell, def) = match api::drill_cell(
        &state,
        who,
        Some(&team),
        q.month.as_deref(),
        q.track.as_deref(),
        Some(&figure),
        "/cockpit/team/figure",
    ) {
        Ok(c) => c,
        Err(r) => {
            let status = r.status();
            let text = match status {
                StatusCode::FORBIDDEN => "Du har ikke adgang til dette team.",
                StatusCode::NOT_FOUND => "Teamet findes ikke i teams.toml.",
                _ => "Måned (YYYY-MM), spor eller nøgletal er ikke gyldigt.",
            };
            return message(&state, Some(who), status, text);
        }
    };
    let snap = match snapshot_page(&state, who, q.from, q.to).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let tally = snap.figures.tally(&cell);
    let v = figures::value(def.id, &tally).and_then(|v| v.value);
    let rows = api::behind(&snap, def.id, &cell)
        .into_iter()
        .map(|b| {
            let (days, income) = b
                .course
                .months
                .iter()
                .filter(|p| p.month == cell.month && cell.scope.holds(p.team.as_ref()))
                .fold((0u64, Decimal::ZERO), |(d, i), p| {
                    (d + p.days, i + p.income)
                });
            BehindRow {
                href: format!("/cockpit/course/{}?to={}", b.course.id, snap.to),
                id: b.course.id.0.chars().take(12).collect(),
                counts: if b.counts { "ja" } else { "nej" },
                track: fmt::track(Some(b.course.track)),
                kind: fmt::kind(b.course.kind),
                score: b.course.need_score.to_string(),
                group: b.course.group.map_or("–".into(), |g| g.to_string()),
                tariff: tariff_text(&b.course.tariff),
                start: fmt::date(b.course.start),
                end: fmt::date(b.course.end),
                end_reason: fmt::end_reason(b.course.end_reason),
                days: fmt::number(Decimal::from(days), 0),
                income: fmt::kroner(income),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &FigurePage {
            frame: Frame::new(
                &state,
                who,
                format!("{} – forløbene bag", def.name),
                Some(&cell.scope),
            ),
            back: format!(
                "/cockpit/team/{}?track={}&to={}",
                cell.scope.name(),
                figures::track_name(cell.track),
                snap.to
            ),
            heading: format!(
                "{}: {}, {}, {}",
                def.name,
                state.scope_title(&cell.scope),
                fmt::month(cell.month),
                fmt::track(cell.track)
            ),
            def,
            value: fmt::figure_value(def, v),
            cell_text: format!("opgjort pr. {}", fmt::date(snap.to)),
            ratio: def.denominator.is_some(),
            from_visits: matches!(def.id, "continuity" | "clinic_share" | "time_ratio"),
            rows,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// A course
// ---------------------------------------------------------------------------------------------

struct EvidenceRow {
    kind: &'static str,
    id: String,
    version: String,
    hash: String,
}

struct RevisionRow {
    revision: u32,
    change: String,
    recorded_on: String,
    decision: String,
    rule: String,
    end: String,
    evidence: Vec<EvidenceRow>,
}

struct PartRow {
    month: String,
    team: String,
    days: String,
    income: String,
}

#[derive(Template)]
#[template(path = "cockpit/course.html")]
struct CoursePage {
    frame: Frame,
    id: String,
    track: &'static str,
    kind: &'static str,
    score: String,
    group: String,
    tariff: String,
    start: String,
    planned_end: String,
    end: String,
    end_reason: &'static str,
    recorded: bool,
    revisions: Vec<RevisionRow>,
    parts: Vec<PartRow>,
}

fn change_text(change: &str) -> &'static str {
    match change {
        "decided" => "besluttet",
        "end_moved" => "slutdato flyttet",
        "decided_afresh" => "besluttet på ny",
        "repriced" => "omprissat",
        "cancelled" => "annulleret",
        _ => "ændret",
    }
}

pub(super) async fn course(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let who = match signed_in(&state, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let view: CourseView =
        match api::course_view(&state, who, &id, q.from, q.to, "/cockpit/course").await {
            Ok(v) => v,
            Err(r) => {
                let status = r.status();
                let text = match status {
                    StatusCode::FORBIDDEN => "Du har ikke adgang til dette forløb.",
                    StatusCode::NOT_FOUND => "Forløbet findes ikke i perioden.",
                    _ => "Forløbet kan ikke vises lige nu.",
                };
                return message(&state, Some(who), status, text);
            }
        };
    let f = &view.facts;
    let revisions = view
        .revisions
        .iter()
        .map(|r| RevisionRow {
            revision: r.revision,
            change: format!("{} ({})", change_text(r.change), r.reason),
            recorded_on: fmt::date(r.recorded_on),
            decision: r.decision.as_ref().map_or("annulleret".into(), |d| {
                format!(
                    "{}, behovsscore {}, gruppe {}, takstkatalog {}, {}",
                    fmt::kind(d.kind),
                    d.need_score,
                    d.group.map_or("–".into(), |g| g.to_string()),
                    d.table,
                    tariff_text(&d.tariff)
                )
            }),
            rule: r
                .decision
                .as_ref()
                .map_or(String::new(), |d| d.rule.clone()),
            end: r.end.map_or("–".into(), |e| {
                format!(
                    "{} ({})",
                    fmt::date(e),
                    fmt::end_reason(r.end_reason.unwrap_or("planned"))
                )
            }),
            evidence: r
                .decision
                .as_ref()
                .map(|d| {
                    d.evidence
                        .iter()
                        .map(|e| EvidenceRow {
                            kind: e.kind.as_str(),
                            id: crate::domain::shown(&e.id).trim_matches('`').to_owned(),
                            version: e.version_at.to_rfc3339(),
                            hash: e.hash.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    let parts = f
        .months
        .iter()
        .map(|p| PartRow {
            month: fmt::month(p.month),
            team: p.team.as_ref().map_or_else(
                || "uden team".into(),
                |t| state.scope_title(&Scope::Team(t.clone())),
            ),
            days: fmt::number(Decimal::from(p.days), 0),
            income: fmt::kroner(p.income),
        })
        .collect();
    render(
        StatusCode::OK,
        &CoursePage {
            frame: Frame::new(&state, who, "Forløb".into(), None),
            id: f.id.0.clone(),
            track: fmt::track(Some(f.track)),
            kind: fmt::kind(f.kind),
            score: f.need_score.to_string(),
            group: f.group.map_or("–".into(), |g| g.to_string()),
            tariff: tariff_text(&f.tariff),
            start: fmt::date(f.start),
            planned_end: fmt::date(f.planned_end),
            end: fmt::date(f.end),
            end_reason: fmt::end_reason(f.end_reason),
            recorded: !view.revisions.is_empty(),
            revisions,
            parts,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Data-quality findings, for people
// ---------------------------------------------------------------------------------------------

/// What a finding means and what to do about it, in Danish.
pub(super) fn explain_finding(key: &QualityKey, count: u64) -> (String, String) {
    let n = fmt::number(Decimal::from(count), 0);
    let track_of = |d: &str| match d.split([' ', '/']).next() {
        Some("care") => "pleje",
        Some("nursing") => "sygepleje",
        _ => "sporet",
    };
    let rest = |d: &str| {
        d.split_once([' ', '/'])
            .map_or(String::new(), |(_, r)| r.to_owned())
    };
    let d = key.detail.as_str();
    match key.kind {
        "unknown_code" => (
            format!("{n} bevilling(er) har interventionskoden «{d}», som ikke findes i mappings/interventions.csv. De giver ingen takst, før koden er mappet."),
            "Tilføj koden til mappings/interventions.csv med spor og forløbstype, og kør validate. Næste nat beregnes forløbene.".into(),
        ),
        "no_tariff_table" => (
            format!("{n} forløb kunne ikke starte: der er intet takstkatalog for {} i {}.", track_of(d), rest(d)),
            "Læg årets takstkatalog i mappings/tariffs.toml (calibrate kan foreslå det), og kør validate.".into(),
        ),
        "no_need_group" => (
            format!("{n} gang(e) faldt behovsscoren {} uden for takstkatalogets grupper for {}.", rest(d), track_of(d)),
            "Ret grupperne i mappings/tariffs.toml, så de dækker alle behovsscorer fra 0 og op.".into(),
        ),
        "no_individual_rule" => (
            format!("{n} forløb har en bevilling mappet som individuel, men takstkataloget for {} har ingen individuel regel.", track_of(d)),
            "Tilføj individual_threshold og hourly_rate i takstkataloget, eller map koden anderledes.".into(),
        ),
        "tariff_table_changed" => (
            format!("Takstkataloget {d} er ændret, efter at {n} beslutning(er) brugte det. De beholder deres låste takst."),
            format!("Skal ændringen gælde dem: kør reprice --table {d} --reason \"…\" (se forskellen først med --dry-run)."),
        ),
        "days_without_team" => (
            format!("{n} forløbsdage i {} uden team (SOR-kode {}). De betales til fallback-omkostningsstedet.", track_of(d), rest(d)),
            "Tilføj SOR-koden til et team i mappings/teams.toml, eller borgerne til teamrosteren.".into(),
        ),
        "actuals_unknown_cost_centre" => (
            format!("Regnskabsfilerne har omkostninger på omkostningssted {d}, som hverken er et teams eller fallback-omkostningsstedet; de er ikke talt med."),
            "Ret omkostningsstedet i mappings/teams.toml eller i økonomisystemets udtræk.".into(),
        ),
        other => (
            format!("{n} fund af typen {other}."),
            "Se loggen for den nattelige kørsel.".into(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// What if: a draft tariff table's budget effect (management)
// ---------------------------------------------------------------------------------------------

struct DraftLink {
    href: String,
    name: String,
    current: bool,
}

struct WhatIfMonthRow {
    team: String,
    track: &'static str,
    month: String,
    days: String,
    in_force: String,
    draft: String,
    difference: String,
    value: String,
}

struct WhatIfCellRow {
    track: &'static str,
    year: i32,
    kind: &'static str,
    group: String,
    courses: String,
    days: String,
    in_force: String,
    draft: String,
    difference: String,
    value: String,
}

#[derive(Template)]
#[template(path = "cockpit/whatif.html")]
struct WhatIfPage {
    frame: Frame,
    configured: bool,
    drafts: Vec<DraftLink>,
    problems: Vec<String>,
    period: String,
    summary: String,
    months: Vec<WhatIfMonthRow>,
    cells: Vec<WhatIfCellRow>,
    total_in_force: String,
    total_draft: String,
    total_difference: String,
}

#[derive(Deserialize)]
pub(super) struct WhatIfQuery {
    draft: Option<String>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
}

/// The draft files of the folder (`*.toml` directly in it, by name; at most 200).
fn draft_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".toml") && !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.truncate(200);
    names
}

pub(super) async fn whatif(
    State(state): State<CockpitState>,
    headers: HeaderMap,
    Query(q): Query<WhatIfQuery>,
) -> Response {
    let who = match signed_in(&state, &headers) {
        Ok(w) => w,
        Err(r) => return r,
    };
    // The comparison is the whole municipality's: management only.
    if !state.allowed(who, &Scope::Municipality, "/cockpit/whatif") {
        return message(
            &state,
            Some(who),
            StatusCode::FORBIDDEN,
            "Sammenligningen af takstkataloger er for ledelsen (hele kommunen).",
        );
    }
    let (from, to) = match state.period(q.from, q.to) {
        Ok(p) => p,
        Err(m) => return message(&state, Some(who), StatusCode::BAD_REQUEST, m),
    };
    let names = state
        .drafts_dir
        .as_deref()
        .map(draft_files)
        .unwrap_or_default();
    let chosen = q.draft.filter(|d| names.contains(d));
    let drafts = names
        .iter()
        .map(|n| DraftLink {
            href: format!("/cockpit/whatif?draft={n}&from={from}&to={to}"),
            name: n.clone(),
            current: chosen.as_deref() == Some(n),
        })
        .collect();
    let mut page = WhatIfPage {
        frame: Frame::new(&state, who, "Hvad nu hvis – takstkatalog".into(), None),
        configured: state.drafts_dir.is_some(),
        drafts,
        problems: Vec::new(),
        period: format!("{} – {}", fmt::date(from), fmt::date(to)),
        summary: String::new(),
        months: Vec::new(),
        cells: Vec::new(),
        total_in_force: String::new(),
        total_draft: String::new(),
        total_difference: String::new(),
    };
    let (Some(name), Some(dir)) = (chosen, state.drafts_dir.as_deref()) else {
        return render(StatusCode::OK, &page);
    };
    let tables = match crate::mapping::load::load_tariffs_file(&dir.join(&name)) {
        Ok(t) => t,
        Err(diags) => {
            // The loader's messages name file, line and key (in English, as `validate` writes
            // them); the page says in Danish what they are.
            page.problems = std::iter::once(format!(
                "Kladden {name} kan ikke bruges som tarifftabel. Rettes i filen:"
            ))
            .chain(diags.iter().map(ToString::to_string))
            .collect();
            return render(StatusCode::OK, &page);
        }
    };
    let w = match crate::pipeline::whatif::whatif(
        &state.store,
        &state.loaded.mappings,
        state.loaded.settings.time_zone,
        &tables,
        from,
        to,
    )
    .await
    {
        Ok(w) => w,
        Err(e) => {
            page.problems = vec![format!("{e:#}")];
            return render(StatusCode::OK, &page);
        }
    };
    page.summary = format!(
        "{} i stedet for {}; {} registrerede beslutninger prissat med udkastet. Intet gemmes eller sendes.",
        name,
        w.drafts
            .iter()
            .map(|(t, replaces)| if *replaces {
                format!("takstkataloget {t}")
            } else {
                format!("intet katalog ({t} er nyt)")
            })
            .collect::<Vec<_>>()
            .join(", "),
        w.recorded_repriced
    );
    page.months = w
        .months
        .iter()
        .map(|m| WhatIfMonthRow {
            team: if m.team == "unassigned" {
                "uden team".into()
            } else {
                state.scope_title(&Scope::Team(
                    crate::domain::TeamId::parse(&m.team).expect("a team id"),
                ))
            },
            track: fmt::track(Some(m.track)),
            // `YYYY-MM` as people read it (`februar 2027`).
            month: NaiveDate::parse_from_str(&format!("{}-01", m.month), "%Y-%m-%d")
                .map_or_else(|_| m.month.clone(), |d| fmt::month(YearMonth::of(d))),
            days: fmt::number(Decimal::from(m.course_days), 0),
            in_force: fmt::kroner(m.in_force),
            draft: fmt::kroner(m.draft),
            difference: fmt::kroner(m.difference),
            value: m.difference.to_string(),
        })
        .collect();
    page.cells = w
        .cells
        .iter()
        .map(|c| WhatIfCellRow {
            track: fmt::track(Some(c.track)),
            year: c.year,
            kind: fmt::kind(c.kind),
            group: c.group.map_or("–".into(), |g| g.to_string()),
            courses: fmt::number(Decimal::from(c.courses), 0),
            days: fmt::number(Decimal::from(c.course_days), 0),
            in_force: fmt::kroner(c.in_force),
            draft: fmt::kroner(c.draft),
            difference: fmt::kroner(c.difference),
            value: c.difference.to_string(),
        })
        .collect();
    page.total_in_force = fmt::kroner(w.total_in_force);
    page.total_draft = fmt::kroner(w.total_draft);
    page.total_difference = fmt::kroner(w.total_draft - w.total_in_force);
    render(StatusCode::OK, &page)
}
