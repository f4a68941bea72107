"""`durable.transaction` end to end: real components, real SQLite files and Postgres.

The rows a workflow writes are counted straight from the database, so the tests can tell
a transaction that ran once from one that ran twice. Crashes are simulated in process
with sinks that raise at a chosen point (the store's connection is then closed, as a
dead process's would be), and for real with `durable run` and SIGKILL.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from durable.core.model import Completed, Event, Failed, LogChunk, NewTask, Task, TaskState
from durable.core.side_writes import SideWrite
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from durable.host.runtime import AttemptEnd, Runtime
from durable.storage import _pg_admin
from durable.storage.base import Store, WorkflowSQL
from durable.storage.guest import GuestSQLError
from durable.storage.memory import MemoryStore
from durable.storage.sqlite import SQLiteStore
from durable.worker.attempt import StoreSink, sink_maker
from tests.conftest import STORE_BACKENDS
from tests.helpers import (
    EXAMPLES,
    WORKFLOWS,
    built,
    completed_result,
    durable_cmd,
    launch_task,
    load_component,
    replay,
    run_cli,
    run_until_idle,
)

pytestmark = pytest.mark.anyio

WORKFLOW = WORKFLOWS / "sql_ops.py"


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, anyio_backend: str) -> AsyncIterator[Store]:
    """SQLite and Postgres only: the memory store has no SQL (see the memory test)."""
    async with STORE_BACKENDS[request.param](request) as opened:
        yield opened


@pytest.fixture(scope="module")
def wasm() -> bytes:
    return built(WORKFLOW)[0]


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = Runtime(HostConfig(cache_dir=tmp_path_factory.mktemp("cache"), suspend_after=5.0))
    yield rt
    rt.close()


def fresh_table() -> str:
    """A table name no other test uses (the Postgres database is shared)."""
    return f"t_{uuid.uuid4().hex[:12]}"


def is_sqlite(store: Store) -> bool:
    return isinstance(store, SQLiteStore)


async def query(store: Store, sql: str) -> list[tuple[Any, ...]]:
    """Read the database directly, outside any workflow."""
    if isinstance(store, SQLiteStore):

        def read() -> list[tuple[Any, ...]]:
            with sqlite3.connect(store.path) as conn:
                return conn.execute(sql).fetchall()

        return await anyio.to_thread.run_sync(read)
    return await _pg_admin.fetch(store.url, sql)


async def count(store: Store, table: str) -> int:
    return int((await query(store, f"SELECT count(*) FROM {table}"))[0][0])


async def launch(store: Store, wasm: bytes, entry: str, value: Any) -> Task:
    return await launch_task(store, wasm, entry, value, workflow_name="sql_ops")


async def run_task(store: Store, runtime: Runtime, wasm: bytes, entry: str, value: Any) -> Task:
    task = await launch(store, wasm, entry, value)
    await run_until_idle(store, runtime)
    return await store.get_task(task.id)


result = completed_result


async def logs_of(store: Store, task_id: int) -> bytes:
    return b"".join(c.data for c in await store.read_logs(task_id) if c.stream == "stdout")


# -- crashes, in process ----------------------------------------------------------------------


class Crash(Exception):
    """Stands for the process dying."""


class CrashAfterCommit:
    """Dies at the first write after the SQL transaction committed: its rows and its
    event are durable, nothing after them is."""

    def __init__(self, inner: StoreSink) -> None:
        self.inner = inner
        self.committed = False

    def begin_transaction(self) -> Any:
        session = self.inner.begin_transaction()
        sink = self

        class Session:
            def execute(self, *args: Any, **kwargs: Any) -> Any:
                return session.execute(*args, **kwargs)

            def commit(self, events: Sequence[Event], logs: Sequence[LogChunk]) -> None:
                session.commit(events, logs)
                sink.committed = True

            def rollback(self) -> None:
                session.rollback()

        return Session()

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        if self.committed:
            raise Crash("killed after the transaction committed")
        self.inner.write(events, logs, writes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CrashAtCommit:
    """Dies when the transaction is about to commit: every statement ran, nothing is
    durable."""

    def __init__(self, inner: StoreSink) -> None:
        self.inner = inner

    def begin_transaction(self) -> Any:
        session = self.inner.begin_transaction()

        class Session:
            def execute(self, *args: Any, **kwargs: Any) -> Any:
                return session.execute(*args, **kwargs)

            def commit(self, events: Sequence[Event], logs: Sequence[LogChunk]) -> None:
                raise Crash("killed inside the transaction, before its commit")

            def rollback(self) -> None:
                session.rollback()

        return Session()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def crashing_attempt(
    store: Store, runtime: Runtime, wasm: bytes, wrap: Callable[[StoreSink], Any]
) -> BaseException | AttemptEnd:
    """Claim the next task and run one attempt through `wrap(sink)`; on a crash, close
    what the dead process held (its open transaction rolls back) and expire its lease."""
    [claim] = await store.claim(worker_id="crashy", limit=1, lease_seconds=60)
    component = await anyio.to_thread.run_sync(load_component, runtime, wasm)
    sink = sink_maker(store)(claim.lease, claim.notification)
    ctx = AttemptContext(
        task=claim.task,
        attempt=claim.task.attempts,
        history=await store.load_history(claim.task.id),
        sink=wrap(sink),
        config=runtime.config,
    )
    try:
        return await anyio.to_thread.run_sync(runtime.run, component, ctx)
    except Crash as exc:
        return exc
    finally:
        await sink.aclose()
        await store.remove_worker("crashy")


# -- exactly once -----------------------------------------------------------------------------


async def test_rows_and_event_commit_together_and_replay_runs_no_sql(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    table = fresh_table()
    task = await run_task(store, runtime, wasm, "ledger", {"table": table, "rows": 3})
    assert result(task) == 3
    assert await count(store, table) == 3
    events = await store.load_history(task.id)
    assert [e.label for e in events] == ["sql ledger"]
    recorded = json.loads(events[0].payload)
    assert recorded["outcome"] == "commit"
    assert len(recorded["results"]) == 5  # CREATE, 3 INSERTs, SELECT: one entry each
    assert await logs_of(store, task.id) == b"inserting 3 rows\ncommitted 3\ndone\n"

    # A replay answers every statement from the event: it never reaches the store.
    end = await replay(store, runtime, wasm, task)
    assert isinstance(end.outcome, Completed), end.outcome
    assert json.loads(end.outcome.result) == 3
    assert await count(store, table) == 3


async def test_crash_after_commit_does_not_run_the_sql_again(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    table = fresh_table()
    task = await launch(store, wasm, "ledger", {"table": table, "rows": 3, "pause": 0.01})
    crashed = await crashing_attempt(store, runtime, wasm, CrashAfterCommit)
    assert isinstance(crashed, Crash)
    assert await count(store, table) == 3  # the transaction and its rows are durable ...
    assert [e.label for e in await store.load_history(task.id)] == ["sql ledger"]

    await run_until_idle(store, runtime)  # ... and the replay does not run it again
    done = await store.get_task(task.id)
    assert result(done) == 3
    assert await count(store, table) == 3
    labels = [e.label for e in await store.load_history(task.id)]
    assert labels == ["sql ledger", "durable:timer.sleep"]
    assert await logs_of(store, task.id) == b"inserting 3 rows\ncommitted 3\ndone\n"


async def test_crash_inside_the_transaction_runs_it_again_once(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    table = fresh_table()
    task = await launch(store, wasm, "ledger", {"table": table, "rows": 3})
    crashed = await crashing_attempt(store, runtime, wasm, CrashAtCommit)
    assert isinstance(crashed, Crash)
    assert await store.load_history(task.id) == []  # nothing of it is durable

    await run_until_idle(store, runtime)
    done = await store.get_task(task.id)
    assert result(done) == 3
    # The table itself was created inside the lost transaction, then again: no row is
    # left from the first run, and none is doubled.
    assert await count(store, table) == 3
    assert [e.label for e in await store.load_history(task.id)] == ["sql ledger"]
    assert await logs_of(store, task.id) == b"inserting 3 rows\ncommitted 3\ndone\n"


async def test_exception_in_the_block_rolls_back_and_is_recorded(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    table = fresh_table()
    task = await run_task(store, runtime, wasm, "raising", {"table": table})
    assert result(task) == {"raised": "changed my mind", "count": 0}
    assert await count(store, table) == 0
    events = await store.load_history(task.id)
    assert [e.label for e in events] == ["sql setup", "sql doomed", "sql count"]
    doomed = json.loads(events[1].payload)
    assert doomed["outcome"] == "rollback"
    assert doomed["reason"] == "ValueError: changed my mind"
    assert len(doomed["results"]) == 1  # the INSERT ran, and was rolled back
    end = await replay(store, runtime, wasm, task)
    assert isinstance(end.outcome, Completed)


async def test_replay_of_a_different_statement_is_nondeterministic(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    table = fresh_table()
    task = await run_task(store, runtime, wasm, "ledger", {"table": table, "rows": 2})
    assert result(task) == 2
    fewer = replace(task, input=json.dumps({"table": table, "rows": 1}))
    end = await replay(store, runtime, wasm, fewer)
    assert isinstance(end.outcome, Failed)
    error = json.loads(end.outcome.error)
    assert error["kind"] == "NondeterminismError"
    assert "event 0" in error["message"]
    assert "statement 3" in error["message"]  # the recorded second INSERT ...
    assert "'sql ledger'" in error["message"]  # ... against the SELECT that came instead
    other = replace(task, input=json.dumps({"table": fresh_table(), "rows": 2}))
    end = await replay(store, runtime, wasm, other)
    assert isinstance(end.outcome, Failed)
    assert "statement 1 (digest" in json.loads(end.outcome.error)["message"]


# -- values and errors ------------------------------------------------------------------------


async def test_values_of_every_type_round_trip(store: Store, runtime: Runtime, wasm: bytes) -> None:
    table = fresh_table()
    task = await run_task(store, runtime, wasm, "types", {"table": table})
    out = result(task)
    stamp = "2024-05-01T12:30:15.123456+00:00"
    uid = "12345678-1234-5678-1234-567812345678"
    if is_sqlite(store):
        # SQLite has no boolean, decimal, JSON, timestamp or UUID types: text (or 1).
        expected = [
            ["int", 1], ["int", 42], ["int", -(2**63)], ["float", 1.5], ["str", "12.50"],
            ["str", "héllo ☃"], ["bytes", [0, 255, 16]], ["str", '{"a": [1, "x"], "b": null}'],
            ["str", "2024-05-01 12:30:15.123456"], ["str", uid], ["NoneType", None],
        ]  # fmt: skip
    else:
        expected = [
            ["bool", True], ["int", 42], ["int", -(2**63)], ["float", 1.5],
            ["Decimal", "12.50"], ["str", "héllo ☃"], ["bytes", [0, 255, 16]],
            ["dict", {"a": [1, "x"], "b": None}], ["datetime", stamp], ["UUID", uid],
            ["NoneType", None],
        ]  # fmt: skip
    assert out["backend"] == ("sqlite" if is_sqlite(store) else "postgres")
    assert out["row"] == expected
    assert out["rowcount"] == 1
    assert out["columns"] == ["b", "i", "lo", "f", "d", "t", "bl", "j", "ts", "u", "missing"]
    assert out["dicts"] == [out["columns"]]
    # The replay hands back the very same values, and the same clock reading.
    end = await replay(store, runtime, wasm, task)
    assert isinstance(end.outcome, Completed)
    assert json.loads(end.outcome.result) == out


async def test_failed_statements_are_typed_recorded_and_the_transaction_goes_on(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    table = fresh_table()
    strict = "STRICT" if is_sqlite(store) else ""
    engine_table = "durable_event" if is_sqlite(store) else "durable.events"
    cases = [
        ["create", f"CREATE TABLE {table} (i INTEGER, u TEXT UNIQUE) {strict}", []],
        ["insert", f"INSERT INTO {table} (i, u) VALUES (?, ?)", [1, "one"]],
        ["syntax", "SELEC 1", []],
        ["no_table", "SELECT * FROM no_such_table_anywhere", []],
        ["param_count", f"SELECT i FROM {table} WHERE i = ?", []],
        ["param_type", f"INSERT INTO {table} (i, u) VALUES (?, ?)", ["not a number", "two"]],
        ["unique", f"INSERT INTO {table} (i, u) VALUES (?, ?)", [2, "one"]],
        ["engine", f"SELECT * FROM {engine_table}", []],
        ["commit", "COMMIT", []],
        ["two_statements", "SELECT 1; SELECT 2", []],
        ["rows", f"SELECT i, u FROM {table}", []],
    ]
    task = await run_task(store, runtime, wasm, "errors", {"cases": cases})
    out = result(task)
    assert out["create"][0] == "ok"
    assert out["insert"][:2] == ["ok", 1]
    assert out["syntax"][:3] == ["ProgrammingError", "syntax", True]
    assert out["no_table"][:2] == ["ProgrammingError", "syntax"]
    assert out["param_count"][:2] == ["DataError", "data"]
    assert out["param_type"][:2] == ["DataError", "data"]
    assert out["unique"][:3] == ["IntegrityError", "constraint", True]
    assert out["engine"][:2] == ["Forbidden", "forbidden"]
    assert out["commit"][:2] == ["Forbidden", "forbidden"]
    assert "durable.transaction" in out["commit"][3]
    assert out["two_statements"][:2] == ["ProgrammingError", "syntax"]
    # Each failed statement was undone alone; the transaction went on and committed.
    assert out["rows"] == ["ok", -1, [[1, "one"]]]
    assert out["after"] == 2
    assert await query(store, f"SELECT i, u FROM {table}") == [(1, "one")]
    assert await logs_of(store, task.id) == b"errors handled\n"
    # Errors are recorded like rows: the replay raises the same ones, running nothing.
    end = await replay(store, runtime, wasm, task)
    assert isinstance(end.outcome, Completed)
    assert json.loads(end.outcome.result) == out


async def test_a_refused_commit_is_recorded_and_raised(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    table = fresh_table()
    task = await run_task(store, runtime, wasm, "deferred", {"table": table})
    assert result(task) == {"inserted": 1, "error": ["IntegrityError", "constraint"]}
    events = await store.load_history(task.id)
    assert [e.label for e in events] == ["sql deferred"]
    recorded = json.loads(events[0].payload)
    assert recorded["outcome"] == "commit-failed"
    assert recorded["error"]["kind"] == "constraint"
    # Rolled back: not even the tables were created.
    exists = (
        f"SELECT count(*) FROM sqlite_master WHERE name = '{table}_child'"
        if is_sqlite(store)
        else f"SELECT count(*) FROM pg_tables WHERE tablename = '{table}_child'"
    )
    assert await query(store, exists) == [(0,)]
    end = await replay(store, runtime, wasm, task)
    assert isinstance(end.outcome, Completed)
    assert json.loads(end.outcome.result) == result(task)


SQLITE_ATTACKS = [
    "SELECT * FROM durable_event",
    "SELECT * FROM main.DURABLE_TASK",
    "WITH t AS (SELECT * FROM durable_task) SELECT count(*) FROM t",
    "UPDATE durable_task SET state = 'failed'",
    "DELETE FROM durable_log",
    "INSERT INTO durable_notification (task_id, event, data, created_at) VALUES (1, 'x', '1', 0)",
    "DROP TABLE durable_event",
    "ALTER TABLE durable_event ADD COLUMN x",
    "CREATE INDEX guest_ix ON durable_event (payload)",
    "CREATE TRIGGER guest_tr AFTER INSERT ON durable_event BEGIN SELECT 1; END",
    "CREATE TEMP TRIGGER guest_tt AFTER INSERT ON main.durable_event BEGIN SELECT 1; END",
    "CREATE TABLE durable_mine (x)",
    "SELECT * FROM guest_view",
    "SELECT * FROM pragma_table_info('durable_event')",
    "UPDATE sqlite_sequence SET seq = 0",
    "ATTACH DATABASE ':memory:' AS other",
    "PRAGMA writable_schema = ON",
    "PRAGMA synchronous = OFF",
    "BEGIN",
    "ROLLBACK",
    "SAVEPOINT mine",
    "RELEASE durable_statement",
]
PG_ATTACKS = [
    "SELECT * FROM durable.events",
    "SELECT count(*) FROM durable.tasks",
    "UPDATE durable.tasks SET state = 'failed'",
    "DELETE FROM durable.logs",
    "TRUNCATE durable.notifications",
    "DROP TABLE durable.events",
    "CREATE TABLE durable.mine (x int)",
    "RESET ROLE",
    "SET ROLE postgres",
    "SET SESSION AUTHORIZATION postgres",
    "SELECT set_config('role', 'none', true)",
    """SELECT pg_catalog."set_config"('role', 'none', true)""",
    "DO $$ BEGIN RESET ROLE; END $$",
    "CREATE FUNCTION guest_leak() RETURNS bigint LANGUAGE sql AS $$ SELECT 1::bigint $$",
    "BEGIN",
    "ROLLBACK",
    "SAVEPOINT mine",
    "PREPARE TRANSACTION 'mine'",
    "LISTEN mine",
]


async def test_workflow_sql_cannot_touch_the_engine_tables(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    engine = "durable_event" if is_sqlite(store) else "durable.events"
    attacks = SQLITE_ATTACKS if is_sqlite(store) else PG_ATTACKS
    view_name = f"guest_view_{uuid.uuid4().hex[:8]}"
    cases = [["view", f"CREATE VIEW {view_name} AS SELECT * FROM {engine}", []]]
    cases += [[s, s.replace("guest_view", view_name), []] for s in attacks]
    before = await run_task(store, runtime, wasm, "ledger", {"table": fresh_table(), "rows": 1})
    task = await run_task(store, runtime, wasm, "errors", {"cases": cases})
    out = result(task)
    if is_sqlite(store):
        assert out.pop("view")[0] == "ok"  # a view may name them; reading it may not
    else:
        assert out.pop("view")[:2] == ["Forbidden", "forbidden"]
    assert out.pop("after") == 2  # the transaction survived every refusal
    refused = {name: outcome for name, outcome in out.items() if outcome[0] != "Forbidden"}
    assert refused == {}
    assert all(outcome[1] == "forbidden" for outcome in out.values())
    if is_sqlite(store):
        message = out["SELECT * FROM durable_event"][3]
        assert "durable_event is one of durable's own tables" in message
    else:
        message = out["SELECT * FROM durable.events"][3]
        assert "permission denied for schema durable" in message
        assert "durable_guest" in message
    # Nothing of the engine's changed: the earlier task and its history are intact.
    assert (await store.get_task(before.id)).state is TaskState.COMPLETE
    assert [e.label for e in await store.load_history(before.id)] == ["sql ledger"]
    assert [e.label for e in await store.load_history(task.id)] == ["sql errors"]


async def test_a_statement_that_resets_its_role_is_still_the_guest_login(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Postgres boundary without the refusals: a statement that takes its role back
    returns to its login, the guest login, which still cannot reach the engine's tables;
    the transaction goes on and commits."""
    if is_sqlite(store):
        pytest.skip("roles are Postgres's")
    from durable.storage import _pg_guest

    monkeypatch.setattr(_pg_guest, "refusal", lambda sql: None)  # let everything through
    digest = await store.put_workflow(b"\x00asm role test")
    task = await store.create_task(NewTask(name="t", workflow_hash=digest, input="null"))
    [claim] = await store.claim(worker_id="w", limit=1, lease_seconds=60)
    table = fresh_table()
    tx = await store.begin_guest_transaction(claim.lease)
    try:
        await tx.execute(f"CREATE TABLE {table} (v text)", [], max_bytes=1000)
        await tx.execute("RESET ROLE", [], max_bytes=1000)
        await tx.execute("SELECT set_config('role', 'none', false)", [], max_bytes=1000)
        who = await tx.execute("SELECT current_user::text, session_user::text", [], max_bytes=1000)
        assert who.rows[0][0] == who.rows[0][1] != "postgres"
        with pytest.raises(GuestSQLError) as caught:
            await tx.execute("SELECT count(*) FROM durable.events", [], max_bytes=1000)
        assert caught.value.kind == "forbidden"
        await tx.commit([Event(index=0, label="sql x", digest=None, payload="{}")], [])
    finally:
        await tx.rollback()
    assert [e.label for e in await store.load_history(task.id)] == ["sql x"]
    assert await query(store, f"SELECT count(*) FROM pg_tables WHERE tablename = '{table}'") == [
        (1,)
    ]


# -- misuse -------------------------------------------------------------------------------------


async def test_what_a_transaction_refuses(store: Store, runtime: Runtime, wasm: bytes) -> None:
    nested = await run_task(store, runtime, wasm, "misuse", {"what": "nested"})
    assert "transactions do not nest" in result(nested)
    in_step = await run_task(store, runtime, wasm, "misuse", {"what": "in_step"})
    assert "inside a step" in result(in_step)
    after_end = await run_task(store, runtime, wasm, "misuse", {"what": "after_end"})
    assert result(after_end) == "transaction 'short' has ended"
    bad_param = await run_task(store, runtime, wasm, "misuse", {"what": "bad_param"})
    assert result(bad_param) == "cannot pass a object as a SQL parameter"

    # A durable call inside the block would happen again on every replay: the task
    # fails, the transaction rolls back, and the database is free for the next one.
    table = fresh_table()
    sleepy = await run_task(store, runtime, wasm, "misuse", {"what": "sleep", "table": table})
    assert sleepy.state is TaskState.FAILED
    error = json.loads(sleepy.error or "{}")
    assert error["kind"] == "HostError"
    assert "'durable:timer.sleep' inside SQL transaction 'sql sleepy'" in error["message"]
    assert await store.load_history(sleepy.id) == []
    again = await run_task(store, runtime, wasm, "ledger", {"table": table, "rows": 2})
    assert result(again) == 2
    assert await query(store, f"SELECT count(*) FROM {table} WHERE n IS NULL") == [(0,)]


async def test_the_memory_store_refuses_sql(runtime: Runtime, wasm: bytes) -> None:
    store = MemoryStore()
    assert not isinstance(store, WorkflowSQL)  # it says so in its type
    task = await run_task(store, runtime, wasm, "ledger", {"table": "t", "rows": 1})
    assert task.state is TaskState.FAILED
    error = json.loads(task.error or "{}")
    assert error["kind"] == "HostError"
    assert "the memory store has no SQL database: run it on SQLite or Postgres" in error["message"]
    assert await store.load_history(task.id) == []


# -- through the CLI, on SQLite -------------------------------------------------------------------


def test_example_bank_transfer_through_the_cli(tmp_path: Path) -> None:
    example = str(EXAMPLES / "bank_transfer.py")
    # Without its tables, a transfer fails and changes nothing: they are made once, first.
    early = run_cli("run", example, "--input", '{"cents": 2500}', cwd=tmp_path)
    assert early.returncode == 1
    assert "no such table: bank_accounts" in early.stderr
    setup = run_cli("run", example, "--entry", "setup", cwd=tmp_path)
    assert setup.returncode == 0, setup.stderr
    assert setup.stdout == '"ready"\n'
    first = run_cli("run", example, "--input", '{"cents": 2500}', cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[-1]) == {"alice": 7500, "bob": 12500}
    second = run_cli("run", example, "--input", '{"cents": 2500}', cwd=tmp_path)
    assert json.loads(second.stdout.splitlines()[-1]) == {"alice": 5000, "bob": 15000}
    broke = run_cli("run", example, "--input", '{"cents": 99999}', cwd=tmp_path)
    assert broke.returncode == 1
    assert "task 5 failed: InsufficientFunds: alice cannot cover 99999 cents" in broke.stderr
    with sqlite3.connect(tmp_path / ".durable" / "durable.db") as conn:
        balances = conn.execute("SELECT name, balance_cents FROM bank_accounts ORDER BY name")
        assert balances.fetchall() == [("alice", 5000), ("bob", 15000)]
        journal = conn.execute("SELECT task_id, cents FROM bank_transfers ORDER BY task_id")
        assert journal.fetchall() == [(3, 2500), (4, 2500)]


def _locked(db: Path) -> bool:
    """Whether another connection holds the database's write lock right now."""
    if not db.exists():
        return False
    conn = sqlite3.connect(db, timeout=0)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        conn.close()


class CliDatabase:
    """A database the CLI runs against in a subprocess test, and a way to look into it."""

    def __init__(self, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        if backend == "sqlite":
            self.path = tmp_path / "sql.db"
            self.url = str(self.path)
        else:
            self.url = request.getfixturevalue("pg_url")
            migrated = run_cli("migrate", "--db", self.url, cwd=tmp_path)
            assert migrated.returncode == 0, migrated.stderr

    def read(self, sql: str) -> list[tuple[Any, ...]]:
        if self.backend == "sqlite":
            with sqlite3.connect(self.path) as conn:
                return conn.execute(sql).fetchall()
        return asyncio.run(_pg_admin.fetch(self.url, sql))

    def in_slow_statement(self) -> bool:
        """Whether a guest transaction is inside its slow statement right now."""
        if self.backend == "sqlite":
            return _locked(self.path)  # it holds the write lock
        active = self.read(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'active' AND query LIKE 'SELECT pg_sleep%'"
        )
        return int(active[0][0]) > 0

    def table_exists(self, name: str) -> bool:
        if self.backend == "sqlite":
            return bool(self.read(f"SELECT 1 FROM sqlite_master WHERE name = '{name}'"))
        return bool(self.read(f"SELECT 1 FROM pg_tables WHERE tablename = '{name}'"))


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_killed_inside_the_transaction_runs_it_again_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    db = CliDatabase(backend, tmp_path, request)
    table = fresh_table()
    # The first attempt runs a statement that takes minutes, inside the transaction,
    # after its INSERTs, and is killed there. Later attempts skip it.
    slow = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000000) "
        "SELECT count(*) FROM c"
        if backend == "sqlite"
        else "SELECT pg_sleep(600)"
    )
    args = {"table": table, "rows": 3, "slow": slow}
    proc = subprocess.Popen(
        durable_cmd(
            "run", str(WORKFLOW), "--entry", "ledger", "--input", json.dumps(args), "--db", db.url
        ),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    inside = False
    try:
        deadline, since = time.monotonic() + 120, None
        while not inside and time.monotonic() < deadline and proc.poll() is None:
            since = (since or time.monotonic()) if db.in_slow_statement() else None
            inside = since is not None and time.monotonic() - since > 1.0
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
    assert inside, f"the transaction never reached its slow statement: {stderr.decode()[-2000:]}"
    assert not db.table_exists(table)  # created inside the lost transaction

    resumed = run_cli("worker", "--db", db.url, "--exit-when-idle", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    (state, result_json), *_ = db.read("SELECT state, result FROM " + _tasks(backend))
    assert (state, json.loads(result_json)) == ("complete", 3)
    assert db.read(f"SELECT task_id, n FROM {table} ORDER BY n") == [(1, 0), (1, 1), (1, 2)]
    assert [label for (label,) in db.read("SELECT label FROM " + _events(backend))] == [
        "sql ledger"
    ]
    logs = run_cli("logs", "1", "--db", db.url, cwd=tmp_path)
    # What the lost attempt printed inside the transaction died with it.
    assert logs.stdout == "inserting 3 rows\ncommitted 3\ndone\n"


def _tasks(backend: str) -> str:
    return "durable_task" if backend == "sqlite" else "durable.tasks"


def _events(backend: str) -> str:
    return "durable_event" if backend == "sqlite" else "durable.events"
