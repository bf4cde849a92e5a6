//! The municipality's tables: intervention codes, functional level codes, teams, tariffs and
//! accounts. The types here are plain data used by the model; [`load`] reads and validates them
//! from the files in `mappings/`.

pub mod load;

use crate::domain::{CostCentre, CourseKind, FunctionalLevel, Team, TeamId, Track};
use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The law an intervention is granted under. The paragraph is not in a KL Gateway resource:
/// it follows from the code's parent group, through the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Law {
    /// SEL §83 stk. 1 nr. 1, personal care.
    Sel83PersonalCare,
    /// SEL §83 stk. 1 nr. 2, practical help.
    Sel83PracticalHelp,
    /// SEL §83 stk. 1 nr. 3, meals.
    Sel83Meals,
    /// SEL §83a, rehabilitation.
    Sel83a,
    /// SEL §84, relief and temporary stay.
    Sel84,
    /// SEL §86, training.
    Sel86,
    /// SUL §138, home nursing.
    Sul138,
    /// Ældreloven (in force 1 July 2025).
    Aeldrelov,
    /// Zero-services (0-ydelser) and other codes outside a paragraph.
    None,
}

/// What kind of service an intervention is, for counting and figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Personal care.
    PersonalCare,
    /// Practical help.
    PracticalHelp,
    /// Meals.
    Meals,
    /// Rehabilitation (personal or practical).
    Rehabilitation,
    /// Relief, respite and temporary stays.
    Relief,
    /// Training.
    Training,
    /// Home nursing.
    Nursing,
    /// Zero-services: assessment, coordination, follow-up.
    ZeroService,
    /// Ældrelov helhedspleje interventions.
    HolisticCare,
}

/// A course hint from the mapping: a code can force a course kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CourseHint {
    /// The code does not decide the kind.
    #[default]
    None,
    /// An active grant with this code makes the course a development course.
    Development,
    /// An active grant with this code makes the course individual.
    Individual,
}

/// How one intervention code enters the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterventionMapping {
    /// FSIII UUID code (or a local code).
    pub code: String,
    /// The legacy FSIII key (H1.1, G1.39, ...), where there is one.
    pub legacy_code: Option<String>,
    /// Name shown to people.
    pub display: String,
    /// The track it bears a tariff in; `None` = outside both tracks (stored and counted only).
    pub track: Option<Track>,
    /// Service kind.
    pub service_kind: ServiceKind,
    /// Law.
    pub law: Law,
    /// Course hint.
    pub course_hint: CourseHint,
    /// Weight in the nursing need score (basis `intervention_weight`).
    pub nursing_weight: u32,
    /// Norm minutes per week, used where the source has no visitated minutes.
    pub norm_minutes_per_week: u32,
}

/// All intervention mappings, looked up by UUID or legacy code.
#[derive(Debug, Clone, Default)]
pub struct InterventionMap {
    rows: Vec<InterventionMapping>,
    by_code: HashMap<String, usize>,
}

impl InterventionMap {
    /// Builds the lookup. Duplicate codes are refused by the loader before this is called; here
    /// a later row wins.
    pub fn new(rows: Vec<InterventionMapping>) -> Self {
        let mut by_code = HashMap::new();
        for (i, row) in rows.iter().enumerate() {
            by_code.insert(row.code.clone(), i);
            if let Some(legacy) = &row.legacy_code {
                by_code.insert(legacy.clone(), i);
            }
        }
        Self { rows, by_code }
    }

    /// The mapping of a code in either form, or `None` for an unknown code.
    pub fn get(&self, code: &str) -> Option<&InterventionMapping> {
        self.by_code.get(code).map(|&i| &self.rows[i])
    }

    /// All rows, in file order.
    pub fn rows(&self) -> &[InterventionMapping] {
        &self.rows
    }
}

/// Functional level codes (UUID and legacy; the legacy keys are shifted by one: B1 = level 0).
#[derive(Debug, Clone, Default)]
pub struct LevelMap {
    by_code: HashMap<String, FunctionalLevel>,
}

impl LevelMap {
    /// Builds the lookup from `(code, level)` pairs.
    pub fn new(pairs: impl IntoIterator<Item = (String, FunctionalLevel)>) -> Self {
        Self {
            by_code: pairs.into_iter().collect(),
        }
    }

    /// The level of a code, or `None` for an unknown code.
    pub fn get(&self, code: &str) -> Option<FunctionalLevel> {
        self.by_code.get(code).copied()
    }

    /// Number of codes.
    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    /// Whether there are no codes.
    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }
}

/// A team and the source identifiers that point to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMapping {
    /// The team.
    pub team: Team,
    /// Custodian SOR codes (KL Gateway `managingOrganization`) that mean this team.
    pub sor_codes: Vec<String>,
    /// Supplier ids in KMD Nexus that mean this team.
    pub nexus_supplier_ids: Vec<String>,
}

/// What a track's need score is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeedBasis {
    /// Sum of the latest in-focus functional levels (care default).
    FunctionalLevel,
    /// Visitated minutes per week of the active grants.
    WeeklyMinutes,
    /// Sum of the mapped weights of the active grants (nursing default).
    InterventionWeight,
}

/// One need group of a tariff table: scores `min..=max` (`max = None`: and above).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeedGroup {
    /// Group number, 1 upwards.
    pub group: u8,
    /// Lowest score in the group.
    pub min: u32,
    /// Highest score in the group; `None` for an open top group.
    pub max: Option<u32>,
    /// Daily tariff of a development course.
    pub development: Decimal,
    /// Daily tariff of a stabilisation course.
    pub stabilisation: Decimal,
}

impl NeedGroup {
    /// Whether `score` falls in this group.
    pub fn contains(&self, score: u32) -> bool {
        self.min <= score && self.max.is_none_or(|max| score <= max)
    }

    /// The daily tariff for a course kind (individual courses are paid by time, not by group).
    pub fn daily_tariff(&self, kind: CourseKind) -> Option<Decimal> {
        match kind {
            CourseKind::Development => Some(self.development),
            CourseKind::Stabilisation => Some(self.stabilisation),
            CourseKind::Individual => None,
        }
    }
}

/// The individual-course rule of a tariff table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndividualRule {
    /// A need score at or above this makes the course individual.
    pub threshold: u32,
    /// DKK per visitated hour.
    pub hourly_rate: Decimal,
}

/// Course lengths in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CourseLengths {
    /// Development courses (default 84 = 12 weeks).
    pub development_days: u32,
    /// Stabilisation courses (default 182 = 26 weeks).
    pub stabilisation_days: u32,
}

impl Default for CourseLengths {
    fn default() -> Self {
        Self {
            development_days: 84,
            stabilisation_days: 182,
        }
    }
}

/// A tariff table for one track and tariff year; in force from 1 January of its year until the
/// next year's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TariffTable {
    /// The track.
    pub track: Track,
    /// The tariff year.
    pub year: i32,
    /// What the need score is computed from.
    pub basis: NeedBasis,
    /// Need groups, ordered by `min`, contiguous from 0.
    pub groups: Vec<NeedGroup>,
    /// Individual courses, where the track has them.
    pub individual: Option<IndividualRule>,
    /// Course lengths.
    pub lengths: CourseLengths,
}

impl TariffTable {
    /// sha256 (hex) of the table's content: what a recorded decision names, so an edited
    /// table is noticed.
    pub fn content_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_string(self).expect("a tariff table serializes");
        hex::encode(Sha256::digest(json.as_bytes()))
    }

    /// The group a score falls in.
    pub fn group_for(&self, score: u32) -> Option<&NeedGroup> {
        self.groups.iter().find(|g| g.contains(score))
    }
}

/// All tariff tables.
#[derive(Debug, Clone, Default)]
pub struct TariffBook {
    tables: Vec<TariffTable>,
}

impl TariffBook {
    /// Builds the book; tables are kept sorted by track and year.
    pub fn new(mut tables: Vec<TariffTable>) -> Self {
        tables.sort_by_key(|t| (t.track, t.year));
        Self { tables }
    }

    /// The table in force on `day` for `track`: the latest tariff year not after `day`'s year.
    pub fn in_force(&self, track: Track, day: NaiveDate) -> Option<&TariffTable> {
        self.tables
            .iter()
            .filter(|t| t.track == track && t.year <= day.year())
            .max_by_key(|t| t.year)
    }

    /// The table of `track` and `year`, if there is one.
    pub fn table(&self, track: Track, year: i32) -> Option<&TariffTable> {
        self.tables
            .iter()
            .find(|t| t.track == track && t.year == year)
    }

    /// All tables.
    pub fn tables(&self) -> &[TariffTable] {
        &self.tables
    }
}

/// The accounts postings go to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounts {
    /// GL account (8 digits) of the care track.
    pub care_gl_account: String,
    /// GL account (8 digits) of the nursing track.
    pub nursing_gl_account: String,
    /// The purchaser's (myndighedens) cost centre: the other side of every voucher.
    pub purchaser_cost_centre: CostCentre,
    /// Where days without a team assignment are paid.
    pub fallback_cost_centre: CostCentre,
}

impl Accounts {
    /// The GL account of a track.
    pub fn gl_account(&self, track: Track) -> &str {
        match track {
            Track::Care => &self.care_gl_account,
            Track::Nursing => &self.nursing_gl_account,
        }
    }
}

/// Everything the municipality maps, validated.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    /// Intervention codes.
    pub interventions: InterventionMap,
    /// Functional level codes.
    pub levels: LevelMap,
    /// Teams.
    pub teams: Vec<TeamMapping>,
    /// Tariff tables.
    pub tariffs: TariffBook,
    /// Accounts; `None` only in tests that need no postings.
    pub accounts: Option<Accounts>,
}

impl Mappings {
    /// A digest of everything the model reads from the mappings (intervention rows, levels
    /// sorted by code, teams, tariff tables, accounts): equal digests mean equal mappings, in
    /// any process. What a computation kept for later is valid only under the same digest.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut levels: Vec<_> = self.levels.by_code.iter().collect();
        levels.sort_by(|a, b| a.0.cmp(b.0));
        let text = format!(
            "{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
            self.interventions.rows, levels, self.teams, self.tariffs, self.accounts
        );
        hex::encode(&Sha256::digest(text.as_bytes())[..16])
    }

    /// The team a custodian SOR code points to.
    pub fn team_for_sor(&self, sor: &str) -> Option<&Team> {
        self.teams
            .iter()
            .find(|t| t.sor_codes.iter().any(|s| s == sor))
            .map(|t| &t.team)
    }

    /// A team by id.
    pub fn team(&self, id: &TeamId) -> Option<&Team> {
        self.teams.iter().map(|t| &t.team).find(|t| &t.id == id)
    }
}
