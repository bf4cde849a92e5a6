-- The finance system's actuals (costs per cost centre and month), read from the actuals folder
-- for the cockpit. Keep this file in step with ../sqlite/.

-- Each actuals file read, once per content: a later file replaces, per cost centre and month,
-- what earlier files said (the greatest id wins).
CREATE TABLE actuals_files (
    id BIGSERIAL PRIMARY KEY,
    content_hash TEXT NOT NULL UNIQUE,
    file_name TEXT NOT NULL,
    received_at TEXT NOT NULL
);

-- The costs of one file, added up per cost centre and month; amounts as exact decimal text.
CREATE TABLE actuals (
    file_id BIGINT NOT NULL REFERENCES actuals_files (id),
    cost_centre TEXT NOT NULL,
    month TEXT NOT NULL,
    amount TEXT NOT NULL,
    PRIMARY KEY (file_id, cost_centre, month)
);
