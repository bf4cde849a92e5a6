//! The configuration of a KMD Nexus source (`[source.nexus]`) and its grant-code mapping file.

use crate::sources::fhir_pull::PullConfig;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::Path;

/// Most patients per list page: Nexus answers a larger page with 414 (the page's link names
/// its ids and grows too long).
pub const MAX_PAGE_SIZE: u32 = 50;

/// How to reach a KMD Nexus instance and read it. Every key but `api_root`, `token_url`,
/// `client_id` and `organisations` has a default; every field path that public code does not
/// show is here, with the default of `deploy/nexus-wire.md`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NexusConfig {
    /// The API root, `https://{instance}.nexus.kmd.dk/api/core/mobile/{instance}/v2/`.
    pub api_root: String,
    /// The token endpoint,
    /// `https://iam.nexus.kmd.dk/authx/realms/{instance}/protocol/openid-connect/token`.
    pub token_url: String,
    /// The OAuth2 client id.
    pub client_id: String,
    /// The client secret: from the source's `secret_file` or `secret_env`, never this file
    /// (a `client_secret` key is refused as unknown).
    #[serde(skip)]
    pub client_secret: Option<SecretString>,
    /// The Nexus organisation ids whose patients are read. At least one.
    pub organisations: Vec<i64>,
    /// Patients per list page, 1-50. Default 50.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Most requests per second to Nexus (a shared system: be gentle). Default 10.
    #[serde(default = "default_rate")]
    pub requests_per_second: u32,
    /// Patients fetched at once (each one request at a time), within the rate limit. Default 4,
    /// at most 32.
    #[serde(default = "default_concurrent")]
    pub concurrent_patients: usize,
    /// Time limit of one request in seconds. Default 30.
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Retries of one request. Default 5.
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// First backoff in ms. Default 500.
    #[serde(default = "default_backoff_initial")]
    pub backoff_initial_ms: u64,
    /// Longest backoff in ms, also the cap of a `Retry-After`. Default 30000.
    #[serde(default = "default_backoff_max")]
    pub backoff_max_ms: u64,
    /// Largest response body in bytes. Default 16 MiB.
    #[serde(default = "default_max_bytes")]
    pub max_response_bytes: u64,
    /// Most patients read in one pull (a guard against a runaway organisation). Default 100000.
    #[serde(default = "default_max_patients")]
    pub max_patients: usize,
    /// The first pull reads calendar events from this many days back. Default 400.
    #[serde(default = "default_history_days")]
    pub history_days: u32,
    /// Later pulls re-read this many days back (Nexus has no change feed: a visit registered
    /// late is caught within this window). Default 14.
    #[serde(default = "default_window_days")]
    pub calendar_days: u32,
    /// The `CITIZEN_PATHWAY` view read: the one whose name ends with this. Default `- Alt`.
    #[serde(default = "default_pathway_view")]
    pub pathway_view: String,
    /// The `CITIZEN_CALENDAR` view read, by name; default the first.
    #[serde(default)]
    pub calendar_view: Option<String>,
    /// The grant-code mapping file, relative to the mappings folder. Default
    /// `nexus_grants.csv`.
    #[serde(default = "default_grants_file")]
    pub grants_file: String,
    /// Workflow states.
    #[serde(default)]
    pub workflow_states: WorkflowStates,
    /// Where a patient says deceased.
    #[serde(default)]
    pub patient: PatientPaths,
    /// The pathway's condition leaves and their fields.
    #[serde(default)]
    pub conditions: ConditionPaths,
    /// The fields of a calendar event.
    #[serde(default)]
    pub calendar: CalendarPaths,
}

/// Workflow-state names and what they mean; any other name is in force.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowStates {
    /// Ended: the grant ends on its billing end date, else the day first seen so.
    #[serde(default = "default_completed")]
    pub completed: Vec<String>,
    /// Never in force: the grant is withdrawn.
    #[serde(default = "default_withdrawn")]
    pub withdrawn: Vec<String>,
}

impl Default for WorkflowStates {
    fn default() -> Self {
        Self {
            completed: default_completed(),
            withdrawn: default_withdrawn(),
        }
    }
}

/// Where a patient says deceased (JSON pointer, and the values that mean it).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientPaths {
    /// Default `/patientState/name`.
    #[serde(default = "default_deceased_path")]
    pub deceased_path: String,
    /// Default `["Død"]`.
    #[serde(default = "default_deceased_values")]
    pub deceased_values: Vec<String>,
}

impl Default for PatientPaths {
    fn default() -> Self {
        Self {
            deceased_path: default_deceased_path(),
            deceased_values: default_deceased_values(),
        }
    }
}

/// The condition leaves of the pathway tree and their fields (JSON pointers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionPaths {
    /// The leaf type. Default `conditionReference`.
    #[serde(default = "default_condition_leaf")]
    pub leaf_type: String,
    /// Default `/id`.
    #[serde(default = "id_path")]
    pub id: String,
    /// The FSIII condition code. Default `/code`.
    #[serde(default = "default_condition_code")]
    pub code: String,
    /// Default `/state/name`.
    #[serde(default = "default_condition_state")]
    pub state: String,
    /// States meaning the condition is open. Default `["Aktiv"]`.
    #[serde(default = "default_active_states")]
    pub active_states: Vec<String>,
    /// Boolean: on the problem list. Default `/inFocus`.
    #[serde(default = "default_in_focus")]
    pub in_focus: String,
    /// The functional level code. Default `/level`.
    #[serde(default = "default_level")]
    pub level: String,
    /// The expected level code (the goal). Default `/expectedLevel`.
    #[serde(default = "default_expected_level")]
    pub expected_level: String,
}

impl Default for ConditionPaths {
    fn default() -> Self {
        Self {
            leaf_type: default_condition_leaf(),
            id: id_path(),
            code: default_condition_code(),
            state: default_condition_state(),
            active_states: default_active_states(),
            in_focus: default_in_focus(),
            level: default_level(),
            expected_level: default_expected_level(),
        }
    }
}

/// The fields of a calendar event (JSON pointers).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarPaths {
    /// Default `/id`.
    #[serde(default = "id_path")]
    pub id: String,
    /// Planned start. Default `/startDate`.
    #[serde(default = "default_planned_start")]
    pub planned_start: String,
    /// Planned end. Default `/endDate`.
    #[serde(default = "default_planned_end")]
    pub planned_end: String,
    /// Registered start (used where present). Default `/registeredStartDate`.
    #[serde(default = "default_registered_start")]
    pub registered_start: String,
    /// Registered end. Default `/registeredEndDate`.
    #[serde(default = "default_registered_end")]
    pub registered_end: String,
    /// Default `/status/name`.
    #[serde(default = "default_event_status")]
    pub status: String,
    /// Statuses of a delivered visit. Default `["Udført"]`.
    #[serde(default = "default_delivered")]
    pub delivered_statuses: Vec<String>,
    /// Default `/location/name`.
    #[serde(default = "default_location")]
    pub location: String,
    /// Locations meaning the clinic. Default `["Klinik"]`.
    #[serde(default = "default_clinic")]
    pub clinic_locations: Vec<String>,
    /// The professional's id. Default `/professional/id`.
    #[serde(default = "default_professional")]
    pub professional: String,
    /// The grant ids delivered (an array). Default `/grantIds`.
    #[serde(default = "default_grant_ids")]
    pub grants: String,
}

impl Default for CalendarPaths {
    fn default() -> Self {
        Self {
            id: id_path(),
            planned_start: default_planned_start(),
            planned_end: default_planned_end(),
            registered_start: default_registered_start(),
            registered_end: default_registered_end(),
            status: default_event_status(),
            delivered_statuses: default_delivered(),
            location: default_location(),
            clinic_locations: default_clinic(),
            professional: default_professional(),
            grants: default_grant_ids(),
        }
    }
}

fn s(v: &str) -> String {
    v.to_owned()
}
fn v(values: &[&str]) -> Vec<String> {
    values.iter().map(|x| s(x)).collect()
}
fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}
fn default_rate() -> u32 {
    10
}
fn default_concurrent() -> usize {
    4
}
fn default_timeout() -> u64 {
    30
}
fn default_retries() -> u32 {
    5
}
fn default_backoff_initial() -> u64 {
    500
}
fn default_backoff_max() -> u64 {
    30_000
}
fn default_max_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_max_patients() -> usize {
    100_000
}
fn default_history_days() -> u32 {
    400
}
fn default_window_days() -> u32 {
    14
}
fn default_pathway_view() -> String {
    s("- Alt")
}
fn default_grants_file() -> String {
    s(GRANTS_FILE)
}
fn default_completed() -> Vec<String> {
    v(&["Afsluttet", "Ophørt", "Afgjort"])
}
fn default_withdrawn() -> Vec<String> {
    v(&["Annulleret", "Fjernet", "Frafaldet", "Afslået"])
}
fn default_deceased_path() -> String {
    s("/patientState/name")
}
fn default_deceased_values() -> Vec<String> {
    v(&["Død"])
}
fn default_condition_leaf() -> String {
    s("conditionReference")
}
fn id_path() -> String {
    s("/id")
}
fn default_condition_code() -> String {
    s("/code")
}
fn default_condition_state() -> String {
    s("/state/name")
}
fn default_active_states() -> Vec<String> {
    v(&["Aktiv"])
}
fn default_in_focus() -> String {
    s("/inFocus")
}
fn default_level() -> String {
    s("/level")
}
fn default_expected_level() -> String {
    s("/expectedLevel")
}
fn default_planned_start() -> String {
    s("/startDate")
}
fn default_planned_end() -> String {
    s("/endDate")
}
fn default_registered_start() -> String {
    s("/registeredStartDate")
}
fn default_registered_end() -> String {
    s("/registeredEndDate")
}
fn default_event_status() -> String {
    s("/status/name")
}
fn default_delivered() -> Vec<String> {
    v(&["Udført"])
}
fn default_location() -> String {
    s("/location/name")
}
fn default_clinic() -> Vec<String> {
    v(&["Klinik"])
}
fn default_professional() -> String {
    s("/professional/id")
}
fn default_grant_ids() -> String {
    s("/grantIds")
}

impl NexusConfig {
    /// Everything wrong with the settings (not the secret's presence: the caller checks it),
    /// each with its key (dotted, within `[source.nexus]`) for the configuration's line.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, value) in [("api_root", &self.api_root), ("token_url", &self.token_url)] {
            match url::Url::parse(value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
                _ => out.push((
                    key,
                    format!(
                        "{key} must be an http or https URL like https://kommune.nexus.kmd.dk/..."
                    ),
                )),
            }
        }
        if self.pathway_view.trim().is_empty() {
            out.push((
                "pathway_view",
                "pathway_view must not be empty (it would match any view)".into(),
            ));
        }
        let states = &self.workflow_states;
        for both in states
            .completed
            .iter()
            .filter(|c| states.withdrawn.contains(c))
        {
            out.push((
                "workflow_states",
                format!("workflow state `{both}` is listed both as completed and as withdrawn"),
            ));
        }
        if self.organisations.is_empty() {
            out.push((
                "organisations",
                "organisations must name at least one Nexus organisation id".into(),
            ));
        }
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            out.push((
                "page_size",
                format!(
                    "page_size must be 1-{MAX_PAGE_SIZE} (Nexus refuses larger pages), it is {}",
                    self.page_size
                ),
            ));
        }
        if !(1..=32).contains(&self.concurrent_patients) {
            out.push((
                "concurrent_patients",
                format!(
                    "concurrent_patients must be 1-32, it is {}",
                    self.concurrent_patients
                ),
            ));
        }
        if self.requests_per_second == 0 {
            out.push((
                "requests_per_second",
                "requests_per_second must be at least 1".into(),
            ));
        }
        if self.calendar_days == 0 || self.history_days < self.calendar_days {
            out.push((
                "calendar_days",
                "calendar_days must be at least 1 and history_days at least calendar_days".into(),
            ));
        }
        let pointers = [
            ("patient.deceased_path", &self.patient.deceased_path),
            ("conditions.id", &self.conditions.id),
            ("conditions.code", &self.conditions.code),
            ("conditions.state", &self.conditions.state),
            ("conditions.in_focus", &self.conditions.in_focus),
            ("conditions.level", &self.conditions.level),
            ("conditions.expected_level", &self.conditions.expected_level),
            ("calendar.id", &self.calendar.id),
            ("calendar.planned_start", &self.calendar.planned_start),
            ("calendar.planned_end", &self.calendar.planned_end),
            ("calendar.registered_start", &self.calendar.registered_start),
            ("calendar.registered_end", &self.calendar.registered_end),
            ("calendar.status", &self.calendar.status),
            ("calendar.location", &self.calendar.location),
            ("calendar.professional", &self.calendar.professional),
            ("calendar.grants", &self.calendar.grants),
        ];
        for (key, p) in pointers {
            if !p.starts_with('/') {
                out.push((
                    key,
                    format!(
                        "{key} must be a JSON pointer starting with `/`, like `/a/b` for {{\"a\": {{\"b\": ...}}}}"
                    ),
                ));
            }
        }
        out
    }

    /// The HTTP client's settings.
    pub(crate) fn http(&self) -> PullConfig {
        let mut cfg = PullConfig::new(self.api_root.clone());
        cfg.token_url = Some(self.token_url.clone());
        cfg.client_id = Some(self.client_id.clone());
        cfg.client_secret = self.client_secret.clone();
        cfg.timeout_secs = self.timeout_secs;
        cfg.max_retries = self.max_retries;
        cfg.backoff_initial_ms = self.backoff_initial_ms;
        cfg.backoff_max_ms = self.backoff_max_ms;
        cfg.max_page_bytes = self.max_response_bytes;
        cfg
    }
}

/// The grant-code mapping file's default name, in the mappings folder.
pub const GRANTS_FILE: &str = "nexus_grants.csv";
/// Its header.
pub const GRANTS_HEADER: [&str; 3] = ["section", "name", "code"];

/// Nexus grants (paragraph section and grant name) to the intervention codes of
/// `interventions.csv`: Nexus grants carry a municipality's own names, not FSIII codes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantCodes {
    by_grant: HashMap<(String, String), String>,
    /// The file and each row's line and code (for checking the codes against the mappings).
    file: String,
    lines: Vec<(u64, String)>,
}

impl GrantCodes {
    /// From `(section, name, code)` rows.
    pub fn new(rows: impl IntoIterator<Item = (String, String, String)>) -> Self {
        Self {
            by_grant: rows
                .into_iter()
                .map(|(s, n, c)| ((normalise(&s), normalise(&n)), c))
                .collect(),
            file: String::new(),
            lines: Vec::new(),
        }
    }

    /// Each row's code that `known` does not know, as a message naming file and line.
    pub fn unknown_codes(&self, known: impl Fn(&str) -> bool) -> Vec<String> {
        self.lines
            .iter()
            .filter(|(_, code)| !known(code))
            .map(|(line, code)| {
                format!(
                    "{}: line {line}: code {} is not in interventions.csv (UUID or legacy form)",
                    self.file,
                    crate::domain::shown(code)
                )
            })
            .collect()
    }

    /// The intervention code of a grant, by its paragraph section and name (compared without
    /// case and with runs of spaces as one).
    pub fn code(&self, section: &str, name: &str) -> Option<&str> {
        self.by_grant
            .get(&(normalise(section), normalise(name)))
            .map(String::as_str)
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.by_grant.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.by_grant.is_empty()
    }

    /// Reads the file: every problem with its line.
    pub fn load(path: &Path) -> Result<Self, Vec<String>> {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| vec![format!("{name}: {e}")])?;
        if bytes.len() > 16 * 1024 * 1024 {
            return Err(vec![format!("{name}: larger than 16 MiB")]);
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
            vec![format!(
                "{name}: line {line}: not UTF-8 (saved as Windows-1252 by a spreadsheet? save it as CSV UTF-8)"
            )]
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut problems = Vec::new();
        match reader.headers() {
            Ok(h) if h.iter().eq(GRANTS_HEADER.iter().copied()) => {}
            Ok(h) => problems.push(format!(
                "{name}: line 1: {}",
                crate::sources::csv_header_problem(&GRANTS_HEADER, h)
            )),
            Err(e) => problems.push(format!("{name}: line 1: {e}")),
        }
        let mut rows = Vec::new();
        let mut lines = Vec::new();
        let mut seen: HashMap<(String, String), u64> = HashMap::new();
        for record in reader.records() {
            if problems.len() >= 20 {
                problems.push(format!("{name}: more problems follow; fix these first"));
                break;
            }
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    problems.push(format!("{name}: line {line}: {e}"));
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != 3 {
                problems.push(format!(
                    "{name}: line {line}: 3 fields expected (section,name,code), found {}",
                    record.len()
                ));
                continue;
            }
            let (section, grant, code) = (&record[0], &record[1], &record[2]);
            if grant.is_empty() || code.is_empty() {
                problems.push(format!(
                    "{name}: line {line}: name and code must not be empty"
                ));
                continue;
            }
            let key = (normalise(section), normalise(grant));
            if let Some(first) = seen.get(&key) {
                problems.push(format!(
                    "{name}: line {line}: the grant `{section}` `{grant}` is already on line {first}"
                ));
                continue;
            }
            seen.insert(key, line);
            rows.push((section.to_owned(), grant.to_owned(), code.to_owned()));
            lines.push((line, code.to_owned()));
        }
        if problems.is_empty() {
            let mut codes = Self::new(rows);
            codes.file = name;
            codes.lines = lines;
            Ok(codes)
        } else {
            Err(problems)
        }
    }
}

fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}
