-- Appointments, their outbox, and the rows that serialise bookings.
--
-- `id` is the UUIDv7 in canonical hyphenated lower-case text, ASCII with a
-- binary collation: its text order is its byte order, so ORDER BY start_at, id
-- matches every other store. Instants are BIGINT unix milliseconds (UTC).
-- `hold_until` is end_at + buffer: the end of the time the provider is held,
-- kept as a column so the overlap query compares plain integers.
--
-- MySQL has no partial indexes. `active_provider` / `active_patient` are
-- virtual columns that equal the owner while the appointment is active and
-- are NULL once it is cancelled; indexing them with start_at gives the
-- overlap checks and availability an index of active rows only, so a slot
-- booked and cancelled many times costs nothing to later checks.
CREATE TABLE appointments (
    id              CHAR(36)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    provider_id     VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    patient_id      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    country         CHAR(2)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    start_at        BIGINT      NOT NULL,
    end_at          BIGINT      NOT NULL,
    buffer_minutes  INT         NOT NULL,
    hold_until      BIGINT      NOT NULL,
    status          VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    version         BIGINT      NOT NULL,
    notes           TEXT,
    cancel_reason   TEXT,
    created_at      BIGINT      NOT NULL,
    updated_at      BIGINT      NOT NULL,
    active_provider VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin
        AS (CASE WHEN status <> 'cancelled' THEN provider_id END) VIRTUAL,
    active_patient  VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin
        AS (CASE WHEN status <> 'cancelled' THEN patient_id END) VIRTUAL,
    PRIMARY KEY (id),
    -- Overlap checks and availability: active rows by owner and start.
    -- Appointments are at most 8 hours (+ 4 hours of buffer) long, so a
    -- range on start_at bounds every such read.
    KEY appointments_provider_active (active_provider, start_at),
    KEY appointments_patient_active (active_patient, start_at),
    -- Listings show every status, ordered by (start_at, id).
    KEY appointments_provider_list (provider_id, start_at, id),
    KEY appointments_patient_list (patient_id, start_at, id),
    CONSTRAINT appointments_buffer CHECK (buffer_minutes >= 0),
    CONSTRAINT appointments_status CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    CONSTRAINT appointments_version CHECK (version >= 1),
    CONSTRAINT appointments_times CHECK (start_at < end_at AND end_at <= hold_until)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Events not yet published, in write order (`seq`). Published entries are
-- deleted: the outbox is a queue, not a log.
CREATE TABLE outbox (
    seq            BIGINT     NOT NULL AUTO_INCREMENT,
    event_id       CHAR(36)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    appointment_id CHAR(36)   CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    envelope       MEDIUMTEXT NOT NULL,
    created_at     BIGINT     NOT NULL,
    PRIMARY KEY (seq),
    UNIQUE KEY outbox_event (event_id),
    CONSTRAINT outbox_appointment FOREIGN KEY (appointment_id) REFERENCES appointments (id),
    CONSTRAINT outbox_envelope_json CHECK (JSON_VALID(envelope))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per provider ('provider', id) and per patient ('patient', id)
-- that has ever been written. A write that checks overlaps first locks its
-- provider's row and then its patient's row (SELECT … FOR UPDATE), so all
-- writers of one provider or one patient take turns: MySQL's stand-in for
-- PostgreSQL's exclusion constraints. Rows are created on first use and
-- never deleted; they hold no data.
CREATE TABLE booking_locks (
    kind  VARCHAR(8)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    owner VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    PRIMARY KEY (kind, owner),
    CONSTRAINT booking_locks_kind CHECK (kind IN ('provider', 'patient'))
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;
