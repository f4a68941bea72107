-- durable Postgres schema: tasks moved onto a new binary (`durable upgrade` without
-- --check).
--
-- A task runs on the binary it started with until an upgrade, having replayed its
-- history cleanly against new code, moves it. Each move is kept here, in the
-- transaction that changes the task's `workflow_hash`, so the change is auditable.
-- In the `durable` schema, which the guest role cannot use.

CREATE TABLE durable.task_binary_moves (
    task_id     bigint NOT NULL REFERENCES durable.tasks (id) ON DELETE CASCADE,
    seq         integer NOT NULL,           -- 1, 2 ... per task
    from_hash   text NOT NULL,
    to_hash     text NOT NULL REFERENCES durable.workflows (hash),
    events      integer NOT NULL,           -- the history's length when it was moved
    moved_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, seq)
);

-- `durable show` of a task lists the forks made from it.
CREATE INDEX task_origins_origin ON durable.task_origins (origin_id);
