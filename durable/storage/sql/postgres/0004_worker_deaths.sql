-- durable Postgres schema, version 4: worker deaths (quarantine).
--
-- `deaths` counts a task's attempts in a row that ended with their worker dying: a
-- claim that takes over an active task adds one, any finish resets it (see
-- durable/storage/quarantine.py). At the worker's limit the claim fails the task
-- instead of handing it out, and the trigger below wakes a parent waiting on it and
-- the idle workers (the claim gave one of its places to the failed task).
--
-- Independent of version 3 (the guest login): only `durable.tasks` changes here.

ALTER TABLE durable.tasks ADD COLUMN deaths integer NOT NULL DEFAULT 0;

-- claim(): waiting tasks that have lost a worker (handed back before their guest
-- started), for the last-chance rule; active ones are found by their lapsed lease.
CREATE INDEX tasks_deaths ON durable.tasks (id)
    WHERE deaths > 0 AND state IN ('ready', 'suspended');

CREATE FUNCTION durable.task_quarantined() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    UPDATE durable.tasks
    SET state = CASE WHEN state = 'suspended' THEN 'ready' ELSE state END,
        wakeup_at = CASE WHEN state = 'suspended' THEN NULL ELSE wakeup_at END,
        on_event = CASE WHEN state = 'suspended' THEN false ELSE on_event END,
        wake_pending = wake_pending OR state = 'active',
        updated_at = CASE WHEN state = 'suspended' THEN now() ELSE updated_at END
    WHERE id = NEW.parent_id AND ((state = 'suspended' AND on_event) OR state = 'active');
    PERFORM pg_notify('durable_work', '');
    RETURN NULL;
END
$$;

-- A quarantine is the only change from active to failed that leaves `deaths` above 0.
CREATE TRIGGER tasks_quarantined
    AFTER UPDATE ON durable.tasks
    FOR EACH ROW
    WHEN (OLD.state = 'active' AND NEW.state = 'failed' AND NEW.deaths > 0)
    EXECUTE FUNCTION durable.task_quarantined();
