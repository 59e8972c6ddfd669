-- Idempotency keys (printable ASCII, case-sensitive: binary collation).
-- `outcome` is NULL while the first request is in progress, then the
-- remembered answer as JSON (`IdempotentOutcome`'s serde form). Expired rows
-- are replaced when their key is reused.
CREATE TABLE idempotency_keys (
    idempotency_key VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    fingerprint     TEXT         NOT NULL,
    outcome         MEDIUMTEXT,
    created_at      BIGINT       NOT NULL,
    PRIMARY KEY (idempotency_key),
    CONSTRAINT idempotency_outcome_json CHECK (outcome IS NULL OR JSON_VALID(outcome))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
