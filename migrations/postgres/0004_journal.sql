-- The run journal: every run of a job (scheduled, caught up, manual) and each of its steps,
-- with start, end, outcome, counts (JSON object) and errors (JSON array of strings).
CREATE TABLE runs (
    id BIGSERIAL PRIMARY KEY,
    job TEXT NOT NULL,
    trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'catch_up', 'manual', 'demo')),
    scheduled_for TEXT,
    as_of TEXT,
    dry_run BOOLEAN NOT NULL,
    holder TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'partial', 'failed', 'interrupted', 'abandoned')),
    counts TEXT NOT NULL,
    errors TEXT NOT NULL
);

CREATE INDEX runs_job_started ON runs (job, started_at);
CREATE INDEX runs_started ON runs (started_at);

CREATE TABLE run_steps (
    run_id BIGINT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    step TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('running', 'ok', 'partial', 'failed', 'skipped')),
    counts TEXT NOT NULL,
    errors TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- One row per job: who holds it now (a lease that expires unless renewed), and the last
-- scheduled instant any daemon claimed, so a scheduled run happens once however many
-- daemons share the store.
CREATE TABLE job_leases (
    job TEXT PRIMARY KEY NOT NULL,
    holder TEXT,
    expires_at TEXT,
    last_scheduled_for TEXT
);
