-- One country's own record of its appointments (seed 000's per-country
-- database): the newest version of each snapshot. A country database gets
-- the whole schema and uses only this table.
CREATE TABLE country_appointments (
    id            uuid        NOT NULL PRIMARY KEY,
    provider_id   text        NOT NULL,
    patient_id    text        NOT NULL,
    country       text        NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    start_at      timestamptz NOT NULL,
    end_at        timestamptz NOT NULL,
    status        text        NOT NULL CHECK (status IN ('pending', 'confirmed', 'cancelled')),
    version       bigint      NOT NULL CHECK (version >= 1),
    notes         text,
    cancel_reason text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
