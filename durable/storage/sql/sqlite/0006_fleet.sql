-- durable schema: schedules (`durable schedule`, durable/core/schedule.py).
--
-- A worker's scheduler pass claims a schedule's due ticks in the same BEGIN IMMEDIATE
-- transaction that creates their tasks and moves `cursor` past them; each task's
-- idempotency key is (schedule, tick), so no tick ever launches two tasks, and a
-- killed pass leaves the ticks for the next one.

CREATE TABLE durable_schedule (
    name          TEXT PRIMARY KEY,
    workflow      TEXT NOT NULL,            -- a workflow name: each tick runs its newest binary
    entry         TEXT NOT NULL DEFAULT '',
    input         TEXT NOT NULL,            -- JSON text, given to every task
    cron          TEXT,                     -- a cron expression in `tz` ...
    tz            TEXT NOT NULL DEFAULT 'UTC',
    every         INTEGER,                  -- ... or a period in seconds from `anchor`
    anchor        REAL NOT NULL,
    overlap       TEXT NOT NULL CHECK (overlap IN ('skip', 'buffer-one', 'allow')),
    catch_up      TEXT NOT NULL CHECK (catch_up IN ('none', 'latest', 'all')),
    jitter        REAL NOT NULL DEFAULT 0,
    paused        INTEGER NOT NULL DEFAULT 0,
    cursor        REAL NOT NULL,            -- the latest tick handled; later ones are pending
    next_due_at   REAL NOT NULL,            -- when the tick after `cursor` is due (jitter in)
    buffered_tick REAL,                     -- buffer-one: a tick waiting for `last_task_id`
    last_task_id  INTEGER,
    fired         INTEGER NOT NULL DEFAULT 0,
    skipped       INTEGER NOT NULL DEFAULT 0,
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL,
    CHECK ((cron IS NULL) <> (every IS NULL))
);

-- The scheduler pass: due schedules, and those holding a buffered tick.
CREATE INDEX durable_schedule_due ON durable_schedule (next_due_at) WHERE NOT paused;
CREATE INDEX durable_schedule_buffered ON durable_schedule (name)
    WHERE buffered_tick IS NOT NULL AND NOT paused;

-- Queues (durable/storage/_sqlite_queues.py): a task may be launched onto a named
-- queue, with a key (for the per-key limit), a priority and a debounce key. A queued
-- task is claimed only by the queue claim, which checks the queue's limits in the same
-- BEGIN IMMEDIATE transaction that makes the tasks active; the general claim passes
-- over queued and paused tasks by its own partial index.
ALTER TABLE durable_task ADD COLUMN queue TEXT;
ALTER TABLE durable_task ADD COLUMN queue_key TEXT;
ALTER TABLE durable_task ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE durable_task ADD COLUMN debounce_key TEXT;
ALTER TABLE durable_task ADD COLUMN started_at REAL;     -- first claim: rate limits count it
ALTER TABLE durable_task ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;  -- `durable pause`

CREATE TABLE durable_queue (
    name             TEXT PRIMARY KEY,
    concurrency      INTEGER,              -- most active tasks at once (NULL: no limit)
    key_concurrency  INTEGER,              -- most active tasks per queue key
    rate_limit       INTEGER,              -- most starts ...
    rate_period      REAL,                 -- ... per this many seconds
    priority         INTEGER NOT NULL DEFAULT 0,  -- for tasks launched without one
    paused           INTEGER NOT NULL DEFAULT 0,  -- no new starts
    updated_at       REAL NOT NULL
);

CREATE INDEX durable_task_unqueued ON durable_task (id)
    WHERE state = 'ready' AND queue IS NULL AND NOT paused;
CREATE INDEX durable_task_queued ON durable_task (queue, priority DESC, id)
    WHERE state = 'ready' AND queue IS NOT NULL AND NOT paused;
CREATE INDEX durable_task_queue_active ON durable_task (queue, queue_key)
    WHERE state = 'active' AND queue IS NOT NULL;
CREATE INDEX durable_task_queue_starts ON durable_task (queue, started_at)
    WHERE queue IS NOT NULL AND started_at IS NOT NULL;
-- One waiting (debounced, not yet started) task per debounce key.
CREATE UNIQUE INDEX durable_task_debounce ON durable_task (debounce_key)
    WHERE debounce_key IS NOT NULL AND state = 'suspended' AND attempts = 0;
CREATE INDEX durable_task_paused ON durable_task (id) WHERE paused;
