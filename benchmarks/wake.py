"""(m) Waking a task with 10,000 recorded events (1,000 in a quick run): time to its
next instruction, with the instance cache (it goes on from its live instance) and
without (it replays).

One in-process worker per mode, on a runtime of its own (`--instance-cache 512M`, or
0). Each round launches a task that records the events and waits for a notification
(it suspends at once); once it is suspended, the notification is sent, and the figure
is the time from just before sending it to the guest's first clock read after the wait
(recorded, so read back from its result): the notification's commit, the worker's
wake-up and claim, then the resume or the replay.
"""

from __future__ import annotations

import dataclasses
import json
import time

import anyio

from benchmarks.backends import Backend, within
from benchmarks.figures import Bench, Figure, Sizes, median
from durable.client import Client
from durable.core.model import TaskState
from durable.host import Runtime
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig

#: The cache's budget in the cached mode: the issue's example setting.
BUDGET = 512 * 1024**2


async def wake_figures(backend: Backend, bench: Bench, sizes: Sizes) -> list[Figure]:
    """(m) time to next instruction after a wake-up, cached and replaying."""
    rounds = max(2, sizes.replays // 2)
    results: dict[str, list[float]] = {}
    for mode, budget in (("cached", BUDGET), ("replay", 0)):
        config = dataclasses.replace(bench.runtime.config, instance_cache=budget)
        runtime = Runtime(config)
        try:
            runtime.cache.load(bench.wasm_hash, bench.wasm)
            results[mode] = await _rounds(backend, bench, runtime, rounds, sizes.wake_events)
            if budget and runtime.instances.hits != rounds:
                raise RuntimeError(f"{runtime.instances.hits} of {rounds} wake-ups were live")
        finally:
            await anyio.to_thread.run_sync(runtime.close)
    cached, replay = median(results["cached"]), median(results["replay"])
    return [
        Figure(
            key="m",
            id="wake_next_instruction_cached_ms",
            name=f"wake a task of {sizes.wake_events:,} events, cached",
            value=cached,
            unit="ms",
            target="<= 5 ms",
            met=cached <= 5.0,
            note=f"median of {rounds}: notify to the guest's next instruction, live instance",
            samples=results["cached"],
        ),
        Figure(
            key="m",
            id="wake_next_instruction_replay_ms",
            name=f"wake a task of {sizes.wake_events:,} events, replay",
            value=replay,
            unit="ms",
            note=f"median of {rounds}: the same, without the cache (replays the history)",
            samples=results["replay"],
        ),
    ]


async def _suspended(store: Store, task_id: int) -> None:
    """Poll until the task is suspended (the worker commits it: nothing to await)."""
    while True:
        if (await store.get_task(task_id)).state is TaskState.SUSPENDED:
            return
        await anyio.sleep(0.01)


async def _rounds(
    backend: Backend, bench: Bench, runtime: Runtime, rounds: int, events: int
) -> list[float]:
    out = []
    async with backend.database() as (_, store):
        await store.put_workflow(bench.wasm)
        client = Client(store)
        worker = Worker(store, WorkerConfig(concurrency=1), runtime=runtime)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            for _ in range(rounds):
                task = await client.launch(
                    bench.wasm_hash, name="bench-wake", input=events, entry="wake_after"
                )
                with within(300, f"task {task.id} did not suspend"):
                    await _suspended(store, task.id)
                sent = time.time()
                await store.notify(task.id, "go", "null")
                with within(300, f"task {task.id} did not end"):
                    done = await client.wait(task.id)
                if done.state is not TaskState.COMPLETE or done.result is None:
                    raise RuntimeError(f"task {task.id} ended {done.state}: {done.error}")
                out.append((json.loads(done.result) - sent) * 1000)
            worker.stop()
    return out
