-- durable SQLite schema: which run of its origin a fork copied (`durable fork --run`).
-- Forks made before runs existed copied run 1, the only one there was.

ALTER TABLE durable_task_origin ADD COLUMN run INTEGER NOT NULL DEFAULT 1;
