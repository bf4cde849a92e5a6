//! The cockpit's figures, computed once per period and data: a request reuses the snapshot
//! of its period while the store holds nothing newer ([`crate::store::Store::data_stamp`]);
//! otherwise it computes it again, one computation at a time (others wait for it and take
//! its result). A few periods are kept, the least recently used dropped first.

use crate::mapping::Mappings;
use crate::pipeline::Snapshot;
use crate::store::Store;
use chrono::NaiveDate;
use std::sync::Arc;
use std::time::Instant;

/// Periods kept.
const KEEP: usize = 4;

struct Entry {
    from: NaiveDate,
    to: NaiveDate,
    snapshot: Arc<Snapshot>,
    used: Instant,
}

/// Snapshots by period (see the module documentation).
#[derive(Default)]
pub struct SnapshotCache {
    entries: tokio::sync::Mutex<Vec<Entry>>,
}

impl SnapshotCache {
    /// The snapshot of `from..=to` as the store is now: kept, or computed.
    pub async fn get(
        &self,
        store: &Store,
        mappings: &Mappings,
        tz: chrono_tz::Tz,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Arc<Snapshot>> {
        let stamp = store.data_stamp().await?;
        // Held while computing: one computation at a time, and whoever waited finds it.
        let mut entries = self.entries.lock().await;
        if let Some(e) = entries
            .iter_mut()
            .find(|e| e.from == from && e.to == to && e.snapshot.stamp == stamp)
        {
            e.used = Instant::now();
            return Ok(e.snapshot.clone());
        }
        let started = Instant::now();
        let snapshot = Arc::new(crate::pipeline::figures(store, mappings, tz, from, to).await?);
        tracing::info!(
            message = "Cockpit figures computed.",
            from = %from,
            to = %to,
            citizens = snapshot.citizens,
            courses = snapshot.courses.len(),
            elapsed_ms = started.elapsed().as_millis() as u64
        );
        entries.retain(|e| !(e.from == from && e.to == to));
        entries.push(Entry {
            from,
            to,
            snapshot: snapshot.clone(),
            used: Instant::now(),
        });
        if entries.len() > KEEP {
            entries.sort_by_key(|e| std::cmp::Reverse(e.used));
            entries.truncate(KEEP);
        }
        Ok(snapshot)
    }
}
