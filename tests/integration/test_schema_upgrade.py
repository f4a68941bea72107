"""Upgrading a database that holds tasks to the worker-deaths schema (SQLite 0002,
Postgres 0004): every task keeps its input, starts with no deaths, and runs on."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import asyncpg
import pytest

from durable.core.model import Completed, TaskState
from durable.storage import _pg_schema, _sqlite_schema, open_store
from durable.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

INPUTS = ['{"n": 1}', '"' + "x" * 100_000 + '"']


async def _upgraded_tasks_run(url: str) -> None:
    """Open (and migrate) the database: its tasks run as before, deaths at 0."""
    store = await open_store(url)
    try:
        tasks = sorted(await store.list_tasks(), key=lambda t: t.id)
        assert [t.input for t in tasks] == INPUTS
        assert [t.deaths for t in tasks] == [0, 0]
        claims = await store.claim(worker_id="w", limit=5, lease_seconds=60, max_deaths=3)
        assert [c.task.input for c in claims] == INPUTS
        for claim in claims:
            await store.finish(claim.lease, Completed(result="1"))
        assert {t.state for t in await store.list_tasks()} == {TaskState.COMPLETE}
    finally:
        await store.close()


async def test_sqlite_version_1_is_upgraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "durable.db"
    first = _sqlite_schema.migrations()[:1]
    with monkeypatch.context() as patch:  # this durable, as it was at version 1
        patch.setattr(_sqlite_schema, "migrations", lambda: first)
        patch.setattr(_sqlite_schema, "latest_version", lambda: 1)
        store = await SQLiteStore.open(db)
        try:
            assert await store.migrate() == 1
        finally:
            await store.close()
    with closing(sqlite3.connect(db)) as conn, conn:
        now = time.time()
        conn.execute(
            "INSERT INTO durable_workflow (hash, name, wasm, created_at) "
            "VALUES ('h', 'w', x'00', ?)",
            (now,),
        )
        for text in INPUTS:
            conn.execute(
                "INSERT INTO durable_task (name, workflow_hash, input, state, seed, created_at, "
                "updated_at) VALUES ('t', 'h', ?, 'ready', 1, ?, ?)",
                (text, now, now),
            )
    await _upgraded_tasks_run(f"sqlite:///{db}")


async def test_postgres_version_2_is_upgraded(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    older = tuple(m for m in _pg_schema.migrations() if m.version <= 2)
    conn = await asyncpg.connect(pg_url)
    try:
        with monkeypatch.context() as patch:  # this durable, as it was at version 2
            patch.setattr(_pg_schema, "migrations", lambda: older)
            patch.setattr(_pg_schema, "latest_version", lambda: 2)
            assert await _pg_schema.migrate(conn) == 2
        await conn.execute(
            "INSERT INTO durable.workflows (hash, name, wasm) VALUES ('h', 'w', '\\x00')"
        )
        for text in INPUTS:
            await conn.execute(
                "INSERT INTO durable.tasks (name, workflow_hash, input, seed) "
                "VALUES ('t', 'h', $1, 1)",
                text,
            )
    finally:
        await conn.close()
    await _upgraded_tasks_run(pg_url)
