-- durable schema, version 2: worker deaths (quarantine), and task inputs in a table of
-- their own.
--
-- `deaths` counts a task's attempts in a row that ended with their worker dying: a
-- claim that takes over an active task adds one, any finish resets it (see
-- durable/storage/quarantine.py). At the worker's limit the claim fails the task
-- instead of handing it out, and the trigger below wakes a parent waiting on it.
--
-- Inputs move out of `durable_task` because SQLite rewrites a whole row, overflow
-- pages and all, on every UPDATE: an input kept in the row was written again by every
-- claim, every lease renewal (each second) and every finish. A lone worker renewing
-- the lease of a task with a 200 MB input took longer to write it than the lease
-- lasted, and lost the task to itself.

CREATE TABLE durable_task_input (
    task_id  INTEGER PRIMARY KEY REFERENCES durable_task (id),
    input    TEXT NOT NULL                  -- JSON text, written once at launch
);

INSERT INTO durable_task_input (task_id, input) SELECT id, input FROM durable_task;

ALTER TABLE durable_task DROP COLUMN input;

ALTER TABLE durable_task ADD COLUMN deaths INTEGER NOT NULL DEFAULT 0;

-- claim(): waiting tasks that have lost a worker (handed back before their guest
-- started), for the last-chance rule; active ones are found by their lapsed lease.
CREATE INDEX durable_task_deaths ON durable_task (id)
    WHERE deaths > 0 AND state IN ('ready', 'suspended');

-- A claim that quarantines a task (active -> failed with deaths left as they are; a
-- finish resets them) wakes its parent if the parent waits on it, in the same
-- statement, as `finish` does for a task that ends.
CREATE TRIGGER durable_task_quarantined
AFTER UPDATE OF state ON durable_task
WHEN OLD.state = 'active' AND NEW.state = 'failed' AND NEW.deaths > 0
     AND NEW.parent_id IS NOT NULL
BEGIN
    UPDATE durable_task
    SET state = iif(state = 'suspended', 'ready', state),
        wakeup_at = iif(state = 'suspended', NULL, wakeup_at),
        on_event = iif(state = 'suspended', 0, on_event),
        wake_pending = iif(state = 'active', 1, wake_pending),
        updated_at = iif(state = 'suspended', NEW.updated_at, updated_at)
    WHERE id = NEW.parent_id AND ((state = 'suspended' AND on_event) OR state = 'active');
END;
