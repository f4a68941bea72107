"""Workflow SQL on the SQLite store: a connection of its own, behind an authorizer.

Design choices, and why:

* A second connection to the same file, used only for guest transactions, so that the
  authorizer (which is per connection) never stands in the way of the engine's own
  statements on the main one. It is plain `sqlite3`, driven through `anyio.to_thread`:
  one thread hop runs a whole step (savepoint, statement, reading the rows, release),
  where aiosqlite would need one per statement.
* One guest transaction at a time per store (SQLite has one writer anyway), opened with
  `BEGIN IMMEDIATE` so that it holds the write lock from the start, and committed
  together with the events that record it: `commit` runs the same fenced inserts as
  `SQLiteStore.append` on this connection, in this transaction.
* The authorizer (`_sqlite_authorizer`: an allow-list) is switched on only while a
  guest statement is prepared and stepped, and the connection caches no prepared
  statements (a cached engine statement would skip the authorizer). The connection is
  hardened (`_sqlite_hardening`: settings, limits, a progress handler, a heap limit),
  and the functions whose one call could outlast any deadline are guarded
  (`_sqlite_functions`).
* A transaction holds the write lock from its BEGIN, so it has a time budget: half the
  busy timeout, and less if the task's lease would lapse sooner (no heartbeat can
  renew it meanwhile). A statement still running at the deadline is stopped; a transaction
  still open then is rolled back from the event loop and the connection handed to the
  next one, while the workflow (which may be busy in its own code) is told
  "aborted" at its next call. A per-transaction mutex keeps that rollback and the
  workflow's own calls from using the connection at once.
* Each statement runs inside `SAVEPOINT durable_statement`, so a failed (or too large)
  statement is undone whole and the transaction goes on, as on Postgres. A statement
  that ends the transaction itself (`INSERT OR ROLLBACK`) leaves it aborted.
* Temporary objects live on the connection, so they would outlive the transaction and
  be seen by the next task's: the connection is reopened after any transaction that
  left some behind.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio
import anyio.to_thread

from durable.core.model import Event, Lease, LogChunk
from durable.errors import ConfigurationError, ConflictError, LeaseLostError, StorageError
from durable.storage import _sqlite_codec as codec
from durable.storage import _sqlite_hardening as hardening
from durable.storage import _sqlite_schema as schema
from durable.storage._sqlite_authorizer import (
    Authorizer,
    check_created,
    engine_tables,
    explain_unsafe,
    hidden_tables,
)
from durable.storage._sqlite_functions import GuardedFunctions
from durable.storage.guest import (
    GuestResult,
    GuestSQLError,
    GuestValue,
    Json,
    RowBudget,
    encode,
    timestamp_text,
)

__all__ = ["Authorizer", "SQLiteGuest", "SQLiteGuestTransaction", "settings_of"]

_Q = schema.queries()
_SAVEPOINT = "durable_statement"
_LEASE_EXPIRY = (
    "SELECT lease_expires_at FROM durable_task WHERE id = ? AND owner = ? AND lease_token = ?"
)


# -- values and errors ---------------------------------------------------------------------


def adapt(value: GuestValue) -> Any:
    """A parameter as sqlite3 binds it: the types SQLite lacks go in as text."""
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, Json):
        return value.text
    if isinstance(value, datetime):
        return timestamp_text(value)
    return value


def classify(exc: Exception, denied: str | None) -> GuestSQLError | StorageError:
    """A failed guest statement as a typed error, or a `StorageError` when the database
    itself failed (which is not the workflow's to handle, and is not recorded)."""
    message = (str(exc).splitlines() or [type(exc).__name__])[0]
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    name = _code_name(code, getattr(exc, "sqlite_errorname", None))
    primary = None if code is None else code & 0xFF
    if denied is not None or primary == _AUTH:
        return GuestSQLError("forbidden", denied or message, name)
    if isinstance(exc, MemoryError) or (primary == _NOMEM and hardening.heap_limit()):
        # Python's sqlite3 raises MemoryError for SQLITE_NOMEM. The heap limit is there
        # for workflow SQL: running into it is the statement's doing.
        return GuestSQLError(
            "too-large",
            "the statement needed more memory than workflow SQL may use (the worker's "
            f"SQLite heap is limited to {hardening.heap_limit()} bytes)",
            "SQLITE_NOMEM",
        )
    if message.startswith("unsafe use of "):
        return GuestSQLError("forbidden", explain_unsafe(message), name)
    if primary in _INFRASTRUCTURE:
        return StorageError(f"workflow SQL: {message}")
    if primary == _TOOBIG:
        return GuestSQLError("data", f"{message} ({hardening.VALUE_LIMIT_NOTE})", name)
    if code == _CONSTRAINT_DATATYPE or primary in (_MISMATCH, _RANGE):
        return GuestSQLError("data", message, name)  # a value of the wrong type, say
    if primary == _CONSTRAINT:
        return GuestSQLError("constraint", message, name)
    if primary == _ERROR:
        return GuestSQLError("syntax", message, name)
    if "one statement at a time" in message:
        return GuestSQLError("syntax", "give one statement at a time", name)
    if isinstance(exc, sqlite3.ProgrammingError | sqlite3.InterfaceError | sqlite3.DataError):
        return GuestSQLError("data", message, name)  # e.g. the number of parameters
    return GuestSQLError("other", message, name)


# SQLite's primary result codes (the low byte of an extended code).
_ERROR, _NOMEM, _CONSTRAINT, _MISMATCH, _AUTH, _RANGE, _TOOBIG = 1, 7, 19, 20, 23, 25, 18
_CONSTRAINT_DATATYPE = 3091  # newer than the names Python knows
# The database or its file failed: PERM, BUSY, LOCKED, NOMEM, READONLY, IOERR, CORRUPT,
# FULL, CANTOPEN, PROTOCOL, NOTADB.
_INFRASTRUCTURE = frozenset({3, 5, 6, 7, 8, 10, 11, 13, 14, 15, 26})


def _code_name(code: int | None, name: str | None) -> str | None:
    if code == _CONSTRAINT_DATATYPE:
        return "SQLITE_CONSTRAINT_DATATYPE"
    if name and name != "unknown":
        return name
    return None if code is None else f"SQLITE_{code}"


def _over_budget(budget: float) -> GuestSQLError:
    return GuestSQLError(
        "aborted",
        f"the transaction held the database for longer than workflow SQL may ({budget:.1f} s; "
        "every other write waits meanwhile), so it was rolled back: keep transactions short",
        "SQLITE_INTERRUPT",
    )


# -- the connection --------------------------------------------------------------------------


class SQLiteGuest:
    """The SQLite store's guest connection: one guest transaction at a time."""

    def __init__(
        self,
        path: Path,
        clock: Callable[[], float],
        *,
        synchronous: int,
        busy_timeout_ms: int,
    ) -> None:
        """Prepare to open `path` (lazily) with the main connection's settings.

        Raises:
            ConfigurationError: `path` is `:memory:`, which a second connection cannot
                share.
        """
        if str(path) == ":memory:":
            raise ConfigurationError(
                "workflow SQL needs a SQLite database file: an in-memory database cannot be "
                "shared with a second connection"
            )
        self.path = path
        self.clock = clock
        self._synchronous = synchronous
        self._busy_timeout_ms = busy_timeout_ms
        #: Seconds a transaction may hold the database (`hardening.transaction_budget`).
        self.budget = hardening.transaction_budget(busy_timeout_ms)
        self._lock = asyncio.Lock()
        self._conn: sqlite3.Connection | None = None
        self.authorizer = Authorizer()
        self.stopwatch = hardening.Stopwatch()
        self.functions = GuardedFunctions()
        self.engine_names: frozenset[str] = frozenset()  # durable's tables at BEGIN
        self._schema_version: int | None = None  # the schema those two were read from

    async def begin(self, lease: Lease) -> SQLiteGuestTransaction:
        """Wait for the connection, and `BEGIN IMMEDIATE` on it.

        Raises:
            StorageError: the connection stayed busy (another workflow's transaction in
                this process, or a writer elsewhere) longer than the busy timeout.
        """
        with anyio.move_on_after(self._busy_timeout_ms / 1000) as waited:
            await self._lock.acquire()
        if waited.cancelled_caught:
            raise StorageError(
                f"database {self.path}: another workflow's SQL transaction held the database "
                "for longer than the busy timeout"
            )
        try:
            conn, seconds = await anyio.to_thread.run_sync(self._begin, lease)
        except BaseException:
            self._lock.release()
            raise
        return SQLiteGuestTransaction(self, conn, lease, time.monotonic() + seconds)

    def _begin(self, lease: Lease) -> tuple[sqlite3.Connection, float]:
        """BEGIN IMMEDIATE; return the connection and the seconds the transaction has."""
        with _engine_errors(self.path):
            if self._conn is None:
                self._conn = self._open()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            # Under the write lock, nothing else changes the schema until the end ...
            version = conn.execute("PRAGMA schema_version").fetchone()[0]
            if version != self._schema_version:
                self.authorizer.hidden = hidden_tables(conn)
                self.engine_names = engine_tables(conn)
                self._schema_version = version
            # ... and no heartbeat can renew the task's lease: the transaction must end
            # early enough for the next one to land before the lease lapses, or the
            # task would be taken from its own worker (and hold the lock again, forever).
            row = conn.execute(_LEASE_EXPIRY, codec.fence(lease)).fetchone()
        left = self.budget if row is None or row[0] is None else float(row[0]) - self.clock()
        return conn, min(self.budget, left - min(hardening.LEASE_MARGIN, left / 2))

    def _open(self) -> sqlite3.Connection:
        # No statement cache: SQLite authorizes a statement when it is prepared, so a
        # guest statement with the same text as one of the engine's (cached, prepared
        # while the authorizer was off) would otherwise run unchecked.
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, cached_statements=0
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            conn.execute(f"PRAGMA synchronous = {int(self._synchronous)}")
            conn.execute("PRAGMA foreign_keys = ON")
            hardening.harden(conn)
            hardening.limit_heap()
            conn.set_progress_handler(self.stopwatch, hardening.PROGRESS_OPS)
            self.functions.install(conn)
            conn.set_authorizer(self.authorizer)
        except BaseException:
            conn.close()
            raise
        return conn

    def end(self) -> None:
        """Close the transaction (in a worker thread): roll back whatever is still open,
        and drop the connection if the workflow left temporary objects on it. Never
        raises: on any failure the connection is dropped instead (closing rolls back)."""
        conn = self._conn
        if conn is None:
            return
        self.authorizer.guest = False
        self.stopwatch.disarm()
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if conn.execute("SELECT 1 FROM temp.sqlite_master LIMIT 1").fetchone() is not None:
                raise sqlite3.OperationalError("temporary objects left behind")
        except sqlite3.Error:
            self._conn, self._schema_version = None, None
            conn.close()

    def release(self) -> None:
        """Let the next transaction have the connection."""
        self._lock.release()

    async def close(self) -> None:
        """Close the connection once no transaction holds it, or after the busy timeout
        if one still does (closing rolls it back). Idempotent.

        Bounded: a transaction that is never ended (a bug, or a caller that died) must
        not make closing the store hang, with SQLite's write lock held all along.
        """
        with anyio.CancelScope(shield=True):
            acquired = False
            with anyio.move_on_after(self._busy_timeout_ms / 1000):
                await self._lock.acquire()
                acquired = True
            try:
                conn, self._conn = self._conn, None
                if conn is not None:
                    await anyio.to_thread.run_sync(conn.close)
                self.functions.close()
            finally:
                if acquired:
                    self._lock.release()


class SQLiteGuestTransaction:
    """A `GuestTransaction` on the SQLite guest connection."""

    def __init__(
        self, owner: SQLiteGuest, conn: sqlite3.Connection, lease: Lease, deadline: float
    ) -> None:
        """Wrap a transaction that `owner.begin` opened, and arm its deadline (a
        `time.monotonic()` reading) on the running event loop."""
        self._owner = owner
        self._conn = conn
        self._lease = lease
        self._deadline = deadline
        self._budget = max(deadline - time.monotonic(), 0.0)  # seconds it was given
        self._ended = False  # commit or rollback was called
        self._released = False  # the connection was handed back
        # Held while this transaction uses the connection; `_finished` (set under it)
        # means it may not any more, and `_aborted` says why, if the budget ran out.
        self._mutex = threading.Lock()
        self._finished = False
        self._aborted: GuestSQLError | None = None
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_later(max(deadline - time.monotonic(), 0), self._expire)
        self._expiring: asyncio.Task[None] | None = None

    async def execute(
        self, sql: str, params: Sequence[GuestValue], *, max_bytes: int
    ) -> GuestResult:
        """Run one statement under the authorizer, inside its own savepoint."""
        self._check_open()
        return await anyio.to_thread.run_sync(self._execute, sql, params, max_bytes)

    def _execute(self, sql: str, params: Sequence[GuestValue], max_bytes: int) -> GuestResult:
        with self._mutex:
            self._check_usable()
            return self._run(sql, params, max_bytes)

    def _run(self, sql: str, params: Sequence[GuestValue], max_bytes: int) -> GuestResult:
        owner, conn, auth = self._owner, self._conn, self._owner.authorizer
        if not conn.in_transaction:
            raise GuestSQLError("aborted", "an earlier statement rolled the transaction back")
        with _engine_errors(owner.path):
            conn.execute(f"SAVEPOINT {_SAVEPOINT}")
        owner.stopwatch.arm(self._deadline)
        owner.functions.error = None
        auth.start()
        try:
            cursor = conn.execute(sql, [adapt(v) for v in params])
            try:
                rows = _read(cursor, RowBudget(max_bytes))
                columns = [d[0] for d in cursor.description or ()]
                rowcount = cursor.rowcount
            finally:
                cursor.close()  # resets the statement before the engine's next one
            owner.stopwatch.disarm()
            if auth.created:
                check_created(conn, auth, owner.engine_names)
        except (sqlite3.Error, sqlite3.Warning, GuestSQLError, MemoryError) as exc:
            auth.guest = False
            owner.stopwatch.disarm()
            if owner.stopwatch.stopped:
                error: GuestSQLError | StorageError = _over_budget(self._budget)
            elif owner.functions.error is not None:  # a guarded function refused
                error = owner.functions.error
            elif isinstance(exc, GuestSQLError):
                error = exc
            else:
                error = classify(exc, auth.denied)
            if (
                isinstance(error, GuestSQLError)
                and error.kind != "aborted"
                and not conn.in_transaction
            ):
                raise GuestSQLError(
                    "aborted", f"{error.message} (and it rolled the whole transaction back)",
                    error.code,
                ) from exc  # fmt: skip
            if conn.in_transaction:
                with _engine_errors(owner.path):
                    conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
                    conn.execute(f"RELEASE {_SAVEPOINT}")
            raise error from exc
        finally:
            auth.guest = False
            owner.stopwatch.disarm()
        with _engine_errors(owner.path):
            conn.execute(f"RELEASE {_SAVEPOINT}")
        return GuestResult(columns=columns, rows=rows, rowcount=max(rowcount, -1))

    async def commit(self, events: Sequence[Event], logs: Sequence[LogChunk]) -> None:
        """Append the events (fenced), then COMMIT; roll everything back on any failure."""
        self._check_open()
        self._ended = True
        now = self._owner.clock()
        try:
            await anyio.to_thread.run_sync(self._commit, events, logs, now)
        finally:
            await self._release()  # rolls back, unless the COMMIT went through

    def _commit(
        self,
        events: Sequence[Event],
        logs: Sequence[LogChunk],
        now: float,
    ) -> None:
        with self._mutex:
            self._check_usable()
            conn, lease = self._conn, self._lease
            if not conn.in_transaction:
                raise GuestSQLError("aborted", "an earlier statement rolled the transaction back")
            with _engine_errors(self._owner.path):
                if not codec.consecutive(events):
                    raise self._refusal("the events' indexes are not consecutive")
                for write in codec.fenced_writes(lease, events, logs, (), now):
                    if conn.execute(write.sql, write.params).rowcount != write.rows:
                        raise self._refusal(write.what)
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:  # a deferred foreign key, say
                raise classify(exc, None) from exc

    def _refusal(self, what: str) -> StorageError:
        """Why a fenced write wrote nothing: the lease is gone, or `what` went wrong."""
        conn, lease = self._conn, self._lease
        if not conn.execute(_Q["lease_holds"], codec.fence(lease)).fetchone()[0]:
            return LeaseLostError(lease.task_id)
        next_index = conn.execute(_Q["next_index"], (lease.task_id,)).fetchone()[0]
        return ConflictError(f"{what} (next event index is {next_index})")

    async def rollback(self) -> None:
        """Roll back and release the connection. Idempotent."""
        self._ended = True
        await self._release()

    def _expire(self) -> None:
        """The budget ran out with the transaction open (on the event loop): roll it
        back and hand the connection on; the workflow hears of it at its next call."""
        if not self._released:
            self._expiring = asyncio.get_running_loop().create_task(self._release(expired=True))

    async def _release(self, *, expired: bool = False) -> None:
        if self._released:
            return
        self._released = True
        self._expiry.cancel()
        owner = self._owner
        with anyio.CancelScope(shield=True):
            try:
                await anyio.to_thread.run_sync(self._finish, expired)
            finally:
                owner.release()

    def _finish(self, expired: bool) -> None:
        """Roll back what is open, once the workflow's running call (if any) is over
        (the stopwatch ends a statement at the same deadline)."""
        with self._mutex:
            if expired and not self._finished:
                self._aborted = _over_budget(self._budget)
            self._finished = True
            self._owner.end()

    def _check_open(self) -> None:
        if self._ended:
            raise StorageError("this workflow SQL transaction has already ended")

    def _check_usable(self) -> None:
        """Under the mutex: the transaction still has the connection and its time."""
        if self._finished or time.monotonic() >= self._deadline:
            raise self._aborted or _over_budget(self._budget)


def _read(cursor: sqlite3.Cursor, budget: RowBudget) -> list[list[Any]]:
    """The statement's rows in their JSON form, one row at a time, so that no more than
    one row beyond the budget is ever held."""
    rows: list[list[Any]] = []
    for row in cursor:
        # Measure big values before encoding them (base64 would add a third).
        raw = sum(len(v) for v in row if isinstance(v, str | bytes))
        if raw > budget.left:
            budget.left -= raw
            budget.add([])  # raises: the row cannot fit
        encoded = [encode(v) for v in row]
        budget.add(encoded)
        rows.append(encoded)
    return rows


@contextmanager
def _engine_errors(path: Path) -> Iterator[None]:
    """Translate sqlite3 errors of the engine's own statements on the guest connection."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise ConflictError(f"database {path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"database {path}: {exc}") from exc


async def settings_of(conn: Any) -> dict[str, int]:
    """The main (aiosqlite) connection's `synchronous` and `busy_timeout`, to copy."""
    synchronous = (await conn.execute_fetchall("PRAGMA synchronous"))[0][0]
    busy_timeout = (await conn.execute_fetchall("PRAGMA busy_timeout"))[0][0]
    return {"synchronous": int(synchronous), "busy_timeout_ms": int(busy_timeout)}
