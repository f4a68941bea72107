-- Named queries of the Postgres store (durable/storage/postgres.py), loaded by
-- durable/storage/_pg_schema.py: each block starts with `-- name: <name>`.
-- All times come from the database clock.

-- name: workflow_exists
SELECT 1 FROM durable.workflows WHERE hash = $1;

-- name: put_workflow
INSERT INTO durable.workflows (hash, name, wasm)
VALUES ($1, $2, $3)
ON CONFLICT (hash) DO NOTHING;

-- name: put_named_workflow
-- The binary (if new) and its name in one statement: the name now means this binary.
WITH stored AS (
    INSERT INTO durable.workflows (hash, name, wasm)
    VALUES ($1, $2, $3)
    ON CONFLICT (hash) DO NOTHING
)
INSERT INTO durable.workflow_names (name, hash, stored_at)
VALUES ($2, $1, clock_timestamp())
ON CONFLICT (name) DO UPDATE SET hash = EXCLUDED.hash, stored_at = EXCLUDED.stored_at;

-- name: name_workflow
-- For a binary already stored: only point the name at it. $1 hash, $2 name.
INSERT INTO durable.workflow_names (name, hash, stored_at)
VALUES ($2, $1, clock_timestamp())
ON CONFLICT (name) DO UPDATE SET hash = EXCLUDED.hash, stored_at = EXCLUDED.stored_at;

-- name: get_workflow
SELECT wasm FROM durable.workflows WHERE hash = $1;

-- name: find_workflow
SELECT hash FROM durable.workflow_names WHERE name = $1;

-- name: create_task
-- A second launch with the same idempotency key inserts nothing and returns no row;
-- the caller then reads the existing task.
-- $8 is the timeout in seconds (NULL: no deadline).
INSERT INTO durable.tasks (name, workflow_hash, entry, input, seed, parent_id, idempotency_key,
                           deadline_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8::float8))
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING *;

-- name: task_by_key
SELECT * FROM durable.tasks WHERE idempotency_key = $1;

-- name: get_task
SELECT * FROM durable.tasks WHERE id = $1;

-- name: list_tasks
-- $3 is the name pattern already translated to an anchored regular expression.
SELECT * FROM durable.tasks
WHERE ($1::text[] IS NULL OR state = ANY ($1::text[]))
  AND ($3::text IS NULL OR name ~ $3::text)
  AND ($4::bigint IS NULL OR parent_id = $4::bigint)
ORDER BY id DESC
LIMIT $2;

-- name: task_state_for_update
-- Locks the row against claims (which skip it) and state changes, not against
-- appends (whose fence takes only FOR KEY SHARE).
SELECT state FROM durable.tasks WHERE id = $1 FOR NO KEY UPDATE;

-- name: notification_by_key
SELECT seq, task_id, event, data, created_at FROM durable.notifications
WHERE task_id = $1 AND key = $2;

-- name: notify
-- `notify` in one statement (one round trip, committed on its own): lock the task row,
-- queue the notification unless the task has ended, and wake the task as `wake` does.
-- The lock orders it with a concurrent `finish`: that either sees the wake-up mark or
-- is seen suspended and woken. No row: no such task; a row without a seq: the task has
-- ended, or (a non-terminal state) a notification with the same key went in first.
-- A row with a seq, `state` 'suspended' and `on_event`: this woke the task.
-- $1 task, $2 event, $3 data, $4 key.
WITH t AS (
    SELECT id, state, on_event FROM durable.tasks WHERE id = $1 FOR UPDATE
), n AS (
    INSERT INTO durable.notifications (task_id, event, data, key)
    SELECT t.id, $2, $3, $4 FROM t WHERE t.state NOT IN ('complete', 'failed', 'cancelled')
    ON CONFLICT (task_id, key) DO NOTHING
    RETURNING seq, task_id, event, data, created_at
), w AS (
    UPDATE durable.tasks AS k
    SET state = CASE WHEN k.state = 'suspended' THEN 'ready' ELSE k.state END,
        wakeup_at = CASE WHEN k.state = 'suspended' THEN NULL ELSE k.wakeup_at END,
        on_event = CASE WHEN k.state = 'suspended' THEN false ELSE k.on_event END,
        wake_pending = k.wake_pending OR k.state = 'active',
        updated_at = CASE WHEN k.state = 'suspended' THEN now() ELSE k.updated_at END
    FROM n
    WHERE k.id = n.task_id AND ((k.state = 'suspended' AND k.on_event) OR k.state = 'active')
)
SELECT t.state, t.on_event, n.seq, n.task_id, n.event, n.data, n.created_at
FROM t LEFT JOIN n ON true;

-- name: next_notification
SELECT seq, task_id, event, data, created_at FROM durable.notifications
WHERE task_id = $1 AND consumed_at IS NULL AND ($2::text IS NULL OR event = $2::text)
ORDER BY seq
LIMIT 1;

-- name: wake
-- A notification arrived, or a child ended: a task suspended `on_event` becomes ready
-- (the trigger then wakes the workers); an active one keeps a pending wake-up for its
-- next suspension.
UPDATE durable.tasks
SET state = CASE WHEN state = 'suspended' THEN 'ready' ELSE state END,
    wakeup_at = CASE WHEN state = 'suspended' THEN NULL ELSE wakeup_at END,
    on_event = CASE WHEN state = 'suspended' THEN false ELSE on_event END,
    wake_pending = wake_pending OR state = 'active',
    updated_at = CASE WHEN state = 'suspended' THEN now() ELSE updated_at END
WHERE id = $1 AND ((state = 'suspended' AND on_event) OR state = 'active');

-- name: lock_tree
-- The task and all its descendants, locked from the newest id down: children before
-- parents, the same order in which `finish` locks a child and then wakes its parent,
-- so the two cannot deadlock.
WITH RECURSIVE tree (id) AS (
    SELECT id FROM durable.tasks WHERE id = $1
    UNION
    SELECT t.id FROM durable.tasks AS t JOIN tree ON t.parent_id = tree.id
)
SELECT t.id, t.state, t.parent_id FROM durable.tasks AS t
WHERE t.id IN (SELECT id FROM tree)
ORDER BY t.id DESC
FOR NO KEY UPDATE OF t;

-- name: cancel_tasks
-- Ends the ready and suspended ones among $1 as cancelled, with error $2.
UPDATE durable.tasks
SET state = 'cancelled', error = $2, owner = NULL, wakeup_at = NULL, on_event = false,
    lease_expires_at = NULL, updated_at = now()
WHERE id = ANY ($1::bigint[]) AND state IN ('ready', 'suspended')
RETURNING id, parent_id;

-- name: flag_tasks
-- ... and asks the active ones to stop; their workers see it in renew_leases.
UPDATE durable.tasks
SET cancel_requested = true, updated_at = now()
WHERE id = ANY ($1::bigint[]) AND state = 'active';

-- name: register_worker
-- Also the worker's heartbeat: it registers again every few seconds while it runs.
INSERT INTO durable.workers (id, hostname, pid, started_at, heartbeat_at)
VALUES ($1, $2, $3, $4, now())
ON CONFLICT (id) DO UPDATE
SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, started_at = EXCLUDED.started_at,
    heartbeat_at = EXCLUDED.heartbeat_at;

-- name: list_workers
SELECT id, hostname, pid, started_at FROM durable.workers ORDER BY started_at, id;

-- name: remove_worker
-- Expire (not clear) the leases: the owner and token stay, so fencing is unchanged,
-- but any worker may now claim the tasks. Notify even when there were none: waking a
-- worker spuriously is cheap, missing a wake-up is not.
WITH gone AS (
    DELETE FROM durable.workers WHERE id = $1
), expired AS (
    UPDATE durable.tasks
    SET lease_expires_at = now()
    WHERE owner = $1 AND state = 'active' AND lease_expires_at > now()
)
SELECT pg_notify('durable_work', '');

-- name: claim
-- SKIP LOCKED: concurrent claimers pass over each other's rows instead of waiting, and
-- a row another claimer changed after our snapshot is re-checked against the WHERE
-- clause before we lock it, so no task is handed out twice.
-- A takeover (an active task whose lease ran out, from another worker: one claiming
-- back its own is alive) counts a worker death, and one that reaches $4 deaths fails
-- the task ("Quarantined", message $7 filled in with the id and
-- when the lease ran out) instead of handing it out; the trigger `tasks_quarantined`
-- wakes its parent and the workers. Tasks handed out with $5 deaths (one left) come
-- from `last_chance` only, at most $6 of them (see durable/storage/quarantine.py).
-- $1 worker, $2 limit, $3 lease seconds, $4 max deaths (NULL: no quarantine), $5 the
-- last-chance death count (NULL: none), $6 how many last chances (NULL: any), $7 the
-- message template, $8 the affinity grace in seconds: a task held for another worker
-- (`affinity`) that became runnable less than $8 ago is passed over (migration 0014).
-- The same round trip also answers what the claimer asks next (`_pg_claim`): whether
-- any queue exists (a row of NULLs but that when nothing is claimed), each task's
-- history length, and the attempt of a task claimed for the first time whose history
-- holds at most $9 events (a fork's copied events; none for a new task): `events` as
-- arrays, `logged` the bytes at the history's end. Only a first claim, because only
-- then is this statement's snapshot sure to hold every event: events come from a
-- lease (a claim) or are copied in the transaction that inserted the row, and the row
-- is a candidate only if this snapshot sees it. Another task's events may have been
-- appended after the snapshot, before the lock (a takeover): its attempt reads them
-- itself, as before. And each task's oldest pending notification, `note_*` (see the
-- join at the end).
WITH candidates AS (
    -- Each branch reads a partial index of runnable tasks only (tasks_unqueued,
    -- tasks_wakeup, tasks_lease), so a claim costs the same with a million tasks
    -- sleeping or waiting in full queues; `common` then locks and re-checks them.
    -- A little over $2 each, for those another claimer holds locked.
    (SELECT id FROM durable.tasks
     WHERE state = 'ready' AND queue IS NULL AND NOT paused
       AND deaths IS DISTINCT FROM $5::integer
       AND (affinity IS NULL OR affinity = $1
            OR updated_at <= now() - make_interval(secs => $8::float8))
     ORDER BY id LIMIT $2 + 16)
    UNION ALL
    (SELECT id FROM durable.tasks
     WHERE state = 'suspended' AND wakeup_at <= now() AND queue IS NULL AND NOT paused
       AND deaths IS DISTINCT FROM $5::integer
       AND (affinity IS NULL OR affinity = $1
            OR wakeup_at <= now() - make_interval(secs => $8::float8))
     ORDER BY id LIMIT $2 + 16)
    UNION ALL
    (SELECT id FROM durable.tasks
     WHERE state = 'active' AND lease_expires_at <= now()
       AND deaths + (owner IS DISTINCT FROM $1)::integer IS DISTINCT FROM $5::integer
     ORDER BY id LIMIT $2 + 16)
), common AS (
    SELECT id,
           coalesce(state = 'active' AND owner IS DISTINCT FROM $1
                    AND deaths + 1 >= $4::integer, false) AS quarantine
    FROM durable.tasks
    WHERE id IN (SELECT id FROM candidates)
      AND ((state = 'ready' AND queue IS NULL AND NOT paused
            AND (affinity IS NULL OR affinity = $1
                 OR updated_at <= now() - make_interval(secs => $8::float8)))
           OR (state = 'suspended' AND wakeup_at <= now() AND queue IS NULL AND NOT paused
               AND (affinity IS NULL OR affinity = $1
                    OR wakeup_at <= now() - make_interval(secs => $8::float8)))
           OR (state = 'active' AND lease_expires_at <= now()))
      AND deaths + (state = 'active' AND owner IS DISTINCT FROM $1)::integer
          IS DISTINCT FROM $5::integer
    ORDER BY id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), last_chance AS (
    -- Two disjuncts, each matching an index (tasks_lease, tasks_deaths): a scan of
    -- every live task per claim would grow with the backlog.
    SELECT id, false AS quarantine
    FROM durable.tasks
    WHERE (state = 'active' AND lease_expires_at <= now()
           AND deaths + (owner IS DISTINCT FROM $1)::integer = $5::integer)
       OR (deaths > 0 AND state IN ('ready', 'suspended') AND deaths = $5::integer
           AND (state = 'ready' OR wakeup_at <= now()) AND queue IS NULL AND NOT paused)
    ORDER BY id
    LIMIT coalesce($6::integer, $2)
    FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id, quarantine FROM common
    UNION ALL
    SELECT id, quarantine FROM last_chance
    ORDER BY id
    LIMIT $2
), claimed AS (
    UPDATE durable.tasks AS t
    SET state = CASE WHEN picked.quarantine THEN 'failed' ELSE 'active' END,
        owner = CASE WHEN picked.quarantine THEN NULL ELSE $1 END,
        lease_token = t.lease_token + 1,
        lease_secret = gen_random_uuid(),  -- checked by durable_api.record_sql_transaction
        lease_expires_at = CASE WHEN picked.quarantine THEN NULL
                                ELSE now() + make_interval(secs => $3::float8) END,
        attempts = t.attempts + CASE WHEN picked.quarantine THEN 0 ELSE 1 END,
        deaths = t.deaths + (t.state = 'active' AND t.owner IS DISTINCT FROM $1)::integer,
        error = CASE WHEN picked.quarantine
                     THEN json_build_object(
                              'kind', 'Quarantined',
                              'message', format($7::text, t.id,
                                                to_char(t.lease_expires_at AT TIME ZONE 'UTC',
                                                        'YYYY-MM-DD HH24:MI:SS')),
                              'traceback', '')::text
                     ELSE t.error END,
        wakeup_at = NULL,
        on_event = false,
        wake_pending = false,
        affinity = NULL,
        updated_at = now()
    FROM picked
    WHERE t.id = picked.id
    RETURNING t.*
)
SELECT c.*, h.history_length, a.idx, a.label, a.digest, a.payload, a.created,
       p.note_task_id, p.note_seq, p.note_event, p.note_data, p.note_created_at,
       CASE WHEN g.ahead THEN
           (SELECT coalesce(sum(octet_length(l.data)), 0)::bigint
            FROM durable.logs AS l
            WHERE l.task_id = c.id AND l.position = h.history_length AND l.seq > c.log_base)
       END AS logged,
       EXISTS (SELECT 1 FROM durable.queues) AS any_queue
FROM (SELECT 1) AS one
LEFT JOIN claimed AS c ON true
-- Its history's length (one index probe), for a worker that resumes its live
-- instance: no second trip to check it (`durable.worker.resume`).
LEFT JOIN LATERAL (
    SELECT coalesce(max(e.idx) + 1, 0) AS history_length
    FROM durable.events AS e WHERE e.task_id = c.id
) AS h ON true
-- Read ahead or not. The events are read only when it is (a condition in the join's
-- ON, or in the scan's WHERE, was checked on each of the events read, 10,000 of them
-- for a task woken on its kept instance).
CROSS JOIN LATERAL (
    SELECT c.attempts = 1 AND c.state = 'active' AND h.history_length <= $9::integer AS ahead
) AS g
CROSS JOIN LATERAL (
    SELECT array_agg(e.idx ORDER BY e.idx) AS idx, array_agg(e.label ORDER BY e.idx) AS label,
           array_agg(e.digest ORDER BY e.idx) AS digest,
           array_agg(e.payload ORDER BY e.idx) AS payload,
           array_agg(e.created_at ORDER BY e.idx) AS created
    FROM durable.events AS e
    WHERE g.ahead AND e.task_id = c.id
) AS a
-- The oldest pending notification (one probe of notifications_pending), for the
-- attempt's first look (`Claim.notification`): only if nothing can have consumed it
-- between this snapshot and the lock. Consuming takes a lease, so: the task held none
-- in the snapshot (not active) and none was taken since (the claim's token is one
-- above the snapshot's). `s` is the snapshot's row: the statement does not see its own
-- UPDATE.
LEFT JOIN LATERAL (
    SELECT n.task_id AS note_task_id, n.seq AS note_seq, n.event AS note_event,
           n.data AS note_data, n.created_at AS note_created_at
    FROM durable.notifications AS n
    WHERE n.task_id = c.id AND n.consumed_at IS NULL AND c.state = 'active'
      AND EXISTS (SELECT 1 FROM durable.tasks AS s
                  WHERE s.id = c.id AND s.state IN ('ready', 'suspended')
                    AND s.lease_token + 1 = c.lease_token)
    ORDER BY n.seq
    LIMIT 1
) AS p ON true;

-- name: renew_leases
UPDATE durable.tasks
SET lease_expires_at = now() + make_interval(secs => $2::float8)
WHERE owner = $1 AND state = 'active'
RETURNING id, cancel_requested;

-- name: next_wakeup
-- least() ignores NULLs: NULL only when nothing waits on time. A paused task wakes
-- nobody, nor does a queued one that is due (its queue's limits hold it; a slot that
-- frees wakes the workers). A ready task held for a worker (`affinity`) is due to the
-- others when its grace ends: $1, in seconds.
-- `opens`, in the same round trip: when the next rate-limited queue with a task ready
-- may start one again: its oldest start in the window leaves the window then. Only
-- queues at their limit (one below it starts tasks now). A worker waits for this
-- instead of its poll.
SELECT least(
    (SELECT min(wakeup_at) FROM durable.tasks
     WHERE state = 'suspended' AND NOT paused AND (queue IS NULL OR wakeup_at > now())),
    (SELECT min(lease_expires_at) FROM durable.tasks WHERE state = 'active'),
    (SELECT min(updated_at) + make_interval(secs => $1::float8) FROM durable.tasks
     WHERE state = 'ready' AND affinity IS NOT NULL AND queue IS NULL AND NOT paused)
) AS due,
(SELECT min(w.opens) FROM (
    SELECT min(s.started_at) + make_interval(secs => q.rate_period) AS opens,
           count(*) AS n, q.rate_limit AS lim
    FROM durable.queues AS q
    JOIN durable.tasks AS s
      ON s.queue = q.name AND s.started_at > now() - make_interval(secs => q.rate_period)
    WHERE q.rate_limit IS NOT NULL AND NOT q.paused
      AND EXISTS (SELECT 1 FROM durable.tasks AS r
                  WHERE r.queue = q.name AND r.state = 'ready' AND NOT r.paused)
    GROUP BY q.name, q.rate_limit, q.rate_period) AS w
 WHERE w.n >= w.lim) AS opens;

-- name: load_history
SELECT idx, label, digest, payload, created_at
FROM durable.events
WHERE task_id = $1
ORDER BY idx;

-- name: history_length
SELECT coalesce(max(idx) + 1, 0) FROM durable.events WHERE task_id = $1;

-- name: read_logs
-- $3: how many chunks at most (NULL: all).
SELECT seq, position, stream, data, created_at
FROM durable.logs
WHERE task_id = $1 AND seq > $2
ORDER BY seq
LIMIT $3;

-- name: load_attempt
-- `load_history` and `logged_bytes` at its end, in one statement (one round trip, one
-- snapshot): each row is an event with the bytes logged at the history's end beside it;
-- an empty history is one row of NULLs but that. $1 task.
SELECT e.idx, e.label, e.digest, e.payload, e.created_at, l.logged
FROM (
    SELECT coalesce(sum(octet_length(g.data)), 0)::bigint AS logged
    FROM durable.logs AS g
    WHERE g.task_id = $1
      AND g.position = (SELECT count(*) FROM durable.events AS c WHERE c.task_id = $1)
      AND g.seq > (SELECT log_base FROM durable.tasks WHERE id = $1)
) AS l
LEFT JOIN durable.events AS e ON e.task_id = $1
ORDER BY e.idx;

-- name: logged_bytes
-- Guest output at one position, both streams (host notes sit at position -1).
-- octet_length of a TOASTed value reads its header, not its data.
-- Only the current run's chunks (after the task's `log_base`): each run starts again
-- at position 0.
SELECT coalesce(sum(octet_length(data)), 0)::bigint
FROM durable.logs
WHERE task_id = $1 AND position = $2
  AND seq > (SELECT log_base FROM durable.tasks WHERE id = $1);

-- name: continue_run
-- `ContinuedAsNew`, after `finish` made the task ready (in the same transaction, so
-- no one sees it between): keep the run and move its events to the runs' history, and
-- put the task at its next run with the input $2. One statement: every part reads the
-- task and its events as they were before it.
WITH kept AS (
    INSERT INTO durable.task_runs (task_id, run, input, events, log_base, ended_at)
    SELECT t.id, t.run, t.input,
           (SELECT count(*) FROM durable.events AS e WHERE e.task_id = t.id), t.log_base, now()
    FROM durable.tasks AS t WHERE t.id = $1
), moved AS (
    INSERT INTO durable.run_events (task_id, run, idx, label, digest, payload, created_at)
    SELECT e.task_id, t.run, e.idx, e.label, e.digest, e.payload, e.created_at
    FROM durable.events AS e JOIN durable.tasks AS t ON t.id = e.task_id
    WHERE e.task_id = $1
), cleared AS (
    DELETE FROM durable.events WHERE task_id = $1
), carried AS (
    -- Status values carry over; their positions were the old run's, so each becomes
    -- -1: in effect from the new run's start (a fork at 0 keeps it).
    UPDATE durable.task_status SET position = -1 WHERE task_id = $1
)
UPDATE durable.tasks
SET run = run + 1, input = $2, on_event = false, wake_pending = false,
    log_base = (SELECT coalesce(max(g.seq), 0) FROM durable.logs AS g WHERE g.task_id = $1)
WHERE id = $1;

-- name: task_run
SELECT run FROM durable.tasks WHERE id = $1;

-- name: task_input
SELECT input FROM durable.tasks WHERE id = $1;

-- name: list_runs
SELECT run, input, events, ended_at, log_base FROM durable.task_runs
WHERE task_id = $1 ORDER BY run;

-- name: task_log_base
SELECT log_base FROM durable.tasks WHERE id = $1;

-- name: load_run_history
SELECT idx, label, digest, payload, created_at FROM durable.run_events
WHERE task_id = $1 AND run = $2 ORDER BY idx;

-- name: append
-- One statement, one round trip, and no new version of the task row per event.
-- `t` is the fence: it matches only while the lease is in force, the first new index
-- continues the history, and every notification to consume is this task's and still
-- pending. Its FOR KEY SHARE lock makes a concurrent claim skip the task (claims use
-- SKIP LOCKED) or, if the claim got there first, makes this statement wait and then
-- re-check the row, which no longer matches. The writes hang off `t`, so a failed
-- check writes nothing. (The events' foreign key takes the same lock anyway.)
-- $1 task, $2 worker, $3 token; events as arrays $4 idx, $5 label, $6 digest,
-- $7 payload; logs as arrays $8 position, $9 stream, $10 data; $11 the notification
-- seqs to mark consumed; status values to set as arrays $12 key, $13 value, $14
-- position (one per key: `_pg_codec.status_args`).
WITH t AS (
    SELECT id FROM durable.tasks
    WHERE id = $1 AND owner = $2 AND lease_token = $3 AND state = 'active'
      AND (cardinality($4::integer[]) = 0
           OR ($4::integer[])[1] = (SELECT coalesce(max(e.idx) + 1, 0)
                                    FROM durable.events AS e WHERE e.task_id = $1))
      AND (cardinality($11::bigint[]) = 0
           OR cardinality($11::bigint[]) = (
               SELECT count(*) FROM durable.notifications AS n
               WHERE n.task_id = $1 AND n.consumed_at IS NULL
                 AND n.seq = ANY ($11::bigint[])))
    FOR KEY SHARE
), ev AS (
    INSERT INTO durable.events (task_id, idx, label, digest, payload)
    SELECT t.id, e.idx, e.label, e.digest, e.payload
    FROM t, unnest($4::integer[], $5::text[], $6::text[], $7::text[])
        AS e (idx, label, digest, payload)
), lg AS (
    INSERT INTO durable.logs (task_id, seq, position, stream, data)
    SELECT t.id,
           (SELECT coalesce(max(g.seq), 0) FROM durable.logs AS g WHERE g.task_id = $1) + l.n,
           l.position, l.stream, l.data
    FROM t, unnest($8::integer[], $9::text[], $10::bytea[]) WITH ORDINALITY
        AS l (position, stream, data, n)
), nc AS (
    UPDATE durable.notifications AS n
    SET consumed_at = now()
    FROM t
    WHERE n.task_id = t.id AND n.seq = ANY ($11::bigint[]) AND n.consumed_at IS NULL
), st AS (
    INSERT INTO durable.task_status AS s (task_id, key, value, position, updated_at)
    SELECT t.id, v.key, v.value, v.position, now()
    FROM t, unnest($12::text[], $13::text[], $14::integer[]) AS v (key, value, position)
    ON CONFLICT (task_id, key) DO UPDATE
    SET value = excluded.value, position = excluded.position, updated_at = excluded.updated_at
)
SELECT count(*) FROM t;

-- name: append_one
-- `append` for the most common call, one event and nothing else, with scalar
-- parameters: $1 task, $2 worker, $3 token, $4 idx, $5 label, $6 digest, $7 payload.
WITH t AS (
    SELECT id FROM durable.tasks
    WHERE id = $1 AND owner = $2 AND lease_token = $3 AND state = 'active'
      AND $4 = (SELECT coalesce(max(e.idx) + 1, 0) FROM durable.events AS e WHERE e.task_id = $1)
    FOR KEY SHARE
)
INSERT INTO durable.events (task_id, idx, label, digest, payload)
SELECT t.id, $4, $5, $6, $7 FROM t;

-- name: finish
-- `append` plus the outcome, in one fenced statement; here the fence is the UPDATE of
-- the task row itself. $12 state ('complete', 'failed', 'cancelled', 'suspended' or
-- 'ready'), $13 result, $14 error, $15 the wake-up as an interval from this
-- statement's start (the database's clock, which claims read; not the worker's: the
-- worker measured the interval just before sending it), $16 on_event.
-- A suspension becomes 'ready' instead when a cancel was requested, or when it waits
-- on events and one came while the task ran (`wake_pending`): no wake-up is lost.
-- The owner and lease are cleared; the token stays, so it keeps increasing. A task
-- that ends wakes its parent (`parent`), which is another row: no double update.
-- The worker deaths are reset, unless $17 (an attempt that never started its guest).
-- Status values to set: $18 key, $19 value, $20 position, as in `append`. $21: the
-- worker keeps the suspended task's instance live, so the task is held for it
-- (`affinity`, migration 0014); not a queued one, whose claims follow its queue.
WITH t AS (
    UPDATE durable.tasks AS t
    SET state = CASE WHEN $12::text = 'suspended'
                          AND (t.cancel_requested OR ($16::boolean AND t.wake_pending))
                     THEN 'ready' ELSE $12::text END,
        wakeup_at = CASE WHEN $12::text = 'suspended'
                              AND NOT (t.cancel_requested OR ($16::boolean AND t.wake_pending))
                         THEN statement_timestamp() + $15::interval END,
        on_event = ($12::text = 'suspended' AND $16::boolean
                    AND NOT (t.cancel_requested OR t.wake_pending)),
        result = $13,
        error = $14,
        owner = NULL,
        lease_expires_at = NULL,
        deaths = CASE WHEN $17::boolean THEN t.deaths ELSE 0 END,
        affinity = CASE WHEN $12::text = 'suspended' AND $21::boolean AND t.queue IS NULL
                        THEN $2 END,
        updated_at = now()
    WHERE id = $1 AND owner = $2 AND lease_token = $3 AND state = 'active'
      AND (cardinality($4::integer[]) = 0
           OR ($4::integer[])[1] = (SELECT coalesce(max(e.idx) + 1, 0)
                                    FROM durable.events AS e WHERE e.task_id = $1))
      AND (cardinality($11::bigint[]) = 0
           OR cardinality($11::bigint[]) = (
               SELECT count(*) FROM durable.notifications AS n
               WHERE n.task_id = $1 AND n.consumed_at IS NULL
                 AND n.seq = ANY ($11::bigint[])))
    RETURNING t.id, t.parent_id, t.state
), ev AS (
    INSERT INTO durable.events (task_id, idx, label, digest, payload)
    SELECT t.id, e.idx, e.label, e.digest, e.payload
    FROM t, unnest($4::integer[], $5::text[], $6::text[], $7::text[])
        AS e (idx, label, digest, payload)
), lg AS (
    INSERT INTO durable.logs (task_id, seq, position, stream, data)
    SELECT t.id,
           (SELECT coalesce(max(g.seq), 0) FROM durable.logs AS g WHERE g.task_id = $1) + l.n,
           l.position, l.stream, l.data
    FROM t, unnest($8::integer[], $9::text[], $10::bytea[]) WITH ORDINALITY
        AS l (position, stream, data, n)
), nc AS (
    UPDATE durable.notifications AS n
    SET consumed_at = now()
    FROM t
    WHERE n.task_id = t.id AND n.seq = ANY ($11::bigint[]) AND n.consumed_at IS NULL
), st AS (
    INSERT INTO durable.task_status AS s (task_id, key, value, position, updated_at)
    SELECT t.id, v.key, v.value, v.position, now()
    FROM t, unnest($18::text[], $19::text[], $20::integer[]) AS v (key, value, position)
    ON CONFLICT (task_id, key) DO UPDATE
    SET value = excluded.value, position = excluded.position, updated_at = excluded.updated_at
), parent AS (
    UPDATE durable.tasks AS p
    SET state = CASE WHEN p.state = 'suspended' THEN 'ready' ELSE p.state END,
        wakeup_at = CASE WHEN p.state = 'suspended' THEN NULL ELSE p.wakeup_at END,
        on_event = CASE WHEN p.state = 'suspended' THEN false ELSE p.on_event END,
        wake_pending = p.wake_pending OR p.state = 'active',
        updated_at = CASE WHEN p.state = 'suspended' THEN now() ELSE p.updated_at END
    -- The parent by its key (a join with `t` was planned as a scan of every live task).
    WHERE p.id = (SELECT t.parent_id FROM t WHERE t.state IN ('complete', 'failed', 'cancelled'))
      AND ((p.state = 'suspended' AND p.on_event) OR p.state = 'active')
)
SELECT count(*) FROM t;

-- name: lease_state
-- Only read after a fenced write matched nothing, to say why.
SELECT t.owner, t.lease_token, t.state,
       (SELECT coalesce(max(e.idx) + 1, 0) FROM durable.events AS e WHERE e.task_id = t.id)
           AS event_count
FROM durable.tasks AS t
WHERE t.id = $1;

-- name: lease_secret
-- The secret `claim` drew for this lease, for a workflow SQL transaction to present
-- when it records its events (`record_sql_transaction`); no row once the lease is gone.
SELECT lease_secret FROM durable.tasks
WHERE id = $1 AND owner = $2 AND lease_token = $3 AND state = 'active';

-- name: record_sql_transaction
-- Sent on the guest login's connection, in the workflow's transaction, after its last
-- statement (see 0003_guest_login.sql): `append`, fenced by the lease and its secret.
SELECT durable_api.record_sql_transaction($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12);

-- name: guest_login
-- The zero-configuration login for workflow SQL (`_pg_login.ensure_login`).
SELECT g.role_name, g.password, current_database()::text AS database,
       EXISTS (SELECT 1 FROM pg_roles AS r WHERE r.rolname = g.role_name) AS role_exists
FROM durable.guest_login AS g;

-- name: guest_roles
-- Every role the login $1 can act as: itself, and each role it is a member of, directly
-- or through others (exactly those `SET ROLE` can reach), the login's own row first.
-- `engine`: the role of this session (the engine's), or an owner of durable's schemas or
-- of anything in them. `owns_database`: the owner of this database, who could change
-- the engine's session defaults (ALTER DATABASE ... SET).
WITH owners (oid) AS (
    SELECT r.oid FROM pg_roles AS r WHERE r.rolname = current_user
    UNION
    SELECT n.nspowner FROM pg_namespace AS n WHERE n.nspname IN ('durable', 'durable_api')
    UNION
    SELECT c.relowner FROM pg_class AS c
    JOIN pg_namespace AS n ON n.oid = c.relnamespace
    WHERE n.nspname IN ('durable', 'durable_api')
    UNION
    SELECT p.proowner FROM pg_proc AS p
    JOIN pg_namespace AS n ON n.oid = p.pronamespace
    WHERE n.nspname IN ('durable', 'durable_api')
)
SELECT r.rolname::text AS rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
       r.rolreplication, r.rolbypassrls,
       r.oid IN (SELECT o.oid FROM owners AS o) AS engine,
       r.oid = (SELECT d.datdba FROM pg_database AS d WHERE d.datname = current_database())
           AS owns_database
FROM pg_roles AS r
WHERE pg_has_role($1::name, r.oid, 'MEMBER')
ORDER BY r.rolname = $1::name DESC, r.rolname;

-- name: guest_privileges
-- What the login $1 may do that workflow SQL must not: use schema `durable`, create in
-- `durable_api`, create in the database (schemas, and trusted extensions, whose scripts
-- run as a superuser), execute any of the server functions $2 (signatures; those this
-- server lacks are skipped).
SELECT has_schema_privilege($1::name, 'durable', 'USAGE')
           OR has_schema_privilege($1::name, 'durable', 'CREATE') AS durable_schema,
       has_schema_privilege($1::name, 'durable_api', 'CREATE') AS api_create,
       has_database_privilege($1::name, current_database(), 'CREATE') AS database_create,
       ARRAY(SELECT f.name FROM unnest($2::text[]) WITH ORDINALITY AS f (name, n)
             WHERE to_regprocedure(f.name) IS NOT NULL
               AND has_function_privilege($1::name, f.name, 'EXECUTE')
             ORDER BY f.n) AS functions;

-- name: guest_may_record
-- Whether the login $1 may call the record function $2 (its signature).
SELECT has_schema_privilege($1::name, 'durable_api', 'USAGE')
       AND has_function_privilege($1::name, $2::text, 'EXECUTE');

-- name: guest_has_settings
-- Whether the login $1 has session defaults of its own (ALTER ROLE ... SET), which a
-- workflow may give its own login.
SELECT EXISTS (SELECT 1 FROM pg_db_role_setting AS s
               JOIN pg_roles AS r ON r.oid = s.setrole
               WHERE r.rolname = $1::name);

-- name: read_status
SELECT key, value, position, updated_at FROM durable.task_status
WHERE task_id = $1 ORDER BY key;

-- name: fork_task
-- A ready task with the origin's name, entry and seed (the seed derives its random
-- bytes, which the copied events must see again): the origin's run's
-- (`durable.core.runs.run_seed`). $1 origin, $2 binary, $3 input, $4 seed.
INSERT INTO durable.tasks (name, workflow_hash, entry, input, seed)
SELECT name, $2, entry, $3, $4 FROM durable.tasks WHERE id = $1
RETURNING *;

-- name: fork_events
-- $1 the fork, $2 its origin, $3 how many events to copy.
INSERT INTO durable.events (task_id, idx, label, digest, payload, created_at)
SELECT $1, idx, label, digest, payload, created_at FROM durable.events
WHERE task_id = $2 AND idx < $3;

-- name: fork_run_events
-- From an ended run: $1 the fork, $2 its origin, $3 the run, $4 how many events.
INSERT INTO durable.events (task_id, idx, label, digest, payload, created_at)
SELECT $1, idx, label, digest, payload, created_at FROM durable.run_events
WHERE task_id = $2 AND run = $3 AND idx < $4;

-- name: fork_origin
-- $4 the origin's run the events were copied from.
INSERT INTO durable.task_origins (task_id, origin_id, at, run) VALUES ($1, $2, $3, $4);

-- name: task_origin
SELECT origin_id, at, run FROM durable.task_origins WHERE task_id = $1;

-- name: event_count
SELECT count(*) FROM durable.events WHERE task_id = $1;

-- name: lock_task_for_fork
SELECT 1 FROM durable.tasks WHERE id = $1 FOR SHARE;

-- name: fork_logs
-- The output the copied events account for (positions 0 .. at; a replay skips what
-- is logged, so the fork's log would otherwise miss it), renumbered from 1; host
-- notes (position -1) stay with the origin. Only the run's own output: seq in
-- ($4, $5]. $1 the fork, $2 the origin, $3 at.
INSERT INTO durable.logs (task_id, seq, position, stream, data, created_at)
SELECT $1, row_number() OVER (ORDER BY seq), position, stream, data, created_at
FROM durable.logs
WHERE task_id = $2 AND position BETWEEN 0 AND $3 AND seq > $4 AND seq <= $5;

-- name: workflow_hashes
-- Every binary stored under a name (first stored under it, or named by it since).
SELECT hash FROM durable.workflows WHERE name = $1
UNION SELECT hash FROM durable.workflow_names WHERE name = $1;
-- name: insert_schedule
-- Nothing when the name is taken. $1 name, $2 workflow, $3 entry, $4 input, $5 cron,
-- $6 tz, $7 every, $8 anchor, $9 overlap, $10 catch_up, $11 jitter, $12 cursor,
-- $13 next_due_at.
INSERT INTO durable.schedules (name, workflow, entry, input, cron, tz, every, anchor, overlap,
                               catch_up, jitter, cursor, next_due_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (name) DO NOTHING
RETURNING name;

-- name: get_schedule
SELECT name, workflow, entry, input, cron, tz, every, anchor, overlap, catch_up, jitter,
       paused, cursor, next_due_at, buffered_tick, last_task_id, fired, skipped, created_at
FROM durable.schedules WHERE name = $1;

-- name: list_schedules
SELECT name, workflow, entry, input, cron, tz, every, anchor, overlap, catch_up, jitter,
       paused, cursor, next_due_at, buffered_tick, last_task_id, fired, skipped, created_at
FROM durable.schedules ORDER BY name;

-- name: pause_schedule
UPDATE durable.schedules SET paused = $2, updated_at = now() WHERE name = $1 RETURNING name;

-- name: delete_schedule
DELETE FROM durable.schedules WHERE name = $1 RETURNING name;

-- name: due_schedules
-- Locked for the pass; another worker's pass skips them (and does the others).
SELECT name, workflow, entry, input, cron, tz, every, anchor, overlap, catch_up, jitter,
       paused, cursor, next_due_at, buffered_tick, last_task_id, fired, skipped, created_at,
       (SELECT t.state FROM durable.tasks AS t WHERE t.id = s.last_task_id) AS last_state,
       now() AS now
FROM durable.schedules AS s
WHERE NOT paused AND (next_due_at <= now() OR buffered_tick IS NOT NULL)
ORDER BY next_due_at
LIMIT $1
FOR UPDATE OF s SKIP LOCKED;

-- name: any_schedule_due
-- Whether a pass would find anything to do (no locks taken), and `next_due_schedule`
-- in the same round trip: most looks find nothing due, and then need no other.
SELECT EXISTS (SELECT 1 FROM durable.schedules WHERE NOT paused AND next_due_at <= now())
    OR EXISTS (SELECT 1 FROM durable.schedules
               WHERE buffered_tick IS NOT NULL AND NOT paused) AS due,
       (SELECT min(next_due_at) FROM durable.schedules WHERE NOT paused) AS next;

-- name: next_schedule_due
SELECT min(next_due_at) FROM durable.schedules WHERE NOT paused;

-- name: schedule_task
-- The task of one tick, running the newest binary of the schedule's workflow; no row
-- when the tick's key is already taken or no binary has that name.
-- $1 task name, $2 entry, $3 input, $4 seed, $5 idempotency key, $6 workflow name.
INSERT INTO durable.tasks (name, workflow_hash, entry, input, seed, idempotency_key)
SELECT $1, hash, $2, $3, $4, $5 FROM durable.workflow_names WHERE name = $6
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id;

-- name: task_id_by_key
SELECT id FROM durable.tasks WHERE idempotency_key = $1;

-- name: advance_schedule
-- After a pass. $1 name, $2 cursor, $3 next_due_at, $4 buffered_tick, $5 last_task_id,
-- $6 fired, $7 skipped.
UPDATE durable.schedules
SET cursor = $2, next_due_at = $3, buffered_tick = $4, last_task_id = $5,
    fired = fired + $6, skipped = skipped + $7, updated_at = now()
WHERE name = $1;

-- name: trigger_schedule
UPDATE durable.schedules SET last_task_id = $2, fired = fired + 1, updated_at = now()
WHERE name = $1;

-- name: db_now
SELECT now();

-- name: ensure_queue
INSERT INTO durable.queues (name) VALUES ($1) ON CONFLICT (name) DO NOTHING;

-- name: get_queue
SELECT name, concurrency, key_concurrency, rate_limit, rate_period, priority, paused
FROM durable.queues WHERE name = $1;

-- name: list_queues
SELECT name FROM durable.queues ORDER BY name;

-- name: set_queue
INSERT INTO durable.queues AS q (name, concurrency, key_concurrency, rate_limit, rate_period,
                                 priority, paused)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (name) DO UPDATE
SET concurrency = excluded.concurrency, key_concurrency = excluded.key_concurrency,
    rate_limit = excluded.rate_limit, rate_period = excluded.rate_period,
    priority = excluded.priority, paused = excluded.paused, updated_at = now();

-- name: queue_counts
SELECT (SELECT count(*) FROM durable.tasks
        WHERE queue = $1 AND state = 'ready' AND NOT paused) AS ready,
       (SELECT count(*) FROM durable.tasks WHERE queue = $1 AND state = 'active') AS active,
       (SELECT count(*) FROM durable.tasks
        WHERE queue = $1 AND state = 'suspended') AS suspended;

-- name: claimable_queues
-- Every unpaused queue, locked for this claim: another worker's claim skips them (SKIP
-- LOCKED), so the counts read next cannot change under us. No EXISTS over the tasks
-- here: correlated, the planner reads it with a scan of the table; the candidates
-- query, per queue, reads its index.
SELECT name, concurrency, key_concurrency, rate_limit, rate_period FROM durable.queues
WHERE NOT paused
ORDER BY name
FOR UPDATE SKIP LOCKED;

-- name: queue_active
SELECT count(*) FROM durable.tasks WHERE queue = $1 AND state = 'active';

-- name: queue_key_active
SELECT queue_key, count(*) FROM durable.tasks
WHERE queue = $1 AND state = 'active' GROUP BY queue_key;

-- name: queue_started
SELECT count(*) FROM durable.tasks
WHERE queue = $1 AND started_at > now() - make_interval(secs => $2::float8);

-- name: queue_candidates
-- Highest priority first, then oldest. $1 queue, $2 limit.
(SELECT id, queue_key, priority FROM durable.tasks
 WHERE queue = $1 AND state = 'ready' AND NOT paused
 ORDER BY priority DESC, id LIMIT $2)
UNION ALL
(SELECT id, queue_key, priority FROM durable.tasks
 WHERE state = 'suspended' AND wakeup_at <= now() AND queue = $1 AND NOT paused
 ORDER BY priority DESC, id LIMIT $2)
ORDER BY priority DESC, id LIMIT $2;

-- name: claim_queued
-- $1 worker, $2 lease seconds, $3 the task ids.
UPDATE durable.tasks AS t
SET state = 'active', owner = $1, lease_token = t.lease_token + 1,
    lease_secret = gen_random_uuid(),
    lease_expires_at = now() + make_interval(secs => $2::float8),
    attempts = t.attempts + 1, started_at = coalesce(t.started_at, now()), wakeup_at = NULL,
    on_event = false, wake_pending = false, affinity = NULL, updated_at = now()
WHERE t.id = ANY ($3::bigint[]) AND t.state IN ('ready', 'suspended')
RETURNING t.*,
    (SELECT coalesce(max(e.idx) + 1, 0) FROM durable.events AS e WHERE e.task_id = t.id)
        AS history_length;

-- name: create_placed_task
-- create_task with flow control: $9 queue, $10 queue key, $11 priority (NULL: the
-- queue's default), $12 debounce key, $13 debounce seconds (a debounced task waits,
-- suspended, until then).
INSERT INTO durable.tasks (name, workflow_hash, entry, input, seed, parent_id, idempotency_key,
                           deadline_at, queue, queue_key, priority, debounce_key, state,
                           wakeup_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8::float8), $9, $10,
        coalesce($11::integer, (SELECT q.priority FROM durable.queues AS q WHERE q.name = $9), 0),
        $12, CASE WHEN $12::text IS NULL THEN 'ready' ELSE 'suspended' END,
        CASE WHEN $12::text IS NULL THEN NULL
             ELSE now() + make_interval(secs => $13::float8) END)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING *;

-- name: debounce_lock
-- Debounce key $1 in queue $2 (NULL: no queue).
SELECT pg_advisory_xact_lock(hashtext('durable debounce'),
                             hashtext(coalesce($2::text, '') || '/' || $1));

-- name: debounce_renew
-- The waiting task of debounce key $1 in queue $4 (NULL: no queue) takes input $2 and
-- waits $3 seconds more.
UPDATE durable.tasks
SET input = $2, wakeup_at = now() + make_interval(secs => $3::float8), updated_at = now()
WHERE coalesce(queue, '') = coalesce($4::text, '') AND debounce_key = $1
  AND state = 'suspended' AND attempts = 0
RETURNING *;

-- name: pause_task
UPDATE durable.tasks SET paused = $2, updated_at = now() WHERE id = $1 RETURNING *;

-- name: paused_active
SELECT id FROM durable.tasks WHERE paused AND state = 'active' AND owner = $1;

-- name: lock_task_for_move
-- `durable upgrade`: the task's row, locked, so that no claim changes it meanwhile
-- and the next statement's snapshot sees every event committed before.
SELECT 1 FROM durable.tasks WHERE id = $1 FOR UPDATE;

-- name: move_task
-- Onto binary $2, only if the task is still on $3, not running (ready or suspended:
-- no lease), not claimed since the upgrade read it ($4 attempts: every claim adds one,
-- and only a claim's lease may add events), and its history is the $5 events that
-- were replayed.
UPDATE durable.tasks SET workflow_hash = $2, updated_at = now()
WHERE id = $1 AND workflow_hash = $3 AND state IN ('ready', 'suspended') AND attempts = $4
  AND (SELECT count(*) FROM durable.events WHERE task_id = $1) = $5
RETURNING id;

-- name: record_binary_move
-- $1 task_id, $2 from_hash, $3 to_hash, $4 events.
INSERT INTO durable.task_binary_moves (task_id, seq, from_hash, to_hash, events)
SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4 FROM durable.task_binary_moves
WHERE task_id = $1;

-- name: binary_moves
SELECT from_hash, to_hash, events, moved_at FROM durable.task_binary_moves
WHERE task_id = $1 ORDER BY seq;

-- name: fork_status
-- The origin's status values set before the fork point and not set again since (the
-- table keeps each key's latest value only). $1 the fork, $2 the origin, $3 at.
INSERT INTO durable.task_status (task_id, key, value, position, updated_at)
SELECT $1, key, value, position, updated_at FROM durable.task_status
WHERE task_id = $2 AND position < $3;

-- name: task_forks
-- The forks made from a task, oldest first. $1 origin_id, $2 limit.
SELECT task_id, at, run FROM durable.task_origins WHERE origin_id = $1 ORDER BY task_id LIMIT $2;
