-- What the nightly run needs to recompute only the citizens that changed. Keep this file in step
-- with ../postgres/.

-- The latest stored version of each citizen of the kinds the model reads (model::MODEL_KINDS;
-- not visits, acute deliveries, follow-ups): written by every batch that stores new versions, in
-- the same transaction.
CREATE TABLE citizen_versions (
    citizen TEXT PRIMARY KEY NOT NULL,
    last_version_id INTEGER NOT NULL
) STRICT;

INSERT INTO citizen_versions (citizen, last_version_id)
    SELECT citizen, MAX(id) FROM record_versions
    WHERE kind NOT IN ('visit', 'acute', 'follow_up') GROUP BY citizen;

-- Each quiet citizen's evaluation kept by the nightly run (JSON; see pipeline::incremental):
-- valid while the citizen has no newer version, the same recorded decisions and the same
-- mappings, up to its valid_until date. Only ever a shortcut: deleting rows is always safe.
CREATE TABLE citizen_cache (
    citizen TEXT PRIMARY KEY NOT NULL,
    payload TEXT NOT NULL
) STRICT;
