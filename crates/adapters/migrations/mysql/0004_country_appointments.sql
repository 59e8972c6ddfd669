-- One country's own record of its appointments (seed 000's per-country
-- database, e.g. `cita_pe`): the newest version of each snapshot. A country
-- database gets the same schema as the primary one; the primary store's
-- tables stay empty there.
CREATE TABLE country_appointments (
    id            CHAR(36)    CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    provider_id   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    patient_id    VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    country       CHAR(2)     CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    start_at      BIGINT      NOT NULL,
    end_at        BIGINT      NOT NULL,
    status        VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    version       BIGINT      NOT NULL,
    notes         TEXT,
    cancel_reason TEXT,
    created_at    BIGINT      NOT NULL,
    updated_at    BIGINT      NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT country_appointments_status CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    CONSTRAINT country_appointments_version CHECK (version >= 1)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
