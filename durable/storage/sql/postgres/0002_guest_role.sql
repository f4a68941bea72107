-- durable Postgres schema, version 2: the role that workflow SQL runs as.
--
-- A workflow's SQL (`durable.transaction`) runs in the store's own transaction, after
-- `SET LOCAL ROLE durable_guest`, so that its changes and the event that records them
-- commit together (durable/storage/_pg_guest.py). The role has no privileges on schema
-- `durable`, so workflow SQL cannot read or change the engine's tables; it may use and
-- create tables in `public`.
--
-- Roles belong to the whole server, not to one database: the role may exist already
-- (another database's durable made it). Creating a role and granting on `public` need
-- privileges that the role running durable may lack; then this migration still
-- succeeds, with a WARNING, and workflow SQL fails with a message that says what an
-- administrator must run.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'durable_guest') THEN
        BEGIN
            CREATE ROLE durable_guest NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created concurrently, for another database
            WHEN insufficient_privilege THEN
                RAISE WARNING 'durable: cannot create role durable_guest (%): workflow SQL '
                    'will not run until an administrator creates it', SQLERRM;
                RETURN;
        END;
    END IF;

    -- `SET ROLE durable_guest` needs membership (superusers have it anyway).
    BEGIN
        EXECUTE format('GRANT durable_guest TO %I', current_user);
    EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
        RAISE WARNING 'durable: cannot grant durable_guest to %: %', current_user, SQLERRM;
    END;

    BEGIN
        GRANT USAGE, CREATE ON SCHEMA public TO durable_guest;
    EXCEPTION WHEN insufficient_privilege OR invalid_schema_name THEN
        RAISE WARNING 'durable: cannot grant usage and create on schema public to '
            'durable_guest: %', SQLERRM;
    END;

    REVOKE ALL ON SCHEMA durable FROM durable_guest;
END
$$;

-- Nobody but durable's own role needs the engine's schema.
REVOKE ALL ON SCHEMA durable FROM PUBLIC;
