//! Team income per day and period, and the nightly posting deltas.
