"""Workflow SQL on the Postgres store: one pooled connection, one transaction, two roles.

A guest transaction borrows a connection from the store's pool for its whole life:

    BEGIN; SET LOCAL ROLE durable_guest; SAVEPOINT durable_statement
    <guest statement>                 -- runs as durable_guest, no access to schema durable
    RELEASE ...; SAVEPOINT ...; SELECT 1 WHERE current_user = 'durable_guest'
    ...                               -- a failed statement: ROLLBACK TO SAVEPOINT instead
    RESET ALL; RESET ROLE             -- back to the store's own role and settings
    <the store's fenced `append`>     -- the events that record the transaction
    COMMIT

so the workflow's changes and the events that record them commit together. Migration
0002 creates the NOLOGIN role `durable_guest` (no privileges on schema `durable`; usage
and create on `public`) and makes the store's role a member, which `SET ROLE` needs.

Each statement runs inside its own savepoint, so a failed statement is undone and the
transaction goes on (Postgres would otherwise refuse everything after an error), just
as on SQLite. After every statement the connection must still be `durable_guest`; a
statement that took its role back ends the transaction (see `_pg_sql_text` for what is
refused before it runs, and why). Guest statements go through the extended protocol,
which takes one statement at a time.

When the transaction ends, the session is reset (settings, advisory locks, cursors,
LISTENs, temporary tables), so nothing of it reaches the store's next use of the
connection.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from typing import Any
from uuid import UUID

import anyio
import asyncpg

from durable.core.model import Event, Lease, LogChunk
from durable.errors import ConfigurationError, StorageError
from durable.storage import _pg_codec as codec
from durable.storage import _pg_schema
from durable.storage._pg_errors import CONNECTION_ERRORS, one_line, translate
from durable.storage._pg_pool import ConnectionPool
from durable.storage._pg_sql_text import refusal
from durable.storage._pg_sql_text import translate as to_dollar_params
from durable.storage.guest import GuestResult, GuestSQLError, GuestValue, Json, RowBudget, encode

__all__ = ["GUEST_ROLE", "PgGuestTransaction", "begin"]

#: The role workflow SQL runs as (created by migration 0002).
GUEST_ROLE = "durable_guest"

_Q = _pg_schema.queries()
_BEGIN = f"BEGIN; {{check}}SET LOCAL ROLE {GUEST_ROLE}; SAVEPOINT durable_statement"
# Postgres 14+: a backend running a long guest statement for a worker that died (its
# connection closed) notices within a second and rolls back, instead of holding the
# transaction's locks until the statement ends.
_CHECK_CLIENT = "SET LOCAL client_connection_check_interval = 1000; "
# Its status is the last statement's: "SELECT 1" while the role holds, "SELECT 0" if not.
_NEXT = (
    "RELEASE SAVEPOINT durable_statement; SAVEPOINT durable_statement; "
    f"SELECT 1 WHERE current_user = '{GUEST_ROLE}'"
)
_UNDO = "ROLLBACK TO SAVEPOINT durable_statement"
_RESET_SESSION = (
    "RESET ALL; RESET ROLE; SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; DISCARD TEMP"
)
_END_TIMEOUT = 10.0  # seconds to roll back and reset the session before giving up on it
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "citext"})

#: Raises why a fenced append wrote nothing (the store's `_refuse`).
Refuse = Callable[[Lease, Sequence[Event]], Awaitable[None]]


async def begin(pool: ConnectionPool, lease: Lease, refuse: Refuse) -> PgGuestTransaction:
    """Borrow a connection and open a guest transaction on it.

    Raises:
        ConfigurationError: the `durable_guest` role is missing, or the store's role may
            not take it (migration 0002 could not set it up).
        StorageError: the server failed.
    """
    borrowed = pool.acquire()
    conn: asyncpg.Connection = await borrowed.__aenter__()
    try:
        with translate("begin a workflow SQL transaction"):
            try:
                check = _CHECK_CLIENT if conn.get_server_version().major >= 14 else ""
                await conn.execute(_BEGIN.format(check=check))
            except (asyncpg.UndefinedObjectError, asyncpg.InsufficientPrivilegeError) as exc:
                raise ConfigurationError(
                    f"workflow SQL runs as the Postgres role {GUEST_ROLE}, which this "
                    f"database cannot use ({one_line(exc)}): run `durable migrate` as a role "
                    f"that may create roles, or have an administrator run "
                    f"CREATE ROLE {GUEST_ROLE} NOLOGIN; GRANT {GUEST_ROLE} TO <durable's role>; "
                    f"GRANT USAGE, CREATE ON SCHEMA public TO {GUEST_ROLE}"
                ) from exc
    except BaseException as exc:
        await _hand_back(borrowed, conn, exc)
        raise
    return PgGuestTransaction(borrowed, conn, lease, refuse)


class PgGuestTransaction:
    """A `GuestTransaction` on a borrowed Postgres connection."""

    def __init__(
        self, borrowed: Any, conn: asyncpg.Connection, lease: Lease, refuse: Refuse
    ) -> None:
        """Wrap a transaction that `begin` opened."""
        self._borrowed = borrowed
        self._conn = conn
        self._lease = lease
        self._refuse = refuse
        self._aborted: str | None = None  # why nothing more may run
        self._ended = False
        self._released = False

    async def execute(
        self, sql: str, params: Sequence[GuestValue], *, max_bytes: int
    ) -> GuestResult:
        """Run one statement as `durable_guest`, inside its own savepoint."""
        if self._ended:
            raise StorageError("this workflow SQL transaction has already ended")
        if self._aborted is not None:
            raise GuestSQLError("aborted", self._aborted)
        reason = refusal(sql)
        if reason is not None:
            raise GuestSQLError("forbidden", reason)
        conn = self._conn
        try:
            stmt = await conn.prepare(to_dollar_params(sql))
            wanted = stmt.get_parameters()
            if len(wanted) != len(params):
                raise GuestSQLError(
                    "data",
                    f"the statement takes {len(wanted)} parameter(s), {len(params)} given",
                )
            args = [_adapt(v, t.name) for v, t in zip(params, wanted, strict=True)]
            records = await stmt.fetch(*args)
            attributes = stmt.get_attributes()
            kinds = [a.type.name for a in attributes]
            budget = RowBudget(max_bytes)
            rows = []
            for record in records:
                row = [_encode(v, kind) for v, kind in zip(record.values(), kinds, strict=True)]
                budget.add(row)
                rows.append(row)
            columns = [a.name for a in attributes]
            rowcount = _rowcount(stmt.get_statusmsg())
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, GuestSQLError) as exc:
            error = exc if isinstance(exc, GuestSQLError) else classify(exc)
            if isinstance(error, StorageError):
                self._aborted = "the database failed during the transaction"
                raise error from exc
            with translate("undo a workflow SQL statement"):
                await conn.execute(_UNDO)
            if error.kind == "aborted":
                self._aborted = error.message
            raise error from (None if exc is error else exc)
        with translate("finish a workflow SQL statement"):
            status = await conn.execute(_NEXT)
        if status != "SELECT 1":
            self._aborted = "a statement changed the transaction's role"
            await self._release()  # rolls back; `commit` will say why
            raise GuestSQLError(
                "aborted",
                "the statement changed its database role: the transaction was rolled back",
            )
        return GuestResult(columns=columns, rows=rows, rowcount=rowcount)

    async def commit(
        self, events: Sequence[Event], logs: Sequence[LogChunk], consumed: Sequence[int] = ()
    ) -> None:
        """Append the events as the store's role, fenced, and COMMIT; on any failure,
        roll everything back."""
        if self._ended:
            raise StorageError("this workflow SQL transaction has already ended")
        self._ended = True
        conn, lease = self._conn, self._lease
        try:
            if self._aborted is not None:
                raise GuestSQLError("aborted", self._aborted)
            with translate("commit a workflow SQL transaction of task", lease.task_id):
                await conn.execute("RESET ALL; RESET ROLE")
                matched = False
                if codec.consecutive(events):
                    matched = await conn.fetchval(
                        _Q["append"], lease.task_id, lease.worker_id, lease.token,
                        *codec.write_args(events, logs, consumed),
                    )  # fmt: skip
                if not matched:
                    await conn.execute("ROLLBACK")
                    await self._refuse(lease, events)
                    raise StorageError(f"task {lease.task_id}: the events were refused")
                try:
                    await conn.execute("COMMIT")
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                    raise classify(exc) from exc  # a deferred constraint, say
        finally:
            await self._release()

    async def rollback(self) -> None:
        """Roll back and hand the connection back to the pool. Idempotent."""
        self._ended = True
        await self._release()

    async def _release(self) -> None:
        if self._released:
            return
        self._released = True
        conn = self._conn
        failure: BaseException | None = None
        # Shielded, so that a cancelled attempt still ends its transaction; bounded, so
        # that a server that stopped answering cannot hold the worker.
        with anyio.CancelScope(shield=True, deadline=anyio.current_time() + _END_TIMEOUT) as scope:
            try:
                if not conn.is_closed():
                    if conn.is_in_transaction():
                        await conn.execute("ROLLBACK")
                    await conn.execute(_RESET_SESSION)
            except BaseException as exc:  # the pool drops a connection it cannot trust
                failure = exc
            if scope.cancelled_caught and failure is None:
                failure = TimeoutError("ending a workflow SQL transaction timed out")
            await _hand_back(self._borrowed, conn, failure)


async def _hand_back(borrowed: Any, conn: asyncpg.Connection, exc: BaseException | None) -> None:
    if exc is not None and not conn.is_closed():
        conn.terminate()
    await borrowed.__aexit__(None if exc is None else type(exc), exc, None)


# -- values ---------------------------------------------------------------------------------


def _adapt(value: GuestValue, pg_type: str) -> Any:
    """A parameter as asyncpg encodes it for the type the server inferred."""
    if isinstance(value, Json):
        return value.text
    if isinstance(value, dt.datetime):
        if pg_type == "timestamp":
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        if pg_type == "date":
            return value.date()
        if pg_type in _TEXT_TYPES:
            return value.isoformat()
    if isinstance(value, UUID | Decimal) and pg_type in _TEXT_TYPES:
        return str(value)
    return value


def _encode(value: Any, pg_type: str) -> Any:
    """A value asyncpg read, in its JSON form (`guest.encode`)."""
    if value is None or isinstance(value, bool | int | float | Decimal | bytes | UUID):
        return encode(value)
    if isinstance(value, str):
        return encode(Json(value) if pg_type in ("json", "jsonb") else value)
    if isinstance(value, dt.datetime):
        return encode(value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC))
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, list):  # an array: JSON of its elements
        try:
            return encode(Json(json.dumps([_plain(v) for v in value])))
        except (TypeError, ValueError):
            return str(value)
    return str(value)  # intervals, ranges, network addresses, geometry ...


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value)


def _rowcount(status: str | None) -> int:
    """Rows changed, from a status tag like "INSERT 0 3" or "UPDATE 2"; else -1."""
    parts = (status or "").split()
    if parts and parts[0] in ("INSERT", "UPDATE", "DELETE", "MERGE") and parts[-1].isdigit():
        return int(parts[-1])
    return -1


def classify(exc: Exception) -> GuestSQLError | StorageError:
    """A failed guest statement as a typed error, by SQLSTATE; or a `StorageError` when
    the server or the connection failed (not the workflow's to handle, not recorded)."""
    code: str = getattr(exc, "sqlstate", None) or ""
    message = one_line(exc)
    if isinstance(exc, CONNECTION_ERRORS) or code[:2] in _INFRASTRUCTURE or code[:3] == "57P":
        return StorageError(f"workflow SQL: Postgres failed: {message}")
    if code == "42501":
        return GuestSQLError(
            "forbidden", f"{message} (workflow SQL runs as the role {GUEST_ROLE})", code
        )
    if code in ("42804", "42P18", "42846", "42P08"):  # type mismatches: a parameter's type
        return GuestSQLError("data", message, code)
    return GuestSQLError(_KINDS.get(code[:2], "other"), message, code or None)


# SQLSTATE classes: connection, resources, system, internal errors.
_INFRASTRUCTURE = frozenset({"08", "53", "58", "XX"})
# 40: serialization failure, deadlock: the workflow should retry the whole transaction.
_KINDS = {"42": "syntax", "22": "data", "23": "constraint", "44": "constraint", "40": "aborted"}
