"""Several SQLite statements for one trip to aiosqlite's thread.

Every aiosqlite call is a round trip from the event loop to the connection's thread
and back (a queue put, a thread wake-up, a future resolved through the loop's
self-pipe). On a short task's path those trips cost more than the statements, so the
hot operations (claim, finish, launch, the worker's look for timers and schedules) run
their statements as one function on that thread, through the runner every aiosqlite
method uses (`Connection._execute`), on the same connection, in the same order. The
store's lock still serialises operations; a transaction opens and ends inside the
function, so a caller cancelled meanwhile cannot leave it open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import aiosqlite

T = TypeVar("T")


async def run(conn: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """`work(db)` on the connection's thread, `db` its sqlite3 connection: one hop."""
    # aiosqlite's runner is not in its public API; every public method goes through it.
    runner = cast("Any", conn)
    return cast("T", await runner._execute(work, runner._conn))


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """`BEGIN IMMEDIATE ... COMMIT` on the thread, rolled back on any error; inside a
    transaction already (a group commit, `_sqlite_group`), a savepoint of its own."""
    if db.in_transaction:
        db.execute("SAVEPOINT work")
        try:
            yield
        except BaseException:
            db.execute("ROLLBACK TO work")
            raise
        finally:
            db.execute("RELEASE work")
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:  # COMMIT may have failed (busy): still open
            db.execute("ROLLBACK")
        raise


class Shortfall(Exception):
    """A fenced statement changed fewer rows than it should: rolled back; the store
    then asks why (`SQLiteStore._refusal`)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what
