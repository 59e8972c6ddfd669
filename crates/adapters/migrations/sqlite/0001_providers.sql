-- Providers. Instants are INTEGER unix milliseconds (UTC), the precision
-- Cita keeps everywhere. The schedule (zone, slot, buffer, notice, horizon,
-- weekly hours, date overrides) is JSON text, written and read only by the
-- adapter's private `ScheduleJson` type.
CREATE TABLE providers (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    country    TEXT    NOT NULL,
    schedule   TEXT    NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 1),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
