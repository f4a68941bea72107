"""Claim affinity: with `durable worker --processes N`, a woken task goes to the process
that keeps its instance live, so it carries on without replay every time; a keeper that
is dead, or alive but not claiming, holds the task only for the grace. Real worker
processes and components, SQLite and Postgres, SIGKILL; waits are for conditions."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from durable.core.model import Suspended, Task, TaskState, WorkerInfo
from durable.storage import open_store
from durable.storage.base import Store
from tests.helpers import WORKFLOWS, compiled, durable_cmd, stock_env, until
from tests.integration.test_instance_cache import (
    LIVE,
    ended,
    launch,
    result,
    suspended,
)

pytestmark = pytest.mark.anyio

#: Only a wake-up can bring a worker back in time: its poll (a safety net) never comes.
NO_POLL = "600"


@pytest.fixture(scope="module")
def coordination() -> tuple[bytes, str]:
    # Compiled ahead, so that no worker hands a first claim back while it compiles.
    wasm = compiled(WORKFLOWS / "coordination.py")
    return wasm, hashlib.sha256(wasm).hexdigest()


@pytest.fixture
async def store(backend_url: str) -> AsyncIterator[Store]:
    opened = await open_store(backend_url)
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()


def _worker(url: str, log: Path, processes: int, **env: str) -> subprocess.Popen[bytes]:
    """`durable worker -v` with the instance cache on, its log (every process's) in `log`."""
    settings = stock_env(
        DURABLE_SUSPEND_AFTER="0.3",
        DURABLE_INSTANCE_CACHE="512M",
        DURABLE_POLL_INTERVAL=NO_POLL,
        **env,
    )
    with open(log, "ab") as out:
        return subprocess.Popen(
            durable_cmd("worker", "--db", url, "-v", "--processes", str(processes)),
            cwd=log.parent,
            env=settings,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=120)


async def _workers(store: Store, count: int) -> bool:
    return len(await store.list_workers()) >= count


async def _registered(store: Store, pid: int) -> bool:
    return pid in {w.pid for w in await store.list_workers()}


async def test_with_two_processes_every_wake_up_goes_on_live(
    store: Store, backend_url: str, tmp_path: Path, coordination: tuple[bytes, str]
) -> None:
    wakes = 6  # without affinity, all six live by chance: 1 in 2**6 with two processes
    task = await launch(store, coordination, "inbox", {"count": wakes, "event": "go"})
    log = tmp_path / "worker.log"
    proc = _worker(backend_url, log, 2)
    try:
        await until(lambda: _workers(store, 2))
        await until(lambda: suspended(store, task.id))
        for n in range(1, wakes):
            await store.notify(task.id, "go", json.dumps(n))
            await until(lambda n=n: suspended(store, task.id, attempts=n + 1))
        await store.notify(task.id, "go", json.dumps(wakes))
        done = await ended(store, task.id)
        assert len(await store.list_workers()) == 2, "both processes ran throughout"
    finally:
        code = _stop(proc)
    text = log.read_text()
    assert code == 0, text
    assert result(done) == [["go", n] for n in range(1, wakes + 1)]
    assert done.attempts == wakes + 1
    assert text.count(LIVE) == wakes, text  # no wake-up replayed


async def test_with_two_processes_every_timer_goes_on_live(
    store: Store, backend_url: str, tmp_path: Path, coordination: tuple[bytes, str]
) -> None:
    # Four waits that time out: each a timer, due in both processes at the same moment.
    timers = 4
    args = {"count": timers, "event": "never", "timeout": 1.0}
    task = await launch(store, coordination, "inbox", args)
    log = tmp_path / "worker.log"
    proc = _worker(backend_url, log, 2)
    try:
        await until(lambda: _workers(store, 2))
        done = await ended(store, task.id)
    finally:
        code = _stop(proc)
    text = log.read_text()
    assert code == 0, text
    assert result(done) == [None] * timers
    assert done.attempts == timers + 1
    assert text.count(LIVE) == timers, text


async def test_a_killed_keeper_holds_its_task_only_for_the_grace(
    store: Store, backend_url: str, tmp_path: Path, coordination: tuple[bytes, str]
) -> None:
    task = await launch(store, coordination, "inbox", {"count": 1, "event": "go"})
    keeper = _worker(backend_url, tmp_path / "keeper.log", 1)
    try:
        await until(lambda: suspended(store, task.id))
    finally:
        keeper.send_signal(signal.SIGKILL)
        keeper.wait(timeout=60)
    done = await _woken_on_another(store, backend_url, tmp_path, task.id, "late")
    assert result(done) == [["go", "late"]]
    assert LIVE not in (tmp_path / "other.log").read_text()  # it replayed


async def test_a_keeper_that_does_not_claim_holds_its_task_only_for_the_grace(
    store: Store, backend_url: str, tmp_path: Path, coordination: tuple[bytes, str]
) -> None:
    # The keeper: a registered, living worker (this process) that suspended the task
    # keeping it, and never claims again (as one whose slots are all busy).
    alive = WorkerInfo(
        id="busy-keeper",
        hostname=socket.gethostname(),
        pid=os.getpid(),
        started_at=datetime.now(UTC),
    )
    await store.register_worker(alive)
    task = await launch(store, coordination, "inbox", {"count": 1, "event": "go"})
    (claim,) = await store.claim(worker_id=alive.id, limit=1, lease_seconds=60)
    await store.finish(claim.lease, Suspended(wakeup_at=None, on_event=True, kept=True))
    done = await _woken_on_another(
        store, backend_url, tmp_path, task.id, "meanwhile", DURABLE_AFFINITY_GRACE="0.5"
    )
    assert result(done) == [["go", "meanwhile"]]
    assert done.attempts == 2
    assert [w.id for w in await store.list_workers()] == [alive.id]
    assert (await store.get_task(task.id)).state is TaskState.COMPLETE


async def _woken_on_another(
    store: Store, url: str, tmp_path: Path, task_id: int, data: str, **env: str
) -> Task:
    """Start another worker process, wake the task once it is there, and return the
    task once it has ended (only the end of the grace can bring that worker to it)."""
    other = _worker(url, tmp_path / "other.log", 1, **env)
    try:
        await until(lambda: _registered(store, other.pid))
        await store.notify(task_id, "go", json.dumps(data))
        return await ended(store, task_id)
    finally:
        assert _stop(other) == 0
