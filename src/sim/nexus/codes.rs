//! The intervention codes the simulated care system uses (`src/sim/care/codes.rs`), as Nexus
//! names them: the Danish display name, the paragraph (section) and the visit rhythm.
//!
//! The codes and their rhythms are the care simulator's own (`sim::care::codes`); a test in
//! `tests/it/sim_nexus.rs` checks that every grant code the simulator writes is named.

pub(crate) use crate::sim::care::codes::Pattern;

/// One intervention code in both forms, with its default visit rhythm.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Intervention {
    pub uuid: &'static str,
    pub legacy: &'static str,
    pub display: &'static str,
    pub pattern: Pattern,
}

/// Every intervention code of the care simulator (`sim::care::codes::interventions`).
static INTERVENTIONS: std::sync::LazyLock<Vec<Intervention>> = std::sync::LazyLock::new(|| {
    crate::sim::care::codes::interventions()
        .into_iter()
        .map(|(c, pattern)| Intervention {
            uuid: c.uuid,
            legacy: c.legacy,
            display: c.display,
            pattern,
        })
        .collect()
});

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
