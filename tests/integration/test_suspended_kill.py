"""SIGKILL a real worker while its task is suspended on a timer, a notification or a
child, restart a worker, and check that each task finishes correctly — on SQLite and
Postgres."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import anyio
import pytest

from durable.client import Client
from durable.core.model import Task, TaskState
from durable.storage import open_store
from tests.helpers import WORKFLOWS, built, durable_cmd, stock_env

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kill.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def _start_worker(url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = stock_env(DURABLE_SUSPEND_AFTER="0.3")
    return subprocess.Popen(
        durable_cmd("worker", "--db", url, "--migrate"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    """Poll `check` (another process changes the database: nothing to await)."""
    with anyio.fail_after(within):
        while True:
            if await check():
                return
            await anyio.sleep(0.05)


async def test_killed_while_suspended_then_resumed(db_url: str, tmp_path: Path) -> None:
    wasm, wasm_hash = built(WORKFLOWS / "coordination.py")
    store = await open_store(db_url)
    client = Client(store)
    try:
        await client.register(wasm, name="coordination")
        timer = await client.launch(wasm_hash, name="timer", input=2.0, entry="nap")
        waiting = await client.launch(
            wasm_hash, name="waiting", input={"count": 1, "event": "go"}, entry="inbox"
        )
        parent = await client.launch(
            wasm_hash, name="parent", input={"inputs": [150]}, entry="parent"
        )

        async def all_suspended() -> bool:
            tasks = [await client.get(t.id) for t in (timer, waiting, parent)]
            return all(t.state is TaskState.SUSPENDED for t in tasks)

        first = _start_worker(db_url, tmp_path)
        try:
            await _until(all_suspended)
            deadline_before = (await client.get(timer.id)).wakeup_at
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        assert first.returncode == -signal.SIGKILL

        # The notification arrives while no worker is alive; it is kept.
        await client.notify(waiting.id, "go", {"after": "kill"})
        second = _start_worker(db_url, tmp_path)
        try:
            ended: dict[int, Task] = {}

            async def all_ended() -> bool:
                for t in (timer, waiting, parent):
                    task = await client.get(t.id)
                    if task.state.is_terminal:
                        ended[t.id] = task
                return len(ended) == 3

            await _until(all_ended, within=300)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        for task in ended.values():
            assert task.state is TaskState.COMPLETE, (task.name, task.error)
        # The timer woke at its original deadline: the crash did not move it.
        history = await store.load_history(timer.id)
        recorded = int(history[0].payload) / 1e9
        assert deadline_before is not None
        # The database keeps it on its own clock (the time left, added to its now()):
        # never before the recorded deadline, late only by the write's own latency
        # (bounded here by the 2 s timer itself, not by a speed).
        assert 0 <= deadline_before.timestamp() - recorded + 0.001 < 2.0
        assert json.loads(ended[timer.id].result or "0") >= recorded
        assert json.loads(ended[waiting.id].result or "null") == [["go", {"after": "kill"}]]
        assert json.loads(ended[parent.id].result or "null") == [300]
        children = await store.list_tasks(parent_id=parent.id)
        assert len(children) == 1  # the child was not spawned again by the replay
        for t in (timer, waiting, parent):
            indexes = [e.index for e in await store.load_history(t.id)]
            assert indexes == list(range(len(indexes)))
    finally:
        await store.close()
