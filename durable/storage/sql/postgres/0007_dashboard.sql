-- durable schema, version 6: what the dashboard (`durable ui`) shows of the fleet.
--
-- Throughput and failures over time count the tasks that ended recently; without this
-- index that is a scan of every task ever run. Partial: only ended tasks, whose
-- `updated_at` is when they ended (an ended row is never written again), with the
-- state in the index too, so that counting them by state reads no table row.

CREATE INDEX tasks_ended ON durable.tasks (updated_at, state)
    WHERE state IN ('complete', 'failed', 'cancelled');

-- When each worker last said it is alive: set by every registration, which a running
-- worker repeats every few seconds (an idle worker holds no lease to renew).
ALTER TABLE durable.workers ADD COLUMN heartbeat_at timestamptz;
