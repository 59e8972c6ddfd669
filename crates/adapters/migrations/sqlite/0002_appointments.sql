-- Appointments and their outbox, written in one transaction.
--
-- `id` is the UUIDv7 in canonical hyphenated lower-case text: its text order
-- is its byte order, so ORDER BY start_at, id matches every other store.
-- Instants are INTEGER unix milliseconds (UTC). `hold_until` is
-- end_at + buffer: the end of the time the provider is held, kept as a
-- column so the overlap query compares plain integers.
CREATE TABLE appointments (
    id             TEXT    NOT NULL PRIMARY KEY,
    provider_id    TEXT    NOT NULL,
    patient_id     TEXT    NOT NULL,
    country        TEXT    NOT NULL,
    start_at       INTEGER NOT NULL,
    end_at         INTEGER NOT NULL,
    buffer_minutes INTEGER NOT NULL CHECK (buffer_minutes >= 0),
    hold_until     INTEGER NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    version        INTEGER NOT NULL CHECK (version >= 1),
    notes          TEXT,
    cancel_reason  TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    CHECK (start_at < end_at AND end_at <= hold_until)
) STRICT;

-- Overlap checks and availability read active appointments only, by owner
-- and start; appointments are at most 8 hours (+ 4 hours of buffer) long, so
-- a range on start_at bounds every such read.
CREATE INDEX appointments_provider_active
    ON appointments (provider_id, start_at) WHERE status <> 'cancelled';
CREATE INDEX appointments_patient_active
    ON appointments (patient_id, start_at) WHERE status <> 'cancelled';

-- Listings show every status, ordered by (start_at, id).
CREATE INDEX appointments_provider_list ON appointments (provider_id, start_at, id);
CREATE INDEX appointments_patient_list ON appointments (patient_id, start_at, id);

-- Events not yet published, in write order (`seq` is the rowid). Published
-- entries are deleted: the outbox is a queue, not a log.
CREATE TABLE outbox (
    seq            INTEGER NOT NULL PRIMARY KEY,
    event_id       TEXT    NOT NULL UNIQUE,
    appointment_id TEXT    NOT NULL REFERENCES appointments (id),
    envelope       TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
) STRICT;
