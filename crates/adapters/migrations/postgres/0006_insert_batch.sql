-- Group commit of new appointments: one call inserts a batch of them, each
-- with its outbox row, in one transaction, and answers for each row in
-- order whether it was written ('ok') or refused ('slot_taken' when an
-- active appointment of its provider blocks it, checked first, else
-- 'patient_busy' when it clashes with one of its patient). A refused row
-- writes nothing; the others still commit.
--
-- What refuses a row: the exclusion constraints, as for a single write
-- (each row is inserted in a block of its own, a subtransaction, so a
-- refusal undoes only that row), and before that, for a row with a buffer,
-- the booking rule availability shows: the row's buffer, the provider's
-- current one, also counts after every existing appointment's end (when
-- the provider's buffer has grown since earlier bookings, their stored
-- holds are shorter). With no buffer that rule is the constraint itself,
-- so the row goes straight to the insert. So the service needs no read of
-- the provider's appointments before it inserts.
--
-- Why this is exact under concurrency: before inserting, the call takes
-- the advisory locks of every provider of the batch and then of every
-- patient, each class in ascending key order (the order every Cita writer
-- uses: a single write takes its provider's lock and then its patient's,
-- and the provider class sorts first), so no other Cita writer that could
-- clash with a row of the batch is running, and every one that ran before
-- has committed. In READ COMMITTED each statement of this function sees
-- what committed before it started and what this call wrote earlier, so a
-- row clashing with an earlier row of the same batch is refused too. A
-- batch never holds more than 64 subtransactions (the adapter's batch
-- limit), the most PostgreSQL tracks per transaction without spilling.
--
-- Any other error (a duplicate id, say) fails the whole call and rolls it
-- back; the adapter then writes the batch's rows one call each.
--
-- Arrays, one element per row, all of the same length (`notes` and
-- `reasons` may hold nulls); every row is active (pending or confirmed):
-- the adapter inserts a cancelled one, which holds no time, on its own.
-- The lock classes are "CITP" and "CITX" in ASCII, as in the adapter's
-- single-row statements.
CREATE FUNCTION cita_insert_appointments(
    ids          uuid[],
    provider_ids text[],
    patient_ids  text[],
    countries    text[],
    starts       timestamptz[],
    ends         timestamptz[],
    buffers      integer[],
    holds        timestamptz[],
    statuses     text[],
    versions     bigint[],
    notes        text[],
    reasons      text[],
    created      timestamptz[],
    updated      timestamptz[],
    event_ids    uuid[],
    envelopes    text[]
) RETURNS SETOF text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n   integer := coalesce(array_length(ids, 1), 0);
    key integer;
    failed text;
BEGIN
    IF array_length(provider_ids, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(patient_ids, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(countries, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(starts, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(ends, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(buffers, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(holds, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(statuses, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(versions, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(notes, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(reasons, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(created, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(updated, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(event_ids, 1) IS DISTINCT FROM array_length(ids, 1)
       OR array_length(envelopes, 1) IS DISTINCT FROM array_length(ids, 1) THEN
        RAISE EXCEPTION 'cita_insert_appointments: arrays of different lengths';
    END IF;
    FOR key IN SELECT DISTINCT hashtext(p) FROM unnest(provider_ids) AS p ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1128878160, key);
    END LOOP;
    FOR key IN SELECT DISTINCT hashtext(p) FROM unnest(patient_ids) AS p ORDER BY 1 LOOP
        PERFORM pg_advisory_xact_lock(1128878168, key);
    END LOOP;
    FOR i IN 1 .. n LOOP
        IF buffers[i] > 0 AND EXISTS (
            SELECT 1 FROM appointments
            WHERE provider_id = provider_ids[i] AND holds_time
              AND tstzrange(start_at, hold_until, '[)')
                  && tstzrange(starts[i] - make_interval(mins => buffers[i]), holds[i], '[)')
              AND greatest(hold_until, end_at + make_interval(mins => buffers[i])) > starts[i]
        ) THEN
            RETURN NEXT 'slot_taken';
            CONTINUE;
        END IF;
        -- A refusal is a provider clash when the provider's constraint says
        -- so or, whichever constraint PostgreSQL checked first, when the
        -- provider's hold is taken too.
        BEGIN
            INSERT INTO appointments
                (id, provider_id, patient_id, country, start_at, end_at, buffer_minutes,
                 hold_until, status, version, notes, cancel_reason, created_at, updated_at)
            VALUES
                (ids[i], provider_ids[i], patient_ids[i], countries[i], starts[i], ends[i],
                 buffers[i], holds[i], statuses[i], versions[i], notes[i], reasons[i],
                 created[i], updated[i]);
            INSERT INTO outbox (event_id, appointment_id, envelope, created_at)
            VALUES (event_ids[i], ids[i], envelopes[i]::jsonb, updated[i]);
            RETURN NEXT 'ok';
        EXCEPTION WHEN exclusion_violation THEN
            GET STACKED DIAGNOSTICS failed = CONSTRAINT_NAME;
            IF failed = 'appointments_provider_overlap' OR EXISTS (
                SELECT 1 FROM appointments
                WHERE provider_id = provider_ids[i] AND holds_time
                  AND tstzrange(start_at, hold_until, '[)') && tstzrange(starts[i], holds[i], '[)')
            ) THEN
                RETURN NEXT 'slot_taken';
            ELSE
                RETURN NEXT 'patient_busy';
            END IF;
        END;
    END LOOP;
END
$$;
