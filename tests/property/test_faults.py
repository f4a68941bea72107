"""The fault injector itself: `CrashingStore` dies exactly where asked, and the
`open_store` hook is off unless its environment variable is set.

The crash properties are only as good as their crash points: a wrapper that wrote
half a write, or let a dead process keep writing, would make them prove nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from durable.core.model import (
    Completed,
    Event,
    Lease,
    LogChunk,
    NewTask,
    Stream,
    TaskState,
    WorkerInfo,
)
from durable.errors import ConfigurationError
from durable.storage import open as open_module
from durable.storage import open_store
from durable.storage.memory import MemoryStore
from durable.storage.sqlite import SQLiteStore
from durable.testing.faults import (
    CRASH_AT_ENV,
    CRASH_POINT_ENV,
    GUEST_COMMIT,
    WRITE_REPORT,
    CrashingStore,
    SimulatedCrash,
    from_environment,
    install,
    kill_self,
    report_write,
)

pytestmark = pytest.mark.anyio


def _event(index: int) -> Event:
    return Event(index=index, label="test", digest=None, payload=str(index))


def _log(position: int) -> LogChunk:
    return LogChunk(position=position, stream=Stream.STDOUT, data=b"line\n")


async def _claimed(store: MemoryStore | SQLiteStore) -> Lease:
    digest = await store.put_workflow(b"\0asm-not-really")
    task = await store.create_task(NewTask(name="t", workflow_hash=digest, input="null"))
    info = WorkerInfo(id="w", hostname="h", pid=1, started_at=datetime.now(UTC))
    await store.register_worker(info)
    (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=60)
    assert claim.task.id == task.id
    return claim.lease


async def test_counting_only_records_every_write_and_never_dies() -> None:
    inner = MemoryStore()
    lease = await _claimed(inner)
    store = CrashingStore(inner, crash_at=None)
    await store.append(lease, [_event(0)], [_log(0)])
    await store.append(lease, [_event(1), _event(2)], [])
    await store.finish(lease, Completed(result="1"), [_event(3)])
    assert [(w.method, w.events, w.logs, w.outcome) for w in store.writes] == [
        ("append", (0,), 1, None),
        ("append", (1, 2), 0, None),
        ("finish", (3,), 0, "Completed"),
    ]
    assert store.writes[2].describe() == "finish(task 1, events [3], 0 log chunk(s), Completed)"
    assert not store.crashed
    assert (await store.get_task(lease.task_id)).state is TaskState.COMPLETE
    assert store.url == inner.url


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
async def test_a_crash_point_makes_the_write_all_or_nothing_then_the_process_is_dead(
    after: bool,
) -> None:
    inner = MemoryStore()
    lease = await _claimed(inner)
    store = CrashingStore(inner, crash_at=1, after=after)
    await store.append(lease, [_event(0)], [])
    with pytest.raises(SimulatedCrash):
        await store.append(lease, [_event(1), _event(2)], [_log(1)])
    assert store.crashed
    history = [e.index for e in await inner.load_history(lease.task_id)]
    logs = await inner.read_logs(lease.task_id)
    if after:
        assert history == [0, 1, 2]
        assert len(logs) == 1
    else:
        assert history == [0]
        assert logs == []
    # A dead process makes no further call, writing or not.
    with pytest.raises(SimulatedCrash):
        await store.get_task(lease.task_id)
    with pytest.raises(SimulatedCrash):
        await store.remove_worker("w")
    with pytest.raises(SimulatedCrash):
        await store.finish(lease, Completed(result="1"))
    assert len(store.writes) == 2
    assert (await inner.get_task(lease.task_id)).state is TaskState.ACTIVE
    await store.close()  # closing only releases resources


async def test_a_store_method_that_returns_a_context_manager_passes_through_alive() -> None:
    """`watch_end` returns an async context manager, not a coroutine (`durable run`
    with the crash hook waits for its task's end through it)."""
    inner = MemoryStore()
    lease = await _claimed(inner)
    store = CrashingStore(inner, crash_at=0)
    async with store.watch_end(lease.task_id) as watch:
        assert watch is not None
    with pytest.raises(SimulatedCrash):
        await store.finish(lease, Completed(result="1"))
    with pytest.raises(SimulatedCrash):
        store.watch_end(lease.task_id)


async def test_more_methods_can_count_as_writes() -> None:
    inner = MemoryStore()
    store = CrashingStore(inner, crash_at=0, counted=("put_workflow",))
    with pytest.raises(SimulatedCrash):
        await store.put_workflow(b"\0asm")
    assert store.writes[0].method == "put_workflow"


async def _rows(store: SQLiteStore, lease: Lease) -> list[list[object]]:
    """The rows of table `t`, read in a guest transaction of its own (then rolled back)."""
    reader = await store.begin_guest_transaction(lease)
    try:
        return (await reader.execute("SELECT v FROM t", [], max_bytes=1 << 20)).rows
    finally:
        await reader.rollback()


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
async def test_a_workflow_sql_commit_is_a_write_and_a_dead_process_rolls_back(
    tmp_path: Path, after: bool
) -> None:
    """The commit of a guest transaction carries its event: the crash falls just before
    it (nothing of the transaction durable, and its locks gone with the process, as
    when a real process's connection drops) or just after it (rows and event both)."""
    inner = await SQLiteStore.open(tmp_path / "d.db")
    try:
        await inner.migrate()
        lease = await _claimed(inner)
        setup = await inner.begin_guest_transaction(lease)
        await setup.execute("CREATE TABLE t (v INTEGER)", [], max_bytes=1024)
        await setup.commit([_event(0)], [])

        store = CrashingStore(inner, crash_at=0, after=after)
        tx = await store.begin_guest_transaction(lease)
        await tx.execute("INSERT INTO t VALUES (1)", [], max_bytes=1024)
        with pytest.raises(SimulatedCrash):
            await tx.commit([_event(1)], [_log(1)])
        assert [(w.method, w.events, w.logs) for w in store.writes] == [(GUEST_COMMIT, (1,), 1)]
        # The database is free again: a resuming worker can write (SQLite's write lock
        # would otherwise be held by the dead process's transaction forever).
        assert await _rows(inner, lease) == ([[1]] if after else [])
        assert [e.index for e in await inner.load_history(lease.task_id)] == (
            [0, 1] if after else [0]
        )
        await inner.append(lease, [_event(2 if after else 1)], [])
    finally:
        await inner.close()


async def test_a_guest_transaction_open_when_the_process_dies_is_rolled_back(
    tmp_path: Path,
) -> None:
    """Another task's write kills the process while this transaction is open: its next
    call fails like every call of a dead process, and its changes are gone."""
    inner = await SQLiteStore.open(tmp_path / "d.db")
    try:
        await inner.migrate()
        lease = await _claimed(inner)
        store = CrashingStore(inner, crash_at=0)
        tx = await store.begin_guest_transaction(lease)
        await tx.execute("CREATE TABLE t (v INTEGER)", [], max_bytes=1024)
        with pytest.raises(SimulatedCrash):
            await store.append(lease, [_event(0)], [])
        with pytest.raises(SimulatedCrash):
            await tx.execute("INSERT INTO t VALUES (1)", [], max_bytes=1024)
        with pytest.raises(SimulatedCrash):
            await tx.commit([_event(0)], [])
        assert len(store.writes) == 1  # the commit of a dead transaction is not attempted
        await inner.append(lease, [_event(0)], [])  # not locked out
        tables = await inner.begin_guest_transaction(lease)
        try:
            found = await tables.execute(  # workflow SQL may not read sqlite_master
                "SELECT count(*) FROM pragma_table_info('t')", [], max_bytes=1024
            )
        finally:
            await tables.rollback()
        assert found.rows == [[0]]
    finally:
        await inner.close()


async def test_workflow_sql_commits_need_not_count(tmp_path: Path) -> None:
    inner = await SQLiteStore.open(tmp_path / "d.db")
    try:
        await inner.migrate()
        lease = await _claimed(inner)
        store = CrashingStore(inner, crash_at=0, counted=("append", "finish"))
        tx = await store.begin_guest_transaction(lease)
        await tx.execute("CREATE TABLE t (v INTEGER)", [], max_bytes=1024)
        await tx.commit([_event(0)], [])
        assert store.writes == []
        assert not store.crashed
        with pytest.raises(SimulatedCrash):
            await store.append(lease, [_event(1)], [])
    finally:
        await inner.close()


def test_the_hook_is_off_without_its_variable() -> None:
    inner = MemoryStore()
    assert from_environment(inner, {}) is inner
    assert from_environment(inner, {CRASH_AT_ENV: ""}) is inner


@pytest.mark.parametrize(("point", "after"), [(None, False), ("before", False), ("AFTER", True)])
def test_the_hook_kills_the_process_at_the_write_it_names(point: str | None, after: bool) -> None:
    env = {CRASH_AT_ENV: "4"}
    if point is not None:
        env[CRASH_POINT_ENV] = point
    wrapped = from_environment(MemoryStore(), env)
    assert isinstance(wrapped, CrashingStore)
    assert wrapped.crash_at == 4
    assert wrapped.after is after
    assert wrapped._on_crash is kill_self
    assert wrapped._on_write is report_write


async def test_the_hook_reports_each_write_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    inner = MemoryStore()
    lease = await _claimed(inner)
    store = CrashingStore(inner, crash_at=None, on_write=report_write)
    await store.append(lease, [_event(0), _event(1)], [])
    assert capsys.readouterr().err == (
        f"{WRITE_REPORT}0: append(task 1, events [0, 1], 0 log chunk(s))\n"
    )


@pytest.mark.parametrize(
    "env",
    [{CRASH_AT_ENV: "x"}, {CRASH_AT_ENV: "-1"}, {CRASH_AT_ENV: "1", CRASH_POINT_ENV: "during"}],
)
def test_the_hook_refuses_values_that_make_no_sense(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        from_environment(MemoryStore(), env)


async def test_open_store_wraps_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(open_module, "_WRAPPERS", [])
    monkeypatch.setenv(CRASH_AT_ENV, "2")
    bare = await open_store("memory://")  # the hook is not installed: production
    assert not isinstance(bare, CrashingStore)
    await bare.close()
    install()  # as the harness's entry point does (`durable.testing.cli`)
    monkeypatch.delenv(CRASH_AT_ENV, raising=False)
    plain = await open_store("memory://")
    assert not isinstance(plain, CrashingStore)
    await plain.close()
    monkeypatch.setenv(CRASH_AT_ENV, "2")
    monkeypatch.setenv(CRASH_POINT_ENV, "after")
    wrapped = await open_store("memory://")
    assert isinstance(wrapped, CrashingStore)
    assert (wrapped.crash_at, wrapped.after) == (2, True)
    await wrapped.close()
