-- Named queries of the SQLite store (durable/storage/sqlite.py), loaded by
-- durable/storage/_sqlite_schema.py: each block starts with `-- name: <name>`.
-- Whole-line comments are documentation and are dropped when loading.
-- Parameters are positional `?`. Times are REAL unix seconds, passed in by the store
-- (its clock can be faked in tests).
-- `{task_columns}` expands to the column list that sqlite.py's `_task()` reads, and
-- `{rows}` (fenced inserts only) to one `(?, ?, ?, ?)` per row of the batch.

-- name: migrations_table
CREATE TABLE IF NOT EXISTS durable_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    applied_at  REAL NOT NULL
);

-- name: has_migrations_table
SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'durable_migrations';

-- name: schema_version
SELECT coalesce(max(version), 0) FROM durable_migrations;

-- name: migration_applied
SELECT 1 FROM durable_migrations WHERE version = ?;

-- name: record_migration
INSERT INTO durable_migrations (version, name, applied_at) VALUES (?, ?, ?);

-- name: put_workflow
INSERT INTO durable_workflow (hash, name, wasm, created_at) VALUES (?, ?, ?, ?)
ON CONFLICT (hash) DO NOTHING;

-- name: get_workflow
SELECT wasm FROM durable_workflow WHERE hash = ?;

-- name: workflow_exists
SELECT 1 FROM durable_workflow WHERE hash = ?;

-- name: name_workflow
-- Parameters: name, hash, stored_at.
INSERT INTO durable_workflow_name (name, hash, stored_at) VALUES (?, ?, ?)
ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, stored_at = excluded.stored_at;

-- name: find_workflow
SELECT hash FROM durable_workflow_name WHERE name = ?;

-- name: create_task
-- Inserts nothing (and returns no row) when the idempotency key is taken, the binary
-- is not stored, or the parent task does not exist; the store then finds out which.
-- The input goes in next (`insert_input`), in the same transaction: the row returned
-- has none yet. Parameters: name, entry, seed, created_at, updated_at, parent_id,
-- idempotency_key, deadline_at, workflow_hash, parent_id, parent_id.
INSERT INTO durable_task (name, workflow_hash, entry, state, seed, created_at,
                          updated_at, parent_id, idempotency_key, deadline_at)
SELECT ?, hash, ?, 'ready', ?, ?, ?, ?, ?, ? FROM durable_workflow
WHERE hash = ? AND (? IS NULL OR EXISTS (SELECT 1 FROM durable_task WHERE id = ?))
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING {task_columns};

-- name: insert_input
-- Parameters: task_id, input.
INSERT INTO durable_task_input (task_id, input) VALUES (?, ?);

-- name: task_by_key
SELECT {task_columns} FROM durable_task WHERE idempotency_key = ?;

-- name: get_task
SELECT {task_columns} FROM durable_task WHERE id = ?;

-- name: task_state
SELECT state FROM durable_task WHERE id = ?;

-- name: register_worker
-- Also the worker's heartbeat (the database's clock, in unix seconds): it registers
-- again every few seconds while it runs.
INSERT INTO durable_worker (id, hostname, pid, started_at, heartbeat_at)
VALUES (?, ?, ?, ?, (julianday('now') - 2440587.5) * 86400.0)
ON CONFLICT (id) DO UPDATE
SET hostname = excluded.hostname, pid = excluded.pid, started_at = excluded.started_at,
    heartbeat_at = excluded.heartbeat_at;

-- name: list_workers
SELECT id, hostname, pid, started_at FROM durable_worker ORDER BY started_at, id;

-- name: delete_worker
DELETE FROM durable_worker WHERE id = ?;

-- name: expire_leases
-- Parameters: now, worker_id.
UPDATE durable_task SET lease_expires_at = ? WHERE state = 'active' AND owner = ?;

-- name: claim
-- One statement, so the write lock is held from the choice to the update: no two
-- claimers (threads or processes) can take the same task. Each branch reads its own
-- index and stops at `limit`; INDEXED BY because, without ANALYZE statistics, SQLite
-- would rather walk every suspended or active task in id order than the due ones.
-- A takeover (an active task whose lease ran out, from another worker: one claiming
-- back its own is alive) counts a worker death, and one that reaches ?5 deaths fails
-- the task ("Quarantined", message ?8 filled in with the id and when the lease ran
-- out) instead of handing it out; the trigger `durable_task_quarantined` wakes its
-- parent. Tasks handed out with ?6 deaths (one left) come from the last branch only,
-- at most ?7 of them (see durable/storage/quarantine.py).
-- Parameters: ?1 worker_id, ?2 lease_expires_at, ?3 now, ?4 limit, ?5 max_deaths,
-- ?6 the last-chance death count, ?7 how many last chances may go out (NULL: any),
-- ?8 the quarantine message template, ?9 the end of other workers' affinity grace (now
-- minus the grace: a task held for another worker, `affinity`, that became runnable after
-- it is passed over; see migration 0011). RETURNING has no defined order; the store sorts.
UPDATE durable_task
SET state = iif(picked.quarantine, 'failed', 'active'),
    owner = iif(picked.quarantine, NULL, ?1),
    lease_token = durable_task.lease_token + 1,
    lease_expires_at = iif(picked.quarantine, NULL, ?2),
    attempts = durable_task.attempts + NOT picked.quarantine,
    deaths = durable_task.deaths + picked.takeover,
    error = iif(picked.quarantine,
                json_object('kind', 'Quarantined',
                            'message', printf(?8, durable_task.id,
                                              strftime('%Y-%m-%d %H:%M:%S',
                                                       durable_task.lease_expires_at,
                                                       'unixepoch')),
                            'traceback', ''),
                durable_task.error),
    wakeup_at = NULL, updated_at = ?3, on_event = 0, wake_pending = 0, affinity = NULL
FROM (
    SELECT id, state = 'active' AND owner IS NOT ?1 AS takeover,
           coalesce(state = 'active' AND owner IS NOT ?1 AND deaths + 1 >= ?5, 0) AS quarantine
    FROM durable_task
    WHERE id IN (
        SELECT id FROM (SELECT id FROM durable_task INDEXED BY durable_task_unqueued
                        WHERE state = 'ready' AND queue IS NULL AND NOT paused
                          AND deaths IS NOT ?6
                          AND (affinity IS NULL OR affinity = ?1 OR updated_at <= ?9)
                        ORDER BY id LIMIT ?4)
        UNION ALL
        SELECT id FROM (SELECT id FROM durable_task INDEXED BY durable_task_timer
                        WHERE state = 'suspended' AND wakeup_at <= ?3 AND deaths IS NOT ?6
                          AND queue IS NULL AND NOT paused
                          AND (affinity IS NULL OR affinity = ?1 OR wakeup_at <= ?9)
                        ORDER BY id LIMIT ?4)
        UNION ALL
        SELECT id FROM (SELECT id FROM durable_task INDEXED BY durable_task_lease
                        WHERE state = 'active' AND lease_expires_at <= ?3
                          AND deaths + (owner IS NOT ?1) IS NOT ?6
                        ORDER BY id LIMIT ?4)
        UNION ALL
        SELECT id FROM (
            SELECT id FROM (SELECT id FROM durable_task INDEXED BY durable_task_lease
                            WHERE state = 'active' AND lease_expires_at <= ?3
                              AND deaths + (owner IS NOT ?1) = ?6
                            ORDER BY id LIMIT coalesce(?7, ?4))
            UNION ALL
            SELECT id FROM (SELECT id FROM durable_task INDEXED BY durable_task_deaths
                            WHERE deaths > 0 AND state IN ('ready', 'suspended')
                              AND deaths = ?6
                              AND (state = 'ready' OR wakeup_at <= ?3)
                              AND queue IS NULL AND NOT paused
                            ORDER BY id LIMIT coalesce(?7, ?4))
            ORDER BY id LIMIT coalesce(?7, ?4))
        ORDER BY id LIMIT ?4)
) AS picked
WHERE durable_task.id = picked.id
RETURNING {task_columns}, lease_token,
          (SELECT coalesce(max(idx) + 1, 0) FROM durable_event WHERE task_id = durable_task.id);

-- name: renew_leases
-- Parameters: lease_expires_at, worker_id.
UPDATE durable_task SET lease_expires_at = ? WHERE state = 'active' AND owner = ?
RETURNING id, cancel_requested;

-- name: next_wakeup
-- Each min() is the first entry of a partial index. A paused task wakes nobody, nor
-- does a queued one that is due (its queue's limits hold it; a slot that frees wakes
-- the workers). A ready task held for a worker (`affinity`) is due to the others when
-- its grace ends. ?1 now, ?2 the affinity grace in seconds.
SELECT min(t) FROM (
    SELECT min(wakeup_at) AS t FROM durable_task INDEXED BY durable_task_timer
    WHERE state = 'suspended' AND NOT paused AND (queue IS NULL OR wakeup_at > ?1)
    UNION ALL
    SELECT min(lease_expires_at) FROM durable_task INDEXED BY durable_task_lease
    WHERE state = 'active'
    UNION ALL
    SELECT min(updated_at) + ?2 FROM durable_task INDEXED BY durable_task_affine
    WHERE state = 'ready' AND affinity IS NOT NULL AND queue IS NULL AND NOT paused);

-- name: load_history
SELECT idx, label, digest, payload, created_at FROM durable_event
WHERE task_id = ? ORDER BY idx;

-- name: next_index
SELECT coalesce(max(idx) + 1, 0) FROM durable_event WHERE task_id = ?;

-- name: read_logs
-- Parameters: task_id, after_seq, limit (-1: no limit).
SELECT seq, position, stream, data, created_at FROM durable_log
WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?;

-- name: logged_bytes
-- Guest output at one position, both streams (host notes sit at position -1). Only the
-- task's newest chunks match (positions grow with seq), but the sum reads the lengths
-- of all of its chunks: one index range, no blob data (length() reads the header).
-- Only the current run's chunks (after the task's `log_base`): each run starts again
-- at position 0. Parameters: task_id, position, task_id.
SELECT coalesce(sum(length(data)), 0) FROM durable_log
WHERE task_id = ? AND position = ?
  AND seq > (SELECT log_base FROM durable_task WHERE id = ?);

-- name: lease_holds
-- Parameters: task_id, worker_id, lease_token.
SELECT EXISTS (SELECT 1 FROM durable_task
               WHERE id = ? AND state = 'active' AND owner = ? AND lease_token = ?);

-- name: insert_events
-- Fenced and gap-checked in the statement itself, so the common append is one round
-- trip and one commit. SQLite materialises the SELECT before inserting (it reads the
-- target table), so max(idx) is the history as it was before this batch.
-- Parameters: task_id, created_at, (idx, label, digest, payload) per row,
-- task_id, worker_id, lease_token, task_id, first index.
INSERT INTO durable_event (task_id, idx, label, digest, payload, created_at)
SELECT ?, v.column1, v.column2, v.column3, v.column4, ?
FROM (VALUES {rows}) AS v
WHERE EXISTS (SELECT 1 FROM durable_task
              WHERE id = ? AND state = 'active' AND owner = ? AND lease_token = ?)
  AND (SELECT coalesce(max(idx) + 1, 0) FROM durable_event WHERE task_id = ?) = ?;

-- name: insert_logs
-- seq continues from the task's last chunk: 1, 2, 3 ...
-- Parameters: task_id, task_id, created_at, (offset from 1, position, stream, data)
-- per row, task_id, worker_id, lease_token.
INSERT INTO durable_log (task_id, seq, position, stream, data, created_at)
SELECT ?, (SELECT coalesce(max(seq), 0) FROM durable_log WHERE task_id = ?) + v.column1,
       v.column2, v.column3, v.column4, ?
FROM (VALUES {rows}) AS v
WHERE EXISTS (SELECT 1 FROM durable_task
              WHERE id = ? AND state = 'active' AND owner = ? AND lease_token = ?);

-- name: consume
-- Marks the attempt's notifications consumed, fenced like the inserts. `{rows}` is one
-- `?` per seq. Parameters: consumed_at, task_id, seqs..., task_id, worker_id, lease_token.
UPDATE durable_notification SET consumed_at = ?
WHERE task_id = ? AND consumed_at IS NULL AND seq IN ({rows})
  AND EXISTS (SELECT 1 FROM durable_task
              WHERE id = ? AND state = 'active' AND owner = ? AND lease_token = ?);

-- name: finish_end
-- Completed, Failed or Cancelled. Like every finish, it resets the worker deaths.
-- Parameters: state, result, error, updated_at, task_id, worker_id, lease_token.
UPDATE durable_task
SET state = ?, result = ?, error = ?, wakeup_at = NULL, owner = NULL,
    lease_expires_at = NULL, on_event = 0, deaths = 0, updated_at = ?
WHERE id = ? AND state = 'active' AND owner = ? AND lease_token = ?;

-- name: finish_suspend
-- Parks the task, unless a cancel request or (for `on_event`) a wake-up that came
-- while it ran says it must run again at once: then it is ready.
-- With ?7 (the worker keeps the task's instance live), the task is held for this worker
-- (`affinity`, see migration 0011); not a queued one, whose claims follow its queue.
-- Parameters: ?1 on_event, ?2 wakeup_at, ?3 updated_at, ?4 task_id, ?5 worker_id,
-- ?6 lease_token, ?7 kept.
UPDATE durable_task
SET state = iif(cancel_requested OR (?1 AND wake_pending), 'ready', 'suspended'),
    wakeup_at = iif(cancel_requested OR (?1 AND wake_pending), NULL, ?2),
    on_event = iif(cancel_requested OR (?1 AND wake_pending), 0, ?1),
    affinity = iif(?7 AND queue IS NULL, ?5, NULL),
    owner = NULL, lease_expires_at = NULL, deaths = 0, updated_at = ?3
WHERE id = ?4 AND state = 'active' AND owner = ?5 AND lease_token = ?6;

-- name: finish_release
-- An attempt that never started its guest (`Released(started=False)`) keeps the
-- worker deaths. Parameters: started, updated_at, task_id, worker_id, lease_token.
UPDATE durable_task
SET state = 'ready', wakeup_at = NULL, owner = NULL, lease_expires_at = NULL,
    on_event = 0, deaths = iif(?, 0, deaths), updated_at = ?
WHERE id = ? AND state = 'active' AND owner = ? AND lease_token = ?;

-- name: finish_continue_run
-- `ContinuedAsNew`, step 1: keep the run, and move its events to the runs' history.
-- Parameters: ended_at, task_id, task_id.
INSERT INTO durable_task_run (task_id, run, input, events, log_base, ended_at)
SELECT t.id, t.run, (SELECT input FROM durable_task_input WHERE task_id = t.id),
       (SELECT count(*) FROM durable_event WHERE task_id = t.id), t.log_base, ?
FROM durable_task AS t WHERE t.id = ?;

-- name: finish_continue_events
-- Parameters: task_id, task_id.
INSERT INTO durable_run_event (task_id, run, idx, label, digest, payload, created_at)
SELECT e.task_id, (SELECT run FROM durable_task WHERE id = e.task_id), e.idx, e.label,
       e.digest, e.payload, e.created_at
FROM durable_event AS e WHERE e.task_id = ?;

-- name: finish_continue_clear
DELETE FROM durable_event WHERE task_id = ?;

-- name: finish_continue_status
-- Status values carry over to the next run; their positions were the old run's, so
-- each becomes -1: in effect from the new run's start (a fork at 0 keeps it).
-- Parameters: task_id.
UPDATE durable_task_status SET position = -1 WHERE task_id = ?;

-- name: finish_continue_input
-- Parameters: input, task_id.
UPDATE durable_task_input SET input = ? WHERE task_id = ?;

-- name: finish_continue
-- Step 2, fenced: the task is ready at its next run (after the events moved, so that
-- nothing is left of the old run). Parameters: updated_at, task_id, worker_id,
-- lease_token.
UPDATE durable_task
SET state = 'ready', run = run + 1, wakeup_at = NULL, owner = NULL,
    lease_expires_at = NULL, on_event = 0, wake_pending = 0, deaths = 0,
    log_base = (SELECT coalesce(max(seq), 0) FROM durable_log WHERE task_id = durable_task.id),
    updated_at = ?
WHERE id = ? AND state = 'active' AND owner = ? AND lease_token = ?;

-- name: task_log_base
SELECT log_base FROM durable_task WHERE id = ?;

-- name: list_runs
SELECT run, input, events, ended_at, log_base FROM durable_task_run
WHERE task_id = ? ORDER BY run;

-- name: load_run_history
-- Parameters: task_id, run.
SELECT idx, label, digest, payload, created_at FROM durable_run_event
WHERE task_id = ? AND run = ? ORDER BY idx;

-- name: wake
-- A notification arrived, or a child ended: a task suspended `on_event` becomes ready;
-- an active one gets a pending wake-up for its next suspension. ?1 now, ?2 task_id.
UPDATE durable_task
SET state = iif(state = 'suspended', 'ready', state),
    wakeup_at = iif(state = 'suspended', NULL, wakeup_at),
    on_event = iif(state = 'suspended', 0, on_event),
    wake_pending = iif(state = 'active', 1, wake_pending),
    updated_at = iif(state = 'suspended', ?1, updated_at)
WHERE id = ?2 AND ((state = 'suspended' AND on_event) OR state = 'active');

-- name: wake_parent
-- `wake` for the parent of the task that just ended. ?1 now, ?2 the child's id.
UPDATE durable_task
SET state = iif(state = 'suspended', 'ready', state),
    wakeup_at = iif(state = 'suspended', NULL, wakeup_at),
    on_event = iif(state = 'suspended', 0, on_event),
    wake_pending = iif(state = 'active', 1, wake_pending),
    updated_at = iif(state = 'suspended', ?1, updated_at)
WHERE id = (SELECT parent_id FROM durable_task WHERE id = ?2)
  AND ((state = 'suspended' AND on_event) OR state = 'active');

-- name: notification_by_key
SELECT seq, task_id, event, data, created_at FROM durable_notification
WHERE task_id = ? AND key = ?;

-- name: insert_notification
-- Parameters: task_id, event, data, key, created_at.
INSERT INTO durable_notification (task_id, event, data, key, created_at)
VALUES (?, ?, ?, ?, ?)
RETURNING seq, task_id, event, data, created_at;

-- name: next_notification
-- Parameters: task_id, event, event (NULL: any event).
SELECT seq, task_id, event, data, created_at FROM durable_notification
WHERE task_id = ? AND consumed_at IS NULL AND (? IS NULL OR event = ?)
ORDER BY seq LIMIT 1;

-- name: cancel_tree
-- The task and all its descendants that are ready or suspended end as cancelled.
-- Parameters: ?1 task_id, ?2 error, ?3 updated_at.
WITH RECURSIVE tree (id) AS (
    SELECT ?1
    UNION
    SELECT t.id FROM durable_task AS t JOIN tree ON t.parent_id = tree.id)
UPDATE durable_task
SET state = 'cancelled', error = ?2, owner = NULL, wakeup_at = NULL, on_event = 0,
    lease_expires_at = NULL, updated_at = ?3
WHERE id IN tree AND state IN ('ready', 'suspended')
RETURNING id, parent_id;

-- name: flag_tree
-- ... and the active ones are asked to stop. Parameters: ?1 task_id, ?2 updated_at.
WITH RECURSIVE tree (id) AS (
    SELECT ?1
    UNION
    SELECT t.id FROM durable_task AS t JOIN tree ON t.parent_id = tree.id)
UPDATE durable_task SET cancel_requested = 1, updated_at = ?2
WHERE id IN tree AND state = 'active';

-- name: data_version
-- Changes whenever another connection commits to the file (not for our own commits).
PRAGMA data_version;

-- name: set_status
-- Sets one status value, fenced like the inserts: one row changes while the lease
-- holds, none otherwise. Parameters: task_id, key, value, position, updated_at,
-- task_id, worker_id, lease_token.
INSERT INTO durable_task_status (task_id, key, value, position, updated_at)
SELECT ?, ?, ?, ?, ?
WHERE EXISTS (SELECT 1 FROM durable_task
              WHERE id = ? AND state = 'active' AND owner = ? AND lease_token = ?)
ON CONFLICT (task_id, key) DO UPDATE
SET value = excluded.value, position = excluded.position, updated_at = excluded.updated_at;

-- name: read_status
-- Parameters: task_id.
SELECT key, value, position, updated_at FROM durable_task_status
WHERE task_id = ? ORDER BY key;

-- name: cancel_child
-- A `CancelChild` side-write, part 1: `cancel_tree` for child ?1, but only while it is
-- a child of ?2 that has not ended, and fenced by ?2's lease (?5 owner, ?6 token).
-- Parameters: ?1 child_id, ?2 task_id, ?3 error, ?4 updated_at, ?5 worker, ?6 token.
WITH RECURSIVE tree (id) AS (
    SELECT id FROM durable_task
    WHERE id = ?1 AND parent_id = ?2 AND state IN ('ready', 'active', 'suspended')
      AND EXISTS (SELECT 1 FROM durable_task
                  WHERE id = ?2 AND state = 'active' AND owner = ?5 AND lease_token = ?6)
    UNION
    SELECT t.id FROM durable_task AS t JOIN tree ON t.parent_id = tree.id)
UPDATE durable_task
SET state = 'cancelled', error = ?3, owner = NULL, wakeup_at = NULL, on_event = 0,
    lease_expires_at = NULL, updated_at = ?4
WHERE id IN tree AND state IN ('ready', 'suspended');

-- name: flag_child
-- ... part 2: `flag_tree` under the same conditions. It runs first: part 1 ends a
-- suspended child, after which this would find no child that has not ended.
-- Parameters: ?1 child_id, ?2 task_id, ?3 updated_at, ?4 worker, ?5 token.
WITH RECURSIVE tree (id) AS (
    SELECT id FROM durable_task
    WHERE id = ?1 AND parent_id = ?2 AND state IN ('ready', 'active', 'suspended')
      AND EXISTS (SELECT 1 FROM durable_task
                  WHERE id = ?2 AND state = 'active' AND owner = ?4 AND lease_token = ?5)
    UNION
    SELECT t.id FROM durable_task AS t JOIN tree ON t.parent_id = tree.id)
UPDATE durable_task SET cancel_requested = 1, updated_at = ?3
WHERE id IN tree AND state = 'active';
-- name: fork_task
-- A ready task with the origin's name, entry and seed (the seed derives its random
-- bytes, which the copied events must see again), on the binary given.
-- The seed is the origin's run's (`durable.core.runs.run_seed`). Parameters: seed,
-- created_at, updated_at, workflow_hash, origin_id.
INSERT INTO durable_task (name, workflow_hash, entry, state, seed, created_at, updated_at)
SELECT t.name, w.hash, t.entry, 'ready', ?, ?, ?
FROM durable_task AS t, durable_workflow AS w
WHERE w.hash = ? AND t.id = ?
RETURNING {task_columns};

-- name: fork_events
-- Parameters: the fork's task_id, the origin's id, how many events to copy.
INSERT INTO durable_event (task_id, idx, label, digest, payload, created_at)
SELECT ?, idx, label, digest, payload, created_at FROM durable_event
WHERE task_id = ? AND idx < ?;

-- name: fork_run_events
-- From an ended run. Parameters: the fork's task_id, the origin's id, the run, how many.
INSERT INTO durable_event (task_id, idx, label, digest, payload, created_at)
SELECT ?, idx, label, digest, payload, created_at FROM durable_run_event
WHERE task_id = ? AND run = ? AND idx < ?;

-- name: fork_origin
-- Parameters: task_id, origin_id, at, run.
INSERT INTO durable_task_origin (task_id, origin_id, at, run) VALUES (?, ?, ?, ?);

-- name: task_origin
SELECT origin_id, at, run FROM durable_task_origin WHERE task_id = ?;

-- name: event_count
SELECT count(*) FROM durable_event WHERE task_id = ?;

-- name: fork_logs
-- The output the copied events account for (positions 0 .. at; a replay skips what
-- is logged, so the fork's log would otherwise miss it), renumbered from 1; host
-- notes (position -1) stay with the origin. Only the run's own output: seq in
-- (low, high]. Parameters: the fork, the origin, at, low, high.
INSERT INTO durable_log (task_id, seq, position, stream, data, created_at)
SELECT ?, row_number() OVER (ORDER BY seq), position, stream, data, created_at
FROM durable_log WHERE task_id = ? AND position BETWEEN 0 AND ? AND seq > ? AND seq <= ?;

-- name: workflow_hashes
-- Every binary stored under a name (first stored under it, or named by it since).
SELECT hash FROM durable_workflow WHERE name = ?
UNION SELECT hash FROM durable_workflow_name WHERE name = ?;
-- name: insert_schedule
-- Parameters: name, workflow, entry, input, cron, tz, every, anchor, overlap, catch_up,
-- jitter, cursor, next_due_at, created_at, updated_at. Nothing when the name is taken.
INSERT INTO durable_schedule (name, workflow, entry, input, cron, tz, every, anchor, overlap,
                              catch_up, jitter, cursor, next_due_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (name) DO NOTHING;

-- name: get_schedule
SELECT {schedule_columns} FROM durable_schedule WHERE name = ?;

-- name: list_schedules
SELECT {schedule_columns} FROM durable_schedule ORDER BY name;

-- name: pause_schedule
-- Parameters: paused, updated_at, name.
UPDATE durable_schedule SET paused = ?, updated_at = ? WHERE name = ?;

-- name: delete_schedule
DELETE FROM durable_schedule WHERE name = ?;

-- name: any_schedule_due
-- The scheduler's cheap look, outside any transaction. Parameter: now.
SELECT EXISTS (SELECT 1 FROM durable_schedule INDEXED BY durable_schedule_due
               WHERE NOT paused AND next_due_at <= ?)
    OR EXISTS (SELECT 1 FROM durable_schedule INDEXED BY durable_schedule_buffered
               WHERE buffered_tick IS NOT NULL AND NOT paused);

-- name: due_schedules
-- Parameters: now, limit.
SELECT {schedule_columns} FROM durable_schedule
WHERE NOT paused AND (next_due_at <= ?1 OR buffered_tick IS NOT NULL)
ORDER BY next_due_at LIMIT ?2;

-- name: next_schedule_due
SELECT min(next_due_at) FROM durable_schedule INDEXED BY durable_schedule_due WHERE NOT paused;

-- name: schedule_task
-- The task of one tick, running the newest binary of the schedule's workflow; nothing
-- when the tick's key is already taken or no binary has that name.
-- Parameters: name, entry, seed, created_at, updated_at, idempotency_key, workflow name.
INSERT INTO durable_task (name, workflow_hash, entry, state, seed, created_at, updated_at,
                          idempotency_key)
SELECT ?, hash, ?, 'ready', ?, ?, ?, ? FROM durable_workflow_name WHERE name = ?
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id;

-- name: task_id_by_key
SELECT id FROM durable_task WHERE idempotency_key = ?;

-- name: advance_schedule
-- After a pass. Parameters: cursor, next_due_at, buffered_tick, last_task_id, fired,
-- skipped, updated_at, name.
UPDATE durable_schedule
SET cursor = ?, next_due_at = ?, buffered_tick = ?, last_task_id = ?, fired = fired + ?,
    skipped = skipped + ?, updated_at = ?
WHERE name = ?;

-- name: trigger_schedule
-- Parameters: last_task_id, updated_at, name.
UPDATE durable_schedule SET last_task_id = ?, fired = fired + 1, updated_at = ? WHERE name = ?;

-- name: any_queue
SELECT EXISTS (SELECT 1 FROM durable_queue);

-- name: ensure_queue
-- Parameters: name, updated_at.
INSERT INTO durable_queue (name, updated_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING;

-- name: get_queue
SELECT name, concurrency, key_concurrency, rate_limit, rate_period, priority, paused
FROM durable_queue WHERE name = ?;

-- name: list_queues
SELECT name, concurrency, key_concurrency, rate_limit, rate_period, priority, paused
FROM durable_queue ORDER BY name;

-- name: set_queue
-- Parameters: concurrency, key_concurrency, rate_limit, rate_period, priority, paused,
-- updated_at, name.
UPDATE durable_queue
SET concurrency = ?, key_concurrency = ?, rate_limit = ?, rate_period = ?, priority = ?,
    paused = ?, updated_at = ?
WHERE name = ?;

-- name: queue_counts
-- Parameter: ?1 queue.
SELECT (SELECT count(*) FROM durable_task INDEXED BY durable_task_queued
        WHERE queue = ?1 AND state = 'ready' AND NOT paused),
       (SELECT count(*) FROM durable_task INDEXED BY durable_task_queue_active
        WHERE queue = ?1 AND state = 'active'),
       (SELECT count(*) FROM durable_task INDEXED BY durable_task_timer
        WHERE state = 'suspended' AND queue = ?1);

-- name: claimable_queues
-- Unpaused queues with a task ready, or due. ?1 now.
SELECT name, concurrency, key_concurrency, rate_limit, rate_period FROM durable_queue AS q
WHERE NOT paused
  AND (EXISTS (SELECT 1 FROM durable_task INDEXED BY durable_task_queued
               WHERE queue = q.name AND state = 'ready' AND NOT paused)
       OR EXISTS (SELECT 1 FROM durable_task INDEXED BY durable_task_timer
                  WHERE state = 'suspended' AND wakeup_at <= ?1 AND queue = q.name
                    AND NOT paused))
ORDER BY name;

-- name: queue_active
SELECT count(*) FROM durable_task INDEXED BY durable_task_queue_active
WHERE queue = ? AND state = 'active';

-- name: queue_key_active
SELECT queue_key, count(*) FROM durable_task INDEXED BY durable_task_queue_active
WHERE queue = ? AND state = 'active' GROUP BY queue_key;

-- name: queue_started
-- Starts since ?2 (the rate window).
SELECT count(*) FROM durable_task INDEXED BY durable_task_queue_starts
WHERE queue = ? AND started_at > ?;

-- name: queue_candidates
-- Highest priority first, then oldest. ?1 queue, ?2 now, ?3 limit.
SELECT id, queue_key, priority FROM (
    SELECT id, queue_key, priority FROM (
        SELECT id, queue_key, priority FROM durable_task INDEXED BY durable_task_queued
        WHERE queue = ?1 AND state = 'ready' AND NOT paused
        ORDER BY priority DESC, id LIMIT ?3)
    UNION ALL
    SELECT id, queue_key, priority FROM (
        SELECT id, queue_key, priority FROM durable_task INDEXED BY durable_task_timer
        WHERE state = 'suspended' AND wakeup_at <= ?2 AND queue = ?1 AND NOT paused
        ORDER BY priority DESC, id LIMIT ?3))
ORDER BY priority DESC, id LIMIT ?3;

-- name: claim_queued
-- `{rows}` is one `?` per task id. Parameters: worker_id, lease_expires_at, now, now,
-- ids...
UPDATE durable_task
SET state = 'active', owner = ?, lease_token = lease_token + 1, lease_expires_at = ?,
    attempts = attempts + 1, started_at = coalesce(started_at, ?), wakeup_at = NULL,
    on_event = 0, wake_pending = 0, updated_at = ?, affinity = NULL
WHERE id IN ({rows}) AND state IN ('ready', 'suspended')
RETURNING {task_columns}, lease_token,
          (SELECT coalesce(max(idx) + 1, 0) FROM durable_event WHERE task_id = durable_task.id);

-- name: place_task
-- A new task's queue, key and priority (the queue's default when ?3 is NULL).
-- Parameters: ?1 queue, ?2 queue_key, ?3 priority, ?4 task_id.
UPDATE durable_task
SET queue = ?1, queue_key = ?2,
    priority = coalesce(?3, (SELECT priority FROM durable_queue WHERE name = ?1), 0)
WHERE id = ?4;

-- name: debounce_find
-- The waiting task of debounce key ?1 in queue ?2 (NULL: no queue), by its unique index.
SELECT id FROM durable_task INDEXED BY durable_task_debounce
WHERE coalesce(queue, '') = coalesce(?2, '') AND debounce_key = ?1
  AND state = 'suspended' AND attempts = 0;

-- name: debounce_task
-- Parameters: debounce_key, wakeup_at, updated_at, task_id.
UPDATE durable_task
SET debounce_key = ?, state = 'suspended', wakeup_at = ?, updated_at = ?
WHERE id = ?;

-- name: replace_input
UPDATE durable_task_input SET input = ? WHERE task_id = ?;

-- name: pause_task
-- Parameters: paused, updated_at, task_id.
UPDATE durable_task SET paused = ?, updated_at = ? WHERE id = ?;

-- name: paused_active
-- The active tasks of worker ?1 that have been paused.
SELECT id FROM durable_task INDEXED BY durable_task_paused
WHERE paused AND state = 'active' AND owner = ?;

-- name: move_task
-- `durable upgrade`: onto binary ?2, only if the task is still on ?3, not running
-- (ready or suspended: no lease), not claimed since the upgrade read it (?4 attempts:
-- every claim adds one, and only a claim's lease may add events), and its history is
-- the ?5 events that were replayed. Parameters: ?1 task_id, ?2 to, ?3 from,
-- ?4 attempts, ?5 events, ?6 updated_at.
UPDATE durable_task SET workflow_hash = ?2, updated_at = ?6
WHERE id = ?1 AND workflow_hash = ?3 AND state IN ('ready', 'suspended') AND attempts = ?4
  AND (SELECT count(*) FROM durable_event WHERE task_id = ?1) = ?5;

-- name: record_binary_move
-- Parameters: task_id, from_hash, to_hash, events, moved_at.
INSERT INTO durable_task_binary_move (task_id, seq, from_hash, to_hash, events, moved_at)
SELECT ?1, coalesce(max(seq), 0) + 1, ?2, ?3, ?4, ?5 FROM durable_task_binary_move
WHERE task_id = ?1;

-- name: binary_moves
SELECT from_hash, to_hash, events, moved_at FROM durable_task_binary_move
WHERE task_id = ? ORDER BY seq;

-- name: fork_status
-- The origin's status values set before the fork point and not set again since (the
-- table keeps each key's latest value only). Parameters: the fork, the origin, at.
INSERT INTO durable_task_status (task_id, key, value, position, updated_at)
SELECT ?1, key, value, position, updated_at FROM durable_task_status
WHERE task_id = ?2 AND position < ?3;

-- name: task_forks
-- The forks made from a task, oldest first. Parameters: origin_id, limit.
SELECT task_id, at, run FROM durable_task_origin WHERE origin_id = ? ORDER BY task_id LIMIT ?;

-- name: rate_window_opens
-- When the next rate-limited queue with a task ready may start one again: its oldest
-- start in the window leaves the window then. Only queues at their limit (one below
-- it starts tasks now). A worker waits for this instead of its poll. ?1 now.
SELECT min(opens) FROM (
    SELECT min(s.started_at) + q.rate_period AS opens, count(*) AS n, q.rate_limit AS lim
    FROM durable_queue AS q
    JOIN durable_task AS s INDEXED BY durable_task_queue_starts
      ON s.queue = q.name AND s.started_at > ?1 - q.rate_period
    WHERE q.rate_limit IS NOT NULL AND NOT q.paused
      AND EXISTS (SELECT 1 FROM durable_task INDEXED BY durable_task_queued
                  WHERE queue = q.name AND state = 'ready' AND NOT paused)
    GROUP BY q.name)
WHERE n >= lim;
