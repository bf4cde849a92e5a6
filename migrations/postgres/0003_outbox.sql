-- The outbox of vouchers to the finance system. A voucher is stored here, with its number,
-- before anything is sent; its state moves pending -> sent -> accepted or rejected. It is
-- never edited: a later correction is a new voucher.
CREATE TABLE vouchers (
    number TEXT PRIMARY KEY NOT NULL,
    year BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    team TEXT NOT NULL,
    track TEXT NOT NULL,
    month TEXT NOT NULL,
    amount TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'accepted', 'rejected')),
    message TEXT,
    file_name TEXT,
    -- the Voucher as JSON text
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT vouchers_unique_seq UNIQUE (year, seq)
);

CREATE INDEX vouchers_state ON vouchers (state);

-- The tariff decisions written to the care system: the hash of the last written ChargeItem per
-- course, so an unchanged decision is not written again.
CREATE TABLE decisions (
    course_id TEXT PRIMARY KEY NOT NULL,
    content_hash TEXT NOT NULL,
    written_at TEXT NOT NULL
);
