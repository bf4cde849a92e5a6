//! The records received from care systems: grants, visits, assessments, goals, terminations.
//!
//! Dates are local dates in the configured time zone; the conversion from instants happens at
//! the source edge, never here.

use super::{InvalidValue, Pseudonym};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The id of a record in its source system (a FHIR resource id, a Nexus id). Non-empty, at most
/// 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SourceId(String);

impl SourceId {
    /// Validates a source id.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if s.is_empty() || s.len() > 200 || s.chars().any(char::is_control) {
            return Err(InvalidValue::new(
                "source id",
                "must be 1-200 characters without control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_newtype!(SourceId);

/// What the care system says about a citizen: custodian organisation and whether deceased.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitizenRecord {
    /// The citizen.
    pub citizen: Pseudonym,
    /// The care system's own id of the citizen (FHIR `Patient.id`): how the gateway refers to
    /// the citizen in the care system (never by CPR), and how a roster may name the citizen.
    pub patient_id: Option<SourceId>,
    /// SOR code of the custodian organisation (`managingOrganization`), used to find the team.
    pub custodian_sor: Option<String>,
    /// The care system reports the citizen as deceased (`deceasedBoolean: true` or any
    /// `deceasedDateTime`).
    pub deceased: bool,
    /// The local date of death where the sender gives one (`deceasedDateTime`); without it the
    /// day of death is the local date of the first report saying deceased.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deceased_on: Option<NaiveDate>,
    /// `false` withdraws the citizen's reported data.
    pub active: bool,
}

/// The status of a grant, as the care system reports it (FHIR `CarePlan.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantStatus {
    /// Being prepared; not yet decided, so not active.
    Draft,
    /// Decided and in force over its period.
    Active,
    /// Paused; treated as active over its period (the course logic does not pause).
    OnHold,
    /// Stopped early; its period end is the stop.
    Revoked,
    /// Completed; its period end is the end.
    Completed,
    /// Recorded in error: the grant never was.
    EnteredInError,
    /// Unknown to the care system; treated as active over its period.
    Unknown,
}

impl GrantStatus {
    /// Parses the FHIR code (`active`, `entered-in-error`, ...).
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        Ok(match s {
            "draft" => Self::Draft,
            "active" => Self::Active,
            "on-hold" => Self::OnHold,
            "revoked" => Self::Revoked,
            "completed" => Self::Completed,
            "entered-in-error" => Self::EnteredInError,
            "unknown" => Self::Unknown,
            other => {
                return Err(InvalidValue::new(
                    "grant status",
                    format!("unknown status `{other}`"),
                ));
            }
        })
    }

    /// Whether a grant with this status ever counts (drafts and errors never do).
    pub fn counts(self) -> bool {
        !matches!(self, Self::Draft | Self::EnteredInError)
    }
}

/// A decided intervention (bevilling/indsats) for a citizen.
///
/// The grant carries its intervention code as received; the track, service kind, law, course
/// hint, nursing weight and norm minutes follow from the code through the mappings
/// (`crate::mapping::InterventionMap`), so an analyst's fix to a mapping applies to all history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Id in the source system.
    pub source_id: SourceId,
    /// The citizen.
    pub citizen: Pseudonym,
    /// FSIII intervention code (UUID or legacy form) or a source-local code.
    pub code: String,
    /// First day the grant is active.
    pub start: NaiveDate,
    /// Last day the grant is active, inclusive; `None` while open.
    pub end: Option<NaiveDate>,
    /// Status in the source system.
    pub status: GrantStatus,
    /// Visitated minutes per week, where the source has them (Nexus); KL Gateway has none and
    /// the mapping's norm minutes apply.
    pub weekly_minutes: Option<u32>,
}

impl Grant {
    /// Validates that the grant does not end before it starts and has a code.
    pub fn new(
        source_id: SourceId,
        citizen: Pseudonym,
        code: String,
        start: NaiveDate,
        end: Option<NaiveDate>,
        status: GrantStatus,
        weekly_minutes: Option<u32>,
    ) -> Result<Self, InvalidValue> {
        if code.trim().is_empty() {
            return Err(InvalidValue::new(
                "grant",
                format!("{source_id} has no intervention code"),
            ));
        }
        if let Some(end) = end
            && end < start
        {
            return Err(InvalidValue::new(
                "grant",
                format!("{source_id} ends {end} before it starts {start}"),
            ));
        }
        Ok(Self {
            source_id,
            citizen,
            code,
            start,
            end,
            status,
            weekly_minutes,
        })
    }

    /// Active on `day`: start through end, both inclusive; drafts and errors never are.
    pub fn is_active_on(&self, day: NaiveDate) -> bool {
        self.status.counts() && self.start <= day && self.end.is_none_or(|end| day <= end)
    }
}

/// Where a visit was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMode {
    /// In the citizen's home (`HH`).
    Home,
    /// In a clinic, e.g. the nursing clinic (`AMB`).
    Clinic,
    /// By telephone.
    Phone,
    /// By video (skærmbesøg).
    Screen,
}

/// A delivered visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    /// Id in the source system.
    pub source_id: SourceId,
    /// The citizen.
    pub citizen: Pseudonym,
    /// Start instant.
    pub start: DateTime<Utc>,
    /// End instant.
    pub end: DateTime<Utc>,
    /// Pseudonym of the employee who delivered, where known.
    pub employee: Option<Pseudonym>,
    /// Where it was delivered.
    pub mode: DeliveryMode,
    /// The grants it delivered.
    pub grants: Vec<SourceId>,
}

impl Visit {
    /// Validates that the visit does not end before it starts.
    pub fn new(
        source_id: SourceId,
        citizen: Pseudonym,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        employee: Option<Pseudonym>,
        mode: DeliveryMode,
        grants: Vec<SourceId>,
    ) -> Result<Self, InvalidValue> {
        if end < start {
            return Err(InvalidValue::new(
                "visit",
                format!("{source_id} ends before it starts"),
            ));
        }
        Ok(Self {
            source_id,
            citizen,
            start,
            end,
            employee,
            mode,
            grants,
        })
    }

    /// Whole minutes delivered.
    pub fn minutes(&self) -> i64 {
        (self.end - self.start).num_minutes()
    }
}

/// An FSIII functional level: 0 (none) to 4 (total limitation), or 9 (not relevant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct FunctionalLevel(u8);

impl FunctionalLevel {
    /// Level 9: not relevant; left out of the need score.
    pub const NOT_RELEVANT: FunctionalLevel = FunctionalLevel(9);

    /// Accepts 0-4 and 9.
    pub fn new(level: u8) -> Result<Self, InvalidValue> {
        match level {
            0..=4 | 9 => Ok(Self(level)),
            other => Err(InvalidValue::new(
                "functional level",
                format!("{other} is not 0-4 or 9"),
            )),
        }
    }

    /// The number.
    pub fn value(self) -> u8 {
        self.0
    }

    /// The contribution to a need score: the level, or `None` for 9.
    pub fn score(self) -> Option<u32> {
        (self.0 <= 4).then_some(u32::from(self.0))
    }
}

impl TryFrom<u8> for FunctionalLevel {
    type Error = InvalidValue;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Self::new(v)
    }
}

impl From<FunctionalLevel> for u8 {
    fn from(l: FunctionalLevel) -> u8 {
        l.0
    }
}

/// One assessment of one condition: a version of a Condition with a severity.
/// A re-assessment keeps the condition id; every version is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assessment {
    /// The condition's id in the source system (the same across re-assessments).
    pub condition_id: SourceId,
    /// The citizen.
    pub citizen: Pseudonym,
    /// FSIII condition code.
    pub condition_code: String,
    /// The severity code as received (FSIII level code, UUID or legacy form).
    pub level_code: String,
    /// The functional level of `level_code` by the mappings; `None` for a code the mappings do
    /// not know (stored and reported, and left out of the need score until mapped).
    pub level: Option<FunctionalLevel>,
    /// When it was assessed (`meta.lastUpdated`, else the Bundle timestamp).
    pub assessed_at: DateTime<Utc>,
    /// The local date of `assessed_at` in the configured time zone.
    pub assessed_on: NaiveDate,
    /// The condition is in focus (active, on the problem list) at this assessment.
    pub in_focus: bool,
}

/// A goal for a condition: the level the citizen is expected to reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Goal {
    /// Id in the source system.
    pub source_id: SourceId,
    /// The citizen.
    pub citizen: Pseudonym,
    /// The condition it addresses.
    pub condition_id: SourceId,
    /// The expected level; `None` when the goal names no level or one the mappings do not know.
    pub target_level: Option<FunctionalLevel>,
    /// Local date from which the goal is known.
    pub set_on: NaiveDate,
    /// Lifecycle active (not completed, cancelled or in error).
    pub active: bool,
}

/// An acute or unplanned delivery (FHIR `Procedure`): a code delivered at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcuteDelivery {
    /// Id in the source system.
    pub source_id: SourceId,
    /// The citizen.
    pub citizen: Pseudonym,
    /// FSIII intervention code.
    pub code: String,
    /// When it was delivered.
    pub performed_at: DateTime<Utc>,
    /// The local date of `performed_at`.
    pub performed_on: NaiveDate,
}

/// A follow-up: a planned follow-up date (old Encounter form) or a follow-up result
/// (Observation: continue, change, end, revisitation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// Id in the source system.
    pub source_id: SourceId,
    /// The citizen.
    pub citizen: Pseudonym,
    /// The local date: the planned date, or the date of the result.
    pub on: NaiveDate,
    /// `true` for a planned follow-up date, `false` for a result.
    pub planned: bool,
    /// The result code (FSIII follow-up code), for a result.
    pub result_code: Option<String>,
    /// What the follow-up is about (a grant or condition id), where given.
    pub focus: Vec<SourceId>,
}

/// Why a course ends before its planned end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationReason {
    /// The citizen died.
    Death,
    /// The citizen moved out of the municipality.
    MovedOut,
    /// The citizen moved permanently to a nursing home.
    NursingHome,
}

impl TerminationReason {
    /// The name used in files, JSON and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Death => "death",
            Self::MovedOut => "moved_out",
            Self::NursingHome => "nursing_home",
        }
    }
}

/// A termination event: the event day is the last paid day of every running course.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Termination {
    /// Id of the event (for a death: the Patient id).
    pub source_id: SourceId,
    /// The citizen.
    pub citizen: Pseudonym,
    /// The event day (local date).
    pub on: NaiveDate,
    /// Why.
    pub reason: TerminationReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo() -> Pseudonym {
        Pseudonym::parse(&"ab".repeat(32)).unwrap()
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn grant_is_active_inclusive_and_never_when_withdrawn() {
        let g = Grant::new(
            SourceId::parse("g1").unwrap(),
            pseudo(),
            "H1.1".into(),
            d("2027-01-04"),
            Some(d("2027-02-28")),
            GrantStatus::Active,
            None,
        )
        .unwrap();
        assert!(!g.is_active_on(d("2027-01-03")));
        assert!(g.is_active_on(d("2027-01-04")));
        assert!(g.is_active_on(d("2027-02-28")));
        assert!(!g.is_active_on(d("2027-03-01")));
        let withdrawn = Grant {
            status: GrantStatus::EnteredInError,
            ..g
        };
        assert!(!withdrawn.is_active_on(d("2027-01-10")));
    }

    #[test]
    fn grant_ending_before_start_is_refused() {
        let err = Grant::new(
            SourceId::parse("g1").unwrap(),
            pseudo(),
            "H1.1".into(),
            d("2027-01-04"),
            Some(d("2027-01-03")),
            GrantStatus::Active,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("g1"));
    }

    #[test]
    fn functional_levels_are_0_to_4_or_9() {
        for ok in [0, 1, 2, 3, 4, 9] {
            assert!(FunctionalLevel::new(ok).is_ok());
        }
        for bad in [5, 6, 8, 10] {
            assert!(FunctionalLevel::new(bad).is_err());
        }
        assert_eq!(FunctionalLevel::NOT_RELEVANT.score(), None);
        assert_eq!(FunctionalLevel::new(3).unwrap().score(), Some(3));
    }

    #[test]
    fn source_ids_refuse_empty_and_control_characters() {
        assert!(SourceId::parse("").is_err());
        assert!(SourceId::parse("a\nb").is_err());
        assert!(SourceId::parse("c3a0f1e2-0000-4000-8000-000000000001").is_ok());
    }
}
