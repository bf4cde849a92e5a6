//! Reading the store citizen by citizen with one row per citizen: the database packs each
//! column of a citizen's versions into one text (`group_concat` on SQLite, `string_agg` on
//! PostgreSQL), so a municipality of millions of versions crosses the driver as thousands of
//! rows, and the versions are decoded ([`PackedCitizen::unpack`]) on whichever thread computes
//! with them.

use super::error::db;
use super::{Pool, Store, StoreError, codec};
use crate::domain::Pseudonym;
use crate::model::{RecordKind, Versioned};
use sqlx::AssertSqlSafe;

/// Separates the payloads of a packed citizen (ASCII record separator: a JSON payload escapes
/// every control character, so it never holds one).
const VERSION_SEP: char = '\u{1e}';
/// Separates the values of the other packed columns (ASCII unit separator).
const FIELD_SEP: char = '\u{1f}';

/// How much of the SQLite file a packed read maps into memory: SQLite's own limit
/// (`SQLITE_MAX_MMAP_SIZE`, 2 GiB less 64 KiB); a larger file is read by `pread` past it.
const READ_MMAP_BYTES: u64 = 0x7fff_0000;

/// One citizen's versions as the database packed them: the pseudonym's bytes and, per column,
/// the versions' values in one text (`id`, `kind`, `source`, `version_at` and `withdrawn`
/// separated by US, the payloads by RS), the versions in the same order in every column (in
/// no promised order; [`PackedCitizen::unpack`] puts them in receipt order). Each column is
/// its own aggregate, so the database appends each value once instead of first joining a
/// version's columns into a text of their own.
#[derive(Debug, Clone)]
pub struct PackedCitizen {
    citizen: Vec<u8>,
    ids: String,
    kinds: String,
    sources: String,
    version_ats: String,
    withdrawn: String,
    payloads: String,
}

/// The columns of a packed row, as the queries select them.
type PackedRow = (Vec<u8>, String, String, String, String, String, String);

impl PackedCitizen {
    fn new((citizen, ids, kinds, sources, version_ats, withdrawn, payloads): PackedRow) -> Self {
        Self {
            citizen,
            ids,
            kinds,
            sources,
            version_ats,
            withdrawn,
            payloads,
        }
    }

    /// Decodes the citizen and its versions (receipt order). The error names the row, never
    /// the payload.
    pub fn unpack(&self) -> Result<(Pseudonym, Vec<Versioned>), StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            what: "packed record versions",
            row: String::new(),
            reason,
        };
        let citizen = codec::bytes_pseudonym(&self.citizen).map_err(corrupt)?;
        let number = |what: &str, s: &str| {
            s.parse::<i64>()
                .map_err(|_| corrupt(format!("{what} is not a number")))
        };
        let mut ids = self.ids.split(FIELD_SEP);
        let mut kinds = self.kinds.split(FIELD_SEP);
        let mut sources = self.sources.split(FIELD_SEP);
        let mut ats = self.version_ats.split(FIELD_SEP);
        let mut withdrawn = self.withdrawn.split(FIELD_SEP);
        let mut out = Vec::new();
        for payload in self.payloads.split(VERSION_SEP) {
            let (Some(id), Some(kind), Some(source), Some(at), Some(withdrawn)) = (
                ids.next(),
                kinds.next(),
                sources.next(),
                ats.next(),
                withdrawn.next(),
            ) else {
                return Err(corrupt("a packed version without its six columns".into()));
            };
            let id = number("id", id)?;
            let version = codec::decode_version_of(
                id,
                kind,
                &citizen,
                source.to_owned(),
                number("version_at", at)?,
                matches!(withdrawn, "1" | "t" | "true"),
                payload,
            )?;
            out.push((id, version));
        }
        if ids.next().is_some()
            || kinds.next().is_some()
            || sources.next().is_some()
            || ats.next().is_some()
            || withdrawn.next().is_some()
        {
            return Err(corrupt("a packed version without its six columns".into()));
        }
        // Receipt order is the id's. SQLite aggregates in the index's (citizen, id) order,
        // but does not promise it; sorting an ordered list costs one comparison per version.
        out.sort_by_key(|(id, _)| *id);
        Ok((citizen, out.into_iter().map(|(_, v)| v).collect()))
    }

    /// How many bytes the packed payloads hold.
    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }
}

/// A range of citizens by pseudonym: from the first byte `from` (inclusive) to `to`
/// (exclusive; `None`: to the end). `0..None` is everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CitizenRange {
    /// The first pseudonym byte in the range.
    pub from: u8,
    /// The first pseudonym byte after it; `None`: up to the last.
    pub to: Option<u8>,
}

impl CitizenRange {
    /// `parts` ranges of about equal size covering every citizen (pseudonyms are uniform).
    pub fn split(parts: usize) -> Vec<CitizenRange> {
        let parts = parts.clamp(1, 16);
        (0..parts)
            .map(|i| CitizenRange {
                from: (i * 256 / parts) as u8,
                to: (i + 1 < parts).then(|| ((i + 1) * 256 / parts) as u8),
            })
            .collect()
    }
}

impl Store {
    /// Sends every citizen of `range` with versions of `kinds`, ordered by pseudonym, each as
    /// one packed row, to `out` (waiting while it is full: at most its capacity of citizens
    /// is held). Returns the number of citizens; stops early, without error, if the receiver
    /// is gone.
    pub async fn send_citizens_packed(
        &self,
        kinds: &[RecordKind],
        range: CitizenRange,
        out: tokio::sync::mpsc::Sender<PackedCitizen>,
    ) -> Result<u64, StoreError> {
        use futures_util::TryStreamExt;
        const OP: &str = "reading record versions packed by citizen";
        // Every kind asked for: no filter to test on each row.
        let kinds = if RecordKind::ALL.iter().all(|k| kinds.contains(k)) {
            String::new()
        } else {
            format!("kind IN ({}) AND ", super::kind_list(kinds))
        };
        let upper = if range.to.is_some() {
            " AND citizen < $2"
        } else {
            ""
        };
        // Every column its own aggregate: all of a group's aggregates are fed its rows in the
        // same order, so the n-th value of each column belongs to the same version.
        let sql = match self.pool {
            Pool::Sqlite(_) => format!(
                "SELECT citizen, group_concat(id, char(31)), group_concat(kind, char(31)), \
                 group_concat(source, char(31)), group_concat(version_at, char(31)), \
                 group_concat(withdrawn, char(31)), group_concat(payload, char(30)) \
                 FROM record_versions INDEXED BY record_versions_citizen \
                 WHERE {kinds}citizen >= $1{upper} GROUP BY citizen ORDER BY citizen"
            ),
            Pool::Postgres(_) => format!(
                "SELECT citizen, string_agg(id::text, chr(31)), string_agg(kind, chr(31)), \
                 string_agg(source, chr(31)), string_agg(version_at::text, chr(31)), \
                 string_agg(CASE WHEN withdrawn THEN '1' ELSE '0' END, chr(31)), \
                 string_agg(payload, chr(30)) FROM record_versions \
                 WHERE {kinds}citizen >= $1{upper} GROUP BY citizen ORDER BY citizen"
            ),
        };
        let lower = vec![range.from; 1];
        let upper = range.to.map(|b| vec![b; 1]);
        let mut citizens = 0u64;
        let sqlite = matches!(self.pool, Pool::Sqlite(_));
        with_pool!(self, |pool| {
            let mut conn = pool.acquire().await.map_err(db(OP))?;
            if sqlite {
                // Each version is a lookup of its row by id, all over the file: read through a
                // memory map, SQLite takes each page from the OS page cache in place, where
                // `pread` copied it into its own cache first (a fifth of the time, in the
                // kernel). The mapping is the page cache, shared and reclaimable, not memory
                // of this process; the connection is closed after, so no pooled connection
                // keeps it.
                conn.close_on_drop();
                sqlx::query(AssertSqlSafe(format!(
                    "PRAGMA mmap_size = {READ_MMAP_BYTES}"
                )))
                .execute(&mut *conn)
                .await
                .map_err(db(OP))?;
            }
            let mut query =
                sqlx::query_as::<_, PackedRow>(AssertSqlSafe(sql.as_str())).bind(lower.clone());
            if let Some(u) = &upper {
                query = query.bind(u.clone());
            }
            let mut rows = query.fetch(&mut *conn);
            while let Some(row) = rows.try_next().await.map_err(db(OP))? {
                citizens += 1;
                if out.send(PackedCitizen::new(row)).await.is_err() {
                    break;
                }
            }
        });
        Ok(citizens)
    }
}
