"""Timers, notifications, child tasks, cancellation, retries and limits, on real components
and every store backend."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
import pytest

from durable.client import Client
from durable.core.model import Lease, NewTask, Task, TaskState
from durable.host import HostConfig, Runtime
from durable.replayer import ReplayEnd, Replayer
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig
from tests.helpers import EXAMPLES, WORKFLOWS, built, running, until

pytestmark = pytest.mark.anyio

FAST = HostConfig(suspend_after=0.3)


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    rt = Runtime(FAST)
    yield rt  # type: ignore[misc]
    rt.close()


@pytest.fixture(scope="module")
def coordination() -> tuple[bytes, str]:
    return built(WORKFLOWS / "coordination.py")


@asynccontextmanager
async def running_worker(
    store: Store, runtime: Runtime, config: WorkerConfig | None = None
) -> AsyncIterator[Worker]:
    """A worker running in the background for the duration of the block."""
    worker = Worker(
        store, config or WorkerConfig(concurrency=8, lease_seconds=5, host=FAST), runtime=runtime
    )
    async with running(worker):
        yield worker


async def launch(store: Store, wasm: tuple[bytes, str], entry: str, value: Any, **kw: Any) -> Task:
    await store.put_workflow(wasm[0], name=kw.pop("workflow_name", None))
    return await store.create_task(
        NewTask(name=entry, workflow_hash=wasm[1], entry=entry, input=json.dumps(value), **kw)
    )


async def state_is(store: Store, task_id: int, *states: TaskState) -> Task | None:
    task = await store.get_task(task_id)
    return task if task.state in states else None


async def ended(store: Store, task_id: int) -> Task:
    async def check() -> Task | None:
        task = await store.get_task(task_id)
        return task if task.state.is_terminal else None

    result: Task = await until(check)
    return result


# -- timers -----------------------------------------------------------------------------


async def test_long_sleep_suspends_and_wakes_at_its_deadline(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    # Long enough that a busy machine still sees it suspended before it wakes.
    task = await launch(store, coordination, "nap", 3.0)
    # No idle polling: only the timer's own wake-up can bring the task back in time.
    config = WorkerConfig(concurrency=8, lease_seconds=5, poll_interval=3600, host=FAST)
    async with running_worker(store, runtime, config) as worker:

        async def parked() -> Task | None:
            # The row says suspended once the finish commits; the attempt lets go of
            # its thread and instance right after: wait for both.
            now = await store.get_task(task.id)
            return now if now.state is TaskState.SUSPENDED and worker.running == 0 else None

        suspended = await until(parked)
        assert suspended.wakeup_at is not None  # no thread or instance held for it
        done = await ended(store, task.id)
    history = await store.load_history(task.id)
    deadline = int(history[0].payload) / 1e9
    woke = json.loads(done.result or "0")
    assert done.state is TaskState.COMPLETE
    assert woke >= deadline  # not woken early; not late either: no poll could wake it
    logs = b"".join(c.data for c in await store.read_logs(task.id))
    assert logs == b"going to sleep\nwoke up\n"  # printed once each across the replay


# -- notifications ----------------------------------------------------------------------


async def test_notification_sent_before_wait_is_kept(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    task = await launch(store, coordination, "inbox", {"count": 2})
    client = Client(store)
    await client.notify(task.id, "first", {"n": 1})
    await client.notify(task.id, "second", [2])
    async with running_worker(store, runtime):
        done = await ended(store, task.id)
    assert json.loads(done.result or "null") == [["first", {"n": 1}], ["second", [2]]]


async def test_wait_suspends_then_wakes_on_notification(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    task = await launch(store, coordination, "inbox", {"count": 1, "event": "go"})
    client = Client(store)
    async with running_worker(store, runtime):
        await until(lambda: state_is(store, task.id, TaskState.SUSPENDED))
        await client.notify(task.id, "other", None)  # filtered out: stays queued
        await client.notify(task.id, "go", "now")
        done = await ended(store, task.id)
    assert json.loads(done.result or "null") == [["go", "now"]]
    other = await store.next_notification(task.id)
    assert other is not None
    assert other.event == "other"


async def test_wait_timeout_deadline_is_recorded(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    """The deadline is recorded by the attempt that starts waiting, before it suspends,
    and the wake-up replays it rather than counting the timeout again."""
    timeout = 6.0  # the window in which the test must see the suspension
    started = time.time()
    task = await launch(store, coordination, "inbox", {"count": 1, "timeout": timeout})
    async with running_worker(store, runtime):
        suspended = await until(lambda: state_is(store, task.id, TaskState.SUSPENDED))
    before = await store.load_history(task.id)
    assert [e.label for e in before] == ["durable:notify.deadline"]
    deadline = int(before[0].payload) / 1e9
    assert deadline - timeout >= started  # counted from the attempt, after the launch
    assert suspended.wakeup_at is not None
    # Wakes at that deadline. Postgres keeps it on its own clock (the time left, added
    # to its now()): never before the deadline, late only by the write's own latency,
    # bounded here by the window, not by a speed.
    assert 0 <= suspended.wakeup_at.timestamp() - deadline + 0.001 < timeout
    async with running_worker(store, runtime):
        done = await ended(store, task.id)
    assert json.loads(done.result or "null") == [None]
    history = await store.load_history(task.id)
    assert [e.label for e in history] == ["durable:notify.deadline", "durable:notify.wait"]
    assert history[0] == before[0]  # replayed, not counted again from the wake-up
    assert done.updated_at.timestamp() >= deadline


async def test_each_notification_is_consumed_exactly_once(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    task = await launch(store, coordination, "inbox", {"count": 3})
    client = Client(store)
    async with running_worker(store, runtime):
        for i in range(5):
            await client.notify(task.id, "n", i)
        done = await ended(store, task.id)
    assert json.loads(done.result or "null") == [["n", 0], ["n", 1], ["n", 2]]
    left = await store.next_notification(task.id)
    assert left is not None
    assert json.loads(left.data) == 3


async def test_workflow_sends_notification_exactly_once(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    receiver = await launch(store, coordination, "inbox", {"count": 1})
    sender = await launch(store, coordination, "relay", receiver.id)
    async with running_worker(store, runtime):
        await ended(store, sender.id)
        got = await ended(store, receiver.id)
    assert json.loads(got.result or "null") == [["ping", {"from": sender.id}]]


async def test_notify_unknown_or_ended_task_is_refused(store: Store) -> None:
    from durable.errors import InvalidStateError, TaskNotFoundError

    client = Client(store)
    with pytest.raises(TaskNotFoundError):
        await client.notify(999, "x")
    del InvalidStateError


# -- children ---------------------------------------------------------------------------


async def test_children_results_and_failures(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    task = await launch(store, coordination, "parent", {"inputs": [1, 2, -3, 40]})
    async with running_worker(store, runtime):
        done = await ended(store, task.id)
    assert json.loads(done.result or "null") == [2, 4, "failed: ValueError", 80]
    children = await store.list_tasks(parent_id=task.id)
    assert len(children) == 4  # spawned once each, across suspensions and replays


async def test_fan_out_example(store: Store, runtime: Runtime) -> None:
    wasm = built(EXAMPLES / "fan_out.py")
    task = await launch(store, wasm, "", 10)
    async with running_worker(store, runtime):
        done = await ended(store, task.id)
    assert done.state is TaskState.COMPLETE, done.error
    assert json.loads(done.result or "null") == sum(i * i for i in range(1, 11))


# -- retries ----------------------------------------------------------------------------


async def test_retry_example_records_each_attempt(store: Store, runtime: Runtime) -> None:
    wasm = built(EXAMPLES / "retry.py")
    task = await launch(store, wasm, "", 3)
    async with running_worker(store, runtime):
        done = await ended(store, task.id)
    assert json.loads(done.result or "null") == "succeeded on attempt 3"
    labels = [e.label for e in await store.load_history(task.id)]
    assert labels == [
        "step flaky",
        "durable:timer.sleep",
        "step flaky",
        "durable:timer.sleep",
        "step flaky",
    ]
    history = await store.load_history(task.id)
    assert "ConnectionError" in history[0].payload
    assert json.loads(history[1].payload) - 0.2e9 < json.loads(history[3].payload) - 0.4e9 + 5e8


# -- cancellation -----------------------------------------------------------------------


async def test_cancel_a_guest_stuck_in_a_loop(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    task = await launch(store, coordination, "spin", None)
    other = await launch(store, coordination, "nap", 0.01)
    async with running_worker(store, runtime):
        await until(lambda: state_is(store, task.id, TaskState.ACTIVE))
        # The loop does not starve the other task.
        assert (await ended(store, other.id)).state is TaskState.COMPLETE
        await Client(store).cancel(task.id)
        done = await ended(store, task.id)  # the loop never ends by itself
    assert done.state is TaskState.CANCELLED
    assert "Cancelled" in (done.error or "")


async def test_cancel_a_suspended_task_without_waking_it(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    task = await launch(store, coordination, "nap", 3600)
    async with running_worker(store, runtime):
        await until(lambda: state_is(store, task.id, TaskState.SUSPENDED))
        attempts = (await store.get_task(task.id)).attempts
        cancelled = await Client(store).cancel(task.id)
    assert cancelled.state is TaskState.CANCELLED
    after = await store.get_task(task.id)
    assert after.attempts == attempts  # not woken
    assert [e.label for e in await store.load_history(task.id)] == ["durable:timer.sleep"]


async def test_cancel_runs_cleanup_steps(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    task = await launch(store, coordination, "cleanup", 3600)
    patient = Runtime(HostConfig(suspend_after=7200))  # the sleep blocks in place
    try:
        async with running_worker(store, patient):
            await until(lambda: state_is(store, task.id, TaskState.ACTIVE))
            await anyio.sleep(0.1)
            await Client(store).cancel(task.id)
            done = await ended(store, task.id)  # the hour's sleep was cut short
    finally:
        patient.close()
    labels = [e.label for e in await store.load_history(task.id)]
    assert done.state is TaskState.CANCELLED
    assert labels[-2:] == ["durable:task.cancelled", "step mark"]


async def test_a_cancellation_delivered_at_a_step_replays_there(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    """The Python SDK asks `task.cancelled` and enters a step in one host call
    (`step.enter-checked`): the delivery is recorded before the step it stopped, and a
    replay delivers it at the same event."""
    task = await launch(store, coordination, "ticks", 10**7)

    async def ticking() -> bool:
        return len(await store.load_history(task.id)) > 0

    async with running_worker(store, runtime):
        await until(ticking)
        await Client(store).cancel(task.id)
        done = await ended(store, task.id)
    assert done.state is TaskState.CANCELLED
    labels = [e.label for e in await store.load_history(task.id)]
    at = labels.index("durable:task.cancelled")
    assert at > 0
    assert labels[:at] == ["step mark"] * at  # only steps: delivered by one of them
    assert labels[at + 1 :] == ["step mark"]  # then the cleanup step, nothing else
    report = await Client(store).replay(task.id, replayer=Replayer(runtime=runtime))
    assert report.clean
    assert report.end is ReplayEnd.CANCELLED
    assert report.events == len(labels)


async def test_children_are_cancelled_with_their_parent(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    task = await launch(store, coordination, "parent_of_sleepers", 3)

    async def all_children_suspended() -> bool:
        kids = await store.list_tasks(parent_id=task.id)
        return len(kids) == 3 and all(k.state is TaskState.SUSPENDED for k in kids)

    async with running_worker(store, runtime):
        await until(all_children_suspended)
        await Client(store).cancel(task.id)
        await ended(store, task.id)
    kids = await store.list_tasks(parent_id=task.id)
    assert {k.state for k in kids} == {TaskState.CANCELLED}


# -- limits -----------------------------------------------------------------------------


async def test_memory_limit_fails_only_that_task(
    store: Store, coordination: tuple[bytes, str]
) -> None:
    small = Runtime(replace(FAST, memory_limit=64 * 1024 * 1024))
    try:
        hog = await launch(store, coordination, "hog", None)
        fine = await launch(store, coordination, "nap", 0.01)
        async with running_worker(store, small, WorkerConfig(host=small.config)):
            done = await ended(store, hog.id)
            ok = await ended(store, fine.id)
    finally:
        small.close()
    assert done.state is TaskState.FAILED
    assert "MemoryError" in (done.error or "") or "memory limit" in (done.error or "")
    assert ok.state is TaskState.COMPLETE


async def test_event_limit(store: Store, coordination: tuple[bytes, str]) -> None:
    limited = Runtime(replace(FAST, max_events=50))
    try:
        task = await launch(store, coordination, "chatty", 500)
        async with running_worker(store, limited, WorkerConfig(host=limited.config)):
            done = await ended(store, task.id)
    finally:
        limited.close()
    assert done.state is TaskState.FAILED
    assert "limit of 50 events" in (done.error or "")


async def test_task_timeout(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    spinning = await launch(store, coordination, "spin", None, timeout=0.5)
    sleeping = await launch(store, coordination, "nap", 3600, timeout=0.5)
    async with running_worker(store, runtime):
        spun = await ended(store, spinning.id)
        slept = await ended(store, sleeping.id)
    for task in (spun, slept):
        assert task.state is TaskState.FAILED
        assert "TimeoutError" in (task.error or "")


# -- task-level retries -------------------------------------------------------------------


async def test_transient_host_error_retries_the_task(
    store: Store, runtime: Runtime, coordination: tuple[bytes, str]
) -> None:
    task = await launch(store, coordination, "nap", 0.01)
    # The write of the attempt's end fails once. (Not its first read: a claim may read
    # a new task's start itself, and then the attempt reads nothing.)
    real = store.finish
    failures = []

    async def flaky_finish(lease: Lease, *args: Any, **kwargs: Any) -> Any:
        if not failures:
            failures.append(lease.task_id)
            raise RuntimeError("transient host failure")
        return await real(lease, *args, **kwargs)

    store.finish = flaky_finish  # type: ignore[method-assign]
    try:
        async with running_worker(store, runtime):
            done = await ended(store, task.id)
    finally:
        store.finish = real  # type: ignore[method-assign]
    assert failures == [task.id]
    assert done.state is TaskState.COMPLETE, done.error
    assert done.attempts >= 2
