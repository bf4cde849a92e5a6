//! One Nexus patient's resources, as fetched, into the gateway's records (pure: no I/O, the
//! instant of the pull given).
//!
//! Messages name the Nexus patient id and the resource (`grant 42`, `event 9001`), never a CPR
//! number or any other value of a field that could hold one.

use super::config::{GrantCodes, NexusConfig};
use crate::domain::{
    Assessment, CitizenRecord, Cpr, DeliveryMode, Goal, Grant, GrantStatus, Pseudonym,
    PseudonymKey, SourceId, TeamAssignment, Visit,
};
use crate::mapping::Mappings;
use crate::model::Record;
use crate::sources::klgateway::{Counts, UnknownCode};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use std::collections::BTreeMap;

/// What was fetched for one patient.
#[derive(Debug, Clone, Default)]
pub struct PatientDocs {
    /// The patient object.
    pub patient: Value,
    /// The grants (the `referencedObject` of each `basketGrantReference` leaf).
    pub grants: Vec<Value>,
    /// The conditions (the `referencedObject` of each condition leaf).
    pub conditions: Vec<Value>,
    /// The calendar events of the window read.
    pub events: Vec<Value>,
}

/// What a patient's resources mean to the gateway.
#[derive(Debug, Clone)]
pub struct PatientRecords {
    /// The citizen.
    pub citizen: Pseudonym,
    /// Records and whether each withdraws its record (a grant never in force).
    pub records: Vec<(Record, bool)>,
    /// What was read.
    pub counts: Counts,
    /// Codes the mappings do not know (grant names, level codes, suppliers): stored and
    /// reported, never dropped.
    pub unknown: Vec<UnknownCode>,
    /// Resources that could not be read, each naming the patient id and the resource.
    pub problems: Vec<String>,
}

/// What reading needs besides the documents.
pub struct ReadContext<'a> {
    /// The source's settings.
    pub cfg: &'a NexusConfig,
    /// The grant-code mapping.
    pub grant_codes: &'a GrantCodes,
    /// The pseudonym key.
    pub key: &'a PseudonymKey,
    /// The municipality's mappings.
    pub mappings: &'a Mappings,
    /// The instant of the pull: the instant of an assessment or goal read now.
    pub now: DateTime<Utc>,
    /// Its local date.
    pub today: NaiveDate,
}

/// An id (number or string) at `pointer`, as text.
pub fn id_at(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn str_at<'v>(v: &'v Value, pointer: &str) -> Option<&'v str> {
    v.pointer(pointer)?.as_str().filter(|s| !s.is_empty())
}

fn source_id(text: &str, what: &str) -> Result<SourceId, String> {
    if crate::domain::holds_cpr(text) {
        return Err(format!(
            "{what} has an id that may hold a CPR number; it is not stored"
        ));
    }
    SourceId::parse(text).map_err(|_| format!("{what} has an id the gateway cannot keep"))
}

/// An id at `pointer`, refused (without naming it) when it may hold a CPR number.
fn safe_id(v: &Value, pointer: &str, kind: &str, patient: &str) -> Result<String, String> {
    let id = id_at(v, pointer).ok_or_else(|| format!("{patient}: a {kind} without an id"))?;
    if crate::domain::holds_cpr(&id) {
        return Err(format!(
            "{patient}: a {kind} has an id that may hold a CPR number; it is not stored"
        ));
    }
    Ok(id)
}

/// Refuses a code or name that may hold a CPR number (it would be stored and reported).
fn no_cpr(text: &str, field: &str, what: &str) -> Result<(), String> {
    if crate::domain::holds_cpr(text) {
        return Err(format!(
            "{what}: its {field} may hold a CPR number; it is not stored"
        ));
    }
    Ok(())
}

/// Reads one patient. `Err` when the patient itself cannot be read (no id, no CPR number).
pub fn read_patient(docs: &PatientDocs, ctx: &ReadContext<'_>) -> Result<PatientRecords, String> {
    let patient_id = id_at(&docs.patient, "/id").ok_or("a patient without an id")?;
    let name = format!("patient {patient_id}");
    let cpr_text = str_at(&docs.patient, "/patientIdentifier/identifier")
        .ok_or_else(|| format!("{name} has no patientIdentifier.identifier"))?;
    let cpr = Cpr::parse(cpr_text)
        .map_err(|e| format!("{name}: patientIdentifier.identifier is not a CPR number ({e})"))?;
    let citizen = ctx.key.citizen(&cpr);
    let deceased = str_at(&docs.patient, &ctx.cfg.patient.deceased_path)
        .is_some_and(|s| ctx.cfg.patient.deceased_values.iter().any(|d| d == s))
        || docs
            .patient
            .pointer(&ctx.cfg.patient.deceased_path)
            .and_then(Value::as_bool)
            .unwrap_or(false);
    let mut out = PatientRecords {
        citizen: citizen.clone(),
        records: Vec::new(),
        counts: Counts {
            citizens: 1,
            ..Counts::default()
        },
        unknown: Vec::new(),
        problems: Vec::new(),
    };
    out.records.push((
        Record::Citizen(CitizenRecord {
            citizen: citizen.clone(),
            patient_id: Some(source_id(&patient_id, &name)?),
            custodian_sor: None,
            deceased,
            deceased_on: None,
            active: true,
        }),
        false,
    ));
    // The team on a day is the supplier of the latest grant started on or before it: one
    // open assignment from the start of each run of grants with the same supplier's team
    // (a later assignment wins from its first day).
    let mut starts: Vec<(NaiveDate, String)> = Vec::new();
    for g in &docs.grants {
        match read_grant(g, &citizen, &name, ctx, &mut out) {
            Ok(Some((grant, withdrawn, team))) => {
                if !withdrawn && let Some(team) = team {
                    starts.push((grant.start, team));
                }
                out.counts.grants += 1;
                if withdrawn {
                    out.counts.withdrawn += 1;
                }
                out.records.push((Record::Grant(grant), withdrawn));
            }
            Ok(None) => {}
            Err(problem) => out.problems.push(problem),
        }
    }
    starts.sort();
    let mut current: Option<&str> = None;
    for (from, team) in &starts {
        if current == Some(team.as_str()) {
            continue;
        }
        current = Some(team);
        let team = crate::domain::TeamId::parse(team).map_err(|e| e.to_string())?;
        if let Ok(a) = TeamAssignment::new(citizen.clone(), team, *from, None) {
            out.records.push((Record::Assignment(a), false));
        }
    }
    for c in &docs.conditions {
        if let Err(problem) = read_condition(c, &citizen, &name, ctx, &mut out) {
            out.problems.push(problem);
        }
    }
    for e in &docs.events {
        match read_event(e, &citizen, &name, ctx) {
            Ok(Some(visit)) => {
                out.counts.visits += 1;
                out.records.push((Record::Visit(visit), false));
            }
            Ok(None) => {}
            Err(problem) => out.problems.push(problem),
        }
    }
    Ok(out)
}

/// The grant's elements by type: `currentElements` first, a type missing there from
/// `futureElements`.
fn elements(grant: &Value) -> BTreeMap<&str, &Value> {
    let mut out = BTreeMap::new();
    for list in ["/currentElements", "/futureElements"] {
        for e in grant
            .pointer(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = e.get("type").and_then(Value::as_str) {
                out.entry(t).or_insert(e);
            }
        }
    }
    out
}

/// Visits per week of a `repetition` element: `DAY` every `count` days, `WEEK` every `count`
/// weeks on `weekdays` + `weekenddays` days; `visits` per visiting day (default 1).
pub fn visits_per_week(repetition: &Value) -> Option<Decimal> {
    let count = repetition.get("count").and_then(Value::as_u64).unwrap_or(1);
    if count == 0 {
        return None;
    }
    let next = repetition.get("next");
    let visits = next
        .and_then(|n| n.pointer("/next/visits").or_else(|| n.get("visits")))
        .and_then(Value::as_u64)
        .unwrap_or(1);
    let days = match repetition.get("pattern").and_then(Value::as_str)? {
        "DAY" => Decimal::from(7),
        "WEEK" => {
            let n = |k: &str| next.and_then(|n| n.get(k)).and_then(Value::as_u64);
            Decimal::from(n("weekdays").unwrap_or(0) + n("weekenddays").unwrap_or(0))
        }
        _ => return None,
    };
    Some(days * Decimal::from(visits) / Decimal::from(count))
}

type GrantRead = Option<(Grant, bool, Option<String>)>;

fn read_grant(
    g: &Value,
    citizen: &Pseudonym,
    patient: &str,
    ctx: &ReadContext<'_>,
    out: &mut PatientRecords,
) -> Result<GrantRead, String> {
    let id = safe_id(g, "/id", "grant", patient)?;
    let what = format!("{patient}, grant {id}");
    let sid = source_id(&id, &what)?;
    let el = elements(g);
    let grant_name = str_at(g, "/name").unwrap_or("");
    let section = el
        .get("paragraph")
        .and_then(|p| str_at(p, "/section"))
        .unwrap_or("");
    no_cpr(grant_name, "name", &what)?;
    no_cpr(section, "paragraph section", &what)?;
    let code = match ctx.grant_codes.code(section, grant_name) {
        Some(code) => {
            if ctx.mappings.interventions.get(code).is_none() {
                out.unknown.push(UnknownCode {
                    code: code.to_owned(),
                    system: "nexus_grants.csv".into(),
                    kind: "intervention",
                    resource: format!("grant/{id}"),
                });
            }
            code.to_owned()
        }
        None => {
            out.unknown.push(UnknownCode {
                code: crate::domain::cut(&format!("{section} {grant_name}"), 120),
                system: "nexus grant (section name)".into(),
                kind: "intervention",
                resource: format!("grant/{id}"),
            });
            crate::domain::cut(&format!("nexus:{section}:{grant_name}"), 190)
        }
    };
    let date = |t: &str| -> Result<Option<NaiveDate>, String> {
        match el.get(t).and_then(|e| e.get("date")) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => s
                .get(..10)
                .and_then(|d| d.parse().ok())
                .map(Some)
                .ok_or_else(|| format!("{what}: {t} is not a date")),
            Some(_) => Err(format!("{what}: {t} is not a date")),
        }
    };
    let Some(start) = date("billingStartDate")? else {
        return Err(format!("{what} has no billingStartDate; it is not stored"));
    };
    let end = date("billingEndDate")?;
    let state = str_at(g, "/workflowState/name").unwrap_or("");
    let states = &ctx.cfg.workflow_states;
    let withdrawn = states.withdrawn.iter().any(|s| s == state);
    let status = if states.completed.iter().any(|s| s == state) {
        GrantStatus::Completed
    } else {
        GrantStatus::Active
    };
    let weekly_minutes = match (
        el.get("visitatedDurationInMinutes")
            .and_then(|e| e.get("number"))
            .and_then(Value::as_u64),
        el.get("repetition").and_then(|r| visits_per_week(r)),
    ) {
        (Some(minutes), Some(per_week)) => (Decimal::from(minutes) * per_week)
            .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
            .try_into()
            .ok(),
        _ => None,
    };
    let team = match el.get("supplier").and_then(|s| id_at(s, "/supplier/id")) {
        Some(supplier) => {
            let team = ctx
                .mappings
                .teams
                .iter()
                .find(|t| t.nexus_supplier_ids.contains(&supplier));
            if team.is_none() {
                out.unknown.push(UnknownCode {
                    code: supplier.clone(),
                    system: "teams.toml nexus_supplier_ids".into(),
                    kind: "nexus_supplier",
                    resource: format!("grant/{id}"),
                });
            }
            team.map(|t| t.team.id.to_string())
        }
        None => None,
    };
    let grant = Grant::new(
        sid,
        citizen.clone(),
        code,
        start,
        end,
        status,
        weekly_minutes,
    )
    .map_err(|e| format!("{what}: {e}"))?;
    Ok(Some((grant, withdrawn, team)))
}

fn read_condition(
    c: &Value,
    citizen: &Pseudonym,
    patient: &str,
    ctx: &ReadContext<'_>,
    out: &mut PatientRecords,
) -> Result<(), String> {
    let paths = &ctx.cfg.conditions;
    let id = safe_id(c, &paths.id, "condition", patient)?;
    let what = format!("{patient}, condition {id}");
    let Some(level_code) = str_at(c, &paths.level) else {
        // A condition without a level (nursing) carries nothing the model reads.
        return Ok(());
    };
    let code = str_at(c, &paths.code).ok_or_else(|| format!("{what} has no code"))?;
    let condition_id = source_id(&id, &what)?;
    no_cpr(code, "code", &what)?;
    no_cpr(level_code, "level", &what)?;
    if let Some(expected) = str_at(c, &paths.expected_level) {
        no_cpr(expected, "expected level", &what)?;
    }
    let open = str_at(c, &paths.state).is_some_and(|s| paths.active_states.iter().any(|a| a == s));
    let in_focus = c
        .pointer(&paths.in_focus)
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let level = ctx.mappings.levels.get(level_code);
    if level.is_none() {
        out.unknown.push(UnknownCode {
            code: crate::domain::cut(level_code, 120),
            system: "nexus condition level".into(),
            kind: "functional_level",
            resource: format!("condition/{id}"),
        });
    }
    out.counts.assessments += 1;
    out.records.push((
        Record::Assessment(Assessment {
            condition_id: condition_id.clone(),
            citizen: citizen.clone(),
            condition_code: code.to_owned(),
            level_code: level_code.to_owned(),
            level,
            assessed_at: ctx.now,
            assessed_on: ctx.today,
            in_focus: open && in_focus,
        }),
        false,
    ));
    if let Some(expected) = str_at(c, &paths.expected_level) {
        let target_level = ctx.mappings.levels.get(expected);
        if target_level.is_none() {
            out.unknown.push(UnknownCode {
                code: crate::domain::cut(expected, 120),
                system: "nexus condition expected level".into(),
                kind: "functional_level",
                resource: format!("condition/{id}"),
            });
        }
        out.counts.goals += 1;
        out.records.push((
            Record::Goal(Goal {
                source_id: condition_id.clone(),
                citizen: citizen.clone(),
                condition_id,
                target_level,
                set_on: ctx.today,
                active: open,
            }),
            false,
        ));
    }
    Ok(())
}

fn instant(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    let s = str_at(v, pointer)?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn read_event(
    e: &Value,
    citizen: &Pseudonym,
    patient: &str,
    ctx: &ReadContext<'_>,
) -> Result<Option<Visit>, String> {
    let paths = &ctx.cfg.calendar;
    let id = safe_id(e, &paths.id, "event", patient)?;
    let what = format!("{patient}, event {id}");
    let delivered =
        str_at(e, &paths.status).is_some_and(|s| paths.delivered_statuses.iter().any(|d| d == s));
    if !delivered {
        return Ok(None);
    }
    let (start, end) = match (
        instant(e, &paths.registered_start),
        instant(e, &paths.registered_end),
    ) {
        (Some(s), Some(t)) => (s, t),
        _ => (
            instant(e, &paths.planned_start)
                .ok_or_else(|| format!("{what} has no readable start time"))?,
            instant(e, &paths.planned_end)
                .ok_or_else(|| format!("{what} has no readable end time"))?,
        ),
    };
    let mode = if str_at(e, &paths.location)
        .is_some_and(|l| paths.clinic_locations.iter().any(|c| c == l))
    {
        DeliveryMode::Clinic
    } else {
        DeliveryMode::Home
    };
    let employee = id_at(e, &paths.professional).map(|p| ctx.key.other("nexus-professional", &p));
    let grants = e
        .pointer(&paths.grants)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| match g {
            Value::Number(n) => SourceId::parse(&n.to_string()).ok(),
            Value::String(s) => SourceId::parse(s).ok(),
            _ => None,
        })
        .collect();
    Visit::new(
        source_id(&id, &what)?,
        citizen.clone(),
        start,
        end,
        employee,
        mode,
        grants,
    )
    .map(Some)
    .map_err(|e| format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> NexusConfig {
        toml::from_str(
            "api_root = \"https://x/\"\ntoken_url = \"https://y/\"\nclient_id = \"c\"\norganisations = [1]\n",
        )
        .unwrap()
    }

    fn mappings() -> Mappings {
        crate::mapping::load::load_dir(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings"),
        )
        .unwrap()
    }

    fn key() -> PseudonymKey {
        PseudonymKey::new(secrecy::SecretString::from(
            "unit-test-key-of-enough-bytes-01",
        ))
        .unwrap()
    }

    fn grant(name: &str, state: &str, elements: Value) -> Value {
        json!({"id": 42, "name": name, "workflowState": {"name": state}, "currentElements": elements})
    }

    fn read(docs: &PatientDocs) -> Result<PatientRecords, String> {
        let (cfg, m, k) = (cfg(), mappings(), key());
        let codes = GrantCodes::new([(
            "§ 83".to_owned(),
            "Personlig hygiejne".to_owned(),
            "H1.1".to_owned(),
        )]);
        let ctx = ReadContext {
            cfg: &cfg,
            grant_codes: &codes,
            key: &k,
            mappings: &m,
            now: "2027-02-01T00:00:00Z".parse().unwrap(),
            today: "2027-02-01".parse().unwrap(),
        };
        read_patient(docs, &ctx)
    }

    fn patient(cpr: &str) -> Value {
        json!({"id": 17, "patientIdentifier": {"identifier": cpr}, "patientState": {"name": "Aktiv"}})
    }

    #[test]
    fn visits_per_week_follow_the_repetition() {
        let r = |v: Value| visits_per_week(&v).map(|d| d.normalize().to_string());
        assert_eq!(
            r(json!({"pattern": "DAY", "count": 1})).as_deref(),
            Some("7")
        );
        assert_eq!(
            r(json!({"pattern": "DAY", "count": 2, "next": {"next": {"visits": 3}}})).as_deref(),
            Some("10.5")
        );
        assert_eq!(
            r(json!({"pattern": "WEEK", "count": 2, "next": {"weekdays": 5, "weekenddays": 1}}))
                .as_deref(),
            Some("3")
        );
        assert_eq!(r(json!({"pattern": "MONTH", "count": 1})), None);
        assert_eq!(r(json!({"pattern": "DAY", "count": 0})), None);
    }

    #[test]
    fn a_bad_cpr_number_is_refused_naming_the_patient_never_the_value() {
        let err = read(&PatientDocs {
            patient: patient("321399-1234"),
            ..Default::default()
        })
        .unwrap_err();
        assert!(err.contains("patient 17"), "{err}");
        assert!(!err.contains("321399"), "{err}");
    }

    #[test]
    fn workflow_states_names_and_dates_become_status_codes_and_problems() {
        let start = json!({"type": "billingStartDate", "date": "2027-01-04"});
        let para = json!({"type": "paragraph", "section": "§  83"});
        let docs = PatientDocs {
            patient: patient("010137-1234"),
            grants: vec![
                grant("personlig hygiejne", "Ophørt", json!([para, start])),
                json!({"id": 43, "name": "Havearbejde", "workflowState": {"name": "Annulleret"},
                       "currentElements": [start]}),
                json!({"id": 44, "name": "Personlig hygiejne", "currentElements": [para]}),
            ],
            ..Default::default()
        };
        let r = read(&docs).unwrap();
        let grants: Vec<_> = r
            .records
            .iter()
            .filter_map(|(rec, w)| match rec {
                Record::Grant(g) => Some((g.source_id.to_string(), g.code.clone(), g.status, *w)),
                _ => None,
            })
            .collect();
        assert_eq!(
            grants,
            vec![
                ("42".into(), "H1.1".into(), GrantStatus::Completed, false),
                (
                    "43".into(),
                    "nexus::Havearbejde".into(),
                    GrantStatus::Active,
                    true
                ),
            ]
        );
        assert_eq!(r.unknown.len(), 1);
        assert_eq!(r.unknown[0].resource, "grant/43");
        assert_eq!(
            r.problems,
            vec!["patient 17, grant 44 has no billingStartDate; it is not stored".to_owned()]
        );
    }

    #[test]
    fn a_name_code_or_id_that_may_hold_a_cpr_number_refuses_the_resource_unechoed() {
        let start = json!({"type": "billingStartDate", "date": "2027-01-04"});
        let docs = PatientDocs {
            patient: patient("010137-1234"),
            grants: vec![grant("Hjælp til 020245-4321", "Bevilget", json!([start]))],
            conditions: vec![
                json!({"id": 7, "code": "J1.1 0302451234", "state": {"name": "Aktiv"}, "level": "B3"}),
                json!({"id": "0402451234", "code": "J1.1", "state": {"name": "Aktiv"}, "level": "B3"}),
            ],
            ..Default::default()
        };
        let r = read(&docs).unwrap();
        assert!(
            r.records
                .iter()
                .all(|(rec, _)| matches!(rec, Record::Citizen(_)))
        );
        assert_eq!(r.problems.len(), 3, "{:?}", r.problems);
        for p in &r.problems {
            assert!(p.contains("may hold a CPR number"), "{p}");
            for cpr in ["020245", "0302451234", "0402451234"] {
                assert!(!p.contains(cpr), "{p}");
            }
        }
    }
}
