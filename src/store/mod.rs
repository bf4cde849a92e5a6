//! The store: every version of every received record, the sources' cursors and the computed
//! courses, in SQLite or PostgreSQL.
//!
//! - Every version is kept. The store never resolves versions: [`Store::versions`] returns all
//!   of a citizen's versions in receipt order and [`crate::model::resolve_history`] picks.
//! - Values are stored as portable text: instants as fixed-width RFC 3339 UTC with microseconds
//!   (`2027-01-04T10:00:00.000000Z`, so text order is time order; anything below a microsecond
//!   is truncated), dates as `YYYY-MM-DD`, money as decimal text, records and courses as JSON.
//!   The same SQL (with `$1` placeholders) runs on both backends; only the migrations differ
//!   (`migrations/sqlite/`, `migrations/postgres/`, run on connect).
//! - The store reads the clock only for the audit columns `received_at` and `updated_at`.

mod codec;
mod error;

pub use error::{Backend, StoreError};

use crate::domain::Pseudonym;
use crate::model::{Course, Versioned};
use chrono::Utc;
pub use codec::VersionRow;
use codec::{CourseRow, VersionColumns};
use error::db;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions, FromRow};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a SQLite writer waits for another writer before failing.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// A statement slower than this is logged, at `debug`.
const SLOW_STATEMENT: Duration = Duration::from_secs(1);
/// How long to wait for a PostgreSQL connection.
const POSTGRES_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Record versions per `INSERT` statement (8 parameters each; SQLite allows 32766 per
/// statement, PostgreSQL 65535).
const VERSIONS_PER_INSERT: usize = 1000;
const VERSION_INSERT_COLUMNS: &str = "kind, source, citizen, version_at, withdrawn, content_hash, \
     payload, received_at";
const VERSION_INSERT_PARAMS: usize = 8;

/// Citizens per upsert of `citizen_versions` (2 parameters each).
const CITIZENS_PER_UPSERT: usize = 1000;

/// Courses per `INSERT` statement (14 parameters each).
const COURSES_PER_INSERT: usize = 500;
const COURSE_INSERT_COLUMNS: &str = "id, citizen, track, kind, need_score, need_group, \
     tariff_year, tariff_type, tariff_amount, start_date, planned_end, end_date, end_reason, \
     payload";
const COURSE_INSERT_PARAMS: usize = 14;

const SELECT_VERSIONS_OF_CITIZEN: &str = "SELECT id, kind, citizen, source, version_at, \
     withdrawn, payload FROM record_versions WHERE citizen = $1 ORDER BY id";
const SELECT_ALL_VERSIONS: &str = "SELECT id, kind, citizen, source, version_at, withdrawn, \
     payload FROM record_versions ORDER BY citizen, id";
const SELECT_CITIZENS: &str = "SELECT DISTINCT citizen FROM record_versions ORDER BY citizen";
const SELECT_CURSOR: &str = "SELECT cursor FROM source_cursors WHERE source = $1";
const UPSERT_CURSOR: &str = "INSERT INTO source_cursors (source, cursor, updated_at) \
     VALUES ($1, $2, $3) ON CONFLICT (source) DO UPDATE \
     SET cursor = excluded.cursor, updated_at = excluded.updated_at";
const DELETE_COURSES: &str = "DELETE FROM courses";
const DELETE_COURSES_UNTIL: &str = "DELETE FROM courses WHERE start_date <= $1";
const SELECT_COURSES: &str =
    "SELECT id, payload FROM courses ORDER BY citizen, track, start_date, id";

/// A file read by a file source or `import`, recorded with what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestedFile {
    /// sha256 hex of the file's bytes.
    pub content_hash: String,
    /// The source that read it.
    pub source: String,
    /// Its name when read (for people; the hash is the identity).
    pub file_name: String,
}

const INSERT_INGESTED_FILE: &str = "INSERT INTO ingested_files (content_hash, source, file_name, received_at) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (content_hash) DO NOTHING";
const SELECT_INGESTED_FILE: &str =
    "SELECT content_hash FROM ingested_files WHERE content_hash = $1";

/// What [`Store::put_batch`] did with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PutSummary {
    /// Versions stored now.
    pub inserted: u64,
    /// Versions already stored (same kind, source, key, version instant and content), skipped.
    pub unchanged: u64,
}

#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same code against whichever pool the store has: `$pool` is bound to the concrete
/// `SqlitePool` or `PgPool`, so the body is type-checked once per backend.
macro_rules! with_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pool {
            Pool::Sqlite($pool) => $body,
            Pool::Postgres($pool) => $body,
        }
    };
}

mod actuals;
mod journal;
mod ledger;
mod outbox;
mod packed;
pub use journal::{NewRun, Outcome, RunCounts, RunRecord, StepRecord, Trigger};
pub use ledger::LedgerRow;
pub use outbox::{OutboxVoucher, PostedTotals};
pub use packed::{CitizenRange, PackedCitizen};

/// The database: SQLite or PostgreSQL. Cheap to clone (a connection pool).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// SQLite has one writer at a time: write transactions of this process queue here (and
    /// begin `IMMEDIATE`, so another process's writer is waited for under the busy timeout)
    /// instead of failing with "database is locked". Unused on PostgreSQL.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite (the write lock is taken at once,
/// waiting under the busy timeout, never upgraded half-way), a plain `BEGIN` on PostgreSQL.
trait BeginWrite {
    type Db: sqlx::Database;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Self::Db>, sqlx::Error>;
}

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
        self.begin().await
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Waits for this process's turn to write (SQLite; `None` on PostgreSQL, whose writers do
    /// not exclude each other). Held for the whole write transaction.
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.pool {
            Pool::Sqlite(_) => Some(self.writer.lock().await),
            Pool::Postgres(_) => None,
        }
    }

    /// Opens the database and brings its schema up to date.
    ///
    /// - `sqlite://PATH` (or `sqlite:PATH`): the file is created if missing; WAL journal,
    ///   foreign keys on, a busy timeout for concurrent writers.
    /// - `postgres://...` or `postgresql://...`: a server database that must exist.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        match url_scheme(url)?.as_str() {
            "sqlite" => Self::connect_sqlite(url).await,
            "postgres" | "postgresql" => Self::connect_postgres(url).await,
            other => Err(StoreError::BadUrl(format!(
                "unsupported scheme `{other}:` (expected sqlite://PATH or postgres://...)"
            ))),
        }
    }

    async fn connect_sqlite(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::Sqlite;
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("not a usable SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            // Reading every version takes seconds at municipality scale: that is expected,
            // not an operator's warning.
            .log_slow_statements(log::LevelFilter::Debug, SLOW_STATEMENT);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool_options = if in_memory {
            // One connection that lives as long as the pool, or the database would vanish.
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new().max_connections(4)
        };
        let pool = pool_options
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect { backend, source })?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { backend, source })?;
        Ok(Store {
            pool: Pool::Sqlite(pool),
            writer: Default::default(),
        })
    }

    async fn connect_postgres(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::Postgres;
        // The parse error names what is wrong, never the URL (which may hold a password).
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::BadUrl(format!("not a usable PostgreSQL URL: {e}")))?
            .log_slow_statements(log::LevelFilter::Debug, SLOW_STATEMENT);
        // One direct connection first, so an unreachable server fails at once instead of
        // after the pool's acquire timeout of retries.
        use sqlx::Connection;
        sqlx::PgConnection::connect_with(&options)
            .await
            .map_err(|source| StoreError::Connect { backend, source })?
            .close()
            .await
            .map_err(|source| StoreError::Connect { backend, source })?;
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(POSTGRES_ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect { backend, source })?;
        POSTGRES_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { backend, source })?;
        Ok(Store {
            pool: Pool::Postgres(pool),
            writer: Default::default(),
        })
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection, waiting for those in use to be returned.
    /// Closes the store. On SQLite it first moves the write-ahead log into the database file
    /// (`wal_checkpoint(TRUNCATE)`), so that the file alone holds everything stored, for a
    /// copy or a backup taken while the gateway is stopped.
    pub async fn close(&self) {
        if let Pool::Sqlite(pool) = &self.pool {
            // Best effort: a checkpoint another connection holds up is done at the next close.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await
            {
                tracing::debug!(message = "No WAL checkpoint on close.", error = %e);
            }
        }
        with_pool!(self, |pool| pool.close().await)
    }

    /// Stores a batch of versions in one transaction and returns what was new.
    ///
    /// Idempotent: a version already stored (same kind, source, key, version instant and
    /// content hash, where the hash covers the record and the withdrawn flag) is skipped and
    /// counted as unchanged, also when it repeats within the batch. Every other version is
    /// kept, older or newer than those stored. The cursor, when given, is written in the same
    /// transaction: a source's cursor advances only together with what it stored.
    pub async fn put_batch(
        &self,
        batch: &[Versioned],
        cursor: Option<(&str, &str)>,
    ) -> Result<PutSummary, StoreError> {
        self.put_batch_with_files(batch, cursor, &[]).await
    }

    /// [`Store::put_batch`], also recording the files the batch was read from (by content
    /// hash) in the same transaction, so a file is read once and a crash loses nothing.
    pub async fn put_batch_with_files(
        &self,
        batch: &[Versioned],
        cursor: Option<(&str, &str)>,
        files: &[IngestedFile],
    ) -> Result<PutSummary, StoreError> {
        let rows = batch
            .iter()
            .map(VersionRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        self.put_rows_with_files(&rows, cursor, files).await
    }

    /// [`Store::put_batch_with_files`] of versions already serialized ([`VersionRow::new`],
    /// on the threads that read them).
    pub async fn put_rows_with_files(
        &self,
        rows: &[VersionRow],
        cursor: Option<(&str, &str)>,
        files: &[IngestedFile],
    ) -> Result<PutSummary, StoreError> {
        let now = Utc::now();
        let received_at = codec::instant_text("received_at", now)?;
        let received_secs = now.timestamp();
        const OP: &str = "storing a batch of record versions";
        let backend = self.backend();
        let _turn = self.write_turn().await;
        let inserted = with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            let mut inserted = 0u64;
            let mut changed: std::collections::BTreeMap<String, i64> = Default::default();
            for chunk in rows.chunks(VERSIONS_PER_INSERT) {
                let sql = multi_row_insert(
                    backend,
                    "record_versions",
                    VERSION_INSERT_COLUMNS,
                    VERSION_INSERT_PARAMS,
                    chunk.len(),
                    " ON CONFLICT (source, content_hash, version_at) DO NOTHING \
                     RETURNING id, citizen, kind",
                );
                let mut query = sqlx::query_as::<_, (i64, Vec<u8>, String)>(AssertSqlSafe(sql));
                for r in chunk {
                    query = query
                        .bind(r.kind)
                        .bind(r.source.as_str())
                        .bind(r.citizen.as_slice())
                        .bind(r.version_at)
                        .bind(r.withdrawn)
                        .bind(r.content_hash.as_slice())
                        .bind(r.payload.as_str())
                        .bind(received_secs);
                }
                for (id, citizen, kind) in query.fetch_all(&mut *tx).await.map_err(db(OP))? {
                    inserted += 1;
                    if !crate::model::MODEL_KINDS.iter().any(|k| k.as_str() == kind) {
                        continue;
                    }
                    let latest = changed.entry(hex::encode(&citizen)).or_insert(id);
                    *latest = (*latest).max(id);
                }
            }
            // The citizens with new versions of the kinds the model reads, for the nightly
            // run's incremental computation.
            let changed: Vec<(String, i64)> = std::mem::take(&mut changed).into_iter().collect();
            for chunk in changed.chunks(CITIZENS_PER_UPSERT) {
                let sql = multi_row_insert(
                    backend,
                    "citizen_versions",
                    "citizen, last_version_id",
                    2,
                    chunk.len(),
                    " ON CONFLICT (citizen) DO UPDATE SET last_version_id = excluded.last_version_id",
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (citizen, id) in chunk {
                    query = query.bind(citizen.as_str()).bind(*id);
                }
                query.execute(&mut *tx).await.map_err(db(OP))?;
            }
            if let Some((source, position)) = cursor {
                sqlx::query(UPSERT_CURSOR)
                    .bind(source)
                    .bind(position)
                    .bind(received_at.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("writing a source cursor with its batch"))?;
            }
            for file in files {
                sqlx::query(INSERT_INGESTED_FILE)
                    .bind(file.content_hash.as_str())
                    .bind(file.source.as_str())
                    .bind(file.file_name.as_str())
                    .bind(received_at.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db("recording a file with its batch"))?;
            }
            tx.commit().await.map_err(db(OP))?;
            inserted
        });
        let total = rows.len() as u64;
        Ok(PutSummary {
            inserted,
            unchanged: total.saturating_sub(inserted),
        })
    }

    /// Whether a file with this content hash was already read (by any source).
    pub async fn file_ingested(&self, content_hash: &str) -> Result<bool, StoreError> {
        const OP: &str = "looking up an ingested file";
        with_pool!(self, |pool| {
            let row = sqlx::query(SELECT_INGESTED_FILE)
                .bind(content_hash)
                .fetch_optional(pool)
                .await
                .map_err(db(OP))?;
            Ok(row.is_some())
        })
    }

    /// The cursor last written for `source` with [`Store::put_batch`].
    pub async fn cursor(&self, source: &str) -> Result<Option<String>, StoreError> {
        with_pool!(self, |pool| {
            sqlx::query_scalar::<_, String>(SELECT_CURSOR)
                .bind(source)
                .fetch_optional(pool)
                .await
        })
        .map_err(db("reading a source cursor"))
    }

    /// Every citizen with at least one stored version, sorted.
    pub async fn citizens(&self) -> Result<Vec<Pseudonym>, StoreError> {
        let all = with_pool!(self, |pool| {
            sqlx::query_scalar::<_, Vec<u8>>(SELECT_CITIZENS)
                .fetch_all(pool)
                .await
        })
        .map_err(db("listing citizens"))?;
        all.into_iter()
            .map(|bytes| {
                codec::bytes_pseudonym(&bytes).map_err(|reason| StoreError::Corrupt {
                    what: "citizen pseudonym",
                    row: "in record_versions".into(),
                    reason,
                })
            })
            .collect()
    }

    /// Every stored version of a citizen's records, in receipt order.
    pub async fn versions(&self, citizen: &Pseudonym) -> Result<Vec<Versioned>, StoreError> {
        let rows = with_pool!(self, |pool| {
            sqlx::query(SELECT_VERSIONS_OF_CITIZEN)
                .bind(codec::pseudonym_bytes(citizen))
                .try_map(|row| decode_version_row(&row))
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading a citizen's record versions"))?;
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }

    /// Every stored version, grouped by citizen (sorted), each group in receipt order. One
    /// query; each row is decoded as it arrives and grouped without copying.
    pub async fn all_versions(&self) -> Result<Vec<(Pseudonym, Vec<Versioned>)>, StoreError> {
        let rows = with_pool!(self, |pool| {
            sqlx::query(SELECT_ALL_VERSIONS)
                .try_map(|row| decode_version_row(&row))
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading all record versions"))?;
        let mut groups: Vec<(Pseudonym, Vec<Versioned>)> = Vec::new();
        for (citizen, version) in rows {
            match groups.last_mut() {
                Some((last, versions)) if *last == citizen => versions.push(version),
                _ => groups.push((citizen, vec![version])),
            }
        }
        Ok(groups)
    }

    /// Calls `f` with each citizen's versions of `kinds` in receipt order, citizen by citizen
    /// (ordered by pseudonym), reading them as a stream: only one citizen's versions are held at a time.
    /// Returns the number of citizens.
    pub async fn for_each_citizen(
        &self,
        kinds: &[crate::model::RecordKind],
        mut f: impl FnMut(Pseudonym, Vec<Versioned>),
    ) -> Result<u64, StoreError> {
        use futures_util::TryStreamExt;
        const OP: &str = "reading record versions citizen by citizen";
        let mut current: Option<(Pseudonym, Vec<Versioned>)> = None;
        let mut citizens = 0u64;
        let sql = format!(
            "SELECT id, kind, citizen, source, version_at, withdrawn, payload FROM record_versions \
             WHERE kind IN ({}) ORDER BY citizen, id",
            kind_list(kinds)
        );
        with_pool!(self, |pool| {
            let mut rows = sqlx::query(AssertSqlSafe(sql.as_str())).fetch(pool);
            while let Some(row) = rows.try_next().await.map_err(db(OP))? {
                let (who, version) = decode_version_row(&row).map_err(db(OP))?;
                match current.as_mut() {
                    Some((last, versions)) if *last == who => versions.push(version),
                    _ => {
                        if let Some((w, vs)) = current.take() {
                            citizens += 1;
                            f(w, vs);
                        }
                        current = Some((who, vec![version]));
                    }
                }
            }
        });
        if let Some((w, vs)) = current.take() {
            citizens += 1;
            f(w, vs);
        }
        Ok(citizens)
    }

    /// The id of each citizen's latest stored version (what the nightly run compares with
    /// what it kept, to find the citizens that changed).
    pub async fn citizen_versions(&self) -> Result<HashMap<Pseudonym, i64>, StoreError> {
        let rows = with_pool!(self, |pool| {
            sqlx::query_as::<_, (String, i64)>(
                "SELECT citizen, last_version_id FROM citizen_versions",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(db("reading the citizens' latest versions"))?;
        rows.into_iter()
            .map(|(c, id)| {
                let who = Pseudonym::parse(&c).map_err(|e| StoreError::Corrupt {
                    what: "citizen pseudonym",
                    row: "citizen_versions".into(),
                    reason: e.to_string(),
                })?;
                Ok((who, id))
            })
            .collect()
    }

    /// Every kept citizen evaluation (JSON payloads, by citizen).
    pub async fn citizen_caches(&self) -> Result<HashMap<Pseudonym, String>, StoreError> {
        let rows = with_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String)>("SELECT citizen, payload FROM citizen_cache")
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading the kept citizen evaluations"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(c, p)| Some((Pseudonym::parse(&c).ok()?, p)))
            .collect())
    }

    /// Keeps citizen evaluations (replacing earlier ones of the same citizens), and forgets
    /// those of `forget`.
    pub async fn put_citizen_caches(
        &self,
        caches: &[(Pseudonym, String)],
        forget: &[Pseudonym],
    ) -> Result<(), StoreError> {
        const OP: &str = "keeping citizen evaluations";
        let backend = self.backend();
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            for who in forget {
                sqlx::query("DELETE FROM citizen_cache WHERE citizen = $1")
                    .bind(who.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(db(OP))?;
            }
            for chunk in caches.chunks(CITIZENS_PER_UPSERT) {
                let sql = multi_row_insert(
                    backend,
                    "citizen_cache",
                    "citizen, payload",
                    2,
                    chunk.len(),
                    " ON CONFLICT (citizen) DO UPDATE SET payload = excluded.payload",
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for (who, payload) in chunk {
                    query = query.bind(who.as_str()).bind(payload.as_str());
                }
                query.execute(&mut *tx).await.map_err(db(OP))?;
            }
            tx.commit().await.map_err(db(OP))?;
            Ok(())
        })
    }

    /// Calls `f` with the versions of `kinds` of each of `citizens` (in receipt order), citizen by
    /// citizen in pseudonym order, reading a few hundred citizens at a time.
    pub async fn for_each_of_citizens(
        &self,
        citizens: &[Pseudonym],
        kinds: &[crate::model::RecordKind],
        mut f: impl FnMut(Pseudonym, Vec<Versioned>),
    ) -> Result<(), StoreError> {
        let mut sorted: Vec<&Pseudonym> = citizens.iter().collect();
        sorted.sort();
        sorted.dedup();
        for chunk in sorted.chunks(CITIZENS_PER_READ) {
            let marks = placeholders(self.backend(), chunk.len());
            let sql = format!(
                "SELECT id, kind, citizen, source, version_at, withdrawn, payload FROM record_versions \
                 WHERE citizen IN ({marks}) AND kind IN ({}) ORDER BY citizen, id",
                kind_list(kinds)
            );
            let rows = with_pool!(self, |pool| {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for who in chunk {
                    q = q.bind(codec::pseudonym_bytes(who));
                }
                q.try_map(|row| decode_version_row(&row))
                    .fetch_all(pool)
                    .await
            })
            .map_err(db("reading the versions of some citizens"))?;
            let mut current: Option<(Pseudonym, Vec<Versioned>)> = None;
            for (who, v) in rows {
                match current.as_mut() {
                    Some((last, vs)) if *last == who => vs.push(v),
                    _ => {
                        if let Some((w, vs)) = current.take() {
                            f(w, vs);
                        }
                        current = Some((who, vec![v]));
                    }
                }
            }
            if let Some((w, vs)) = current.take() {
                f(w, vs);
            }
        }
        Ok(())
    }

    /// Every stored version of the given kinds, grouped by citizen (as [`Store::all_versions`]).
    pub async fn versions_of_kinds(
        &self,
        kinds: &[crate::model::RecordKind],
    ) -> Result<Vec<(Pseudonym, Vec<Versioned>)>, StoreError> {
        let list = kind_list(kinds);
        let sql = format!(
            "SELECT id, kind, citizen, source, version_at, withdrawn, payload FROM record_versions \
             WHERE kind IN ({list}) ORDER BY citizen, id"
        );
        let rows = with_pool!(self, |pool| {
            sqlx::query(AssertSqlSafe(sql))
                .try_map(|row| decode_version_row(&row))
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading record versions of some kinds"))?;
        let mut groups: Vec<(Pseudonym, Vec<Versioned>)> = Vec::new();
        for (citizen, version) in rows {
            match groups.last_mut() {
                Some((last, versions)) if *last == citizen => versions.push(version),
                _ => groups.push((citizen, vec![version])),
            }
        }
        Ok(groups)
    }

    /// Replaces the stored courses that start on or before `horizon` with `courses` (which
    /// must all start on or before it), in one transaction; later ones stay. A run as of an
    /// earlier day never deletes the courses a later one stored.
    pub async fn replace_courses_until(
        &self,
        courses: &[Course],
        horizon: chrono::NaiveDate,
    ) -> Result<(), StoreError> {
        self.replace_courses_where(courses, Some(horizon)).await
    }

    /// Replaces the stored courses with `courses`, in one transaction.
    pub async fn replace_courses(&self, courses: &[Course]) -> Result<(), StoreError> {
        self.replace_courses_where(courses, None).await
    }

    async fn replace_courses_where(
        &self,
        courses: &[Course],
        horizon: Option<chrono::NaiveDate>,
    ) -> Result<(), StoreError> {
        let rows = courses
            .iter()
            .map(CourseRow::new)
            .collect::<Result<Vec<_>, _>>()?;
        const OP: &str = "replacing the courses";
        let backend = self.backend();
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin_write().await.map_err(db(OP))?;
            match horizon {
                None => sqlx::query(DELETE_COURSES).execute(&mut *tx).await,
                Some(h) => {
                    sqlx::query(DELETE_COURSES_UNTIL)
                        .bind(codec::date_text(h))
                        .execute(&mut *tx)
                        .await
                }
            }
            .map_err(db(OP))?;
            for chunk in rows.chunks(COURSES_PER_INSERT) {
                let sql = multi_row_insert(
                    backend,
                    "courses",
                    COURSE_INSERT_COLUMNS,
                    COURSE_INSERT_PARAMS,
                    chunk.len(),
                    "",
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for r in chunk {
                    query = query
                        .bind(r.id.as_str())
                        .bind(r.citizen.as_str())
                        .bind(r.track)
                        .bind(r.kind)
                        .bind(r.need_score)
                        .bind(r.need_group)
                        .bind(r.tariff_year)
                        .bind(r.tariff_type)
                        .bind(r.tariff_amount.as_str())
                        .bind(r.start_date.as_str())
                        .bind(r.planned_end.as_str())
                        .bind(r.end_date.as_str())
                        .bind(r.end_reason)
                        .bind(r.payload.as_str());
                }
                query.execute(&mut *tx).await.map_err(db(OP))?;
            }
            tx.commit().await.map_err(db(OP))?;
        });
        Ok(())
    }

    /// The stored courses, sorted by citizen, track and start.
    pub async fn courses(&self) -> Result<Vec<Course>, StoreError> {
        let rows = with_pool!(self, |pool| {
            sqlx::query_as::<_, (String, String)>(SELECT_COURSES)
                .fetch_all(pool)
                .await
        })
        .map_err(db("reading the courses"))?;
        rows.into_iter().map(codec::decode_course).collect()
    }
}

/// Decodes one `record_versions` row of either backend; a [`StoreError`] travels inside
/// `sqlx::Error::Decode` and is unwrapped by [`db`].
fn decode_version_row<'r, R>(row: &'r R) -> Result<(Pseudonym, Versioned), sqlx::Error>
where
    R: sqlx::Row,
    VersionColumns: FromRow<'r, R>,
{
    let columns = VersionColumns::from_row(row)?;
    codec::decode_version(columns).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// `'grant', 'visit'`: record kind names for an `IN (...)` (fixed names, never input).
fn kind_list(kinds: &[crate::model::RecordKind]) -> String {
    kinds
        .iter()
        .map(|k| format!("'{}'", k.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Citizens per `IN (...)` read.
const CITIZENS_PER_READ: usize = 500;

/// `n` placeholders separated by commas (`?` on SQLite, `$1..` on PostgreSQL).
fn placeholders(backend: Backend, n: usize) -> String {
    (1..=n)
        .map(|i| match backend {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${i}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `INSERT INTO table (columns) VALUES ($1, ...), (...)` for `rows` rows of `params` values.
///
/// On SQLite the placeholders are anonymous (`?`), bound in order: SQLite looks up a named
/// placeholder such as `$917` by a linear search at parse and at bind time, which makes a
/// statement with thousands of them quadratic (seconds for 10,000 rows instead of
/// milliseconds).
fn multi_row_insert(
    backend: Backend,
    table: &str,
    columns: &str,
    params: usize,
    rows: usize,
    suffix: &str,
) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(64 + rows * params * 7);
    let _ = write!(sql, "INSERT INTO {table} ({columns}) VALUES ");
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..params {
            n += 1;
            if col > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    let _ = write!(sql, "${n}");
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(suffix);
    sql
}

/// The scheme of a database URL, lower-cased. The error never repeats the URL, which may hold
/// a password.
fn url_scheme(url: &str) -> Result<String, StoreError> {
    let Some((scheme, _)) = url.trim().split_once(':') else {
        return Err(StoreError::BadUrl(
            "no scheme (expected sqlite://PATH or postgres://...)".into(),
        ));
    };
    let plain = !scheme.is_empty()
        && scheme.len() <= 20
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !plain {
        return Err(StoreError::BadUrl(
            "the text before the first `:` is not a URL scheme \
             (expected sqlite://PATH or postgres://...)"
                .into(),
        ));
    }
    Ok(scheme.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_row_insert_numbers_parameters_in_order() {
        assert_eq!(
            multi_row_insert(
                Backend::Postgres,
                "t",
                "a, b",
                2,
                2,
                " ON CONFLICT DO NOTHING"
            ),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            multi_row_insert(Backend::Sqlite, "t", "a, b", 2, 2, ""),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
    }

    #[test]
    fn url_schemes_are_checked_without_echoing_the_url() {
        assert_eq!(url_scheme("sqlite://x.db").unwrap(), "sqlite");
        assert_eq!(url_scheme("Postgres://u@h/d").unwrap(), "postgres");
        let e = url_scheme("just-a-path.db").unwrap_err().to_string();
        assert!(e.contains("no scheme"), "{e}");
        let e = url_scheme("user secret@host:5432").unwrap_err().to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
