"""(l) throughput with 1 and 2 worker processes: `durable worker --processes N`.

Two ways, alternating between the process counts:

* a burst: trivial tasks launched into a database whose supervised workers are all
  registered and idle; the rate is tasks over the time until the last one has ended
  (each awaited with `Client.wait`, which the end signal wakes). The launches run on
  the same cores as the workers.
* a backlog: the same tasks launched first onto a paused queue, then released at
  once; the rate is tasks over the time from the release to the last end. Only the
  workers (and the database) work while it is measured, so this is what more
  processes add when the launches come from elsewhere.
"""

from __future__ import annotations

import time
from pathlib import Path

import anyio

from benchmarks.backends import Backend, within
from benchmarks.figures import Bench, Figure, Sizes, median
from benchmarks.processes import WorkerProcess, worker_command, worker_processes
from durable.client import Client
from durable.core.model import Task, TaskState
from durable.storage.base import Store

#: The process counts measured.
COUNTS = (1, 2)


async def _registered(store: Store, count: int, proc: WorkerProcess) -> None:
    with within(120, f"{count} worker processes did not register"):
        while len(await store.list_workers()) < count:
            if proc.proc.poll() is not None:
                raise RuntimeError(f"the supervisor exited:\n{proc.log_tail()}")
            await anyio.sleep(0.05)


async def _burst(client: Client, bench: Bench, count: int) -> float:
    started = time.perf_counter()
    tasks = [
        await client.launch(bench.wasm_hash, name="bench-scaling", input=None) for _ in range(count)
    ]
    await _all_complete(client, tasks, "the burst did not complete")
    return count / (time.perf_counter() - started)


#: The queue the backlog waits on, paused, until it is released.
BACKLOG = "bench-backlog"


async def _backlog(client: Client, bench: Bench, count: int) -> float:
    await client.set_queue(BACKLOG, paused=True)
    tasks = [
        await client.launch(bench.wasm_hash, name="bench-backlog", input=None, queue=BACKLOG)
        for _ in range(count)
    ]
    started = time.perf_counter()
    await client.set_queue(BACKLOG, paused=False)
    await _all_complete(client, tasks, "the backlog did not drain")
    return count / (time.perf_counter() - started)


async def _all_complete(client: Client, tasks: list[Task], stuck: str) -> None:
    with within(300, stuck):
        for task in tasks:
            done = await client.wait(task.id)
            if done.state is not TaskState.COMPLETE:
                raise RuntimeError(f"task {task.id} ended {done.state}: {done.error}")


async def process_scaling(
    backend: Backend, bench: Bench, sizes: Sizes, log_dir: Path
) -> list[Figure]:
    """(l) trivial workflows/s into `durable worker --processes N`, N = 1 and 2,
    alternating between them, median of `trivial_rounds` bursts of `trivial` tasks,
    and as many backlogs."""
    rates: dict[int, list[float]] = {n: [] for n in COUNTS}
    drains: dict[int, list[float]] = {n: [] for n in COUNTS}
    for _ in range(sizes.trivial_rounds):
        for n in COUNTS:
            async with backend.database() as (url, store):
                await store.put_workflow(bench.wasm)
                client = Client(store)
                with worker_processes() as procs:
                    command = [*worker_command(url), "--processes", str(n)]
                    proc = WorkerProcess(command, log_dir / f"scaling-{backend.name}-{n}.log")
                    procs.append(proc)
                    await _registered(store, n, proc)
                    await _burst(client, bench, 3)  # each process compiles nothing: warm
                    rates[n].append(await _burst(client, bench, sizes.trivial))
                    drains[n].append(await _backlog(client, bench, sizes.trivial))
                    proc.stop(timeout=60)
    return [
        *_figures(
            rates,
            "workflows_per_s_processes",
            "trivial workflows/s, `durable worker --processes {n}`",
            f"{sizes.trivial} launched at once, concurrency 16 each",
            "bursts",
        ),
        *_figures(
            drains,
            "backlog_per_s_processes",
            "a released backlog drained/s, `--processes {n}`",
            f"{sizes.trivial} waiting on a paused queue, then released",
            "backlogs",
        ),
    ]


def _figures(
    samples: dict[int, list[float]], id_: str, name: str, first: str, what: str
) -> list[Figure]:
    """One figure per process count: the first's note says how it was measured, the
    others' how they compare with it."""
    one = median(samples[COUNTS[0]])
    return [
        Figure(
            key="l",
            id=f"{id_}_{n}",
            name=name.format(n=n),
            value=median(samples[n]),
            unit="/s",
            note=first
            if n == COUNTS[0]
            else f"{median(samples[n]) / one:.2f}x one process; {len(samples[n])} {what}",
            samples=samples[n],
        )
        for n in COUNTS
    ]
