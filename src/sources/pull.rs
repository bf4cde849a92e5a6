//! Pulling a FHIR server: search for Bundles changed since the stored cursor, follow `next`
//! links, store each page together with the advanced cursor in one transaction.

use super::fhir_pull::{FhirPullClient, PullError};
use super::ingest::{ImportSummary, Ingestor};
use crate::store::StoreError;

/// A pull failed as a whole (a bad Bundle is a rejection in the summary, not this). What was
/// stored before the failure stays, with its cursor.
#[derive(Debug, thiserror::Error)]
pub enum PullRunError {
    /// The server could not be read, after the retries.
    #[error(transparent)]
    Pull(#[from] PullError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The cursor text of an instant: RFC 3339 UTC with microseconds, which sorts as it reads.
fn cursor_text(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Pulls everything changed since the stored cursor. Each page is stored with the cursor it
/// advances to in one transaction, so a crash loses nothing and duplicates nothing; the search
/// uses `_lastUpdated=ge<cursor>`, so Bundles sharing the cursor instant are read again and
/// stored as unchanged rather than skipped.
pub async fn pull(
    ingestor: &Ingestor,
    client: &FhirPullClient,
) -> Result<ImportSummary, PullRunError> {
    let store = ingestor.store();
    let mut cursor = store.cursor(ingestor.source()).await?;
    let mut url = client.search_url(cursor.as_deref());
    let mut batch = ingestor.batch();
    let mut pages = 0u64;
    loop {
        // A page that does not parse (cut short, say) is fetched again like a failed request.
        let document = client
            .get_checked(&url, |bytes, format| ingestor.parse(bytes, format))
            .await?;
        pages += 1;
        let outcome = ingestor.take(document, &url, &mut batch);
        for problem in &outcome.problems {
            batch.reject(format!("{} page {pages}", ingestor.source()), problem);
        }
        if let Some(page_max) = outcome.last_updated {
            let text = cursor_text(page_max);
            if cursor.as_ref().is_none_or(|c| text > *c) {
                cursor = Some(text);
            }
        }
        let next = outcome.next.clone();
        batch.push(outcome, None).await?;
        batch.flush(cursor.as_deref()).await?;
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    tracing::info!(message = "Pull done.", source = ingestor.source(), pages);
    Ok(batch.finish().await?)
}
