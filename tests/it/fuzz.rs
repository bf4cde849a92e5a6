//! Seeded mutations of the readers' real inputs: the KL Gateway delivery reports of
//! `shared/testdata/klgateway` (JSON and XML), a roster CSV, an events CSV and an Opus reply
//! file. Each trial must end in a clean read or an error, never a panic, and no message (nor
//! an unknown code of a read report) may hold a CPR number in any form, injected or original.
//! The seed is printed (set `FUZZ_SEED` to replay one); so is the trial count.

use progression_gateway::domain::PseudonymKey;
use progression_gateway::mapping::Mappings;
use progression_gateway::sinks::finance::reply::read_reply;
use progression_gateway::sources::klgateway::{ReadContext, read, read_whole};
use progression_gateway::sources::{Format, events, roster};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use secrecy::SecretString;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/klgateway");
const REPORTS: [&str; 6] = [
    "DeliveryReport-JensHansen-InterventionDelivery",
    "DeliveryReport-JensHansen-new-1",
    "DeliveryReport-JensHansen-new-2",
    "DeliveryReport-JensHansen-new-3",
    "DeliveryReport-PeterOlsen-new-1",
    "DeliveryReport-PeterOlsen-new-5",
];
const SEED: u64 = 0x5EED_2027_0010;
const TRIALS: [(&str, usize); 5] = [
    ("klgateway JSON", 700),
    ("klgateway XML", 600),
    ("roster CSV", 300),
    ("events CSV", 300),
    ("Opus reply", 300),
];
/// The injected CPR number, and the test data's own.
const CPRS: [&str; 4] = ["0101501234", "0101410001", "0101570001", "0101010101"];

const ROSTER: &str =
    "citizen,team,from,to\n0101501234,nord,2027-01-01,\n010150-1234,syd,2027-02-01,2027-03-31\n";
const EVENTS: &str =
    "citizen,event,date\n0101501234,death,2027-01-05\n010150-1234,moved_out,2027-02-01\n";
const REPLY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ns0:FinancePostingResponse xmlns:ns0="http://kmd.dk/fir/posting/external">
  <ns0:RETURN>
    <ns0:MESSAGE_TYPE>I</ns0:MESSAGE_TYPE>
    <ns0:RECEIV_DOC>PG27000006</ns0:RECEIV_DOC>
    <ns0:MESSAGE>Bilag modtaget</ns0:MESSAGE>
  </ns0:RETURN>
  <ns0:RETURN>
    <ns0:MESSAGE_TYPE>E</ns0:MESSAGE_TYPE>
    <ns0:RECEIV_DOC>PG27000007</ns0:RECEIV_DOC>
    <ns0:MESSAGE>Bilag PG27000007 er allerede modtaget</ns0:MESSAGE>
  </ns0:RETURN>
</ns0:FinancePostingResponse>"#;

/// Every form of a CPR number that must not appear: ten digits, with `-`, `_` or a space
/// after the date, and the nine digits of a JSON number that lost its leading zero.
fn forms(cpr: &str) -> Vec<String> {
    let (date, serial) = cpr.split_at(6);
    let mut out = vec![
        cpr.to_owned(),
        format!("{date}-{serial}"),
        format!("{date}_{serial}"),
        format!("{date} {serial}"),
    ];
    if let Some(short) = cpr.strip_prefix('0') {
        out.push(short.to_owned());
    }
    out
}

/// A CPR number in one of its written forms, or as a JSON-number-like text.
fn cpr_text(rng: &mut ChaCha8Rng) -> String {
    forms(CPRS[0])[rng.random_range(0..4)].clone()
}

fn check(label: &str, trial: usize, text: &str, forbidden: &[String]) {
    for f in forbidden {
        assert!(
            !text.contains(f.as_str()),
            "{label} trial {trial} (seed {:#x}): a CPR form `{f}` in: {}",
            seed(),
            text.chars().take(500).collect::<String>()
        );
    }
}

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).ok()
        })
        .unwrap_or(SEED)
}

/// A mutation of any text's bytes.
fn mutate_bytes(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) {
    if bytes.is_empty() {
        bytes.extend_from_slice(b"0101501234");
        return;
    }
    let at = rng.random_range(0..bytes.len());
    match rng.random_range(0..7) {
        0 => bytes[at] ^= 1 << rng.random_range(0..8),
        1 => bytes.truncate(at),
        2 => {
            let end = (at + rng.random_range(1..200)).min(bytes.len());
            let copy = bytes[at..end].to_vec();
            bytes.splice(at..at, copy);
        }
        3 => {
            let end = (at + rng.random_range(1..200)).min(bytes.len());
            bytes.drain(at..end);
        }
        4 => {
            let huge = "9".repeat(rng.random_range(20..400));
            bytes.splice(at..at, huge.into_bytes());
        }
        5 => {
            // Not glued to other digits, which would make it a longer number, not a CPR.
            let cpr = format!(" {} ", cpr_text(rng));
            bytes.splice(at..at, cpr.into_bytes());
        }
        _ => bytes[at] = rng.random(),
    }
}

/// Paths to every string leaf (and array) of a JSON value.
fn leaves(
    v: &Value,
    path: &mut Vec<PathStep>,
    strings: &mut Vec<Vec<PathStep>>,
    arrays: &mut Vec<Vec<PathStep>>,
) {
    match v {
        Value::String(_) => strings.push(path.clone()),
        Value::Array(items) => {
            arrays.push(path.clone());
            for (i, item) in items.iter().enumerate() {
                path.push(PathStep::Index(i));
                leaves(item, path, strings, arrays);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                path.push(PathStep::Key(k.clone()));
                leaves(item, path, strings, arrays);
                path.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn at_path<'v>(v: &'v mut Value, path: &[PathStep]) -> &'v mut Value {
    path.iter().fold(v, |v, step| match step {
        PathStep::Key(k) => &mut v[k.as_str()],
        PathStep::Index(i) => &mut v[*i],
    })
}

/// A structural mutation of a JSON document.
fn mutate_json(rng: &mut ChaCha8Rng, v: &mut Value) {
    let (mut strings, mut arrays) = (Vec::new(), Vec::new());
    leaves(v, &mut Vec::new(), &mut strings, &mut arrays);
    match rng.random_range(0..6) {
        0 | 1 => {
            let path = &strings[rng.random_range(0..strings.len())];
            *at_path(v, path) = Value::String(cpr_text(rng));
        }
        2 => {
            // A number where a string is expected: a CPR number that lost its leading zero.
            let path = &strings[rng.random_range(0..strings.len())];
            *at_path(v, path) = Value::from(101_501_234u64);
        }
        3 => {
            let path = &strings[rng.random_range(0..strings.len())];
            *at_path(v, path) = match rng.random_range(0..3) {
                0 => serde_json::from_str("1e400").unwrap_or(Value::from(f64::MAX)),
                1 => Value::from(u64::MAX),
                _ => Value::String("x".repeat(100_000)),
            };
        }
        _ if !arrays.is_empty() => {
            let path = &arrays[rng.random_range(0..arrays.len())];
            let Value::Array(items) = at_path(v, path) else {
                unreachable!()
            };
            if items.is_empty() {
                return;
            }
            let i = rng.random_range(0..items.len());
            if rng.random_bool(0.5) {
                let copy = items[i].clone();
                items.insert(i, copy);
            } else {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// A mutation of FHIR XML: a `value` attribute replaced by a CPR number or a huge text, or an
/// element line duplicated or removed, or bytes.
fn mutate_xml(rng: &mut ChaCha8Rng, text: &str) -> Vec<u8> {
    let values: Vec<usize> = text.match_indices("value=\"").map(|(i, _)| i + 7).collect();
    match rng.random_range(0..5) {
        0 | 1 if !values.is_empty() => {
            let start = values[rng.random_range(0..values.len())];
            let end = start + text[start..].find('"').unwrap_or(0);
            let with = if rng.random_bool(0.8) {
                cpr_text(rng)
            } else {
                "y".repeat(100_000)
            };
            format!("{}{with}{}", &text[..start], &text[end..]).into_bytes()
        }
        2 | 3 => {
            let mut lines: Vec<&str> = text.lines().collect();
            let i = rng.random_range(0..lines.len());
            if rng.random_bool(0.5) {
                lines.insert(i, lines[i]);
            } else {
                lines.remove(i);
            }
            lines.join("\n").into_bytes()
        }
        _ => {
            let mut bytes = text.as_bytes().to_vec();
            mutate_bytes(rng, &mut bytes);
            bytes
        }
    }
}

/// A mutation of a CSV text: a field replaced by a CPR number (in any column), a huge value,
/// a line duplicated or removed, or bytes.
fn mutate_csv(rng: &mut ChaCha8Rng, text: &str) -> Vec<u8> {
    let mut lines: Vec<Vec<String>> = text
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    let i = rng.random_range(0..lines.len());
    match rng.random_range(0..5) {
        0 | 1 => {
            let j = rng.random_range(0..lines[i].len());
            lines[i][j] = cpr_text(rng);
        }
        2 => {
            let j = rng.random_range(0..lines[i].len());
            lines[i][j] = "z".repeat(rng.random_range(41..50_000));
        }
        3 => {
            if rng.random_bool(0.5) {
                let copy = lines[i].clone();
                lines.insert(i, copy);
            } else {
                lines.remove(i);
            }
        }
        _ => {
            let mut bytes = text.as_bytes().to_vec();
            mutate_bytes(rng, &mut bytes);
            return bytes;
        }
    }
    lines
        .iter()
        .map(|l| l.join(","))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

#[test]
fn seeded_mutations_of_every_reader_never_panic_nor_leak_a_cpr_number() {
    let seed = seed();
    println!("fuzz seed {seed:#x} (FUZZ_SEED={seed:x} replays it)");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let started = Instant::now();
    let key = PseudonymKey::new(SecretString::from("fuzz-key-with-enough-bytes-0001")).unwrap();
    let mappings: Mappings = progression_gateway::config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/example.toml"
    )))
    .unwrap()
    .mappings;
    let ctx = ReadContext {
        key: &key,
        time_zone: chrono_tz::Europe::Copenhagen,
        mappings: &mappings,
        source: "fuzz",
    };
    let forbidden: Vec<String> = CPRS.iter().flat_map(|c| forms(c)).collect();
    let json: Vec<Value> = REPORTS
        .iter()
        .map(|r| {
            serde_json::from_str(&std::fs::read_to_string(format!("{DATA}/{r}.json")).unwrap())
                .unwrap()
        })
        .collect();
    let xml: Vec<String> = REPORTS
        .iter()
        .map(|r| std::fs::read_to_string(format!("{DATA}/{r}.xml")).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let patients = HashMap::new();
    let mut total = 0;
    let mut errors = 0;
    for (label, trials) in TRIALS {
        for trial in 0..trials {
            let report = |outcome: &mut dyn FnMut() -> Vec<String>| outcome();
            let messages: Vec<String> = match label {
                "klgateway JSON" | "klgateway XML" => {
                    // A third of the documents are incremental deliveries of two or three.
                    let wrap = rng.random_range(0..3) == 0;
                    let (bytes, format) = if label == "klgateway JSON" {
                        let mut v = json[rng.random_range(0..json.len())].clone();
                        if wrap {
                            let entries: Vec<Value> = (0..rng.random_range(2..4))
                                .map(|_| {
                                    serde_json::json!({
                                        "resource": json[rng.random_range(0..json.len())]
                                    })
                                })
                                .collect();
                            v = serde_json::json!({
                                "resourceType": "Bundle",
                                "id": "incremental-1",
                                "type": "collection",
                                "timestamp": "2027-01-02T01:00:00+01:00",
                                "entry": entries,
                            });
                        }
                        for _ in 0..rng.random_range(1..4) {
                            mutate_json(&mut rng, &mut v);
                        }
                        let mut bytes = serde_json::to_vec_pretty(&v).unwrap();
                        if rng.random_bool(0.2) {
                            mutate_bytes(&mut rng, &mut bytes);
                        }
                        (bytes, Format::Json)
                    } else {
                        let mut text = xml[rng.random_range(0..xml.len())].clone();
                        if wrap {
                            let entries: String = (0..rng.random_range(2..4))
                                .map(|_| {
                                    let one = &xml[rng.random_range(0..xml.len())];
                                    let one = match one.find("?>") {
                                        Some(end) if one.starts_with("<?xml") => &one[end + 2..],
                                        _ => one.as_str(),
                                    };
                                    format!("<entry><resource>{one}</resource></entry>\n")
                                })
                                .collect();
                            text = format!(
                                "<Bundle xmlns=\"http://hl7.org/fhir\">\n<id value=\"incremental-1\"/>\n\
                                 <type value=\"collection\"/>\n\
                                 <timestamp value=\"2027-01-02T01:00:00+01:00\"/>\n{entries}</Bundle>\n"
                            );
                        }
                        (mutate_xml(&mut rng, &text), Format::Xml)
                    };
                    let lazy = read(&bytes, format, &ctx);
                    assert_eq!(
                        lazy,
                        read_whole(&bytes, format, &ctx),
                        "{label} trial {trial} (seed {seed:#x}): the entry-by-entry read and \
                         the whole-tree read differ"
                    );
                    report(&mut || match &lazy {
                        Err(e) => vec![e.to_string()],
                        Ok(doc) => doc
                            .reports
                            .iter()
                            .flat_map(|r| match r {
                                Err(e) => vec![e.to_string()],
                                Ok(r) => r
                                    .unknown_codes
                                    .iter()
                                    .map(|u| format!("{u:?}"))
                                    .chain(r.bundle_id.clone())
                                    .collect(),
                            })
                            .collect(),
                    })
                }
                "roster CSV" | "events CSV" => {
                    let (base, name) = if label == "roster CSV" {
                        (ROSTER, "roster.csv")
                    } else {
                        (EVENTS, "events.csv")
                    };
                    let path = dir.path().join(name);
                    std::fs::write(&path, mutate_csv(&mut rng, base)).unwrap();
                    if label == "roster CSV" {
                        match roster::read(&path, &key, &mappings, &patients) {
                            Ok(_) => Vec::new(),
                            Err(es) => es.iter().map(ToString::to_string).collect(),
                        }
                    } else {
                        match events::read(&path, &key, &patients) {
                            Ok(_) => Vec::new(),
                            Err(es) => es.iter().map(ToString::to_string).collect(),
                        }
                    }
                }
                _ => {
                    let bytes = mutate_xml(&mut rng, REPLY);
                    let bytes = if rng.random_bool(0.5) {
                        // A CPR number in an element's text, where Opus writes values.
                        let text = String::from_utf8_lossy(&bytes).into_owned();
                        let tag = [">I<", ">E<", ">PG27000006<", ">Bilag modtaget<"]
                            [rng.random_range(0..4)];
                        text.replacen(tag, &format!(">{}<", cpr_text(&mut rng)), 1)
                            .into_bytes()
                    } else {
                        bytes
                    };
                    match read_reply(&bytes) {
                        Ok(_) => Vec::new(),
                        Err(e) => vec![e.to_string()],
                    }
                }
            };
            total += 1;
            for m in &messages {
                errors += 1;
                check(label, trial, m, &forbidden);
                assert!(
                    m.chars().count() < 2_000,
                    "{label} trial {trial}: a message of {} characters",
                    m.chars().count()
                );
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "fuzz: {total} trials ({}) in {elapsed:?}, {errors} messages checked",
        TRIALS
            .iter()
            .map(|(l, n)| format!("{n} {l}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(total >= 2_000);
    assert!(elapsed < Duration::from_secs(120), "took {elapsed:?}");
}
