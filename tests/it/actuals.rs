//! The finance system's actuals folder (`[actuals]`): Danish amounts, windows-1252 headers,
//! configured column names; every bad row named by file, line and column while the good files
//! are stored; limits; read again, nothing is stored twice; a restated month replaces the old.

use progression_gateway::model::YearMonth;
use progression_gateway::sources::actuals::{ActualsSettings, SyncError, read, sync};
use progression_gateway::store::Store;
use rust_decimal::Decimal;
use std::path::Path;

fn settings(dir: &Path, extra: &str) -> ActualsSettings {
    let mut s: ActualsSettings = toml::from_str(&format!("dir = \"x\"\n{extra}")).unwrap();
    s.dir = dir.to_path_buf();
    s
}

fn ym(y: i32, m: u32) -> YearMonth {
    YearMonth { year: y, month: m }
}

#[test]
fn danish_amounts_in_windows_1252_with_the_finance_systems_own_column_names() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(
        dir.path(),
        r#"encoding = "windows-1252"
[columns]
cost_centre = "Omkostningssted"
month = "Måned"
amount = "Beløb"
"#,
    );
    // Two accounts of 1001 in January are added up; a text column is not read.
    let (text, _, _) = encoding_rs::WINDOWS_1252.encode(
        "Omkostningssted;Måned;Konto;Tekst;Beløb\n\
         1001;2027-01;5.32.30;Løn, hjemmepleje;1.234.567,89\n\
         1001;202701;5.32.31;Kørsel;10,11\n\
         1002;2027-02;5.32.30;Løn;-500,00\n\
         \n",
    );
    let path = dir.path().join("opus-2027-02.csv");
    std::fs::write(&path, &text).unwrap();
    let f = read(&path, &s).unwrap();
    let got: Vec<(String, YearMonth, Decimal)> = f
        .actuals
        .iter()
        .map(|a| (a.cost_centre.clone(), a.month, a.amount))
        .collect();
    assert_eq!(
        got,
        vec![
            ("1001".into(), ym(2027, 1), "1234578.00".parse().unwrap()),
            ("1002".into(), ym(2027, 2), "-500.00".parse().unwrap()),
        ]
    );
    // Read as UTF-8, the same bytes are refused with the way out.
    let utf8 = settings(dir.path(), "");
    let e = read(&path, &utf8).unwrap_err();
    assert!(e[0].to_string().contains("is not UTF-8"), "{}", e[0]);
    assert!(e[0].to_string().contains("windows-1252"));
}

#[test]
fn every_bad_row_is_named_by_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), "");
    let path = dir.path().join("bad.csv");
    std::fs::write(
        &path,
        "cost_centre;month;amount\n\
         1001;2027-01;100,00\n\
         10A1;2027-01;100,00\n\
         1001;2027-13;100,00\n\
         1001;2027-01;12,345\n\
         1001;2027-01;1.000.000.000.000,00\n\
         1001;2027-01;\n\
         1001;2027-01\n",
    )
    .unwrap();
    let errors: Vec<String> = read(&path, &s)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let file = path.display().to_string();
    assert_eq!(
        errors,
        vec![
            format!("{file}:3: column `cost_centre` (`10A1`) is not a cost centre (1-10 digits)"),
            format!("{file}:4: column `month` (`2027-13`) is not a month (YYYY-MM or YYYYMM)"),
            format!("{file}:5: column `amount` (`12,345`) has more than two decimals"),
            format!("{file}:6: column `amount` (`1.000.000.000.000,00`) is too large"),
            format!("{file}:7: column `amount` (``) is not an amount"),
            format!("{file}:8: the row has 2 fields, the header 3: too few"),
        ]
    );
    // A header without the configured columns says which are missing and the delimiter.
    std::fs::write(&path, "cost_centre,month,amount\n1001,2027-01,1\n").unwrap();
    let e = read(&path, &s).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        format!(
            "{file}:1: the header has no column `cost_centre`, `month`, `amount` (columns are separated by `;`)"
        )
    );
    // Too large a file is refused unread.
    let small = settings(dir.path(), "max_file_bytes = 10");
    let e = read(&path, &small).unwrap_err();
    assert!(
        e[0].to_string()
            .contains("more than actuals.max_file_bytes (10)"),
        "{}",
        e[0]
    );
}

#[tokio::test]
async fn a_bad_file_stores_nothing_the_good_ones_are_stored_once_and_restated_months_win() {
    let dir = tempfile::tempdir().unwrap();
    let landing = dir.path().join("landing");
    std::fs::create_dir(&landing).unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("gw.db").display()))
        .await
        .unwrap();
    let s = settings(&landing, "");
    std::fs::write(
        landing.join("2027-01.csv"),
        "cost_centre;month;amount\n1001;2027-01;100,00\n1002;2027-01;50,00\n",
    )
    .unwrap();
    std::fs::write(
        landing.join("2027-02.csv"),
        "cost_centre;month;amount\n1001;2027-02;200,00\n1001;2027-0X;1,00\n",
    )
    .unwrap();
    let Err(SyncError::Invalid { errors, summary }) = sync(&store, &s).await else {
        panic!("the bad file is reported");
    };
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("2027-02.csv:3: column `month`"),
        "{}",
        errors[0]
    );
    assert_eq!(
        (summary.files, summary.stored_files, summary.stored_months),
        (1, 1, 2)
    );
    let stored = store.actuals().await.unwrap();
    assert_eq!(stored.len(), 2, "nothing of the bad file: {stored:?}");

    // Fixed, and a restatement of January: read again, only the new files are stored.
    std::fs::write(
        landing.join("2027-02.csv"),
        "cost_centre;month;amount\n1001;2027-02;200,00\n",
    )
    .unwrap();
    std::fs::write(
        landing.join("2027-03-rettelse.csv"),
        "cost_centre;month;amount\n1001;2027-01;120,00\n",
    )
    .unwrap();
    let summary = sync(&store, &s).await.unwrap();
    assert_eq!((summary.files, summary.stored_files), (3, 2));
    let again = sync(&store, &s).await.unwrap();
    assert_eq!(again.stored_files, 0, "the same content is stored once");
    let mut got: Vec<(String, YearMonth, Decimal)> = store
        .actuals()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.cost_centre, a.month, a.amount))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("1001".into(), ym(2027, 1), "120.00".parse().unwrap()),
            ("1001".into(), ym(2027, 2), "200.00".parse().unwrap()),
            ("1002".into(), ym(2027, 1), "50.00".parse().unwrap()),
        ]
    );
}
