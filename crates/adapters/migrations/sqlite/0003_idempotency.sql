-- Idempotency keys. `outcome` is NULL while the first request is in
-- progress, then the remembered answer as JSON (`IdempotentOutcome`'s serde
-- form). Expired rows are replaced when their key is reused.
CREATE TABLE idempotency_keys (
    key         TEXT    NOT NULL PRIMARY KEY,
    fingerprint TEXT    NOT NULL,
    outcome     TEXT,
    created_at  INTEGER NOT NULL
) STRICT;
