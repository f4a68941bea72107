-- durable Postgres schema, version 5: task status values (`durable.set_status`).
--
-- The latest value per key of each task. A row is written by the fenced `append` or
-- `finish` statement that records the call, in the same statement as its event, so a
-- value shows exactly when that event is durable; `position` is that event's index.
-- Bounded by the host (durable/core/status.py): keys of at most 256 bytes, values of
-- at most 64 KiB, 1000 keys per task. In the `durable` schema, which the guest role
-- cannot use: a workflow's own SQL cannot read or forge a status.

CREATE TABLE durable.task_status (
    task_id     bigint NOT NULL REFERENCES durable.tasks (id) ON DELETE CASCADE,
    key         text NOT NULL,
    value       text NOT NULL,              -- JSON text, kept byte for byte
    position    integer NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (task_id, key)
);
