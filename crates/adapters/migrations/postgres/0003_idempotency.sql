-- Idempotency keys. `outcome` is NULL while the first request is in
-- progress, then the remembered answer as JSON (`IdempotentOutcome`'s serde
-- form). Expired rows are replaced when their key is reused.
CREATE TABLE idempotency_keys (
    key         text        NOT NULL PRIMARY KEY,
    fingerprint text        NOT NULL,
    outcome     jsonb,
    created_at  timestamptz NOT NULL
);
