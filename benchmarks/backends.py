"""The databases the benchmarks run on: a fresh one per figure, and the raw commit rate.

Every figure gets an empty database of its own, so that no task left over from one
figure is claimed by the worker of the next. `MeteredStore` wraps a store to count the
commits a run makes and to tell the benchmark when tasks finish, without polling.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, cast

import anyio
import anyio.to_thread

from durable.core.model import Cancelled, Completed, Event, Failed, Lease, LogChunk, Outcome
from durable.core.side_writes import SideWrite
from durable.storage import open_store
from durable.storage.base import Store
from durable.testing.postgres import ServerHandle


class Backend(Protocol):
    """What the benchmarks need from a database backend."""

    name: str

    async def raw_commit_rate(self, seconds: float) -> float:
        """(a) durable single-row INSERT + COMMIT per second, one connection."""
        ...

    def database(self) -> Any:
        """An async context manager yielding `(url, store)` for a fresh, migrated
        database, dropped (or left to the temporary directory) afterwards."""
        ...


class SQLiteBackend:
    """One SQLite file per figure, in a temporary directory, as the store opens it."""

    name = "sqlite"

    def __init__(self, directory: Path) -> None:
        """Keep the database files under `directory` (created if missing)."""
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._count = itertools.count(1)

    async def raw_commit_rate(self, seconds: float) -> float:
        """Single-row INSERT + COMMIT per second in WAL mode with `synchronous=FULL`
        (the store's defaults), on a file beside the benchmark databases."""
        return await anyio.to_thread.run_sync(
            _sqlite_commit_rate, self.directory / "raw.db", seconds
        )

    @asynccontextmanager
    async def database(self) -> AsyncIterator[tuple[str, Store]]:
        """A fresh database file and a store opened on it."""
        url = f"sqlite:///{(self.directory / f'bench-{next(self._count)}.db').resolve()}"
        store = await open_store(url)
        try:
            yield url, store
        finally:
            await store.close()


def _sqlite_commit_rate(path: Path, seconds: float) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS raw(id INTEGER PRIMARY KEY, v TEXT)")
        n = 0
        started = time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO raw(v) VALUES (?)", ("{}",))
            conn.execute("COMMIT")
            n += 1
        return n / elapsed
    finally:
        conn.close()


class PostgresBackend:
    """One database per figure on a throwaway (or `DURABLE_TEST_POSTGRES_URL`) server."""

    name = "postgres"

    def __init__(self, server: ServerHandle) -> None:
        """Create databases on `server`."""
        self.server = server

    async def raw_commit_rate(self, seconds: float) -> float:
        """Single-row INSERT + COMMIT per second over one connection (fsync on)."""
        return await anyio.to_thread.run_sync(self.server.commit_rate, seconds)

    @asynccontextmanager
    async def database(self) -> AsyncIterator[tuple[str, Store]]:
        """A fresh database and a migrated store on it; the database is dropped after."""
        name = f"durable_bench_{uuid.uuid4().hex[:10]}"
        url = await anyio.to_thread.run_sync(self.server.create_database, name)
        try:
            store = await open_store(url)
            try:
                yield url, store
            finally:
                await store.close()
        finally:
            await anyio.to_thread.run_sync(self.server.drop_database, name)


class MeteredStore:
    """A `Store` that counts its commits and signals each finished task attempt.

    Every attribute not defined here is the wrapped store's. `append` and `finish` are
    the only writes an attempt makes while it runs, so `commits` is exactly how many
    transactions a run needed for its events (group commit makes it far fewer than
    the events).
    """

    def __init__(self, store: Store) -> None:
        """Wrap `store`."""
        self._store = store
        self.appends = 0
        self.finishes = 0  # attempts ended (suspensions and releases too)
        self.ended = 0  # tasks ended: complete, failed or cancelled
        self.events = 0
        self._finished = anyio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @property
    def store(self) -> Store:
        """This wrapper, typed as the `Store` it stands in for."""
        return cast("Store", self)

    @property
    def commits(self) -> int:
        """Appends and finishes so far: one transaction each."""
        return self.appends + self.finishes

    def reset(self) -> None:
        """Zero the counters."""
        self.appends = self.finishes = self.ended = self.events = 0

    async def append(
        self,
        lease: Lease,
        events: Sequence[Event],
        logs: Sequence[LogChunk],
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        """Append through the wrapped store, and count it."""
        await self._store.append(lease, events, logs, writes=writes)
        self.appends += 1
        self.events += len(events)

    async def finish(
        self,
        lease: Lease,
        outcome: Outcome,
        events: Sequence[Event] = (),
        logs: Sequence[LogChunk] = (),
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        """Finish through the wrapped store, count it and wake `wait_ended`."""
        await self._store.finish(lease, outcome, events, logs, writes=writes)
        self.finishes += 1
        self.events += len(events)
        if isinstance(outcome, Completed | Failed | Cancelled):
            self.ended += 1
        self._finished.set()
        self._finished = anyio.Event()

    async def wait_ended(self, count: int) -> None:
        """Wait until `ended >= count` (callers bound the wait with `within`)."""
        while self.ended < count:
            await self._finished.wait()


@contextlib.contextmanager
def within(seconds: float, what: str) -> Iterator[None]:
    """Bound a wait: raise `TimeoutError("<what> within N s")` when it takes longer."""
    try:
        with anyio.fail_after(seconds):
            yield
    except TimeoutError:
        raise TimeoutError(f"{what} within {seconds:g} s") from None
