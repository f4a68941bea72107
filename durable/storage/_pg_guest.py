"""Workflow SQL on the Postgres store: a connection of the guest login, one transaction.

A guest transaction borrows a connection from the guest pool (`_pg_login.GuestLogin`),
which logs in as a role with no path to the engine's (see `_pg_login` for what that
means and how it is checked), and keeps it for its whole life:

    BEGIN; SAVEPOINT durable_statement
    <guest statement>                 -- as the guest login: no access to schema durable
    RELEASE ...; RESET ROLE; SAVEPOINT ...  -- failed: ROLLBACK TO SAVEPOINT instead
    ...
    SELECT durable_api.record_sql_transaction(task, worker, token, secret, events ...)
    COMMIT
    DISCARD ALL                       -- nothing of this session reaches the next task

so the workflow's changes and the events that record them commit together. The record
function (migration 0003) is the engine's `append`, run as the engine's role, fenced by
the lease and by a secret that `claim` drew and that no workflow ever sees: it is sent
only by the host, after the workflow's last statement, and a workflow that calls the
function itself, with any arguments, writes nothing. Whatever a statement does to its
session (`SET ROLE`, `RESET ROLE`, `set_config`, a DO block, a function of its own),
the connection can only ever act as the guest login, so no check of the statement's
text or of the role after it is needed for the boundary; `_pg_sql_text` still refuses
statements that have no business here, as a second line.

Each statement runs inside its own savepoint, so a failed statement is undone and the
transaction goes on (Postgres would otherwise refuse everything after an error), just
as on SQLite. Guest statements go through the extended protocol, which takes one
statement at a time, as unnamed statements (`DISCARD ALL` drops named ones).

When the transaction ends, `DISCARD ALL` resets the session: settings (back to those
sent when it connected), role, temporary objects, prepared statements, cursors,
advisory locks, LISTENs, cached sequence values. The next task to borrow the
connection finds none of them.
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
from durable.errors import StorageError
from durable.storage import _pg_codec as codec
from durable.storage import _pg_schema
from durable.storage._pg_errors import CONNECTION_ERRORS, one_line, translate
from durable.storage._pg_login import GuestLogin
from durable.storage._pg_sql_text import refusal
from durable.storage._pg_sql_text import translate as to_dollar_params
from durable.storage.guest import GuestResult, GuestSQLError, GuestValue, Json, RowBudget, encode

__all__ = ["PgGuestTransaction", "begin"]

_Q = _pg_schema.queries()
_BEGIN = "BEGIN; {check}SAVEPOINT durable_statement"
# Postgres 14+: a backend running a long guest statement for a worker that died (its
# connection closed) notices within a second and rolls back, instead of holding the
# transaction's locks until the statement ends.
_CHECK_CLIENT = "SET LOCAL client_connection_check_interval = 1000; "
# After each statement. RESET ROLE is no boundary (a role the login can become has no
# more reach than the login: `_pg_login` checks every one): it keeps each statement,
# and the commit's call of the record function, running as the login itself.
_NEXT = "RELEASE SAVEPOINT durable_statement; RESET ROLE; SAVEPOINT durable_statement"
_UNDO = "ROLLBACK TO SAVEPOINT durable_statement"
_END_TIMEOUT = 10.0  # seconds to roll back and reset the session before giving up on it
_TEXT_TYPES = frozenset({"text", "varchar", "bpchar", "name", "citext"})

#: Raises why a fenced append wrote nothing (the store's `_refuse`).
Refuse = Callable[[Lease, Sequence[Event]], Awaitable[None]]


async def begin(
    guest: GuestLogin, lease: Lease, secret: UUID | None, refuse: Refuse
) -> PgGuestTransaction:
    """Borrow a connection of the guest login and open a transaction on it.

    Args:
        guest: the guest login; its connections are vetted as they open.
        lease: the task's lease.
        secret: the lease's secret (None once the lease is gone: the commit is refused).
        refuse: raises why a refused commit wrote nothing.

    Raises:
        ConfigurationError: the guest login cannot log in, or is unfit for workflow SQL.
        StorageError: the server failed.
    """
    borrowed = guest.pool().acquire()
    conn: asyncpg.Connection = await borrowed.__aenter__()
    try:
        with translate("begin a workflow SQL transaction"):
            check = _CHECK_CLIENT if conn.get_server_version().major >= 14 else ""
            await conn.execute(_BEGIN.format(check=check))
    except BaseException as exc:
        await _hand_back(borrowed, conn, exc)
        raise
    return PgGuestTransaction(borrowed, conn, lease, secret, refuse, guest.login)


class PgGuestTransaction:
    """A `GuestTransaction` on a borrowed connection of the guest login."""

    def __init__(
        self, borrowed: Any, conn: asyncpg.Connection, lease: Lease, secret: UUID | None,
        refuse: Refuse, login: str,
    ) -> None:  # fmt: skip
        """Wrap a transaction that `begin` opened."""
        self._borrowed = borrowed
        self._conn = conn
        self._lease = lease
        self._secret = secret
        self._refuse = refuse
        self._login = login
        self._aborted: str | None = None  # why nothing more may run
        self._ended = False
        self._released = False

    async def execute(
        self, sql: str, params: Sequence[GuestValue], *, max_bytes: int
    ) -> GuestResult:
        """Run one statement as the guest login, inside its own savepoint."""
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
            error = exc if isinstance(exc, GuestSQLError) else classify(exc, self._login)
            if isinstance(error, StorageError):
                self._aborted = "the database failed during the transaction"
                raise error from exc
            with translate("undo a workflow SQL statement"):
                await conn.execute(_UNDO)
            if error.kind == "aborted":
                self._aborted = error.message
            raise error from (None if exc is error else exc)
        with translate("finish a workflow SQL statement"):
            await conn.execute(_NEXT)
        return GuestResult(columns=columns, rows=rows, rowcount=rowcount)

    async def commit(self, events: Sequence[Event], logs: Sequence[LogChunk]) -> None:
        """Record the events through the fenced record function, in this transaction,
        and COMMIT; on any failure, roll everything back."""
        if self._ended:
            raise StorageError("this workflow SQL transaction has already ended")
        self._ended = True
        conn, lease = self._conn, self._lease
        try:
            if self._aborted is not None:
                raise GuestSQLError("aborted", self._aborted)
            with translate("commit a workflow SQL transaction of task", lease.task_id):
                matched = False
                if codec.consecutive(events):
                    matched = await conn.fetchval(
                        _Q["record_sql_transaction"],
                        lease.task_id, lease.worker_id, lease.token, self._secret,
                        *codec.write_args(events, logs, ()),
                    )  # fmt: skip
                if not matched:
                    await conn.execute("ROLLBACK")
                    await self._refuse(lease, events)
                    raise StorageError(f"task {lease.task_id}: the events were refused")
                try:
                    await conn.execute("COMMIT")
                except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                    raise classify(exc, self._login) from exc  # a deferred constraint, say
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
                    await conn.execute("DISCARD ALL")  # not inside a transaction block
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


def classify(exc: Exception, login: str) -> GuestSQLError | StorageError:
    """A failed guest statement as a typed error, by SQLSTATE; or a `StorageError` when
    the server or the connection failed (not the workflow's to handle, not recorded).
    `login` is the guest login's name, for a refusal's message."""
    code: str = getattr(exc, "sqlstate", None) or ""
    message = one_line(exc)
    if isinstance(exc, CONNECTION_ERRORS) or code[:2] in _INFRASTRUCTURE or code[:3] == "57P":
        return StorageError(f"workflow SQL: Postgres failed: {message}")
    if code == "42501":
        return GuestSQLError(
            "forbidden", f"{message} (workflow SQL runs as the role {login})", code
        )
    if code in ("42804", "42P18", "42846", "42P08"):  # type mismatches: a parameter's type
        return GuestSQLError("data", message, code)
    return GuestSQLError(_KINDS.get(code[:2], "other"), message, code or None)


# SQLSTATE classes: connection, resources, system, internal errors.
_INFRASTRUCTURE = frozenset({"08", "53", "58", "XX"})
# 40: serialization failure, deadlock: the workflow should retry the whole transaction.
_KINDS = {"42": "syntax", "22": "data", "23": "constraint", "44": "constraint", "40": "aborted"}
