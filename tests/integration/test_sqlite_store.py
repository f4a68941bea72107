"""SQLite-specific behaviour of `SQLiteStore` that the contract suite cannot see.

Migrating from empty, settings, bad paths, several connections and processes sharing
one file, and a caller cancelled in the middle of a write.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import anyio
import pytest

from durable.core.model import Event, LogChunk, NewTask, Released, Stream
from durable.errors import ConfigurationError, SchemaError, StorageError
from durable.storage import _sqlite_schema as schema
from durable.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

WASM = b"\x00asm sqlite tests"


@asynccontextmanager
async def opened(
    path: Path, *, migrate: bool = True, synchronous: str = "FULL"
) -> AsyncIterator[SQLiteStore]:
    store = await SQLiteStore.open(path, synchronous=synchronous)
    try:
        if migrate:
            await store.migrate()
        yield store
    finally:
        await store.close()


async def add_tasks(store: SQLiteStore, count: int) -> list[int]:
    digest = await store.put_workflow(WASM)
    return [
        (await store.create_task(NewTask(name=f"t{i}", workflow_hash=digest, input="{}"))).id
        for i in range(count)
    ]


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    conn.close()
    return {name for (name,) in rows}


# -- schema -------------------------------------------------------------------------------


async def test_migrates_from_empty(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    async with opened(path, migrate=False) as store:
        assert await store.schema_version() == (0, schema.latest_version())
        with pytest.raises(SchemaError, match="durable migrate"):
            await store.list_tasks()
        assert await store.migrate() == schema.latest_version()
        assert await store.schema_version() == (schema.latest_version(),) * 2
        assert await store.migrate() == schema.latest_version()  # idempotent
        assert await store.list_tasks() == []
    names = tables(path) - {"sqlite_sequence"}
    assert {"durable_migrations", "durable_task", "durable_event", "durable_log"} <= names
    assert all(name.startswith("durable_") for name in names), names


async def test_concurrent_migrators_apply_each_version_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    stores = [await SQLiteStore.open(path) for _ in range(4)]
    try:
        results: list[int] = []

        async def migrate(store: SQLiteStore) -> None:
            results.append(await store.migrate())

        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(migrate, store)
    finally:
        for store in stores:
            await store.close()
    assert results == [schema.latest_version()] * 4
    with sqlite3.connect(path) as conn:
        versions = conn.execute("SELECT version FROM durable_migrations ORDER BY 1").fetchall()
    conn.close()
    assert [v for (v,) in versions] == list(range(1, schema.latest_version() + 1))


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    async with opened(path):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO durable_migrations VALUES (999, 'future', 0)")
    conn.close()
    async with opened(path, migrate=False) as store:
        with pytest.raises(SchemaError, match="upgrade durable"):
            await store.migrate()


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = textwrap.dedent("""
        -- a comment; with a semicolon
        CREATE TABLE a (x);
        CREATE TRIGGER t AFTER INSERT ON a BEGIN
            INSERT INTO a VALUES (1);
            INSERT INTO a VALUES (2);
        END;
        -- trailing comment
    """)
    statements = schema.split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER")
    assert statements[1].endswith("END;")
    with pytest.raises(ValueError, match="unterminated"):
        schema.split_statements("CREATE TABLE b (x)")


# -- settings and paths -------------------------------------------------------------------


async def test_pragmas_default_to_durable_and_can_be_relaxed(tmp_path: Path) -> None:
    async def pragma(store: SQLiteStore, name: str) -> object:
        assert store._conn is not None
        rows = list(await store._conn.execute_fetchall(f"PRAGMA {name}"))
        return rows[0][0]

    async with opened(tmp_path / "a.db") as store:
        assert await pragma(store, "journal_mode") == "wal"
        assert await pragma(store, "synchronous") == 2  # FULL
        assert await pragma(store, "foreign_keys") == 1
        assert await pragma(store, "busy_timeout") == 10_000
    async with opened(tmp_path / "b.db", synchronous="normal") as store:
        assert await pragma(store, "synchronous") == 1
    with pytest.raises(ConfigurationError, match="synchronous must be one of"):
        await SQLiteStore.open(tmp_path / "c.db", synchronous="SOMETIMES")


async def test_open_creates_missing_directories(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "c" / "durable.db"
    async with opened(path) as store:
        assert store.url == f"sqlite:///{path}"
    assert path.exists()


@pytest.mark.parametrize(
    "bad",
    [
        Path("/proc/durable-test/durable.db"),  # cannot create the directory
        Path("/proc/durable-test.db"),  # cannot create the file
    ],
)
async def test_unusable_path_is_one_line_configuration_error(bad: Path) -> None:
    with pytest.raises(ConfigurationError) as caught:
        await SQLiteStore.open(bad)
    message = str(caught.value)
    assert "\n" not in message
    assert "Traceback" not in message
    assert str(bad.parent) in message


async def test_parent_that_is_a_file_or_a_non_database_is_refused(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a directory, not a database")
    with pytest.raises(ConfigurationError, match="afile"):
        await SQLiteStore.open(afile / "durable.db")
    with pytest.raises(ConfigurationError, match="not a database"):
        await SQLiteStore.open(afile)
    assert afile.read_text() == "not a directory, not a database", "nothing half-written"


async def test_closed_store_raises_storage_error(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "x.db")
    await store.close()
    with pytest.raises(StorageError, match="closed"):
        await store.list_tasks()


async def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    async with opened(path) as store:
        (task_id,) = await add_tasks(store, 1)
        (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
        await store.append(claim.lease, [Event(index=0, label="a", digest=None, payload="1")], [])
    async with opened(path) as store:
        assert [e.label for e in await store.load_history(task_id)] == ["a"]


# -- sharing the file ---------------------------------------------------------------------


async def test_claimers_on_separate_connections_never_share_a_task(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with opened(path) as first:
        ids = await add_tasks(first, 60)
    stores = [await SQLiteStore.open(path) for _ in range(4)]
    taken: list[int] = []

    async def claimer(store: SQLiteStore, worker: str) -> None:
        for _ in range(len(ids)):
            claims = await store.claim(worker_id=worker, limit=2, lease_seconds=60)
            if not claims:
                return
            taken.extend(c.task.id for c in claims)

    try:
        async with anyio.create_task_group() as tg:
            for n, store in enumerate(stores):
                tg.start_soon(claimer, store, f"w{n}")
    finally:
        for store in stores:
            await store.close()
    assert sorted(taken) == ids


CLAIMER = """
import anyio, json, sys
from durable.storage.sqlite import SQLiteStore

async def main():
    store = await SQLiteStore.open(sys.argv[1])
    taken = []
    try:
        while claims := await store.claim(worker_id=sys.argv[2], limit=1, lease_seconds=60):
            taken.extend(c.task.id for c in claims)
    finally:
        await store.close()
    print(json.dumps(taken))

anyio.run(main)
"""


async def test_claimers_in_separate_processes_never_share_a_task(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with opened(path) as store:
        ids = await add_tasks(store, 150)
    taken: list[int] = []

    async def claimer(worker: str) -> None:
        done = await anyio.run_process([sys.executable, "-c", CLAIMER, str(path), worker])
        taken.extend(json.loads(done.stdout))

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for n in range(3):
                tg.start_soon(claimer, f"p{n}")
    assert sorted(taken) == ids


async def test_wait_for_work_sees_another_connections_commit(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    async with opened(path) as waiter, opened(path) as writer:
        await waiter.wait_for_work(0)
        woke = anyio.Event()

        async def wait() -> None:
            await waiter.wait_for_work(60)
            woke.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            await anyio.sleep(0.1)
            assert not woke.is_set()
            await add_tasks(writer, 1)
            with anyio.fail_after(50):  # before the wait's own 60 s: it was woken
                await woke.wait()


# -- cancellation -------------------------------------------------------------------------


async def test_cancelled_writes_are_all_or_nothing_and_leave_the_store_usable(
    tmp_path: Path,
) -> None:
    rng = random.Random(1234)
    async with opened(tmp_path / "x.db", synchronous="NORMAL") as store:
        await add_tasks(store, 1)
        (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=600)
        for _ in range(150):
            start = len(await store.load_history(claim.task.id))
            events = [
                Event(index=i, label=f"op {i}", digest=None, payload="0")
                for i in range(start, start + 3)
            ]
            log = LogChunk(position=start, stream=Stream.STDOUT, data=b"x")
            with anyio.move_on_after(rng.uniform(0, 0.003)):
                await store.append(claim.lease, events, [log])
        history = await store.load_history(claim.task.id)
        logs = await store.read_logs(claim.task.id)
        assert [e.index for e in history] == list(range(len(history)))
        assert len(history) == 3 * len(logs), "each append is all or nothing"
        assert [c.position for c in logs] == list(range(0, len(history), 3))
        more = Event(index=len(history), label="after", digest=None, payload="0")
        await store.append(claim.lease, [more], [])  # the connection is not stuck
        assert len(await store.load_history(claim.task.id)) == len(history) + 1


async def test_closing_with_a_guest_transaction_left_open_rolls_it_back(tmp_path: Path) -> None:
    """A transaction nobody ends (its caller died) must not make `close` hang with the
    database's write lock held: close waits out the busy timeout, then rolls it back."""
    db = tmp_path / "d.db"
    store = await SQLiteStore.open(db, busy_timeout=0.2)
    await store.migrate()
    digest = await store.put_workflow(b"\0asm")
    await store.create_task(NewTask(name="t", workflow_hash=digest, input="null"))
    (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
    tx = await store.begin_guest_transaction(claim.lease)
    await tx.execute("CREATE TABLE t (v INTEGER)", [], max_bytes=1024)
    with anyio.fail_after(30):  # a hang, not slowness: close would wait for ever
        await store.close()
    with closing(sqlite3.connect(db, timeout=1, isolation_level=None)) as conn:
        conn.execute("BEGIN IMMEDIATE")  # the write lock is free
        found = conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()
        conn.execute("ROLLBACK")
    assert found == (0,)


async def test_a_claim_reads_the_output_logged_before_an_empty_history(tmp_path: Path) -> None:
    # `Claim.start` stands in for the attempt's own `load_attempt` when the history is
    # empty: it must be what that read returns, output before the first event included.
    async with opened(tmp_path / "db.sqlite") as store:
        (task_id,) = await add_tasks(store, 1)
        (first,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
        assert (first.history_length, first.start) == (0, ([], 0))
        out = LogChunk(position=0, stream=Stream.STDOUT, data=b"printed before any event")
        await store.append(first.lease, [], [out])
        await store.finish(first.lease, Released())
        (second,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
        assert second.history_length == 0
        assert second.start == ([], len(out.data)) == await store.load_attempt(task_id)
        await store.append(second.lease, [Event(index=0, label="op", digest=None, payload="1")], [])
        await store.finish(second.lease, Released())
        (third,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
        assert (third.history_length, third.start) == (1, None)  # read by the attempt
