//! Helpers shared by the test modules: the worked-example tables of `progression-model.md`, a
//! small history builder, and [`spawn_server`], an axum router served on loopback.

use chrono::{NaiveDate, TimeZone, Utc};
use progression_gateway::domain::{
    Assessment, CitizenRecord, CostCentre, FunctionalLevel, Goal, Grant, GrantStatus, Pseudonym,
    SourceId, Team, TeamAssignment, TeamId, Termination, TerminationReason, Track,
};
use progression_gateway::mapping::{
    Accounts, CourseHint, CourseLengths, IndividualRule, InterventionMap, InterventionMapping, Law,
    LevelMap, Mappings, NeedBasis, NeedGroup, ServiceKind, TariffBook, TariffTable, TeamMapping,
};
use progression_gateway::model::CitizenHistory;
use rust_decimal::Decimal;

pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

pub fn dec(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// §83 personal care (H1.1), 420 norm minutes a week.
pub const PERSONAL_CARE: &str = "17312894-b23f-43d9-9723-b725ac25d872";
/// §83 practical help (H1.8, cleaning), 420 norm minutes a week.
pub const CLEANING: &str = "43608562-e356-4990-8b96-e35128bbdc4f";
/// §83a rehabilitation (H2.4, RH mobility).
pub const REHAB: &str = "0b654911-f2b6-47d3-948b-3e9fb315b4c9";
/// §83 stk.1 nr.3 meals (H1.11): outside both tracks.
pub const MEALS: &str = "9aad7654-b9f9-40a3-84d9-2ae1dec4228a";
/// SUL §138 wound care (G1.39): nursing, weight 3, development.
pub const WOUND_CARE: &str = "76878386-b3d2-4320-828a-a700e8a66234";
/// SUL §138 medicine dispensing (G1.21): nursing, weight 1.
pub const MEDICINE: &str = "81ad7190-f253-47c2-a7c9-3d61dd4f7275";

#[allow(clippy::too_many_arguments)] // one argument per CSV column, as in the file
fn row(
    code: &str,
    legacy: &str,
    track: Option<Track>,
    kind: ServiceKind,
    law: Law,
    hint: CourseHint,
    weight: u32,
    minutes: u32,
) -> InterventionMapping {
    InterventionMapping {
        code: code.into(),
        legacy_code: Some(legacy.into()),
        display: legacy.into(),
        track,
        service_kind: kind,
        law,
        course_hint: hint,
        nursing_weight: weight,
        norm_minutes_per_week: minutes,
    }
}

fn group(n: u8, min: u32, max: Option<u32>, dev: &str, stab: &str) -> NeedGroup {
    NeedGroup {
        group: n,
        min,
        max,
        development: dec(dev),
        stabilisation: dec(stab),
    }
}

/// The worked-example tariff tables (tariff year 2027).
pub fn worked_example_tables() -> Vec<TariffTable> {
    vec![
        TariffTable {
            track: Track::Care,
            year: 2027,
            basis: NeedBasis::FunctionalLevel,
            groups: vec![
                group(1, 0, Some(3), "210.00", "95.00"),
                group(2, 4, Some(7), "250.00", "180.00"),
                group(3, 8, Some(11), "330.00", "260.00"),
                group(4, 12, Some(15), "410.00", "350.00"),
            ],
            individual: Some(IndividualRule {
                threshold: 16,
                hourly_rate: dec("450.00"),
            }),
            lengths: CourseLengths::default(),
        },
        TariffTable {
            track: Track::Nursing,
            year: 2027,
            basis: NeedBasis::InterventionWeight,
            groups: vec![
                group(1, 0, Some(2), "120.00", "60.00"),
                group(2, 3, Some(5), "200.00", "140.00"),
                group(3, 6, None, "300.00", "240.00"),
            ],
            individual: None,
            lengths: CourseLengths::default(),
        },
    ]
}

/// The worked-example mappings: a few real FSIII codes, the 2027 tables, teams nord and syd.
pub fn mappings_with(tables: Vec<TariffTable>) -> Mappings {
    use CourseHint as H;
    use ServiceKind as K;
    let interventions = InterventionMap::new(vec![
        row(
            PERSONAL_CARE,
            "H1.1",
            Some(Track::Care),
            K::PersonalCare,
            Law::Sel83PersonalCare,
            H::None,
            0,
            420,
        ),
        row(
            CLEANING,
            "H1.8",
            Some(Track::Care),
            K::PracticalHelp,
            Law::Sel83PracticalHelp,
            H::None,
            0,
            420,
        ),
        row(
            REHAB,
            "H2.4",
            Some(Track::Care),
            K::Rehabilitation,
            Law::Sel83a,
            H::Development,
            0,
            180,
        ),
        row(
            MEALS,
            "H1.11",
            None,
            K::Meals,
            Law::Sel83Meals,
            H::None,
            0,
            0,
        ),
        row(
            WOUND_CARE,
            "G1.39",
            Some(Track::Nursing),
            K::Nursing,
            Law::Sul138,
            H::Development,
            3,
            60,
        ),
        row(
            MEDICINE,
            "G1.21",
            Some(Track::Nursing),
            K::Nursing,
            Law::Sul138,
            H::None,
            1,
            30,
        ),
    ]);
    let team = |id: &str, name: &str, cc: &str, sor: &str| TeamMapping {
        team: Team {
            id: TeamId::parse(id).unwrap(),
            name: name.into(),
            cost_centre: CostCentre::parse(cc).unwrap(),
        },
        sor_codes: vec![sor.into()],
        nexus_supplier_ids: vec![],
    };
    Mappings {
        interventions,
        levels: LevelMap::new((0..=4).chain([9]).map(|l| {
            (
                format!("B{}", if l == 9 { 6 } else { l + 1 }),
                FunctionalLevel::new(l).unwrap(),
            )
        })),
        teams: vec![
            team("nord", "Team Nord", "1001", "123456789012345"),
            team("syd", "Team Syd", "1002", "543210987654321"),
        ],
        tariffs: TariffBook::new(tables),
        accounts: Some(Accounts {
            care_gl_account: "53026000".into(),
            nursing_gl_account: "46282000".into(),
            purchaser_cost_centre: CostCentre::parse("9000").unwrap(),
            fallback_cost_centre: CostCentre::parse("9999").unwrap(),
        }),
    }
}

pub fn worked_example_mappings() -> Mappings {
    mappings_with(worked_example_tables())
}

/// A label's bytes as lower-case hex (at most 32 bytes).
fn hex_of(label: &str) -> String {
    label.bytes().take(32).map(|b| format!("{b:02x}")).collect()
}

pub fn citizen(n: u32) -> Pseudonym {
    Pseudonym::parse(&format!("{n:064x}")).unwrap()
}

/// Builds one citizen's resolved history.
pub struct HistoryBuilder {
    pub h: CitizenHistory,
    seq: u32,
}

impl HistoryBuilder {
    pub fn new(n: u32) -> Self {
        Self {
            h: CitizenHistory {
                citizen: Some(citizen(n)),
                ..CitizenHistory::default()
            },
            seq: 0,
        }
    }

    fn next_id(&mut self, prefix: &str) -> SourceId {
        self.seq += 1;
        SourceId::parse(&format!("{prefix}-{}", self.seq)).unwrap()
    }

    fn who(&self) -> Pseudonym {
        self.h.citizen.clone().unwrap()
    }

    pub fn grant(mut self, code: &str, start: &str, end: Option<&str>) -> Self {
        let id = self.next_id("grant");
        let g = Grant::new(
            id,
            self.who(),
            code.into(),
            d(start),
            end.map(d),
            GrantStatus::Active,
            None,
        )
        .unwrap();
        self.h.grants.push(g);
        self
    }

    pub fn withdrawn_grant(mut self, code: &str, start: &str) -> Self {
        let id = self.next_id("grant");
        let g = Grant::new(
            id,
            self.who(),
            code.into(),
            d(start),
            None,
            GrantStatus::EnteredInError,
            None,
        )
        .unwrap();
        self.h.grants.push(g);
        self
    }

    /// Assesses condition `condition` (any label) at `level` on `on`, in focus.
    pub fn level(mut self, condition: &str, level: u8, on: &str) -> Self {
        let day = d(on);
        self.h.assessments.push(Assessment {
            condition_id: SourceId::parse(condition).unwrap(),
            citizen: self.who(),
            condition_code: condition.into(),
            level_code: format!("B{}", level + 1),
            level: Some(FunctionalLevel::new(level).unwrap()),
            assessed_at: Utc.from_utc_datetime(&day.and_hms_opt(9, 0, 0).unwrap()),
            assessed_on: day,
            in_focus: true,
        });
        self
    }

    /// Levels on several conditions on one day.
    pub fn levels(mut self, levels: &[u8], on: &str) -> Self {
        for (i, &l) in levels.iter().enumerate() {
            self = self.level(&format!("condition-{i}"), l, on);
        }
        self
    }

    pub fn goal(mut self, condition: &str, target: u8, on: &str) -> Self {
        let id = self.next_id("goal");
        self.h.goals.push(Goal {
            source_id: id,
            citizen: self.who(),
            condition_id: SourceId::parse(condition).unwrap(),
            target_level: Some(FunctionalLevel::new(target).unwrap()),
            set_on: d(on),
            active: true,
        });
        self
    }

    pub fn terminated(mut self, reason: TerminationReason, on: &str) -> Self {
        let id = self.next_id("event");
        self.h.terminations.push(Termination {
            source_id: id,
            citizen: self.who(),
            on: d(on),
            reason,
        });
        self
    }

    pub fn team(mut self, team: &str, from: &str, to: Option<&str>) -> Self {
        let a = TeamAssignment::new(self.who(), TeamId::parse(team).unwrap(), d(from), to.map(d))
            .unwrap();
        self.h.assignments.push(a);
        self
    }

    /// A visit delivering the builder's grant `grant` (`grant-N`, the N-th record added),
    /// starting at `start` (RFC 3339), `minutes` long, by employee `employee` (any label; a
    /// pseudonym of it) or by no one known.
    pub fn visit(
        mut self,
        grant: &str,
        start: &str,
        minutes: i64,
        employee: Option<&str>,
        mode: progression_gateway::domain::DeliveryMode,
    ) -> Self {
        let id = self.next_id("visit");
        let start: chrono::DateTime<Utc> = start.parse().unwrap();
        let employee = employee.map(|e| Pseudonym::parse(&format!("{:0>64}", hex_of(e))).unwrap());
        let v = progression_gateway::domain::Visit::new(
            id,
            self.who(),
            start,
            start + chrono::Duration::minutes(minutes),
            employee,
            mode,
            vec![SourceId::parse(grant).unwrap()],
        )
        .unwrap();
        self.h.visits.push(v);
        self
    }

    pub fn custodian(mut self, sor: &str) -> Self {
        self.h.profile = Some(CitizenRecord {
            citizen: self.who(),
            patient_id: None,
            custodian_sor: Some(sor.into()),
            deceased: false,
            deceased_on: None,
            active: true,
        });
        self
    }

    pub fn build(mut self) -> CitizenHistory {
        self.h.assessments.sort_by_key(|a| a.assessed_at);
        self.h.terminations.sort_by_key(|t| t.on);
        self.h
    }
}

/// The histories of worked examples A and B in team nord, and C moving from nord to syd on
/// 16 January 2027 (teams by roster).
pub fn examples_abc() -> [CitizenHistory; 3] {
    let a = HistoryBuilder::new(1)
        .team("nord", "2026-01-01", None)
        .grant(REHAB, "2027-01-04", Some("2027-02-28"))
        .levels(&[2, 2, 2], "2027-01-02")
        .level("condition-0", 4, "2027-02-10")
        .build();
    let b = HistoryBuilder::new(2)
        .team("nord", "2026-01-01", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[3, 3, 3], "2026-12-20")
        .terminated(TerminationReason::Death, "2027-01-20")
        .build();
    let c = HistoryBuilder::new(3)
        .team("nord", "2026-06-01", Some("2027-01-15"))
        .team("syd", "2027-01-16", None)
        .grant(PERSONAL_CARE, "2027-01-01", None)
        .levels(&[2, 3], "2026-12-20")
        .build();
    [a, b, c]
}

/// Every record of a built history as a stored version (for loading a store in tests).
pub fn versions_of(h: &CitizenHistory) -> Vec<progression_gateway::model::Versioned> {
    use progression_gateway::model::{Record, Versioned};
    let mut records: Vec<Record> = Vec::new();
    records.extend(h.profile.iter().cloned().map(Record::Citizen));
    records.extend(h.grants.iter().cloned().map(Record::Grant));
    records.extend(h.assessments.iter().cloned().map(Record::Assessment));
    records.extend(h.goals.iter().cloned().map(Record::Goal));
    records.extend(h.terminations.iter().cloned().map(Record::Termination));
    records.extend(h.assignments.iter().cloned().map(Record::Assignment));
    let base = Utc.with_ymd_and_hms(2026, 12, 1, 8, 0, 0).unwrap();
    records
        .into_iter()
        .enumerate()
        .map(|(i, record)| Versioned {
            source: "test".into(),
            version_at: base + chrono::Duration::seconds(i as i64),
            withdrawn: false,
            record,
        })
        .collect()
}

/// Every version in a store, as comparable text, sorted (a duplicate would show twice).
pub async fn stored_versions(store: &progression_gateway::store::Store) -> Vec<String> {
    let mut out: Vec<String> = store
        .all_versions()
        .await
        .unwrap()
        .into_iter()
        .flat_map(|(_, vs)| vs)
        .map(|v| serde_json::to_string(&v).unwrap())
        .collect();
    out.sort();
    out
}

/// Serves `app` on a free port of 127.0.0.1 in a background task and returns its address; the
/// server lives as long as the test's runtime.
pub async fn spawn_server(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}
