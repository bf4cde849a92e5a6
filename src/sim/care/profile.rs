//! A delivered-minutes profile: a generated municipality whose true cost per tariff cell is
//! known (issue 13, "Tariffs that are right").
//!
//! [`generate`](super::generate) draws each visit's length (10-45 minutes) without knowing
//! course kinds or need groups. [`deliver_profile`] takes its municipality and rewrites the visit
//! lengths so that every course delivers exactly the profile's minutes per course-day of its
//! (track, kind, need group):
//!
//! 1. Each citizen's Bundles are read with the gateway's own reader
//!    ([`klgateway::read`](crate::sources::klgateway::read), as `import` does), the history
//!    resolved ([`resolve_history`]) and the courses decided afresh as of the period's last day
//!    ([`compute_courses`]), exactly as `calibrate` replays them.
//! 2. A course's cell is the one `calibrate` puts it in: its track, its kind, and the need group
//!    of its need score in the template table (the table in force on the period's last day, else
//!    the latest before it; a score above every group is the last group).
//! 3. Its course-days are its days within the period `from..=to`; its visits are the citizen's
//!    visits whose local start day is one of those days and that deliver a grant of the track
//!    (the visits `calibrate` costs it by). Profile minutes × course-days are spread evenly over
//!    those visits in order of start (each gets the quotient, the first ones one minute more for
//!    the remainder): a course-day without a visit has its minutes delivered on the course's
//!    other visits, so the minutes delivered on a course's days are exactly the profile's
//!    minutes × its course-days, and the true cost per course-day of a cell is exactly the
//!    profile's minutes at the table's hourly rate.
//! 4. Only `Encounter.period.end` changes (start + the minutes); ids, `meta.lastUpdated`,
//!    Bundle order and everything else stay, and a Bundle without a changed Encounter keeps its
//!    bytes. The Bundles stay delivery reports the reader accepts.
//!
//! What the profile cannot make exact, and is counted in [`Profiled`]: a course without a single
//! visit on its days in the period (calibration costs it by its visitated minutes), a course
//! whose cell has no minutes in the profile (its visits keep their generated lengths), and a
//! visit that delivers grants of both tracks (it keeps the first course's share; the simulator
//! never writes one: its visit slots are per track). The truth is exact for a calibration over
//! the same period `from..=to`: a calibration over another period cuts courses elsewhere.

use super::Municipality;
use crate::domain::{CourseKind, PseudonymKey, SourceId, Track};
use crate::mapping::Mappings;
use crate::model::calibrate::template_of;
use crate::model::{Record, Versioned, compute_courses, resolve_history};
use crate::sources::Format;
use crate::sources::ingest::KLGATEWAY_RECORDS;
use crate::sources::klgateway::{self, ReadContext, ReadError};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A tariff cell: track, course kind and need group (of the template table, by need score).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProfileCell {
    /// Track.
    pub track: Track,
    /// Course kind.
    pub kind: CourseKind,
    /// Need group.
    pub group: u8,
}

/// Minutes delivered per course-day, per cell. A cell not in it keeps the generated lengths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveredProfile {
    /// Whole minutes per course-day.
    pub minutes: BTreeMap<ProfileCell, u32>,
}

impl DeliveredProfile {
    /// Sets a cell's minutes per course-day.
    pub fn with(mut self, track: Track, kind: CourseKind, group: u8, minutes: u32) -> Self {
        self.minutes
            .insert(ProfileCell { track, kind, group }, minutes);
        self
    }

    /// A cell's minutes per course-day.
    pub fn minutes_of(&self, cell: ProfileCell) -> Option<u32> {
        self.minutes.get(&cell).copied()
    }

    /// A cell's true cost per course-day at `hourly_rate` kr. an hour, exact.
    pub fn cost_per_day(&self, cell: ProfileCell, hourly_rate: Decimal) -> Option<Decimal> {
        self.minutes_of(cell)
            .map(|m| Decimal::from(m) * hourly_rate / Decimal::from(60))
    }
}

/// What one cell delivered in the period, as the profile made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellTruth {
    /// The cell.
    pub cell: ProfileCell,
    /// Its courses with a day in the period.
    pub courses: u64,
    /// Their days in the period.
    pub course_days: u64,
    /// Their visits on those days.
    pub visits: u64,
    /// The minutes those visits deliver now.
    pub delivered_minutes: u64,
    /// Courses without a visit on their days (calibration costs them by visitated minutes).
    pub courses_without_visit: u64,
    /// The profile's minutes per course-day.
    pub minutes_per_day: u32,
    /// The true cost per course-day at the template's hourly rate (`None`: the template has no
    /// hourly rate; the shipped nursing table has none).
    pub cost_per_day: Option<Decimal>,
}

impl CellTruth {
    /// Whether the cell's delivered minutes are exactly the profile's over its course-days
    /// (every course has a visit).
    pub fn exact(&self) -> bool {
        self.courses_without_visit == 0
            && self.delivered_minutes == u64::from(self.minutes_per_day) * self.course_days
    }
}

/// The municipality with the profile delivered, and the truth per cell.
#[derive(Debug, Clone)]
pub struct Profiled {
    /// The municipality, visit lengths rewritten.
    pub municipality: Municipality,
    /// Every profiled cell that has a course in the period, by track, kind and group.
    pub cells: Vec<CellTruth>,
    /// Visits whose length the profile set.
    pub visits_profiled: u64,
    /// Visits left as generated: outside the period, on no course's day, or of a course whose
    /// cell the profile has no minutes for.
    pub visits_left: u64,
    /// Courses with a day in the period whose cell has no minutes in the profile.
    pub unprofiled_courses: u64,
    /// Visits in courses of both tracks (kept the first course's share).
    pub shared_visits: u64,
}

impl Profiled {
    /// The truth of one cell.
    pub fn cell(&self, track: Track, kind: CourseKind, group: u8) -> Option<&CellTruth> {
        let want = ProfileCell { track, kind, group };
        self.cells.iter().find(|c| c.cell == want)
    }
}

#[derive(Default)]
struct Part {
    /// Bundle index → its new JSON.
    rewritten: Vec<(usize, bytes::Bytes)>,
    cells: BTreeMap<ProfileCell, CellTruth>,
    visits_profiled: u64,
    visits_left: u64,
    unprofiled_courses: u64,
    shared_visits: u64,
}

/// Rewrites the visit lengths of `municipality` so that each course delivers the profile's
/// minutes per course-day on its days in `from..=to` (see the module documentation), and
/// returns the truth per cell. `tz` is the care system's time zone (the simulator's
/// `SimConfig::time_zone`), `mappings` the gateway's.
pub fn deliver_profile(
    municipality: &Municipality,
    mappings: &Mappings,
    tz: Tz,
    profile: &DeliveredProfile,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Profiled, ReadError> {
    let mut of_citizen: Vec<Vec<usize>> = vec![Vec::new(); municipality.citizens.len()];
    for (i, b) in municipality.bundles.iter().enumerate() {
        if let Some(list) = of_citizen.get_mut(b.citizen) {
            list.push(i);
        }
    }
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(of_citizen.len().max(1));
    let chunk = of_citizen.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Part, ReadError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = of_citizen
            .chunks(chunk)
            .map(|citizens| {
                scope.spawn(move || {
                    let mut part = Part::default();
                    for bundles in citizens {
                        citizen(
                            municipality,
                            bundles,
                            mappings,
                            tz,
                            profile,
                            from,
                            to,
                            &mut part,
                        )?;
                    }
                    Ok(part)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a profile thread panicked"))
            .collect()
    });
    let mut out = municipality.clone();
    let mut cells: BTreeMap<ProfileCell, CellTruth> = BTreeMap::new();
    let (mut visits_profiled, mut visits_left, mut unprofiled_courses, mut shared_visits) =
        (0, 0, 0, 0);
    for part in parts {
        let part = part?;
        for (i, json) in part.rewritten {
            out.bundles[i].json = json;
        }
        for (k, c) in part.cells {
            match cells.entry(k) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(c);
                }
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let t = e.get_mut();
                    t.courses += c.courses;
                    t.course_days += c.course_days;
                    t.visits += c.visits;
                    t.delivered_minutes += c.delivered_minutes;
                    t.courses_without_visit += c.courses_without_visit;
                }
            }
        }
        visits_profiled += part.visits_profiled;
        visits_left += part.visits_left;
        unprofiled_courses += part.unprofiled_courses;
        shared_visits += part.shared_visits;
    }
    Ok(Profiled {
        municipality: out,
        cells: cells.into_values().collect(),
        visits_profiled,
        visits_left,
        unprofiled_courses,
        shared_visits,
    })
}

/// One citizen: decide the courses, set the visits' minutes, rewrite the Bundles that hold them.
#[allow(clippy::too_many_arguments)]
fn citizen(
    municipality: &Municipality,
    bundles: &[usize],
    mappings: &Mappings,
    tz: Tz,
    profile: &DeliveredProfile,
    from: NaiveDate,
    to: NaiveDate,
    part: &mut Part,
) -> Result<(), ReadError> {
    if bundles.is_empty() {
        return Ok(());
    }
    // Any key: the pseudonyms only group a citizen's records, and this is one citizen.
    let key = PseudonymKey::new(secrecy::SecretString::from(
        "the-delivered-minutes-profile-key",
    ))
    .expect("a key long enough");
    let ctx = ReadContext {
        key: &key,
        time_zone: tz,
        mappings,
        source: KLGATEWAY_RECORDS,
    };
    let mut versions: Vec<Versioned> = Vec::new();
    // Encounter id → the Bundles that carry it.
    let mut carried_by: HashMap<SourceId, Vec<usize>> = HashMap::new();
    for &i in bundles {
        let document = klgateway::read(&municipality.bundles[i].json, Format::Json, &ctx)?;
        for report in document.reports {
            for v in report?.versions {
                if let Record::Visit(visit) = &v.record {
                    carried_by
                        .entry(visit.source_id.clone())
                        .or_default()
                        .push(i);
                }
                versions.push(v);
            }
        }
    }
    let history = resolve_history(&versions, tz);
    let courses = compute_courses(&history, mappings, to).courses;
    let grants_of = [
        (Track::Care, history.grants_in_track(mappings, Track::Care)),
        (
            Track::Nursing,
            history.grants_in_track(mappings, Track::Nursing),
        ),
    ];
    // Visit id → its new end.
    let mut ends: HashMap<&SourceId, DateTime<Utc>> = HashMap::new();
    for c in &courses {
        let first = c.start.max(from);
        let last = c.end.min(to);
        if first > last {
            continue;
        }
        let Some(template) = template_of(mappings, c.track, to) else {
            part.unprofiled_courses += 1;
            continue;
        };
        let group = template
            .group_for(c.need_score)
            .or(template.groups.last())
            .map_or(0, |g| g.group);
        let cell = ProfileCell {
            track: c.track,
            kind: c.kind,
            group,
        };
        let Some(minutes_per_day) = profile.minutes_of(cell) else {
            part.unprofiled_courses += 1;
            continue;
        };
        let days = (last - first).num_days() as u64 + 1;
        let grants = grants_of
            .iter()
            .find(|(t, _)| *t == c.track)
            .map(|(_, g)| g)
            .expect("both tracks");
        // History visits are sorted by start; ties keep their order.
        let visits: Vec<_> = history
            .visits
            .iter()
            .filter(|v| {
                let day = v.start.with_timezone(&tz).date_naive();
                (first..=last).contains(&day) && v.grants.iter().any(|g| grants.contains(g))
            })
            .collect();
        let total = u64::from(minutes_per_day) * days;
        let rate = template.individual.as_ref().map(|i| i.hourly_rate);
        let truth = part.cells.entry(cell).or_insert(CellTruth {
            cell,
            courses: 0,
            course_days: 0,
            visits: 0,
            delivered_minutes: 0,
            courses_without_visit: 0,
            minutes_per_day,
            cost_per_day: rate.and_then(|r| profile.cost_per_day(cell, r)),
        });
        truth.courses += 1;
        truth.course_days += days;
        truth.visits += visits.len() as u64;
        if visits.is_empty() {
            truth.courses_without_visit += 1;
            continue;
        }
        let n = visits.len() as u64;
        let (each, rest) = (total / n, total % n);
        for (k, v) in visits.iter().enumerate() {
            let minutes = each + u64::from((k as u64) < rest);
            if ends.contains_key(&v.source_id) {
                part.shared_visits += 1;
                continue;
            }
            let minutes = i64::try_from(minutes).expect("minutes fit");
            ends.insert(&v.source_id, v.start + chrono::Duration::minutes(minutes));
            truth.delivered_minutes += minutes as u64;
        }
    }
    part.visits_profiled += ends.len() as u64;
    part.visits_left += history.visits.len() as u64 - ends.len() as u64;
    // The Bundles to rewrite, each once.
    let mut touched: BTreeSet<usize> = BTreeSet::new();
    for id in ends.keys() {
        touched.extend(carried_by.get(*id).into_iter().flatten().copied());
    }
    let by_id: HashMap<&str, DateTime<Utc>> =
        ends.iter().map(|(id, end)| (id.as_str(), *end)).collect();
    for i in touched {
        let mut bundle = municipality.bundles[i].resource();
        let mut changed = false;
        for entry in bundle["entry"].as_array_mut().into_iter().flatten() {
            let resource = &mut entry["resource"];
            if resource["resourceType"] != "Encounter" {
                continue;
            }
            let Some(end) = resource["id"].as_str().and_then(|id| by_id.get(id)) else {
                continue;
            };
            let text = end.format("%Y-%m-%dT%H:%M:%SZ").to_string();
            if resource["period"]["end"].as_str() != Some(&text) {
                resource["period"]["end"] = serde_json::Value::String(text);
                changed = true;
            }
        }
        if changed {
            part.rewritten
                .push((i, super::to_fhir_json(&bundle, false).into()));
        }
    }
    Ok(())
}
