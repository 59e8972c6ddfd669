-- pgbench: one single-row insert per transaction, the physical reference
-- for a booking's write (scripts/bench-http).
INSERT INTO bench_insert (provider_id, start_at, payload)
VALUES ('bench-' || :client_id, now(), 'pgbench single-row insert');
