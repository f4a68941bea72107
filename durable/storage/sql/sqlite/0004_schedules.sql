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
