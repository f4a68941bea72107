"""The login that workflow SQL runs as on Postgres: its connections, creation and vetting.

The boundary between a workflow's SQL and the engine is the Postgres login of the
connection the SQL runs on, not anything about the SQL's text. Workflow SQL runs on a
pool of its own whose connections LOG IN as a role that

* is not a superuser and has none of CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS;
* cannot act as (is not, directly or through other roles, a member of) the engine's
  role, the owner of schema `durable` or `durable_api` or of anything in them, the
  owner of the database, or any predefined `pg_*` role (pg_execute_server_program,
  pg_read_server_files, pg_signal_backend, pg_read_all_data ...);
* has no privilege on schema `durable`, and may not create in schema `durable_api` nor
  in the database (schemas; trusted extensions, whose scripts run as a superuser);
* may not execute the server's file and configuration functions (pg_read_file ...).

`vet` checks all of that for every new connection, from the engine's side (whose
`search_path` is pinned, so nothing a workflow created can answer for the catalog), and
refuses the login with a one-line `ConfigurationError` naming the problem. `SET ROLE`,
`RESET ROLE`, `set_config('role', ...)` and `SET SESSION AUTHORIZATION` can then at
most take the session back to that same login, whatever SQL it sends, from wherever
(a DO block, a function): Postgres lets a session become only roles its login is a
member of. The one thing the login may do in durable's schemas is call
`durable_api.record_sql_transaction`, which checks the task's lease and its secret.

Where the login comes from: `DURABLE_GUEST_DATABASE_URL` (or `guest_dsn`) names one for
production. Otherwise `durable migrate` creates `durable_guest_<database oid>` (per
database, because roles belong to the whole server and each database keeps its own
password), with a random password kept in `durable.guest_login`, which only the
engine's role can read. It is a member of the NOLOGIN role `durable_guest` (migration
0002), which carries the application's privileges (`public`, tables granted to it).
A workflow can change its own login's password or session defaults (Postgres lets any
role do that); for the zero-configuration login the engine repairs both when a
connection fails to log in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

import anyio
import asyncpg

from durable import settings
from durable.errors import ConfigurationError
from durable.storage import _pg_schema
from durable.storage._pg_errors import connect_error, one_line, translate
from durable.storage._pg_pool import ConnectionPool
from durable.storage._url import GUEST_URL_ENV, parse_url

__all__ = ["GROUP_ROLE", "GUEST_URL_ENV", "GuestLogin", "ensure_login", "scram_verifier"]

log = logging.getLogger("durable.storage")

#: The NOLOGIN role (migration 0002) that holds the application's privileges.
GROUP_ROLE = "durable_guest"
#: The one function of durable's that the guest login may execute.
RECORD_FUNCTION = (
    "durable_api.record_sql_transaction(bigint, text, bigint, uuid, integer[], text[], "
    "text[], text[], integer[], text[], bytea[], bigint[])"
)
#: Server functions an operator may have granted, each a way out of the database.
SERVER_FUNCTIONS = (
    "pg_catalog.pg_read_file(text)",
    "pg_catalog.pg_read_binary_file(text)",
    "pg_catalog.pg_ls_dir(text)",
    "pg_catalog.pg_stat_file(text)",
    "pg_catalog.lo_import(text)",
    "pg_catalog.lo_export(oid, text)",
    "pg_catalog.pg_reload_conf()",
    "pg_catalog.pg_rotate_logfile()",
    "pg_catalog.pg_file_write(text, text, boolean)",
)
#: Seconds to wait for a new connection.
CONNECT_TIMEOUT = 10.0
# Sent at connection start: RESET ALL (and DISCARD ALL) return to these, and they win
# over any default the login was given with ALTER ROLE. standard_conforming_strings is
# what `_pg_sql_text` assumes first (it also reads every statement the other way).
_GUEST_SETTINGS = {"application_name": "durable-guest", "standard_conforming_strings": "on"}
_ATTRIBUTES = {
    "rolsuper": "is a superuser",
    "rolcreaterole": "has CREATEROLE",
    "rolcreatedb": "has CREATEDB",
    "rolreplication": "has REPLICATION",
    "rolbypassrls": "has BYPASSRLS",
}  # each of them reaches past the application's privileges
_Q = _pg_schema.queries()
# A wrong password, a role that does not exist, a login refused by pg_hba.conf.
_AUTHENTICATION = (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def scram_verifier(password: str, *, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier Postgres stores for `password` (RFC 5802, 7677).

    `CREATE ROLE ... PASSWORD` is sent with this, not the password: a statement can end
    up in the server's log, and the verifier of a long random password is useless there.
    """
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored)}:{b64(server)}"


async def ensure_login(conn: asyncpg.Connection) -> str | None:
    """Create the zero-configuration login, or repair it; return None, or why not.

    Repairs: its password (the one in `durable.guest_login`), session defaults a
    workflow may have given it, and its grants. Needs a role that may create roles;
    without one, workflow SQL needs `DURABLE_GUEST_DATABASE_URL`. Serialised with
    migrations by the same advisory lock.
    """
    with translate("set up the login for workflow SQL"):
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _pg_schema.MIGRATION_LOCK)
            row = await conn.fetchrow(_Q["guest_login"])
            if row is None:  # pragma: no cover - the migration inserts it
                return "durable.guest_login is empty"
            name, database = row["role_name"], row["database"]
            role, db = _quote_ident(name), _quote_ident(database)
            verifier = scram_verifier(row["password"])
            try:
                async with conn.transaction():  # a savepoint: its failure is reported
                    if row["role_exists"]:
                        await conn.execute(
                            f"ALTER ROLE {role} WITH LOGIN PASSWORD '{verifier}'; "
                            f"ALTER ROLE {role} RESET ALL; "
                            f"ALTER ROLE {role} IN DATABASE {db} RESET ALL"
                        )
                    else:
                        await conn.execute(
                            f"CREATE ROLE {role} WITH LOGIN NOSUPERUSER NOCREATEDB "
                            f"NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT "
                            f"PASSWORD '{verifier}'"
                        )
            except asyncpg.InsufficientPrivilegeError as exc:
                if not row["role_exists"]:
                    return f"cannot create the role {name}: {one_line(exc)}"
                # Made by a role that could (an administrator, an earlier migrate): it
                # may well work as it is; if not, the guest pool says so when it connects.
                log.debug("cannot repair the role %s: %s", name, one_line(exc))
                return None
            await _grant(conn, name, application=True)
    return None


async def _grant(conn: asyncpg.Connection, name: str, *, application: bool) -> None:
    """What a login for workflow SQL needs: the record function (the engine's role owns
    it, so this cannot fail); and, with `application`, for the zero-configuration login,
    the application's role and `public`, where the engine's role may grant them."""
    role = _quote_ident(name)
    await conn.execute(
        f"GRANT USAGE ON SCHEMA durable_api TO {role}; "
        f"GRANT EXECUTE ON FUNCTION {RECORD_FUNCTION} TO {role}"
    )
    if not application:
        return
    for grant in (
        f"GRANT {GROUP_ROLE} TO {role}",
        f"GRANT USAGE, CREATE ON SCHEMA public TO {role}",
    ):
        try:
            async with conn.transaction():
                await conn.execute(grant)
        except (
            asyncpg.InsufficientPrivilegeError,
            asyncpg.UndefinedObjectError,  # no role durable_guest
            asyncpg.InvalidSchemaNameError,  # no schema public
            asyncpg.InvalidGrantOperationError,
        ) as exc:
            log.warning("cannot run %s for workflow SQL: %s", grant, one_line(exc))


@dataclass(frozen=True, slots=True)
class _Credentials:
    user: str | None  # None: the URL's own
    password: str | None


class GuestLogin:
    """The pool of connections that workflow SQL runs on, opened on first use.

    Separate from the engine's pool: a workflow can neither take the engine's
    connections nor reach its session. Each new connection is vetted (see the module
    docstring) before any workflow SQL runs on it.
    """

    def __init__(
        self, engine: ConnectionPool, dsn: str, *, guest_dsn: str | None, max_size: int
    ) -> None:
        """Prepare (but open nothing): `guest_dsn` names the login, or None for the
        zero-configuration one (`DURABLE_GUEST_DATABASE_URL` is read here)."""
        guest_dsn = guest_dsn or settings.guest_database_url()
        if guest_dsn is not None and parse_url(guest_dsn).scheme != "postgres":
            raise ConfigurationError(
                f"the guest database URL {parse_url(guest_dsn).display()} is not a "
                "postgres:// URL (workflow SQL runs on the worker's own database)"
            )
        self._engine = engine
        self._dsn = guest_dsn or dsn
        self.explicit = guest_dsn is not None
        self._display = parse_url(self._dsn).display()
        self._max_size = max_size
        self._pool: ConnectionPool | None = None
        self._database: str | None = None  # the engine's database
        self._credentials: _Credentials | None = None
        self._repair_helped = True  # repair again only if the last repair worked
        self._lock = anyio.Lock()
        self.login = ""  # the role's name, once a connection was made

    def pool(self) -> ConnectionPool:
        """The guest pool (connections open, and are vetted, as they are needed)."""
        if self._pool is None:
            self._pool = ConnectionPool(self._connect, max_size=self._max_size)
        return self._pool

    async def check(self) -> str:
        """Open (or reuse) a vetted connection now; return the login's name.

        Raises:
            ConfigurationError: the login cannot log in, or is unfit (see `vet`).
        """
        async with self.pool().acquire():
            return self.login

    async def close(self) -> None:
        """Close the pool. Idempotent."""
        if self._pool is not None:
            await self._pool.close()

    async def _connect(self) -> asyncpg.Connection:
        """A new, vetted connection of the guest login, for the guest pool.

        The zero-configuration login is repaired (see `ensure_login`) when it cannot log
        in, or has session defaults of its own, which only a workflow gives it; again
        only if the last repair helped, so that a login that a repair cannot fix (peer
        authentication, say) fails at once.
        """
        for last in (False, True):
            try:
                conn = await self._login()
            except _AUTHENTICATION as exc:
                if last or self.explicit or not self._repair_helped:
                    raise self._login_error(exc) from exc
                await self._repair()
                continue
            try:
                await self._vet(conn)
                repair = not (last or self.explicit) and self._repair_helped
                if repair and await self._engine.fetchval(_Q["guest_has_settings"], self.login):
                    await self._repair()
                    conn.terminate()  # it started with those defaults
                    continue
            except BaseException:
                conn.terminate()
                raise
            self._repair_helped = True
            return conn
        raise AssertionError("unreachable")  # pragma: no cover

    async def _login(self) -> asyncpg.Connection:
        credentials = await self._zero_config() if not self.explicit else _Credentials(None, None)
        try:
            return await asyncpg.connect(
                self._dsn,
                user=credentials.user,
                password=credentials.password,
                timeout=CONNECT_TIMEOUT,
                server_settings=_GUEST_SETTINGS,
                # Only unnamed statements, parsed and run in one exchange. A cached named
                # statement could be dropped by a workflow and PREPAREd again under its
                # name, to run the workflow's SQL when the host calls the record function
                # (and be handed the lease's secret). DISCARD ALL drops named ones anyway.
                statement_cache_size=0,
            )
        except _AUTHENTICATION:
            raise
        except Exception as exc:
            raise connect_error(self._display, exc) from exc

    def _login_error(self, exc: BaseException) -> ConfigurationError:
        if self.explicit:
            return ConfigurationError(
                f"workflow SQL cannot log in to Postgres at {self._display} "
                f"({GUEST_URL_ENV}): {one_line(exc)}"
            )
        user = "" if self._credentials is None else f" as {self._credentials.user}"
        return ConfigurationError(
            f"workflow SQL cannot log in{user} ({one_line(exc)}): run `durable migrate` as a "
            f"role that may create roles, or name a login for workflow SQL with {GUEST_URL_ENV}"
        )

    async def _zero_config(self) -> _Credentials:
        if self._credentials is None:
            with translate("read the login for workflow SQL"):
                row = await self._engine.fetchrow(_Q["guest_login"])
            if row is None:  # pragma: no cover - migration 0003 inserts it
                raise ConfigurationError("durable.guest_login is empty: run `durable migrate`")
            self._credentials = _Credentials(row["role_name"], row["password"])
        return self._credentials

    async def _repair(self) -> None:
        async with self._lock:
            self._repair_helped = False
            async with self._engine.acquire() as conn:
                problem = await ensure_login(conn)
            if problem is not None:
                raise ConfigurationError(
                    f"workflow SQL has no login: {problem}; run `durable migrate` as a role "
                    f"that may create roles, or name a login with {GUEST_URL_ENV}"
                )

    async def _vet(self, conn: asyncpg.Connection) -> None:
        """Refuse a login that could reach beyond the application's privileges."""
        with translate("check the login for workflow SQL"):
            login, database = await conn.fetchrow(
                "SELECT session_user::text, pg_catalog.current_database()::text"
            )
            if self._database is None:
                self._database = await self._engine.fetchval("SELECT current_database()::text")
            if database != self._database:
                raise ConfigurationError(
                    f"{GUEST_URL_ENV} names database {database}, but durable's is "
                    f"{self._database}: workflow SQL must run in durable's own database"
                )
            problem = await self._problem(login)
            if problem is not None:
                raise ConfigurationError(
                    f"workflow SQL may not run as the Postgres role {login}: it {problem} "
                    "(see the README on workflow SQL: what never to grant its login)"
                )
            if not await self._engine.fetchval(_Q["guest_may_record"], login, RECORD_FUNCTION):
                async with self._engine.acquire() as engine, engine.transaction():
                    await _grant(engine, login, application=False)
        self.login = login

    async def _problem(self, login: str) -> str | None:
        """What makes `login` unfit for workflow SQL, or None. Asked on the engine's
        connection, by name: catalog answers that no workflow can have shadowed."""
        rows = await self._engine.fetch(_Q["guest_roles"], login)
        for row in rows:  # the gravest first: what a role is, then predefined roles
            name = row["rolname"]
            # "it is a superuser", or "it can act as X, which is a superuser"
            subject = "" if name == login else f"can act as {name}, which "
            what = next((w for column, w in _ATTRIBUTES.items() if row[column]), None)
            if what is None and row["engine"]:
                what = "is durable's own role, or owns its schemas or what is in them"
            if what is None and row["owns_database"]:
                what = "owns the database"
            if what is not None:
                return subject + what
        for row in rows:
            if row["rolname"].startswith("pg_"):
                return f"is a member of the predefined role {row['rolname']}"
        granted = await self._engine.fetchrow(_Q["guest_privileges"], login, SERVER_FUNCTIONS)
        assert granted is not None  # one row, always
        if granted["durable_schema"]:
            return "has privileges on schema durable"
        if granted["api_create"]:
            return "may create objects in schema durable_api"
        if granted["database_create"]:
            return "may create in the database (a trusted extension's script runs as a superuser)"
        if granted["functions"]:
            return f"may execute {granted['functions'][0]}"
        return None
