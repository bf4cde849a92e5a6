//! Simulated external systems for tests, the demo and benchmarks. They speak the real wire
//! formats over real HTTP on loopback.

pub mod care;
pub mod decisions;
pub mod finance;
