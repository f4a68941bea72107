"""Instances made ahead of the claim (`durable.host.instance_pool`): a task that runs on
one sees exactly what it would see on an instance made for it. Its randomness comes
from its own seed (equal seeds, equal values; the same as without the pool), and its
history replays. Real components, SQLite and Postgres, an in-process worker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from wasmtime import component as wc

from durable.client import Client
from durable.core.machine import ReplayMachine
from durable.core.model import NewTask, TaskState
from durable.host import HostConfig, Runtime, lifecycle
from durable.replayer import Replayer
from durable.storage.base import Store
from durable.storage.sqlite import SQLiteStore
from durable.worker import Worker, WorkerConfig
from tests.guests.wat import build_component_wat
from tests.helpers import WORKFLOWS, built, running, until

pytestmark = pytest.mark.anyio

#: Seeds of the tasks run in order: the third repeats the first.
SEEDS = (11, 22, 11)


async def _run_seeded(store: Store, runtime: Runtime, wasm: bytes) -> list[dict[str, Any]]:
    """Run one task per seed of `SEEDS`, one after another; with a pool, each after the
    first on an instance made ahead. Returns their results, checked to replay."""
    workflow_hash = await store.put_workflow(wasm, name="main")
    client = Client(store)
    results = []
    worker = Worker(store, WorkerConfig(concurrency=1), runtime=runtime)
    async with running(worker):
        for seed in SEEDS:
            if runtime.pool.enabled and results:
                await until(_ready(runtime))  # made after the last attempt, off its path
            spec = NewTask(
                name="main", workflow_hash=workflow_hash, input="0", entry="main", seed=seed
            )
            task = await store.create_task(spec)
            done = await client.wait(task.id, timeout=300)
            assert done.state is TaskState.COMPLETE, done.error
            report = await client.replay(task.id, replayer=Replayer(runtime=runtime))
            assert report.clean, report
            result = json.loads(done.result or "null")
            replayed = json.loads(report.result or "null")
            for key in ("random", "uuid", "time"):  # replayed identically
                assert replayed[key] == result[key]
            results.append(result)
    return results


def _ready(runtime: Runtime) -> Any:
    async def check() -> bool:
        return runtime.pool.ready() > 0

    return check


async def test_pooled_instances_take_their_own_seed(sql_store: Store) -> None:
    wasm, _ = built(WORKFLOWS / "steps.py")
    pooled = Runtime(HostConfig(instance_pool=1))
    fresh = Runtime(HostConfig(instance_pool=0))
    try:
        with_pool = await _run_seeded(sql_store, pooled, wasm)
        taken = pooled.pool.taken
        without = await _run_seeded(sql_store, fresh, wasm)
    finally:
        closed = [pooled.close(), fresh.close()]
    assert all(closed), "a guest was left inside wasmtime"
    # Two of three attempts ran on a prepared instance (replays may take more).
    assert taken >= len(SEEDS) - 1
    assert fresh.pool.taken == 0

    def entropy(result: dict[str, Any]) -> tuple[Any, Any]:
        return result["random"], result["uuid"]

    assert [entropy(r) for r in with_pool] == [entropy(r) for r in without]
    first, second, again = (entropy(r) for r in with_pool)
    assert first == again  # the same seed: the same values, instance made ahead or not
    assert first != second  # another seed: other values, not the pooled instance's own


async def test_close_closes_the_ready_instances(sql_store: Store) -> None:
    wasm, _ = built(WORKFLOWS / "steps.py")
    runtime = Runtime(HostConfig(instance_pool=2))
    try:
        await _run_seeded(sql_store, runtime, wasm)
        await until(_ready(runtime))
    finally:
        assert runtime.close(timeout=60), "a prepared instance was left inside wasmtime"
    assert runtime.pool.ready() == 0


def test_a_component_that_traps_while_instantiated_is_never_pooled() -> None:
    """Its start function runs while the instance is made, before any task: it is not
    kept (its tasks instantiate at the claim, as without the pool)."""
    runtime = Runtime(HostConfig(instance_pool=1))
    try:
        traps = wc.Component(
            runtime.engine,
            """(component
                 (core module $m (func $boom unreachable) (start $boom))
                 (core instance $i (instantiate $m)))""",
        )
        runtime.pool.fill(traps)
        assert runtime.pool.ready() == 0
        runtime.pool.fill(traps)  # refused for good: still none
        assert runtime.pool.ready() == 0
        assert runtime.pool.take(traps) is None
    finally:
        assert runtime.close(), "an instance was left inside wasmtime"


def test_a_component_that_prints_while_instantiated_is_never_pooled(tmp_path: Path) -> None:
    """What a start function writes goes to the pool's file, not to any task: such an
    instance is thrown away, and the component is not pooled again."""
    runtime = Runtime(HostConfig(instance_pool=1))
    try:
        loud = wc.Component(runtime.engine, build_component_wat("loud", tmp_path).read_bytes())
        runtime.pool.fill(loud)
        assert runtime.pool.ready() == 0
        runtime.pool.fill(loud)
        assert runtime.pool.ready() == 0
        assert runtime.pool.take(loud) is None
    finally:
        assert runtime.close(), "an instance was left inside wasmtime"


async def test_each_task_of_a_loud_component_logs_its_own_start_output(
    sql_store: Store, tmp_path: Path
) -> None:
    """Tasks run one after another with the pool on: each instantiates at its claim,
    so the line its start function prints is in its own log, once."""
    wasm = build_component_wat("loud", tmp_path).read_bytes()
    workflow_hash = await sql_store.put_workflow(wasm, name="loud")
    runtime = Runtime(HostConfig(instance_pool=1))
    client = Client(sql_store)
    try:
        async with running(Worker(sql_store, WorkerConfig(concurrency=1), runtime=runtime)):
            for _ in range(3):
                spec = NewTask(name="loud", workflow_hash=workflow_hash, input="0", entry="main")
                task = await sql_store.create_task(spec)
                done = await client.wait(task.id, timeout=300)
                assert (done.state, done.result) == (TaskState.COMPLETE, '"loud"'), done.error
                log = await sql_store.read_logs(task.id, limit=100)
                assert b"".join(c.data for c in log) == b"made\n"
    finally:
        assert runtime.close(), "a guest was left inside wasmtime"
    assert runtime.pool.taken == 0


async def test_a_start_function_that_never_returns_holds_up_no_other_task(
    tmp_path: Path,
) -> None:
    """Its instantiation spins: the pool gives up on it in a bounded time, its task
    fails at its deadline like any guest that spins, and the worker runs other tasks
    meanwhile and after. (On SQLite only: the pool is the host's, under any store.)"""
    sql_store = await SQLiteStore.open(tmp_path / "durable.db")
    await sql_store.migrate()
    spin = build_component_wat("spin", tmp_path).read_bytes()
    spin_hash = await sql_store.put_workflow(spin, name="spin")
    steps_hash = await sql_store.put_workflow(built(WORKFLOWS / "steps.py")[0], name="main")
    runtime = Runtime(HostConfig(instance_pool=1))
    client = Client(sql_store)
    try:
        async with running(Worker(sql_store, WorkerConfig(concurrency=2), runtime=runtime)):
            spinning = await client.launch(spin_hash, name="spin", timeout=2)

            async def claimed() -> bool:
                return (await client.get(spinning.id)).state is TaskState.ACTIVE

            await until(claimed)
            for _ in range(2):  # while it spins, and after its end (the pool refills)
                other = await client.launch(steps_hash, name="main", input=0)
                done = await client.wait(other.id, timeout=300)
                assert done.state is TaskState.COMPLETE, done.error
            spun = await client.wait(spinning.id, timeout=300)
            assert spun.state is TaskState.FAILED
            assert json.loads(spun.error or "{}")["kind"] == "TimeoutError", spun.error
            after = await client.launch(steps_hash, name="main", input=0)
            assert (await client.wait(after.id, timeout=300)).state is TaskState.COMPLETE
    finally:
        await sql_store.close()
        assert runtime.close(timeout=60), "a guest was left inside wasmtime"
    assert runtime.pool.ready() == 0


async def test_kept_instances_do_not_hold_up_the_process_exit(sql_store: Store) -> None:
    """A ready instance runs nothing: a process may exit (`quiesce`, which the CLI and an
    `atexit` hook call) while its runtime keeps one."""
    wasm, _ = built(WORKFLOWS / "steps.py")
    runtime = Runtime(HostConfig(instance_pool=1))
    try:
        await _run_seeded(sql_store, runtime, wasm)
        await until(_ready(runtime))
        assert lifecycle.quiesce(60)
        assert runtime.pool.ready() == 1  # still kept
    finally:
        assert runtime.close(), "a guest was left inside wasmtime"


async def test_a_task_asks_for_entropy_once_before_its_workflow_runs(
    sql_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """componentize-py reseeds `random` from the OS before the first export call (2,496
    bytes, ten host calls); the SDK reseeds from the task's seed right after, so the
    first is skipped: a workflow that draws nothing makes one 32-byte request, on an
    instance made ahead or at the claim."""
    requests: list[int] = []
    derive = ReplayMachine.random_bytes

    def counted(machine: ReplayMachine, length: int) -> bytes:
        requests.append(length)
        return derive(machine, length)

    monkeypatch.setattr(ReplayMachine, "random_bytes", counted)
    wasm, _ = built(WORKFLOWS / "greeter.py")
    workflow_hash = await sql_store.put_workflow(wasm, name="greeter")
    client = Client(sql_store)
    runtime = Runtime(HostConfig(instance_pool=1))
    try:
        async with running(Worker(sql_store, WorkerConfig(concurrency=1), runtime=runtime)):
            for pooled in (False, True):
                if pooled:
                    await until(_ready(runtime))
                requests.clear()
                spec = NewTask(name="g", workflow_hash=workflow_hash, input="7", entry="main")
                task = await sql_store.create_task(spec)
                done = await client.wait(task.id, timeout=300)
                assert done.state is TaskState.COMPLETE, done.error
                assert requests == [32], (pooled, requests)
    finally:
        assert runtime.close(), "a guest was left inside wasmtime"
    assert runtime.pool.taken >= 1
