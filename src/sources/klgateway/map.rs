//! The one mapping from the wire model to record versions, for both formats.

use super::wire::{self, Coding, Concept, Meta, Parsed, Reference, Resource};
use super::{
    BundleReport, Counts, Document, ReadContext, ReadError, UnknownCode, bundle_name, id_problem,
};
use crate::domain::{
    AcuteDelivery, Assessment, CitizenRecord, Cpr, DeliveryMode, FollowUp, Goal, Grant,
    GrantStatus, Pseudonym, SourceId, Visit, cut, holds_cpr, mask_cpr, shown,
};
use crate::model::{Record, Versioned};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::collections::HashMap;

/// CPR numbers (`Patient.identifier.system`).
const CPR_SYSTEM: &str = "urn:oid:1.2.208.176.1.2";
/// SOR codes (`managingOrganization.identifier.system`).
const SOR_SYSTEM: &str = "urn:oid:1.2.208.176.1.1";
/// FSIII, as the test data and the profiles write it, and as KL's terminology server does.
const FSIII_SYSTEMS: [&str; 2] = [
    "urn:oid:1.2.208.176.2.21",
    "http://kl.dk/fhir/common/caresocial/CodeSystem/FSIII",
];
/// Encounter type: delivery of a planned intervention.
const DELIVERY_TYPE: &str = "784275f1-6822-4a88-b361-d958007d5253";
/// Encounter type: follow-up.
const FOLLOW_UP_TYPE: &str = "9f03dfbb-7a97-45a5-94db-d4c3501714a9";
/// Encounter class (CareSocialCodes): by telephone.
const PHONE_CLASS: &str = "1b55a4b0-1156-4f58-b2df-b5c6014d9048";
/// Encounter class (CareSocialCodes): screen visit.
const SCREEN_CLASS: &str = "124be95d-6924-4609-9d2a-e7c73ae3ab3d";
/// Extension on a general encounter: the CarePlans it delivered.
const BASED_ON_INTERVENTION: &str =
    "http://fhir.kl.dk/gateway/StructureDefinition/BasedOnInterventionExtension";
/// Extension on a condition: its planned follow-up Encounter.
const FOLLOW_UP_ENCOUNTER: &str = "klgateway-care-follow-up-encounter-extension";
/// Condition clinical statuses of a condition in focus (with category problem-list-item): the
/// `active` codes of the FHIR value set (`inactive`, `remission`, `resolved` are not).
const IN_FOCUS_CLINICAL: [&str; 3] = ["active", "recurrence", "relapse"];
/// Observation code of a follow-up observation (SNOMED CT).
const FOLLOW_UP_OBSERVATION: (&str, &str) = ("http://snomed.info/sct", "712744002");

/// Reads a top-level Bundle: a delivery report, an incremental delivery or a search page.
pub(super) fn read_document(
    bundle: wire::Doc<'_>,
    ctx: &ReadContext,
) -> Result<Document, ReadError> {
    let name = bundle_name(bundle.id.as_deref());
    match bundle.kind.as_deref() {
        Some("searchset") => {
            let next = bundle
                .link
                .iter()
                .find(|l| l.relation.as_deref() == Some("next"))
                .and_then(|l| l.url.clone());
            let reports = bundle
                .entry
                .into_entries()
                .enumerate()
                .filter(|(_, e)| !is_outcome(e))
                .map(|(i, e)| read_nested(&name, "a search page", i, e, ctx))
                .collect();
            Ok(Document { reports, next })
        }
        Some("collection") => {
            let incremental = bundle.entry.any_bundle()
                || has_profile(bundle.meta.as_ref(), "klgateway-care-incremental-delivery");
            let reports = if incremental {
                bundle
                    .entry
                    .into_entries()
                    .enumerate()
                    .map(|(i, e)| read_nested(&name, "an incremental delivery", i, e, ctx))
                    .collect()
            } else {
                vec![read_report(bundle, ctx)]
            };
            Ok(Document {
                reports,
                next: None,
            })
        }
        Some(other) => Err(ReadError::invalid(
            name,
            format!(
                "Bundle.type {} is not a delivery report, an incremental delivery \
                 (collection) or a search page (searchset)",
                shown(other)
            ),
        )),
        None => Err(ReadError::invalid(name, "missing Bundle.type")),
    }
}

/// A search page's OperationOutcome entry (`search.mode = outcome`) is no delivery report.
fn is_outcome(entry: &wire::Next<'_>) -> bool {
    entry
        .search
        .as_ref()
        .is_some_and(|s| s.mode.as_deref() == Some("outcome"))
        || entry
            .resource
            .as_ref()
            .is_some_and(|r| r.header().0 == "OperationOutcome")
}

fn has_profile(meta: Option<&Meta>, name: &str) -> bool {
    meta.is_some_and(|m| m.profile.iter().any(|p| p.rsplit('/').next() == Some(name)))
}

/// One entry of an incremental delivery or a search page: a delivery-report Bundle.
fn read_nested(
    outer: &str,
    what: &str,
    i: usize,
    entry: wire::Next<'_>,
    ctx: &ReadContext,
) -> Result<BundleReport, ReadError> {
    let Some(value) = entry.resource else {
        return Err(ReadError::invalid(
            format!("{outer} entry {}", i + 1),
            "missing Bundle.entry.resource",
        ));
    };
    // Its entries stay text where the Bundle's top level is as the wire model takes it.
    let lazy = value
        .text()
        .and_then(|t| serde_json::from_str::<wire::LazyBundle>(t).ok())
        .filter(|b| b.resource_type.as_deref() == Some("Bundle"));
    let (kind, id) = match &lazy {
        Some(b) => ("Bundle".to_owned(), b.id.clone()),
        None => value.header(),
    };
    if kind != "Bundle" {
        return Err(ReadError::invalid(
            resource_name(&kind, id.as_deref(), i),
            format!(
                "{what} holds only delivery-report Bundles, not a {}",
                shown_type(&kind)
            ),
        ));
    }
    let name = bundle_name(id.as_deref());
    if let Some(problem) = id.as_deref().and_then(id_problem) {
        return Err(ReadError::invalid(
            &name,
            format!("Bundle.id {problem}: the delivery report is refused"),
        ));
    }
    let bundle: wire::Doc<'_> = match lazy {
        Some(lazy) => lazy.into(),
        None => wire::from_value::<wire::Bundle>(value.into_tree())
            .map_err(|wire::ShapeError(e)| ReadError::invalid(&name, format!("unreadable: {e}")))?
            .into(),
    };
    if bundle.kind.as_deref() != Some("collection") {
        return Err(ReadError::invalid(
            name,
            format!(
                "a delivery report is a Bundle of type collection, not {}",
                bundle
                    .kind
                    .as_deref()
                    .map_or_else(|| "(no type)".into(), shown)
            ),
        ));
    }
    read_report(bundle, ctx)
}

/// `Type/id`, or `Type (entry N)` when the resource has no id or one that is not shown
/// ([`id_problem`]: it may be a CPR number, or too long).
fn resource_name(kind: &str, id: Option<&str>, i: usize) -> String {
    let kind = shown_type(kind);
    match id {
        Some(id) if id_problem(id).is_none() => format!("{kind}/{id}"),
        _ => format!("{kind} (entry {})", i + 1),
    }
}

/// A `resourceType` as received, for a message: a FHIR type name is 1-40 ASCII letters, and
/// anything else is named `resource`.
pub(super) fn shown_type(kind: &str) -> &str {
    if !kind.is_empty() && kind.len() <= 40 && kind.bytes().all(|b| b.is_ascii_alphabetic()) {
        kind
    } else {
        "resource"
    }
}

/// A reference's text for a message, as received when it cannot be a CPR number and is at
/// most 120 characters (a type and a FHIR id with a base URL), else cut or not shown.
fn shown_ref(text: &str) -> String {
    if holds_cpr(text) {
        "(not shown: it may hold a CPR number)".into()
    } else {
        cut(text, 120)
    }
}

/// A code (of an intervention, a condition, a level) that holds what looks like a CPR number
/// refuses its resource: it would be stored and printed.
fn check_code(it: &Item, element: &str, code: &str) -> Result<(), ReadError> {
    if holds_cpr(code) {
        return Err(ReadError::invalid(
            &it.name,
            format!("{element} holds what looks like a CPR number: the resource is refused"),
        ));
    }
    Ok(())
}

/// A resource of the report with what is needed to name and resolve it.
struct Item {
    full_url: Option<String>,
    name: String,
    id: String,
    resource: Resource,
}

/// Reads one delivery report.
fn read_report(bundle: wire::Doc<'_>, ctx: &ReadContext) -> Result<BundleReport, ReadError> {
    let name = bundle_name(bundle.id.as_deref());
    let raw = bundle
        .timestamp
        .as_deref()
        .ok_or_else(|| ReadError::invalid(&name, "missing Bundle.timestamp"))?;
    let timestamp = parse_instant(raw).ok_or_else(|| {
        ReadError::invalid(
            &name,
            format!(
                "Bundle.timestamp {} is not an instant with a time zone",
                shown(raw)
            ),
        )
    })?;
    let last_updated = match bundle.meta.as_ref().and_then(|m| m.last_updated.as_deref()) {
        Some(raw) => parse_instant(raw).ok_or_else(|| {
            ReadError::invalid(
                &name,
                format!(
                    "Bundle.meta.lastUpdated {} is not an instant with a time zone",
                    shown(raw)
                ),
            )
        })?,
        None => timestamp,
    };

    let mut items = Vec::with_capacity(bundle.entry.len());
    for (i, entry) in bundle.entry.into_entries().enumerate() {
        let Some(value) = entry.resource else {
            return Err(ReadError::invalid(
                format!("{name} entry {}", i + 1),
                "missing Bundle.entry.resource",
            ));
        };
        let ((kind, id), parsed) = value.read();
        let rname = resource_name(&kind, id.as_deref(), i);
        let resource = match parsed {
            Err(wire::ShapeError(m)) => {
                return Err(ReadError::invalid(rname, format!("unreadable: {m}")));
            }
            Ok(Parsed::Bundle) => {
                return Err(ReadError::invalid(
                    rname,
                    "a Bundle is not allowed inside a delivery report (only an incremental \
                     delivery or a search page holds Bundles)",
                ));
            }
            Ok(Parsed::Other) if kind.is_empty() => {
                return Err(ReadError::invalid(rname, "missing resourceType"));
            }
            Ok(Parsed::Other) => {
                return Err(ReadError::invalid(
                    rname,
                    format!(
                        "resource type {} is not allowed in a delivery report",
                        shown_type(&kind)
                    ),
                ));
            }
            Ok(Parsed::Resource(r)) => *r,
        };
        let Some(id) = resource.id().map(str::to_owned) else {
            return Err(ReadError::invalid(rname, format!("missing {kind}.id")));
        };
        if let Some(problem) = id_problem(&id) {
            // Never stored nor printed: the resource is named by its entry.
            return Err(ReadError::invalid(
                rname,
                format!("{kind}.id {problem}: the resource is refused"),
            ));
        }
        items.push(Item {
            full_url: entry.full_url,
            name: rname,
            id,
            resource,
        });
    }

    let index = Index::new(&items)?;
    let patients: Vec<&Item> = items
        .iter()
        .filter(|it| matches!(it.resource, Resource::Patient(_)))
        .collect();
    let patient = match patients.as_slice() {
        [one] => *one,
        [] => {
            return Err(ReadError::invalid(
                &name,
                "no Patient in the delivery report",
            ));
        }
        more => {
            return Err(ReadError::invalid(
                &name,
                format!(
                    "a delivery report is about one citizen, this one holds {} Patients",
                    more.len()
                ),
            ));
        }
    };
    let Resource::Patient(p) = &patient.resource else {
        unreachable!("filtered to Patients")
    };
    let citizen = pseudonymise(p, &patient.name, ctx)?;

    // Conditions point to their planned follow-up Encounter: those are the Encounter's focus.
    let mut follow_up_of: HashMap<&str, Vec<String>> = HashMap::new();
    for it in &items {
        if let Resource::Condition(c) = &it.resource {
            for ext in follow_up_extensions(&c.extension) {
                if let Some(Ok(target)) = ext
                    .value_reference
                    .as_ref()
                    .map(|r| index.resolve(&it.name, "extension", r, &["Encounter"]))
                {
                    follow_up_of
                        .entry(items[target].id.as_str())
                        .or_default()
                        .push(it.id.clone());
                }
            }
        }
    }

    let mut report = Report {
        ctx,
        timestamp,
        citizen,
        index: &index,
        items: &items,
        follow_up_of: &follow_up_of,
        versions: Vec::new(),
        counts: Counts {
            citizens: 1,
            ..Counts::default()
        },
        unknown: Vec::new(),
    };
    for it in &items {
        report.resource(it)?;
    }
    Ok(BundleReport {
        bundle_id: bundle.id,
        timestamp,
        last_updated,
        versions: report.versions,
        counts: report.counts,
        unknown_codes: report.unknown,
    })
}

/// The citizen's pseudonym from the CPR number; the number itself goes no further.
fn pseudonymise(p: &wire::Patient, name: &str, ctx: &ReadContext) -> Result<Pseudonym, ReadError> {
    let raw = p
        .identifier
        .iter()
        .find(|i| i.system.as_deref() == Some(CPR_SYSTEM))
        .and_then(|i| i.value.as_deref())
        .ok_or_else(|| {
            ReadError::invalid(
                name,
                format!("missing Patient.identifier with system {CPR_SYSTEM} (CPR number)"),
            )
        })?;
    let cpr = Cpr::parse(raw).map_err(|e| {
        ReadError::invalid(
            name,
            format!("the CPR number in Patient.identifier is invalid: {e}"),
        )
    })?;
    Ok(ctx.key.citizen(&cpr))
}

fn follow_up_extensions(ext: &[wire::Extension]) -> impl Iterator<Item = &wire::Extension> {
    ext.iter().filter(|e| {
        e.url
            .as_deref()
            .is_some_and(|u| u.rsplit('/').next() == Some(FOLLOW_UP_ENCOUNTER))
    })
}

/// Where each resource of the report is, by `Type/id` and by `fullUrl`.
struct Index {
    by_name: HashMap<(String, String), usize>,
    by_url: HashMap<String, usize>,
    by_id: HashMap<String, Vec<usize>>,
    types: Vec<&'static str>,
}

impl Index {
    fn new(items: &[Item]) -> Result<Self, ReadError> {
        let mut index = Index {
            by_name: HashMap::new(),
            by_url: HashMap::new(),
            by_id: HashMap::new(),
            types: Vec::with_capacity(items.len()),
        };
        for (i, it) in items.iter().enumerate() {
            let kind = it.resource.type_name();
            index.types.push(kind);
            if index
                .by_name
                .insert((kind.to_owned(), it.id.clone()), i)
                .is_some()
            {
                return Err(ReadError::invalid(
                    &it.name,
                    "appears twice in the delivery report",
                ));
            }
            if let Some(url) = &it.full_url {
                index.by_url.insert(url.clone(), i);
            }
            index.by_id.entry(it.id.clone()).or_default().push(i);
        }
        Ok(index)
    }

    /// Resolves a reference of `from` (a `Type/id` name) to a resource of one of the `expect`ed
    /// types in the same report: `Type/id`, a full URL ending in `Type/id` (a `_history`
    /// version is ignored), an entry's `fullUrl`, or `urn:uuid:<id>`.
    fn resolve(
        &self,
        from: &str,
        element: &str,
        r: &Reference,
        expect: &[&str],
    ) -> Result<usize, ReadError> {
        let Some(text) = r.reference.as_deref() else {
            return Err(ReadError::invalid(
                from,
                format!("missing {element}.reference"),
            ));
        };
        let found = self.by_url.get(text).copied().or_else(|| {
            if let Some(id) = text.strip_prefix("urn:uuid:") {
                return match self.by_id.get(id).map(Vec::as_slice) {
                    Some([one]) => Some(*one),
                    _ => None,
                };
            }
            let mut parts: Vec<&str> = text.split('/').collect();
            if parts.len() >= 4 && parts[parts.len() - 2] == "_history" {
                parts.truncate(parts.len() - 2);
            }
            match parts.as_slice() {
                [.., kind, id] => self
                    .by_name
                    .get(&((*kind).to_owned(), (*id).to_owned()))
                    .copied(),
                _ => None,
            }
        });
        let Some(i) = found else {
            return Err(ReadError::invalid(
                from,
                format!("{element} {} is not in the Bundle", shown_ref(text)),
            ));
        };
        if !expect.contains(&self.types[i]) {
            return Err(ReadError::invalid(
                from,
                format!(
                    "{element} {} is a {}, expected {}",
                    shown_ref(text),
                    self.types[i],
                    expect.join(" or ")
                ),
            ));
        }
        Ok(i)
    }
}

/// The longest unknown code or code system reported, in characters.
const UNKNOWN_CHARS: usize = 64;

/// Reading one delivery report's resources into versions.
struct Report<'r, 'c> {
    ctx: &'r ReadContext<'c>,
    timestamp: DateTime<Utc>,
    citizen: Pseudonym,
    index: &'r Index,
    items: &'r [Item],
    follow_up_of: &'r HashMap<&'r str, Vec<String>>,
    versions: Vec<Versioned>,
    counts: Counts,
    unknown: Vec<UnknownCode>,
}

impl Report<'_, '_> {
    fn tz(&self) -> Tz {
        self.ctx.time_zone
    }

    fn push(&mut self, version_at: DateTime<Utc>, withdrawn: bool, record: Record) {
        if withdrawn {
            self.counts.withdrawn += 1;
        }
        self.versions.push(Versioned {
            source: self.ctx.source.to_owned(),
            version_at,
            withdrawn,
            record,
        });
    }

    /// `meta.lastUpdated`, else the Bundle timestamp.
    fn version_at(&self, it: &Item) -> Result<DateTime<Utc>, ReadError> {
        match it.resource.meta().and_then(|m| m.last_updated.as_deref()) {
            Some(raw) => parse_instant(raw).ok_or_else(|| {
                ReadError::invalid(
                    &it.name,
                    format!(
                        "{}.meta.lastUpdated {} is not an instant with a time zone",
                        it.resource.type_name(),
                        shown(raw)
                    ),
                )
            }),
            None => Ok(self.timestamp),
        }
    }

    /// Resolves references to ids of the report's resources.
    fn ids(
        &self,
        it: &Item,
        element: &str,
        refs: &[Reference],
        expect: &[&str],
    ) -> Result<Vec<SourceId>, ReadError> {
        refs.iter()
            .map(|r| {
                let i = self.index.resolve(&it.name, element, r, expect)?;
                source_id(&it.name, &self.items[i].id)
            })
            .collect()
    }

    fn unknown(&mut self, it: &Item, kind: &'static str, coding: &Coding) {
        // Codes with a CPR-shaped run were refused before; long ones are cut for the report.
        self.unknown.push(UnknownCode {
            code: cut(
                &mask_cpr(coding.code.as_deref().unwrap_or_default()),
                UNKNOWN_CHARS,
            ),
            system: cut(
                &mask_cpr(coding.system.as_deref().unwrap_or_default()),
                UNKNOWN_CHARS,
            ),
            kind,
            resource: it.name.clone(),
        });
    }

    fn resource(&mut self, it: &Item) -> Result<(), ReadError> {
        if let Some(subject) = it.resource.subject() {
            let element = format!("{}.subject", it.resource.type_name());
            self.index
                .resolve(&it.name, &element, subject, &["Patient"])?;
        } else if !matches!(it.resource, Resource::Patient(_)) {
            return Err(ReadError::invalid(
                &it.name,
                format!("missing {}.subject", it.resource.type_name()),
            ));
        }
        match &it.resource {
            Resource::Patient(p) => self.patient(it, p),
            Resource::CarePlan(c) => self.care_plan(it, c),
            Resource::Procedure(p) => self.procedure(it, p),
            Resource::Encounter(e) => self.encounter(it, e),
            Resource::Condition(c) => self.condition(it, c),
            Resource::Goal(g) => self.goal(it, g),
            Resource::Observation(o) => self.observation(it, o),
        }
    }

    fn patient(&mut self, it: &Item, p: &wire::Patient) -> Result<(), ReadError> {
        let custodian_sor = p
            .managing_organization
            .as_ref()
            .and_then(|m| m.identifier.as_ref())
            .filter(|i| i.system.as_deref() == Some(SOR_SYSTEM))
            .and_then(|i| i.value.clone());
        // Deceased on `deceasedBoolean: true` or any `deceasedDateTime`; the date of death is
        // the local date of `deceasedDateTime` (a date, or a dateTime in the time zone). Death
        // itself is the model's to derive from the citizen record's versions, so a later report
        // saying not deceased undoes it: no termination record here.
        let deceased_on = match p.deceased_date_time.as_deref() {
            Some(raw) => Some(self.date(it, raw, "Patient.deceasedDateTime")?),
            None => None,
        };
        let deceased = p.deceased_boolean.unwrap_or(false) || deceased_on.is_some();
        let active = p.active.unwrap_or(true);
        let at = self.version_at(it)?;
        self.push(
            at,
            false,
            Record::Citizen(CitizenRecord {
                citizen: self.citizen.clone(),
                patient_id: Some(source_id(&it.name, &it.id)?),
                custodian_sor,
                deceased,
                deceased_on,
                active,
            }),
        );
        if !active {
            self.counts.withdrawn += 1;
        }
        Ok(())
    }

    fn care_plan(&mut self, it: &Item, c: &wire::CarePlan) -> Result<(), ReadError> {
        let raw = need(it, c.status.as_deref(), "CarePlan.status")?;
        let status = GrantStatus::parse(raw).map_err(|_| {
            ReadError::invalid(
                &it.name,
                format!("CarePlan.status {} is not a known status", shown(raw)),
            )
        })?;
        let period = c.period.as_ref();
        let start = self.date(
            it,
            need(
                it,
                period.and_then(|p| p.start.as_deref()),
                "CarePlan.period.start",
            )?,
            "CarePlan.period.start",
        )?;
        let end = match period.and_then(|p| p.end.as_deref()) {
            Some(raw) => Some(self.date(it, raw, "CarePlan.period.end")?),
            None => None,
        };
        if let Some(end) = end
            && end < start
        {
            return Err(ReadError::invalid(
                &it.name,
                format!("CarePlan.period.end {end} is before CarePlan.period.start {start}"),
            ));
        }
        let details: Vec<&wire::ActivityDetail> = c
            .activity
            .iter()
            .filter_map(|a| a.detail.as_ref())
            .collect();
        let coding = pick_code(details.iter().filter_map(|d| d.code.as_ref()))
            .ok_or_else(|| ReadError::invalid(&it.name, "missing CarePlan.activity.detail.code"))?;
        for d in &details {
            self.ids(
                it,
                "CarePlan.activity.detail.reasonReference",
                &d.reason_reference,
                &["Condition"],
            )?;
        }
        let code = coding.code.clone().unwrap_or_default();
        check_code(it, "CarePlan.activity.detail.code", &code)?;
        if self.ctx.mappings.interventions.get(&code).is_none() {
            self.unknown(it, "intervention", coding);
        }
        let grant = Grant::new(
            source_id(&it.name, &it.id)?,
            self.citizen.clone(),
            code,
            start,
            end,
            status,
            None,
        )
        .map_err(|e| ReadError::invalid(&it.name, e.reason))?;
        let at = self.version_at(it)?;
        self.counts.grants += 1;
        self.push(
            at,
            status == GrantStatus::EnteredInError,
            Record::Grant(grant),
        );
        Ok(())
    }

    fn procedure(&mut self, it: &Item, p: &wire::Procedure) -> Result<(), ReadError> {
        let coding = pick_code(p.code.as_ref())
            .ok_or_else(|| ReadError::invalid(&it.name, "missing Procedure.code"))?;
        let raw = need(
            it,
            p.performed_date_time.as_deref(),
            "Procedure.performedDateTime",
        )?;
        let performed_at = self.instant(it, raw, "Procedure.performedDateTime")?;
        self.ids(
            it,
            "Procedure.reasonReference",
            &p.reason_reference,
            &["Condition"],
        )?;
        let code = coding.code.clone().unwrap_or_default();
        check_code(it, "Procedure.code", &code)?;
        if self.ctx.mappings.interventions.get(&code).is_none() {
            self.unknown(it, "intervention", coding);
        }
        let at = self.version_at(it)?;
        self.counts.acute += 1;
        self.push(
            at,
            p.status.as_deref() == Some("entered-in-error"),
            Record::Acute(AcuteDelivery {
                source_id: source_id(&it.name, &it.id)?,
                citizen: self.citizen.clone(),
                code,
                performed_at,
                performed_on: performed_at.with_timezone(&self.tz()).date_naive(),
            }),
        );
        Ok(())
    }

    fn encounter(&mut self, it: &Item, e: &wire::Encounter) -> Result<(), ReadError> {
        let status = need(it, e.status.as_deref(), "Encounter.status")?;
        let withdrawn = matches!(status, "entered-in-error" | "cancelled");
        let types: Vec<&str> = e
            .kind
            .iter()
            .flat_map(|c| &c.coding)
            .filter_map(|c| c.code.as_deref())
            .collect();
        let old_form = has_profile(e.meta.as_ref(), "klgateway-care-encounter");
        let follow_up = old_form || types.contains(&FOLLOW_UP_TYPE);
        if !follow_up && !types.contains(&DELIVERY_TYPE) {
            return Err(ReadError::invalid(
                &it.name,
                format!(
                    "Encounter.type is neither delivery ({DELIVERY_TYPE}) nor follow-up \
                     ({FOLLOW_UP_TYPE})"
                ),
            ));
        }
        let reasons = self.ids(
            it,
            "Encounter.reasonReference",
            &e.reason_reference,
            &["Condition"],
        )?;
        let delivered: Vec<Reference> = e
            .extension
            .iter()
            .filter(|x| x.url.as_deref() == Some(BASED_ON_INTERVENTION))
            .map(|x| x.value_reference.clone().unwrap_or_default())
            .collect();
        let grants = self.ids(
            it,
            "Encounter.extension(BasedOnInterventionExtension)",
            &delivered,
            &["CarePlan"],
        )?;
        let start_raw = e.period.as_ref().and_then(|p| p.start.as_deref());
        let end_raw = e.period.as_ref().and_then(|p| p.end.as_deref());
        let at = self.version_at(it)?;

        if follow_up {
            let on = match (start_raw, withdrawn) {
                (Some(raw), _) => self.date(it, raw, "Encounter.period.start")?,
                (None, true) => self.timestamp.with_timezone(&self.tz()).date_naive(),
                (None, false) => return Err(missing(it, "Encounter.period.start")),
            };
            let mut focus = reasons;
            for id in self.follow_up_of.get(it.id.as_str()).into_iter().flatten() {
                let id = source_id(&it.name, id)?;
                if !focus.contains(&id) {
                    focus.push(id);
                }
            }
            self.counts.follow_ups += 1;
            self.push(
                at,
                withdrawn,
                Record::FollowUp(FollowUp {
                    source_id: source_id(&it.name, &it.id)?,
                    citizen: self.citizen.clone(),
                    on,
                    planned: status != "finished",
                    result_code: None,
                    focus,
                }),
            );
            return Ok(());
        }

        // A delivery: only a finished one is a visit; a withdrawal withdraws one.
        if status != "finished" && !withdrawn {
            return Ok(());
        }
        let mode = match e.class.as_ref() {
            Some(class) => delivery_mode(class).ok_or_else(|| {
                ReadError::invalid(
                    &it.name,
                    format!(
                        "Encounter.class {} is not a known delivery mode (HH, AMB, \
                         telephone {PHONE_CLASS}, screen {SCREEN_CLASS})",
                        shown(class.code.as_deref().unwrap_or(""))
                    ),
                )
            })?,
            None if withdrawn => DeliveryMode::Home,
            None => return Err(missing(it, "Encounter.class")),
        };
        let start = match (start_raw, withdrawn) {
            (Some(raw), _) => self.instant(it, raw, "Encounter.period.start")?,
            (None, true) => self.timestamp,
            (None, false) => return Err(missing(it, "Encounter.period.start")),
        };
        let end = match end_raw {
            Some(raw) => self.instant(it, raw, "Encounter.period.end")?,
            None => start,
        };
        if end < start {
            return Err(ReadError::invalid(
                &it.name,
                format!("Encounter.period.end {end} is before Encounter.period.start {start}"),
            ));
        }
        let visit = Visit::new(
            source_id(&it.name, &it.id)?,
            self.citizen.clone(),
            start,
            end,
            None,
            mode,
            grants,
        )
        .map_err(|e| ReadError::invalid(&it.name, e.reason))?;
        self.counts.visits += 1;
        self.push(at, withdrawn, Record::Visit(visit));
        Ok(())
    }

    fn condition(&mut self, it: &Item, c: &wire::Condition) -> Result<(), ReadError> {
        for ext in follow_up_extensions(&c.extension) {
            let r = ext.value_reference.clone().unwrap_or_default();
            self.index.resolve(
                &it.name,
                "Condition.extension(followUpEncounter)",
                &r,
                &["Encounter"],
            )?;
        }
        let Some(level_coding) = pick_code(c.severity.as_ref()) else {
            // A nursing condition: a reference target, no assessment.
            return Ok(());
        };
        let condition_code = pick_code(c.code.as_ref())
            .and_then(|c| c.code.clone())
            .ok_or_else(|| missing(it, "Condition.code"))?;
        let level_code = level_coding.code.clone().unwrap_or_default();
        check_code(it, "Condition.code", &condition_code)?;
        check_code(it, "Condition.severity", &level_code)?;
        let level = self.ctx.mappings.levels.get(&level_code);
        if level.is_none() {
            self.unknown(it, "functional_level", level_coding);
        }
        let has = |concept: Option<&Concept>, code: &str| {
            concept.is_some_and(|c| c.coding.iter().any(|x| x.code.as_deref() == Some(code)))
        };
        let withdrawn = has(c.verification_status.as_ref(), "entered-in-error")
            || has(c.clinical_status.as_ref(), "entered-in-error");
        // In focus: clinically active (`active`, or back as `recurrence` or `relapse`) and on
        // the problem list.
        let in_focus = IN_FOCUS_CLINICAL
            .iter()
            .any(|code| has(c.clinical_status.as_ref(), code))
            && c.category
                .iter()
                .any(|cat| has(Some(cat), "problem-list-item"));
        let assessed_at = self.version_at(it)?;
        self.counts.assessments += 1;
        self.push(
            assessed_at,
            withdrawn,
            Record::Assessment(Assessment {
                condition_id: source_id(&it.name, &it.id)?,
                citizen: self.citizen.clone(),
                condition_code,
                level_code,
                level,
                assessed_at,
                assessed_on: assessed_at.with_timezone(&self.tz()).date_naive(),
                in_focus,
            }),
        );
        Ok(())
    }

    fn goal(&mut self, it: &Item, g: &wire::Goal) -> Result<(), ReadError> {
        let lifecycle = need(it, g.lifecycle_status.as_deref(), "Goal.lifecycleStatus")?;
        let addresses = self.ids(it, "Goal.addresses", &g.addresses, &["Condition"])?;
        let condition_id = addresses
            .into_iter()
            .next()
            .ok_or_else(|| missing(it, "Goal.addresses"))?;
        let target = g
            .target
            .iter()
            .find_map(|t| pick_code(t.detail_codeable_concept.as_ref()));
        let target_level = match target {
            Some(coding) => {
                let level = self
                    .ctx
                    .mappings
                    .levels
                    .get(coding.code.as_deref().unwrap_or_default());
                if level.is_none() {
                    self.unknown(it, "functional_level", coding);
                }
                level
            }
            None => None,
        };
        let at = self.version_at(it)?;
        self.counts.goals += 1;
        self.push(
            at,
            lifecycle == "entered-in-error",
            Record::Goal(Goal {
                source_id: source_id(&it.name, &it.id)?,
                citizen: self.citizen.clone(),
                condition_id,
                target_level,
                set_on: at.with_timezone(&self.tz()).date_naive(),
                active: matches!(lifecycle, "proposed" | "planned" | "accepted" | "active"),
            }),
        );
        Ok(())
    }

    fn observation(&mut self, it: &Item, o: &wire::Observation) -> Result<(), ReadError> {
        let focus = self.ids(
            it,
            "Observation.focus",
            &o.focus,
            &[
                "Patient",
                "CarePlan",
                "Procedure",
                "Encounter",
                "Condition",
                "Goal",
                "Observation",
            ],
        )?;
        let follow_up = has_profile(o.meta.as_ref(), "klgateway-care-follow-up-observation")
            || o.code.as_ref().is_some_and(|c| {
                c.coding.iter().any(|x| {
                    x.system.as_deref() == Some(FOLLOW_UP_OBSERVATION.0)
                        && x.code.as_deref() == Some(FOLLOW_UP_OBSERVATION.1)
                })
            });
        if !follow_up {
            // Matter-of-interest and citizen's own observations carry nothing the model uses.
            return Ok(());
        }
        let raw = need(
            it,
            o.effective_date_time.as_deref(),
            "Observation.effectiveDateTime",
        )?;
        let on = self.date(it, raw, "Observation.effectiveDateTime")?;
        let result_code = pick_code(o.value_codeable_concept.as_ref()).and_then(|c| c.code.clone());
        if let Some(code) = &result_code {
            check_code(it, "Observation.valueCodeableConcept", code)?;
        }
        let at = self.version_at(it)?;
        self.counts.follow_ups += 1;
        self.push(
            at,
            o.status.as_deref() == Some("entered-in-error"),
            Record::FollowUp(FollowUp {
                source_id: source_id(&it.name, &it.id)?,
                citizen: self.citizen.clone(),
                on,
                planned: false,
                result_code,
                focus,
            }),
        );
        Ok(())
    }

    /// The local date of a FHIR date or dateTime.
    fn date(&self, it: &Item, raw: &str, path: &str) -> Result<NaiveDate, ReadError> {
        match parse_when(raw, self.tz()) {
            Some(When::Date(d)) => Ok(d),
            Some(When::Instant(t)) => Ok(t.with_timezone(&self.tz()).date_naive()),
            None => Err(not_a_date(it, raw, path)),
        }
    }

    /// The instant of a FHIR dateTime; a date alone is local midnight.
    fn instant(&self, it: &Item, raw: &str, path: &str) -> Result<DateTime<Utc>, ReadError> {
        match parse_when(raw, self.tz()) {
            Some(When::Instant(t)) => Ok(t),
            Some(When::Date(d)) => Ok(local_instant(
                d.and_hms_opt(0, 0, 0).unwrap_or_default(),
                self.tz(),
            )),
            None => Err(not_a_date(it, raw, path)),
        }
    }
}

fn need<'v>(it: &Item, value: Option<&'v str>, path: &str) -> Result<&'v str, ReadError> {
    value
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| missing(it, path))
}

fn missing(it: &Item, path: &str) -> ReadError {
    ReadError::invalid(&it.name, format!("missing {path}"))
}

fn not_a_date(it: &Item, raw: &str, path: &str) -> ReadError {
    ReadError::invalid(
        &it.name,
        format!(
            "{path} {} is not a date (YYYY-MM-DD) or a dateTime",
            shown(raw)
        ),
    )
}

fn source_id(name: &str, id: &str) -> Result<SourceId, ReadError> {
    SourceId::parse(id).map_err(|e| ReadError::invalid(name, e.to_string()))
}

/// The code of a concept: its FSIII coding, else its first coding with a code (a local code).
fn pick_code<'c>(concepts: impl IntoIterator<Item = &'c Concept>) -> Option<&'c Coding> {
    let codings: Vec<&Coding> = concepts
        .into_iter()
        .flat_map(|c| &c.coding)
        .filter(|c| c.code.as_deref().is_some_and(|s| !s.trim().is_empty()))
        .collect();
    codings
        .iter()
        .find(|c| {
            c.system
                .as_deref()
                .is_some_and(|s| FSIII_SYSTEMS.contains(&s))
        })
        .or_else(|| codings.first())
        .copied()
}

fn delivery_mode(class: &Coding) -> Option<DeliveryMode> {
    Some(match class.code.as_deref()? {
        "HH" => DeliveryMode::Home,
        "AMB" => DeliveryMode::Clinic,
        PHONE_CLASS => DeliveryMode::Phone,
        SCREEN_CLASS | "VR" => DeliveryMode::Screen,
        _ => return None,
    })
}

/// A FHIR date or dateTime.
enum When {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

/// A date (`YYYY-MM-DD`) or a dateTime with a time zone; a dateTime without one is local time.
/// Partial dates (`YYYY`, `YYYY-MM`) are not accepted: a grant or visit needs a day.
fn parse_when(raw: &str, tz: Tz) -> Option<When> {
    let raw = raw.trim();
    if raw.len() == 10 {
        return NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .map(When::Date);
    }
    if let Some(t) = parse_instant(raw) {
        return Some(When::Instant(t));
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|local| When::Instant(local_instant(local, tz)))
}

/// An instant with a time zone (`2021-02-25T02:00:36Z`, `...+01:00`).
/// An instant with a time zone, in the years 1-9999 (what the store keeps).
fn parse_instant(raw: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(raw.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
}

/// A local time as an instant: the earlier of an ambiguous (autumn) time, and a time in the
/// spring gap moved forward by the gap.
fn local_instant(local: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => tz
            .from_local_datetime(&(local + chrono::Duration::hours(1)))
            .earliest()
            .map_or_else(|| Utc.from_utc_datetime(&local), |t| t.with_timezone(&Utc)),
    }
}
