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

-- Queues (durable/storage/_pg_queues.py): a task may be launched onto a named queue,
-- with a key (for the per-key limit), a priority and a debounce key. A queued task is
-- claimed only by the queue claim, which locks the queue's row and checks its limits
-- in the transaction that makes the tasks active; the general claim passes over queued
-- and paused tasks.
ALTER TABLE durable.tasks
    ADD COLUMN queue text,
    ADD COLUMN queue_key text,
    ADD COLUMN priority integer NOT NULL DEFAULT 0,
    ADD COLUMN debounce_key text,
    ADD COLUMN started_at timestamptz,           -- first claim: rate limits count it
    ADD COLUMN paused boolean NOT NULL DEFAULT false;  -- `durable pause`

CREATE TABLE durable.queues (
    name             text PRIMARY KEY,
    concurrency      integer,                    -- most active tasks at once (NULL: none)
    key_concurrency  integer,                    -- most active tasks per queue key
    rate_limit       integer,                    -- most starts ...
    rate_period      float8,                     -- ... per this many seconds
    priority         integer NOT NULL DEFAULT 0, -- for tasks launched without one
    paused           boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tasks_unqueued ON durable.tasks (id)
    WHERE state = 'ready' AND queue IS NULL AND NOT paused;
CREATE INDEX tasks_queued ON durable.tasks (queue, priority DESC, id)
    WHERE state = 'ready' AND queue IS NOT NULL AND NOT paused;
CREATE INDEX tasks_queue_active ON durable.tasks (queue, queue_key)
    WHERE state = 'active' AND queue IS NOT NULL;
CREATE INDEX tasks_queue_starts ON durable.tasks (queue, started_at)
    WHERE queue IS NOT NULL AND started_at IS NOT NULL;
CREATE UNIQUE INDEX tasks_debounce ON durable.tasks (debounce_key)
    WHERE debounce_key IS NOT NULL AND state = 'suspended' AND attempts = 0;
CREATE INDEX tasks_paused ON durable.tasks (id) WHERE paused;

-- A queued task that stops running frees a slot: wake the workers waiting for one.
CREATE TRIGGER tasks_notify_queue_slot
    AFTER UPDATE ON durable.tasks
    FOR EACH ROW
    WHEN (OLD.state = 'active' AND NEW.state <> 'active' AND NEW.queue IS NOT NULL)
    EXECUTE FUNCTION durable.notify_work();

-- A queue's settings changed (a limit raised, a pause lifted): look again.
CREATE TRIGGER queues_notify
    AFTER INSERT OR UPDATE ON durable.queues
    FOR EACH ROW EXECUTE FUNCTION durable.notify_work();
