-- durable schema, version 4: where a forked task came from (`durable fork`, `retry`).
--
-- A fork is a new task whose history starts as a copy of another task's first `at`
-- events (copied in the transaction that creates it). The origin is left untouched.

CREATE TABLE durable_task_origin (
    task_id     INTEGER PRIMARY KEY REFERENCES durable_task (id),
    origin_id   INTEGER NOT NULL REFERENCES durable_task (id),
    at          INTEGER NOT NULL            -- how many of the origin's events were copied
);
