//! The termination events folder against real files in a temporary folder and a real SQLite
//! store: lines become termination versions, a CPR number reaches neither the database file
//! nor an error message, lines that disappear from a re-sent file are withdrawn, bad lines are
//! reported with file, line and column; the `[events]` setting and the pull step.

use chrono::{DateTime, NaiveDate, Utc};
use progression_gateway::config::{self, Loaded};
use progression_gateway::domain::{
    CitizenRecord, Cpr, Pseudonym, PseudonymKey, SourceId, Termination, TerminationReason,
};
use progression_gateway::model::{Record, Versioned};
use progression_gateway::sources::events::{self, EventsSummary, SyncError};
use progression_gateway::store::Store;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Made-up CPR numbers, each a valid date: none of them may reach the store or a message.
const ANNA: &str = "0101501234";
const BENT: &str = "020260-4321";
const BENT_DIGITS: &str = "0202604321";
const CARL: &str = "1503451111";

fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// A folder with a configuration (`gateway.toml`, events folder `events/`), a SQLite store
/// (`gw.db`) and the loaded settings.
struct Setup {
    dir: tempfile::TempDir,
    loaded: Loaded,
    store: Store,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("events")).unwrap();
        let config = write_config(dir.path(), "[events]\ndir = \"events\"\n");
        let loaded = config::load(&config).unwrap();
        let store = Store::connect(&store_url(dir.path())).await.unwrap();
        Self { dir, loaded, store }
    }

    fn events_dir(&self) -> PathBuf {
        self.dir.path().join("events")
    }

    fn key(&self) -> &PseudonymKey {
        &self.loaded.settings.pseudonym_key
    }

    fn who(&self, cpr: &str) -> Pseudonym {
        self.key().citizen(&Cpr::parse(cpr).unwrap())
    }

    /// Writes an events file with the header and `lines`.
    fn write(&self, name: &str, lines: &[&str]) -> PathBuf {
        let path = self.events_dir().join(name);
        let mut text = String::from("citizen,event,date\n");
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        path
    }

    async fn sync(&self) -> Result<EventsSummary, SyncError> {
        events::sync(&self.store, &self.events_dir(), self.key()).await
    }

    /// Every stored version of the `events` source, by citizen, each in receipt order.
    async fn versions(&self) -> Vec<Versioned> {
        self.store
            .all_versions()
            .await
            .unwrap()
            .into_iter()
            .flat_map(|(_, vs)| vs)
            .filter(|v| v.source == events::SOURCE)
            .collect()
    }

    /// The events of the store as they stand: the latest version of each, not withdrawn.
    async fn live(&self) -> Vec<Termination> {
        let all = self.store.all_versions().await.unwrap();
        events::current(&all)
            .into_values()
            .filter(|s| !s.withdrawn)
            .map(|s| s.termination)
            .collect()
    }
}

fn store_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("gw.db").display())
}

fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            "[store]\nurl = \"{}\"\n[pseudonym]\nkey = \"test-key-with-enough-bytes-0001\"\n\
             [mappings]\ndir = \"{ROOT}/mappings\"\n{extra}",
            store_url(dir)
        ),
    )
    .unwrap();
    path
}

fn termination(v: &Versioned) -> &Termination {
    match &v.record {
        Record::Termination(t) => t,
        other => panic!("not a termination: {other:?}"),
    }
}

/// Sets a file's modification time.
fn set_modified(path: &Path, at: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

/// Stores a citizen record with a Patient id, as the care system would have sent it.
async fn store_patient(s: &Setup, cpr: &str, patient_id: &str) {
    let record = CitizenRecord {
        citizen: s.who(cpr),
        patient_id: Some(SourceId::parse(patient_id).unwrap()),
        custodian_sor: None,
        deceased: false,
        deceased_on: None,
        active: true,
    };
    let v = Versioned {
        source: "klgateway".into(),
        version_at: "2027-01-01T08:00:00Z".parse::<DateTime<Utc>>().unwrap(),
        withdrawn: false,
        record: Record::Citizen(record),
    };
    s.store.put_batch(&[v], None).await.unwrap();
}

/// Every byte of the SQLite database (the file, its WAL and shared memory).
fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("gw.db") {
            out.extend(std::fs::read(&path).unwrap());
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn lines_are_stored_as_termination_versions_with_reason_and_date() {
    let s = Setup::new().await;
    store_patient(&s, CARL, "patient-7").await;
    let path = s.write(
        "2027-01.csv",
        &[
            &format!("{ANNA},death,2027-01-20"),
            &format!(" {BENT} , moved_out , 2027-01-31 "),
            "patient-7,nursing_home,2027-01-15",
        ],
    );
    let modified = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    set_modified(&path, modified);
    let summary = s.sync().await.unwrap();
    assert_eq!(
        summary,
        EventsSummary {
            files: 1,
            events: 3,
            stored: 3,
            withdrawn: 0
        }
    );
    let versions = s.versions().await;
    assert_eq!(versions.len(), 3);
    for v in &versions {
        assert!(!v.withdrawn);
        assert_eq!(v.version_at, DateTime::<Utc>::from(modified));
    }
    let mut got: Vec<(Pseudonym, TerminationReason, NaiveDate, String)> = versions
        .iter()
        .map(termination)
        .map(|t| (t.citizen.clone(), t.reason, t.on, t.source_id.to_string()))
        .collect();
    got.sort_by_key(|g| g.2);
    let expected = [
        (s.who(CARL), TerminationReason::NursingHome, d("2027-01-15")),
        (s.who(ANNA), TerminationReason::Death, d("2027-01-20")),
        (s.who(BENT), TerminationReason::MovedOut, d("2027-01-31")),
    ];
    for ((who, reason, on, id), (e_who, e_reason, e_on)) in got.iter().zip(&expected) {
        assert_eq!((who, reason, on), (e_who, e_reason, e_on));
        // The source id: file name, pseudonym, event, date (also for a Patient id).
        assert_eq!(
            *id,
            format!("2027-01.csv/{who}/{}/{on}", reason.as_str()),
            "{id}"
        );
    }

    // Reading the same folder again stores nothing, even with a newer modification time.
    set_modified(&path, modified + Duration::from_secs(60));
    let again = s.sync().await.unwrap();
    assert_eq!((again.events, again.stored), (3, 0));
    assert_eq!(s.versions().await.len(), 3);
}

#[tokio::test]
async fn no_cpr_number_reaches_the_database_file() {
    let s = Setup::new().await;
    s.write(
        "a.csv",
        &[
            &format!("{ANNA},death,2027-01-20"),
            &format!("{BENT},moved_out,2027-02-01"),
        ],
    );
    s.write("b.csv", &[&format!("{CARL},nursing_home,2027-03-01")]);
    s.sync().await.unwrap();
    // A line removed: the withdrawal must not hold a CPR number either.
    s.write("a.csv", &[&format!("{ANNA},death,2027-01-20")]);
    s.sync().await.unwrap();
    assert_eq!(s.versions().await.len(), 4);
    s.store.close().await;
    let bytes = database_bytes(s.dir.path());
    assert!(bytes.len() > 4096);
    for cpr in [ANNA, BENT, BENT_DIGITS, CARL] {
        assert!(!contains(&bytes, cpr), "the database holds {cpr}");
    }
    // The pseudonyms are there.
    assert!(contains(&bytes, s.who(ANNA).as_str()));
}

#[tokio::test]
async fn a_line_removed_from_a_re_sent_file_is_withdrawn() {
    let s = Setup::new().await;
    let path = s.write(
        "events.csv",
        &[
            &format!("{ANNA},death,2027-01-20"),
            &format!("{BENT},moved_out,2027-02-01"),
        ],
    );
    let other = s.write("other.csv", &[&format!("{CARL},nursing_home,2027-03-01")]);
    let first = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    set_modified(&path, first);
    s.sync().await.unwrap();
    assert_eq!(s.live().await.len(), 3);

    // Re-sent without Bent's line, and with an older modification time than the first (a copy
    // that kept the export's timestamp): the withdrawal is still the newest version.
    s.write("events.csv", &[&format!("{ANNA},death,2027-01-20")]);
    set_modified(&path, first - Duration::from_secs(3600));
    let summary = s.sync().await.unwrap();
    assert_eq!(
        (summary.events, summary.stored, summary.withdrawn),
        (2, 1, 1)
    );
    let versions = s.versions().await;
    assert_eq!(versions.len(), 4);
    let withdrawals: Vec<&Versioned> = versions.iter().filter(|v| v.withdrawn).collect();
    assert_eq!(withdrawals.len(), 1);
    let withdrawal = withdrawals[0].clone();
    assert_eq!(termination(&withdrawal).citizen, s.who(BENT));
    assert_eq!(termination(&withdrawal).reason, TerminationReason::MovedOut);
    assert!(withdrawal.version_at > DateTime::<Utc>::from(first));
    let live = s.live().await;
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|t| t.citizen != s.who(BENT)));

    // Reading again changes nothing.
    assert_eq!(s.sync().await.unwrap().stored, 0);

    // The line comes back: a new version, the event stands again.
    s.write(
        "events.csv",
        &[
            &format!("{ANNA},death,2027-01-20"),
            &format!("{BENT},moved_out,2027-02-01"),
        ],
    );
    set_modified(&path, first);
    let back = s.sync().await.unwrap();
    assert_eq!((back.stored, back.withdrawn), (1, 0));
    assert_eq!(s.live().await.len(), 3);
    // (`versions` are grouped by citizen, each in receipt order.)
    let last = s
        .versions()
        .await
        .into_iter()
        .rfind(|v| termination(v).citizen == s.who(BENT))
        .unwrap();
    assert!(!last.withdrawn && last.version_at > withdrawal.version_at);

    // A changed date is a different event: the old one is withdrawn, the new one stored.
    s.write(
        "events.csv",
        &[
            &format!("{ANNA},death,2027-01-21"),
            &format!("{BENT},moved_out,2027-02-01"),
        ],
    );
    let changed = s.sync().await.unwrap();
    assert_eq!((changed.stored, changed.withdrawn), (2, 1));
    let mut days: Vec<NaiveDate> = s
        .live()
        .await
        .iter()
        .filter(|t| t.citizen == s.who(ANNA))
        .map(|t| t.on)
        .collect();
    days.sort();
    assert_eq!(days, [d("2027-01-21")]);

    // A file with only the header withdraws every line of it; the other file is untouched.
    s.write("events.csv", &[]);
    let emptied = s.sync().await.unwrap();
    assert_eq!(emptied.withdrawn, 2);
    let live = s.live().await;
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].citizen, s.who(CARL));

    // A file that disappears from the folder withdraws nothing.
    std::fs::remove_file(&other).unwrap();
    let gone = s.sync().await.unwrap();
    assert_eq!((gone.files, gone.stored), (1, 0));
    assert_eq!(s.live().await.len(), 1);
}

#[tokio::test]
async fn bad_lines_name_file_line_and_column_never_the_cpr_and_the_file_stores_nothing() {
    let s = Setup::new().await;
    s.write("good.csv", &[&format!("{CARL},death,2027-03-01")]);
    s.write("bad.csv", &[&format!("{ANNA},death,2027-01-20")]);
    s.sync().await.unwrap();
    assert_eq!(s.live().await.len(), 2);

    // The re-sent bad.csv has a bad line of each kind (its first line is gone, too).
    s.write(
        "bad.csv",
        &[
            &format!("{BENT},moved_out,2027-02-30"),
            &format!("{ANNA},dead,2027-01-20"),
            "3213501234,death,2027-01-20",
            "010150123,death,2027-01-20",
            "unknown-patient,death,2027-01-20",
            &format!("{ANNA},{BENT},2027-01-20"),
            &format!("death,2027-01-20,{ANNA}"),
            &format!("{ANNA},death"),
            &format!("{CARL},nursing_home,2027-04-01"),
            &format!("{CARL},nursing_home,2027-04-01"),
        ],
    );
    let err = s.sync().await.unwrap_err();
    let SyncError::Invalid { errors, summary } = &err else {
        panic!("{err}");
    };
    let text = err.to_string();
    for cpr in [
        ANNA,
        BENT,
        BENT_DIGITS,
        CARL,
        "3213501234",
        "010150123",
        "0101501",
    ] {
        assert!(!text.contains(cpr), "the errors show {cpr}: {text}");
    }
    let bad = s.events_dir().join("bad.csv").display().to_string();
    let at = |line: u64| -> Vec<&str> {
        errors
            .iter()
            .filter(|e| e.line == line)
            .map(|e| {
                assert_eq!(e.file, bad);
                e.message.as_str()
            })
            .collect()
    };
    assert!(text.contains(&format!("{bad}:2: column `date`")), "{text}");
    assert_eq!(
        at(2),
        ["column `date`: `2027-02-30` is not a date (YYYY-MM-DD)"]
    );
    assert_eq!(
        at(3),
        ["column `event`: unknown event `dead` (expected death, moved_out or nursing_home)"]
    );
    assert_eq!(
        at(4),
        [
            "column `citizen`: not a valid CPR number: a CPR number must start with a valid date (DDMMYY)"
        ]
    );
    assert_eq!(
        at(5),
        [
            "column `citizen`: not a valid CPR number: a CPR number must have 10 digits, this one has 9 characters"
        ]
    );
    assert_eq!(at(6).len(), 1);
    assert!(at(6)[0].starts_with("column `citizen`: neither"), "{text}");
    // A CPR number in the event column is not shown.
    assert_eq!(at(7).len(), 1);
    assert!(at(7)[0].contains("not shown"), "{text}");
    // Columns in the wrong order: each wrong column reported.
    assert_eq!(at(8).len(), 3, "{text}");
    assert!(at(8).iter().any(|m| m.starts_with("column `citizen`")));
    assert!(at(8).iter().any(|m| m.starts_with("column `event`")));
    assert!(at(8).iter().any(|m| m.starts_with("column `date`")));
    assert_eq!(at(9), ["a malformed CSV row"]);
    assert_eq!(at(11), ["the same citizen, event and date as line 10"]);
    assert_eq!(errors.len(), 11, "{text}");

    // The good file was read; the bad one stored and withdrew nothing.
    assert_eq!(summary.files, 1);
    assert_eq!(summary.stored, 0);
    let live = s.live().await;
    assert_eq!(live.len(), 2);
    assert!(live.iter().any(|t| t.citizen == s.who(ANNA)));
    assert!(live.iter().all(|t| t.on != d("2027-04-01")));
}

#[tokio::test]
async fn bad_files_are_reported_whole() {
    let s = Setup::new().await;
    let dir = s.events_dir();
    // A wrong header, even one holding a CPR number (a file without its header), is reported
    // without the number.
    std::fs::write(dir.join("header.csv"), format!("{ANNA},death,2027-01-20\n")).unwrap();
    std::fs::write(dir.join("roster.csv"), "citizen,team,from,to\n").unwrap();
    // A file too large.
    let big = vec![b'x'; events::MAX_FILE_BYTES as usize + 1];
    std::fs::write(dir.join("big.csv"), big).unwrap();
    // A file name holding a CPR number.
    std::fs::write(dir.join(format!("{ANNA}.csv")), "citizen,event,date\n").unwrap();
    // Not read: other extensions, files being written, folders.
    std::fs::write(dir.join("notes.txt"), "hello").unwrap();
    std::fs::write(dir.join(".partial.csv"), "garbage").unwrap();
    std::fs::write(dir.join("next.csv.part"), "garbage").unwrap();
    std::fs::create_dir(dir.join("archive.csv")).unwrap();
    // A spreadsheet's byte order mark is fine, and so is an upper-case extension.
    std::fs::write(
        dir.join("EXCEL.CSV"),
        format!("\u{feff}citizen,event,date\r\n{CARL},death,2027-03-01\r\n"),
    )
    .unwrap();

    let err = s.sync().await.unwrap_err();
    let text = err.to_string();
    let SyncError::Invalid { errors, summary } = &err else {
        panic!("{text}");
    };
    assert!(!text.contains(ANNA), "{text}");
    assert_eq!(errors.len(), 4, "{text}");
    let of = |file: &str| {
        let path = dir.join(file).display().to_string();
        errors
            .iter()
            .find(|e| e.file == path)
            .unwrap_or_else(|| panic!("no error for {file}: {text}"))
    };
    let header = of("header.csv");
    assert_eq!(header.line, 1);
    assert!(
        header
            .message
            .starts_with("the header must be `citizen,event,date`"),
        "{text}"
    );
    assert!(
        of("roster.csv").message.contains("it has 4 columns"),
        "{text}"
    );
    assert_eq!(of("big.csv").line, 0);
    assert!(of("big.csv").message.contains("more than"), "{text}");
    let folder = errors
        .iter()
        .find(|e| e.file == dir.display().to_string())
        .unwrap();
    assert!(folder.message.contains("looks like a CPR number"), "{text}");
    assert_eq!(summary.files, 1);
    assert_eq!(s.live().await.len(), 1);
}

#[tokio::test]
async fn a_missing_folder_is_an_error_and_stores_nothing() {
    let s = Setup::new().await;
    let missing = s.dir.path().join("nowhere");
    let err = events::sync(&s.store, &missing, s.key())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nowhere:0: cannot list the events folder"),
        "{err}"
    );
}

// --- configuration and the pull step ---------------------------------------------------------

#[test]
fn the_events_setting_is_a_folder_relative_to_the_configuration_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("exports")).unwrap();
    let loaded = config::load(&write_config(
        dir.path(),
        "[events]\ndir = \"exports/../exports\"\n",
    ))
    .unwrap();
    assert_eq!(loaded.settings.events, Some(dir.path().join("exports")));
    let without = config::load(&write_config(dir.path(), "")).unwrap();
    assert_eq!(without.settings.events, None);
}

#[test]
fn a_bad_events_setting_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), "").unwrap();
    let cases = [
        ("[events]\ndir = \"missing\"\n", "is not a folder"),
        ("[events]\ndir = \"a-file\"\n", "is not a folder"),
        ("[events]\ndir = \"\"\n", "events.dir is empty"),
        ("[events]\nfolder = \"x\"\n", "folder"),
        (
            "[[source]]\nname = \"events\"\n[source.files]\ndir = \"x\"\n",
            "source name `events` is reserved",
        ),
    ];
    for (extra, expected) in cases {
        let path = write_config(dir.path(), extra);
        let err = config::load(&path).unwrap_err().to_string();
        assert!(err.contains(expected), "{extra}: {err}");
        assert!(err.contains("gateway.toml:"), "{extra}: {err}");
        if !extra.contains("source") {
            // The line of the `dir` (or the misspelt key): the 8th line of the file.
            assert!(err.contains("gateway.toml:8:"), "{extra}: {err}");
        }
    }
}

#[tokio::test]
async fn the_pull_step_reads_the_events_folder_after_the_roster() {
    let s = Setup::new().await;
    s.write("e.csv", &[&format!("{ANNA},death,2027-01-20")]);
    let (done, failures) = progression_gateway::run::pull_sources(
        &s.loaded,
        &s.store,
        None,
        false,
        chrono::Utc::now(),
    )
    .await;
    assert!(done.is_empty());
    assert_eq!(failures, Vec::<String>::new());
    assert_eq!(s.live().await.len(), 1);

    s.write("e.csv", &[&format!("{ANNA},dead,2027-01-20")]);
    let (_, failures) = progression_gateway::run::pull_sources(
        &s.loaded,
        &s.store,
        None,
        false,
        chrono::Utc::now(),
    )
    .await;
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("events: ") && failures[0].contains("e.csv:2: column `event`"),
        "{failures:?}"
    );
    assert!(!failures[0].contains(ANNA));
    assert_eq!(s.live().await.len(), 1);
}
