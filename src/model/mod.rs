//! The progression model: pure functions over a citizen's stored history and a date.
//!
//! Nothing here does I/O or reads the clock: every date is an argument, every amount a
//! `rust_decimal::Decimal`. See `../shared/docs/progression-model.md` for the rules.

mod course;
mod history;
mod income;
mod money;

pub use course::{
    Course, CourseId, CourseOutcome, DailyTariff, EndReason, compute_all, compute_courses,
};
pub use history::{CitizenHistory, Record, RecordKind, Versioned, resolve_history};
pub use income::{
    Finding, IncomeKey, IncomeLine, IncomeReport, Payee, PostingDelta, YearMonth, income,
    nightly_deltas, team_on,
};
pub use money::{MONEY_ROUNDING, round_money};
