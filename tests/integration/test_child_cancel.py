"""A workflow cancels its children: `handle.cancel()` and `result(timeout=...,
cancel_on_timeout=True)`, on real components, real workers and every store backend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from durable.core import ops
from durable.core.model import Completed, NewTask, Task, TaskState
from durable.core.task_error import TaskError
from durable.host import HostConfig, Runtime
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig
from tests.helpers import WORKFLOWS, built, completed_result, replay, running, until

pytestmark = pytest.mark.anyio

FAST = HostConfig(suspend_after=0.3)


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    rt = Runtime(FAST)
    yield rt  # type: ignore[misc]
    rt.close()


@pytest.fixture(scope="module")
def wasm() -> tuple[bytes, str]:
    return built(WORKFLOWS / "child_cancel.py")


@asynccontextmanager
async def working(store: Store, runtime: Runtime) -> AsyncIterator[Worker]:
    config = WorkerConfig(concurrency=8, lease_seconds=5, host=FAST)
    async with running(Worker(store, config, runtime=runtime)) as worker:
        yield worker


async def launch(store: Store, wasm: tuple[bytes, str], entry: str, value: Any) -> Task:
    await store.put_workflow(wasm[0], name="child_cancel")
    spec = NewTask(name=entry, workflow_hash=wasm[1], entry=entry, input=json.dumps(value))
    return await store.create_task(spec)


async def ended(store: Store, task_id: int) -> Task:
    async def check() -> Task | None:
        task = await store.get_task(task_id)
        return task if task.state.is_terminal else None

    result: Task = await until(check)
    return result


async def cancel_events(store: Store, task_id: int) -> list[Any]:
    history = await store.load_history(task_id)
    op = ops.CHILDREN_CANCEL
    return [op.decode(e.payload) for e in history if e.label == op.label]


async def test_by_default_a_child_goes_on_running_after_the_timeout(
    store: Store, runtime: Runtime, wasm: tuple[bytes, str]
) -> None:
    args = {"seconds": 3600, "timeout": 0.2, "then": "return"}
    task = await launch(store, wasm, "impatient", args)
    async with working(store, runtime):
        out = completed_result(await ended(store, task.id))
    assert out["timeout"] == f"child task {out['child']} did not end within 0.2 s"
    child = await store.get_task(out["child"])
    assert child.state is TaskState.SUSPENDED  # asleep for its hour, not cancelled
    assert await cancel_events(store, task.id) == []


async def test_cancel_on_timeout_cancels_the_child_once(
    store: Store, runtime: Runtime, wasm: tuple[bytes, str]
) -> None:
    # `linger` suspends the parent after the cancel: it then runs again from its history.
    args = {"seconds": 3600, "timeout": 0.2, "linger": 0.6}
    task = await launch(store, wasm, "impatient_cancels", args)
    async with working(store, runtime):
        done = await ended(store, task.id)
    out = completed_result(done)
    assert out["timeout"] == f"child task {out['child']} did not end within 0.2 s; it was cancelled"
    assert (out["then"], out["kind"]) == ("cancelled", "Cancelled")
    child = await store.get_task(out["child"])
    assert child.state is TaskState.CANCELLED
    assert child.error is not None
    assert TaskError.from_json(child.error).kind == "Cancelled"
    assert done.attempts >= 2, "the parent suspended after the cancel and replayed it"
    assert await cancel_events(store, task.id) == [{"running": True}]
    # Replayed once more with a sink that fails on any use of the store: nothing is sent.
    end = await replay(store, runtime, wasm[0], done)
    assert isinstance(end.outcome, Completed)
    assert json.loads(end.outcome.result) == out


async def test_cancel_a_child_and_refuse_a_task_that_is_not_one(
    store: Store, runtime: Runtime, wasm: tuple[bytes, str]
) -> None:
    stranger = await launch(store, wasm, "sleeper", 3600)
    task = await launch(store, wasm, "canceller", [stranger.id, 10**9])
    async with working(store, runtime):
        out = completed_result(await ended(store, task.id))
        sleeping = await until(lambda: _state_is(store, stranger.id, TaskState.SUSPENDED))
    assert out == [
        True,
        f"task {stranger.id} is not a child of this task",
        f"task {10**9} does not exist",
        "cancelled",
    ]
    assert sleeping.state is TaskState.SUSPENDED, "the stranger was left alone"
    assert await cancel_events(store, task.id) == [
        {"running": True},
        {"refused": f"task {stranger.id} is not a child of this task"},
        {"refused": f"task {10**9} does not exist"},
    ]


async def _state_is(store: Store, task_id: int, state: TaskState) -> Task | None:
    task = await store.get_task(task_id)
    return task if task.state is state else None
