-- durable Postgres schema: claim affinity (issue 14).
--
-- A worker that keeps a suspended task's instance live (`--instance-cache`) records its
-- id in `affinity` with the suspension. For a short grace after the task becomes
-- runnable (`updated_at` of a ready task, `wakeup_at` of a due timer), claims by other
-- workers pass it over, so that the worker holding the live instance takes it and goes
-- on without replay; after the grace anyone may claim it. Every claim clears it.

ALTER TABLE durable.tasks ADD COLUMN affinity text;

-- next_wakeup: when the grace of a ready task held for a worker ends. It holds a task
-- only between its wake-up and its claim, so it stays a few rows.
CREATE INDEX tasks_affine ON durable.tasks (updated_at)
    WHERE state = 'ready' AND affinity IS NOT NULL AND queue IS NULL AND NOT paused;
