-- durable Postgres schema, version 3: workflow SQL runs on a login of its own.
--
-- Version 2 ran workflow SQL on the engine's own connections after `SET LOCAL ROLE
-- durable_guest`, which a session can always undo; a lexical filter stood between
-- the two roles, and filters can be fooled. Now workflow SQL runs on connections that
-- LOG IN as a role with no path to the engine's role (durable/storage/_pg_login.py
-- refuses any login that has one), and the events that record a workflow's
-- transaction are written, in that same transaction, through the one function below.
--
-- * `durable.tasks.lease_secret`: a random secret drawn at every claim. The function
--   checks it with the lease, so that a workflow, which never sees it, cannot write
--   events for any task, its own included, by calling the function itself.
-- * `durable.guest_login`: the zero-configuration login (`durable_guest_<database
--   oid>`: roles belong to the whole server, and each database keeps its own
--   password) and its password, drawn here so that it never appears in a statement
--   that a server log could record. `durable migrate` creates the role
--   (`_pg_login.ensure_login`), when its role may create roles.
-- * Schema `durable_api`, apart from `durable`, so that the guest login needs no
--   privilege at all on schema `durable`: whatever a later version adds there (a
--   function executable by PUBLIC, say) stays out of its reach.

ALTER TABLE durable.tasks ADD COLUMN lease_secret uuid;

CREATE TABLE durable.guest_login (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),  -- one row
    role_name  text NOT NULL,
    password   text NOT NULL
);
INSERT INTO durable.guest_login (role_name, password)
SELECT 'durable_guest_' || d.oid::text,
       pg_catalog.replace(pg_catalog.gen_random_uuid()::text
                          || pg_catalog.gen_random_uuid()::text, '-', '')
FROM pg_catalog.pg_database AS d
WHERE d.datname = pg_catalog.current_database();

CREATE SCHEMA durable_api;
REVOKE ALL ON SCHEMA durable_api FROM PUBLIC;

-- The storage's `append`, fenced by the lease AND its secret, for the guest login.
-- SECURITY DEFINER: it runs as its owner, the engine's role, so its search_path is
-- pinned and every name in it is schema-qualified (`coalesce` is syntax, not a name;
-- pg_temp comes last, so no temporary table of the caller's can stand in for one of
-- these). No dynamic SQL. A caller with the wrong secret gets false and changes
-- nothing, and learns nothing else either.
-- $1 task, $2 worker, $3 token, $4 secret; events as arrays $5 idx, $6 label,
-- $7 digest, $8 payload; logs as arrays $9 position, $10 stream, $11 data; $12 the
-- notification seqs to mark consumed.
CREATE FUNCTION durable_api.record_sql_transaction(
    bigint, text, bigint, uuid,
    integer[], text[], text[], text[],
    integer[], text[], bytea[],
    bigint[]
) RETURNS boolean
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
WITH t AS (
    SELECT tk.id FROM durable.tasks AS tk
    WHERE tk.id = $1 AND tk.owner = $2 AND tk.lease_token = $3 AND tk.lease_secret = $4
      AND tk.state = 'active'
      AND (pg_catalog.cardinality($5) = 0
           OR $5[1] = (SELECT coalesce(pg_catalog.max(e.idx) + 1, 0)
                       FROM durable.events AS e WHERE e.task_id = $1))
      AND (pg_catalog.cardinality($12) = 0
           OR pg_catalog.cardinality($12) = (
               SELECT pg_catalog.count(*) FROM durable.notifications AS n
               WHERE n.task_id = $1 AND n.consumed_at IS NULL AND n.seq = ANY ($12)))
    FOR KEY SHARE
), ev AS (
    INSERT INTO durable.events (task_id, idx, label, digest, payload)
    SELECT t.id, e.idx, e.label, e.digest, e.payload
    FROM t, ROWS FROM (pg_catalog.unnest($5), pg_catalog.unnest($6), pg_catalog.unnest($7),
                       pg_catalog.unnest($8)) AS e (idx, label, digest, payload)
), lg AS (
    INSERT INTO durable.logs (task_id, seq, position, stream, data)
    SELECT t.id,
           (SELECT coalesce(pg_catalog.max(g.seq), 0)
            FROM durable.logs AS g WHERE g.task_id = $1) + l.n,
           l.position, l.stream, l.data
    FROM t, ROWS FROM (pg_catalog.unnest($9), pg_catalog.unnest($10), pg_catalog.unnest($11))
        WITH ORDINALITY AS l (position, stream, data, n)
), nc AS (
    UPDATE durable.notifications AS n
    SET consumed_at = pg_catalog.now()
    FROM t
    WHERE n.task_id = t.id AND n.seq = ANY ($12) AND n.consumed_at IS NULL
)
SELECT pg_catalog.count(*) = 1 FROM t
$$;

REVOKE ALL ON FUNCTION durable_api.record_sql_transaction(
    bigint, text, bigint, uuid, integer[], text[], text[], text[], integer[], text[], bytea[],
    bigint[]
) FROM PUBLIC;
