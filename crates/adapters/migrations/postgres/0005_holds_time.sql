-- Confirmations without index work. A confirmation changes only status
-- (pending → confirmed) and updated_at, but status appeared in the
-- predicates of the partial exclusion constraints and index, and PostgreSQL
-- cannot update a row in place ("HOT", heap-only tuple) when a column an
-- index uses, predicates included, changes value: every confirmation wrote
-- new entries in all five indexes and ran both exclusion checks again. The
-- predicates now use `holds_time`, computed from status, which a
-- confirmation leaves true, and pages keep a fifth free so the new row
-- version fits next to the old one. A cancellation turns it false and
-- leaves both constraints, as before; moving an appointment changes its
-- times and is checked, as before.
--
-- The constraints keep their names (the adapter maps SQLSTATE 23P01 by
-- name) and their order (the provider's is created first, so PostgreSQL
-- checks it first).
ALTER TABLE appointments
    ADD COLUMN holds_time boolean GENERATED ALWAYS AS (status <> 'cancelled') STORED;

ALTER TABLE appointments
    DROP CONSTRAINT appointments_provider_overlap,
    DROP CONSTRAINT appointments_patient_overlap;
DROP INDEX appointments_provider_active;

ALTER TABLE appointments
    ADD CONSTRAINT appointments_provider_overlap EXCLUDE USING gist
        (provider_id WITH =, tstzrange(start_at, hold_until, '[)') WITH &&)
        WHERE (holds_time);
ALTER TABLE appointments
    ADD CONSTRAINT appointments_patient_overlap EXCLUDE USING gist
        (patient_id WITH =, tstzrange(start_at, end_at, '[)') WITH &&)
        WHERE (holds_time);
CREATE INDEX appointments_provider_active
    ON appointments (provider_id, start_at) WHERE holds_time;

ALTER TABLE appointments SET (fillfactor = 80);
