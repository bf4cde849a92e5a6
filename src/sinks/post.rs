//! The nightly posting: vouchers from the model's deltas through the outbox to the finance
//! system, replies read back, and tariff decisions written to the care system.

use super::decisions::{DecisionsClient, DecisionsConfig};
use super::finance::transport::{Delivery, Transport, TransportConfig, TransportError};
use super::finance::{Voucher, VoucherNumber, VoucherState, build, opus, reply};
use crate::domain::{Pseudonym, Track};
use crate::mapping::Mappings;
use crate::model::{Course, IncomeReport, PostingDelta, YearMonth};
use crate::store::Store;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The voucher file format for folder and SFTP delivery.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FileFormat {
    /// KMD Opus `FinancePostingRequest` XML.
    Opus(opus::OpusSettings),
    /// CSV (Prisme and others): no reply files; vouchers stay `sent`.
    Csv(super::finance::csv::CsvSettings),
}

/// `[finance]`: where and how vouchers go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinanceSettings {
    /// The file format (`[finance.format.opus]` or `[finance.format.csv]`); HTTP always sends JSON.
    pub format: FileFormat,
    /// The transport (`[finance.transport]` with `kind = "folder" | "sftp" | "http"`).
    pub transport: TransportConfig,
    /// A voucher sent without a reply for this many hours is sent again, with the same
    /// number and content (the finance system's duplicate check makes that harmless).
    /// Default 24; never for CSV, whose receivers send no replies.
    #[serde(default = "default_resend_after_hours")]
    pub resend_after_hours: u32,
    /// The wordings by which the finance system refuses a voucher number as already received
    /// (an `E` reply whose text contains one, case-insensitively, counts as accepted). Default:
    /// [`reply::DEFAULT_DUPLICATE_PATTERNS`] (Danish, then English).
    #[serde(default = "default_duplicate_replies")]
    pub duplicate_replies: Vec<String>,
}

fn default_duplicate_replies() -> Vec<String> {
    reply::DEFAULT_DUPLICATE_PATTERNS
        .iter()
        .map(|p| (*p).to_owned())
        .collect()
}

fn default_resend_after_hours() -> u32 {
    24
}

/// What a night's posting did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PostSummary {
    /// The as-of date.
    pub as_of: Option<NaiveDate>,
    /// Vouchers created this run (stored before sending).
    pub vouchers_created: u64,
    /// Vouchers delivered this run.
    pub vouchers_sent: u64,
    /// Vouchers the finance system accepted this run (or had already received).
    pub vouchers_accepted: u64,
    /// Vouchers the finance system rejected this run, with its message.
    pub vouchers_rejected: Vec<Rejected>,
    /// Vouchers still waiting to be delivered (the finance side was down).
    pub vouchers_pending: u64,
    /// Vouchers sent again this run: no reply came within `resend_after_hours`.
    pub vouchers_resent: u64,
    /// Vouchers sent and still without a reply.
    pub vouchers_unanswered: u64,
    /// Delivery errors (the vouchers stay pending and go next run).
    pub delivery_errors: Vec<String>,
    /// ChargeItems written (created or updated).
    pub decisions_written: u64,
    /// ChargeItems unchanged since the last run (not written again).
    pub decisions_unchanged: u64,
    /// Courses whose citizen has no Patient id in the care system (no decision written).
    pub decisions_without_patient: u64,
    /// Decision errors.
    pub decision_errors: Vec<String>,
    /// The vouchers of a dry run (nothing stored or sent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run_vouchers: Vec<Voucher>,
    /// The ChargeItems of a dry run (nothing written).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dry_run_decisions: Vec<serde_json::Value>,
}

/// The vouchers the deltas would make, numbered after those in the outbox; nothing stored.
pub async fn dry_run_vouchers(
    store: &Store,
    deltas: &[PostingDelta],
    mappings: &Mappings,
    as_of: NaiveDate,
) -> anyhow::Result<Vec<Voucher>> {
    use chrono::Datelike;
    let year = format!("{:02}", as_of.year().rem_euclid(100));
    let next = store
        .vouchers()
        .await?
        .iter()
        .filter(|v| v.voucher.number.0.get(2..4) == Some(year.as_str()))
        .count() as u32
        + 1;
    Ok(build::build_vouchers(deltas, mappings, as_of, next)?)
}

/// The ChargeItems the courses would make (those of citizens with a Patient id); nothing written.
pub fn dry_run_decisions(
    courses: &[Course],
    patients: &HashMap<Pseudonym, String>,
    cfg: &DecisionsConfig,
) -> Vec<serde_json::Value> {
    courses
        .iter()
        .filter_map(|c| {
            Some(super::decisions::charge_item(
                c,
                patients.get(&c.citizen)?,
                cfg,
            ))
        })
        .collect()
}

/// A rejected voucher.
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// Its number.
    pub number: String,
    /// The finance system's message.
    pub message: String,
}

/// How many later seconds a file name may move to when the names before are taken.
const MAX_NAME_TRIES: usize = 120;

/// The file (name and content) of a batch of vouchers. HTTP: everything in the body derives
/// from the stored vouchers (no clock), so a re-send under the same `Idempotency-Key` is
/// byte-identical. Files: named by `at` (the Opus form has the second in it).
fn render(
    finance: &FinanceSettings,
    pending: &[Voucher],
    at: chrono::NaiveDateTime,
) -> anyhow::Result<(String, Vec<u8>)> {
    Ok(match (&finance.transport, &finance.format) {
        (TransportConfig::Http(_), _) => {
            let first = pending.first().map_or("", |v| v.number.0.as_str());
            let last = pending.last().map_or("", |v| v.number.0.as_str());
            let name = format!("vouchers-{first}-{last}.json");
            let body = serde_json::to_vec(&serde_json::json!({
                "file_name": name,
                "vouchers": pending,
            }))?;
            (name, body)
        }
        (_, FileFormat::Opus(s)) => {
            let name = opus::file_name(s, at);
            let content = opus::write_request(s, &name, at, pending);
            (name, content)
        }
        (_, FileFormat::Csv(s)) => {
            let name = super::finance::csv::file_name(at);
            (name, super::finance::csv::write_csv(s, pending)?)
        }
    })
}

/// `deltas` against `posted` (read now): each key's month-to-date income minus what is posted
/// now; keys now in balance are left out.
fn rebase(deltas: &[PostingDelta], posted: &crate::store::PostedTotals) -> Vec<PostingDelta> {
    deltas
        .iter()
        .filter_map(|d| {
            let key = (
                d.key.payee.as_str().to_owned(),
                d.key.track.as_str().to_owned(),
                d.key.month.to_string(),
            );
            let already = posted.get(&key).copied().unwrap_or_default();
            let amount = d.month_to_date - already;
            (!amount.is_zero()).then(|| PostingDelta {
                already_posted: already,
                amount,
                ..d.clone()
            })
        })
        .collect()
}

fn idempotency_key(vouchers: &[Voucher]) -> String {
    let mut h = Sha256::new();
    for v in vouchers {
        h.update(v.number.0.as_bytes());
        h.update(b"\n");
    }
    hex::encode(&h.finalize()[..16])
}

/// Builds and stores the night's vouchers in the outbox, each with its basis from `report`
/// (the income the deltas were computed from), then sends every pending one (an HTTP finance
/// system answers inline; that answer is applied).
#[allow(clippy::too_many_arguments)]
pub async fn send_vouchers(
    store: &Store,
    mappings: &Mappings,
    finance: &FinanceSettings,
    deltas: &[PostingDelta],
    report: &IncomeReport,
    as_of: NaiveDate,
    now: chrono::NaiveDateTime,
    summary: &mut PostSummary,
) -> anyhow::Result<()> {
    use chrono::Datelike;
    let by_key: HashMap<(String, Track, YearMonth), &PostingDelta> = deltas
        .iter()
        .map(|d| {
            (
                (d.key.payee.as_str().to_owned(), d.key.track, d.key.month),
                d,
            )
        })
        .collect();
    // A team removed from the mappings keeps its last cost centre for its corrections.
    let former: HashMap<String, crate::domain::CostCentre> = store
        .vouchers()
        .await?
        .into_iter()
        .filter_map(|v| {
            let cc = v.voucher.lines.get(1)?.cost_centre.clone();
            Some((v.voucher.team, cc))
        })
        .collect();
    // The deltas again against what is posted inside the creating transaction: what another
    // process posted since they were computed is not posted a second time.
    let rebased: std::sync::Mutex<HashMap<(String, Track, YearMonth), PostingDelta>> =
        Default::default();
    let created = store
        .create_vouchers_explained(
            as_of.year(),
            |first, posted_now| {
                let fresh = rebase(deltas, posted_now);
                if fresh.len() != deltas.len() || fresh.iter().zip(deltas).any(|(a, b)| a != b) {
                    tracing::warn!(
                        message = "Another process posted since the deltas were computed: posting only what is still missing.",
                        computed = deltas.len(),
                        still_missing = fresh.len()
                    );
                }
                let vouchers =
                    build::build_vouchers_with(&fresh, mappings, as_of, first, &former);
                *rebased.lock().unwrap_or_else(|e| e.into_inner()) = fresh
                    .into_iter()
                    .map(|d| ((d.key.payee.as_str().to_owned(), d.key.track, d.key.month), d))
                    .collect();
                vouchers
            },
            |v| {
                let fresh = rebased.lock().unwrap_or_else(|e| e.into_inner());
                let d = fresh
                    .get(&(v.team.clone(), v.track, v.month))
                    .or_else(|| by_key.get(&(v.team.clone(), v.track, v.month)).copied())?;
                serde_json::to_string(&crate::pipeline::basis_of(report, d, as_of)).ok()
            },
        )
        .await??;
    summary.vouchers_created = created.len() as u64;
    let transport = Transport::new(&finance.transport)?;
    let outbox = store.vouchers().await?;
    // Names already given to files: a name is never used twice (the finance system may still
    // hold the file, or remember the name).
    let used: std::collections::HashSet<String> =
        outbox.iter().filter_map(|v| v.file_name.clone()).collect();
    // Pending vouchers, and sent ones whose reply is overdue (lost, or never written): the
    // same number and content again.
    let replies_expected = !matches!(finance.format, FileFormat::Csv(_))
        || matches!(finance.transport, TransportConfig::Http(_));
    let overdue = chrono::Duration::hours(i64::from(finance.resend_after_hours));
    let now_utc = chrono::Utc::now();
    let mut resent = 0u64;
    let pending: Vec<Voucher> = outbox
        .into_iter()
        .filter(|v| {
            let stale = replies_expected
                && v.state == VoucherState::Sent
                && now_utc - v.updated_at >= overdue;
            if stale {
                resent += 1;
                tracing::warn!(
                    message = "No reply for a sent voucher: sending it again.",
                    voucher = %v.voucher.number,
                    sent_at = %v.updated_at
                );
            }
            v.state == VoucherState::Pending || stale
        })
        .map(|v| v.voucher)
        .collect();
    if !pending.is_empty() {
        let key = idempotency_key(&pending);
        let mut at = now;
        let mut outcome = None;
        for _ in 0..MAX_NAME_TRIES {
            let (name, content) = render(finance, &pending, at)?;
            let http = matches!(finance.transport, TransportConfig::Http(_));
            if !http && used.contains(&name) {
                at += chrono::Duration::seconds(1);
                continue;
            }
            match transport.deliver(&name, &content, &key).await {
                // A file of this name is waiting to be collected: take the next second's name.
                Err(TransportError::Exists(_)) if !http => {
                    at += chrono::Duration::seconds(1);
                }
                result => {
                    outcome = Some((name, result));
                    break;
                }
            }
        }
        let (name, result) = outcome.ok_or_else(|| {
            anyhow::anyhow!(
                "no free voucher file name within {MAX_NAME_TRIES} seconds of {now}: files are not being collected"
            )
        })?;
        match result {
            Ok(delivery) => {
                for v in &pending {
                    store
                        .set_voucher_state(&v.number, VoucherState::Sent, None, Some(&name))
                        .await?;
                }
                summary.vouchers_sent = pending.len() as u64;
                summary.vouchers_resent = resent;
                if let Delivery::Answered(body) = delivery {
                    apply_reply(store, &body, &finance.duplicate_replies, summary).await?;
                }
            }
            Err(e) => {
                tracing::warn!(message = "Voucher delivery failed; the vouchers stay pending.", error = %e);
                summary.delivery_errors.push(e.to_string());
            }
        }
    }
    summary.vouchers_pending = pending_count(store).await?;
    summary.vouchers_unanswered = unanswered_count(store).await?;
    Ok(())
}

async fn pending_count(store: &Store) -> anyhow::Result<u64> {
    Ok(store
        .vouchers()
        .await?
        .iter()
        .filter(|v| v.state == VoucherState::Pending)
        .count() as u64)
}

async fn unanswered_count(store: &Store) -> anyhow::Result<u64> {
    Ok(store
        .vouchers()
        .await?
        .iter()
        .filter(|v| v.state == VoucherState::Sent)
        .count() as u64)
}

/// Reads the finance system's reply files (folder and SFTP transports; HTTP answers inline),
/// applies them to the outbox and archives them.
pub async fn read_replies(
    store: &Store,
    finance: &FinanceSettings,
    summary: &mut PostSummary,
) -> anyhow::Result<()> {
    let transport = Transport::new(&finance.transport)?;
    if !matches!(finance.transport, TransportConfig::Http(_)) {
        match transport.fetch_replies().await {
            Ok(replies) => {
                for r in replies {
                    apply_reply(store, &r.content, &finance.duplicate_replies, summary).await?;
                    transport.archive_reply(&r.name).await?;
                }
            }
            Err(e) => summary
                .delivery_errors
                .push(format!("reading replies: {e}")),
        }
    }
    summary.vouchers_pending = pending_count(store).await?;
    summary.vouchers_unanswered = unanswered_count(store).await?;
    Ok(())
}

async fn apply_reply(
    store: &Store,
    body: &[u8],
    duplicates: &[String],
    summary: &mut PostSummary,
) -> anyhow::Result<()> {
    let known: HashMap<VoucherNumber, VoucherState> = store
        .vouchers()
        .await?
        .into_iter()
        .map(|v| (v.voucher.number, v.state))
        .collect();
    for (number, outcome) in reply::read_reply_with(body, duplicates)? {
        let Some(state) = known.get(&number) else {
            tracing::warn!(message = "A reply names an unknown voucher.", voucher = %number);
            continue;
        };
        if matches!(state, VoucherState::Accepted | VoucherState::Rejected) {
            continue;
        }
        match outcome {
            reply::ReplyOutcome::Accepted | reply::ReplyOutcome::AlreadyReceived => {
                store
                    .set_voucher_state(&number, VoucherState::Accepted, None, None)
                    .await?;
                summary.vouchers_accepted += 1;
            }
            reply::ReplyOutcome::Rejected(message) => {
                tracing::warn!(message = "Voucher rejected.", voucher = %number, reason = %message);
                store
                    .set_voucher_state(&number, VoucherState::Rejected, Some(&message), None)
                    .await?;
                summary.vouchers_rejected.push(Rejected {
                    number: number.to_string(),
                    message,
                });
            }
        }
    }
    Ok(())
}

/// Writes the ChargeItem of every course whose decision changed since it was last written.
pub async fn write_decisions(
    store: &Store,
    cfg: &DecisionsConfig,
    courses: &[Course],
    patients: &HashMap<Pseudonym, String>,
    summary: &mut PostSummary,
) -> anyhow::Result<()> {
    let client = DecisionsClient::new(cfg)?;
    for course in courses {
        let Some(patient) = patients.get(&course.citizen) else {
            summary.decisions_without_patient += 1;
            continue;
        };
        let doc = super::decisions::ChargeItemDoc::new(course, patient, cfg);
        let hash = hex::encode(Sha256::digest(&doc.body));
        if store.decision_hash(&course.id.0).await?.as_deref() == Some(hash.as_str()) {
            summary.decisions_unchanged += 1;
            continue;
        }
        match client.upsert(&doc).await {
            Ok(_) => {
                store.record_decision(&course.id.0, &hash).await?;
                summary.decisions_written += 1;
            }
            Err(e) => summary
                .decision_errors
                .push(format!("course {}: {e}", course.id)),
        }
    }
    Ok(())
}
