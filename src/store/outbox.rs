//! The outbox of vouchers, and the record of the tariff decisions written.

use super::BeginWrite;
use super::error::db;
use super::{Pool, Store, StoreError, codec};
use crate::sinks::finance::{Voucher, VoucherNumber, VoucherState};
use chrono::Utc;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// A voucher in the outbox with its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxVoucher {
    /// The voucher.
    pub voucher: Voucher,
    /// Where it is.
    pub state: VoucherState,
    /// The finance system's message (a rejection's reason), if any.
    pub message: Option<String>,
    /// The file it was last sent in, if any.
    pub file_name: Option<String>,
    /// When its state last changed (for a `sent` voucher: when it was last sent).
    pub updated_at: chrono::DateTime<Utc>,
}

const INSERT_VOUCHER: &str = "INSERT INTO vouchers (number, year, seq, team, track, month, amount, \
     state, message, file_name, payload, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', NULL, NULL, $8, $9, $9)";
/// A transaction-scoped PostgreSQL advisory lock held by whoever creates vouchers.
const LOCK_VOUCHERS_PG: &str = "SELECT pg_advisory_xact_lock(7300431)";
const SELECT_POSTED: &str = "SELECT team, track, month, amount FROM vouchers";
const MAX_SEQ: &str = "SELECT COALESCE(MAX(seq), 0) FROM vouchers WHERE year = $1";
const SELECT_VOUCHERS: &str =
    "SELECT payload, state, message, file_name, updated_at FROM vouchers ORDER BY year, seq";
const UPDATE_STATE: &str = "UPDATE vouchers SET state = $2, message = COALESCE($3, message), \
     file_name = COALESCE($4, file_name), updated_at = $5 WHERE number = $1";
const SELECT_DECISION: &str = "SELECT content_hash FROM decisions WHERE course_id = $1";
const UPSERT_DECISION: &str = "INSERT INTO decisions (course_id, content_hash, written_at) \
     VALUES ($1, $2, $3) ON CONFLICT (course_id) DO UPDATE SET content_hash = $2, written_at = $3";

/// What was already posted per (team, track, `YYYY-MM`), every voucher whatever its state.
pub type PostedTotals = BTreeMap<(String, String, String), Decimal>;

fn add_posted(
    out: &mut PostedTotals,
    rows: Vec<(String, String, String, String)>,
) -> Result<(), StoreError> {
    for (team, track, month, amount) in rows {
        let amount: Decimal = amount.parse().map_err(|_| StoreError::Corrupt {
            what: "voucher amount",
            row: format!("{team}/{track}/{month}"),
            reason: "not a decimal".into(),
        })?;
        *out.entry((team, track, month)).or_default() += amount;
    }
    Ok(())
}

impl Store {
    /// Creates the night's vouchers in one transaction: `build` gets the first free sequence
    /// number of `year` and returns the vouchers numbered from it, which are stored as pending
    /// before anything is sent. Returns them.
    pub async fn create_vouchers<E>(
        &self,
        year: i32,
        build: impl FnOnce(u32) -> Result<Vec<Voucher>, E>,
    ) -> Result<Result<Vec<Voucher>, E>, StoreError> {
        self.create_vouchers_explained(year, |first, _| build(first), |_| None)
            .await
    }

    /// [`Store::create_vouchers`], storing with each voucher its basis (`basis`: JSON of what
    /// its amount is made of, for `explain --voucher`) in the same transaction. `build` also
    /// gets the posted totals read inside the transaction (which holds the write lock on
    /// SQLite, and serialises on the voucher numbers on PostgreSQL), so vouchers are built
    /// against what is posted now, never against a total another process has since covered.
    pub async fn create_vouchers_explained<E>(
        &self,
        year: i32,
        build: impl FnOnce(u32, &PostedTotals) -> Result<Vec<Voucher>, E>,
        basis: impl Fn(&Voucher) -> Option<String>,
    ) -> Result<Result<Vec<Voucher>, E>, StoreError> {
        const OP: &str = "storing new vouchers";
        let now = codec::instant_text("created_at", Utc::now())?;
        let backend = self.backend();
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            let (max,): (i64,) = sqlx::query_as(MAX_SEQ)
                .bind(i64::from(year))
                .fetch_one(&mut *tx)
                .await
                .map_err(db(OP))?;
            let first = u32::try_from(max + 1).map_err(|_| StoreError::Invalid {
                what: "voucher sequence",
                reason: format!("{max} is out of range"),
            })?;
            if backend == super::Backend::Postgres {
                // One voucher-maker at a time: a second waits here, then reads what the
                // first committed.
                sqlx::query(LOCK_VOUCHERS_PG)
                    .execute(&mut *tx)
                    .await
                    .map_err(db(OP))?;
            }
            let rows: Vec<(String, String, String, String)> = sqlx::query_as(SELECT_POSTED)
                .fetch_all(&mut *tx)
                .await
                .map_err(db(OP))?;
            let mut posted = PostedTotals::new();
            add_posted(&mut posted, rows)?;
            let vouchers = match build(first, &posted) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            for (i, v) in vouchers.iter().enumerate() {
                let payload = serde_json::to_string(v).map_err(|e| StoreError::Invalid {
                    what: "voucher",
                    reason: e.to_string(),
                })?;
                sqlx::query(INSERT_VOUCHER)
                    .bind(v.number.0.as_str())
                    .bind(i64::from(year))
                    .bind(i64::from(first) + i as i64)
                    .bind(v.team.as_str())
                    .bind(v.track.as_str())
                    .bind(v.month.to_string())
                    .bind(v.amount.to_string())
                    .bind(payload)
                    .bind(now.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db(OP))?;
                if let Some(b) = basis(v) {
                    sqlx::query(super::ledger::INSERT_VOUCHER_BASIS)
                        .bind(v.number.0.as_str())
                        .bind(b)
                        .execute(&mut *tx)
                        .await
                        .map_err(db(OP))?;
                }
            }
            tx.commit().await.map_err(db(OP))?;
            Ok(Ok(vouchers))
        })
    }

    /// Every voucher in the outbox, oldest first.
    pub async fn vouchers(&self) -> Result<Vec<OutboxVoucher>, StoreError> {
        let rows = with_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String, Option<String>, Option<String>, String)>(
                SELECT_VOUCHERS,
            )
            .fetch_all(pool)
            .await
        })
        .map_err(db("reading the outbox"))?;
        rows.into_iter()
            .map(|(payload, state, message, file_name, updated_at)| {
                let voucher: Voucher =
                    serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt {
                        what: "voucher",
                        row: "vouchers".into(),
                        reason: e.to_string(),
                    })?;
                let state = VoucherState::parse(&state).ok_or_else(|| StoreError::Corrupt {
                    what: "voucher state",
                    row: voucher.number.to_string(),
                    reason: "unknown state".into(),
                })?;
                let updated_at =
                    codec::parse_instant(&updated_at).map_err(|reason| StoreError::Corrupt {
                        what: "voucher updated_at",
                        row: voucher.number.to_string(),
                        reason,
                    })?;
                Ok(OutboxVoucher {
                    voucher,
                    state,
                    message,
                    file_name,
                    updated_at,
                })
            })
            .collect()
    }

    /// Moves a voucher to `state`, keeping its message and file unless new ones are given.
    pub async fn set_voucher_state(
        &self,
        number: &VoucherNumber,
        state: VoucherState,
        message: Option<&str>,
        file_name: Option<&str>,
    ) -> Result<(), StoreError> {
        let now = codec::instant_text("updated_at", Utc::now())?;
        with_pool!(self, |pool| {
            sqlx::query(UPDATE_STATE)
                .bind(number.0.as_str())
                .bind(state.as_str())
                .bind(message)
                .bind(file_name)
                .bind(now.as_str())
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(db("updating a voucher's state"))?;
        Ok(())
    }

    /// What was already posted per (team, track, month): the sum of every voucher in the
    /// outbox whatever its state (a rejected voucher is reported, never re-sent as new).
    pub async fn posted_totals(
        &self,
    ) -> Result<BTreeMap<(String, String, String), Decimal>, StoreError> {
        let mut out: BTreeMap<(String, String, String), Decimal> = BTreeMap::new();
        for v in self.vouchers().await? {
            *out.entry((
                v.voucher.team.clone(),
                v.voucher.track.as_str().to_owned(),
                v.voucher.month.to_string(),
            ))
            .or_default() += v.voucher.amount;
        }
        Ok(out)
    }

    /// The hash of the last ChargeItem written for a course.
    pub async fn decision_hash(&self, course_id: &str) -> Result<Option<String>, StoreError> {
        let row = with_pool!(self, |pool| {
            sqlx::query_as::<_, (String,)>(SELECT_DECISION)
                .bind(course_id)
                .fetch_optional(pool)
                .await
        })
        .map_err(db("reading a decision"))?;
        Ok(row.map(|(h,)| h))
    }

    /// Records that the ChargeItem of a course with this content hash was written.
    pub async fn record_decision(&self, course_id: &str, hash: &str) -> Result<(), StoreError> {
        let now = codec::instant_text("written_at", Utc::now())?;
        with_pool!(self, |pool| {
            sqlx::query(UPSERT_DECISION)
                .bind(course_id)
                .bind(hash)
                .bind(now.as_str())
                .execute(pool)
                .await
                .map(|_| ())
        })
        .map_err(db("recording a decision"))?;
        Ok(())
    }
}
