-- durable Postgres schema: which run of its origin a fork copied (`durable fork --run`).
-- Forks made before runs existed copied run 1, the only one there was.

ALTER TABLE durable.task_origins ADD COLUMN run integer NOT NULL DEFAULT 1;
