-- durable schema: tasks moved onto a new binary (`durable upgrade` without --check).
--
-- A task runs on the binary it started with until an upgrade, having replayed its
-- history cleanly against new code, moves it. Each move is kept here, in the
-- transaction that changes the task's `workflow_hash`, so the change is auditable.

CREATE TABLE durable_task_binary_move (
    task_id     INTEGER NOT NULL REFERENCES durable_task (id),
    seq         INTEGER NOT NULL,           -- 1, 2 ... per task
    from_hash   TEXT NOT NULL,
    to_hash     TEXT NOT NULL REFERENCES durable_workflow (hash),
    events      INTEGER NOT NULL,           -- the history's length when it was moved
    moved_at    REAL NOT NULL,
    PRIMARY KEY (task_id, seq)
) WITHOUT ROWID;

-- `durable show` of a task lists the forks made from it.
CREATE INDEX durable_task_origin_origin ON durable_task_origin (origin_id);
