"""`durable.storage._sqlite_batch` runs several statements in one trip to aiosqlite's
thread through aiosqlite's private runner: this fails first if a new aiosqlite changes
it (pyproject pins the versions it was checked with)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from durable.storage import _sqlite_batch as batch

pytestmark = pytest.mark.anyio


async def test_work_runs_on_the_connections_own_thread_in_one_transaction(
    tmp_path: Path,
) -> None:
    async with aiosqlite.connect(tmp_path / "b.db", isolation_level=None) as conn:
        await conn.execute("CREATE TABLE t (n INTEGER NOT NULL)")

        def work(db: sqlite3.Connection) -> int:
            with batch.transaction(db):
                db.execute("INSERT INTO t (n) VALUES (1)")
                db.execute("INSERT INTO t (n) VALUES (2)")
            return int(db.execute("SELECT sum(n) FROM t").fetchone()[0])

        assert await batch.run(conn, work) == 3

        def failing(db: sqlite3.Connection) -> None:
            with batch.transaction(db):
                db.execute("INSERT INTO t (n) VALUES (10)")
                raise batch.Shortfall("a fenced update changed no row")

        with pytest.raises(batch.Shortfall):
            await batch.run(conn, failing)
        rows = await (await conn.execute("SELECT n FROM t ORDER BY n")).fetchall()
        assert [r[0] for r in rows] == [1, 2], "the failed transaction rolled back"
