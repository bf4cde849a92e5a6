-- The record store (PostgreSQL). Instants are fixed-width RFC 3339 UTC text with microseconds
-- (2027-01-04T10:00:00.000000Z), so text order is time order; dates are YYYY-MM-DD text;
-- money is canonical decimal text. Text columns that are sorted use the "C" collation, so the
-- order is byte order whatever the database's locale. Keep this file in step with ../sqlite/.

-- Every version of every record ever received, in receipt order (id).
CREATE TABLE record_versions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source <> ''),
    record_key TEXT NOT NULL,
    citizen TEXT COLLATE "C" NOT NULL,
    version_at TEXT COLLATE "C" NOT NULL,
    withdrawn BOOLEAN NOT NULL,
    -- sha256 hex of the serialized record and the withdrawn flag
    content_hash TEXT NOT NULL,
    -- the Record as JSON text (kept as text so it reads back byte for byte; cast to jsonb to query)
    payload TEXT NOT NULL,
    -- audit only: when the gateway stored this version; never used to pick versions
    received_at TEXT NOT NULL,
    CONSTRAINT record_versions_unique_version
        UNIQUE (kind, source, record_key, version_at, content_hash)
);

CREATE INDEX record_versions_citizen ON record_versions (citizen, id);

-- How far each source has been read; written in the same transaction as what was read.
CREATE TABLE source_cursors (
    source TEXT PRIMARY KEY CHECK (source <> ''),
    cursor TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The computed courses: replaced as a whole by every computation.
CREATE TABLE courses (
    id TEXT PRIMARY KEY,
    citizen TEXT COLLATE "C" NOT NULL,
    track TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    need_score BIGINT NOT NULL,
    need_group INTEGER,
    tariff_year INTEGER NOT NULL,
    tariff_type TEXT NOT NULL,
    tariff_amount TEXT NOT NULL,
    start_date TEXT COLLATE "C" NOT NULL,
    planned_end TEXT NOT NULL,
    end_date TEXT NOT NULL,
    end_reason TEXT NOT NULL,
    -- the Course as JSON text (what the store reads back)
    payload TEXT NOT NULL
);

CREATE INDEX courses_citizen_track_start ON courses (citizen, track, start_date);
