-- durable Postgres schema: schedules (`durable schedule`, durable/core/schedule.py).
--
-- A worker's scheduler pass locks a due schedule's row (FOR UPDATE SKIP LOCKED),
-- creates the tasks of its due ticks and moves `cursor` past them, in one
-- transaction; each task's idempotency key is (schedule, tick), so no tick ever
-- launches two tasks, and a killed pass leaves the ticks for the next one.

CREATE TABLE durable.schedules (
    name           text PRIMARY KEY,
    workflow       text NOT NULL,           -- a workflow name: each tick runs its newest binary
    entry          text NOT NULL DEFAULT '',
    input          text NOT NULL,           -- JSON text, given to every task
    cron           text,                    -- a cron expression in `tz` ...
    tz             text NOT NULL DEFAULT 'UTC',
    every          integer,                 -- ... or a period in seconds from `anchor`
    anchor         timestamptz NOT NULL,
    overlap        text NOT NULL CHECK (overlap IN ('skip', 'buffer-one', 'allow')),
    catch_up       text NOT NULL CHECK (catch_up IN ('none', 'latest', 'all')),
    jitter         float8 NOT NULL DEFAULT 0,
    paused         boolean NOT NULL DEFAULT false,
    cursor         timestamptz NOT NULL,    -- the latest tick handled; later ones are pending
    next_due_at    timestamptz NOT NULL,    -- when the tick after `cursor` is due (jitter in)
    buffered_tick  timestamptz,             -- buffer-one: a tick waiting for `last_task_id`
    last_task_id   bigint,
    fired          bigint NOT NULL DEFAULT 0,
    skipped        bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((cron IS NULL) <> (every IS NULL))
);

CREATE INDEX schedules_due ON durable.schedules (next_due_at) WHERE NOT paused;
CREATE INDEX schedules_buffered ON durable.schedules (name)
    WHERE buffered_tick IS NOT NULL AND NOT paused;

-- A new, resumed or moved schedule wakes idle workers, which then wait for its tick.
CREATE TRIGGER schedules_notify
    AFTER INSERT OR UPDATE OF paused, next_due_at ON durable.schedules
    FOR EACH ROW EXECUTE FUNCTION durable.notify_work();
