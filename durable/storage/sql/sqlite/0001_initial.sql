-- durable schema, version 1: workflow binaries, tasks, events, logs, workers.
--
-- Every table is prefixed `durable_` because a workflow's own SQL runs in the same
-- file, behind an authorizer that refuses any `durable_*` table.
-- Times are REAL unix seconds (UTC). Applied inside one BEGIN IMMEDIATE transaction
-- by SQLiteStore.migrate(); no PRAGMAs here (they are per connection, set on open).

-- Workflow binaries, content-addressed: a task always replays against the exact code
-- it started with.
CREATE TABLE durable_workflow (
    hash        TEXT PRIMARY KEY,           -- SHA-256 hex of `wasm`
    name        TEXT,                       -- the name it was first stored under
    wasm        BLOB NOT NULL,
    created_at  REAL NOT NULL
);

-- find_workflow(name): the binary most recently stored under each name.
CREATE TABLE durable_workflow_name (
    name        TEXT PRIMARY KEY,
    hash        TEXT NOT NULL REFERENCES durable_workflow (hash),
    stored_at   REAL NOT NULL
);

CREATE TABLE durable_task (
    -- AUTOINCREMENT: ids increase and are never reused, even after the newest row goes.
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT NOT NULL,
    workflow_hash     TEXT NOT NULL REFERENCES durable_workflow (hash),
    entry             TEXT NOT NULL DEFAULT '',
    input             TEXT NOT NULL,
    state             TEXT NOT NULL CHECK (
                          state IN ('ready', 'active', 'suspended',
                                    'complete', 'failed', 'cancelled')),
    seed              INTEGER NOT NULL,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL,
    wakeup_at         REAL,                 -- suspended: when it becomes claimable
    result            TEXT,
    error             TEXT,
    owner             TEXT,                 -- active: the worker holding the lease
    lease_token       INTEGER NOT NULL DEFAULT 0,  -- fencing token, +1 on every claim
    lease_expires_at  REAL,                 -- active: when others may take it over
    attempts          INTEGER NOT NULL DEFAULT 0,
    parent_id         INTEGER REFERENCES durable_task (id),
    idempotency_key   TEXT UNIQUE,
    deadline_at       REAL,                 -- launch + timeout, if one was given
    cancel_requested  INTEGER NOT NULL DEFAULT 0,  -- cancel asked while active
    on_event          INTEGER NOT NULL DEFAULT 0,  -- suspended: a notification or a
                                                   -- child's end makes it ready
    wake_pending      INTEGER NOT NULL DEFAULT 0   -- active: such a wake-up happened;
                                                   -- cleared by claim
);

-- claim() takes ready tasks oldest first; list_tasks() filters by state, newest first.
CREATE INDEX durable_task_state ON durable_task (state, id);
-- claim() and next_wakeup(): due timers and expired leases, without scanning all tasks.
CREATE INDEX durable_task_timer ON durable_task (wakeup_at) WHERE state = 'suspended';
CREATE INDEX durable_task_lease ON durable_task (lease_expires_at) WHERE state = 'active';
-- renew_leases() and remove_worker().
CREATE INDEX durable_task_owner ON durable_task (owner) WHERE state = 'active';
CREATE INDEX durable_task_parent ON durable_task (parent_id) WHERE parent_id IS NOT NULL;

-- The event log: one row per recorded host call, gap-free from 0, never rewritten.
CREATE TABLE durable_event (
    task_id     INTEGER NOT NULL REFERENCES durable_task (id),
    idx         INTEGER NOT NULL,
    label       TEXT NOT NULL,
    digest      TEXT,
    payload     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (task_id, idx)
);

-- Guest output, written once; `seq` counts 1, 2, 3... per task.
CREATE TABLE durable_log (
    task_id     INTEGER NOT NULL REFERENCES durable_task (id),
    seq         INTEGER NOT NULL,
    position    INTEGER NOT NULL,           -- events recorded before the output
    stream      TEXT NOT NULL CHECK (stream IN ('stdout', 'stderr')),
    data        BLOB NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (task_id, seq)
);

-- Messages to tasks, consumed in order, each exactly once (in the same transaction as
-- the events of the attempt that consumed it).
CREATE TABLE durable_notification (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of arrival, per database
    task_id      INTEGER NOT NULL REFERENCES durable_task (id),
    event        TEXT NOT NULL,
    data         TEXT NOT NULL,
    key          TEXT,                      -- the sender's idempotency key, if any
    created_at   REAL NOT NULL,
    consumed_at  REAL,
    UNIQUE (task_id, key)
);
CREATE INDEX durable_notification_pending ON durable_notification (task_id, seq)
    WHERE consumed_at IS NULL;

CREATE TABLE durable_worker (
    id          TEXT PRIMARY KEY,
    hostname    TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  REAL NOT NULL
);
