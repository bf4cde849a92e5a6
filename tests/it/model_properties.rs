//! Property tests of the progression model.

use crate::common::*;
use chrono::{Days, NaiveDate, TimeZone, Utc};
use progression_gateway::domain::{
    Assessment, FunctionalLevel, Grant, GrantStatus, SourceId, TeamAssignment, TeamId, Termination,
    TerminationReason, Track,
};
use progression_gateway::mapping::{Mappings, NeedGroup};
use progression_gateway::model::{
    CitizenHistory, Course, Record, Versioned, compute_courses, income, nightly_deltas,
    resolve_history, round_money,
};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

const CODES: [&str; 5] = [PERSONAL_CARE, CLEANING, REHAB, WOUND_CARE, MEDICINE];

fn day(offset: u32) -> NaiveDate {
    d("2027-01-01") + Days::new(u64::from(offset))
}

/// An event in a citizen's history, dated by an offset in days from 2027-01-01.
#[derive(Debug, Clone)]
enum Event {
    Grant {
        code: usize,
        start: u32,
        len: Option<u32>,
    },
    Level {
        condition: u8,
        level: u8,
        on: u32,
    },
    Termination {
        reason: u8,
        on: u32,
    },
    Team {
        team: bool,
        from: u32,
    },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (0..CODES.len(), 0u32..400, proptest::option::of(0u32..200))
            .prop_map(|(code, start, len)| Event::Grant { code, start, len }),
        4 => (0u8..5, prop_oneof![0u8..=4, Just(9)], 0u32..400)
            .prop_map(|(condition, level, on)| Event::Level { condition, level, on }),
        1 => (0u8..3, 0u32..500).prop_map(|(reason, on)| Event::Termination { reason, on }),
        1 => (any::<bool>(), 0u32..400).prop_map(|(team, from)| Event::Team { team, from }),
    ]
}

/// Turns events into versioned records of one citizen; each record is its own thing.
fn records(n: u32, events: &[Event]) -> Vec<Versioned> {
    let who = citizen(n);
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let id = SourceId::parse(&format!("r{i}")).unwrap();
            let at = Utc.from_utc_datetime(&day(0).and_hms_opt(0, 0, 0).unwrap())
                + chrono::Duration::minutes(i as i64);
            let record = match *e {
                Event::Grant { code, start, len } => Record::Grant(
                    Grant::new(
                        id,
                        who.clone(),
                        CODES[code].into(),
                        day(start),
                        len.map(|l| day(start + l)),
                        GrantStatus::Active,
                        None,
                    )
                    .unwrap(),
                ),
                Event::Level {
                    condition,
                    level,
                    on,
                } => Record::Assessment(Assessment {
                    condition_id: SourceId::parse(&format!("c{condition}")).unwrap(),
                    citizen: who.clone(),
                    condition_code: format!("c{condition}"),
                    level_code: format!("B{}", level + 1),
                    level: Some(FunctionalLevel::new(level).unwrap()),
                    assessed_at: Utc.from_utc_datetime(&day(on).and_hms_opt(10, 0, 0).unwrap())
                        + chrono::Duration::seconds(i as i64),
                    assessed_on: day(on),
                    in_focus: true,
                }),
                Event::Termination { reason, on } => Record::Termination(Termination {
                    source_id: id,
                    citizen: who.clone(),
                    on: day(on),
                    reason: [
                        TerminationReason::Death,
                        TerminationReason::MovedOut,
                        TerminationReason::NursingHome,
                    ][reason as usize],
                }),
                Event::Team { team, from } => Record::Assignment(
                    TeamAssignment::new(
                        who.clone(),
                        TeamId::parse(if team { "nord" } else { "syd" }).unwrap(),
                        day(from),
                        None,
                    )
                    .unwrap(),
                ),
            };
            Versioned {
                source: "test".into(),
                version_at: at,
                withdrawn: false,
                record,
            }
        })
        .collect()
}

fn history(n: u32, events: &[Event]) -> CitizenHistory {
    resolve_history(&records(n, events), chrono_tz::Europe::Copenhagen)
}

fn horizon() -> NaiveDate {
    d("2028-12-31")
}

fn by_track(courses: &[Course], track: Track) -> Vec<&Course> {
    let mut cs: Vec<&Course> = courses.iter().filter(|c| c.track == track).collect();
    cs.sort_by_key(|c| c.start);
    cs
}

fn all_years_mappings() -> Mappings {
    let mut tables = worked_example_tables();
    let mut more = Vec::new();
    for t in &tables {
        let mut next = t.clone();
        next.year = 2028;
        more.push(next);
    }
    tables.extend(more);
    mappings_with(tables)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn course_days_never_overlap_within_a_track(events in proptest::collection::vec(event(), 0..25)) {
        let m = all_years_mappings();
        let h = history(1, &events);
        let out = compute_courses(&h, &m, horizon());
        for track in Track::ALL {
            let cs = by_track(&out.courses, track);
            for c in &cs {
                prop_assert!(c.start <= c.end, "{c:?}");
                prop_assert!(c.end <= c.planned_end, "{c:?}");
            }
            for pair in cs.windows(2) {
                prop_assert!(pair[0].end < pair[1].start, "overlap: {:?} / {:?}", pair[0], pair[1]);
            }
        }
    }

    #[test]
    fn a_locked_tariff_never_changes_whatever_events_follow(
        before in proptest::collection::vec(event(), 1..15),
        after in proptest::collection::vec(event(), 1..15),
        cut in 0u32..300,
    ) {
        let m = all_years_mappings();
        // Events dated on or before the cut, then events dated strictly after it.
        let clamp = |e: &Event, lo: u32, hi: u32| -> Event {
            let f = |x: u32| lo + x % (hi - lo + 1);
            match *e {
                Event::Grant { code, start, len } => Event::Grant { code, start: f(start), len },
                Event::Level { condition, level, on } => Event::Level { condition, level, on: f(on) },
                Event::Termination { reason, on } => Event::Termination { reason, on: f(on) },
                Event::Team { team, from } => Event::Team { team, from: f(from) },
            }
        };
        let early: Vec<Event> = before.iter().map(|e| clamp(e, 0, cut)).collect();
        let late: Vec<Event> = after.iter().map(|e| clamp(e, cut + 1, cut + 400)).collect();
        let base = compute_courses(&history(1, &early), &m, horizon()).courses;
        let mut all_events = early.clone();
        all_events.extend(late);
        let more = compute_courses(&history(1, &all_events), &m, horizon()).courses;
        for c in base.iter().filter(|c| c.start <= day(cut)) {
            let same = more.iter().find(|x| x.track == c.track && x.start == c.start);
            prop_assert!(same.is_some(), "course {c:?} vanished");
            let same = same.unwrap();
            prop_assert_eq!((same.kind, same.group, same.tariff, same.need_score), (c.kind, c.group, c.tariff, c.need_score));
            prop_assert!(same.end <= c.end);
        }
    }

    #[test]
    fn nightly_deltas_over_a_month_sum_to_the_rounded_month_total(
        tariffs in proptest::collection::vec((1u64..50_000_000u64, 0u32..=4), 1..4),
        starts in proptest::collection::vec(0u32..31, 1..4),
        nights in proptest::collection::btree_set(1u32..=31, 1..31),
    ) {
        // Up to four citizens, each with its own stabilisation tariff of up to 4 decimals.
        let mut tables = worked_example_tables();
        let mut histories = Vec::new();
        for (i, (mantissa, scale)) in tariffs.iter().enumerate() {
            let tariff = Decimal::new(*mantissa as i64, *scale);
            tables[0].groups[0] = NeedGroup { stabilisation: tariff, ..tables[0].groups[0].clone() };
            let m = mappings_with(tables.clone());
            let start = day(starts[i % starts.len()]);
            let h = HistoryBuilder::new(i as u32 + 1)
                .team("nord", "2026-01-01", None)
                .grant(PERSONAL_CARE, &start.to_string(), None)
                .build();
            let cs = compute_courses(&h, &m, horizon()).courses;
            histories.push((h, cs, m));
        }
        let mut posted = BTreeMap::new();
        let mut nights: Vec<u32> = nights.into_iter().collect();
        nights.push(31); // the month closes with a run on its last night
        for night in nights {
            let mut mtd = BTreeMap::new();
            for (h, cs, m) in &histories {
                for (k, l) in income([(h, cs.as_slice())], m, day(0), day(night - 1)).lines {
                    let e: &mut progression_gateway::model::IncomeLine = mtd.entry(k).or_default();
                    e.course_days += l.course_days;
                    e.amount += l.amount;
                }
            }
            for delta in nightly_deltas(&mtd, &posted) {
                prop_assert_eq!(delta.amount, round_money(delta.amount));
                *posted.entry(delta.key).or_insert(Decimal::ZERO) += delta.amount;
            }
        }
        let mut exact = Decimal::ZERO;
        for (h, cs, m) in &histories {
            for l in income([(h, cs.as_slice())], m, day(0), day(30)).lines.values() {
                exact += l.amount;
            }
        }
        let posted_total: Decimal = posted.values().sum();
        prop_assert_eq!(posted_total, round_money(exact));
    }

    #[test]
    fn income_is_independent_of_how_the_history_is_split_into_batches(
        events in proptest::collection::vec(event(), 1..25),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        order_seed in any::<u64>(),
    ) {
        let m = all_years_mappings();
        let mut versions = records(1, &events);
        // Older versions of every grant (another end date), which arrive late: they must never
        // replace the newer version, whatever batch they come in.
        let older: Vec<Versioned> = versions
            .iter()
            .filter_map(|v| match &v.record {
                Record::Grant(g) => Some(Versioned {
                    version_at: v.version_at - chrono::Duration::hours(1),
                    record: Record::Grant(Grant { end: Some(g.start + Days::new(400)), ..g.clone() }),
                    ..v.clone()
                }),
                _ => None,
            })
            .collect();
        versions.extend(older);
        // Split into batches at the cut points, then receive the batches in a shuffled order,
        // with every version of a grant's earlier state re-sent in a later batch.
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(versions.len() + 1)).collect();
        points.sort();
        points.dedup();
        let mut batches = Vec::new();
        let mut prev = 0;
        for p in points.into_iter().chain([versions.len()]) {
            if p > prev {
                batches.push(versions[prev..p].to_vec());
                prev = p;
            }
        }
        let mut seed = order_seed;
        for i in (1..batches.len()).rev() {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            batches.swap(i, (seed >> 33) as usize % (i + 1));
        }
        let received: Vec<Versioned> = batches.into_iter().flatten().collect();
        let whole = resolve_history(&versions, chrono_tz::Europe::Copenhagen);
        let split = resolve_history(&received, chrono_tz::Europe::Copenhagen);
        let income_of = |h: &CitizenHistory| {
            let cs = compute_courses(h, &m, horizon()).courses;
            income([(h, cs.as_slice())], &m, day(0), horizon()).lines
        };
        let newest_only = resolve_history(&records(1, &events), chrono_tz::Europe::Copenhagen);
        prop_assert_eq!(income_of(&whole), income_of(&split));
        prop_assert_eq!(income_of(&newest_only), income_of(&split));
    }
}
