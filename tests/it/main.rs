//! The integration tests, all in one test binary so that a change to the library links one
//! executable instead of one per file. Each module is one area of the program; `common` holds
//! the model builders and the loopback HTTP helper, `support` the real OpenSSH server.

mod common;
mod support {
    pub mod sshd;
}

mod actuals;
mod api;
mod calibrate;
mod cli;
mod cockpit;
mod daemon;
mod decisions;
mod demo;
mod events;
mod explain;
mod faults;
mod fhir_transport;
mod figures;
mod finance_formats;
mod finance_transport;
mod fuzz;
mod incremental;
mod ingest;
mod klgateway_reader;
mod lease;
mod ledger;
mod model_properties;
mod nexus;
mod post;
mod privacy;
mod pull_cli;
mod pull_faults;
mod sim_care;
mod sim_nexus;
mod store;
mod validate;
mod worked_examples;
