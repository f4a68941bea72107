-- durable Postgres schema: runs of a task (`durable.continue_as_new`).
--
-- A task is at run 1, 2, 3 ...; `durable.events` holds only the current run's events,
-- so replay reads no more than before. Continuing moves the run's events to
-- `durable.run_events` and records the run in `durable.task_runs`, in the transaction
-- that makes the task ready at its next run. `log_base`: the seq of the task's last log
-- chunk before the current run (each run's output starts again at position 0).

ALTER TABLE durable.tasks ADD COLUMN run integer NOT NULL DEFAULT 1;
ALTER TABLE durable.tasks ADD COLUMN log_base integer NOT NULL DEFAULT 0;

CREATE TABLE durable.task_runs (
    task_id     bigint NOT NULL REFERENCES durable.tasks (id) ON DELETE CASCADE,
    run         integer NOT NULL,
    input       text NOT NULL,
    events      integer NOT NULL,
    log_base    integer NOT NULL,               -- the task's log_base during the run
    ended_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_id, run)
);

CREATE TABLE durable.run_events (
    task_id     bigint NOT NULL REFERENCES durable.tasks (id) ON DELETE CASCADE,
    run         integer NOT NULL,
    idx         integer NOT NULL,
    label       text NOT NULL,
    digest      text,
    payload     text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (task_id, run, idx)
);
