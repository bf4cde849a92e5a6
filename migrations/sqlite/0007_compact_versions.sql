-- Record versions in a compact form (about half the bytes per version). Keep this file in step
-- with ../postgres/.
--
-- - citizen: the pseudonym's 32 bytes (was 64 hex characters); order is unchanged.
-- - version_at: microseconds since 1970-01-01T00:00:00Z (was RFC 3339 text).
-- - content_hash: the first 16 bytes (128 bits) of the sha256 (was 64 hex characters).
-- - received_at: seconds since 1970-01-01T00:00:00Z (audit only).
-- - the unique version is (source, content_hash, version_at): the hash covers the serialized
--   record, its kind and key included, so kind and key need not be in the key again.
-- - record_key is gone: the key is the record's own (its id in the payload).
-- - payload: new rows hold the record without the kind (a column) and the citizen (a column);
--   rows from before keep the whole Record JSON. The store reads both.
CREATE TABLE record_versions_compact (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source <> ''),
    citizen BLOB NOT NULL CHECK (length(citizen) = 32),
    version_at INTEGER NOT NULL,
    withdrawn INTEGER NOT NULL CHECK (withdrawn IN (0, 1)),
    content_hash BLOB NOT NULL CHECK (length(content_hash) = 16),
    payload TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    CONSTRAINT record_versions_unique_version UNIQUE (source, content_hash, version_at)
) STRICT;

INSERT INTO record_versions_compact
    (id, kind, source, citizen, version_at, withdrawn, content_hash, payload, received_at)
SELECT id, kind, source, unhex(citizen),
       unixepoch(substr(version_at, 1, 19)) * 1000000 + CAST(substr(version_at, 21, 6) AS INTEGER),
       withdrawn, unhex(substr(content_hash, 1, 32)), payload,
       unixepoch(substr(received_at, 1, 19))
FROM record_versions;

DROP TABLE record_versions;
ALTER TABLE record_versions_compact RENAME TO record_versions;
CREATE INDEX record_versions_citizen ON record_versions (citizen, id);
