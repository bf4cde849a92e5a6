//! The simulated municipality: citizens, their courses as compact plans, and the delivery-report
//! Bundles the plans produce day by day.

use super::codes::{self, CARE_AREAS, Code, LEVELS, Pattern};
use super::fhir::to_fhir_json;
use super::{Municipality, SimBundle, SimCitizen, SimConfig};
use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::HashSet;

/// The base of every entry's `fullUrl` (`{base}/{type}/{id}`); references are relative (`Patient/{id}`).
pub const FULL_URL_BASE: &str = "https://care-sim.example/fhir";

// --- the plan: what happens to one citizen, as days relative to the period start ---------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoalEnd {
    Completed,
    Cancelled,
}

struct CondPlan {
    id: String,
    code: Code,
    nursing: bool,
    first_day: u32,
    recorded: NaiveDate,
    /// `(day, level)`, ascending by day; the first is the first recording.
    assessments: Vec<(u32, u8)>,
    resolved_day: Option<u32>,
}

struct GoalPlan {
    id: String,
    cond: usize,
    target: u8,
    start_day: u32,
    end: Option<(u32, GoalEnd)>,
}

struct GrantPlan {
    id: String,
    code: Code,
    nursing: bool,
    cond: usize,
    start: NaiveDate,
    report_day: u32,
    end_day: Option<u32>,
    pattern: Pattern,
    /// Weekday (0 = Monday) of a weekly grant.
    weekday: u32,
    /// Every `every` days, offset `phase` (EveryFew).
    every: u32,
    phase: u32,
    /// Delivered in the nursing clinic (class AMB) instead of at home.
    clinic: bool,
}

const NEVER: u32 = u32::MAX;

struct Plan {
    legacy: bool,
    death_day: Option<u32>,
    conds: Vec<CondPlan>,
    goals: Vec<GoalPlan>,
    grants: Vec<GrantPlan>,
}

struct Builder<'r> {
    rng: &'r mut ChaCha8Rng,
    start: NaiveDate,
    days: u32,
    plan: Plan,
}

impl Builder<'_> {
    fn date(&self, day: u32) -> NaiveDate {
        self.start + Days::new(u64::from(day))
    }

    fn id(&mut self) -> String {
        uuid(self.rng)
    }

    fn arrival(&mut self) -> u32 {
        self.rng.random_range(0..(self.days * 4 / 5).max(1))
    }

    /// A date before the period for a course already running at its start.
    fn earlier_start(&mut self) -> NaiveDate {
        let back = self.rng.random_range(14..=400u64);
        self.start - Days::new(back)
    }

    fn cond(
        &mut self,
        code: Code,
        nursing: bool,
        day: u32,
        recorded: NaiveDate,
        level: u8,
    ) -> usize {
        let id = self.id();
        self.plan.conds.push(CondPlan {
            id,
            code,
            nursing,
            first_day: day,
            recorded,
            assessments: vec![(day, level)],
            resolved_day: None,
        });
        self.plan.conds.len() - 1
    }

    fn level(&self, cond: usize) -> u8 {
        self.plan.conds[cond].assessments.last().map_or(0, |a| a.1)
    }

    fn assess(&mut self, cond: usize, day: u32, level: u8) {
        let c = &mut self.plan.conds[cond];
        if c.assessments.last().is_some_and(|(d, _)| *d >= day) {
            return;
        }
        c.assessments.push((day, level.min(4)));
    }

    fn grant(
        &mut self,
        code: Code,
        nursing: bool,
        cond: usize,
        start: NaiveDate,
        report_day: u32,
        pattern: Pattern,
    ) -> usize {
        let id = self.id();
        let weekday = self.rng.random_range(0..5);
        let every = self.rng.random_range(2..=3);
        let phase = self.rng.random_range(0..every);
        self.plan.grants.push(GrantPlan {
            id,
            code,
            nursing,
            cond,
            start,
            report_day,
            end_day: None,
            pattern,
            weekday,
            every,
            phase,
            clinic: false,
        });
        self.plan.grants.len() - 1
    }

    fn end_grant(&mut self, grant: usize, day: u32) {
        self.plan.grants[grant].end_day = Some(day);
    }

    fn goal(&mut self, cond: usize, target: u8, day: u32) -> usize {
        let id = self.id();
        self.plan.goals.push(GoalPlan {
            id,
            cond,
            target,
            start_day: day,
            end: None,
        });
        self.plan.goals.len() - 1
    }

    /// `k` distinct home-care areas.
    fn areas(&mut self, k: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..CARE_AREAS.len()).collect();
        for i in 0..k.min(idx.len()) {
            let j = self.rng.random_range(i..idx.len());
            idx.swap(i, j);
        }
        idx.truncate(k);
        idx
    }

    // --- scenarios --------------------------------------------------------------------------

    /// §83a rehabilitation. It succeeds (levels fall to the goal, the grants end) or fails
    /// (levels stay or rise, the goals are cancelled, §83 care follows the next day).
    fn rehabilitation(&mut self, succeeds: bool) {
        let a = self.arrival();
        let k = self.rng.random_range(1..=3);
        let areas = self.areas(k);
        let rehab_n = if !succeeds || self.rng.random_bool(0.6) {
            k
        } else {
            (k - 1).max(1)
        };
        let len = if succeeds {
            self.rng.random_range(42..=84)
        } else {
            self.rng.random_range(28..=56)
        };
        let e = a + len;
        let mid = a + self.rng.random_range(21..=27);
        for (j, &ai) in areas.iter().enumerate() {
            let area = &CARE_AREAS[ai];
            let level = self.rng.random_range(2..=3u8);
            let ci = self.cond(area.condition, false, a, self.date(a), level);
            if j >= rehab_n {
                self.grant(area.care, false, ci, self.date(a), a, area.pattern);
                continue;
            }
            let gi = self.grant(area.rehab, false, ci, self.date(a), a, Pattern::Weekdays);
            if succeeds {
                let target = level.saturating_sub(self.rng.random_range(1..=2));
                let goal = self.goal(ci, target, a);
                self.assess(ci, mid, target.max(level - 1));
                self.assess(ci, e, target);
                self.end_grant(gi, e);
                self.plan.goals[goal].end = Some((e, GoalEnd::Completed));
            } else {
                let goal = self.goal(ci, level - 1, a);
                let mid_level = level + u8::from(self.rng.random_bool(0.4));
                self.assess(ci, mid, mid_level);
                let final_level = mid_level + u8::from(self.rng.random_bool(0.3));
                self.assess(ci, e, final_level);
                self.end_grant(gi, e);
                self.plan.goals[goal].end = Some((e, GoalEnd::Cancelled));
                self.grant(area.care, false, ci, self.date(e + 1), e + 1, area.pattern);
            }
        }
    }

    /// Returns the arrival day and the start date of a course running at the period start
    /// (`existing`) or starting on a day in the period.
    fn arrive(&mut self, p_existing: f64) -> (u32, NaiveDate) {
        if self.rng.random_bool(p_existing) {
            (0, self.earlier_start())
        } else {
            let a = self.arrival();
            (a, self.date(a))
        }
    }

    /// Stable §83 care: the same levels, re-assessed every two to four months.
    fn stable(&mut self) {
        let (a, start) = self.arrive(0.8);
        let k = self.rng.random_range(1..=3);
        for ai in self.areas(k) {
            let area = &CARE_AREAS[ai];
            let level = self.rng.random_range(1..=3u8);
            let ci = self.cond(area.condition, false, a, start, level);
            self.grant(area.care, false, ci, start, a, area.pattern);
            let mut d = a + self.rng.random_range(30..=120);
            while d < self.days {
                self.assess(ci, d, level);
                d += self.rng.random_range(60..=120);
            }
        }
    }

    /// Slow decline: a level rises every month or so; new conditions and grants follow.
    fn decline(&mut self) {
        let (a, start) = self.arrive(0.8);
        let k = self.rng.random_range(1..=2);
        let mut used = self.areas(CARE_AREAS.len());
        let mut mine: Vec<usize> = Vec::new();
        for ai in used.drain(..k) {
            let area = &CARE_AREAS[ai];
            let level = self.rng.random_range(1..=2u8);
            let ci = self.cond(area.condition, false, a, start, level);
            self.grant(area.care, false, ci, start, a, area.pattern);
            mine.push(ci);
        }
        let mut d = a + self.rng.random_range(25..=45);
        while d < self.days {
            let ci = mine[self.rng.random_range(0..mine.len())];
            let level = (self.level(ci) + 1).min(4);
            self.assess(ci, d, level);
            if !used.is_empty() && self.rng.random_bool(0.35) {
                let area = &CARE_AREAS[used.remove(0)];
                let ci = self.cond(area.condition, false, d, self.date(d), 2);
                self.grant(area.care, false, ci, self.date(d), d, area.pattern);
                mine.push(ci);
            }
            d += self.rng.random_range(25..=45);
        }
    }

    /// A wound treated every second or third day, at home or in the nursing clinic, until it heals.
    fn wound(&mut self, a: u32) {
        let which = self.rng.random_range(0..3);
        let code = [
            codes::VENOUS_WOUND,
            codes::PRESSURE_ULCER,
            codes::SURGICAL_WOUND,
        ][which];
        let ci = self.cond(code, true, a, self.date(a), 0);
        let clinic = which != 1 && self.rng.random_bool(0.5);
        let g = self.grant(
            codes::WOUND_CARE,
            true,
            ci,
            self.date(a),
            a,
            Pattern::EveryFew,
        );
        self.plan.grants[g].clinic = clinic;
        let len = self.rng.random_range(14..=70);
        self.end_grant(g, a + len);
        if which == 0 && self.rng.random_bool(0.5) {
            let c = self.grant(
                codes::COMPRESSION,
                true,
                ci,
                self.date(a),
                a,
                Pattern::EveryFew,
            );
            let (every, phase) = (self.plan.grants[g].every, self.plan.grants[g].phase);
            let grant = &mut self.plan.grants[c];
            grant.every = every;
            grant.phase = phase;
            grant.clinic = clinic;
            self.end_grant(c, a + len);
        }
        self.plan.conds[ci].resolved_day = Some(a + len);
    }

    /// Medicine dispensing once a week, for some also daily medicine administration.
    fn medicine(&mut self, a: u32, start: NaiveDate) {
        let ci = self.cond(codes::TREATMENT_INSIGHT, true, a, start, 0);
        self.grant(
            codes::MEDICINE_DISPENSING,
            true,
            ci,
            start,
            a,
            Pattern::Weekly,
        );
        if self.rng.random_bool(0.3) {
            self.grant(
                codes::MEDICINE_ADMINISTRATION,
                true,
                ci,
                start,
                a,
                Pattern::Daily,
            );
        }
    }

    /// Meals (Madservice), linked to "Lave mad".
    fn meals(&mut self, a: u32, start: NaiveDate) {
        let existing = self
            .plan
            .conds
            .iter()
            .position(|c| c.code == codes::COOKING && c.first_day <= a);
        let ci = match existing {
            Some(ci) => ci,
            None => {
                let level = self.rng.random_range(2..=3);
                self.cond(codes::COOKING, false, a, start, level)
            }
        };
        self.grant(codes::MEALS, false, ci, start, a, Pattern::Never);
    }

    /// Death on a day after the first report: every grant ends that day, goals are cancelled,
    /// nothing after it happens.
    fn die(&mut self, day: u32) {
        let p = &mut self.plan;
        p.death_day = Some(day);
        for c in &mut p.conds {
            if c.first_day > day {
                c.first_day = NEVER;
            }
            c.assessments.retain(|(d, _)| *d <= day);
            if c.resolved_day.is_some_and(|r| r > day) {
                c.resolved_day = None;
            }
        }
        for g in &mut p.grants {
            if g.report_day > day {
                g.report_day = NEVER;
            } else if g.end_day.is_none_or(|e| e > day) {
                g.end_day = Some(day);
            }
        }
        for g in &mut p.goals {
            if g.start_day > day {
                g.start_day = NEVER;
            } else if g.end.is_none_or(|(e, _)| e > day) {
                g.end = Some((day, GoalEnd::Cancelled));
            }
        }
    }
}

fn plan_citizen(rng: &mut ChaCha8Rng, start: NaiveDate, days: u32) -> Plan {
    let legacy = rng.random_bool(0.05);
    let mut b = Builder {
        rng,
        start,
        days,
        plan: Plan {
            legacy,
            death_day: None,
            conds: Vec::new(),
            goals: Vec::new(),
            grants: Vec::new(),
        },
    };
    let roll: f64 = b.rng.random();
    let mut p_death = 0.03;
    let care = if roll < 0.20 {
        b.rehabilitation(true);
        true
    } else if roll < 0.32 {
        b.rehabilitation(false);
        true
    } else if roll < 0.57 {
        b.stable();
        p_death = 0.10;
        true
    } else if roll < 0.75 {
        b.decline();
        p_death = 0.15;
        true
    } else if roll < 0.88 {
        let a = b.arrival();
        b.wound(a);
        false
    } else if roll < 0.95 {
        let (a, s) = b.arrive(0.7);
        b.medicine(a, s);
        p_death = 0.10;
        false
    } else {
        let (a, s) = b.arrive(0.5);
        b.meals(a, s);
        false
    };
    let first = b.plan.conds.iter().map(|c| c.first_day).min().unwrap_or(0);
    if care {
        if b.rng.random_bool(0.15) {
            let a = b.rng.random_range(first..b.days.max(first + 1));
            b.wound(a);
        }
        if b.rng.random_bool(0.12) {
            b.medicine(first, b.date(first));
        }
        if b.rng.random_bool(0.25) {
            let s = b
                .plan
                .grants
                .iter()
                .map(|g| g.start)
                .min()
                .unwrap_or(b.date(first));
            b.meals(first, s);
        }
    }
    if b.rng.random_bool(p_death) && first + 1 < b.days {
        let day = b.rng.random_range(first + 1..b.days);
        b.die(day);
    }
    b.plan
}

// --- identifiers ---------------------------------------------------------------------------

/// A random (version 4 form) UUID from the simulation's RNG.
fn uuid(rng: &mut impl Rng) -> String {
    let mut b = [0u8; 16];
    rng.fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        s.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    s
}

/// A synthetic CPR number: birth date (1925-1960) DDMMYY, a century digit 0-3 (born 19xx) and
/// three digits, chosen so that the number fails the modulus-11 check: every CPR number issued
/// to a person born in those years passes it, so no real person has one of these.
fn synthetic_cpr(rng: &mut impl Rng) -> String {
    const WEIGHTS: [u32; 10] = [4, 3, 2, 7, 6, 5, 4, 3, 2, 1];
    let first = NaiveDate::from_ymd_opt(1925, 1, 1).expect("valid date");
    loop {
        let birth = first + Days::new(rng.random_range(0..36 * 365));
        let tail = rng.random_range(0..4000u32);
        let s = format!(
            "{:02}{:02}{:02}{:04}",
            birth.day(),
            birth.month(),
            birth.year() % 100,
            tail
        );
        let sum: u32 = s
            .bytes()
            .zip(WEIGHTS)
            .map(|(b, w)| u32::from(b - b'0') * w)
            .sum();
        if !sum.is_multiple_of(11) {
            return s;
        }
    }
}

/// `YYYY-MM-DDThh:mm:ssZ` (written by hand: chrono's formatter is slow for this many).
fn instant(dt: DateTime<Utc>) -> String {
    use chrono::Timelike;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

/// The UTC instant of a local wall-clock time (the earlier one in an autumn DST fold; a time in
/// the spring gap moves one hour on).
fn local(tz: Tz, date: NaiveDate, minutes: u32) -> DateTime<Utc> {
    let time = NaiveTime::from_num_seconds_from_midnight_opt(minutes * 60, 0).unwrap_or_default();
    let naive = date.and_time(time);
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => tz
            .from_local_datetime(&(naive + chrono::Duration::hours(1)))
            .earliest()
            .map_or_else(|| naive.and_utc(), |t| t.with_timezone(&Utc)),
    }
}

// --- FHIR resources ------------------------------------------------------------------------

fn meta(profile: &str, last_updated: &str) -> Value {
    json!({
        "lastUpdated": last_updated,
        "profile": [format!("{}{profile}", codes::SD)],
    })
}

fn coding(code: Code, legacy: bool) -> Value {
    if legacy && !code.legacy.is_empty() {
        json!({"system": codes::FSIII, "code": code.legacy})
    } else {
        json!({"system": codes::FSIII, "code": code.uuid, "display": code.display})
    }
}

fn reference(ty: &str, id: &str) -> Value {
    json!({ "reference": format!("{ty}/{id}") })
}

struct Person<'a> {
    patient_id: &'a str,
    cpr: &'a str,
    sor: &'a str,
    legacy: bool,
}

fn patient(p: &Person<'_>, deceased: bool, lu: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "id": p.patient_id,
        "meta": meta("klgateway-care-citizen", lu),
        "identifier": [{"use": "official", "system": codes::CPR_SYSTEM, "value": p.cpr}],
        "deceasedBoolean": deceased,
        "managingOrganization": {
            "identifier": {"use": "official", "system": codes::SOR_SYSTEM, "value": p.sor}
        },
    })
}

fn condition(p: &Person<'_>, c: &CondPlan, day: u32, lu: &str) -> Value {
    let resolved = c.resolved_day.is_some_and(|r| r <= day);
    let mut v = json!({
        "resourceType": "Condition",
        "id": c.id,
        "meta": meta("klgateway-care-condition", lu),
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": if resolved { "resolved" } else { "active" },
        }]},
        "code": {"coding": [coding(c.code, p.legacy)]},
        "subject": reference("Patient", p.patient_id),
        "recordedDate": c.recorded.to_string(),
    });
    let obj = v.as_object_mut().expect("an object");
    if !resolved {
        obj.insert(
            "category".into(),
            json!([{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                "code": "problem-list-item",
            }]}]),
        );
    }
    if !c.nursing {
        let level = c
            .assessments
            .iter()
            .take_while(|(d, _)| *d <= day)
            .last()
            .map_or(0, |a| a.1);
        obj.insert(
            "severity".into(),
            json!({"coding": [coding(LEVELS[usize::from(level)], p.legacy)]}),
        );
    }
    v
}

fn goal(
    p: &Person<'_>,
    g: &GoalPlan,
    cond_id: &str,
    start: NaiveDate,
    day: u32,
    lu: &str,
) -> Value {
    let status = match g.end {
        Some((e, GoalEnd::Completed)) if e <= day => "completed",
        Some((e, GoalEnd::Cancelled)) if e <= day => "cancelled",
        _ => "active",
    };
    json!({
        "resourceType": "Goal",
        "id": g.id,
        "meta": meta("klgateway-care-goal", lu),
        "lifecycleStatus": status,
        "category": [{"coding": [{
            "system": codes::CARE_SOCIAL,
            "code": "ca552020-6ed1-4cdc-b0d4-32697f1f27ad",
            "display": "FSIII tilstandsmål",
        }]}],
        "description": {"coding": [coding(codes::GOAL_LESSENS, false)]},
        "subject": reference("Patient", p.patient_id),
        "startDate": start.to_string(),
        "target": [{
            "measure": {"coding": [{
                "system": codes::CARE_SOCIAL,
                "code": "66959f77-6e2a-4574-8423-3ff097f8b9fa",
                "display": "funktionsevneniveau",
            }]},
            "detailCodeableConcept": {"coding": [coding(LEVELS[usize::from(g.target)], p.legacy)]},
        }],
        "addresses": [reference("Condition", cond_id)],
    })
}

fn care_plan(
    p: &Person<'_>,
    g: &GrantPlan,
    cond_id: &str,
    end: Option<NaiveDate>,
    lu: &str,
) -> Value {
    let (status, detail_status) = if end.is_some() {
        ("completed", "completed")
    } else {
        ("active", "in-progress")
    };
    let mut period = json!({"start": g.start.to_string()});
    if let Some(end) = end {
        period["end"] = json!(end.to_string());
    }
    json!({
        "resourceType": "CarePlan",
        "id": g.id,
        "meta": meta("klgateway-care-planned-intervention", lu),
        "status": status,
        "intent": "plan",
        "subject": reference("Patient", p.patient_id),
        "period": period,
        "activity": [{"detail": {
            "code": {"coding": [coding(g.code, p.legacy)]},
            "reasonReference": [reference("Condition", cond_id)],
            "status": detail_status,
        }}],
    })
}

/// Appends an Encounter as compact FHIR JSON (written by hand: there is one per visit).
#[allow(clippy::too_many_arguments)]
fn encounter<'a>(
    out: &mut String,
    p: &Person<'_>,
    id: &str,
    class: &str,
    plans: impl Iterator<Item = &'a str>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    lu: &str,
) {
    use std::fmt::Write;
    let _ = write!(
        out,
        r#"{{"resourceType":"Encounter","id":"{id}","meta":{{"lastUpdated":"{lu}","profile":["{sd}klgateway-care-general-encounter"]}},"extension":["#,
        sd = codes::SD
    );
    for (i, cp) in plans.enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            r#"{{"url":"{url}","valueReference":{{"reference":"CarePlan/{cp}"}}}}"#,
            url = codes::BASED_ON_INTERVENTION
        );
    }
    let _ = write!(
        out,
        r#"],"status":"finished","class":{{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"{class}"}},"type":[{{"coding":[{{"system":"{cs}","code":"{code}","display":"udførelse af planlagt indsats"}}]}}],"subject":{{"reference":"Patient/{pid}"}},"period":{{"start":"{start}","end":"{end}"}}}}"#,
        cs = codes::CARE_SOCIAL,
        code = codes::DELIVERY_OF_PLANNED,
        pid = p.patient_id,
        start = instant(start),
        end = instant(end),
    );
}

/// Compact FHIR JSON of a resource.
fn compact(v: &Value) -> String {
    String::from_utf8(to_fhir_json(v, false)).expect("serde_json writes UTF-8")
}

// --- visits --------------------------------------------------------------------------------

/// The kinds of visit of a day: `(class, first start minute, number of 5-minute start slots,
/// shortest, longest duration in minutes)`.
const SLOTS: [(&str, u32, u32, u32, u32); 6] = [
    ("HH", 7 * 60, 30, 15, 45),       // morning care
    ("HH", 17 * 60, 24, 10, 25),      // evening care
    ("HH", 12 * 60 + 30, 24, 30, 45), // practical help
    ("HH", 10 * 60, 18, 30, 45),      // rehabilitation training
    ("HH", 13 * 60, 30, 15, 30),      // home nursing
    ("AMB", 9 * 60, 60, 10, 20),      // nursing clinic
];

/// The visit slots (bit i = `SLOTS[i]`) in which a grant is delivered on `day`.
fn slots_of(g: &GrantPlan, day: u32, weekday: u32) -> u8 {
    let nursing_slot = if g.clinic { 1 << 5 } else { 1 << 4 };
    match (g.pattern, g.nursing) {
        (Pattern::Never, _) => 0,
        (Pattern::Daily2, _) => 0b11,
        (Pattern::Daily, false) => 0b1,
        (Pattern::Daily, true) => nursing_slot,
        (Pattern::Weekly, false) if weekday == g.weekday => 1 << 2,
        (Pattern::Weekly, true) if weekday == g.weekday => nursing_slot,
        (Pattern::Weekdays, _) if weekday < 5 => 1 << 3,
        (Pattern::EveryFew, _) if (day + g.phase).is_multiple_of(g.every) => nursing_slot,
        _ => 0,
    }
}

// --- the day loop ---------------------------------------------------------------------------

/// Builds the municipality (see [`super::generate`]).
pub fn generate(cfg: &SimConfig) -> Municipality {
    assert!(
        !cfg.sor_codes.is_empty(),
        "SimConfig::sor_codes needs at least one SOR code"
    );
    let mut master = ChaCha8Rng::seed_from_u64(cfg.seed);
    let teams = cfg.sor_codes.len();
    let days = cfg.days;
    // Each team's care system reports in a nightly batch at its own instant (20:00-23:59 local).
    let batch: Vec<u32> = (0..teams * days as usize)
        .map(|_| master.random_range(20 * 60..24 * 60))
        .collect();
    // Sequential: each citizen's CPR number and the seed of its own RNG.
    let mut cprs = HashSet::with_capacity(cfg.citizens);
    let mut seeds = Vec::with_capacity(cfg.citizens);
    for _ in 0..cfg.citizens {
        let cpr = loop {
            let c = synthetic_cpr(&mut master);
            if cprs.insert(c.clone()) {
                break c;
            }
        };
        seeds.push((cpr, master.random::<u64>()));
    }
    // Each citizen depends only on its own seed, so chunks can run on threads and the result
    // is the same for any number of them.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8)
        .min(cfg.citizens.max(1));
    let chunk = cfg.citizens.div_ceil(threads).max(1);
    let batch = &batch;
    let seeds = &seeds;
    let results: Vec<(Vec<SimCitizen>, Vec<SimBundle>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..cfg.citizens)
            .step_by(chunk)
            .map(|from| {
                let to = (from + chunk).min(cfg.citizens);
                scope.spawn(move || {
                    let mut citizens = Vec::with_capacity(to - from);
                    let mut bundles = Vec::new();
                    for (i, (cpr, seed)) in seeds.iter().enumerate().take(to).skip(from) {
                        let team = i % teams;
                        let mut rng = ChaCha8Rng::seed_from_u64(*seed);
                        let patient_id = uuid(&mut rng);
                        let plan = plan_citizen(&mut rng, cfg.start, days);
                        let person = Person {
                            patient_id: &patient_id,
                            cpr,
                            sor: &cfg.sor_codes[team],
                            legacy: plan.legacy,
                        };
                        let team_batch = &batch[team * days as usize..(team + 1) * days as usize];
                        citizen_bundles(cfg, &plan, &person, i, team_batch, &mut rng, &mut bundles);
                        let died_on = plan
                            .death_day
                            .filter(|d| *d < days)
                            .map(|d| cfg.start + Days::new(u64::from(d)));
                        citizens.push(SimCitizen {
                            cpr: cpr.clone(),
                            sor_code: cfg.sor_codes[team].clone(),
                            patient_id,
                            died_on,
                        });
                    }
                    (citizens, bundles)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a simulation thread panicked"))
            .collect()
    });
    let mut citizens = Vec::with_capacity(cfg.citizens);
    let mut bundles = Vec::new();
    for (c, b) in results {
        citizens.extend(c);
        bundles.extend(b);
    }
    bundles.sort_unstable_by(|a, b| (a.last_updated, &a.id).cmp(&(b.last_updated, &b.id)));
    Municipality { bundles, citizens }
}

fn citizen_bundles(
    cfg: &SimConfig,
    plan: &Plan,
    person: &Person<'_>,
    citizen: usize,
    team_batch: &[u32],
    rng: &mut ChaCha8Rng,
    out: &mut Vec<SimBundle>,
) {
    let first_day = plan
        .conds
        .iter()
        .map(|c| c.first_day)
        .min()
        .unwrap_or(NEVER);
    let last_day = plan.death_day.map_or(cfg.days, |d| (d + 1).min(cfg.days));
    // The current version of each resource, as compact FHIR JSON.
    let mut patient_v = String::new();
    let mut cond_v = vec![String::new(); plan.conds.len()];
    let mut goal_v = vec![String::new(); plan.goals.len()];
    let mut grant_v = vec![String::new(); plan.grants.len()];
    let mut slot_grants: [Vec<usize>; 6] = Default::default();
    // The Bundle is written here, then copied out at its exact size.
    let mut scratch = String::with_capacity(16 * 1024);
    for day in first_day..last_day {
        let date = cfg.start + Days::new(u64::from(day));
        let weekday = date.weekday().num_days_from_monday();
        let dies_today = plan.death_day == Some(day);

        let patient_changed = day == first_day || dies_today;
        let conds_changed: Vec<usize> = (0..plan.conds.len())
            .filter(|&i| {
                let c = &plan.conds[i];
                c.first_day == day
                    || c.resolved_day == Some(day)
                    || c.assessments.iter().skip(1).any(|(d, _)| *d == day)
            })
            .collect();
        let goals_changed: Vec<usize> = (0..plan.goals.len())
            .filter(|&i| {
                let g = &plan.goals[i];
                g.start_day == day || g.end.is_some_and(|(e, _)| e == day)
            })
            .collect();
        let grants_changed: Vec<usize> = (0..plan.grants.len())
            .filter(|&i| {
                let g = &plan.grants[i];
                g.report_day == day || (g.report_day <= day && g.end_day == Some(day))
            })
            .collect();
        for s in &mut slot_grants {
            s.clear();
        }
        if !dies_today {
            for (gi, g) in plan.grants.iter().enumerate() {
                let active =
                    g.report_day <= day && g.start <= date && g.end_day.is_none_or(|e| day <= e);
                if !active {
                    continue;
                }
                let mask = slots_of(g, day, weekday);
                for (s, list) in slot_grants.iter_mut().enumerate() {
                    if mask & (1 << s) != 0 {
                        list.push(gi);
                    }
                }
            }
        }
        let visits = slot_grants.iter().any(|s| !s.is_empty());
        if !(patient_changed
            || visits
            || !conds_changed.is_empty()
            || !goals_changed.is_empty()
            || !grants_changed.is_empty())
        {
            continue;
        }

        // The care system reports the day in its nightly batch, or on its own a little apart.
        let minute = if rng.random_bool(0.6) {
            team_batch[day as usize]
        } else {
            rng.random_range(20 * 60..24 * 60)
        };
        let reported = local(cfg.time_zone, date, minute)
            + chrono::Duration::seconds(if minute == team_batch[day as usize] {
                0
            } else {
                rng.random_range(0..60)
            });
        let lu = instant(reported);

        if patient_changed {
            patient_v = compact(&patient(person, dies_today, &lu));
        }
        for &ci in &conds_changed {
            cond_v[ci] = compact(&condition(person, &plan.conds[ci], day, &lu));
        }
        for &gi in &goals_changed {
            let g = &plan.goals[gi];
            let c = &plan.conds[g.cond];
            let start = cfg.start + Days::new(u64::from(g.start_day));
            goal_v[gi] = compact(&goal(person, g, &c.id, start, day, &lu));
        }
        for &gi in &grants_changed {
            let g = &plan.grants[gi];
            let end = g
                .end_day
                .filter(|e| *e <= day)
                .map(|e| cfg.start + Days::new(u64::from(e)));
            grant_v[gi] = compact(&care_plan(person, g, &plan.conds[g.cond].id, end, &lu));
        }

        // What goes in: the changed resources and everything they reference.
        let mut cond_in = vec![false; plan.conds.len()];
        let mut grant_in = vec![false; plan.grants.len()];
        for &ci in &conds_changed {
            cond_in[ci] = true;
        }
        for &gi in &goals_changed {
            cond_in[plan.goals[gi].cond] = true;
        }
        for &gi in grants_changed.iter().chain(slot_grants.iter().flatten()) {
            grant_in[gi] = true;
            cond_in[plan.grants[gi].cond] = true;
        }

        let id = uuid(rng);
        let json = &mut scratch;
        json.clear();
        json.push_str(r#"{"resourceType":"Bundle","id":""#);
        json.push_str(&id);
        json.push_str(r#"","meta":{"lastUpdated":""#);
        json.push_str(&lu);
        json.push_str(r#"","profile":[""#);
        json.push_str(codes::SD);
        json.push_str(r#"klgateway-care-delivery-report"]},"type":"collection","timestamp":""#);
        json.push_str(&lu);
        json.push_str(r#"","entry":["#);
        let mut first = true;
        let mut entry = |ty: &str, id: &str, resource: &str| {
            debug_assert!(
                !resource.is_empty(),
                "{ty}/{id} is included before it exists"
            );
            if !first {
                json.push(',');
            }
            first = false;
            json.push_str(r#"{"fullUrl":""#);
            json.push_str(FULL_URL_BASE);
            json.push('/');
            json.push_str(ty);
            json.push('/');
            json.push_str(id);
            json.push_str(r#"","resource":"#);
            json.push_str(resource);
            json.push('}');
        };
        entry("Patient", person.patient_id, &patient_v);
        for (ci, inside) in cond_in.iter().enumerate() {
            if *inside {
                entry("Condition", &plan.conds[ci].id, &cond_v[ci]);
            }
        }
        for &gi in &goals_changed {
            entry("Goal", &plan.goals[gi].id, &goal_v[gi]);
        }
        for (gi, inside) in grant_in.iter().enumerate() {
            if *inside {
                entry("CarePlan", &plan.grants[gi].id, &grant_v[gi]);
            }
        }
        let mut visit = String::with_capacity(1024);
        for (s, list) in slot_grants.iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let (class, first_min, n, shortest, longest) = SLOTS[s];
            let start_min = first_min + 5 * rng.random_range(0..n);
            let minutes = rng.random_range(shortest..=longest);
            let start = local(cfg.time_zone, date, start_min);
            let end = start + chrono::Duration::minutes(i64::from(minutes));
            let eid = uuid(rng);
            visit.clear();
            encounter(
                &mut visit,
                person,
                &eid,
                class,
                list.iter().map(|&gi| plan.grants[gi].id.as_str()),
                start,
                end,
                &lu,
            );
            entry("Encounter", &eid, &visit);
        }
        json.push_str("]}");

        out.push(SimBundle {
            id,
            citizen,
            last_updated: reported,
            json: bytes::Bytes::copy_from_slice(json.as_bytes()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_have_the_v4_form() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let u = uuid(&mut rng);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn cprs_are_dates_and_fail_modulus_11() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let c = synthetic_cpr(&mut rng);
            assert_eq!(c.len(), 10);
            let d: u32 = c[0..2].parse().unwrap();
            let m: u32 = c[2..4].parse().unwrap();
            let y: i32 = c[4..6].parse().unwrap();
            assert!(NaiveDate::from_ymd_opt(1900 + y, m, d).is_some(), "{c}");
            let sum: u32 = c
                .bytes()
                .zip([4, 3, 2, 7, 6, 5, 4, 3, 2, 1])
                .map(|(b, w)| u32::from(b - b'0') * w)
                .sum();
            assert_ne!(sum % 11, 0, "{c}");
        }
    }

    #[test]
    fn local_evening_is_the_same_utc_date_in_copenhagen() {
        let tz: Tz = "Europe/Copenhagen".parse().unwrap();
        let d = NaiveDate::from_ymd_opt(2027, 3, 28).unwrap(); // DST starts
        let t = local(tz, d, 23 * 60 + 59);
        assert_eq!(t.date_naive(), d);
        assert_eq!(instant(t), "2027-03-28T21:59:00Z");
    }
}
