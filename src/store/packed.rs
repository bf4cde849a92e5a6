//! Reading the store citizen by citizen with one row per citizen: the database packs each
//! citizen's versions into one text (`group_concat` on SQLite, `string_agg` on PostgreSQL), so
//! a municipality of millions of versions crosses the driver as thousands of rows, and the
//! versions are decoded ([`PackedCitizen::unpack`]) on whichever thread computes with them.

use super::error::db;
use super::{Pool, Store, StoreError, codec};
use crate::domain::Pseudonym;
use crate::model::{RecordKind, Versioned};
use sqlx::AssertSqlSafe;

/// Separates the versions of a packed citizen (ASCII record separator: a JSON payload escapes
/// every control character, so it never holds one).
const VERSION_SEP: char = '\u{1e}';
/// Separates the columns of a packed version (ASCII unit separator).
const FIELD_SEP: char = '\u{1f}';

/// One citizen's versions as the database packed them: the pseudonym's bytes and the
/// versions (in no promised order; [`PackedCitizen::unpack`] puts them in receipt order) as `id US kind US source US version_at US withdrawn US payload`
/// separated by RS.
#[derive(Debug, Clone)]
pub struct PackedCitizen {
    citizen: Vec<u8>,
    packed: String,
}

impl PackedCitizen {
    /// Decodes the citizen and its versions (receipt order). The error names the row, never
    /// the payload.
    pub fn unpack(&self) -> Result<(Pseudonym, Vec<Versioned>), StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt {
            what: "packed record versions",
            row: String::new(),
            reason,
        };
        let citizen = codec::bytes_pseudonym(&self.citizen).map_err(corrupt)?;
        let mut out = Vec::new();
        for item in self.packed.split(VERSION_SEP) {
            let mut f = item.splitn(6, FIELD_SEP);
            let (Some(id), Some(kind), Some(source), Some(at), Some(withdrawn), Some(payload)) =
                (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
            else {
                return Err(corrupt("a packed version without its six columns".into()));
            };
            let number = |what: &str, s: &str| {
                s.parse::<i64>()
                    .map_err(|_| corrupt(format!("{what} is not a number")))
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
        // Receipt order is the id's. SQLite concatenates in the index's (citizen, id) order,
        // but does not promise it; sorting an ordered list costs one comparison per version.
        out.sort_by_key(|(id, _)| *id);
        Ok((citizen, out.into_iter().map(|(_, v)| v).collect()))
    }

    /// How many bytes the packed text holds.
    pub fn len(&self) -> usize {
        self.packed.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.packed.is_empty()
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
        let kinds = super::kind_list(kinds);
        let upper = if range.to.is_some() {
            " AND citizen < $2"
        } else {
            ""
        };
        let sql = match self.pool {
            Pool::Sqlite(_) => format!(
                "SELECT citizen, group_concat(id || char(31) || kind || char(31) || source || \
                 char(31) || version_at || char(31) || withdrawn || char(31) || payload, \
                 char(30)) FROM record_versions INDEXED BY record_versions_citizen \
                 WHERE kind IN ({kinds}) AND citizen >= $1{upper} GROUP BY citizen ORDER BY citizen"
            ),
            Pool::Postgres(_) => format!(
                "SELECT citizen, string_agg(id::text || chr(31) || kind || chr(31) || source || \
                 chr(31) || version_at::text || chr(31) || \
                 (CASE WHEN withdrawn THEN '1' ELSE '0' END) || chr(31) || payload, \
                 chr(30)) FROM record_versions \
                 WHERE kind IN ({kinds}) AND citizen >= $1{upper} GROUP BY citizen ORDER BY citizen"
            ),
        };
        let lower = vec![range.from; 1];
        let upper = range.to.map(|b| vec![b; 1]);
        let mut citizens = 0u64;
        with_pool!(self, |pool| {
            let mut query = sqlx::query_as::<_, (Vec<u8>, String)>(AssertSqlSafe(sql.as_str()))
                .bind(lower.clone());
            if let Some(u) = &upper {
                query = query.bind(u.clone());
            }
            let mut rows = query.fetch(pool);
            while let Some((citizen, packed)) = rows.try_next().await.map_err(db(OP))? {
                citizens += 1;
                if out.send(PackedCitizen { citizen, packed }).await.is_err() {
                    break;
                }
            }
        });
        Ok(citizens)
    }
}
