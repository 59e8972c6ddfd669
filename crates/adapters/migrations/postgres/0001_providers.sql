-- Providers. Instants are timestamptz (the adapter writes them to the
-- millisecond, the precision Cita keeps everywhere). The schedule (zone,
-- slot, buffer, notice, horizon, weekly hours, date overrides) is JSON,
-- written and read only by the adapter's private `ScheduleJson` type.
CREATE TABLE providers (
    id         text        NOT NULL PRIMARY KEY,
    name       text        NOT NULL,
    country    text        NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    schedule   jsonb       NOT NULL,
    version    bigint      NOT NULL CHECK (version >= 1),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
