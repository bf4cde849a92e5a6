//! progression-gateway: steers municipal home care by progression instead of by hours.
//!
//! Layout (see ARCHITECTURE.md):
//! - [`domain`]: validated types (citizens by pseudonym, teams, grants, visits, assessments).
//! - [`mapping`]: the municipality's code, team, tariff and account tables, loaded and validated.
//! - [`model`]: the progression model, pure functions over history and a date: courses,
//!   tariffs, team income, nightly posting deltas. No I/O, no clock.
//! - [`store`]: the database (SQLite or PostgreSQL) keeping every version of every record.
//! - [`config`]: the configuration file, environment overrides and secrets.
//! - [`cockpit`]: the steering cockpit's access (principals, scopes) and figures API.
//! - [`app`]: the commands, gluing the parts together.

pub mod api;
pub mod app;
mod bearer;
pub mod cockpit;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod domain;
pub mod explain;
pub mod mapping;
pub mod model;
pub mod pipeline;
pub mod progress;
pub mod run;
pub mod schedule;
pub mod sim;
pub mod sinks;
pub mod sources;
pub mod store;
