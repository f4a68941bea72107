"""(k) launch -> result through `Client.wait`: what a user who awaits a task sees.

Each figure is measured twice in the same run, alternating: with the store's end
signal (in-process watch, SQLite wake-up sockets, Postgres LISTEN), and through a
client whose store hides it, so that `wait` polls as it did before (20 ms doubling up
to 0.25 s). Embedded worker (one process) for the sequential p50 and the 16-at-a-time
rate; a separate `durable worker` process for the sequential p50 across processes.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import anyio

from benchmarks.backends import Backend, within
from benchmarks.figures import BENCH_WORKFLOW, Bench, Figure, Sizes, median, percentile
from benchmarks.processes import WorkerProcess, worker_command, worker_processes
from durable.client import Client
from durable.core.model import TaskState
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig

#: Tasks in flight at once for the rate.
CONCURRENT = 16


class _Polling:
    """The wrapped store without its end signal: `Client.wait` polls, as before."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        if name == "watch_end":
            raise AttributeError(name)
        return getattr(self._store, name)


def _clients(store: Store) -> dict[str, Client]:
    return {"signal": Client(store), "polling": Client(cast("Store", _Polling(store)))}


async def _one(client: Client, bench: Bench) -> float:
    started = time.perf_counter()
    task = await client.launch(bench.wasm_hash, name="bench-wait", input=None)
    with within(60, f"task {task.id} did not end"):
        done = await client.wait(task.id)
    if done.state is not TaskState.COMPLETE:
        raise RuntimeError(f"task {task.id} ended {done.state}: {done.error}")
    return (time.perf_counter() - started) * 1000


async def sequential_latencies(client: Client, bench: Bench, count: int) -> list[float]:
    return [await _one(client, bench) for _ in range(count)]


async def concurrent_rate(client: Client, bench: Bench, count: int) -> float:
    left = count

    async def lane() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await _one(client, bench)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(CONCURRENT):
            tg.start_soon(lane)
    return count / (time.perf_counter() - started)


async def wait_figures(backend: Backend, bench: Bench, sizes: Sizes) -> list[Figure]:
    """(k) `Client.wait` launch -> result, embedded worker: p50 one at a time, and the
    rate 16 at a time; each with the end signal and polling, alternating."""
    latencies: dict[str, list[float]] = {"signal": [], "polling": []}
    rates: dict[str, list[float]] = {"signal": [], "polling": []}
    async with backend.database() as (_, store):
        await store.put_workflow(bench.wasm)
        clients = _clients(store)
        worker = Worker(store, WorkerConfig(concurrency=CONCURRENT), runtime=bench.runtime)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await sequential_latencies(clients["signal"], bench, 3)  # warm up
            for _ in range(sizes.trivial_rounds):
                for mode, client in clients.items():
                    latencies[mode] += await sequential_latencies(client, bench, sizes.latency)
                    rates[mode].append(await concurrent_rate(client, bench, sizes.trivial))
            worker.stop()
    p50 = {mode: percentile(values, 50) for mode, values in latencies.items()}
    rate = {mode: median(values) for mode, values in rates.items()}
    return _pair(
        backend,
        ("wait_p50_ms", "launch -> Client.wait returns, p50"),
        ("wait_workflows_per_s_c16", f"launch + Client.wait, {CONCURRENT} at a time"),
        (latencies["signal"], rates["signal"]),
        (
            f"polling as before: {p50['polling']:.1f} ms; {len(latencies['signal'])} "
            "tasks one at a time, embedded worker",
            f"polling as before: {rate['polling']:.0f}/s; {sizes.trivial} tasks, embedded worker",
        ),
    )


def _pair(
    backend: Backend,
    latency: tuple[str, str],
    throughput: tuple[str, str],
    samples: tuple[list[float], list[float]],
    notes: tuple[str, str],
) -> list[Figure]:
    """(k)'s two figures, each (id, name): the p50 of one at a time and the median
    rate 16 at a time, with their targets on this backend."""
    latencies, rates = samples
    p50, rate = percentile(latencies, 50), median(rates)
    sqlite = backend.name == "sqlite"
    rate_target = 600 if sqlite else 400
    return [
        Figure(
            key="k",
            id=latency[0],
            name=latency[1],
            value=p50,
            unit="ms",
            target="<= 2 ms" if sqlite else "",
            met=(p50 <= 2) if sqlite else None,
            note=notes[0],
            samples=latencies,
        ),
        Figure(
            key="k",
            id=throughput[0],
            name=throughput[1],
            value=rate,
            unit="/s",
            target=f">= {rate_target}",
            met=rate >= rate_target,
            note=notes[1],
            samples=rates,
        ),
    ]


async def bundle_wait_figures(backend: Backend, bench: Bench, sizes: Sizes) -> list[Figure]:
    """(k) again, for the same file registered as users register a `.py`: a bundle on
    the shared interpreter, whose instances import it (ahead of the claim, when they
    can) where a standalone component has it imported at its build."""
    latencies: list[float] = []
    rates: list[float] = []
    async with backend.database() as (_, store):
        client = Client(store)
        bundle = replace(bench, wasm_hash=await client.register_file(BENCH_WORKFLOW))
        worker = Worker(store, WorkerConfig(concurrency=CONCURRENT), runtime=bench.runtime)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await sequential_latencies(client, bundle, 3)  # warm up
            for _ in range(sizes.trivial_rounds):
                latencies += await sequential_latencies(client, bundle, sizes.latency)
                rates.append(await concurrent_rate(client, bundle, sizes.trivial))
            worker.stop()
    return _pair(
        backend,
        ("wait_bundle_p50_ms", "the same as a .py (bundle), p50"),
        ("wait_bundle_workflows_per_s_c16", f"the same as a .py (bundle), {CONCURRENT} at a time"),
        (latencies, rates),
        (
            f"{len(latencies)} tasks one at a time, embedded worker, shared interpreter",
            f"{sizes.trivial} tasks, embedded worker, shared interpreter",
        ),
    )


async def remote_wait_figures(
    backend: Backend, bench: Bench, sizes: Sizes, log_dir: Path
) -> list[Figure]:
    """(k') the same one at a time, into a separate `durable worker` process."""
    latencies: dict[str, list[float]] = {"signal": [], "polling": []}
    async with backend.database() as (url, store):
        await store.put_workflow(bench.wasm)
        clients = _clients(store)
        with worker_processes() as procs:
            proc = WorkerProcess(worker_command(url), log_dir / f"wait-{backend.name}.log")
            procs.append(proc)
            await proc.wait_registered(store)
            await sequential_latencies(clients["signal"], bench, 3)  # warm up
            for _ in range(sizes.trivial_rounds):
                for mode, client in clients.items():
                    latencies[mode] += await sequential_latencies(client, bench, sizes.latency)
            proc.stop()
    p50 = {mode: percentile(values, 50) for mode, values in latencies.items()}
    p99 = percentile(latencies["signal"], 99)
    return [
        Figure(
            key="k'",
            id="wait_remote_p50_ms",
            name="the same, worker in another process, p50",
            value=p50["signal"],
            unit="ms",
            note=f"polling as before: {p50['polling']:.1f} ms; p99 {p99:.1f} ms; "
            f"{len(latencies['signal'])} tasks",
            samples=latencies["signal"],
        )
    ]
