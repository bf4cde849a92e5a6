//! The intervention codes the simulated care system uses (`src/sim/care/codes.rs`), as Nexus
//! names them: the Danish display name, the paragraph (section) and the visit rhythm.
//!
//! The care simulator's code table is private to it, so it is repeated here; a test in
//! `tests/it/sim_nexus.rs` checks that every grant code the simulator writes is named.

/// How often an intervention is visited (the care simulator's `Pattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pattern {
    /// Every day, morning and evening.
    Daily2,
    /// Every day, once.
    Daily,
    /// Once a week.
    Weekly,
    /// Monday to Friday.
    Weekdays,
    /// Every second or third day.
    EveryFew,
    /// Never visited (meals are delivered).
    Never,
}

/// One intervention code in both forms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Intervention {
    pub uuid: &'static str,
    pub legacy: &'static str,
    pub display: &'static str,
    pub pattern: Pattern,
}

const fn i(
    uuid: &'static str,
    legacy: &'static str,
    display: &'static str,
    pattern: Pattern,
) -> Intervention {
    Intervention {
        uuid,
        legacy,
        display,
        pattern,
    }
}

/// Every intervention code of the care simulator. `H1.1` is visited twice a day for "Vaske sig"
/// and once for "Af- og påklædning": its pattern here is the default when a grant has no visits;
/// the visits decide otherwise.
pub(crate) const INTERVENTIONS: &[Intervention] = &[
    i(
        "17312894-b23f-43d9-9723-b725ac25d872",
        "H1.1",
        "Personlig hygiejne",
        Pattern::Daily2,
    ),
    i(
        "4a4add40-ee74-4090-bd70-48d9bda9c5c4",
        "H1.2",
        "Udskillelser",
        Pattern::Daily2,
    ),
    i(
        "ac68ca34-bfad-4254-a715-6fd758838e67",
        "H1.3",
        "Ernæring",
        Pattern::Daily,
    ),
    i(
        "ef8ee035-00d2-48b9-b366-27753ccd5504",
        "H1.4",
        "Mobilitet",
        Pattern::Daily,
    ),
    i(
        "bc0306e2-5090-4bc8-b878-9814cafea403",
        "H1.7",
        "Indkøb",
        Pattern::Weekly,
    ),
    i(
        "43608562-e356-4990-8b96-e35128bbdc4f",
        "H1.8",
        "Rengøring",
        Pattern::Weekly,
    ),
    i(
        "1d25d761-72a9-41c8-a29d-d6a47975dc05",
        "H1.10",
        "Tilberede/anrette mad",
        Pattern::Daily,
    ),
    i(
        "9aad7654-b9f9-40a3-84d9-2ae1dec4228a",
        "H1.11",
        "Madservice",
        Pattern::Never,
    ),
    i(
        "754c06a7-d6f1-4f8d-ad3e-a5c109efaca6",
        "H2.1",
        "RH Ernæring",
        Pattern::Weekdays,
    ),
    i(
        "17e261ba-e33b-467a-af08-094dc38b4190",
        "H2.3",
        "RH Indkøb",
        Pattern::Weekdays,
    ),
    i(
        "0b654911-f2b6-47d3-948b-3e9fb315b4c9",
        "H2.4",
        "RH Mobilitet",
        Pattern::Weekdays,
    ),
    i(
        "2912752c-2e9e-4702-8787-b45f73ff5b05",
        "H2.5",
        "RH Personlig hygiejne",
        Pattern::Weekdays,
    ),
    i(
        "b3c16115-d0d9-4229-a526-df366d44f948",
        "H2.6",
        "RH Rengøring",
        Pattern::Weekdays,
    ),
    i(
        "6b3c5af0-22ac-40eb-bc50-c7734da2bf6d",
        "H2.7",
        "RH Tilberede/anrette mad",
        Pattern::Weekdays,
    ),
    i(
        "a6199582-15a7-4c3d-bbdf-21f5059031c6",
        "H2.10",
        "RH Udskillelser",
        Pattern::Weekdays,
    ),
    i(
        "76878386-b3d2-4320-828a-a700e8a66234",
        "G1.39",
        "Sårbehandling",
        Pattern::EveryFew,
    ),
    i(
        "23eb1228-e878-4960-8d3c-2c022c66a489",
        "G1.19",
        "Kompressionsbehandling",
        Pattern::EveryFew,
    ),
    i(
        "81ad7190-f253-47c2-a7c9-3d61dd4f7275",
        "G1.21",
        "Medicindispensering",
        Pattern::Weekly,
    ),
    i(
        "d2d42368-9d6d-4ca2-affe-f7116da86e1b",
        "G1.20",
        "Medicinadministration",
        Pattern::Daily,
    ),
];

/// The intervention of a code in either form.
pub(crate) fn intervention(code: &str) -> Option<&'static Intervention> {
    let code = code.trim();
    INTERVENTIONS
        .iter()
        .find(|c| c.uuid.eq_ignore_ascii_case(code) || c.legacy == code)
}

/// The Nexus paragraph of an intervention: `§ 83` (H1.x, meals included), `§ 83 a` (H2.x),
/// `§ 138` (G1.x).
pub(crate) fn section(c: &Intervention) -> &'static str {
    if c.legacy.starts_with("H2.") {
        "§ 83 a"
    } else if c.legacy.starts_with("G1.") {
        "§ 138"
    } else {
        "§ 83"
    }
}
