-- One country's own record of its appointments (seed 000's per-country
-- database): the newest version of each snapshot. In embedded mode each
-- country has its own file; the primary store's tables exist there too but
-- stay empty.
CREATE TABLE country_appointments (
    id            TEXT    NOT NULL PRIMARY KEY,
    provider_id   TEXT    NOT NULL,
    patient_id    TEXT    NOT NULL,
    country       TEXT    NOT NULL,
    start_at      INTEGER NOT NULL,
    end_at        INTEGER NOT NULL,
    status        TEXT    NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    version       INTEGER NOT NULL CHECK (version >= 1),
    notes         TEXT,
    cancel_reason TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
