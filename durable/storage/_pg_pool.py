"""A small connection pool for the Postgres store, in place of `asyncpg.Pool`.

Why not asyncpg's pool: each of its acquire/release pairs costs several event-loop
iterations (release runs through `asyncio.shield` and a new task), about 20-40 us on
this hardware. That is as much as the server spends on an event append, and the
benchmark compares events/s with the raw commit rate. This pool hands out an idle
connection with a list pop and takes it back with a list append.

It keeps what the store needs and no more: at most `max_size` connections, LIFO reuse
(the busiest connection stays warm), waiters woken in order when one comes back, and
connections dropped when they are closed, were interrupted mid-statement, or are
somehow still inside a transaction. Nothing resets session state on release, because
the store never changes any (advisory locks are transaction-scoped, LISTEN has its own
connection).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import asyncpg

from durable.errors import StorageError

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class ConnectionPool:
    """Up to `max_size` asyncpg connections, shared by the coroutines of one store."""

    def __init__(self, connect: Connect, *, max_size: int) -> None:
        """Create an empty pool; `connect` opens one new connection (or raises)."""
        self._connect = connect
        self._max = max(1, max_size)
        self._size = 0  # connections open or being opened, idle or in use
        self._idle: list[asyncpg.Connection] = []
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    async def fill(self, count: int) -> None:
        """Open connections until `count` are idle (used once, to fail fast at open)."""
        while len(self._idle) < min(count, self._max) and self._size < self._max:
            self._size += 1
            try:
                conn = await self._connect()
            except BaseException:
                self._size -= 1
                raise
            self._idle.append(conn)

    def acquire(self) -> _Acquired:
        """`async with pool.acquire() as conn:` borrows a connection for the block."""
        return _Acquired(self)

    # The four query helpers repeat the same few lines instead of sharing a wrapper:
    # they are the hot path, and each extra call or coroutine frame shows up.

    async def execute(self, query: str, *args: object) -> str:
        """Run a statement on a pooled connection and return its status tag."""
        conn = self._pop_idle() or await self._take()
        try:
            status: str = await conn.execute(query, *args)
        except BaseException as exc:
            self._give_back(conn, exc)
            raise
        self._give_back(conn, None)
        return status

    async def fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        """Run a query on a pooled connection and return all rows."""
        conn = self._pop_idle() or await self._take()
        try:
            rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        except BaseException as exc:
            self._give_back(conn, exc)
            raise
        self._give_back(conn, None)
        return rows

    async def fetchrow(self, query: str, *args: object) -> asyncpg.Record | None:
        """Run a query on a pooled connection and return its first row, if any."""
        conn = self._pop_idle() or await self._take()
        try:
            row: asyncpg.Record | None = await conn.fetchrow(query, *args)
        except BaseException as exc:
            self._give_back(conn, exc)
            raise
        self._give_back(conn, None)
        return row

    async def fetchval(self, query: str, *args: object) -> Any:
        """Run a query on a pooled connection and return the first column of its first row."""
        conn = self._pop_idle() or await self._take()
        try:
            value = await conn.fetchval(query, *args)
        except BaseException as exc:
            self._give_back(conn, exc)
            raise
        self._give_back(conn, None)
        return value

    def _pop_idle(self) -> asyncpg.Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._size -= 1  # the server went away while it sat idle
        return None

    async def _take(self) -> asyncpg.Connection:
        """Wait for a connection: an idle one, a new one, or one given back."""
        while True:
            if self._closed:
                raise StorageError("the Postgres store is closed")
            conn = self._pop_idle()
            if conn is not None:
                return conn
            if self._size < self._max:
                self._size += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._size -= 1
                    self._wake_one()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on the wake-up we were given
                raise

    def _give_back(self, conn: asyncpg.Connection, exc: BaseException | None) -> None:
        if (
            self._closed
            or conn.is_closed()
            or conn.is_in_transaction()
            # Interrupted mid-statement: the protocol state is unknown, so do not reuse.
            or isinstance(exc, asyncio.CancelledError | TimeoutError | OSError)
        ):
            conn.terminate()
            self._size -= 1
        else:
            self._idle.append(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close idle connections now and the others when they come back. Idempotent."""
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            self._size -= 1
            try:
                await conn.close(timeout=5)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # they wake, see the pool closed, and raise


class _Acquired:
    """The async context manager behind `ConnectionPool.acquire`."""

    __slots__ = ("_conn", "_pool")

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        self._conn = self._pool._pop_idle() or await self._pool._take()
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool._give_back(conn, exc)
