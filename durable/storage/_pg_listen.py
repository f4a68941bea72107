"""`LISTEN durable_work` on a dedicated connection, behind `PostgresStore.wait_for_work`.

Triggers in the schema (and `remove_worker`) send a notification on channel
`durable_work` whenever work may have become runnable. Notifications are latched in an
event that stays set until a `wait` consumes it, so one that arrives between a
worker's `claim` and its next `wait` is not lost.

No missed wake-ups: `claim` and `next_wakeup` call `ensure()` before they query, so
LISTEN is in effect before the check that a later `wait` relies on. If the connection
drops, the termination callback sets the event (the next `wait` returns at once), and
if `wait` itself has to reconnect after a loss, it returns without waiting, since
notifications sent while disconnected are gone. A network cut that closes nothing is
caught by a cheap `SELECT 1` after every `PROBE_SECONDS` of silence.

A statement of this store that may make work runnable (a launch, a notification that
wakes a task) wakes this process's own waiters as soon as it has returned
(`expect_work`, `committed_work`), without waiting for its notification's trip through
the server. That notification still comes, from the backend that ran the statement,
and is let pass without a second wake-up: each such commit sends exactly one (the
triggers' constant payload is folded within a transaction). It may come before the
statement's reply is read, so it is expected before the statement is sent; one that
comes meanwhile from an earlier statement on that backend is taken for it, and the
wake-up it owed is the one given when the statement returns, woken or not. Only
while one listening connection stays up from before the statement to after it: else
the notification may never come, and the count starts again.

Once someone waits for a task's end (`listen_ends`), the same connection also LISTENs
on `durable_end`, whose payload is the id of a task that ended (schema version 6), and
hands each id to `on_end`; a lost connection calls `on_end(None)`: anything may have
ended meanwhile.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import asyncpg

from durable.errors import StorageError
from durable.storage._pg_errors import CONNECTION_ERRORS

#: The notification channel the schema's triggers notify.
CHANNEL = "durable_work"
#: The channel a trigger notifies with the id of each task that ends.
END_CHANNEL = "durable_end"

#: How long a wait may go without hearing from the server before probing the connection.
PROBE_SECONDS = 30.0

#: How long to back off when the listener cannot connect, so a dead server is not
#: hammered by idle workers; they still return (spuriously) so callers re-check.
RETRY_SECONDS = 1.0


class WorkListener:
    """A latched "work may be runnable" signal fed by LISTEN on its own connection."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        on_end: Callable[[int | None], None] | None = None,
    ) -> None:
        """Prepare a listener; `connect` opens a new connection (raising `StorageError`);
        `on_end` hears of ended tasks once `listen_ends` is called."""
        self._connect = connect
        self._on_end = on_end
        self._ends = False  # LISTEN on END_CHANNEL too (set by listen_ends)
        self._conn: asyncpg.Connection | None = None
        self._event = asyncio.Event()
        self._lock = asyncio.Lock()
        self._ever_connected = False
        self._closed = False
        # Which connection is listening (bumped on every new one), and the
        # notifications its backends still owe for wake-ups already given
        # (`committed_work`), by backend pid.
        self._generation = 0
        self._echoes: collections.Counter[int] = collections.Counter()

    @property
    def connected(self) -> bool:
        """Whether LISTEN is currently in effect."""
        return self._conn is not None and not self._conn.is_closed()

    async def ensure(self) -> bool:
        """Make sure LISTEN is in effect; return True if this re-established it after a loss.

        Raises:
            StorageError: the connection could not be opened.
        """
        if self.connected:
            return False
        async with self._lock:
            if self.connected:
                return False
            if self._closed:
                raise StorageError("the Postgres store is closed")
            conn = await self._connect()
            try:
                await conn.add_listener(CHANNEL, self._on_notify)
                if self._ends:
                    await conn.add_listener(END_CHANNEL, self._on_end_notify)
            except BaseException:
                await conn.close()
                raise
            conn.add_termination_listener(self._on_terminate)
            self._conn = conn
            self._generation += 1
            self._echoes.clear()
            reconnected = self._ever_connected
            self._ever_connected = True
            return reconnected

    async def listen_ends(self) -> None:
        """LISTEN on `END_CHANNEL` from now on (and after every reconnection).

        Raises:
            StorageError: the connection could not be opened.
        """
        if self._ends and self.connected:
            return
        async with self._lock:
            first = not self._ends
            self._ends = True
            conn = self._conn
            if first and conn is not None and not conn.is_closed():
                try:
                    await conn.add_listener(END_CHANNEL, self._on_end_notify)
                except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                    conn.terminate()  # the next ensure() reconnects with both channels
        await self.ensure()

    def expect_work(self, pid: int) -> int | None:
        """Before a statement on backend `pid` that may make work runnable: its
        notification, if it sends one, passes without a wake-up. Returns what to hand
        `committed_work` (None: nothing listens, nothing is expected)."""
        if not self.connected:
            return None
        self._echoes[pid] += 1
        return self._generation

    def committed_work(self, pid: int, expected: int | None, *, woke: bool) -> None:
        """After the statement of `expect_work` (or its failure): wake the waiters now;
        if it made nothing runnable (`woke` False: no notification comes), expect none."""
        self._event.set()
        if not woke and expected is not None and expected == self._generation:
            owed = self._echoes.get(pid, 0)
            if owed > 1:
                self._echoes[pid] = owed - 1
            elif owed == 1:
                del self._echoes[pid]

    def _on_notify(self, _conn: Any, pid: int, *_args: Any) -> None:
        owed = self._echoes.get(pid, 0)
        if owed:  # a wake-up already given (`committed_work`)
            if owed == 1:
                del self._echoes[pid]
            else:
                self._echoes[pid] = owed - 1
            return
        self._event.set()

    def _on_end_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._on_end is not None:
            try:
                self._on_end(int(payload))
            except ValueError:
                self._on_end(None)

    def _on_terminate(self, conn: asyncpg.Connection) -> None:
        if conn is self._conn:
            self._conn = None
            if not self._closed:
                self._event.set()  # whatever was sent while we were away is lost
                if self._ends and self._on_end is not None:
                    self._on_end(None)

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - a wait, not a deadline
        """Return when notified (now or since the last return), or after `timeout` seconds."""
        if self._closed:
            raise StorageError("the Postgres store is closed")
        if self._event.is_set():
            self._event.clear()
            return
        try:
            if await self.ensure():
                return  # notifications sent while disconnected are lost: re-check now
        except StorageError:
            await anyio.sleep(min(timeout, RETRY_SECONDS))
            return
        deadline = anyio.current_time() + timeout
        while not self._event.is_set():
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                break
            with anyio.move_on_after(min(remaining, PROBE_SECONDS)):
                await self._event.wait()
            if not self._event.is_set() and anyio.current_time() < deadline:
                await self._probe()
        self._event.clear()

    async def _probe(self) -> None:
        """Check that a long-silent connection is still alive; drop it if not."""
        conn = self._conn
        if conn is None:
            self._event.set()
            return
        try:
            await conn.fetchval("SELECT 1", timeout=5)
        except (*CONNECTION_ERRORS, asyncpg.PostgresError):
            conn.terminate()  # calls _on_terminate, which sets the event
            self._event.set()

    async def close(self) -> None:
        """Stop listening and close the connection. Idempotent."""
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=5)
            except (*CONNECTION_ERRORS, asyncpg.PostgresError):
                conn.terminate()
