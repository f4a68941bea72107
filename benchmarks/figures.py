"""Each benchmark figure, measured against a store opened for the run.

Every figure is measured in the same process and run as the raw commit rate it is
compared to, because absolute numbers on shared machines are noisy; ratios are not.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio

from durable.builder import build_workflow
from durable.client import Client
from durable.core.model import Completed, Event, LogChunk
from durable.host import AttemptContext, HostConfig, Runtime
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig

BENCH_WORKFLOW = Path(__file__).parent / "workflows" / "bench.py"


@dataclass
class Figure:
    """One measured figure, with its target when it has one."""

    key: str  # "a", "b", ...
    name: str
    value: float
    unit: str
    target: str = ""
    met: bool | None = None  # None: no target


def raw_sqlite_commits(path: Path, seconds: float) -> float:
    """(a) single-row INSERT + COMMIT per second, WAL and synchronous=FULL."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS raw(id INTEGER PRIMARY KEY, v TEXT)")
    n = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO raw(v) VALUES (?)", ("x" * 64,))
        conn.execute("COMMIT")
        n += 1
    elapsed = time.perf_counter() - started
    conn.close()
    return n / elapsed


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, events: list[Event], logs: list[LogChunk]) -> None:  # pragma: no cover
        raise AssertionError("a replay must not write")


async def _run_to_end(store: Store, runtime: Runtime, task_id: int, concurrency: int = 1) -> None:
    worker = Worker(
        store, WorkerConfig(concurrency=concurrency, exit_when_idle=True), runtime=runtime
    )
    await worker.run()
    task = await store.get_task(task_id)
    if task.state.value != "complete":
        raise RuntimeError(f"benchmark task {task_id} ended {task.state}: {task.error}")


async def recorded_and_replay(
    store: Store, runtime: Runtime, wasm_hash: str, n: int
) -> tuple[float, float]:
    """(b) recorded events/s of one task making n recorded steps; (c) replay events/s."""
    client = Client(store)
    task = await client.launch(wasm_hash, name="bench-steps", input=n, entry="steps")
    started = time.perf_counter()
    await _run_to_end(store, runtime, task.id)
    recorded = n / (time.perf_counter() - started)

    history = await store.load_history(task.id)
    component = runtime.cache.load(wasm_hash)
    done = await store.get_task(task.id)
    best = float("inf")
    for _ in range(3):
        ctx = AttemptContext(
            task=done,
            attempt=done.attempts,
            history=history,
            sink=_Sink(),
            config=runtime.config,
            replay_only=True,
        )
        t0 = time.perf_counter()
        end = await anyio.to_thread.run_sync(runtime.run, component, ctx)
        best = min(best, time.perf_counter() - t0)
        if not isinstance(end.outcome, Completed):
            raise RuntimeError(f"replay did not complete: {end}")
    return recorded, len(history) / best


async def workflows_per_second(
    store: Store, runtime: Runtime, wasm_hash: str, n: int, concurrency: int
) -> float:
    """(d) trivial tasks from launch to complete, one worker."""
    client = Client(store)
    started = time.perf_counter()
    last = None
    for _ in range(n):
        last = await client.launch(wasm_hash, name="bench-trivial", input=None)
    assert last is not None
    await _run_to_end(store, runtime, last.id, concurrency)
    return n / (time.perf_counter() - started)


async def start_latency(
    store: Store, runtime: Runtime, wasm_hash: str, n: int
) -> tuple[float, float]:
    """(e) launch -> first guest instruction, p50 and p99 in ms, with a running worker."""
    client = Client(store)
    worker = Worker(store, WorkerConfig(concurrency=4), runtime=runtime)
    latencies: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await anyio.sleep(0.2)
        for _ in range(n):
            task = await client.launch(wasm_hash, name="bench-latency", input=None)
            done = await client.wait(task.id, poll=0.002)
            first = json.loads(done.result or "0")
            latencies.append((first - task.created_at.timestamp()) * 1000)
        worker.stop()
    return _percentile(latencies, 50), _percentile(latencies, 99)


async def timer_lateness(
    store: Store, runtime: Runtime, wasm_hash: str, n: int
) -> tuple[float, float]:
    """(g) how late suspended tasks wake after their deadline: p50 and p99 in ms."""
    client = Client(store)
    config = WorkerConfig(
        concurrency=16, host=HostConfig(suspend_after=0.2, cache_dir=runtime.config.cache_dir)
    )
    worker = Worker(store, config, runtime=runtime)
    lateness: list[float] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        tasks = [
            await client.launch(wasm_hash, name="bench-timer", input=1.0, entry="sleeper")
            for _ in range(n)
        ]
        for task in tasks:
            done = await client.wait(task.id, poll=0.02)
            history = await store.load_history(task.id)
            deadline = int(history[0].payload) / 1e9
            woke = json.loads(done.result or "0")
            lateness.append((woke - deadline) * 1000)
        worker.stop()
    return _percentile(lateness, 50), _percentile(lateness, 99)


def build_and_load_times(runtime_config: HostConfig) -> dict[str, float]:
    """(i) cold and cached build, cold (compile) and cached (deserialise) load, seconds."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        t0 = time.perf_counter()
        result = build_workflow(BENCH_WORKFLOW, cache_dir=cache)
        out["build_cold"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        build_workflow(BENCH_WORKFLOW, cache_dir=cache)
        out["build_cached"] = time.perf_counter() - t0
        wasm = result.wasm_path.read_bytes()
        digest = hashlib.sha256(wasm).hexdigest()
        cold = Runtime(HostConfig(cache_dir=cache))
        t0 = time.perf_counter()
        cold.cache.load(digest, wasm)
        out["load_cold"] = time.perf_counter() - t0
        cold.close()
        warm = Runtime(HostConfig(cache_dir=cache))
        t0 = time.perf_counter()
        warm.cache.load(digest, wasm)
        out["load_cached"] = time.perf_counter() - t0
        warm.close()
    return out


def _percentile(values: list[float], pct: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def now_utc() -> str:
    """The run's timestamp for reports."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def machine() -> str:
    """A one-line description of this machine."""
    return f"{os.cpu_count()} cores, {os.uname().sysname} {os.uname().machine}"
