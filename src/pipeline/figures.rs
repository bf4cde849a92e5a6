//! The steering figures of a period, and what the cockpit shows beside them (the courses
//! behind each figure, the data-quality findings), in one pass over the store.
//!
//! The store packs each citizen's versions into one row ([`Store::send_citizens_packed`]);
//! the citizens are split into pseudonym ranges, one per core, each read on its own
//! connection and computed on its own thread (decode, history, the course ledger read back,
//! [`figures::citizen_facts`]), and the tallies are merged. Holds one citizen's history per
//! thread, the tallies and each course's facts (no citizen in them).

use crate::domain::Pseudonym;
use crate::mapping::Mappings;
use crate::model::figures::{self, Actual, CourseFacts, Figures, QualityKey};
use crate::model::{LedgerEntry, RecordKind, assess, resolve_history_owned};
use crate::store::{CitizenRange, Store};
use chrono::NaiveDate;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Citizens waiting between a reader and its thread.
const QUEUE: usize = 32;

/// A data-quality finding as the cockpit shows it: what, whose, and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QualityFinding {
    /// Kind, scope and what it is about.
    #[serde(flatten)]
    pub key: QualityKey,
    /// How many (citizens' findings; days for days without a team; decisions for an edited
    /// table; cost centres for actuals no team has).
    pub count: u64,
}

/// The figures of a period with what the cockpit shows beside them.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// First day.
    pub from: NaiveDate,
    /// The as-of date.
    pub to: NaiveDate,
    /// The tallies (costs and run-rates included).
    pub figures: Figures,
    /// Every course with a day, start or end in the period or running on the as-of date, by
    /// track, start and id.
    pub courses: Vec<CourseFacts>,
    /// Data-quality findings, by kind, scope and detail.
    pub findings: Vec<QualityFinding>,
    /// The finance actuals read (every cost centre and month in force).
    pub actuals: Vec<Actual>,
    /// Citizens read.
    pub citizens: u64,
    /// What the store held when it was computed ([`Store::data_stamp`]), read before it.
    pub stamp: [i64; 3],
}

/// What one thread computed.
#[derive(Default)]
struct Part {
    figures: Figures,
    courses: Vec<CourseFacts>,
    findings: BTreeMap<QualityKey, u64>,
    stale: BTreeMap<(crate::domain::Track, i32), u32>,
    citizens: u64,
}

/// The figures over `from..=to` (`to`: the as-of date): every stored version (visits
/// included) and the recorded decisions, each citizen's courses as of `to` (recorded
/// decisions read back, the others as they would be decided), the finance actuals. Changes
/// nothing.
pub async fn figures(
    store: &Store,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Snapshot> {
    let stamp = store.data_stamp().await?;
    let mut ledger: HashMap<Pseudonym, Vec<LedgerEntry>> = HashMap::new();
    for e in store.ledger_latest().await? {
        ledger.entry(e.citizen.clone()).or_default().push(e);
    }
    let ledger = Arc::new(ledger);
    let mappings = Arc::new(mappings.clone());
    let parts = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let mut readers = Vec::new();
    let mut workers = Vec::new();
    for range in CitizenRange::split(parts) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(QUEUE);
        let store = store.clone();
        readers.push(async move {
            store
                .send_citizens_packed(&RecordKind::ALL, range, tx)
                .await
        });
        let (ledger, mappings) = (ledger.clone(), mappings.clone());
        workers.push(tokio::task::spawn_blocking(move || {
            let mut part = Part::default();
            while let Some(packed) = rx.blocking_recv() {
                let (who, versions) = packed.unpack()?;
                add(&mut part, &who, versions, &ledger, &mappings, tz, from, to);
            }
            Ok::<Part, anyhow::Error>(part)
        }));
    }
    let read = futures_util::future::join_all(readers).await;
    let mut total = Part::default();
    for w in workers {
        let part = w.await??;
        total.figures.merge(&part.figures);
        total.courses.extend(part.courses);
        for (k, n) in part.findings {
            *total.findings.entry(k).or_default() += n;
        }
        for (k, n) in part.stale {
            *total.stale.entry(k).or_default() += n;
        }
        total.citizens += part.citizens;
    }
    for r in read {
        r?;
    }
    for ((track, year), decisions) in total.stale {
        let f = crate::model::Finding::TariffTableChanged {
            track,
            year,
            decisions,
        };
        let (k, n) = QualityKey::of(&f, None);
        *total.findings.entry(k).or_default() += n;
    }
    let actuals = store.actuals().await?;
    let unknown: BTreeSet<String> = total.figures.add_costs(&actuals, &mappings, from, to);
    for cc in unknown {
        *total
            .findings
            .entry(QualityKey {
                kind: "actuals_unknown_cost_centre",
                scope: figures::Scope::Municipality,
                detail: cc,
            })
            .or_default() += 1;
    }
    total.figures.set_run_rates(to);
    total
        .courses
        .sort_by(|a, b| (a.track, a.start, &a.id).cmp(&(b.track, b.start, &b.id)));
    Ok(Snapshot {
        from,
        to,
        figures: total.figures,
        courses: total.courses,
        findings: total
            .findings
            .into_iter()
            .map(|(key, count)| QualityFinding { key, count })
            .collect(),
        actuals,
        citizens: total.citizens,
        stamp,
    })
}

/// One citizen into a thread's part.
#[allow(clippy::too_many_arguments)]
fn add(
    part: &mut Part,
    who: &Pseudonym,
    versions: Vec<crate::model::Versioned>,
    ledger: &HashMap<Pseudonym, Vec<LedgerEntry>>,
    mappings: &Mappings,
    tz: chrono_tz::Tz,
    from: NaiveDate,
    to: NaiveDate,
) {
    let history = resolve_history_owned(versions, tz);
    let recorded = ledger.get(who).map_or(&[][..], Vec::as_slice);
    let night = assess(&history, mappings, to, recorded);
    let facts = figures::citizen_facts(&history, &night.courses, mappings, tz, from, to);
    part.figures.add(&facts);
    let team = crate::model::team_on(&history, mappings, to);
    for f in night
        .findings
        .iter()
        .chain(&figures::days_without_team(who, &facts))
    {
        let (k, n) = QualityKey::of(f, team.as_ref());
        *part.findings.entry(k).or_default() += n;
    }
    for t in night.stale_tables {
        *part.stale.entry(t).or_default() += 1;
    }
    part.courses.extend(facts.courses);
    part.citizens += 1;
}
