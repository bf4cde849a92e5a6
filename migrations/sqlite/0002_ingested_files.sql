-- Files read by the file sources and the import command, by content hash: a file is read once,
-- and a re-dropped copy changes nothing. Written in the same transaction as what it held.
CREATE TABLE ingested_files (
    content_hash TEXT PRIMARY KEY NOT NULL,
    source TEXT NOT NULL,
    file_name TEXT NOT NULL,
    received_at TEXT NOT NULL
) STRICT;
