-- Appointments and their outbox, written in one transaction.
--
-- The database itself refuses overlapping active appointments: two
-- exclusion constraints, over the provider's hold [start_at, hold_until)
-- (hold_until = end_at + the buffer) and over the patient's time
-- [start_at, end_at), both half-open so adjacent times pass, both partial so
-- a cancelled appointment holds nothing. The provider's constraint is
-- created first: PostgreSQL checks a row's indexes in OID (creation) order,
-- so a row clashing on both is reported as the provider's clash, the order
-- the port asks for (the adapter double-checks a patient refusal too).
-- `btree_gist` supplies the gist operator class for `text WITH =`; it is a
-- trusted contrib extension, so the database owner may create it.
--
-- `id` is a UUIDv7 as uuid: PostgreSQL orders uuid by its bytes, which is
-- the canonical text order, so ORDER BY start_at, id matches every store.
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE appointments (
    id             uuid        NOT NULL PRIMARY KEY,
    provider_id    text        NOT NULL,
    patient_id     text        NOT NULL,
    country        text        NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    start_at       timestamptz NOT NULL,
    end_at         timestamptz NOT NULL,
    buffer_minutes integer     NOT NULL CHECK (buffer_minutes >= 0),
    hold_until     timestamptz NOT NULL,
    status         text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    version        bigint      NOT NULL CHECK (version >= 1),
    notes          text,
    cancel_reason  text,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    CHECK (start_at < end_at AND end_at <= hold_until),
    CONSTRAINT appointments_provider_overlap EXCLUDE USING gist
        (provider_id WITH =, tstzrange(start_at, hold_until, '[)') WITH &&)
        WHERE (status <> 'cancelled'),
    CONSTRAINT appointments_patient_overlap EXCLUDE USING gist
        (patient_id WITH =, tstzrange(start_at, end_at, '[)') WITH &&)
        WHERE (status <> 'cancelled')
);

-- Availability reads a provider's active appointments by start; they last
-- at most 8 hours, so a range on start_at bounds the read.
CREATE INDEX appointments_provider_active
    ON appointments (provider_id, start_at) WHERE status <> 'cancelled';

-- Listings show every status, ordered by (start_at, id), and page with a
-- row comparison (start_at, id) > ($t, $id) that these indexes answer.
CREATE INDEX appointments_provider_list ON appointments (provider_id, start_at, id);
CREATE INDEX appointments_patient_list ON appointments (patient_id, start_at, id);

-- Events not yet published, in write order. Published entries are deleted:
-- the outbox is a queue, not a log.
CREATE TABLE outbox (
    seq            bigserial   NOT NULL PRIMARY KEY,
    event_id       uuid        NOT NULL UNIQUE,
    appointment_id uuid        NOT NULL REFERENCES appointments (id),
    envelope       jsonb       NOT NULL,
    created_at     timestamptz NOT NULL
);
