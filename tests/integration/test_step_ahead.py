"""The replay buffer (`step.enter-ahead` / `step.take-ahead`, `durable.host.step_ahead`)
changes nothing a task can observe: real components, real workers, every store.

Each task here suspends after its steps, so its second attempt replays them from the top,
the Python SDK taking them from the buffer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
import pytest

from durable.client import Client
from durable.core import ops
from durable.core.model import Cancelled, Event, LogChunk, Task, TaskState
from durable.core.replay import describe
from durable.core.side_writes import SideWrite
from durable.core.task_error import TaskError
from durable.host import HostConfig, Runtime
from durable.host.context import AttemptContext
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig
from tests.helpers import (
    WORKFLOWS,
    DiscardingSink,
    built,
    completed_result,
    joined,
    launch_task,
    load_component,
    until,
)

pytestmark = pytest.mark.anyio

FAST = HostConfig(suspend_after=0.3)  # the 0.6 s sleeps suspend; no instance cache


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    with contextlib.closing(Runtime(FAST)) as rt:
        yield rt


@pytest.fixture(scope="module")
def wasm() -> bytes:
    return built(WORKFLOWS / "step_ahead.py")[0]


async def _run(store: Store, runtime: Runtime, wasm: bytes, entry: str, value: Any) -> int:
    """Launch a task and run it with a real worker until it has ended; its id."""
    task = await launch_task(store, wasm, entry, value, workflow_name="step_ahead")
    config = WorkerConfig(concurrency=1, lease_seconds=5, host=FAST)
    async with anyio.create_task_group() as tg:
        worker = Worker(store, config, runtime=runtime)
        tg.start_soon(worker.run)

        async def ended() -> bool:
            return (await store.get_task(task.id)).state.is_terminal

        await until(ended)
        worker.stop()
    return task.id


class _Capturing(DiscardingSink):
    """A replay's sink that keeps the events written through it."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        self.events += events


async def _replayed(store: Store, runtime: Runtime, wasm: bytes, entry: str, value: Any) -> Task:
    """The task, ended after its suspension: it replayed everything at least once."""
    task = await store.get_task(await _run(store, runtime, wasm, entry, value))
    assert task.attempts >= 2
    return task


def _digest(*args: Any) -> str:
    """The Python SDK's argument digest, written out (what the history holds)."""
    text = json.dumps([list(args), {}], sort_keys=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def test_answers_between_replayed_steps_are_those_of_the_first_run(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    n = 40
    task = await _replayed(store, runtime, wasm, "mixed", n)
    task_id = task.id
    lines = completed_result(task)
    # Random bytes derive from the position: the replay (through the buffer) drew them
    # at the same positions as the first run, which printed them.
    log = joined(await Client(store).logs(task_id))
    assert [stream for _, stream, _ in log] == ["stdout"] * len(log)
    printed = b"".join(data for _, _, data in log).decode().splitlines()
    assert printed == lines  # each line once: the replay's own were skipped as logged
    # Each line is logged at its position: after step i, and after the clock reading.
    labels = [e.label for e in await store.load_history(task_id)]
    assert labels == ["step add"] * (n // 2 + 1) + [ops.CLOCK_NOW.label] + ["step add"] * (
        n - n // 2 - 1
    ) + [ops.TIMER_SLEEP.label]
    positions = [position for position, _, data in log for _ in data.decode().splitlines()]
    assert positions == [i + 1 if i < n // 2 else i + 2 for i in range(n)]


# What `ReplayCursor.next` says: a digest when only the digests differ, else the labels.
DIVERGENCES = {
    "digest": (describe("step add", _digest(15, 6)), describe("step add", _digest(15, 999))),
    "label": (repr("step add"), repr("step other")),
    "clock": (repr("step add"), repr(ops.CLOCK_NOW.label)),
    "sleep": (repr("step add"), repr(ops.TIMER_SLEEP.label)),
}


@pytest.mark.parametrize("how", list(DIVERGENCES))
async def test_a_divergence_at_a_buffered_step_fails_as_without_the_buffer(
    store: Store, runtime: Runtime, wasm: bytes, how: str
) -> None:
    task_id = await _run(store, runtime, wasm, "diverge", how)
    task = await store.get_task(task_id)
    assert task.state is TaskState.FAILED
    assert task.error is not None
    error = TaskError.from_json(task.error)
    # Step 6 of the history (steps 0 to 5 before it came from the buffer): the message
    # names its index, what the history holds there and what the workflow did.
    expected, found = DIVERGENCES[how]
    assert error.kind == "NondeterminismError"
    assert error.message == (
        f"nondeterminism at event 6: history recorded {expected}, "
        f"but the workflow performed {found}"
    )
    # The history is kept as the first attempt recorded it.
    labels = [e.label for e in await store.load_history(task_id)]
    assert labels == ["step add"] * 10 + [ops.TIMER_SLEEP.label]


async def test_a_cancel_requested_during_a_replay_is_seen_at_the_end_of_the_history(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    n = 30
    task = await launch_task(store, wasm, "cancel_late", n, workflow_name="step_ahead")
    config = WorkerConfig(concurrency=1, lease_seconds=5, host=FAST)
    async with anyio.create_task_group() as tg:
        worker = Worker(store, config, runtime=runtime)
        tg.start_soon(worker.run)

        async def suspended() -> bool:
            return (await store.get_task(task.id)).state is TaskState.SUSPENDED

        await until(suspended)
        worker.stop()
    sink = _Capturing()
    # The next attempt starts with the cancellation requested: its replay (the steps
    # from the buffer, each checking it) must not see it before the history ends.
    stored = await store.get_task(task.id)
    ctx = AttemptContext(
        task=dataclasses.replace(stored, cancel_requested=True),
        attempt=stored.attempts + 1,
        history=await store.load_history(task.id),
        sink=sink,
        config=runtime.config,
    )
    component = await anyio.to_thread.run_sync(load_component, runtime, wasm)
    end = await anyio.to_thread.run_sync(runtime.run, component, ctx)
    total = sum(range(n))
    assert isinstance(end.outcome, Cancelled), end.outcome  # it handled it and returned
    # The delivery is recorded where the history ended (after the sleep), then the
    # cleanup step: the same events as without the buffer.
    recorded = [(e.index, e.label, e.digest) for e in [*sink.events, *end.events]]
    assert recorded == [
        (n + 1, ops.TASK_CANCELLED.label, None),
        (n + 2, "step add", _digest(total, -1)),
    ]


async def test_recorded_failures_and_retries_replay_then_recording_resumes(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    n = 5
    task = await _replayed(store, runtime, wasm, "retried", n)
    assert completed_result(task) == 3 * sum(range(n))
    history = await store.load_history(task.id)
    flaky = [ops.TIMER_SLEEP.label, "step flaky"]
    assert [e.label for e in history] == (
        ["step add"] * n
        + ["step flaky", *flaky, *flaky]
        + ["step add"] * n
        + [ops.TIMER_SLEEP.label]
        + ["step add"] * n  # recorded after the replay
    )
    assert [json.loads(e.payload).keys() for e in history if e.label == "step flaky"] == [
        {"error"},
        {"error"},
        {"ok"},
    ]
