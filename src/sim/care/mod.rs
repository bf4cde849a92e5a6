//! A simulated municipal care system that speaks KL Gateway.
//!
//! - [`generate`]: a municipality of citizens and their courses, deterministic from a seed,
//!   as the delivery-report Bundles (FHIR R4, `collection`) a care system sends: one per citizen
//!   per day on which something changed, holding the changed resources and everything they
//!   reference. The JSON has the shape of the KL Gateway examples in `testdata/klgateway/`.
//! - [`json_to_fhir_xml`] / [`to_fhir_json`]: FHIR XML and JSON (elements in FHIR order).
//! - [`serve`]: a FHIR server on loopback with OAuth2 client credentials, `_lastUpdated`
//!   search with stable paging, and switchable [`Faults`].
//! - [`write_files`]: the Bundles as files in a folder.
//! - [`deliver_profile`]: the visit lengths rewritten so that every course delivers a configured
//!   number of minutes per course-day of its (track, kind, need group): a municipality whose true
//!   cost per tariff cell is known, for calibration.
//!
//! What a citizen's course looks like (chosen per citizen from the seed):
//! §83a rehabilitation that succeeds (levels fall to the goal, the grant ends) or fails (goal
//! cancelled, §83 personal care or practical help from the next day); stable §83 care re-assessed
//! every few months; slow decline (a level rises about monthly, new conditions and grants
//! follow); wound care (SUL §138, every second or third day, at home or in the nursing clinic)
//! until the wound heals; medicine dispensing; meals. Some die: from that day the Patient is
//! `deceasedBoolean: true`, every grant ends that day and no visit follows. About one citizen in
//! twenty uses the legacy code form (H1.1, J1.1, B3).
//!
//! Visits: personal care every day (morning, and evening for hygiene and toileting), practical
//! help once a week, rehabilitation training on weekdays, wound care every second or third day,
//! medicine dispensing weekly; 10-45 minutes each, class `HH`, nursing-clinic visits `AMB`.
//! Each team's care system reports in a nightly batch (20:00-23:59 local): most Bundles of a
//! team and day share one `lastUpdated` instant, the rest are a little apart, so searches meet
//! ties. Every resource carries `meta.lastUpdated` of the report that last changed it; a
//! re-assessment re-sends the Condition with the same id and `recordedDate`.
//!
//! Generation is deterministic: one ChaCha8 RNG from the seed draws each citizen's CPR number
//! and the seed of the citizen's own RNG, so citizens are generated independently (on several
//! threads; the result does not depend on how many).

pub(crate) mod codes;
mod fhir;
mod generate;
mod profile;
mod server;

pub use codes::{BASED_ON_INTERVENTION, CPR_SYSTEM, FSIII, SOR_SYSTEM};
pub use fhir::{FHIR_NS, json_to_fhir_xml, to_fhir_json};
pub use generate::FULL_URL_BASE;
pub use profile::{CellTruth, DeliveredProfile, ProfileCell, Profiled, deliver_profile};
pub use server::{Fault, Faults, ServerConfig, SimServer, serve};

use crate::sources::Format;
use chrono::{DateTime, NaiveDate, Utc};
use std::path::Path;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Everything follows from this seed.
    pub seed: u64,
    /// Number of citizens.
    pub citizens: usize,
    /// The first day of the period.
    pub start: NaiveDate,
    /// Number of days in the period.
    pub days: u32,
    /// One custodian SOR code per team; citizens are spread over them. At least one.
    pub sor_codes: Vec<String>,
    /// The care system's local time zone (visit times, nightly report times).
    pub time_zone: chrono_tz::Tz,
}

impl Default for SimConfig {
    /// 50 citizens over 90 days from 2027-01-01 in Copenhagen, teams nord and syd of
    /// `mappings/teams.toml`.
    fn default() -> Self {
        SimConfig {
            seed: 1,
            citizens: 50,
            start: NaiveDate::from_ymd_opt(2027, 1, 1).expect("a valid date"),
            days: 90,
            sor_codes: vec!["123456789012345".into(), "543210987654321".into()],
            time_zone: chrono_tz::Europe::Copenhagen,
        }
    }
}

/// A simulated citizen (what a test needs to check the gateway's results against).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCitizen {
    /// Synthetic CPR number (10 digits, DDMMYY + 4).
    pub cpr: String,
    /// Custodian SOR code (the team).
    pub sor_code: String,
    /// FHIR id of the Patient.
    pub patient_id: String,
    /// The day of death, if the citizen dies within the period.
    pub died_on: Option<NaiveDate>,
}

/// One delivery-report Bundle.
///
/// The Bundle is kept as compact FHIR JSON bytes, not as a `serde_json::Value`: a municipality
/// of 300 citizens over 120 days has some 20,000 Bundles (about 100 MB of JSON), which as
/// `Value` trees would take well over a gigabyte and seconds to build. [`SimBundle::resource`]
/// parses it when a test wants to look inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBundle {
    /// The Bundle's id.
    pub id: String,
    /// Index into [`Municipality::citizens`].
    pub citizen: usize,
    /// When the care system reported it (= `meta.lastUpdated` and `timestamp`).
    pub last_updated: DateTime<Utc>,
    /// The FHIR JSON Bundle, compact, elements in FHIR order.
    pub json: bytes::Bytes,
}

impl SimBundle {
    /// The Bundle as a JSON value.
    pub fn resource(&self) -> serde_json::Value {
        serde_json::from_slice(&self.json).expect("the simulator writes valid JSON")
    }

    /// FHIR JSON (compact; a cheap copy of [`SimBundle::json`]).
    pub fn to_json(&self) -> Vec<u8> {
        self.json.to_vec()
    }

    /// FHIR JSON indented by two spaces like the KL Gateway examples.
    pub fn to_json_pretty(&self) -> Vec<u8> {
        to_fhir_json(&self.resource(), true)
    }

    /// FHIR XML.
    pub fn to_xml(&self) -> Vec<u8> {
        json_to_fhir_xml(&self.resource())
    }

    /// In the given format.
    pub fn to_format(&self, format: Format) -> Vec<u8> {
        match format {
            Format::Json => self.to_json(),
            Format::Xml => self.to_xml(),
        }
    }
}

/// The simulated municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Municipality {
    /// Every delivery-report Bundle, sorted by (`last_updated`, `id`).
    pub bundles: Vec<SimBundle>,
    /// The citizens.
    pub citizens: Vec<SimCitizen>,
}

/// Generates a municipality, deterministically from `cfg.seed`.
///
/// # Panics
/// If `cfg.sor_codes` is empty.
pub fn generate(cfg: &SimConfig) -> Municipality {
    generate::generate(cfg)
}

/// How [`write_files_grouped`] lays out the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// One sub-folder per local date the reports were sent (`YYYY-MM-DD/`), as a landing folder
    /// collects them night by night.
    pub by_day: bool,
    /// Delivery reports per file: 1 writes each report as its own file; more writes incremental
    /// deliveries (a collection Bundle of up to this many reports, in sending order).
    pub per_file: usize,
}

/// Writes the Bundles as [`Layout`] says; returns the number of files written.
pub fn write_files_grouped(
    municipality: &Municipality,
    dir: &Path,
    format: Format,
    layout: Layout,
    time_zone: chrono_tz::Tz,
) -> std::io::Result<usize> {
    let per_file = layout.per_file.max(1);
    let day_of = |b: &SimBundle| b.last_updated.with_timezone(&time_zone).date_naive();
    let mut files = 0;
    let mut i = 0;
    let bundles = &municipality.bundles;
    while i < bundles.len() {
        let day = day_of(&bundles[i]);
        let mut j = i + 1;
        while j < bundles.len()
            && j - i < per_file
            && (!layout.by_day || day_of(&bundles[j]) == day)
        {
            j += 1;
        }
        let folder = if layout.by_day {
            dir.join(day.to_string())
        } else {
            dir.to_path_buf()
        };
        std::fs::create_dir_all(&folder)?;
        let group = &bundles[i..j];
        if per_file == 1 {
            let b = &group[0];
            std::fs::write(
                folder.join(format!("{}.{format}", b.id)),
                b.to_format(format),
            )?;
        } else {
            let id = format!("delivery-{}-{:07}", day.format("%Y%m%d"), files);
            let mut json = String::with_capacity(group.iter().map(|b| b.json.len() + 80).sum());
            json.push_str(r#"{"resourceType":"Bundle","id":""#);
            json.push_str(&id);
            json.push_str(r#"","meta":{"profile":["http://gateway.kl.dk/1.0/StructureDefinition/klgateway-care-incremental-delivery"]},"type":"collection","entry":["#);
            for (k, b) in group.iter().enumerate() {
                if k > 0 {
                    json.push(',');
                }
                json.push_str(r#"{"fullUrl":""#);
                json.push_str(generate::FULL_URL_BASE);
                json.push_str("/Bundle/");
                json.push_str(&b.id);
                json.push_str(r#"","resource":"#);
                json.push_str(std::str::from_utf8(&b.json).expect("the simulator writes UTF-8"));
                json.push('}');
            }
            json.push_str("]}");
            let bytes = match format {
                Format::Json => json.into_bytes(),
                Format::Xml => {
                    let value: serde_json::Value =
                        serde_json::from_str(&json).expect("the simulator writes valid JSON");
                    json_to_fhir_xml(&value)
                }
            };
            std::fs::write(folder.join(format!("{id}.{format}")), bytes)?;
        }
        files += 1;
        i = j;
    }
    Ok(files)
}

/// Writes every Bundle as `<id>.json` or `<id>.xml` into `dir` (created if missing); returns
/// the number of files written.
pub fn write_files(
    municipality: &Municipality,
    dir: &Path,
    format: Format,
) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    for b in &municipality.bundles {
        let path = dir.join(format!("{}.{format}", b.id));
        std::fs::write(path, b.to_format(format))?;
    }
    Ok(municipality.bundles.len())
}
