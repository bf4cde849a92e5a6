//! The ingest benchmark's baseline: how long a bare parse of the same files takes, on one
//! thread, with nothing mapped or stored. JSON files are parsed into a `serde_json::Value`;
//! XML files are read to the end with quick-xml (every event, nothing kept).
//!
//! Usage: `cargo run --release --example bare_parse -- PATH...` (files or folders, as for
//! `import`). Prints one JSON line: `{"files", "bytes", "resources", "seconds"}`, where
//! `resources` counts the entries of every Bundle (nested ones too).

use std::time::Instant;

fn count_resources(v: &serde_json::Value) -> u64 {
    let Some(entries) = v.get("entry").and_then(|e| e.as_array()) else {
        return 0;
    };
    entries
        .iter()
        .map(|e| match e.get("resource") {
            Some(r) if r.get("resourceType").and_then(|t| t.as_str()) == Some("Bundle") => {
                count_resources(r)
            }
            Some(_) => 1,
            None => 0,
        })
        .sum()
}

fn main() -> anyhow::Result<()> {
    let paths: Vec<std::path::PathBuf> = std::env::args_os().skip(1).map(Into::into).collect();
    anyhow::ensure!(!paths.is_empty(), "usage: bare_parse PATH...");
    let files = progression_gateway::sources::files::collect(&paths)?;
    let (mut bytes, mut resources, mut parse_secs) = (0u64, 0u64, 0f64);
    for file in &files {
        let data = std::fs::read(file)?;
        bytes += data.len() as u64;
        let started = Instant::now();
        if file.extension().is_some_and(|e| e == "xml") {
            let mut reader = quick_xml::Reader::from_reader(data.as_slice());
            let mut buf = Vec::new();
            loop {
                match reader.read_event_into(&mut buf)? {
                    quick_xml::events::Event::Eof => break,
                    quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                        if e.local_name().into_inner() == "resource" =>
                    {
                        resources += 1;
                    }
                    _ => {}
                }
                buf.clear();
            }
            parse_secs += started.elapsed().as_secs_f64();
        } else {
            let value: serde_json::Value = serde_json::from_slice(&data)?;
            parse_secs += started.elapsed().as_secs_f64();
            resources += count_resources(&value);
        }
    }
    println!(
        "{{\"files\": {}, \"bytes\": {bytes}, \"resources\": {resources}, \"seconds\": {parse_secs:.3}}}",
        files.len()
    );
    Ok(())
}
