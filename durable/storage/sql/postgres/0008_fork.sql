-- durable Postgres schema, version 6: where a forked task came from (`durable fork`,
-- `durable retry`).
--
-- A fork is a new task whose history starts as a copy of another task's first `at`
-- events (copied in the transaction that creates it). The origin is left untouched.
-- In the `durable` schema, which the guest role cannot use.

CREATE TABLE durable.task_origins (
    task_id     bigint PRIMARY KEY REFERENCES durable.tasks (id) ON DELETE CASCADE,
    origin_id   bigint NOT NULL REFERENCES durable.tasks (id) ON DELETE CASCADE,
    at          integer NOT NULL            -- how many of the origin's events were copied
);
