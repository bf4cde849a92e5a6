-- The course ledger (SQLite): every decision of every course and every supersession, appended,
-- never updated or deleted. A course's row with the highest revision is in force. Keep this
-- file in step with ../postgres/.
CREATE TABLE course_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    course_id TEXT NOT NULL,
    revision INTEGER NOT NULL CHECK (revision >= 1),
    citizen TEXT NOT NULL,
    track TEXT NOT NULL,
    start_date TEXT NOT NULL,
    -- decided | end_moved | decided_afresh | repriced | cancelled
    change TEXT NOT NULL,
    -- NULL when cancelled
    kind TEXT,
    need_group INTEGER,
    tariff_table TEXT,
    tariff_amount TEXT,
    end_date TEXT,
    -- the LedgerEntry as JSON text (what the store reads back), with the evidence
    payload TEXT NOT NULL,
    -- the as-of date of the run that recorded it, and when (audit)
    recorded_on TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    CONSTRAINT course_ledger_unique_revision UNIQUE (course_id, revision)
) STRICT;

CREATE INDEX course_ledger_citizen ON course_ledger (citizen, course_id, revision);

-- What each voucher's amount is made of when it was created: the course-days of its team,
-- track and month up to its as-of date, and what was posted before. Written with the voucher.
CREATE TABLE voucher_basis (
    voucher TEXT PRIMARY KEY NOT NULL REFERENCES vouchers (number),
    payload TEXT NOT NULL
) STRICT;

-- The data-quality findings of each run's computation, by kind (pruned with the run).
CREATE TABLE run_findings (
    run_id INTEGER NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
) STRICT;

CREATE INDEX run_findings_run ON run_findings (run_id);
