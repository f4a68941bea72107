-- durable schema, version 3: task status values (`durable.set_status`).
--
-- The latest value per key of each task. A row is written by the fenced `set_status`
-- statement in the same transaction as the event that records the call, so a value
-- shows exactly when that event is durable; `position` is that event's index.
-- Bounded by the host (durable/core/status.py): keys of at most 256 bytes, values of
-- at most 64 KiB, 1000 keys per task.

CREATE TABLE durable_task_status (
    task_id     INTEGER NOT NULL REFERENCES durable_task (id),
    key         TEXT NOT NULL,
    value       TEXT NOT NULL,              -- JSON text
    position    INTEGER NOT NULL,
    updated_at  REAL NOT NULL,
    PRIMARY KEY (task_id, key)
) WITHOUT ROWID;
