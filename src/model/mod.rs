//! The progression model: pure functions over a citizen's stored history and a date.
//!
//! Nothing here does I/O or reads the clock: every date is an argument, every amount a
//! `rust_decimal::Decimal`. See `../shared/docs/progression-model.md` for the rules.

pub mod calibrate;
mod course;
pub mod figures;
mod history;
mod income;
mod money;

pub use course::{
    Change, Course, CourseId, CourseOutcome, DailyTariff, Decision, EndReason, LedgerEntry,
    TableRef, assess, compute_all, compute_courses, course_id, has_active_grant, need_score_on,
    planned_end, reprice, visitated_minutes_on,
};
pub use history::{
    CitizenHistory, Evidence, GrantVersion, MODEL_KINDS, Record, RecordKind, Versioned,
    resolve_history, resolve_history_owned, version_hash,
};
pub use income::{
    CourseShare, DayRun, Finding, IncomeKey, IncomeLine, IncomeReport, Payee, PostingDelta,
    YearMonth, add_runs, day_runs, income, nightly_deltas, team_on,
};
pub use money::{MONEY_ROUNDING, round_money};
