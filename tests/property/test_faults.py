"""The fault injector itself: `CrashingStore` dies exactly where asked, and the
`open_store` hook is off unless its environment variable is set.

The crash properties are only as good as their crash points: a wrapper that wrote
half a write, or let a dead process keep writing, would make them prove nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

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
from durable.storage import open_store
from durable.storage.memory import MemoryStore
from durable.testing.faults import (
    CRASH_AT_ENV,
    CRASH_POINT_ENV,
    WRITE_REPORT,
    CrashingStore,
    SimulatedCrash,
    from_environment,
    kill_self,
    report_write,
)

pytestmark = pytest.mark.anyio


def _event(index: int) -> Event:
    return Event(index=index, label="test", digest=None, payload=str(index))


def _log(position: int) -> LogChunk:
    return LogChunk(position=position, stream=Stream.STDOUT, data=b"line\n")


async def _claimed(store: MemoryStore) -> Lease:
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


async def test_more_methods_can_count_as_writes() -> None:
    inner = MemoryStore()
    store = CrashingStore(inner, crash_at=0, counted=("put_workflow",))
    with pytest.raises(SimulatedCrash):
        await store.put_workflow(b"\0asm")
    assert store.writes[0].method == "put_workflow"


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
