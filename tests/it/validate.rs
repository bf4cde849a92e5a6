//! The configuration and mapping files: the shipped example loads with the expected content, and
//! each kind of mistake an analyst can make is reported with the right file and line.
//!
//! Broken cases copy `config/example.toml` and `mappings/` into a temporary folder, break one
//! thing by text replacement and compute the expected line from where the broken text is, so no
//! line number here drifts when the files are edited.

use progression_gateway::config::{self, Loaded, LogFormat};
use progression_gateway::domain::{Cpr, FunctionalLevel, PseudonymKey, Track};
use progression_gateway::mapping::{CourseHint, NeedBasis};
use secrecy::SecretString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn example() -> PathBuf {
    Path::new(ROOT).join("config/example.toml")
}

/// A copy of the example configuration (in `<tmp>/config/`) and the mappings (in `<tmp>/mappings/`).
struct Copy {
    dir: tempfile::TempDir,
}

impl Copy {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("config")).unwrap();
        fs::copy(example(), dir.path().join("config/example.toml")).unwrap();
        fs::create_dir(dir.path().join("mappings")).unwrap();
        for entry in fs::read_dir(Path::new(ROOT).join("mappings")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                fs::copy(
                    entry.path(),
                    dir.path().join("mappings").join(entry.file_name()),
                )
                .unwrap();
            }
        }
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config/example.toml")
    }

    /// A file of the copy, by its path below the temporary folder.
    fn file(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Replaces the only occurrence of `from` with `to` in a file of the copy.
    fn replace(&self, rel: &str, from: &str, to: &str) {
        let path = self.file(rel);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` must occur once in {rel}"
        );
        fs::write(&path, text.replacen(from, to, 1)).unwrap();
    }

    /// Appends text to a file of the copy.
    fn append(&self, rel: &str, extra: &str) {
        let path = self.file(rel);
        let mut text = fs::read_to_string(&path).unwrap();
        text.push_str(extra);
        fs::write(&path, text).unwrap();
    }

    /// The 1-based line where `needle` starts in a file of the copy (it must occur once).
    fn line_of(&self, rel: &str, needle: &str) -> usize {
        let text = fs::read_to_string(self.file(rel)).unwrap();
        assert_eq!(
            text.matches(needle).count(),
            1,
            "`{needle}` must occur once in {rel}"
        );
        let at = text.find(needle).unwrap();
        text[..at].matches('\n').count() + 1
    }

    /// The 1-based line where the last occurrence of `needle` starts in a file of the copy.
    fn line_of_last(&self, rel: &str, needle: &str) -> usize {
        let text = fs::read_to_string(self.file(rel)).unwrap();
        let at = text.rfind(needle).unwrap();
        text[..at].matches('\n').count() + 1
    }

    /// Loads the copy, expecting errors; returns the error's display.
    fn errors(&self) -> String {
        match config::load(&self.config()) {
            Ok(_) => panic!("the broken copy loaded without error"),
            Err(e) => e.to_string(),
        }
    }

    /// Asserts the error display has a line `FILE:LINE: ...` containing `message`.
    fn expect(&self, rel: &str, line: usize, message: &str) {
        let shown = self.errors();
        let prefix = format!("{}:{line}: ", self.file(rel).display());
        assert!(
            shown
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains(message)),
            "expected a line starting `{prefix}` containing `{message}`, got:\n{shown}"
        );
    }
}

fn must_load(path: &Path) -> Loaded {
    match config::load(path) {
        Ok(l) => l,
        Err(e) => panic!("{} does not load:\n{e}", path.display()),
    }
}

// ---------------------------------------------------------------------------------------------
// The shipped files
// ---------------------------------------------------------------------------------------------

#[test]
fn the_example_configuration_loads() {
    let loaded = must_load(&example());
    let s = &loaded.settings;
    assert_eq!(s.time_zone, chrono_tz::Europe::Copenhagen);
    assert_eq!(s.database_url, "sqlite://progression-gateway.db");
    assert_eq!(s.log.format, LogFormat::Human);
    assert_eq!(s.log.level, "info");
    assert_eq!(s.config_file, example());
    assert_eq!(
        fs::canonicalize(&s.mappings_dir).unwrap(),
        fs::canonicalize(Path::new(ROOT).join("mappings")).unwrap()
    );

    let m = &loaded.mappings;
    let ids: Vec<&str> = m.teams.iter().map(|t| t.team.id.as_str()).collect();
    assert_eq!(ids, ["nord", "syd"]);
    assert_eq!(m.team_for_sor("123456789012345").unwrap().name, "Team Nord");
    assert_eq!(m.team_for_sor("543210987654321").unwrap().name, "Team Syd");

    let day = chrono::NaiveDate::from_ymd_opt(2027, 6, 1).unwrap();
    let care = m.tariffs.in_force(Track::Care, day).unwrap();
    assert_eq!((care.year, care.basis), (2027, NeedBasis::FunctionalLevel));
    assert_eq!(care.groups.len(), 4);
    let g2 = care.group_for(6).unwrap();
    assert_eq!(
        (
            g2.group,
            g2.development.to_string(),
            g2.stabilisation.to_string()
        ),
        (2, "250.00".into(), "180.00".into())
    );
    let individual = care.individual.unwrap();
    assert_eq!(individual.threshold, 16);
    assert_eq!(individual.hourly_rate.to_string(), "450.00");
    assert_eq!(care.group_for(15).unwrap().group, 4);
    assert_eq!(
        (
            care.lengths.development_days,
            care.lengths.stabilisation_days
        ),
        (84, 182)
    );
    let nursing = m.tariffs.in_force(Track::Nursing, day).unwrap();
    assert_eq!(
        (nursing.year, nursing.basis),
        (2027, NeedBasis::InterventionWeight)
    );
    assert!(nursing.individual.is_none());
    assert_eq!(
        nursing.group_for(3).unwrap().development.to_string(),
        "200.00"
    );
    assert_eq!(nursing.group_for(40).unwrap().group, 3);
    assert_eq!(m.tariffs.tables().len(), 2);

    for code in ["G1.39", "76878386-b3d2-4320-828a-a700e8a66234"] {
        let wound = m.interventions.get(code).unwrap();
        assert_eq!(wound.track, Some(Track::Nursing), "{code}");
        assert_eq!(wound.nursing_weight, 3, "{code}");
        assert_eq!(wound.course_hint, CourseHint::Development, "{code}");
    }
    assert_eq!(m.interventions.get("H1.11").unwrap().track, None);
    assert_eq!(
        m.interventions.get("H2.5").unwrap().course_hint,
        CourseHint::Development
    );

    assert_eq!(m.levels.get("B1"), Some(FunctionalLevel::new(0).unwrap()));
    assert_eq!(m.levels.get("B6"), Some(FunctionalLevel::NOT_RELEVANT));
    assert_eq!(
        m.levels.get("d7ff926a-4955-478f-b300-0b0ec0785013"),
        Some(FunctionalLevel::NOT_RELEVANT)
    );
    assert_eq!(m.levels.len(), 12);

    let accounts = m.accounts.as_ref().unwrap();
    assert_eq!(accounts.gl_account(Track::Care), "53026000");
    assert_eq!(accounts.gl_account(Track::Nursing), "46282000");
}

#[test]
fn every_fsiii_intervention_code_is_mapped_in_both_forms() {
    let path = Path::new(ROOT).join("../shared/testdata/fsiii_codes.csv");
    let mut reader = csv::Reader::from_path(&path)
        .unwrap_or_else(|e| panic!("the FSIII code list {} is needed: {e}", path.display()));
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (uuid, legacy, valueset) = (
        col("uuid_code"),
        col("legacy_code"),
        col("kl_term_valueset"),
    );
    let loaded = must_load(&example());
    let mut checked = 0;
    for record in reader.records() {
        let record = record.unwrap();
        if !matches!(
            &record[valueset],
            "KLHomeCareInterventionsFSIII" | "KLNursingInterventionsFSIII"
        ) {
            continue;
        }
        let by_uuid = loaded.mappings.interventions.get(&record[uuid]);
        let by_legacy = loaded.mappings.interventions.get(&record[legacy]);
        assert!(by_uuid.is_some(), "{} is not mapped", &record[uuid]);
        assert_eq!(
            by_uuid, by_legacy,
            "{} and {} differ",
            &record[uuid], &record[legacy]
        );
        checked += 1;
    }
    assert_eq!(checked, loaded.mappings.interventions.rows().len());
    assert!(checked > 80, "only {checked} codes");
}

#[test]
fn the_key_is_never_shown_and_the_environment_overrides_it() {
    let file_key = "demo-only-pseudonym-key-change-me-0001";
    let loaded = must_load(&example());
    let debug = format!("{:?}", loaded.settings);
    assert!(!debug.contains(file_key), "{debug}");
    assert!(!debug.contains("change-me"), "{debug}");

    let env_key = "env-pseudonym-key-for-the-validate-test";
    // The variable is handed to the loader, not set in the process: every integration test runs
    // in this one process, and a changed key would leak into their loads and child processes.
    let var = "PROGRESSION_GATEWAY__PSEUDONYM__KEY";
    let env = std::env::vars_os()
        .filter(|(k, _)| k != var)
        .chain([(var.into(), env_key.into())]);
    let overridden = config::load_with_env(&example(), env).unwrap();
    assert!(!format!("{:?}", overridden.settings).contains(env_key));
    let cpr = Cpr::parse("0101501234").unwrap();
    let key = |k: &str| PseudonymKey::new(SecretString::from(k.to_owned())).unwrap();
    assert_eq!(
        overridden.settings.pseudonym_key.citizen(&cpr),
        key(env_key).citizen(&cpr)
    );
    assert_ne!(
        loaded.settings.pseudonym_key.citizen(&cpr),
        overridden.settings.pseudonym_key.citizen(&cpr)
    );
    assert_eq!(
        loaded.settings.pseudonym_key.citizen(&cpr),
        key(file_key).citizen(&cpr)
    );
}

// ---------------------------------------------------------------------------------------------
// Broken copies
// ---------------------------------------------------------------------------------------------

#[test]
fn a_misspelt_key_in_teams_is_named_with_a_suggestion() {
    let c = Copy::new();
    c.replace(
        "mappings/teams.toml",
        "cost_centre = \"1002\"",
        "cost_center = \"1002\"",
    );
    let line = c.line_of("mappings/teams.toml", "cost_center");
    c.expect(
        "mappings/teams.toml",
        line,
        "unknown key `cost_center`; did you mean `cost_centre`?",
    );
}

#[test]
fn an_unknown_key_in_the_configuration_is_named() {
    let c = Copy::new();
    c.replace(
        "config/example.toml",
        "format = \"human\"",
        "fromat = \"human\"",
    );
    let line = c.line_of("config/example.toml", "fromat");
    c.expect(
        "config/example.toml",
        line,
        "unknown key `fromat`; did you mean `format`?",
    );
}

#[test]
fn an_unknown_track_in_interventions_names_the_row() {
    let c = Copy::new();
    let file = "mappings/interventions.csv";
    c.replace(
        file,
        "G1.39,Sårbehandling,nursing,",
        "G1.39,Sårbehandling,nursign,",
    );
    let line = c.line_of(file, "G1.39,");
    assert!(line > 1);
    c.expect(
        file,
        line,
        "unknown track `nursign`; did you mean `nursing`?",
    );
}

#[test]
fn an_unknown_track_in_tariffs_names_the_line() {
    let c = Copy::new();
    let file = "mappings/tariffs.toml";
    c.replace(file, "track = \"nursing\"", "track = \"nurse\"");
    let line = c.line_of(file, "track = \"nurse\"");
    c.expect(file, line, "unknown track `nurse`");
}

#[test]
fn overlapping_need_groups_name_the_overlapping_group() {
    let c = Copy::new();
    let file = "mappings/tariffs.toml";
    c.replace(file, "min = 4\nmax = 7\n", "min = 3\nmax = 7\n");
    let line = c.line_of(file, "min = 3\nmax = 7\n");
    c.expect(file, line, "need group 2 (3-7) overlaps group 1 (0-3)");
}

#[test]
fn a_team_without_cost_centre_names_its_team_line() {
    let c = Copy::new();
    let file = "mappings/teams.toml";
    c.replace(file, "cost_centre = \"1002\"\n", "");
    let line = c.line_of(file, "[[team]]\nid = \"syd\"");
    c.expect(file, line, "missing key `cost_centre`");
}

#[test]
fn a_tariff_year_missing_a_group_names_its_table() {
    let c = Copy::new();
    let file = "mappings/tariffs.toml";
    // A 2028 care table with three groups where 2027 has four.
    c.append(
        file,
        "\n[[table]] # 2028\ntrack = \"care\"\nyear = 2028\nbasis = \"functional_level\"\n\
         [[table.group]]\ngroup = 1\nmin = 0\nmax = 5\ndevelopment = \"220.00\"\nstabilisation = \"100.00\"\n\
         [[table.group]]\ngroup = 2\nmin = 6\nmax = 10\ndevelopment = \"260.00\"\nstabilisation = \"190.00\"\n\
         [[table.group]]\ngroup = 3\nmin = 11\ndevelopment = \"340.00\"\nstabilisation = \"270.00\"\n",
    );
    let line = c.line_of(file, "[[table]] # 2028");
    c.expect(file, line, "(missing group 4)");
}

#[test]
fn a_skipped_group_number_names_its_table() {
    let c = Copy::new();
    let file = "mappings/tariffs.toml";
    c.replace(file, "group = 3\nmin = 8\n", "group = 5\nmin = 8\n");
    let care_table = "[[table]]\ntrack = \"care\"";
    let line = c.line_of(file, care_table);
    c.expect(file, line, "(group 3 is missing)");
}

#[test]
fn float_money_is_refused_with_a_hint_to_quote_it() {
    let c = Copy::new();
    let file = "mappings/tariffs.toml";
    c.replace(file, "development = \"330.00\"", "development = 330.00");
    let line = c.line_of(file, "development = 330.00");
    c.expect(file, line, "floats are never used for money");
    c.expect(file, line, "\"330.00\"");
}

#[test]
fn every_unknown_key_of_a_file_is_reported_not_only_the_first() {
    let c = Copy::new();
    c.replace(
        "config/example.toml",
        "format = \"human\"",
        "fromat = \"human\"",
    );
    c.replace(
        "config/example.toml",
        "level = \"info\"",
        "levle = \"info\"",
    );
    c.append(
        "config/example.toml",
        "\n[stroe]\nurl = \"sqlite://x.db\"\n",
    );
    c.replace(
        "mappings/teams.toml",
        "cost_centre = \"1001\"",
        "cost_center = \"1001\"\nnmae = \"x\"",
    );
    c.replace(
        "mappings/teams.toml",
        "cost_centre = \"1002\"",
        "cost_centre = \"1002\"\nnexus_suplier_ids = []",
    );
    c.expect(
        "config/example.toml",
        c.line_of("config/example.toml", "fromat"),
        "unknown key `fromat`; did you mean `format`?",
    );
    c.expect(
        "config/example.toml",
        c.line_of("config/example.toml", "levle"),
        "unknown key `levle`",
    );
    c.expect(
        "config/example.toml",
        c.line_of("config/example.toml", "[stroe]"),
        "unknown key `stroe`; did you mean `store`?",
    );
    c.expect(
        "mappings/teams.toml",
        c.line_of("mappings/teams.toml", "cost_center"),
        "unknown key `cost_center`",
    );
    c.expect(
        "mappings/teams.toml",
        c.line_of("mappings/teams.toml", "nmae"),
        "unknown key `nmae`",
    );
    c.expect(
        "mappings/teams.toml",
        c.line_of("mappings/teams.toml", "nexus_suplier_ids"),
        "unknown key `nexus_suplier_ids`",
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let c = Copy::new();
    c.replace(
        "config/example.toml",
        "level = \"info\"",
        "levle = \"info\"",
    );
    c.replace(
        "mappings/teams.toml",
        "cost_centre = \"1001\"",
        "cost_centre = \"10-01\"",
    );
    c.replace("mappings/accounts.toml", "\"53026000\"", "\"5302600\"");
    c.replace("mappings/functional_levels.csv", "B6,9", "B6,5");
    c.replace(
        "mappings/tariffs.toml",
        "stabilisation = \"95.00\"",
        "stabilisation = \"-95.00\"",
    );
    c.expect(
        "config/example.toml",
        c.line_of("config/example.toml", "levle"),
        "unknown key `levle`",
    );
    c.expect(
        "mappings/teams.toml",
        c.line_of("mappings/teams.toml", "10-01"),
        "must be 1-10 digits",
    );
    c.expect(
        "mappings/accounts.toml",
        c.line_of("mappings/accounts.toml", "5302600"),
        "must be exactly 8 digits",
    );
    c.expect(
        "mappings/functional_levels.csv",
        c.line_of("mappings/functional_levels.csv", "B6,5"),
        "bad functional level `5`",
    );
    c.expect(
        "mappings/tariffs.toml",
        c.line_of("mappings/tariffs.toml", "-95.00"),
        "negative stabilisation tariff",
    );
    assert_eq!(c.errors().lines().count(), 5, "{}", c.errors());
}

#[test]
fn duplicate_codes_and_sor_codes_are_refused() {
    let c = Copy::new();
    c.replace(
        "mappings/interventions.csv",
        ",H1.2,Udskillelser,",
        ",H1.1,Udskillelser,",
    );
    c.replace(
        "mappings/teams.toml",
        "sor_codes = [\"543210987654321\"]",
        "sor_codes = [\"123456789012345\"]",
    );
    let csv_line = c.line_of("mappings/interventions.csv", ",H1.1,Udskillelser,");
    c.expect(
        "mappings/interventions.csv",
        csv_line,
        "duplicate code `H1.1` (already on line 2)",
    );
    let sor_line = c.line_of_last("mappings/teams.toml", "\"123456789012345\"");
    c.expect(
        "mappings/teams.toml",
        sor_line,
        "SOR code `123456789012345` is used by two teams: `nord`",
    );
}

#[test]
fn a_missing_mapping_file_is_named() {
    let c = Copy::new();
    fs::remove_file(c.file("mappings/accounts.toml")).unwrap();
    let shown = c.errors();
    let prefix = format!(
        "{}: cannot read the file",
        c.file("mappings/accounts.toml").display()
    );
    assert!(shown.lines().any(|l| l.starts_with(&prefix)), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// The binary: `progression-gateway --config FILE validate`
// ---------------------------------------------------------------------------------------------

fn run_validate(config: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_progression-gateway"))
        .arg("--config")
        .arg(config)
        .arg("validate")
        .env_remove("PROGRESSION_GATEWAY__PSEUDONYM__KEY")
        .output()
        .unwrap()
}

#[test]
fn the_binary_validates_the_example() {
    let out = run_validate(&example());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("configuration ok: "), "{stdout}");
    assert!(
        stdout.contains(" intervention codes, 12 level codes, 2 teams, 2 tariff tables"),
        "{stdout}"
    );
}

#[test]
fn the_binary_reports_a_broken_copy_and_exits_1() {
    let c = Copy::new();
    c.replace(
        "mappings/teams.toml",
        "cost_centre = \"1002\"",
        "cost_center = \"1002\"",
    );
    let line = c.line_of("mappings/teams.toml", "cost_center");
    let out = run_validate(&c.config());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    let expected = format!(
        "{}:{line}: unknown key `cost_center`",
        c.file("mappings/teams.toml").display()
    );
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );
    assert!(!stderr.contains("demo-only-pseudonym-key"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------------------------

const SOURCES: &str = r#"
[[source]]
name = "landing"
[source.files]
dir = "../landing"

[[source]]
name = "care-fhir"
secret_file = "pull.secret"
[source.fhir_pull]
base_url = "http://127.0.0.1:9/fhir"
token_url = "http://127.0.0.1:9/oauth/token"
client_id = "gateway"

[[source]]
name = "care-push"
secret_file = "push.token"
[source.fhir_push]
"#;

#[test]
fn sources_load_with_their_secrets_from_files() {
    use progression_gateway::config::SourceKind;
    use secrecy::ExposeSecret;
    let copy = Copy::new();
    copy.append("config/example.toml", SOURCES);
    fs::write(copy.file("config/pull.secret"), "pull-secret-value\n").unwrap();
    fs::write(
        copy.file("config/push.token"),
        "push-token-of-enough-length",
    )
    .unwrap();
    let loaded = must_load(&copy.config());
    let names: Vec<&str> = loaded
        .settings
        .sources
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["landing", "care-fhir", "care-push"]);
    match &loaded.settings.sources[0].kind {
        SourceKind::Files(f) => assert!(f.dir.ends_with("config/../landing")),
        other => panic!("{other:?}"),
    }
    match &loaded.settings.sources[1].kind {
        SourceKind::FhirPull(p) => assert_eq!(
            p.client_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned())
                .as_deref(),
            Some("pull-secret-value")
        ),
        other => panic!("{other:?}"),
    }
    let debug = format!("{:?}", loaded.settings);
    assert!(
        !debug.contains("pull-secret-value") && !debug.contains("push-token-of"),
        "{debug}"
    );
}

#[test]
fn a_misspelt_source_key_names_its_line() {
    let copy = Copy::new();
    copy.append("config/example.toml", SOURCES);
    fs::write(copy.file("config/pull.secret"), "x").unwrap();
    fs::write(
        copy.file("config/push.token"),
        "push-token-of-enough-length",
    )
    .unwrap();
    copy.replace(
        "config/example.toml",
        "client_id = \"gateway\"",
        "client_idd = \"gateway\"",
    );
    let line = copy.line_of("config/example.toml", "client_idd");
    copy.expect("config/example.toml", line, "client_idd");
}

#[test]
fn duplicate_names_two_kinds_and_missing_secrets_are_named() {
    let copy = Copy::new();
    copy.append(
        "config/example.toml",
        r#"
[[source]]
name = "a"
[source.files]
dir = "x"

[[source]]
name = "a"
[source.files]
dir = "y"

[[source]]
name = "both"
[source.files]
dir = "z"
[source.fhir_push]

[[source]]
name = "push-without-token"
[source.fhir_push]
"#,
    );
    let shown = copy.errors();
    assert!(shown.contains("source name `a` is used twice"), "{shown}");
    assert!(
        shown.contains("source `both` must have exactly one of"),
        "{shown}"
    );
    assert!(
        shown.contains("source `push-without-token`: a fhir_push source needs a bearer token"),
        "{shown}"
    );
}

#[test]
fn a_cockpit_principal_with_an_unknown_team_or_no_way_in_is_named() {
    let c = Copy::new();
    c.append(
        "config/example.toml",
        "\n[cockpit]\n[[cockpit.principal]]\nname = \"leder\"\nuser = \"x@kommune.dk\"\nteams = [\"nord\", \"øst\"]\n",
    );
    let shown = c.errors();
    for message in [
        "cockpit.principal[0] `leder`: a user needs cockpit.trusted_header",
        "cockpit.principal[0] `leder`: team `øst` is not in teams.toml",
        "[cockpit] is served with the operations endpoints: configure [http] too",
    ] {
        assert!(shown.contains(message), "{message}:\n{shown}");
    }
    // A principal as the README shows it loads.
    let c = Copy::new();
    c.append(
        "config/example.toml",
        "\n[http]\nlisten = \"127.0.0.1:8089\"\n\n[cockpit]\n[[cockpit.principal]]\nname = \"leder-nord\"\n\
         token_sha256 = \"e7959a02bd8b7bd7e8efd95d6049b3697dd6b7d6fdb3532d047dfb2357bba77c\"\nteams = [\"nord\"]\n",
    );
    let shown = c.errors();
    assert!(!shown.contains("cockpit"), "{shown}");
}
