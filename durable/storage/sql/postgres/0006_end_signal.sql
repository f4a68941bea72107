-- durable Postgres schema, version 6: a notification when a task ends.
--
-- `Client.wait` and `durable run` LISTEN on `durable_end` instead of polling: every
-- change of a task into an end state (finish, cancel, quarantine, whichever statement
-- does it) sends the task's id, delivered when its transaction commits, so a waiter
-- never hears of an end that could still roll back. Distinct payloads are not folded,
-- so each end is heard; a waiter keeps a slow poll for a dropped connection.

CREATE FUNCTION durable.notify_end() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_notify('durable_end', NEW.id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_notify_end
    AFTER UPDATE ON durable.tasks
    FOR EACH ROW
    WHEN (NEW.state IN ('complete', 'failed', 'cancelled') AND OLD.state <> NEW.state)
    EXECUTE FUNCTION durable.notify_end();
