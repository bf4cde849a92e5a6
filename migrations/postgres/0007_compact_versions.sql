-- Record versions in a compact form (about half the bytes per version). Keep this file in step
-- with ../sqlite/.
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
ALTER TABLE record_versions DROP CONSTRAINT record_versions_unique_version;
DROP INDEX record_versions_citizen;
ALTER TABLE record_versions
    DROP COLUMN record_key,
    ALTER COLUMN citizen TYPE BYTEA USING decode(citizen, 'hex'),
    ALTER COLUMN version_at TYPE BIGINT
        USING (extract(epoch FROM version_at::timestamptz) * 1000000)::bigint,
    ALTER COLUMN content_hash TYPE BYTEA USING decode(substr(content_hash, 1, 32), 'hex'),
    ALTER COLUMN received_at TYPE BIGINT
        USING extract(epoch FROM received_at::timestamptz)::bigint;
ALTER TABLE record_versions
    ADD CONSTRAINT record_versions_citizen_bytes CHECK (octet_length(citizen) = 32),
    ADD CONSTRAINT record_versions_hash_bytes CHECK (octet_length(content_hash) = 16),
    ADD CONSTRAINT record_versions_unique_version UNIQUE (source, content_hash, version_at);
CREATE INDEX record_versions_citizen ON record_versions (citizen, id);
