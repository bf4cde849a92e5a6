//! The FSIII codes the simulated care system uses: real codes from `mappings/interventions.csv`,
//! `mappings/functional_levels.csv` and the FSIII code list, in both the UUID and the legacy form.

/// FSIII code system.
pub const FSIII: &str = "urn:oid:1.2.208.176.2.21";
/// CPR identifier system.
pub const CPR_SYSTEM: &str = "urn:oid:1.2.208.176.1.2";
/// SOR identifier system (custodian organisation).
pub const SOR_SYSTEM: &str = "urn:oid:1.2.208.176.1.1";
/// KL CareSocialCodes.
pub const CARE_SOCIAL: &str = "http://fhir.kl.dk/term/CodeSystem/CareSocialCodes";
/// Encounter type: delivery of a planned intervention.
pub const DELIVERY_OF_PLANNED: &str = "784275f1-6822-4a88-b361-d958007d5253";
/// The extension pointing an Encounter at the CarePlans it delivered.
pub const BASED_ON_INTERVENTION: &str =
    "http://fhir.kl.dk/gateway/StructureDefinition/BasedOnInterventionExtension";
/// Profile base.
pub const SD: &str = "http://fhir.kl.dk/gateway/StructureDefinition/";

/// A code in its two forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub uuid: &'static str,
    pub legacy: &'static str,
    pub display: &'static str,
}

const fn c(uuid: &'static str, legacy: &'static str, display: &'static str) -> Code {
    Code {
        uuid,
        legacy,
        display,
    }
}

/// Functional levels 0-4 (index = level).
pub const LEVELS: [Code; 5] = [
    c("9c5cfb57-a498-40e5-98a7-792bf5fb205b", "B1", "0"),
    c("fcc16cb1-41f0-4832-b834-110fba0aaabe", "B2", "1"),
    c("d984ad21-48fe-4619-845e-2aa0303048e7", "B3", "2"),
    c("1ceef776-0cfa-4acd-b222-c5bb2424e0c1", "B4", "3"),
    c("f4c9f159-5806-4c06-95e9-e69b83bab1a1", "B5", "4"),
];

/// How often an intervention is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    /// Every day, a morning and an evening visit.
    Daily2,
    /// Every day, in the morning visit.
    Daily,
    /// Once a week on a fixed weekday (set per grant).
    Weekly,
    /// Monday to Friday (rehabilitation).
    Weekdays,
    /// Every second or third day (set per grant).
    EveryFew,
    /// Never visited (meals are delivered, not visited).
    Never,
}

/// A home-care condition with the §83 and the §83a intervention that answer it.
pub struct CareArea {
    pub condition: Code,
    pub care: Code,
    pub rehab: Code,
    pub pattern: Pattern,
}

const fn area(condition: Code, care: Code, rehab: Code, pattern: Pattern) -> CareArea {
    CareArea {
        condition,
        care,
        rehab,
        pattern,
    }
}

// §83 interventions.
const H1_1: Code = c(
    "17312894-b23f-43d9-9723-b725ac25d872",
    "H1.1",
    "Personlig hygiejne",
);
const H1_2: Code = c(
    "4a4add40-ee74-4090-bd70-48d9bda9c5c4",
    "H1.2",
    "Udskillelser",
);
const H1_3: Code = c("ac68ca34-bfad-4254-a715-6fd758838e67", "H1.3", "Ernæring");
const H1_4: Code = c("ef8ee035-00d2-48b9-b366-27753ccd5504", "H1.4", "Mobilitet");
const H1_7: Code = c("bc0306e2-5090-4bc8-b878-9814cafea403", "H1.7", "Indkøb");
const H1_8: Code = c("43608562-e356-4990-8b96-e35128bbdc4f", "H1.8", "Rengøring");
const H1_10: Code = c(
    "1d25d761-72a9-41c8-a29d-d6a47975dc05",
    "H1.10",
    "Tilberede/anrette mad",
);
/// Madservice (SEL §83 stk. 1 nr. 3): outside both tracks.
pub const MEALS: Code = c(
    "9aad7654-b9f9-40a3-84d9-2ae1dec4228a",
    "H1.11",
    "Madservice",
);

// §83a interventions.
const H2_1: Code = c(
    "754c06a7-d6f1-4f8d-ad3e-a5c109efaca6",
    "H2.1",
    "RH Ernæring",
);
const H2_3: Code = c("17e261ba-e33b-467a-af08-094dc38b4190", "H2.3", "RH Indkøb");
const H2_4: Code = c(
    "0b654911-f2b6-47d3-948b-3e9fb315b4c9",
    "H2.4",
    "RH Mobilitet",
);
const H2_5: Code = c(
    "2912752c-2e9e-4702-8787-b45f73ff5b05",
    "H2.5",
    "RH Personlig hygiejne",
);
const H2_6: Code = c(
    "b3c16115-d0d9-4229-a526-df366d44f948",
    "H2.6",
    "RH Rengøring",
);
const H2_7: Code = c(
    "6b3c5af0-22ac-40eb-bc50-c7734da2bf6d",
    "H2.7",
    "RH Tilberede/anrette mad",
);
const H2_10: Code = c(
    "a6199582-15a7-4c3d-bbdf-21f5059031c6",
    "H2.10",
    "RH Udskillelser",
);

/// The condition "Lave mad", used with meals.
pub const COOKING: Code = c("75bfc8db-a220-4801-a8c7-5e968e94d44b", "J2.2", "Lave mad");

/// Home-care conditions and their interventions.
pub const CARE_AREAS: &[CareArea] = &[
    area(
        c("4d46bd94-9518-431c-82e8-ebb91bca307a", "J1.1", "Vaske sig"),
        H1_1,
        H2_5,
        Pattern::Daily2,
    ),
    area(
        c(
            "e853d3e7-1de5-44f0-ab48-1fb20c449035",
            "J1.3",
            "Af- og påklædning",
        ),
        H1_1,
        H2_5,
        Pattern::Daily,
    ),
    area(
        c(
            "5eecf025-ae93-4256-8df5-bc304c149b96",
            "J1.8",
            "Gå på toilet",
        ),
        H1_2,
        H2_10,
        Pattern::Daily2,
    ),
    area(
        c("888c8f63-c059-46c3-8f36-f9649dbd0771", "J1.6", "Spise"),
        H1_3,
        H2_1,
        Pattern::Daily,
    ),
    area(
        c(
            "4f915ee9-9f30-47b5-b582-c0f1467dd271",
            "J3.2",
            "Bevæge sig omkring",
        ),
        H1_4,
        H2_4,
        Pattern::Daily,
    ),
    area(
        c(
            "d39cd035-eb12-4a18-8a68-f43d4c0c62ef",
            "J3.5",
            "Forflytte sig",
        ),
        H1_4,
        H2_4,
        Pattern::Daily,
    ),
    area(
        c(
            "a7ac8429-513f-43cd-bc69-96a8d0e0f0ff",
            "J2.1",
            "Lave husligt arbejde",
        ),
        H1_8,
        H2_6,
        Pattern::Weekly,
    ),
    area(
        c("293bd85b-d9b4-4e2c-83d9-d3df32ce9d82", "J2.4", "Indkøb"),
        H1_7,
        H2_3,
        Pattern::Weekly,
    ),
    area(COOKING, H1_10, H2_7, Pattern::Daily),
];

/// Nursing conditions (no severity).
pub const VENOUS_WOUND: Code = c(
    "19503407-1ae8-4b17-b96a-98387c24278d",
    "I4.6",
    "Problemer med venøst sår",
);
pub const PRESSURE_ULCER: Code = c(
    "bb0ea5fa-3462-40de-9047-a16fc4815a47",
    "I4.4",
    "Problemer med tryksår",
);
pub const SURGICAL_WOUND: Code = c(
    "7fc48908-33a5-42bf-9d30-feb346e3af21",
    "I4.1",
    "Problemer med kirurgisk sår",
);
pub const TREATMENT_INSIGHT: Code = c(
    "4a37483a-9d95-496b-a593-aa720a6228ac",
    "I11.2",
    "Problemer med indsigt i behandlingsformål",
);

/// SUL §138 interventions.
pub const WOUND_CARE: Code = c(
    "76878386-b3d2-4320-828a-a700e8a66234",
    "G1.39",
    "Sårbehandling",
);
pub const COMPRESSION: Code = c(
    "23eb1228-e878-4960-8d3c-2c022c66a489",
    "G1.19",
    "Kompressionsbehandling",
);
pub const MEDICINE_DISPENSING: Code = c(
    "81ad7190-f253-47c2-a7c9-3d61dd4f7275",
    "G1.21",
    "Medicindispensering",
);
pub const MEDICINE_ADMINISTRATION: Code = c(
    "d2d42368-9d6d-4ca2-affe-f7116da86e1b",
    "G1.20",
    "Medicinadministration",
);

/// Goal: "Tilstand mindskes" (the condition lessens).
pub const GOAL_LESSENS: Code = c(
    "8addc23a-f7c6-47c4-97fb-a73fcdfc9f65",
    "",
    "Tilstand mindskes",
);

/// Every intervention code the simulator grants, once, with the rhythm it is visited in when
/// nothing else says (`H1.1` is visited twice a day for "Vaske sig", once for "Af- og
/// påklædning": the first area naming a code gives its default). What another simulator of the
/// same municipality (the simulated Nexus) names and repeats grants by.
pub(crate) fn interventions() -> Vec<(Code, Pattern)> {
    let mut out: Vec<(Code, Pattern)> = Vec::new();
    // Rehabilitation is trained on weekdays whatever the area (`generate`).
    let areas = CARE_AREAS
        .iter()
        .flat_map(|a| [(a.care, a.pattern), (a.rehab, Pattern::Weekdays)]);
    let others = [
        (MEALS, Pattern::Never),
        (WOUND_CARE, Pattern::EveryFew),
        (COMPRESSION, Pattern::EveryFew),
        (MEDICINE_DISPENSING, Pattern::Weekly),
        (MEDICINE_ADMINISTRATION, Pattern::Daily),
    ];
    for (code, pattern) in areas.chain(others) {
        if !out.iter().any(|(c, _)| c.uuid == code.uuid) {
            out.push((code, pattern));
        }
    }
    out
}
