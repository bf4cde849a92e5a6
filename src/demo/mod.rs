//! `demo`: the whole nightly run against simulated care and finance systems (being written).

use std::path::PathBuf;

/// Options of `demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Keep the database, configuration and files in this folder (created if missing).
    pub keep: Option<PathBuf>,
    /// Number of simulated citizens.
    pub citizens: usize,
    /// Days of simulated history.
    pub days: u32,
    /// Seed of the simulation.
    pub seed: u64,
    /// Print the summary as JSON instead of a table.
    pub json: bool,
}

/// Runs the demo, prints its summary and wall time, and returns the exit code.
pub async fn main(_opts: DemoOptions) -> anyhow::Result<u8> {
    anyhow::bail!("the demo is not written yet")
}
