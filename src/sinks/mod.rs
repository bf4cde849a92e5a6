//! Sinks: what the gateway delivers to systems it does not control.
//!
//! - [`finance`]: balanced vouchers to the finance system (KMD Opus XML, CSV), with an outbox.
//! - [`figures`]: the steering figures per cost centre and month, as CSV, to finance and BI.
//! - [`decisions`]: tariff decisions back to the care system as FHIR `ChargeItem`s.

pub mod decisions;
pub mod figures;
pub mod finance;
pub mod post;
