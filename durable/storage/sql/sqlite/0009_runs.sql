-- durable SQLite schema: runs of a task (`durable.continue_as_new`).
--
-- A task is at run 1, 2, 3 ...; `durable_event` holds only the current run's events,
-- so replay reads no more than before. Continuing moves the run's events to
-- `durable_run_event` and records the run in `durable_task_run`, in the transaction
-- that makes the task ready at its next run. `log_base`: the seq of the task's last log
-- chunk before the current run (each run's output starts again at position 0).

ALTER TABLE durable_task ADD COLUMN run INTEGER NOT NULL DEFAULT 1;
ALTER TABLE durable_task ADD COLUMN log_base INTEGER NOT NULL DEFAULT 0;

CREATE TABLE durable_task_run (
    task_id     INTEGER NOT NULL REFERENCES durable_task (id),
    run         INTEGER NOT NULL,
    input       TEXT NOT NULL,
    events      INTEGER NOT NULL,
    log_base    INTEGER NOT NULL,               -- the task's log_base during the run
    ended_at    REAL NOT NULL,
    PRIMARY KEY (task_id, run)
);

CREATE TABLE durable_run_event (
    task_id     INTEGER NOT NULL REFERENCES durable_task (id),
    run         INTEGER NOT NULL,
    idx         INTEGER NOT NULL,
    label       TEXT NOT NULL,
    digest      TEXT,
    payload     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    PRIMARY KEY (task_id, run, idx)
);
