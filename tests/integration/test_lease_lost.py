"""A worker whose write is refused says what happened, not "lost to another worker".

A fenced write is refused only after someone claimed the task once this worker's
lease lapsed. Here the lapse is made to happen: the store never renews the leases of
the worker under test (as when its heartbeat is stuck behind a blocked event loop or
a slow database), and the task naps for longer than the lease. Either the worker
itself claims the task again, or another one does.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from durable.core.model import TaskState
from durable.host import HostConfig, Runtime
from durable.storage.memory import MemoryStore
from durable.worker import Worker, WorkerConfig
from tests.helpers import WORKFLOWS, built, launch_task, running, until

pytestmark = pytest.mark.anyio

LEASE = 0.5  # seconds; the nap lasts several leases


class _StalledHeartbeat(MemoryStore):
    """A store that never renews the leases of the workers in `stalled`."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled: set[str] = set()

    async def renew_leases(self, *, worker_id: str, lease_seconds: float) -> list[int]:
        if worker_id in self.stalled:
            return []
        return await super().renew_leases(worker_id=worker_id, lease_seconds=lease_seconds)


@pytest.fixture(scope="module")
def coordination() -> bytes:
    return built(WORKFLOWS / "coordination.py")[0]


@pytest.fixture(scope="module")
def runtime() -> AsyncIterator[Runtime]:
    runtime = Runtime(HostConfig())
    yield runtime  # type: ignore[misc]
    runtime.close()


async def _ended(store: MemoryStore, task_id: int) -> bool:
    return (await store.get_task(task_id)).state.is_terminal


async def _owned_by(store: MemoryStore, task_id: int, worker_id: str) -> bool:
    return (await store.get_task(task_id)).owner == worker_id


async def _idle(worker: Worker) -> bool:
    return not worker.running


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "durable.worker"]


async def test_a_worker_that_claimed_its_own_task_again_says_its_lease_lapsed(
    coordination: bytes, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="durable.worker")
    store = _StalledHeartbeat()
    task = await launch_task(store, coordination, "nap", 4 * LEASE, workflow_name="c")
    worker = Worker(store, WorkerConfig(concurrency=2, lease_seconds=LEASE), runtime=runtime)
    store.stalled.add(worker.id)
    async with running(worker):
        await until(lambda: _ended(store, task.id))
    done = await store.get_task(task.id)
    assert (done.state, done.attempts > 1) == (TaskState.COMPLETE, True), done
    said = _said(caplog)
    expected = (
        f"task {task.id}: this worker's lease lapsed (it did not renew it in time) and "
        "this worker claimed the task again; dropped this attempt"
    )
    assert expected in said, said
    assert not [m for m in said if "another worker" in m or "taken over" in m], said


async def test_a_worker_whose_task_was_taken_over_names_the_new_owner(
    coordination: bytes, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="durable.worker")
    store = _StalledHeartbeat()
    task = await launch_task(store, coordination, "nap", 4 * LEASE, workflow_name="c")
    # Concurrency 1: busy with the task, this worker cannot claim it back.
    worker = Worker(store, WorkerConfig(concurrency=1, lease_seconds=LEASE), runtime=runtime)
    store.stalled.add(worker.id)
    async with running(worker):
        await until(lambda: _owned_by(store, task.id, worker.id))
        # Another worker takes the task over once the lease has lapsed, and keeps it.
        await until(lambda: store.claim(worker_id="worker-B", limit=1, lease_seconds=3600))
        await until(lambda: _idle(worker))  # its attempt wakes from the nap, tries to write
    said = _said(caplog)
    expected = (
        f"task {task.id}: taken over by worker worker-B after this worker's lease lapsed; "
        "dropped this attempt"
    )
    assert expected in said, said
