//! The cockpit's figures API over real HTTP on loopback, with a real SQLite file: who sees
//! which team (bearer tokens by their SHA-256, a trusted sign-on header), 401 and 403, and the
//! figures equal to those of the model.

use crate::common::*;
use progression_gateway::cockpit::{CockpitSettings, CockpitState, PrincipalSettings, router};
use progression_gateway::config;
use progression_gateway::store::Store;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

const LEADER_NORD: &str = "leder-nord-token-0123456789";
const MANAGEMENT: &str = "ledelse-token-9876543210";

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn principal(
    name: &str,
    token: Option<&str>,
    user: Option<&str>,
    teams: &[&str],
) -> PrincipalSettings {
    PrincipalSettings {
        name: name.into(),
        token_sha256: token.map(sha),
        user: user.map(str::to_owned),
        teams: teams.iter().map(|t| t.to_string()).collect(),
        all: teams.is_empty(),
    }
}

fn settings() -> CockpitSettings {
    CockpitSettings {
        trusted_header: Some("X-Remote-User".into()),
        principals: vec![
            principal("leder-nord", Some(LEADER_NORD), None, &["nord"]),
            principal("ledelse", Some(MANAGEMENT), None, &[]),
            principal("leder-syd", None, Some("syd-leder@kommune.dk"), &["syd"]),
        ],
        secure_cookie: false,
        session_hours: 8,
        drafts_dir: None,
    }
}

/// Worked examples A and B in nord, C moving from nord to syd on 16 January.
async fn start(dir: &Path) -> String {
    let url = format!("sqlite://{}", dir.join("gw.db").display());
    let store = Store::connect(&url).await.unwrap();
    for h in examples_abc() {
        store.put_batch(&versions_of(&h), None).await.unwrap();
    }
    let loaded =
        config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")).unwrap();
    // Draft tariff tables for the what-if view: the care table of 2027 with development
    // group 2 at 275.00 instead of 250.00, and a broken file.
    let drafts = dir.join("drafts");
    std::fs::create_dir_all(&drafts).unwrap();
    let mut draft = loaded
        .mappings
        .tariffs
        .table(progression_gateway::domain::Track::Care, 2027)
        .unwrap()
        .clone();
    draft.groups[1].development = "275.00".parse().unwrap();
    std::fs::write(drafts.join("pleje-2027-udkast.toml"), table_toml(&draft)).unwrap();
    std::fs::write(
        drafts.join("broken.toml"),
        "[[table]]\ntrack = \"care\"\nyear = \"x\"\n",
    )
    .unwrap();
    let mut s = settings();
    s.drafts_dir = Some(drafts);
    let state = CockpitState::new(store, Arc::new(loaded), &s).unwrap();
    format!("http://{}", spawn_server(router(state)).await)
}

async fn get(url: &str, auth: &[(&str, &str)]) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in auth {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn bearer(token: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn a_team_leader_sees_only_their_team_and_management_sees_all() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    let q = "from=2027-01-01&to=2027-01-31&track=care&figure=income";
    let nord = bearer(LEADER_NORD);
    let nord = [(nord.0, nord.1.as_str())];

    // Without a team: only nord's rows; 14,900.00 in January (A 28 x 250, B 20 x 260, C 15 x 180).
    let (status, body) = get(&format!("{base}/cockpit/api/figures?{q}"), &nord).await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["team"], "nord");
    assert_eq!(rows[0]["value"], "14900.00");

    // Another team, the days without a team, the municipality: 403.
    for team in ["syd", "unassigned", "municipality"] {
        let (status, body) = get(
            &format!("{base}/cockpit/api/figures?{q}&team={team}"),
            &nord,
        )
        .await;
        assert_eq!(status, 403, "{team}: {body}");
        assert!(body.contains("ikke adgang"), "{body}");
    }

    // Management: every team and the municipality (14,900.00 + 2,880.00).
    let m = bearer(MANAGEMENT);
    let (status, body) = get(
        &format!("{base}/cockpit/api/figures?{q}&team=municipality"),
        &[(m.0, m.1.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows[0]["value"], "17780.00");

    // The sign-on proxy's header names syd's leader: syd only.
    let (status, body) = get(
        &format!("{base}/cockpit/api/figures?{q}"),
        &[("X-Remote-User", "syd-leder@kommune.dk")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0]["team"].as_str(), rows[0]["value"].as_str()),
        (Some("syd"), Some("2880.00"))
    );
}

#[tokio::test]
async fn without_a_principal_the_answer_is_401_and_bad_queries_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    for auth in [
        vec![],
        vec![("Authorization", "Bearer not-a-configured-token")],
        vec![("X-Remote-User", "someone-else@kommune.dk")],
    ] {
        let (status, body) = get(&format!("{base}/cockpit/api/figures"), &auth).await;
        assert_eq!(status, 401, "{auth:?}: {body}");
        let (status, _) = get(&format!("{base}/cockpit/api/catalogue"), &auth).await;
        assert_eq!(status, 401);
    }
    let m = bearer(MANAGEMENT);
    let auth = [(m.0, m.1.as_str())];
    for q in [
        "figure=nope",
        "track=dental",
        "from=2027-02-01&to=2027-01-01",
        "format=xml",
    ] {
        let (status, body) = get(
            &format!("{base}/cockpit/api/figures?{q}&to=2027-01-31"),
            &auth,
        )
        .await;
        assert_eq!(status, 400, "{q}: {body}");
    }
    let (status, _) = get(
        &format!("{base}/cockpit/api/figures?team=nowhere&to=2027-01-31"),
        &auth,
    )
    .await;
    assert_eq!(status, 404);
    // The catalogue, in Danish, with every figure's definition.
    let (status, body) = get(&format!("{base}/cockpit/api/catalogue"), &auth).await;
    assert_eq!(status, 200);
    let defs: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert!(
        defs.iter()
            .any(|d| d["id"] == "self_reliance" && d["name"] == "Selvhjulpenhed")
    );
}

#[tokio::test]
async fn figures_as_csv_name_no_citizen() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    let m = bearer(MANAGEMENT);
    let (status, body) = get(
        &format!("{base}/cockpit/api/figures?from=2027-01-01&to=2027-03-31&format=csv"),
        &[(m.0, m.1.as_str())],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with("team,month,track,figure,value,numerator,denominator\n"),
        "{body}"
    );
    assert!(body.contains("nord,2027-01,care,outflow,1,1,\n"), "{body}");
    // No pseudonym (64 hex characters) anywhere.
    assert!(
        !body
            .split(|c: char| !c.is_ascii_hexdigit())
            .any(|w| w.len() >= 64),
        "{body}"
    );
}

#[test]
fn the_settings_name_what_is_wrong() {
    let teams = vec![progression_gateway::domain::TeamId::parse("nord").unwrap()];
    let mut s = settings();
    s.trusted_header = None;
    s.principals.push(PrincipalSettings {
        name: "both".into(),
        token_sha256: Some("abc".into()),
        user: None,
        teams: vec!["nord".into()],
        all: true,
    });
    let problems = s.problems(&teams).join("\n");
    assert!(
        problems.contains("`leder-syd`: a user needs cockpit.trusted_header"),
        "{problems}"
    );
    assert!(
        problems.contains("team `syd` is not in teams.toml"),
        "{problems}"
    );
    assert!(
        problems.contains("`both`: token_sha256 must be 64 hex characters"),
        "{problems}"
    );
    assert!(problems.contains("`both`: give teams"), "{problems}");
}

/// Every `data-figure`/`data-month`/`data-track`/`data-value` of a page: the API's value
/// (`""`: no data) the page carries beside the Danish text of each figure.
fn page_values(html: &str) -> Vec<(String, String, String, String)> {
    let attr = |tag: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        let at = tag.find(&key).unwrap_or_else(|| panic!("{name} in {tag}")) + key.len();
        tag[at..at + tag[at..].find('"').unwrap()].to_owned()
    };
    html.split("<td ")
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap()])
        .filter(|tag| tag.contains("data-figure="))
        .map(|tag| {
            (
                attr(tag, "data-figure"),
                attr(tag, "data-month"),
                attr(tag, "data-track"),
                attr(tag, "data-value"),
            )
        })
        .collect()
}

/// The API's values of a team over a period, by (figure, month, track).
async fn api_values(
    base: &str,
    auth: &[(&str, &str)],
    team: &str,
    to: &str,
) -> Vec<serde_json::Value> {
    let (status, body) = get(
        &format!("{base}/cockpit/api/figures?team={team}&track=all&from=2027-01-01&to={to}"),
        auth,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn assert_page_equals_api(cells: &[(String, String, String, String)], api: &[serde_json::Value]) {
    assert!(cells.len() >= 30, "a value per figure and month: {cells:?}");
    for (figure, month, track, value) in cells {
        let row = api
            .iter()
            .find(|r| {
                r["figure"] == figure.as_str()
                    && r["month"] == month.as_str()
                    && r["track"] == track.as_str()
            })
            .unwrap_or_else(|| panic!("{figure} {month} {track} not in the API"));
        assert_eq!(
            row["value"].as_str().unwrap_or(""),
            value,
            "{figure} {month} {track}"
        );
    }
}

#[tokio::test]
async fn a_team_page_is_danish_and_carries_the_apis_values() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    let m = bearer(MANAGEMENT);
    let auth = [(m.0, m.1.as_str())];
    let (status, html) = get(&format!("{base}/cockpit/team/nord?to=2027-02-20"), &auth).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains(r#"<html lang="da">"#));
    // Amounts, dates and months the Danish way: January's income 28 x 250 + 20 x 260 + 15 x 180.
    for text in [
        "14.900,00 kr.",
        "1. januar 2027 – 20. februar 2027",
        "januar 2027",
        "Tilgang",
        "Overgange mellem forløbstyper",
    ] {
        assert!(html.contains(text), "{text} not on the page");
    }
    // A's development course, ending on 28 March, is among the courses ending in the next
    // 14 days on 20 March, and not on 20 February.
    assert!(!html.contains(r#"id="ending""#), "nothing ends by 6 March");
    let (_, march) = get(&format!("{base}/cockpit/team/nord?to=2027-03-20"), &auth).await;
    let ending = &march[march.find(r#"id="ending""#).expect("the ending table")..];
    assert!(
        ending.contains("28. marts 2027") && ending.contains("udviklingsforløb"),
        "{ending}"
    );
    // Two charts, each with its tables; nothing fetched from elsewhere; no script.
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 2);
    assert!(
        !html.contains("<script")
            && !html
                .replace(r#"xmlns="http://www.w3.org/2000/svg""#, "")
                .contains("http")
    );
    // Every figure on the page has the API's value.
    let api = api_values(&base, &auth, "nord", "2027-02-20").await;
    assert_page_equals_api(&page_values(&html), &api);

    // The overview lists every team for management; the municipality's page exists.
    let (status, html) = get(&format!("{base}/cockpit?to=2027-02-20"), &auth).await;
    assert_eq!(status, 200);
    for t in ["Team Nord", "Team Syd", "Hele kommunen"] {
        assert!(html.contains(t), "{t}");
    }
    let (status, _) = get(
        &format!("{base}/cockpit/team/municipality?to=2027-02-20"),
        &auth,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_figure_drills_down_to_its_courses_and_a_course_to_its_decision_without_a_citizen() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    let m = bearer(MANAGEMENT);
    let auth = [(m.0, m.1.as_str())];
    // Outflow in nord, January, care: B (died 20 January).
    let (status, html) = get(
        &format!("{base}/cockpit/team/nord/figure/outflow?month=2027-01&track=care&to=2027-03-31"),
        &auth,
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("dødsfald") && html.contains("20. januar 2027"),
        "{html}"
    );
    assert_eq!(html.matches("/cockpit/course/").count(), 1, "{html}");
    let at = html.find("/cockpit/course/").unwrap();
    let link = &html[at..at + html[at..].find('"').unwrap()].replace("&#38;", "&");
    let (status, course) = get(&format!("{base}{link}"), &auth).await;
    assert_eq!(status, 200, "{course}");
    assert!(
        course.contains("stabiliseringsforløb") && course.contains("260,00 kr. pr. dag"),
        "{course}"
    );
    for page in [&html, &course] {
        assert!(
            !page
                .split(|c: char| !c.is_ascii_hexdigit())
                .any(|w| w.len() >= 64),
            "no pseudonym on a page"
        );
    }
}

/// A client that does not follow redirects, to see the page's answers themselves.
fn session_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_team_leader_signs_in_and_is_refused_another_teams_page_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    let c = session_client();
    // Not signed in: the page sends the browser to the sign-in form.
    let r = c
        .get(format!("{base}/cockpit/team/nord"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/cockpit/login");
    // A wrong token: 401 and the form again.
    let r = c
        .post(format!("{base}/cockpit/login"))
        .form(&[("token", "not-a-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Nøglen blev ikke genkendt")
    );
    // The leader's token: a session cookie, HttpOnly and SameSite=Strict.
    let r = c
        .post(format!("{base}/cockpit/login"))
        .form(&[("token", LEADER_NORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(LEADER_NORD), "the cookie is not the token");
    let jar = cookie.split(';').next().unwrap().to_owned();
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(
            [(
                reqwest::header::COOKIE,
                reqwest::header::HeaderValue::from_str(&jar).unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    // One team: the overview is the team's page.
    let r = c.get(format!("{base}/cockpit")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/cockpit/team/nord");
    let r = c
        .get(format!("{base}/cockpit/team/nord?to=2027-01-31"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Another team's page and data: 403, both.
    for path in [
        "/cockpit/team/syd?to=2027-01-31",
        "/cockpit/team/municipality?to=2027-01-31",
        "/cockpit/team/syd/figure/income?month=2027-01&track=care&to=2027-01-31",
        "/cockpit/api/figures?team=syd&to=2027-01-31",
        "/cockpit/api/courses?team=syd&month=2027-01&track=care&figure=income&to=2027-01-31",
        "/cockpit/api/ending?team=syd&to=2027-01-31",
        "/cockpit/api/findings?team=syd&to=2027-01-31",
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    // Signed out, the cookie no longer works.
    let r = c
        .post(format!("{base}/cockpit/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = c
        .get(format!("{base}/cockpit/team/nord"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "a closed session is no principal");
}

// ---------------------------------------------------------------------------------------------
// In a real headless browser: Debian's chromium driven through chromedriver (WebDriver).
// ---------------------------------------------------------------------------------------------

/// chromedriver on a free loopback port, stopped when dropped.
struct Driver {
    child: std::process::Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromium and chromedriver, or `None` (with the reason printed) when they are not installed
/// and `PROGRESSION_GATEWAY_TEST_BROWSER` is not `required` (`.ci/run` sets it: there the
/// browser test never skips).
async fn driver() -> Option<Driver> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .iter()
        .all(|p| Path::new(p).exists());
    if !found {
        assert_ne!(
            std::env::var("PROGRESSION_GATEWAY_TEST_BROWSER").as_deref(),
            Ok("required"),
            "chromium and chromium-driver are required (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "skipped: chromium or chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{}/status", d.url)).await
            && r.status().is_success()
        {
            return Some(d);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer on {}", d.url);
}

async fn browser(d: &Driver) -> fantoccini::Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--hide-scrollbars", "--window-size=1300,2600", "--lang=da-DK"]
        }),
    );
    fantoccini::ClientBuilder::rustls()
        .expect("a WebDriver client")
        .capabilities(caps)
        .connect(&d.url)
        .await
        .expect("a chromium session")
}

/// Where the team overview's screenshot is written for a person to look at.
fn screenshot_path() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("cockpit-screenshots").join("team-nord.png")
}

#[tokio::test]
async fn in_a_browser_a_team_leader_signs_in_sees_the_apis_figures_and_not_another_team() {
    use fantoccini::Locator;
    let Some(d) = driver().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    let b = browser(&d).await;
    let result = async {
        // Sign in through the form, as a person does.
        b.goto(&format!("{base}/cockpit/team/nord?to=2027-03-20"))
            .await?;
        assert!(b.current_url().await?.path().ends_with("/cockpit/login"));
        b.find(Locator::Id("token"))
            .await?
            .send_keys(LEADER_NORD)
            .await?;
        b.find(Locator::Css("form.login button"))
            .await?
            .click()
            .await?;
        b.wait().for_element(Locator::Id("team")).await?;
        assert_eq!(b.current_url().await?.path(), "/cockpit/team/nord");

        // The page as the browser rendered it: every figure's value is the API's.
        b.goto(&format!("{base}/cockpit/team/nord?to=2027-03-20"))
            .await?;
        let heading = b.find(Locator::Css("h1#team")).await?.text().await?;
        assert_eq!(heading, "Team Nord");
        let mut cells = Vec::new();
        for td in b.find_all(Locator::Css("td[data-figure]")).await? {
            let attr = |name: &'static str| {
                let td = td.clone();
                async move { td.attr(name).await.map(|v| v.unwrap_or_default()) }
            };
            cells.push((
                attr("data-figure").await?,
                attr("data-month").await?,
                attr("data-track").await?,
                attr("data-value").await?,
            ));
        }
        let m = bearer(MANAGEMENT);
        let api = api_values(&base, &[(m.0, m.1.as_str())], "nord", "2027-03-20").await;
        assert_page_equals_api(&cells, &api);
        // January's income, as a person reads it in the table.
        let income = b
            .find(Locator::Css(
                r#"td[data-figure="income"][data-month="2027-01"]"#,
            ))
            .await?
            .text()
            .await?;
        assert_eq!(income, "14.900,00 kr.");
        // Both charts drawn, with a bar for January's income.
        assert_eq!(b.find_all(Locator::Css("svg.chart")).await?.len(), 2);
        std::fs::create_dir_all(screenshot_path().parent().unwrap()).unwrap();
        std::fs::write(screenshot_path(), b.screenshot().await?).unwrap();

        // Another team's page: refused, in Danish. The same session's cookie, asked for the
        // page and the data directly: 403 both.
        b.goto(&format!("{base}/cockpit/team/syd?to=2027-03-20"))
            .await?;
        let h1 = b.find(Locator::Css("h1")).await?.text().await?;
        assert_eq!(h1, "Ingen adgang");
        let cookie = b
            .get_named_cookie(progression_gateway::cockpit::session::COOKIE)
            .await?;
        let jar = format!("{}={}", cookie.name(), cookie.value());
        for path in [
            "/cockpit/team/syd?to=2027-03-20",
            "/cockpit/api/figures?team=syd&to=2027-03-20",
        ] {
            let r = reqwest::Client::new()
                .get(format!("{base}{path}"))
                .header("cookie", &jar)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{path}");
        }
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    b.close().await.ok();
    result.expect("the browser session");
    let png = std::fs::read(screenshot_path()).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot"
    );
}

#[tokio::test]
async fn a_course_is_seen_only_by_those_whose_team_it_ran_in() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    let m = bearer(MANAGEMENT);
    let (status, body) = get(
        &format!("{base}/cockpit/api/courses?team=nord&month=2027-01&track=care&figure=course_days&to=2027-03-31"),
        &[(m.0, m.1.as_str())],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    let id_of = |kind: &str, score: u64| {
        rows.iter()
            .find(|r| r["kind"] == kind && r["need_score"] == score)
            .unwrap_or_else(|| panic!("{kind} {score} in {rows:?}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    // A (development, nord only) and C (stabilisation, score 5: nord, then syd from 16 January).
    let (a, c) = (id_of("development", 6), id_of("stabilisation", 5));
    let syd = [("X-Remote-User", "syd-leder@kommune.dk")];
    for path in [
        format!("/cockpit/api/course/{a}"),
        format!("/cockpit/course/{a}"),
    ] {
        let (status, _) = get(&format!("{base}{path}?to=2027-03-31"), &syd).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, body) = get(
        &format!("{base}/cockpit/api/course/{c}?to=2027-03-31"),
        &syd,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let course: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(course["facts"]["kind"], "stabilisation");
    assert!(
        !body.contains("citizen"),
        "no citizen in a course's answer: {body}"
    );
    let (status, _) = get(
        &format!("{base}/cockpit/api/course/nope?to=2027-03-31"),
        &syd,
    )
    .await;
    assert_eq!(status, 404);
}

/// A tariff table in the format of `mappings/tariffs.toml`.
fn table_toml(t: &progression_gateway::mapping::TariffTable) -> String {
    let mut s = format!(
        "[[table]]\ntrack = \"{}\"\nyear = {}\nbasis = \"functional_level\"\n",
        t.track, t.year
    );
    if let Some(i) = &t.individual {
        s.push_str(&format!(
            "individual_threshold = {}\nhourly_rate = \"{:.2}\"\n",
            i.threshold, i.hourly_rate
        ));
    }
    for g in &t.groups {
        s.push_str(&format!(
            "[[table.group]]\ngroup = {}\nmin = {}\n{}development = \"{:.2}\"\nstabilisation = \"{:.2}\"\n",
            g.group,
            g.min,
            g.max.map_or(String::new(), |m| format!("max = {m}\n")),
            g.development,
            g.stabilisation
        ));
    }
    s
}

#[tokio::test]
async fn management_sees_a_draft_tables_effect_and_a_team_leader_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let base = start(dir.path()).await;
    let m = bearer(MANAGEMENT);
    let auth = [(m.0, m.1.as_str())];
    let (status, html) = get(&format!("{base}/cockpit/whatif?to=2027-03-31"), &auth).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("pleje-2027-udkast.toml") && html.contains("broken.toml"));
    // A's 84 development days in group 2 at 25.00 more: 2.100,00 kr., all in nord.
    let (status, html) = get(
        &format!(
            "{base}/cockpit/whatif?draft=pleje-2027-udkast.toml&from=2027-01-01&to=2027-03-31"
        ),
        &auth,
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let total = &html[html.find(r#"id="whatif-total""#).unwrap()..];
    assert!(total.contains("2.100,00 kr."), "{total}");
    let cells = &html[html.find(r#"id="whatif-cells""#).unwrap()..];
    assert_eq!(
        cells.matches(r#"data-value="2100.00""#).count(),
        1,
        "{cells}"
    );
    // A broken draft is named with its line; a name not in the folder is not read.
    let (_, html) = get(
        &format!("{base}/cockpit/whatif?draft=broken.toml&to=2027-03-31"),
        &auth,
    )
    .await;
    assert!(html.contains("broken.toml:3"), "{html}");
    let (status, html) = get(
        &format!("{base}/cockpit/whatif?draft=../gw.db&to=2027-03-31"),
        &auth,
    )
    .await;
    assert_eq!(status, 200);
    assert!(!html.contains("whatif-total"));
    // A team leader: 403.
    let l = bearer(LEADER_NORD);
    let (status, _) = get(&format!("{base}/cockpit/whatif"), &[(l.0, l.1.as_str())]).await;
    assert_eq!(status, 403);
}
