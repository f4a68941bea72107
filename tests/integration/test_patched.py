"""`durable.patched` on real components and every store backend: a task recorded by the
old code keeps the old branch under the new code, a new task takes the new branch, and
the marker is checked on replay."""

from __future__ import annotations

import json
from typing import Any

import pytest

from durable.client import Client
from durable.core.model import Task, TaskState
from durable.host import HostConfig, Runtime
from durable.js_build import build_js_workflow
from durable.replayer import ReplayEnd
from durable.storage.base import Store
from durable.storage.moves import MoveStore
from durable.worker import Worker, WorkerConfig
from tests.helpers import WORKFLOWS, compiled, launch_task, running, until

pytestmark = pytest.mark.anyio

FAST = HostConfig(suspend_after=0.3)


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    rt = Runtime(FAST)
    yield rt  # type: ignore[misc]
    rt.close()


@pytest.fixture(scope="module")
def old_wasm() -> bytes:
    return compiled(WORKFLOWS / "patch_old.py")


@pytest.fixture(scope="module")
def new_wasm() -> bytes:
    return compiled(WORKFLOWS / "patch_new.py")


def worker(store: Store, runtime: Runtime) -> Worker:
    return Worker(store, WorkerConfig(concurrency=2, lease_seconds=5, host=FAST), runtime=runtime)


async def in_state(store: Store, task_id: int, *states: TaskState) -> Task:
    async def check() -> Task | None:
        task = await store.get_task(task_id)
        return task if task.state in states else None

    found: Task = await until(check, within=120)
    return found


async def approved(store: Store, runtime: Runtime, task: Task) -> Any:
    """Approve a waiting task, let it finish, and return its result."""
    client = Client(store)
    async with running(worker(store, runtime)):
        await in_state(store, task.id, TaskState.SUSPENDED)
        await client.notify(task.id, "approve")
        done = await in_state(store, task.id, TaskState.COMPLETE, TaskState.FAILED)
    assert done.state is TaskState.COMPLETE, done.error
    return json.loads(done.result or "null")


async def test_old_tasks_keep_the_old_branch_and_new_tasks_take_the_new_one(
    store: Store, runtime: Runtime, old_wasm: bytes, new_wasm: bytes
) -> None:
    client = Client(store)
    old = await launch_task(store, old_wasm, "order", 100, workflow_name="order")
    async with running(worker(store, runtime)):
        await in_state(store, old.id, TaskState.SUSPENDED)
    history = await client.history(old.id)
    assert [e.label for e in history.events] == ["step charge"]

    # The suspended task, replayed against the new code: the old branch, cleanly, up
    # to the wait it is suspended in.
    report = await client.replay(old.id, wasm=new_wasm)
    assert report.clean, report.divergence
    assert report.end is ReplayEnd.CONTINUES
    assert report.next_operation is not None
    assert "notify.wait" in report.next_operation

    # A task of the new code records the marker and takes the new branch.
    new = await launch_task(store, new_wasm, "order", 100, workflow_name="order")
    assert await approved(store, runtime, new) == {
        "receipt": "charged 100 + fee 30",
        "approved": True,
    }
    labels = [e.label for e in (await client.history(new.id)).events]
    assert labels[:2] == ["patch charge-fee", "step charge_with_fee"]
    # ... and replays against its own code cleanly, marker included.
    assert (await client.replay(new.id)).same_end is True

    # The old task finishes on its own code, and its finished history still replays
    # cleanly against the new code: the old branch, to the same result.
    assert await approved(store, runtime, old) == {"receipt": "charged 100", "approved": True}
    report = await client.replay(old.id, wasm=new_wasm)
    assert report.clean
    assert report.same_end is True


async def test_a_marker_replayed_against_code_without_it_diverges(
    store: Store, runtime: Runtime, old_wasm: bytes, new_wasm: bytes
) -> None:
    client = Client(store)
    new = await launch_task(store, new_wasm, "order", 5, workflow_name="order")
    await approved(store, runtime, new)
    report = await client.replay(new.id, wasm=old_wasm)
    assert report.divergence is not None
    assert report.divergence.index == 0
    assert "patch charge-fee" in report.divergence.expected


async def test_refusals_reach_the_workflow_as_exceptions(
    store: Store, runtime: Runtime, new_wasm: bytes
) -> None:
    task = await launch_task(store, new_wasm, "misuse", None, workflow_name="order")
    async with running(worker(store, runtime)):
        done = await in_state(store, task.id, TaskState.COMPLETE, TaskState.FAILED)
    assert done.state is TaskState.COMPLETE, done.error
    assert json.loads(done.result or "{}") == {
        "empty": "ValueError: patch id must be 1 to 200 bytes of printable text, not ''",
        "not-str": "TypeError: patch id must be a str, not int",
        "in-step": "ValueError: durable.patched('inside') inside step "
        "'step patch_in_step': call it outside steps",
    }


# -- JavaScript: the same WIT interface, through the JS SDK ---------------------------------


@pytest.fixture(scope="module")
def js_wasms() -> tuple[bytes, bytes]:
    old, new = (build_js_workflow(WORKFLOWS / "js" / f"patch_{v}.js") for v in ("old", "new"))
    return old.wasm_path.read_bytes(), new.wasm_path.read_bytes()


async def test_javascript_patched_takes_the_old_branch_under_a_suspended_task(
    store: Store, runtime: Runtime, js_wasms: tuple[bytes, bytes]
) -> None:
    """A JS task suspended under the old code, moved onto the new code, finishes there
    on the old branch; a new task takes the new branch; refusals reach the workflow."""
    old_wasm, new_wasm = js_wasms
    client = Client(store)
    old = await launch_task(store, old_wasm, "order", 100, workflow_name="order-js")
    async with running(worker(store, runtime)):
        suspended = await in_state(store, old.id, TaskState.SUSPENDED)
    assert [e.label for e in (await client.history(old.id)).events] == ["step charge"]
    new_hash = await store.put_workflow(new_wasm, name="order-js")
    assert isinstance(store, MoveStore)
    moved = await store.move_task(
        old.id,
        from_hash=suspended.workflow_hash,
        to_hash=new_hash,
        attempts=suspended.attempts,
        events=1,
    )
    assert moved
    # Resumed on the new code, whose `patched` answers false: the old branch.
    assert await approved(store, runtime, old) == {"receipt": "charged 100", "approved": True}
    assert (await store.get_task(old.id)).workflow_hash == new_hash

    new = await launch_task(store, new_wasm, "order", 100, workflow_name="order-js")
    assert await approved(store, runtime, new) == {
        "receipt": "charged 100 + fee 30",
        "approved": True,
    }
    labels = [e.label for e in (await client.history(new.id)).events]
    assert labels[:2] == ["patch charge-fee", "step charge_with_fee"]
    assert (await client.replay(new.id)).same_end is True
    report = await client.replay(new.id, wasm=old_wasm)
    assert report.divergence is not None
    assert "patch charge-fee" in report.divergence.expected

    misuse = await launch_task(store, new_wasm, "misuse", None, workflow_name="order-js")
    async with running(worker(store, runtime)):
        done = await in_state(store, misuse.id, TaskState.COMPLETE, TaskState.FAILED)
    assert done.state is TaskState.COMPLETE, done.error
    assert json.loads(done.result or "{}") == {
        "empty": "DurableError: patch id must be 1 to 200 bytes of printable text, not ''",
        "notString": "TypeError: patch id must be a string, not number",
        # A step that throws anything but a built-in error fails as `StepFailed`.
        "inStep": "StepFailed: DurableError: durable.patched('inside') inside step "
        "'step inside': call it outside steps",
    }
