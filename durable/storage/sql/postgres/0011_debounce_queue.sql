-- durable Postgres schema: debounce keys are scoped by queue (`durable launch
-- --debounce-key`).
--
-- Two queues may each hold a waiting task under the same debounce key (one tenant's
-- key in two pipelines); a task with no queue has its own scope. The queue is compared
-- through coalesce(), as the store's lookup does, so that the index serves it.

DROP INDEX durable.tasks_debounce;
CREATE UNIQUE INDEX tasks_debounce ON durable.tasks (coalesce(queue, ''), debounce_key)
    WHERE debounce_key IS NOT NULL AND state = 'suspended' AND attempts = 0;
