-- The record store (SQLite). Instants are fixed-width RFC 3339 UTC text with microseconds
-- (2027-01-04T10:00:00.000000Z), so text order is time order; dates are YYYY-MM-DD text;
-- money is canonical decimal text. Keep this file in step with ../postgres/.

-- Every version of every record ever received, in receipt order (id).
CREATE TABLE record_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source <> ''),
    record_key TEXT NOT NULL,
    citizen TEXT NOT NULL,
    version_at TEXT NOT NULL,
    withdrawn INTEGER NOT NULL CHECK (withdrawn IN (0, 1)),
    -- sha256 hex of the serialized record and the withdrawn flag
    content_hash TEXT NOT NULL,
    -- the Record as JSON text
    payload TEXT NOT NULL,
    -- audit only: when the gateway stored this version; never used to pick versions
    received_at TEXT NOT NULL,
    CONSTRAINT record_versions_unique_version
        UNIQUE (kind, source, record_key, version_at, content_hash)
) STRICT;

CREATE INDEX record_versions_citizen ON record_versions (citizen, id);

-- How far each source has been read; written in the same transaction as what was read.
CREATE TABLE source_cursors (
    source TEXT PRIMARY KEY NOT NULL CHECK (source <> ''),
    cursor TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;

-- The computed courses: replaced as a whole by every computation.
CREATE TABLE courses (
    id TEXT PRIMARY KEY NOT NULL,
    citizen TEXT NOT NULL,
    track TEXT NOT NULL,
    kind TEXT NOT NULL,
    need_score INTEGER NOT NULL,
    need_group INTEGER,
    tariff_year INTEGER NOT NULL,
    tariff_type TEXT NOT NULL,
    tariff_amount TEXT NOT NULL,
    start_date TEXT NOT NULL,
    planned_end TEXT NOT NULL,
    end_date TEXT NOT NULL,
    end_reason TEXT NOT NULL,
    -- the Course as JSON text (what the store reads back)
    payload TEXT NOT NULL
) STRICT;

CREATE INDEX courses_citizen_track_start ON courses (citizen, track, start_date);
