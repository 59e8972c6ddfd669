-- Providers. Instants are BIGINT unix milliseconds (UTC), the precision Cita
-- keeps everywhere. Ids are ASCII with a binary collation: `Ana` and `ana`
-- are different providers, and text order is byte order. The schedule (zone,
-- slot, buffer, notice, horizon, weekly hours, date overrides) is JSON text,
-- written and read only by the adapter's private `ScheduleJson` type.
CREATE TABLE providers (
    id         VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name       VARCHAR(200) NOT NULL,
    country    CHAR(2)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    schedule   MEDIUMTEXT   NOT NULL,
    version    BIGINT       NOT NULL,
    created_at BIGINT       NOT NULL,
    updated_at BIGINT       NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT providers_version CHECK (version >= 1),
    CONSTRAINT providers_schedule_json CHECK (JSON_VALID(schedule))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
