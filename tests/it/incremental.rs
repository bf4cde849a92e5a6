//! The nightly run's incremental computation (`pipeline::incremental`) against a full
//! recompute, night by night, on a generated municipality: reports arriving late, a grant
//! withdrawn, deaths and a termination event, and a tariff table edited half-way. Every night
//! both must give the same courses, ledger rows, findings, income and deltas; and citizens
//! without new versions must be taken from what the previous night kept (or the test proves
//! nothing).

use crate::common::*;
use chrono::{Days, NaiveDate};
use progression_gateway::config;
use progression_gateway::domain::{TerminationReason, Track};
use progression_gateway::mapping::TariffBook;
use progression_gateway::model::nightly_deltas;
use progression_gateway::pipeline::{self, IncomeWanted, Options, incremental};
use progression_gateway::sim::care::{SimConfig, generate};
use progression_gateway::sources::Format;
use progression_gateway::sources::ingest::Ingestor;
use progression_gateway::store::Store;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

async fn the_incremental_night_equals_a_full_recompute(store: Store) {
    let mut loaded =
        config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml")).unwrap();
    let tz = loaded.settings.time_zone;
    let start = d("2027-01-01");
    let days = 70u32;
    let sor_codes: Vec<String> = loaded
        .mappings
        .teams
        .iter()
        .flat_map(|t| t.sor_codes.iter().cloned())
        .collect();
    let m = generate(&SimConfig {
        seed: 11,
        citizens: 24,
        start,
        days,
        sor_codes,
        time_zone: tz,
    });
    assert!(
        m.citizens.iter().any(|c| c.died_on.is_some()),
        "a death in the period"
    );
    // Reports by the night they arrive: every fifth three nights late.
    let mut by_night: BTreeMap<NaiveDate, Vec<&progression_gateway::sim::care::SimBundle>> =
        BTreeMap::new();
    for (i, b) in m.bundles.iter().enumerate() {
        let sent = b.last_updated.with_timezone(&tz).date_naive();
        let night = if i % 5 == 2 {
            sent + Days::new(3)
        } else {
            sent
        };
        by_night.entry(night).or_default().push(b);
    }
    // Two hand-made citizens: a grant that is withdrawn later, and a termination by event.
    let granted = HistoryBuilder::new(901)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-05", None)
        .levels(&[3, 3, 3], "2027-01-02")
        .build();
    // The same grant, entered in error (a later version of the same record).
    let withdrawn = HistoryBuilder::new(901)
        .team("nord", "2026-01-01", None)
        .withdrawn_grant(PERSONAL_CARE, "2027-01-05")
        .levels(&[3, 3, 3], "2027-01-02")
        .build();
    let kept = HistoryBuilder::new(902)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-03", None)
        .levels(&[2, 3, 3], "2027-01-02")
        .build();
    let moved = HistoryBuilder::new(902)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-03", None)
        .levels(&[2, 3, 3], "2027-01-02")
        .terminated(TerminationReason::MovedOut, "2027-02-10")
        .build();
    let (mut reused, mut recomputed, mut with_findings) = (0u64, 0u64, 0u64);
    for n in 0..days {
        let night = start + Days::new(u64::from(n));
        let ingestor = Ingestor::new(
            store.clone(),
            loaded.settings.pseudonym_key.clone(),
            tz,
            Arc::new(loaded.mappings.clone()),
            "import",
        );
        let mut batch = ingestor.batch();
        for b in by_night.get(&night).into_iter().flatten() {
            let out = ingestor.read(&b.json, Format::Json, &b.id, &mut batch);
            assert!(out.problems.is_empty(), "{:?}", out.problems);
            batch.push(out, None).await.unwrap();
        }
        batch.finish().await.unwrap();
        match n {
            2 => {
                store.put_batch(&versions_of(&kept), None).await.unwrap();
                store.put_batch(&versions_of(&granted), None).await.unwrap();
            }
            20 => {
                let mut later = versions_of(&withdrawn);
                for v in &mut later {
                    v.version_at += chrono::Duration::days(30);
                }
                store.put_batch(&later, None).await.unwrap();
            }
            30 => {
                let mut later = versions_of(&moved);
                for v in &mut later {
                    v.version_at += chrono::Duration::days(60);
                }
                store.put_batch(&later, None).await.unwrap();
            }
            40 => {
                // The care table of 2027 edited under the recorded decisions.
                let mut tables = loaded.mappings.tariffs.tables().to_vec();
                let t = tables
                    .iter_mut()
                    .find(|t| t.track == Track::Care && t.year == 2027)
                    .unwrap();
                t.groups[0].stabilisation += dec("5.00");
                loaded.mappings.tariffs = TariffBook::new(tables);
            }
            _ => {}
        }
        let mappings = &loaded.mappings;
        let full = pipeline::evaluate_streaming(
            &store,
            mappings,
            tz,
            night,
            Options {
                income: IncomeWanted::ToDate(night),
                keep_histories: false,
            },
        )
        .await
        .unwrap();
        let inc = incremental::evaluate_incremental(&store, mappings, tz, night)
            .await
            .unwrap();
        let e = &inc.eval;
        assert_eq!(e.courses, full.courses, "courses on {night}");
        assert_eq!(e.changes, full.changes, "ledger rows on {night}");
        assert_eq!(e.findings, full.findings, "findings on {night}");
        assert_eq!(e.patient_ids, full.patient_ids, "patients on {night}");
        assert_eq!(e.latest_day, full.latest_day, "latest day on {night}");
        let (a, b) = (e.income.as_ref().unwrap(), full.income.as_ref().unwrap());
        assert_eq!(a.lines, b.lines, "income on {night}");
        assert_eq!(a.shares, b.shares, "course shares on {night}");
        assert_eq!(a.findings, b.findings, "days without team on {night}");
        let posted = pipeline::posted(&store).await.unwrap();
        assert_eq!(
            nightly_deltas(&a.lines, &posted),
            nightly_deltas(&b.lines, &posted),
            "deltas on {night}"
        );
        if n == days - 1 {
            // Visits are not read: the model over every stored version decides the same.
            let every = pipeline::evaluate_with(
                store.all_versions().await.unwrap(),
                store.ledger_latest().await.unwrap(),
                mappings,
                tz,
                night,
            );
            assert_eq!(every.courses, e.courses, "visits change no course");
            assert_eq!(every.changes, e.changes);
            let first = e.all_courses().iter().map(|c| c.start).min().unwrap();
            assert_eq!(every.income(mappings, first, night).lines, a.lines);
        }
        reused += inc.reused;
        with_findings += inc.reused_with_findings;
        recomputed += inc.recomputed;
        // As the nightly run does: record, then keep.
        e.record(&store, night).await.unwrap();
        inc.keep(&store).await.unwrap();
    }
    println!(
        "incremental: {reused} citizen-nights reused ({with_findings} with findings), \
         {recomputed} recomputed"
    );
    // A citizen with new versions that night is computed afresh; the others must be reused,
    // those with findings too (the generated grants from before 2027 find no tariff table).
    assert!(
        reused > 0,
        "citizens without new versions come from what was kept ({reused} reused, {recomputed} recomputed)"
    );
    assert!(
        with_findings > 0,
        "citizens with findings are kept with them ({with_findings} of {reused} reused)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incremental_night_equals_a_full_recompute_on_sqlite() {
    crate::store::on_sqlite(|store, _| the_incremental_night_equals_a_full_recompute(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incremental_night_equals_a_full_recompute_on_postgres() {
    crate::store::on_postgres(|store, _| the_incremental_night_equals_a_full_recompute(store))
        .await;
}
