-- Announces every change of a provider, by any process, on the channel
-- `cita_provider_changed` with the provider's id, so that processes that
-- cache providers drop theirs (the adapter's `provider_cache` module).
-- PostgreSQL delivers a notification when the transaction commits, and not
-- at all if it rolls back.
CREATE FUNCTION cita_notify_provider_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('cita_provider_changed', OLD.id);
    ELSE
        PERFORM pg_notify('cita_provider_changed', NEW.id);
        IF TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id THEN
            PERFORM pg_notify('cita_provider_changed', OLD.id);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER providers_notify_changed
    AFTER INSERT OR UPDATE OR DELETE ON providers
    FOR EACH ROW EXECUTE FUNCTION cita_notify_provider_changed();
