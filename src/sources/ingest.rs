//! From bytes to the store: read KL Gateway documents, batch their records, store them with the
//! files or cursor they came from, and summarise what happened.

use super::klgateway::{self, Counts, Document, ReadContext, ReadError, UnknownCode};
use super::{Accepted, BundleSink, Format, Refusal};
use crate::domain::{Pseudonym, PseudonymKey};
use crate::mapping::Mappings;
use crate::model::Versioned;
use crate::store::{IngestedFile, Store, StoreError, VersionRow};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// How many record versions are written per transaction at most (a file is never split).
pub const BATCH_VERSIONS: usize = 5_000;

/// The source every KL Gateway record is stored under, whichever way it came in (files, pull
/// or push): the resource ids are the care system's, so the same resource arriving by two ways
/// is the same thing. Cursors and files are kept per configured source name instead.
pub const KLGATEWAY_RECORDS: &str = "klgateway";

/// The source name of the `import` command (for its files; its records are KL Gateway's).
pub const IMPORT_SOURCE: &str = "import";

/// What the gateway needs to read documents for one source.
#[derive(Clone)]
pub struct Ingestor {
    store: Store,
    key: PseudonymKey,
    time_zone: chrono_tz::Tz,
    mappings: Arc<Mappings>,
    source: String,
}

/// An unknown code, with how often it was seen and one resource that carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownCodeSummary {
    /// The code as received.
    pub code: String,
    /// Its code system.
    pub system: String,
    /// `intervention` or `functional_level`.
    pub kind: &'static str,
    /// How many resources carried it.
    pub count: u64,
    /// The first resource seen with it (`CarePlan/<id>`).
    pub example: String,
}

/// A file or document that could not be read, and why (never a CPR number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The file (or the document's origin).
    pub file: String,
    /// Why.
    pub reason: String,
}

/// What an import or a pull did: the JSON summary of `import`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportSummary {
    /// Delivery-report Bundles read.
    pub bundles: u64,
    /// Distinct citizens in them.
    pub citizens: u64,
    /// Grants (CarePlans) read.
    pub grants: u64,
    /// Visits (Encounters) read.
    pub visits: u64,
    /// Assessments (Conditions with a level) read.
    pub assessments: u64,
    /// Goals read.
    pub goals: u64,
    /// Withdrawn resources (entered-in-error, inactive patients).
    pub withdrawn: u64,
    /// Record versions newly stored.
    pub stored: u64,
    /// Record versions that were stored already.
    pub unchanged: u64,
    /// Files skipped because a file with the same content was read before.
    pub files_already_read: u64,
    /// Unknown codes: stored and reported, never dropped.
    pub unknown_codes: Vec<UnknownCodeSummary>,
    /// Files and Bundles that were refused.
    pub rejected: Vec<Rejection>,
}

/// Accumulates a summary as documents are read.
#[derive(Default)]
pub(crate) struct Tally {
    summary: ImportSummary,
    citizens: HashSet<Pseudonym>,
    unknown: BTreeMap<(String, String, &'static str), UnknownCodeSummary>,
}

impl Tally {
    pub(crate) fn add_counts(&mut self, c: &Counts) {
        let s = &mut self.summary;
        s.grants += c.grants;
        s.visits += c.visits;
        s.assessments += c.assessments;
        s.goals += c.goals;
        s.withdrawn += c.withdrawn;
    }

    /// Counts records found equal to their stored version without storing them (Nexus).
    pub(crate) fn add_unchanged(&mut self, n: u64) {
        self.summary.unchanged += n;
    }

    /// Counts a citizen read.
    pub(crate) fn add_citizen(&mut self, citizen: &Pseudonym) {
        if !self.citizens.contains(citizen) {
            self.citizens.insert(citizen.clone());
        }
    }

    pub(crate) fn add_unknown(&mut self, codes: &[UnknownCode]) {
        for u in codes {
            self.unknown
                .entry((u.code.clone(), u.system.clone(), u.kind))
                .and_modify(|s| s.count += 1)
                .or_insert_with(|| UnknownCodeSummary {
                    code: u.code.clone(),
                    system: u.system.clone(),
                    kind: u.kind,
                    count: 1,
                    example: u.resource.clone(),
                });
        }
    }

    /// Adds another tally (of a document read on another thread).
    fn merge(&mut self, other: Tally) {
        let (s, o) = (&mut self.summary, other.summary);
        s.bundles += o.bundles;
        s.grants += o.grants;
        s.visits += o.visits;
        s.assessments += o.assessments;
        s.goals += o.goals;
        s.withdrawn += o.withdrawn;
        self.citizens.extend(other.citizens);
        for (k, u) in other.unknown {
            self.unknown
                .entry(k)
                .and_modify(|s| s.count += u.count)
                .or_insert(u);
        }
    }

    fn finish(mut self) -> ImportSummary {
        self.summary.citizens = self.citizens.len() as u64;
        self.summary.unknown_codes = self.unknown.into_values().collect();
        self.summary
    }
}

/// One document read: the versions of its good reports and the problems of its bad ones.
pub struct ReadOutcome {
    /// Versions to store.
    pub versions: Vec<Versioned>,
    /// Versions to store, serialized ([`ReadOutcome::serialize`]).
    pub rows: Vec<VersionRow>,
    /// Problems, one per bad Bundle (or one for an unreadable document).
    pub problems: Vec<String>,
    /// The latest `meta.lastUpdated` among the good reports (a pull's next cursor).
    pub last_updated: Option<chrono::DateTime<chrono::Utc>>,
    /// The search page's `next` link, if any.
    pub next: Option<String>,
}

impl ReadOutcome {
    /// Serializes and hashes the versions into rows (on the thread that read them, so that the
    /// one writer only writes). A version that cannot be stored (an instant outside the years
    /// 1-9999) becomes a problem.
    pub fn serialize(&mut self) {
        for v in std::mem::take(&mut self.versions) {
            match VersionRow::new(&v) {
                Ok(row) => self.rows.push(row),
                Err(e) => self
                    .problems
                    .push(format!("{}: {e}", v.record.kind().as_str())),
            }
        }
    }
}

/// The most versions whose identity a batch remembers to skip repeats without asking the
/// store: about 40 MB. When full it starts again (the store still skips what it holds).
const SEEN_MAX: usize = 1_000_000;

/// Batches versions and the files they came from, and writes them in one transaction each.
pub struct Batch<'a> {
    ingestor: &'a Ingestor,
    rows: Vec<VersionRow>,
    files: Vec<IngestedFile>,
    tally: Tally,
    /// The identities ([`VersionRow::identity`]) of the versions this batch stored or holds:
    /// a delivery report re-sends the citizen's unchanged resources, and those are counted
    /// unchanged here, without a round trip to the store.
    seen: HashSet<(u128, u64)>,
}

impl Batch<'_> {
    /// Adds a read document's versions, with the file they came from (if any), flushing to the
    /// store when the batch is full. Returns whether a flush happened (files up to now are
    /// then durably stored).
    pub async fn push(
        &mut self,
        mut outcome: ReadOutcome,
        file: Option<IngestedFile>,
    ) -> Result<bool, StoreError> {
        let known = outcome.problems.len();
        outcome.serialize();
        // A version the store cannot keep is never dropped in silence.
        let origin = file
            .as_ref()
            .map_or(self.ingestor.source.as_str(), |f| &f.file_name);
        for problem in &outcome.problems[known..] {
            tracing::warn!(message = "Version refused.", origin, error = %problem);
            self.tally.summary.rejected.push(Rejection {
                file: origin.to_owned(),
                reason: problem.clone(),
            });
        }
        for row in outcome.rows {
            let identity = row.identity();
            if self.seen.contains(&identity) {
                self.tally.summary.unchanged += 1;
                continue;
            }
            if self.seen.len() >= SEEN_MAX {
                self.seen.clear();
            }
            self.seen.insert(identity);
            self.rows.push(row);
        }
        self.files.extend(file);
        if self.rows.len() >= BATCH_VERSIONS {
            self.flush(None).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Records a rejection.
    pub fn reject(&mut self, file: impl Into<String>, reason: impl Into<String>) {
        self.tally.summary.rejected.push(Rejection {
            file: file.into(),
            reason: reason.into(),
        });
    }

    /// The summary's tally, for a source that reads records itself (Nexus).
    pub(crate) fn tally(&mut self) -> &mut Tally {
        &mut self.tally
    }

    /// Delivery reports read so far.
    pub fn bundles(&self) -> u64 {
        self.tally.summary.bundles
    }

    /// Counts a file skipped because its content was read before.
    pub fn already_read(&mut self) {
        self.tally.summary.files_already_read += 1;
    }

    /// Writes what is pending (and the cursor, if given) in one transaction.
    pub async fn flush(&mut self, cursor: Option<&str>) -> Result<(), StoreError> {
        if self.rows.is_empty() && self.files.is_empty() && cursor.is_none() {
            return Ok(());
        }
        let cursor = cursor.map(|c| (self.ingestor.source.as_str(), c));
        let put = self
            .ingestor
            .store
            .put_rows_with_files(&self.rows, cursor, &self.files)
            .await;
        if put.is_err() {
            // Nothing of it was stored: forget it, so that a retry stores it.
            self.seen.clear();
        }
        let put = put?;
        self.tally.summary.stored += put.inserted;
        self.tally.summary.unchanged += put.unchanged;
        self.rows.clear();
        self.files.clear();
        Ok(())
    }

    /// Flushes and returns the summary.
    pub async fn finish(mut self) -> Result<ImportSummary, StoreError> {
        self.flush(None).await?;
        Ok(self.tally.finish())
    }
}

impl Ingestor {
    /// An ingestor for one configured source.
    pub fn new(
        store: Store,
        key: PseudonymKey,
        time_zone: chrono_tz::Tz,
        mappings: Arc<Mappings>,
        source: impl Into<String>,
    ) -> Self {
        Self {
            store,
            key,
            time_zone,
            mappings,
            source: source.into(),
        }
    }

    /// The source name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The pseudonym key.
    pub(crate) fn key(&self) -> &PseudonymKey {
        &self.key
    }

    /// The municipality's time zone.
    pub(crate) fn time_zone(&self) -> chrono_tz::Tz {
        self.time_zone
    }

    /// The mappings.
    pub(crate) fn mappings(&self) -> &Mappings {
        &self.mappings
    }

    /// A new batch for this source.
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            ingestor: self,
            rows: Vec::new(),
            files: Vec::new(),
            tally: Tally::default(),
            seen: HashSet::new(),
        }
    }

    /// Parses one document (a delivery report, an incremental delivery or a search page).
    pub fn parse(&self, bytes: &[u8], format: Format) -> Result<Document, ReadError> {
        let ctx = ReadContext {
            key: &self.key,
            time_zone: self.time_zone,
            mappings: &self.mappings,
            source: KLGATEWAY_RECORDS,
        };
        klgateway::read(bytes, format, &ctx)
    }

    /// Reads one document into versions, counting into `batch`'s summary. `origin` names the
    /// document in problems (a file name, or "request").
    pub fn read(
        &self,
        bytes: &[u8],
        format: Format,
        origin: &str,
        batch: &mut Batch<'_>,
    ) -> ReadOutcome {
        self.outcome(self.parse(bytes, format), origin, batch)
    }

    /// [`Ingestor::read`] of a document already parsed.
    fn outcome(
        &self,
        parsed: Result<Document, ReadError>,
        origin: &str,
        batch: &mut Batch<'_>,
    ) -> ReadOutcome {
        let (out, tally) = self.counted(parsed, origin);
        batch.tally.merge(tally);
        out
    }

    /// [`Ingestor::outcome`] into a tally of its own (on a thread apart from the batch's).
    pub(crate) fn counted(
        &self,
        parsed: Result<Document, ReadError>,
        origin: &str,
    ) -> (ReadOutcome, Tally) {
        match parsed {
            Ok(document) => self.take_counted(document, origin),
            Err(e) => {
                tracing::warn!(message = "Document refused.", origin, error = %e);
                let out = ReadOutcome {
                    versions: Vec::new(),
                    rows: Vec::new(),
                    problems: vec![e.to_string()],
                    last_updated: None,
                    next: None,
                };
                (out, Tally::default())
            }
        }
    }

    /// Takes a parsed document's good reports, counting into `batch`'s summary; its bad
    /// Bundles become problems (one bad Bundle never stops the others).
    pub fn take(&self, document: Document, origin: &str, batch: &mut Batch<'_>) -> ReadOutcome {
        let (out, tally) = self.take_counted(document, origin);
        batch.tally.merge(tally);
        out
    }

    /// [`Ingestor::take`] into a tally of its own (on a thread apart from the batch's).
    pub(crate) fn take_counted(&self, document: Document, origin: &str) -> (ReadOutcome, Tally) {
        let mut tally = Tally::default();
        let mut out = ReadOutcome {
            versions: Vec::new(),
            rows: Vec::new(),
            problems: Vec::new(),
            last_updated: None,
            next: document.next,
        };
        for report in document.reports {
            match report {
                Ok(r) => {
                    tally.summary.bundles += 1;
                    tally.add_counts(&r.counts);
                    tally.add_unknown(&r.unknown_codes);
                    for v in &r.versions {
                        if !tally.citizens.contains(v.record.citizen()) {
                            tally.citizens.insert(v.record.citizen().clone());
                        }
                    }
                    out.last_updated = out.last_updated.max(Some(r.last_updated));
                    out.versions.extend(r.versions);
                }
                Err(e) => {
                    tracing::warn!(message = "Bundle refused.", origin, error = %e);
                    out.problems.push(e.to_string());
                }
            }
        }
        (out, tally)
    }

    /// Counts a tally taken apart ([`Ingestor::take_counted`]) into `batch`.
    pub(crate) fn count(&self, batch: &mut Batch<'_>, tally: Tally) {
        batch.tally.merge(tally);
    }
}

impl BundleSink for Ingestor {
    /// A pushed document is stored whole before the answer: its good Bundles if any are bad
    /// too would leave the sender unsure what landed, so a document with any bad Bundle is
    /// refused whole and nothing of it is stored.
    async fn accept(&self, body: bytes::Bytes, format: Format) -> Result<Accepted, Refusal> {
        let mut batch = self.batch();
        let outcome = self.read(&body, format, "request", &mut batch);
        if !outcome.problems.is_empty() {
            return Err(Refusal::Invalid {
                issues: outcome.problems,
            });
        }
        let bundles = batch.tally.summary.bundles;
        batch
            .push(outcome, None)
            .await
            .map_err(|e| Refusal::Unavailable {
                reason: e.to_string(),
            })?;
        let summary = batch.finish().await.map_err(|e| Refusal::Unavailable {
            reason: e.to_string(),
        })?;
        Ok(Accepted {
            bundles,
            stored: summary.stored,
            unchanged: summary.unchanged,
        })
    }
}
