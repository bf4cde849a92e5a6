//! The finance system's actuals (costs per cost centre and month) read from the actuals
//! folder, and the stamp the cockpit's cache compares.

use super::BeginWrite;
use super::error::db;
use super::{Pool, Store, StoreError, codec};
use crate::model::figures::Actual;
use crate::sources::actuals::{ActualsFile, parse_month};
use chrono::Utc;
use rust_decimal::Decimal;

const INSERT_FILE: &str = "INSERT INTO actuals_files (content_hash, file_name, received_at) \
     VALUES ($1, $2, $3) ON CONFLICT (content_hash) DO NOTHING";
const SELECT_FILE: &str = "SELECT id FROM actuals_files WHERE content_hash = $1";
const INSERT_ROW: &str =
    "INSERT INTO actuals (file_id, cost_centre, month, amount) VALUES ($1, $2, $3, $4)";
const SELECT_IN_FORCE: &str = "SELECT a.cost_centre, a.month, a.amount FROM actuals a \
     JOIN (SELECT cost_centre, month, MAX(file_id) AS file_id FROM actuals \
     GROUP BY cost_centre, month) m \
     ON a.cost_centre = m.cost_centre AND a.month = m.month AND a.file_id = m.file_id \
     ORDER BY a.cost_centre, a.month";
const SELECT_STAMP: &str = "SELECT (SELECT COALESCE(MAX(id), 0) FROM record_versions), \
     (SELECT COALESCE(MAX(id), 0) FROM course_ledger), \
     (SELECT COALESCE(MAX(id), 0) FROM actuals_files)";

impl Store {
    /// Stores an actuals file and its rows in one transaction, unless a file of the same
    /// content is stored already. Returns whether it was stored now.
    pub async fn put_actuals_file(&self, file: &ActualsFile) -> Result<bool, StoreError> {
        const OP: &str = "storing a finance actuals file";
        let at = codec::instant_text("received_at", Utc::now())?;
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            let new = sqlx::query(INSERT_FILE)
                .bind(file.content_hash.as_str())
                .bind(file.name.as_str())
                .bind(at.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db(OP))?
                .rows_affected();
            if new == 0 {
                return Ok(false);
            }
            let id: i64 = sqlx::query_scalar(SELECT_FILE)
                .bind(file.content_hash.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(db(OP))?;
            for a in &file.actuals {
                sqlx::query(INSERT_ROW)
                    .bind(id)
                    .bind(a.cost_centre.as_str())
                    .bind(a.month.to_string())
                    .bind(a.amount.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db(OP))?;
            }
            tx.commit().await.map_err(db(OP))?;
            Ok(true)
        })
    }

    /// The costs in force per cost centre and month: of every stored file holding the pair,
    /// the one stored last.
    pub async fn actuals(&self) -> Result<Vec<Actual>, StoreError> {
        let rows = with_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String, String)>(SELECT_IN_FORCE)
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading the finance actuals"))?;
        rows.into_iter()
            .map(|(cost_centre, month, amount)| {
                let corrupt = |reason: &str| StoreError::Corrupt {
                    what: "finance actuals row",
                    row: format!("{cost_centre}/{month}"),
                    reason: reason.to_owned(),
                };
                Ok(Actual {
                    month: parse_month(&month).ok_or_else(|| corrupt("not a month"))?,
                    amount: Decimal::from_str_exact(&amount)
                        .map_err(|_| corrupt("not an amount"))?,
                    cost_centre: cost_centre.clone(),
                })
            })
            .collect()
    }

    /// What the figures are computed from, as three growing numbers: the last record
    /// version, ledger row and actuals file stored. Equal stamps: nothing the figures read
    /// has changed (rows are only ever added to these tables).
    pub async fn data_stamp(&self) -> Result<[i64; 3], StoreError> {
        let (a, b, c) = with_pool!(self, |pool| {
            sqlx::query_as::<_, (i64, i64, i64)>(SELECT_STAMP)
                .fetch_one(pool)
                .await
        })
        .map_err(db("reading the data stamp"))?;
        Ok([a, b, c])
    }
}
