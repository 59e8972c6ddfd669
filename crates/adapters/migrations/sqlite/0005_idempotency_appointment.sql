-- The appointment a reserving request books (canonical UUID text), chosen
-- before the key is reserved: a retry after a crash between the booking's
-- commit and the key's completion finds it. NULL for requests that book
-- nothing (refused before validation).
ALTER TABLE idempotency_keys ADD COLUMN appointment_id TEXT;
