//! The store's error type. Messages name the operation and the problem; they never contain a
//! record payload, a CPR number or a database password.

use std::fmt;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A SQLite file (`sqlite://path`).
    Sqlite,
    /// A PostgreSQL server (`postgres://...`).
    Postgres,
}

impl Backend {
    /// The name shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL cannot be used; the message names the problem, not the URL.
    #[error("database URL: {0}")]
    BadUrl(String),
    /// The database could not be opened or reached.
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        /// Which database.
        backend: Backend,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// The schema migrations failed.
    #[error("cannot migrate the {backend} database schema: {source}")]
    Migrate {
        /// Which database.
        backend: Backend,
        /// The migrator's error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed; the transaction it was part of was rolled back.
    #[error("database error while {op}: {source}")]
    Query {
        /// What the store was doing, e.g. `storing a batch of record versions`.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// A value cannot be stored (e.g. an instant outside the years 0001-9999).
    #[error("cannot store {what}: {reason}")]
    Invalid {
        /// Which value.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// A stored row cannot be read back.
    #[error("stored {what} {row} cannot be read: {reason}")]
    Corrupt {
        /// Which table's row, e.g. `record version`.
        what: &'static str,
        /// The row's id.
        row: String,
        /// What is wrong with it (never its content).
        reason: String,
    },
}

/// Maps a driver error to [`StoreError::Query`], unwrapping a [`StoreError`] that a row decoder
/// passed through the driver.
pub(crate) fn db(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match e {
        sqlx::Error::Decode(inner) => match inner.downcast::<StoreError>() {
            Ok(store_error) => *store_error,
            Err(inner) => StoreError::Query {
                op,
                source: sqlx::Error::Decode(inner),
            },
        },
        source => StoreError::Query { op, source },
    }
}
