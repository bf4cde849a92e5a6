//! A simulated KMD Nexus REST API on loopback, built from the same simulated municipality as the
//! simulated KL Gateway care system ([`crate::sim::care`]).
//!
//! [`NexusMunicipality::build`] reads every delivery-report Bundle with the gateway's own KL
//! Gateway reader ([`crate::sources::klgateway::read`]) and keeps every version of every thing
//! with its version instant: citizens, grants, conditions (assessments), goals and visits. The
//! pseudonyms the reader gives are mapped back to the simulated citizens (their CPR numbers)
//! under a fixed key of this module.
//!
//! [`serve`] answers with the wire shapes of `deploy/nexus-wire.md`: an OAuth2 token endpoint
//! (client credentials and refresh tokens), the API root with HAL links, organisations (one per
//! SOR code of the simulation), paged patient lists (`pageSize` at most 50, else 414), patients
//! with their preferences, the pathway tree with `basketGrantReference` and
//! `conditionReference` leaves, grants with their elements, conditions and calendar events.
//! What is served is the state as of a visibility limit
//! ([`NexusServer::set_visible_until`]): each thing shows its latest version at or before the
//! limit; things not yet reported are absent.
//!
//! Numbering (stable for a given municipality):
//! - organisation `3 + i` and supplier `11 + i` for the `i`-th SOR code of [`SimConfig`];
//! - patient `1 + i` for the `i`-th citizen of [`Municipality::citizens`];
//! - grants from 1000, conditions from 200000, calendar events from 1000000, each in the
//!   order the care system first reported them;
//! - professionals `500 + 100 × team + k`, `k` in 0-7: a citizen's main carer most of the time,
//!   now and then another one of the team.

mod codes;
mod server;

pub use crate::sim::care::Fault;
pub use server::{NexusServer, NexusServerConfig, serve};

use crate::domain::{Assessment, CitizenRecord, Cpr, Goal, Grant, Pseudonym, PseudonymKey, Visit};
use crate::mapping::Mappings;
use crate::model::{Record, Versioned};
use crate::sim::care::{Municipality, SimConfig};
use crate::sources::Format;
use crate::sources::klgateway::{self, ReadContext};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use secrecy::SecretString;
use std::collections::{BTreeMap, HashMap};

/// The pseudonym key the simulator reads the Bundles with (never a real key: the CPR numbers
/// are synthetic).
const SIM_KEY: &str = "progression-gateway-sim-nexus-key-0001";

/// First grant id.
const FIRST_GRANT: i64 = 1000;
/// First condition id.
const FIRST_CONDITION: i64 = 200_000;
/// First calendar event id.
const FIRST_EVENT: i64 = 1_000_000;
/// Professionals per team.
const CARERS_PER_TEAM: u64 = 8;

/// One version of a thing: its instant, whether it withdraws the thing, and the record.
#[derive(Debug, Clone)]
pub(crate) struct Ver<T> {
    pub at: DateTime<Utc>,
    pub withdrawn: bool,
    pub record: T,
}

/// The latest version at or before `t` (`None`: every version counts).
pub(crate) fn latest<T>(versions: &[Ver<T>], t: Option<DateTime<Utc>>) -> Option<&Ver<T>> {
    versions.iter().rev().find(|v| t.is_none_or(|t| v.at <= t))
}

fn push_version<T: PartialEq>(versions: &mut Vec<Ver<T>>, v: Ver<T>) {
    // A delivery report re-sends unchanged resources with their old `lastUpdated`.
    if !versions
        .iter()
        .any(|x| x.at == v.at && x.withdrawn == v.withdrawn && x.record == v.record)
    {
        versions.push(v);
    }
}

/// How a grant repeats (its `repetition` element).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repetition {
    /// Every `count` days, `visits` visits on a visiting day.
    Day { count: u32, visits: u32 },
    /// Every `count` weeks on `weekdays` of Monday-Friday and `weekenddays` of the weekend.
    Week {
        count: u32,
        weekdays: u32,
        weekenddays: u32,
        visits: u32,
    },
}

/// A simulated citizen as a Nexus patient.
#[derive(Debug, Clone)]
pub(crate) struct Patient {
    pub id: i64,
    /// Ten digits.
    pub cpr: String,
    /// Index of the organisation (= of the SOR code).
    pub org: usize,
    pub citizen: Vec<Ver<CitizenRecord>>,
    /// Indices into [`NexusMunicipality::grants`], in order of first report.
    pub grants: Vec<usize>,
    pub conditions: Vec<usize>,
    pub goals: Vec<usize>,
    pub visits: Vec<usize>,
    /// `k` of the main carer (0-7).
    pub main_carer: u64,
}

/// A grant and what Nexus shows of it beyond the record.
#[derive(Debug, Clone)]
pub(crate) struct GrantEntry {
    pub id: i64,
    /// Index into [`NexusMunicipality::patients`].
    pub patient: usize,
    pub versions: Vec<Ver<Grant>>,
    /// Visitated minutes per visit.
    pub minutes: u32,
    pub repetition: Option<Repetition>,
}

/// A condition: the versions of its assessments.
#[derive(Debug, Clone)]
pub(crate) struct ConditionEntry {
    pub id: i64,
    /// Index into [`NexusMunicipality::patients`].
    pub patient: usize,
    pub versions: Vec<Ver<Assessment>>,
}

/// A visit: the versions of its delivery Encounter.
#[derive(Debug, Clone)]
pub(crate) struct VisitEntry {
    pub id: i64,
    pub versions: Vec<Ver<Visit>>,
}

/// The simulated municipality as KMD Nexus holds it: every version of every patient, grant,
/// condition, goal and visit, with its instant.
#[derive(Debug, Clone)]
pub struct NexusMunicipality {
    pub(crate) time_zone: chrono_tz::Tz,
    pub(crate) sor_codes: Vec<String>,
    pub(crate) org_names: Vec<String>,
    pub(crate) patients: Vec<Patient>,
    pub(crate) grants: Vec<GrantEntry>,
    pub(crate) conditions: Vec<ConditionEntry>,
    pub(crate) goals: Vec<Vec<Ver<Goal>>>,
    pub(crate) visits: Vec<VisitEntry>,
    pub(crate) grant_by_source: HashMap<String, usize>,
}

impl NexusMunicipality {
    /// Reads every Bundle of `m` (generated from `cfg`) with the KL Gateway reader under
    /// `mappings`, local dates in `cfg.time_zone`. A Bundle the reader refuses is left out.
    pub fn build(m: &Municipality, cfg: &SimConfig, mappings: &Mappings) -> Self {
        let key = PseudonymKey::new(SecretString::from(SIM_KEY)).expect("the key is long enough");
        let by_pseudonym: HashMap<Pseudonym, usize> = m
            .citizens
            .iter()
            .enumerate()
            .filter_map(|(i, c)| Cpr::parse(&c.cpr).ok().map(|cpr| (key.citizen(&cpr), i)))
            .collect();
        let ctx = ReadContext {
            key: &key,
            time_zone: cfg.time_zone,
            mappings,
            source: "klgateway",
        };
        let versions = read_all(m, &ctx);

        let org_names: Vec<String> = cfg
            .sor_codes
            .iter()
            .enumerate()
            .map(|(i, sor)| {
                mappings
                    .teams
                    .iter()
                    .find(|t| t.sor_codes.iter().any(|s| s == sor))
                    .map_or_else(
                        || format!("Hjemmeplejen {}", i + 1),
                        |t| format!("Hjemmeplejen {}", t.team.name),
                    )
            })
            .collect();
        let patients: Vec<Patient> = m
            .citizens
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let id = i as i64 + 1;
                Patient {
                    id,
                    cpr: c.cpr.clone(),
                    org: cfg
                        .sor_codes
                        .iter()
                        .position(|s| *s == c.sor_code)
                        .unwrap_or(0),
                    citizen: Vec::new(),
                    grants: Vec::new(),
                    conditions: Vec::new(),
                    goals: Vec::new(),
                    visits: Vec::new(),
                    main_carer: mix(id as u64) % CARERS_PER_TEAM,
                }
            })
            .collect();
        let mut sim = NexusMunicipality {
            time_zone: cfg.time_zone,
            sor_codes: cfg.sor_codes.clone(),
            org_names,
            patients,
            grants: Vec::new(),
            conditions: Vec::new(),
            goals: Vec::new(),
            visits: Vec::new(),
            grant_by_source: HashMap::new(),
        };
        let mut cond_by_source: HashMap<String, usize> = HashMap::new();
        let mut goal_by_source: HashMap<String, usize> = HashMap::new();
        let mut visit_by_source: HashMap<String, usize> = HashMap::new();
        for v in versions {
            let Some(&p) = by_pseudonym.get(v.record.citizen()) else {
                continue;
            };
            let (at, withdrawn) = (v.version_at, v.withdrawn);
            match v.record {
                Record::Citizen(record) => push_version(
                    &mut sim.patients[p].citizen,
                    Ver {
                        at,
                        withdrawn,
                        record,
                    },
                ),
                Record::Grant(record) => {
                    let idx = *sim
                        .grant_by_source
                        .entry(record.source_id.to_string())
                        .or_insert_with(|| {
                            sim.grants.push(GrantEntry {
                                id: FIRST_GRANT + sim.grants.len() as i64,
                                patient: p,
                                versions: Vec::new(),
                                minutes: 15,
                                repetition: None,
                            });
                            sim.patients[p].grants.push(sim.grants.len() - 1);
                            sim.grants.len() - 1
                        });
                    push_version(
                        &mut sim.grants[idx].versions,
                        Ver {
                            at,
                            withdrawn,
                            record,
                        },
                    );
                }
                Record::Assessment(record) => {
                    let idx = *cond_by_source
                        .entry(record.condition_id.to_string())
                        .or_insert_with(|| {
                            sim.conditions.push(ConditionEntry {
                                id: FIRST_CONDITION + sim.conditions.len() as i64,
                                patient: p,
                                versions: Vec::new(),
                            });
                            sim.patients[p].conditions.push(sim.conditions.len() - 1);
                            sim.conditions.len() - 1
                        });
                    push_version(
                        &mut sim.conditions[idx].versions,
                        Ver {
                            at,
                            withdrawn,
                            record,
                        },
                    );
                }
                Record::Goal(record) => {
                    let idx = *goal_by_source
                        .entry(record.source_id.to_string())
                        .or_insert_with(|| {
                            sim.goals.push(Vec::new());
                            sim.patients[p].goals.push(sim.goals.len() - 1);
                            sim.goals.len() - 1
                        });
                    push_version(
                        &mut sim.goals[idx],
                        Ver {
                            at,
                            withdrawn,
                            record,
                        },
                    );
                }
                Record::Visit(record) => {
                    let idx = *visit_by_source
                        .entry(record.source_id.to_string())
                        .or_insert_with(|| {
                            sim.visits.push(VisitEntry {
                                id: FIRST_EVENT + sim.visits.len() as i64,
                                versions: Vec::new(),
                            });
                            sim.patients[p].visits.push(sim.visits.len() - 1);
                            sim.visits.len() - 1
                        });
                    push_version(
                        &mut sim.visits[idx].versions,
                        Ver {
                            at,
                            withdrawn,
                            record,
                        },
                    );
                }
                _ => {}
            }
        }
        for p in &mut sim.patients {
            p.citizen.sort_by_key(|v| v.at);
        }
        for g in &mut sim.grants {
            g.versions.sort_by_key(|v| v.at);
        }
        for c in &mut sim.conditions {
            c.versions.sort_by_key(|v| v.at);
        }
        for g in &mut sim.goals {
            g.sort_by_key(|v| v.at);
        }
        for v in &mut sim.visits {
            v.versions.sort_by_key(|v| v.at);
        }
        sim.derive_grant_elements();
        sim
    }

    /// The visitated minutes and the repetition of each grant, from its code and its visits
    /// over the whole period.
    fn derive_grant_elements(&mut self) {
        // Per grant: (local date, minutes) of each delivered visit.
        let mut delivered: Vec<Vec<(NaiveDate, i64)>> = vec![Vec::new(); self.grants.len()];
        for v in &self.visits {
            let Some(last) = v.versions.last().filter(|v| !v.withdrawn) else {
                continue;
            };
            let day = last
                .record
                .start
                .with_timezone(&self.time_zone)
                .date_naive();
            for g in &last.record.grants {
                if let Some(&idx) = self.grant_by_source.get(g.as_str()) {
                    delivered[idx].push((day, last.record.minutes()));
                }
            }
        }
        for (g, visits) in self.grants.iter_mut().zip(delivered) {
            if !visits.is_empty() {
                let n = visits.len() as i64;
                let sum: i64 = visits.iter().map(|v| v.1.max(0)).sum();
                g.minutes = u32::try_from((2 * sum + n) / (2 * n)).unwrap_or(15);
            }
            let code = g.versions.first().map(|v| v.record.code.as_str());
            g.repetition = code
                .and_then(codes::intervention)
                .and_then(|c| repetition(c.pattern, &visits));
        }
    }

    /// The Nexus supplier id of the team of a SOR code: `11 + i` for the `i`-th SOR code.
    pub fn supplier_id(&self, sor_code: &str) -> Option<i64> {
        self.sor_index(sor_code).map(|i| 11 + i as i64)
    }

    /// The Nexus organisation id of a SOR code: `3 + i` for the `i`-th SOR code.
    pub fn organisation_id(&self, sor_code: &str) -> Option<i64> {
        self.sor_index(sor_code).map(|i| 3 + i as i64)
    }

    /// Every organisation id, one per SOR code, in the order of the SOR codes.
    pub fn organisation_ids(&self) -> Vec<i64> {
        (0..self.sor_codes.len()).map(|i| 3 + i as i64).collect()
    }

    /// Patients the care system reported at all (with everything visible).
    pub fn patient_count(&self) -> usize {
        self.patients
            .iter()
            .filter(|p| !p.citizen.is_empty())
            .count()
    }

    /// The patient id of a CPR number (ten digits, or with a dash after the sixth).
    pub fn patient_id(&self, cpr: &str) -> Option<i64> {
        let digits: String = cpr.chars().filter(char::is_ascii_digit).collect();
        self.patients.iter().find(|p| p.cpr == digits).map(|p| p.id)
    }

    /// The Nexus id of a grant, by its KL Gateway (CarePlan) id.
    pub fn grant_id(&self, source_id: &str) -> Option<i64> {
        self.grant_by_source
            .get(source_id)
            .map(|&i| self.grants[i].id)
    }

    /// The time zone of local dates.
    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.time_zone
    }

    fn sor_index(&self, sor_code: &str) -> Option<usize> {
        self.sor_codes.iter().position(|s| s == sor_code)
    }

    /// The professional `(id, name)` of a visit of patient `p` on `day`.
    pub(crate) fn professional(&self, p: &Patient, day: NaiveDate) -> (i64, String) {
        let h = mix((p.id as u64).wrapping_mul(1_000_003) ^ day.num_days_from_ce() as u64);
        let k = if h.is_multiple_of(6) {
            (p.main_carer + 1 + (h / 6) % (CARERS_PER_TEAM - 1)) % CARERS_PER_TEAM
        } else {
            p.main_carer
        };
        let id = 500 + 100 * p.org as i64 + k as i64;
        (id, format!("Medarbejder {id}"))
    }
}

/// The repetition of a grant of `pattern` delivered on `visits` (local date, minutes):
/// a daily grant visited twice on some day is visited twice a day; an every-few-days grant
/// repeats at its most frequent spacing (2 or 3 days).
fn repetition(pattern: codes::Pattern, visits: &[(NaiveDate, i64)]) -> Option<Repetition> {
    use codes::Pattern;
    let mut per_day: BTreeMap<NaiveDate, u32> = BTreeMap::new();
    for (d, _) in visits {
        *per_day.entry(*d).or_default() += 1;
    }
    Some(match pattern {
        Pattern::Daily | Pattern::Daily2 => {
            let visits = if per_day.is_empty() {
                if pattern == Pattern::Daily2 { 2 } else { 1 }
            } else {
                per_day.values().copied().max().unwrap_or(1).min(2)
            };
            Repetition::Day { count: 1, visits }
        }
        Pattern::Weekly => Repetition::Week {
            count: 1,
            weekdays: 1,
            weekenddays: 0,
            visits: 1,
        },
        Pattern::Weekdays => Repetition::Week {
            count: 1,
            weekdays: 5,
            weekenddays: 0,
            visits: 1,
        },
        Pattern::EveryFew => {
            let days: Vec<NaiveDate> = per_day.keys().copied().collect();
            let mut gaps: BTreeMap<i64, usize> = BTreeMap::new();
            for w in days.windows(2) {
                *gaps.entry((w[1] - w[0]).num_days()).or_default() += 1;
            }
            let count = gaps
                .iter()
                .max_by_key(|(gap, n)| (**n, -**gap))
                .map_or(2, |(gap, _)| if *gap >= 3 { 3 } else { 2 });
            Repetition::Day { count, visits: 1 }
        }
        Pattern::Never => return None,
    })
}

/// Reads every Bundle (on up to 8 threads), the versions in Bundle order.
fn read_all(m: &Municipality, ctx: &ReadContext<'_>) -> Vec<Versioned> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = m.bundles.len().div_ceil(threads).max(1);
    let parts: Vec<Vec<Versioned>> = std::thread::scope(|scope| {
        let handles: Vec<_> = m
            .bundles
            .chunks(chunk)
            .map(|bundles| {
                scope.spawn(move || {
                    let mut out = Vec::new();
                    for b in bundles {
                        let Ok(doc) = klgateway::read(&b.json, Format::Json, ctx) else {
                            continue;
                        };
                        for report in doc.reports.into_iter().flatten() {
                            out.extend(report.versions);
                        }
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a reading thread panicked"))
            .collect()
    });
    parts.into_iter().flatten().collect()
}

/// SplitMix64: a deterministic hash of a number.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn repetitions_follow_the_pattern_and_the_visits() {
        use codes::Pattern;
        let twice = [(d("2027-01-04"), 20), (d("2027-01-04"), 15)];
        assert_eq!(
            repetition(Pattern::Daily2, &twice[..1]),
            Some(Repetition::Day {
                count: 1,
                visits: 1
            })
        );
        assert_eq!(
            repetition(Pattern::Daily, &twice),
            Some(Repetition::Day {
                count: 1,
                visits: 2
            })
        );
        let every3 = [
            (d("2027-01-01"), 20),
            (d("2027-01-04"), 20),
            (d("2027-01-07"), 20),
        ];
        assert_eq!(
            repetition(Pattern::EveryFew, &every3),
            Some(Repetition::Day {
                count: 3,
                visits: 1
            })
        );
        assert_eq!(repetition(Pattern::Never, &every3), None);
    }

    #[test]
    fn sections_by_code_family() {
        assert_eq!(
            codes::section(codes::intervention("H1.11").unwrap()),
            "§ 83"
        );
        assert_eq!(
            codes::section(codes::intervention("2912752c-2e9e-4702-8787-b45f73ff5b05").unwrap()),
            "§ 83 a"
        );
        assert_eq!(
            codes::section(codes::intervention("G1.39").unwrap()),
            "§ 138"
        );
        assert!(codes::intervention("X9.9").is_none());
    }
}
