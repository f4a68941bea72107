"""Group commit across operations: the SQLite writes that wait together commit together.

Every launch and every attempt's end is a transaction, and on SQLite with
`synchronous=FULL` each commit is an fsync, made while the store's lock is held: with
sixteen short tasks at a time, launches and finishes queued behind one another's
fsyncs (measured: the same run with fsync off went 60% faster). So a write that
finds others waiting for the lock when it gets it runs them all in one transaction,
each in a savepoint of its own, and one fsync commits them all.

Nothing changes for any one of them: each is all or nothing (a write that fails, a
lease lost say, is rolled back to its savepoint and fails alone); none returns before
the commit that makes it durable, so nothing it causes (a wake-up, an end signal) is
seen before that; a commit that fails fails every write of its group, none of which
is then written. Writes are not delayed to wait for company: a group is whatever was
already waiting, and a write alone commits alone, as before.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Generic, TypeVar, cast

import aiosqlite
import anyio

from durable.storage import _sqlite_batch as batch

T = TypeVar("T")


class _Pending(Generic[T]):
    """One write waiting for its group's commit."""

    __slots__ = ("done", "error", "value", "work")

    def __init__(self, work: Callable[[sqlite3.Connection], T]) -> None:
        self.work = work
        self.done = False
        self.value: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """The grouped writes of one store: `run(work)` for each."""

    def __init__(
        self,
        use: Callable[[], AbstractAsyncContextManager[aiosqlite.Connection]],
        translate: Callable[[], AbstractContextManager[None]],
    ) -> None:
        """`use()` holds the store's connection (its lock); `translate()` maps driver
        errors as the store does."""
        self._use = use
        self._translate = translate
        self._waiting: list[_Pending[Any]] = []

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(db)` in a transaction (alone, or with the writes waiting beside it), on
        the connection's thread; returns once it is committed, or raises its error."""
        pending = _Pending(work)
        self._waiting.append(pending)
        try:
            async with self._use() as conn:
                if not pending.done:  # else a write ahead of it took it along
                    group, self._waiting = self._waiting, []
                    await _commit(conn, group)
        finally:
            if not pending.done:  # the store is closed, or the caller was cancelled
                with contextlib.suppress(ValueError):
                    self._waiting.remove(pending)
        if pending.error is not None:
            with self._translate():
                raise pending.error
        return cast("T", pending.value)


async def _commit(conn: aiosqlite.Connection, group: list[_Pending[Any]]) -> None:
    """Run `group` in one trip and one transaction; record each one's outcome."""
    # Shielded: the others of the group wait on its outcome, and their writes go
    # through whatever happens to the caller that runs them.
    with anyio.CancelScope(shield=True):
        try:
            if len(group) == 1:
                outcomes: list[tuple[bool, Any]] = [(True, await batch.run(conn, group[0].work))]
            else:
                works = [pending.work for pending in group]
                outcomes = await batch.run(conn, functools.partial(_all, works))
        except BaseException as exc:  # a lone write's own failure, or the group's commit
            outcomes = [(False, exc)] * len(group)
            if not isinstance(exc, Exception):
                _record(group, outcomes)
                raise
    _record(group, outcomes)


def _record(group: list[_Pending[Any]], outcomes: list[tuple[bool, Any]]) -> None:
    for pending, (ok, value) in zip(group, outcomes, strict=True):
        if ok:
            pending.value = value
        else:
            pending.error = value
        pending.done = True


def _all(works: list[Callable[[sqlite3.Connection], Any]], db: sqlite3.Connection) -> list[Any]:
    """On the connection's thread: each work in a savepoint, all in one transaction."""
    outcomes: list[tuple[bool, Any]] = []
    with batch.transaction(db):
        for work in works:
            db.execute("SAVEPOINT grouped")
            try:
                outcomes.append((True, work(db)))
            except Exception as exc:  # this one's failure: only its own writes go
                db.execute("ROLLBACK TO grouped")
                outcomes.append((False, exc))
            db.execute("RELEASE grouped")
    return outcomes
