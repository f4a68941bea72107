"""The instance cache (`--instance-cache`): a task woken on the worker that suspended it
goes on from its live instance, without replaying its history; anything else replays as
before. On real components, SQLite and Postgres, in-process workers and real worker
processes (SIGTERM, SIGKILL)."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable.core.model import Event, NewTask, Task, TaskState
from durable.host import HostConfig, Runtime
from durable.host.instance_cache import INSTANCE_BYTES
from durable.storage import open_store
from durable.storage.base import Store
from durable.storage.sqlite import SQLiteStore
from durable.worker import Worker, WorkerConfig
from tests.helpers import WORKFLOWS, compiled, durable_cmd, running, stock_env, until

pytestmark = pytest.mark.anyio

CACHED = HostConfig(suspend_after=0.3, instance_cache=64 * 1024**2)


class CountingStore:
    """A store that counts history loads: a replay loads the history, a live wake-up
    does not; and the notifications its reads found (every other call goes to the
    store itself)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.loads = 0
        self.found = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def load_history(self, task_id: int) -> list[Event]:
        self.loads += 1
        return await self.inner.load_history(task_id)

    async def load_attempt(self, task_id: int) -> tuple[list[Event], int]:
        self.loads += 1  # an attempt's start reads the history this way
        return await self.inner.load_attempt(task_id)

    async def next_notification(self, task_id: int, *, event: str | None = None) -> Any:
        note = await self.inner.next_notification(task_id, event=event)
        self.found += note is not None
        return note


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    url = (
        f"sqlite:///{tmp_path / 'cache.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    store = await open_store(url)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


@pytest.fixture(scope="module")
def coordination() -> tuple[bytes, str]:
    # Compiled ahead: a worker that finds it uncompiled hands each claimed task back
    # while it compiles, and those claims would count as attempts of their own.
    wasm = compiled(WORKFLOWS / "coordination.py")
    return wasm, hashlib.sha256(wasm).hexdigest()


@pytest.fixture
def runtime() -> Iterator[Runtime]:
    rt = Runtime(CACHED)
    yield rt
    assert rt.close(), "a guest was left running"


def worker(store: Any, runtime: Runtime) -> Worker:
    return Worker(store, WorkerConfig(concurrency=4, lease_seconds=5, host=CACHED), runtime=runtime)


async def launch(store: Store, wasm: tuple[bytes, str], entry: str, value: Any) -> Task:
    await store.put_workflow(wasm[0])
    return await store.create_task(
        NewTask(name=entry, workflow_hash=wasm[1], entry=entry, input=json.dumps(value))
    )


async def suspended(store: Store, task_id: int, attempts: int = 1) -> Task | None:
    """The task once it is suspended after at least `attempts` claims."""
    task = await store.get_task(task_id)
    ok = task.state is TaskState.SUSPENDED and task.attempts >= attempts
    return task if ok else None


async def ended(store: Store, task_id: int) -> Task:
    async def check() -> Task | None:
        task = await store.get_task(task_id)
        return task if task.state.is_terminal else None

    found: Task = await until(check)
    return found


def result(task: Task) -> Any:
    assert task.state is TaskState.COMPLETE, task.error
    return json.loads(task.result or "null")


async def test_woken_on_the_same_worker_goes_on_without_replay(
    db: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    counting = CountingStore(db)
    waiting = await launch(db, coordination, "inbox", {"count": 2, "event": "go"})
    # Long enough to suspend (and park) even on a busy machine: 0.3 s is the limit
    # for blocking in place.
    napping = await launch(db, coordination, "nap", 3.0)
    async with running(worker(counting, runtime)):
        await until(lambda: suspended(db, waiting.id))
        await db.notify(waiting.id, "go", json.dumps("one"))
        await until(lambda: suspended(db, waiting.id, attempts=2))
        await db.notify(waiting.id, "go", json.dumps("two"))
        done = await ended(db, waiting.id)
        slept = await ended(db, napping.id)
    assert result(done) == [["go", "one"], ["go", "two"]]
    history = await db.load_history(napping.id)
    assert result(slept) >= int(history[0].payload) / 1e9  # woke at its deadline
    # Three wake-ups, each on its live instance: the histories were read once per
    # task, by the first attempts' claims (`Claim.start`), and never loaded again.
    assert runtime.instances.hits == 3
    assert counting.loads == 0
    # Each notification came with the claim it woke (`Claim.notification`): the
    # guest's reads of the store found none.
    assert counting.found == 0
    assert done.attempts == 3
    indexes = [e.index for e in await db.load_history(waiting.id)]
    assert indexes == list(range(len(indexes)))


class LookingStore:
    """A store that counts the worker loop's looks at the next wake-up and its turns
    (each ends in a wait for work)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.looks = 0
        self.turns = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def next_wakeup(self, *, affinity_grace: float = 0.0) -> Any:
        self.looks += 1
        return await self.inner.next_wakeup(affinity_grace=affinity_grace)

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - the protocol's
        self.turns += 1
        await self.inner.wait_for_work(timeout)


async def test_a_worker_without_a_free_slot_does_not_look_at_the_next_wake_up(
    db: Store, coordination: tuple[bytes, str]
) -> None:
    # The look would only time a turn that finds no slot either, and its round trip
    # would compete with the attempt just started (a task woken on its kept instance).
    config = HostConfig(suspend_after=7200.0, instance_cache=64 * 1024**2)
    rt = Runtime(config)
    looking = LookingStore(db)
    napping = await launch(db, coordination, "nap", 3600.0)  # blocks in place, in its slot
    await launch(db, coordination, "nap", 0.0)  # due, but no slot takes it
    work = Worker(looking, WorkerConfig(concurrency=1, poll_interval=0.05, host=config), runtime=rt)
    try:
        async with running(work):

            async def holding() -> bool:
                return (await db.get_task(napping.id)).state is TaskState.ACTIVE

            await until(holding)
            looks, turns = looking.looks, looking.turns

            async def turned() -> bool:  # two whole turns since: one began after `looks`
                return looking.turns >= turns + 2

            await until(turned)
            assert looking.looks == looks
    finally:
        assert rt.close(), "a guest was left running"  # stopping released the nap


async def test_woken_on_another_worker_replays_and_the_stale_instance_is_dropped(
    db: Store, coordination: tuple[bytes, str]
) -> None:
    first, second = Runtime(CACHED), Runtime(CACHED)
    try:
        counting = CountingStore(db)
        task = await launch(db, coordination, "inbox", {"count": 2, "event": "go"})
        async with running(worker(counting, first)):
            await until(lambda: suspended(db, task.id))
        assert len(first.instances) == 1  # parked; this runtime outlives its worker
        await db.notify(task.id, "go", json.dumps("one"))
        async with running(worker(counting, second)):  # another worker: it replays
            await until(lambda: suspended(db, task.id, attempts=2))
        await db.notify(task.id, "go", json.dumps("two"))
        async with running(worker(counting, first)):
            # The first worker's instance saw one wait only: another worker ran the
            # task since, so it must not go on; the task replays.
            done = await ended(db, task.id)
        assert result(done) == [["go", "one"], ["go", "two"]]
        assert first.instances.hits == 0
        assert second.instances.hits == 0
        assert first.instances.evictions >= 1
        # The first attempt's claim reads its start (`Claim.start`). On SQLite so does
        # the second worker's claim, whose replay starts from an empty history (the wait
        # recorded nothing yet); a Postgres claim reads only a first attempt's.
        assert counting.loads == (1 if isinstance(db, SQLiteStore) else 2)
    finally:
        assert first.close()
        assert second.close()


async def test_a_tiny_budget_evicts_and_those_tasks_replay(
    db: Store, coordination: tuple[bytes, str]
) -> None:
    rt = Runtime(HostConfig(suspend_after=0.3, instance_cache=INSTANCE_BYTES))  # one instance
    try:
        tasks = [await launch(db, coordination, "inbox", {"count": 1}) for _ in range(3)]
        async with running(worker(db, rt)):
            for t in tasks:
                await until(lambda t=t: suspended(db, t.id))
            assert len(rt.instances) == 1
            for t in tasks:
                await db.notify(t.id, "go", json.dumps(t.id))
            done = [await ended(db, t.id) for t in tasks]
        assert [result(d) for d in done] == [[["go", t.id]] for t in tasks]
        assert rt.instances.evictions >= 2
        assert rt.instances.hits <= 1
    finally:
        assert rt.close()


async def test_a_cancelled_parked_task_is_dropped_and_replays_its_cancellation(
    db: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    task = await launch(db, coordination, "inbox", {"count": 1, "event": "go"})
    async with running(worker(db, runtime)):
        await until(lambda: suspended(db, task.id))
        await db.request_cancel(task.id)
        done = await ended(db, task.id)
        # Cancelled while suspended, it ends without an attempt: the worker drops the
        # instance when it next looks at the tasks it keeps.
        await until(lambda: anyio.to_thread.run_sync(lambda: len(runtime.instances) == 0))
    assert done.state is TaskState.CANCELLED, done
    assert runtime.instances.hits == 0
    assert runtime.instances.evictions == 1


# -- real worker processes ----------------------------------------------------------------


def _start_worker(url: str, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = stock_env(DURABLE_SUSPEND_AFTER="0.3", DURABLE_INSTANCE_CACHE="512M")
    with open(tmp_path / f"{name}.log", "wb") as log:
        return subprocess.Popen(
            durable_cmd("worker", "--db", url, "--migrate", "-v"),
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


LIVE = "woken on its live instance, no replay"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_worker_stopped_with_parked_instances_then_resumed_elsewhere(
    backend_url: str, tmp_path: Path, coordination: tuple[bytes, str], sig: signal.Signals
) -> None:
    store = await open_store(backend_url)
    await store.migrate()
    try:
        tasks = [
            await launch(store, coordination, "inbox", {"count": 2, "event": "go"})
            for _ in range(2)
        ]
        first = _start_worker(backend_url, tmp_path, "first")
        try:
            for t in tasks:
                await until(lambda t=t: suspended(store, t.id))
            for t in tasks:
                await store.notify(t.id, "go", json.dumps("one"))
            for t in tasks:  # woken live, and parked again
                await until(lambda t=t: suspended(store, t.id, attempts=2))
        finally:
            first.send_signal(sig)
            returncode = await anyio.to_thread.run_sync(lambda: first.wait(timeout=60))
        log = (tmp_path / "first.log").read_text()
        assert log.count(LIVE) == 2, log
        if sig is signal.SIGTERM:
            assert returncode == 0, log  # parked guests unwound, nothing left behind
            assert "still running" not in log, log
        else:
            assert returncode == -signal.SIGKILL
        for t in tasks:
            await store.notify(t.id, "go", json.dumps("two"))
        second = _start_worker(backend_url, tmp_path, "second")
        try:
            done = [await ended(store, t.id) for t in tasks]
        finally:
            second.send_signal(signal.SIGTERM)
            await anyio.to_thread.run_sync(lambda: second.wait(timeout=60))
        assert [result(d) for d in done] == [[["go", "one"], ["go", "two"]]] * 2
        assert LIVE not in (tmp_path / "second.log").read_text()  # it had to replay
        for t in tasks:
            indexes = [e.index for e in await store.load_history(t.id)]
            assert indexes == list(range(len(indexes)))
    finally:
        await store.close()
