"""A task whose attempts kill their worker is quarantined, with real `durable worker`s.

Every worker that runs the poisonous task SIGKILLs itself at the task's first write
(the test-only hook `DURABLE_TEST_CRASH_AT=0` with `DURABLE_TEST_CRASH_TASK=<id>`), as
a worker does that hits a crash in SQLite or wasmtime through that task. Workers are
started one after another, each freeing the dead one's tasks at once (same machine).
After `--max-worker-deaths` deaths in a row the next claim fails the task
("Quarantined") instead of handing it out, and an innocent task launched with it
completes, on SQLite and on Postgres.

Also: a worker killed while it compiles a workflow new to its machine does not count
against the task, because it handed the task back before compiling.
"""

from __future__ import annotations

import functools
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable.core.model import Claim, Released, Task, TaskState
from durable.host import HostConfig, Runtime
from durable.storage import open_store
from durable.storage.base import Store
from durable.storage.memory import MemoryStore
from durable.testing.faults import CRASH_AT_ENV, CRASH_TASK_ENV
from durable.worker import Worker, WorkerConfig
from durable.worker.liveness import reap_dead_local_workers
from tests.helpers import (
    ROOT,
    WORKFLOWS,
    built,
    cli_env,
    compiled,
    durable_cmd,
    launch_task,
    run_cli,
    running,
    until,
)

pytestmark = pytest.mark.anyio

#: How long a worker may take to start, claim and die (a loaded CI machine is slow).
DEATH_TIMEOUT = 120.0


@pytest.fixture(scope="module")
def greeter() -> bytes:
    return compiled(WORKFLOWS / "greeter.py")


@asynccontextmanager
async def _opened(url: str) -> AsyncIterator[Store]:
    store = await open_store(url)  # migrates
    try:
        yield store
    finally:
        await store.close()


def _worker(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `durable worker` until it exits (by itself or by its own SIGKILL)."""
    return run_cli("worker", "--db", url, *args, cwd=ROOT, env=env, timeout=DEATH_TIMEOUT)


async def _task(url: str, task_id: int) -> Task:
    async with _opened(url) as store:
        return await store.get_task(task_id)


async def test_a_task_that_kills_every_worker_is_quarantined_and_the_others_complete(
    backend_url: str, greeter: bytes
) -> None:
    async with _opened(backend_url) as store:
        poison = await launch_task(store, greeter, "main", 1, workflow_name="greeter")
        innocent = await launch_task(store, greeter, "main", 2, workflow_name="greeter")
    hook = {CRASH_AT_ENV: "0", CRASH_TASK_ENV: str(poison.id)}

    for death in range(1, 4):
        dead = await anyio.to_thread.run_sync(functools.partial(_worker, backend_url, **hook))
        assert dead.returncode == -signal.SIGKILL, (
            f"worker {death} should have died running task {poison.id}: "
            f"exit {dead.returncode}\n{dead.stderr[-2000:]}"
        )
        assert (await _task(backend_url, poison.id)).state is TaskState.ACTIVE

    # The next worker, with the same hook, must not die: the claim fails the task.
    finish = functools.partial(_worker, backend_url, "--exit-when-idle", **hook)
    last = await anyio.to_thread.run_sync(finish)
    assert last.returncode == 0, f"exit {last.returncode}\n{last.stderr[-2000:]}"

    failed = await _task(backend_url, poison.id)
    assert failed.state is TaskState.FAILED, failed
    assert (failed.deaths, failed.attempts) == (3, 3)
    error = json.loads(failed.error or "{}")
    assert error["kind"] == "Quarantined"
    assert (
        f"task {poison.id} was running when its worker died 3 times in a row" in error["message"]
    ), error["message"]
    done = await _task(backend_url, innocent.id)
    assert done.state is TaskState.COMPLETE, done
    assert done.result == '"Hello, user-2!"'


async def test_a_worker_killed_while_compiling_does_not_count_against_the_task(
    tmp_path: Path, greeter: bytes
) -> None:
    url = f"sqlite:///{tmp_path / 'durable.db'}"
    async with _opened(url) as store:
        task = await launch_task(store, greeter, "main", 3, workflow_name="greeter")
    cold = tmp_path / "cold-cache"  # nothing compiled: the worker must compile
    async with await anyio.open_process(
        durable_cmd("worker", "--db", url),
        cwd=ROOT,
        env=cli_env(DURABLE_CACHE_DIR=str(cold)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as proc:
        try:
            with anyio.fail_after(DEATH_TIMEOUT):
                # Claimed, then handed back while the workflow compiles. Each free slot
                # claims the task once and hands it back, so it is frozen while it holds
                # no lease. (The instant between a claim and its hand-back is a kill
                # during an attempt like any other.)
                while True:
                    now = await _task(url, task.id)
                    assert proc.returncode is None, "the worker exited"
                    if now.attempts > 0 and now.state is TaskState.READY:
                        proc.send_signal(signal.SIGSTOP)
                        if (await _task(url, task.id)).state is TaskState.READY:
                            break  # frozen holding no lease: what the kill below meets
                        proc.send_signal(signal.SIGCONT)  # claimed again meanwhile
                    await anyio.sleep(0.05)
            assert not list(cold.rglob("*.cwasm")), "compiled already: too late to kill"
        finally:
            proc.kill()
            await proc.wait()

    async with _opened(url) as store:
        await reap_dead_local_workers(store, "probe")  # what the next worker does first
        (claim,) = await store.claim(worker_id="probe", limit=1, lease_seconds=60, max_deaths=3)
        assert claim.task.id == task.id
        assert claim.task.deaths == 0, "a kill during the compile counted as a death"
        await store.finish(claim.lease, Released(started=False))
    resumed = await anyio.to_thread.run_sync(_worker, url, "--exit-when-idle")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (await _task(url, task.id)).state is TaskState.COMPLETE


class _Watched(MemoryStore):
    """Records, after each claim, how many tasks on their last chance each worker runs."""

    def __init__(self, last: int) -> None:
        super().__init__()
        self.last = last
        self.most = 0

    async def claim(self, **kwargs: Any) -> list[Claim]:
        claims = await super().claim(**kwargs)
        mine = [
            t
            for t in await self.list_tasks(states=[TaskState.ACTIVE])
            if t.owner == kwargs["worker_id"] and t.deaths == self.last
        ]
        self.most = max(self.most, len(mine))
        return claims


async def test_a_worker_runs_one_task_on_its_last_chance_at_a_time() -> None:
    """Three tasks that shared a dying worker twice: with a limit of 3 deaths, one more
    would quarantine them, so a worker runs them one after another, not together."""
    store = _Watched(last=2)
    wasm = built(WORKFLOWS / "coordination.py")[0]
    tasks = [await launch_task(store, wasm, "nap", 0.5, workflow_name="c") for _ in range(3)]
    for dead in ("w0", "w1"):  # two workers died running all three
        await store.claim(worker_id=dead, limit=10, lease_seconds=0)
    runtime = Runtime(HostConfig())
    try:
        config = WorkerConfig(concurrency=4, max_worker_deaths=3, host=runtime.config)
        async with running(Worker(store, config, runtime=runtime)):
            await until(lambda: _all_ended(store, tasks))
    finally:
        runtime.close()
    for task in tasks:
        done = await store.get_task(task.id)
        assert (done.state, done.deaths) == (TaskState.COMPLETE, 0), done
    assert store.most == 1, f"{store.most} tasks on their last chance ran together"
    # Waiting for its own to end, the worker does not spin on the ones it left.
    assert store.calls.count("claim") < 50, store.calls.count("claim")


async def _all_ended(store: Store, tasks: list[Task]) -> bool:
    return all([(await store.get_task(t.id)).state.is_terminal for t in tasks])
