//! The demo's working folder: the mappings, the secrets and the configuration file.
//!
//! Layout of the folder (the same whether it is kept or temporary):
//!
//! ```text
//! .progression-gateway-demo   marker: this folder holds a demo (see `WorkDir::prepare`)
//! README.txt                  what is here
//! gateway.toml                the configuration the run loads with the real loader
//! gateway.db (-wal, -shm)     the SQLite store
//! mappings/                   the repository's mappings, and teams.toml with a third team
//! secrets/                    random per demo, mode 0600
//! ```

use secrecy::{ExposeSecret, SecretString};
use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The marker file that says a folder holds a demo.
pub(crate) const MARKER: &str = ".progression-gateway-demo";
/// The configuration file's name in the working folder.
pub(crate) const CONFIG_FILE: &str = "gateway.toml";
/// The SQLite database's name in the working folder.
pub(crate) const DATABASE_FILE: &str = "gateway.db";
/// The secrets folder's name in the working folder.
pub(crate) const SECRETS_DIR: &str = "secrets";
/// The prefix of a temporary working folder's name (`<prefix><pid>-<random>`).
pub const TEMP_PREFIX: &str = "progression-gateway-demo-";

/// Every entry a demo writes into its folder: a folder holding only these (and the marker) is
/// a previous demo, which may be replaced.
const DEMO_ENTRIES: [&str; 10] = [
    MARKER,
    "README.txt",
    CONFIG_FILE,
    DATABASE_FILE,
    "gateway.db-wal",
    "gateway.db-shm",
    "mappings",
    SECRETS_DIR,
    ACTUALS_DIR,
    FIGURES_DIR,
];

/// The simulated finance system's actuals folder in the working folder.
pub(crate) const ACTUALS_DIR: &str = "actuals";
/// Where the nightly steering figures file is delivered.
pub(crate) const FIGURES_DIR: &str = "figures";

/// The simulated cost of a citizen-day, before the team's factor: what the simulated finance
/// system books per citizen of a team's SOR code and day (the demo has no real accounts).
const SIM_COST_PER_CITIZEN_DAY: i64 = 165;

/// The teams' cost factors in the simulated accounts: nord spends less than the average, syd
/// more, so the cockpit shows a surplus and a deficit.
const SIM_COST_FACTORS: [(&str, &str, &str); 3] = [
    ("123456789012345", "1001", "0.93"),
    ("543210987654321", "1002", "1.08"),
    (VEST_SOR, "1003", "1.00"),
];

/// Writes the simulated finance system's actuals: per team cost centre and month of the
/// period, the citizens of its SOR code alive that month times the days times
/// [`SIM_COST_PER_CITIZEN_DAY`] times the team's factor, Danish amounts, `;`-separated.
pub(crate) fn write_actuals(
    dir: &Path,
    m: &crate::sim::care::Municipality,
    start: chrono::NaiveDate,
    days: u32,
) -> anyhow::Result<()> {
    use chrono::Datelike;
    use rust_decimal::Decimal;
    use std::str::FromStr;
    let folder = dir.join(ACTUALS_DIR);
    fs::create_dir_all(&folder)?;
    let last = start + chrono::Days::new(u64::from(days.max(1) - 1));
    let mut text = String::from("cost_centre;month;account;amount\n");
    let mut month_start = start;
    while month_start <= last {
        let next = month_start
            .checked_add_months(chrono::Months::new(1))
            .and_then(|d| d.with_day(1))
            .expect("a month");
        let month_end = (next - chrono::Days::new(1)).min(last);
        for (sor, cost_centre, factor) in SIM_COST_FACTORS {
            let citizen_days: i64 = m
                .citizens
                .iter()
                .filter(|c| c.sor_code == sor)
                .map(|c| {
                    let end = c.died_on.map_or(month_end, |d| d.min(month_end));
                    ((end - month_start).num_days() + 1).max(0)
                })
                .sum();
            let amount = crate::model::round_money(
                Decimal::from(citizen_days * SIM_COST_PER_CITIZEN_DAY)
                    * Decimal::from_str(factor).expect("a factor"),
            );
            text.push_str(&format!(
                "{cost_centre};{};5.32.30;{}\n",
                month_start.format("%Y-%m"),
                crate::explain::kroner(amount).trim_end_matches(" kr.")
            ));
        }
        month_start = next;
    }
    fs::write(folder.join("omkostninger.csv"), text)?;
    fs::create_dir_all(dir.join(FIGURES_DIR))?;
    Ok(())
}

/// The OAuth2 client id the gateway uses at the simulated care system and the simulated
/// ChargeItem endpoint.
pub(crate) const CLIENT_ID: &str = "progression-gateway";

/// The third team added to the repository's `mappings/teams.toml` (which holds nord and syd).
pub(crate) const VEST_SOR: &str = "246813579024680";

/// `[[team]]` block of the third team, in the format of `mappings/teams.toml`.
const VEST_TEAM: &str = "
[[team]]
id = \"vest\"
name = \"Team Vest\"
cost_centre = \"1003\"
sor_codes = [\"246813579024680\"]
nexus_supplier_ids = [\"13\"]
";

/// The repository's mapping files, embedded at build time.
const MAPPINGS: [(&str, &str); 5] = [
    (
        "nexus_grants.csv",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/mappings/nexus_grants.csv"
        )),
    ),
    (
        "interventions.csv",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/mappings/interventions.csv"
        )),
    ),
    (
        "functional_levels.csv",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/mappings/functional_levels.csv"
        )),
    ),
    (
        "tariffs.toml",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/mappings/tariffs.toml"
        )),
    ),
    (
        "accounts.toml",
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/mappings/accounts.toml"
        )),
    ),
];

/// The repository's `mappings/teams.toml` (teams nord and syd).
const TEAMS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/mappings/teams.toml"));

/// The demo's working folder. Removed when dropped unless kept, so a failing demo leaves no
/// temporary folder behind either.
#[derive(Debug)]
pub(crate) struct WorkDir {
    path: PathBuf,
    keep: bool,
    removed: bool,
}

impl WorkDir {
    /// Makes the working folder.
    ///
    /// - `keep = None`: a new folder `progression-gateway-demo-<pid>-<random>` under
    ///   [`std::env::temp_dir`], mode 0700, removed at the end.
    /// - `keep = Some(dir)`: `dir` is created if missing and used if empty. A folder that holds
    ///   a previous demo (its marker file, and nothing but what a demo writes) is emptied and
    ///   reused. Any other folder that exists and is not empty is refused, naming an entry, so
    ///   the demo never deletes or mixes with someone's files.
    pub(crate) fn prepare(keep: Option<&Path>) -> anyhow::Result<Self> {
        let Some(dir) = keep else {
            let base = std::env::temp_dir();
            let path = base.join(format!(
                "{TEMP_PREFIX}{}-{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ));
            create_private_dir(&path).map_err(|e| {
                anyhow::anyhow!("cannot create the working folder {}: {e}", path.display())
            })?;
            return Ok(WorkDir {
                path,
                keep: false,
                removed: false,
            });
        };
        match fs::symlink_metadata(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(dir).map_err(|e| {
                    anyhow::anyhow!("--keep {}: cannot create the folder: {e}", dir.display())
                })?;
            }
            Err(e) => anyhow::bail!("--keep {}: {e}", dir.display()),
            Ok(meta) if !meta.is_dir() => {
                anyhow::bail!("--keep {}: exists and is not a folder", dir.display())
            }
            Ok(_) => {
                let names: Vec<OsString> = fs::read_dir(dir)
                    .map_err(|e| anyhow::anyhow!("--keep {}: {e}", dir.display()))?
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<Result<_, _>>()
                    .map_err(|e| anyhow::anyhow!("--keep {}: {e}", dir.display()))?;
                if !names.is_empty() {
                    let previous_demo = names.iter().any(|n| n == MARKER);
                    let foreign = names
                        .iter()
                        .find(|n| !DEMO_ENTRIES.iter().any(|d| *n == *d));
                    match (previous_demo, foreign) {
                        (true, None) => {
                            for name in &names {
                                let p = dir.join(name);
                                let r = if p.is_dir() {
                                    fs::remove_dir_all(&p)
                                } else {
                                    fs::remove_file(&p)
                                };
                                r.map_err(|e| {
                                    anyhow::anyhow!(
                                        "--keep {}: cannot remove the previous demo's {}: {e}",
                                        dir.display(),
                                        p.display()
                                    )
                                })?;
                            }
                            tracing::info!(
                                message = "Replacing a previous demo.",
                                dir = %dir.display()
                            );
                        }
                        (true, Some(name)) => anyhow::bail!(
                            "--keep {}: the folder holds a previous demo but also `{}`, which a \
                             demo does not write; give a new or empty folder",
                            dir.display(),
                            name.to_string_lossy()
                        ),
                        (false, _) => anyhow::bail!(
                            "--keep {}: the folder exists and is not empty (it holds `{}`); give \
                             a new or empty folder, or one a previous demo was kept in",
                            dir.display(),
                            names[0].to_string_lossy()
                        ),
                    }
                }
            }
        }
        let path =
            fs::canonicalize(dir).map_err(|e| anyhow::anyhow!("--keep {}: {e}", dir.display()))?;
        Ok(WorkDir {
            path,
            keep: true,
            removed: false,
        })
    }

    /// The folder (absolute).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the folder is kept after the demo.
    pub(crate) fn kept(&self) -> bool {
        self.keep
    }

    /// Ends the demo's use of the folder: removes it unless kept.
    pub(crate) fn finish(mut self) -> anyhow::Result<PathBuf> {
        if !self.keep {
            self.removed = true;
            fs::remove_dir_all(&self.path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot remove the working folder {}: {e}",
                    self.path.display()
                )
            })?;
        }
        Ok(self.path.clone())
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep && !self.removed {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

fn create_private_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// Writes `content` to a new file readable by its owner only (mode 0600 on Unix).
fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(content)?;
    file.sync_all()
}

/// Writes the marker, a README and the mapping folder (the repository's mappings, with a third
/// team in `teams.toml`).
pub(crate) fn write_mappings(
    dir: &Path,
    period: (chrono::NaiveDate, chrono::NaiveDate),
) -> anyhow::Result<()> {
    fs::write(
        dir.join(MARKER),
        "This folder holds a `progression-gateway demo`; a later demo may replace it.\n",
    )?;
    // The commands shown read the demo's own period.
    let readme = README
        .replace("2027-01-01", &period.0.to_string())
        .replace("2027-04-30", &period.1.to_string());
    fs::write(dir.join("README.txt"), readme)?;
    let mappings = dir.join("mappings");
    fs::create_dir_all(&mappings)?;
    for (name, content) in MAPPINGS {
        fs::write(mappings.join(name), content)?;
    }
    fs::write(mappings.join("teams.toml"), teams_toml())?;
    Ok(())
}

/// The repository's `teams.toml` with team vest added.
fn teams_toml() -> String {
    let mut teams = TEAMS.trim_end().to_owned();
    teams.push('\n');
    teams.push_str(VEST_TEAM);
    teams
}

const README: &str = "\
This folder was written by `progression-gateway demo`.

gateway.toml  the configuration the nightly run loaded (the simulated systems it names listened
              on loopback ports that closed when the demo ended)
gateway.db    the SQLite store: every pulled record version (citizens by pseudonym only), the
              courses, the voucher outbox, the decisions written and the run journal
mappings/     the repository's mappings, with a third team (vest) in teams.toml
actuals/      the simulated finance system's costs per cost centre and month
figures/      the steering figures file the nightly run delivered (one row per cost centre,
              figure and month)
secrets/      the random secrets of this demo (mode 0600): the pseudonym key, the care system's
              OAuth2 client secret, the finance bearer token, the ChargeItem endpoint's client
              secret and the access token it issued, the operations HTTP token, the cockpit
              tokens of management and of nord's team leader

Look at it with, for example:
  progression-gateway --config gateway.toml budget --from 2027-01-01 --to 2027-04-30
  progression-gateway --config gateway.toml runs
  progression-gateway --config gateway.toml figures --from 2027-01-01 --to 2027-04-30
";

/// The demo's secrets, random per demo.
pub(crate) struct Secrets {
    /// The pseudonym key.
    pub(crate) pseudonym_key: SecretString,
    /// The OAuth2 client secret of the simulated care system.
    pub(crate) care_client_secret: SecretString,
    /// The bearer token of the simulated finance system's HTTP receiver.
    pub(crate) finance_bearer_token: SecretString,
    /// The OAuth2 client secret of the simulated ChargeItem endpoint.
    pub(crate) decisions_client_secret: SecretString,
    /// The access token the simulated ChargeItem endpoint issues for that secret.
    pub(crate) decisions_access_token: SecretString,
    /// The bearer token of the operations HTTP server (`[http]`).
    pub(crate) http_token: SecretString,
    /// The cockpit token of management (every team).
    pub(crate) cockpit_management: SecretString,
    /// The cockpit token of team nord's leader.
    pub(crate) cockpit_nord: SecretString,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets([REDACTED])")
    }
}

/// A random secret of 40 letters and digits (about 238 bits).
pub(crate) fn random_secret() -> SecretString {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    let s: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    SecretString::from(s)
}

/// File names in `secrets/`.
const PSEUDONYM_KEY_FILE: &str = "pseudonym.key";
const CARE_SECRET_FILE: &str = "care-client-secret";
const FINANCE_TOKEN_FILE: &str = "finance-bearer-token";
const DECISIONS_SECRET_FILE: &str = "decisions-client-secret";
const DECISIONS_TOKEN_FILE: &str = "decisions-access-token";
const HTTP_TOKEN_FILE: &str = "http.token";
const COCKPIT_MANAGEMENT_FILE: &str = "cockpit-ledelse.token";
const COCKPIT_NORD_FILE: &str = "cockpit-leder-nord.token";

impl Secrets {
    /// New random secrets.
    pub(crate) fn generate() -> Self {
        Secrets {
            pseudonym_key: random_secret(),
            care_client_secret: random_secret(),
            finance_bearer_token: random_secret(),
            decisions_client_secret: random_secret(),
            decisions_access_token: random_secret(),
            http_token: random_secret(),
            cockpit_management: random_secret(),
            cockpit_nord: random_secret(),
        }
    }

    /// Writes each secret to its own file in `dir/secrets/` (folder 0700, files 0600).
    pub(crate) fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let secrets = dir.join(SECRETS_DIR);
        create_private_dir(&secrets)?;
        for (name, secret) in [
            (PSEUDONYM_KEY_FILE, &self.pseudonym_key),
            (CARE_SECRET_FILE, &self.care_client_secret),
            (FINANCE_TOKEN_FILE, &self.finance_bearer_token),
            (DECISIONS_SECRET_FILE, &self.decisions_client_secret),
            (DECISIONS_TOKEN_FILE, &self.decisions_access_token),
            (HTTP_TOKEN_FILE, &self.http_token),
            (COCKPIT_MANAGEMENT_FILE, &self.cockpit_management),
            (COCKPIT_NORD_FILE, &self.cockpit_nord),
        ] {
            let mut text = secret.expose_secret().to_owned();
            text.push('\n');
            write_private(&secrets.join(name), text.as_bytes())?;
        }
        Ok(())
    }

    /// The configuration's environment overrides for the two secrets the configuration file
    /// cannot name a file for: the finance bearer token and the decisions client secret.
    pub(crate) fn env(&self) -> Vec<(OsString, OsString)> {
        let prefix = crate::config::ENV_PREFIX;
        vec![
            (
                OsString::from(format!("{prefix}FINANCE__BEARER_TOKEN")),
                OsString::from(self.finance_bearer_token.expose_secret()),
            ),
            (
                OsString::from(format!("{prefix}DECISIONS__CLIENT_SECRET")),
                OsString::from(self.decisions_client_secret.expose_secret()),
            ),
        ]
    }
}

/// Where the simulated systems listen.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    /// The care system.
    pub(crate) care: CareEndpoint,
    /// The finance system's HTTP receiver.
    pub(crate) finance_url: String,
    /// The ChargeItem endpoint's FHIR base.
    pub(crate) decisions_base: String,
    /// The ChargeItem endpoint's token endpoint.
    pub(crate) decisions_token: String,
    /// The operations HTTP server and cockpit (`demo --serve`).
    pub(crate) listen: std::net::SocketAddr,
    /// SHA-256 (hex) of the management and nord leader's cockpit tokens.
    pub(crate) cockpit_sha256: [String; 2],
}

/// The simulated care system the configuration pulls.
#[derive(Debug, Clone)]
pub(crate) enum CareEndpoint {
    /// KL Gateway delivery reports by FHIR search.
    Klgateway {
        /// The FHIR base.
        base: String,
        /// The token endpoint.
        token: String,
    },
    /// The KMD Nexus REST API.
    Nexus {
        /// The API root.
        api_root: String,
        /// The token endpoint.
        token: String,
        /// The organisations read.
        organisations: Vec<i64>,
    },
}

/// Bundles per page of the pull (`_count`): fewer, bigger pages than the default of 100, each
/// page being one store transaction (see the module documentation of `crate::demo`).
pub const PULL_PAGE_SIZE: u32 = 500;

/// A TOML basic string holding `s`.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The `[[source]]` of the simulated care system.
fn care_source(care: &CareEndpoint) -> String {
    match care {
        CareEndpoint::Klgateway { base, token } => format!(
            "\
# The simulated care system: KL Gateway delivery reports by FHIR search, OAuth2 client credentials.
[[source]]
name = \"care-sim\"
secret_file = \"{SECRETS_DIR}/{CARE_SECRET_FILE}\"
[source.fhir_pull]
base_url = {base}
token_url = {token}
client_id = \"{CLIENT_ID}\"
format = \"json\"
page_size = {PULL_PAGE_SIZE}
timeout_secs = 60
",
            base = toml_str(base),
            token = toml_str(token),
        ),
        CareEndpoint::Nexus {
            api_root,
            token,
            organisations,
        } => format!(
            "\
# The simulated KMD Nexus: its REST API, OAuth2 client credentials with a refresh token.
[[source]]
name = \"nexus-sim\"
secret_file = \"{SECRETS_DIR}/{CARE_SECRET_FILE}\"
[source.nexus]
api_root = {api_root}
token_url = {token}
client_id = \"{CLIENT_ID}\"
organisations = {organisations:?}
requests_per_second = 5000
timeout_secs = 60
",
            api_root = toml_str(api_root),
            token = toml_str(token),
        ),
    }
}

/// Writes `gateway.toml` and returns its path.
pub(crate) fn write_config(dir: &Path, endpoints: &Endpoints) -> anyhow::Result<PathBuf> {
    let db = dir.join(DATABASE_FILE);
    let db = db
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("the folder {} is not valid UTF-8", dir.display()))?;
    let prefix = crate::config::ENV_PREFIX;
    let text = format!(
        "\
# Written by `progression-gateway demo`: a nightly run against simulated systems on loopback.
time_zone = \"Europe/Copenhagen\"

[store]
url = {store}

[pseudonym]
key_file = \"{SECRETS_DIR}/{PSEUDONYM_KEY_FILE}\"

[mappings]
dir = \"mappings\"

[log]
format = \"human\"
level = \"info\"

{care}
# The simulated finance system: vouchers as JSON over HTTP, answered at once. Its bearer token
# ({SECRETS_DIR}/{FINANCE_TOKEN_FILE}) is given as {prefix}FINANCE__BEARER_TOKEN.
[finance.format.opus]
municipality_code = \"0751\"
data_provider_id = \"PGW\"
company_code = \"0751\"
sender = \"PROGRESSION-GATEWAY\"
receiver = \"KMD-OPUS\"

[finance.transport]
kind = \"http\"
url = {finance_url}
timeout_secs = 60

# The simulated care system's ChargeItem endpoint, OAuth2 client credentials. The client secret
# ({SECRETS_DIR}/{DECISIONS_SECRET_FILE}) is given as {prefix}DECISIONS__CLIENT_SECRET.
[decisions]
base_url = {decisions_base}
token_url = {decisions_token}
client_id = \"{CLIENT_ID}\"
format = \"json\"

# The operations HTTP server and the steering cockpit (served by `demo --serve` and
# `progression-gateway daemon`).
[http]
listen = \"{listen}\"
token_file = \"{SECRETS_DIR}/{HTTP_TOKEN_FILE}\"

# Who sees the cockpit: management every team, nord's leader team nord. The tokens are in
# {SECRETS_DIR}/{COCKPIT_MANAGEMENT_FILE} and {SECRETS_DIR}/{COCKPIT_NORD_FILE}; only their SHA-256 is here.
[cockpit]
[[cockpit.principal]]
name = \"ledelse\"
token_sha256 = \"{management_sha}\"
all = true
[[cockpit.principal]]
name = \"leder-nord\"
token_sha256 = \"{nord_sha}\"
teams = [\"nord\"]

# The simulated finance system's actuals (costs per cost centre and month).
[actuals]
dir = \"{ACTUALS_DIR}\"

# The nightly steering figures per cost centre and month, as a CSV file in {FIGURES_DIR}/.
[figures_export]
columns = [\"cost_centre\", \"team\", \"month\", \"figure\", \"value\"]
[figures_export.transport]
kind = \"folder\"
dir = \"{FIGURES_DIR}\"
reply_dir = \"{FIGURES_DIR}\"
",
        listen = endpoints.listen,
        management_sha = endpoints.cockpit_sha256[0],
        nord_sha = endpoints.cockpit_sha256[1],
        store = toml_str(&format!("sqlite://{db}")),
        care = care_source(&endpoints.care),
        finance_url = toml_str(&endpoints.finance_url),
        decisions_base = toml_str(&endpoints.decisions_base),
        decisions_token = toml_str(&endpoints.decisions_token),
    );
    let path = dir.join(CONFIG_FILE);
    fs::write(&path, text)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_third_team_is_added_to_the_repository_teams() {
        let teams = teams_toml();
        let blocks = teams.lines().filter(|l| l.trim() == "[[team]]").count();
        assert_eq!(blocks, 3, "{teams}");
        assert!(teams.contains(VEST_SOR));
    }

    #[test]
    fn secrets_are_random_and_not_shown() {
        let (a, b) = (Secrets::generate(), Secrets::generate());
        assert_ne!(
            a.pseudonym_key.expose_secret(),
            b.pseudonym_key.expose_secret()
        );
        assert_eq!(a.http_token.expose_secret().len(), 40);
        assert_eq!(format!("{a:?}"), "Secrets([REDACTED])");
    }
}
