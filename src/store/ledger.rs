//! The course ledger: recorded decisions and their supersessions, appended and never changed;
//! and the basis of each voucher (what its amount is made of), written with the voucher.

use super::BeginWrite;
use super::error::db;
use super::{Pool, Store, StoreError, codec};
use crate::model::{DailyTariff, LedgerEntry};
use chrono::{NaiveDate, Utc};

const INSERT_ENTRY: &str = "INSERT INTO course_ledger (course_id, revision, citizen, track, \
     start_date, change, kind, need_group, tariff_table, tariff_amount, end_date, payload, \
     recorded_on, recorded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
     ON CONFLICT (course_id, revision) DO NOTHING";
const SELECT_LATEST: &str = "SELECT l.payload FROM course_ledger l \
     JOIN (SELECT course_id, MAX(revision) AS revision FROM course_ledger GROUP BY course_id) m \
     ON l.course_id = m.course_id AND l.revision = m.revision \
     ORDER BY l.citizen, l.track, l.start_date";
const SELECT_COURSE: &str = "SELECT payload, recorded_on, recorded_at FROM course_ledger \
     WHERE course_id = $1 ORDER BY revision";
const SELECT_CITIZEN: &str = "SELECT payload, recorded_on, recorded_at FROM course_ledger \
     WHERE citizen = $1 ORDER BY track, start_date, revision";
const COUNT_ROWS: &str = "SELECT COUNT(*) FROM course_ledger";
const INSERT_BASIS: &str = "INSERT INTO voucher_basis (voucher, payload) VALUES ($1, $2) \
     ON CONFLICT (voucher) DO NOTHING";
const SELECT_BASIS: &str = "SELECT payload FROM voucher_basis WHERE voucher = $1";

/// A ledger row as stored: the entry, and when it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The entry.
    pub entry: LedgerEntry,
    /// The as-of date of the run that recorded it.
    pub recorded_on: NaiveDate,
    /// When it was recorded.
    pub recorded_at: chrono::DateTime<Utc>,
}

fn decode_entry(payload: &str) -> Result<LedgerEntry, StoreError> {
    serde_json::from_str(payload).map_err(|e| StoreError::Corrupt {
        what: "course ledger entry",
        row: "course_ledger".into(),
        reason: codec::json_problem(&e),
    })
}

fn decode_row((payload, on, at): (String, String, String)) -> Result<LedgerRow, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "course ledger entry",
        row: "course_ledger".into(),
        reason,
    };
    Ok(LedgerRow {
        entry: decode_entry(&payload)?,
        recorded_on: on
            .parse()
            .map_err(|_| corrupt("recorded_on is not a date".into()))?,
        recorded_at: codec::parse_instant(&at).map_err(corrupt)?,
    })
}

impl Store {
    /// Appends ledger rows in one transaction. A row whose course and revision are already
    /// recorded (another process recorded it first) is skipped; returns how many were stored.
    pub async fn append_ledger(
        &self,
        entries: &[LedgerEntry],
        recorded_on: NaiveDate,
    ) -> Result<u64, StoreError> {
        if entries.is_empty() {
            return Ok(0);
        }
        const OP: &str = "recording course decisions";
        let at = codec::instant_text("recorded_at", Utc::now())?;
        let on = codec::date_text(recorded_on);
        let mut rows = Vec::with_capacity(entries.len());
        for e in entries {
            let payload = serde_json::to_string(e).map_err(|err| StoreError::Invalid {
                what: "course ledger entry",
                reason: codec::json_problem(&err),
            })?;
            let d = e.decision.as_ref();
            rows.push((
                e,
                payload,
                d.map(|d| d.kind.as_str()),
                d.and_then(|d| d.group).map(i64::from),
                d.map(|d| d.table.to_string()),
                d.map(|d| match d.tariff {
                    DailyTariff::Locked { amount } => amount.to_string(),
                    DailyTariff::Individual { hourly_rate } => format!("{hourly_rate}/h"),
                }),
                e.end.map(codec::date_text),
            ));
        }
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            let mut stored = 0;
            for (e, payload, kind, group, table, tariff, end) in &rows {
                stored += sqlx::query(INSERT_ENTRY)
                    .bind(e.course_id.0.as_str())
                    .bind(i64::from(e.revision))
                    .bind(e.citizen.as_str())
                    .bind(e.track.as_str())
                    .bind(codec::date_text(e.start))
                    .bind(e.change.as_str())
                    .bind(*kind)
                    .bind(*group)
                    .bind(table.as_deref())
                    .bind(tariff.as_deref())
                    .bind(end.as_deref())
                    .bind(payload.as_str())
                    .bind(on.as_str())
                    .bind(at.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db(OP))?
                    .rows_affected();
            }
            tx.commit().await.map_err(db(OP))?;
            Ok(stored)
        })
    }

    /// The row in force of every recorded course (its latest revision, cancelled ones too),
    /// by citizen, track and start.
    pub async fn ledger_latest(&self) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = with_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(SELECT_LATEST)
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading the course ledger"))?;
        rows.iter().map(|p| decode_entry(p)).collect()
    }

    /// Every row of one course, oldest revision first.
    pub async fn ledger_of_course(&self, course_id: &str) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = with_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String, String)>(SELECT_COURSE)
                .bind(course_id)
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading a course's ledger"))?;
        rows.into_iter().map(decode_row).collect()
    }

    /// Every row of one citizen's courses, by track, start and revision.
    pub async fn ledger_of_citizen(
        &self,
        citizen: &crate::domain::Pseudonym,
    ) -> Result<Vec<LedgerRow>, StoreError> {
        let rows = with_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String, String)>(SELECT_CITIZEN)
                .bind(citizen.as_str())
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading a citizen's ledger"))?;
        rows.into_iter().map(decode_row).collect()
    }

    /// How many ledger rows are recorded.
    pub async fn ledger_rows(&self) -> Result<u64, StoreError> {
        let n: i64 = with_pool!(self, |pool| {
            sqlx::query_scalar(COUNT_ROWS).fetch_one(pool).await
        })
        .map_err(db("counting the course ledger"))?;
        Ok(n as u64)
    }

    /// The basis recorded with a voucher (JSON), if any.
    pub async fn voucher_basis(&self, voucher: &str) -> Result<Option<String>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(SELECT_BASIS)
                .bind(voucher)
                .fetch_optional(pool)
                .await
        })
        .map_err(db("reading a voucher's basis"))
    }
}

/// Inserts voucher bases inside the voucher transaction.
pub(crate) const INSERT_VOUCHER_BASIS: &str = INSERT_BASIS;
