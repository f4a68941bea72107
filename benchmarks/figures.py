"""The figures measured inside the benchmark process: (a)-(e), (g) and (i).

Each figure runs a real `Worker` (with a shared `Runtime`, so the component is compiled
once) against a fresh database of the backend. Absolute numbers on a shared machine are
noisy; ratios are less so, so each ratio's two sides are measured close together in
time: (a) right before each run of (b), alternating, and the medians reported.
(f) and (h) need worker processes of their own: see `benchmarks.processes`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from benchmarks.backends import Backend, MeteredStore, within
from durable.builder import build_workflow
from durable.client import Client
from durable.core.model import Completed, Event, LogChunk, Task, TaskState
from durable.core.side_writes import SideWrite
from durable.host import AttemptContext, HostConfig, Runtime
from durable.host.runtime import AttemptEnd
from durable.worker import Worker, WorkerConfig

BENCH_WORKFLOW = Path(__file__).parent / "workflows" / "bench.py"


@dataclass
class Figure:
    """One measured figure, with its target when it has one."""

    key: str  # the letter of the figure in the issue: "a", "b", ...
    id: str  # a stable name for JSON readers and tests
    name: str  # what the table shows
    value: float
    unit: str  # "/s", "ms", "s", "MiB"
    target: str = ""  # "" when the figure has no target
    met: bool | None = None  # None: no target
    note: str = ""  # how it was measured, in a few words
    samples: list[float] = field(default_factory=list)  # the runs the value summarises

    def as_dict(self) -> dict[str, Any]:
        """The figure as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """How much work each figure does: the full run, or a quick smoke run."""

    rounds: int  # (a)/(b) alternations
    raw_seconds: float  # length of each (a) measurement
    steps: int  # recorded calls of the (b) task
    replays: int  # (c) replays of its history
    trivial: int  # (d) tasks per run and concurrency
    trivial_rounds: int  # (d) runs per concurrency
    latency: int  # (e) tasks per round, one at a time
    latency_rounds: int  # (e) rounds
    timers: int  # (g) sleeping tasks
    timer_lead: float  # (g) seconds from launch to the first deadline
    timer_window: float  # (g) the deadlines spread evenly over this many seconds
    active: int  # (h) tasks holding an instance at once
    suspended: int  # (h) tasks parked
    failover_trials: int  # (f) SIGKILLs
    lease_seconds: float | None  # (f) the workers' lease; None: the default (10 s)
    cold_starts: int  # (j) fresh runtimes starting a task from the artifact on disk
    wake_events: int  # (m) recorded events before the wake-up


FULL = Sizes(
    rounds=7,
    raw_seconds=0.5,
    steps=2000,
    replays=7,
    trivial=500,
    trivial_rounds=3,
    latency=200,
    latency_rounds=3,
    timers=200,
    timer_lead=2.5,
    timer_window=4.0,
    active=1000,  # issue 14, target 5: a thousand active tasks on one worker
    suspended=1000,
    failover_trials=5,
    lease_seconds=None,
    cold_starts=20,
    wake_events=10_000,  # issue 14, target 4
)
QUICK = Sizes(
    rounds=2,
    raw_seconds=0.2,
    steps=200,
    replays=2,
    trivial=30,
    trivial_rounds=1,
    latency=20,
    latency_rounds=1,
    timers=10,
    timer_lead=1.0,
    timer_window=0.5,
    active=5,
    suspended=20,
    failover_trials=1,
    lease_seconds=2.0,
    cold_starts=3,
    wake_events=1_000,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Bench:
    """The compiled benchmark workflow and the runtime that runs it in-process."""

    runtime: Runtime
    wasm: bytes
    wasm_hash: str

    @classmethod
    def prepare(cls, runtime: Runtime) -> Bench:
        """Build (or take from the build cache) and compile (or load) the workflow."""
        wasm = build_workflow(BENCH_WORKFLOW).wasm_path.read_bytes()
        wasm_hash = hashlib.sha256(wasm).hexdigest()
        runtime.cache.load(wasm_hash, wasm)
        return cls(runtime=runtime, wasm=wasm, wasm_hash=wasm_hash)


# -- (a), (b), (c) ---------------------------------------------------------------------------


async def recording_and_replay(backend: Backend, bench: Bench, sizes: Sizes) -> list[Figure]:
    """(a) raw commits/s, (b) recorded events/s, alternating; then (c) replay events/s."""
    raws: list[float] = []
    rates: list[float] = []
    commit_rates: list[float] = []
    per_commit: list[float] = []
    async with backend.database() as (_, store):
        await store.put_workflow(bench.wasm)
        meter = MeteredStore(store)
        task: Task | None = None
        for _ in range(sizes.rounds):
            raws.append(await backend.raw_commit_rate(sizes.raw_seconds))
            task, elapsed = await _record_once(meter, bench, sizes.steps)
            rates.append(meter.events / elapsed)
            commit_rates.append(meter.commits / elapsed)
            per_commit.append(meter.events / meter.commits)
        assert task is not None
        history = await store.load_history(task.id)
        done = await store.get_task(task.id)
    replays = [await _replay_once(bench, done, history) for _ in range(sizes.replays)]
    raw, rate, replay = median(raws), median(rates), median(replays)
    ratios = [b / a for a, b in zip(raws, rates, strict=True)]
    return [
        Figure(
            key="a",
            id="raw_commits_per_s",
            name=f"raw commits/s ({_raw_kind(backend)})",
            value=raw,
            unit="/s",
            note=f"median of {len(raws)}, each measured right before a (b) run",
            samples=raws,
        ),
        Figure(
            key="b",
            id="recorded_events_per_s",
            name=f"recorded events/s, one task, {sizes.steps:,} steps",
            value=rate,
            unit="/s",
            target=">= 50% of (a)",
            met=rate >= 0.5 * raw,
            note=f"median of {len(rates)} fresh runs, launch to end; {rate / raw:.0%} of (a) "
            f"(run by run: {min(ratios):.0%} to {max(ratios):.0%})",
            samples=rates,
        ),
        Figure(
            key="b",
            id="recorded_commits_per_s",
            name="  commits/s during (b)",
            value=median(commit_rates),
            unit="/s",
            note=f"group commit: {median(per_commit):,.0f} events per commit",
            samples=commit_rates,
        ),
        Figure(
            key="c",
            id="replay_events_per_s",
            name=f"replay events/s, the same {len(history):,} events",
            value=replay,
            unit="/s",
            target=">= 100,000",  # issue 14, target 4
            met=replay >= 100_000,
            note=f"median of {len(replays)}, instantiation included",
            samples=replays,
        ),
    ]


def _raw_kind(backend: Backend) -> str:
    return "WAL, synchronous=FULL" if backend.name == "sqlite" else "fsync, 1 connection"


async def _record_once(meter: MeteredStore, bench: Bench, steps: int) -> tuple[Task, float]:
    """Launch a fresh `steps` task on an idle worker; return it and launch-to-end seconds."""
    client = Client(meter.store)
    worker = Worker(meter.store, WorkerConfig(concurrency=1), runtime=bench.runtime)
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        await anyio.sleep(0.05)  # the worker registers and goes idle
        meter.reset()
        started = time.perf_counter()
        task = await client.launch(bench.wasm_hash, name="bench-steps", input=steps, entry="steps")
        with within(120, "the steps task did not end"):
            await meter.wait_ended(1)
        elapsed = time.perf_counter() - started
        worker.stop()
    done = await meter.store.get_task(task.id)
    _check_complete(done)
    if meter.events != steps:
        raise RuntimeError(f"the steps task recorded {meter.events} events, not {steps}")
    return done, elapsed


class _NoWrites:
    """A sink for replay-only attempts: they must not write anything."""

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        raise AssertionError("a replay must not write")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a replay of the benchmark must not call {name}")


async def _replay_once(bench: Bench, task: Task, history: list[Event]) -> float:
    """Replay `history` in a replay-only attempt; return events per second."""
    component = bench.runtime.cache.load(bench.wasm_hash)
    ctx = replay_context(bench, task, history)
    started = time.perf_counter()
    end = await anyio.to_thread.run_sync(bench.runtime.run, component, ctx)
    elapsed = time.perf_counter() - started
    check_replayed(end)
    return len(history) / elapsed


def replay_context(bench: Bench, task: Task, history: list[Event]) -> AttemptContext:
    """A replay-only attempt of `task` from `history`, as (c) makes it: it writes nothing."""
    return AttemptContext(
        task=task,
        attempt=task.attempts,
        history=history,
        sink=_NoWrites(),
        config=bench.runtime.config,
        replay_only=True,
    )


def check_replayed(end: AttemptEnd) -> None:
    """Raise unless a replay of (c) completed."""
    if not isinstance(end.outcome, Completed):
        raise RuntimeError(f"the replay did not complete: {end}")


# -- (d) ---------------------------------------------------------------------------------------


async def trivial_throughput(backend: Backend, bench: Bench, sizes: Sizes) -> list[Figure]:
    """(d) trivial workflows/s, launch to complete, one worker, concurrency 1 and 16."""
    out = []
    for concurrency in (1, 16):
        rates = []
        async with backend.database() as (_, store):
            await store.put_workflow(bench.wasm)
            meter = MeteredStore(store)
            client = Client(meter.store)
            worker = Worker(
                meter.store, WorkerConfig(concurrency=concurrency), runtime=bench.runtime
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)
                await anyio.sleep(0.05)
                for _ in range(sizes.trivial_rounds):
                    meter.reset()
                    started = time.perf_counter()
                    for _ in range(sizes.trivial):
                        await client.launch(bench.wasm_hash, name="bench-trivial", input=None)
                    with within(300, "the trivial tasks did not all complete"):
                        await meter.wait_ended(sizes.trivial)
                    rates.append(sizes.trivial / (time.perf_counter() - started))
                worker.stop()
            failed = await store.list_tasks(states=[TaskState.FAILED], limit=1)
            if failed:
                raise RuntimeError(f"a trivial task failed: {failed[0].error}")
        rate = median(rates)
        goal = 500 if concurrency == 1 else 600
        out.append(
            Figure(
                key="d",
                id=f"workflows_per_s_c{concurrency}",
                name=f"trivial workflows/s, concurrency {concurrency}",
                value=rate,
                unit="/s",
                # Issue 14, target 2: p50 <= 2 ms one at a time, >= 600/s sixteen at a time.
                target=f">= {goal}" if backend.name == "sqlite" else "",
                met=(rate >= goal) if backend.name == "sqlite" else None,
                note=f"{sizes.trivial} launched into a running worker"
                + (f", median of {len(rates)}" if len(rates) > 1 else ""),
                samples=rates,
            )
        )
    return out


# -- (e) ---------------------------------------------------------------------------------------


async def start_latency(backend: Backend, bench: Bench, sizes: Sizes) -> list[Figure]:
    """(e) launch -> first guest instruction, one task at a time, to an idle worker.

    `latency_rounds` rounds of `latency` tasks; p50 and p99 are the medians of the
    rounds' percentiles, so that one burst of load on a shared machine moves them less.
    """
    warmup = 3
    rounds: list[list[float]] = []
    async with backend.database() as (_, store):
        await store.put_workflow(bench.wasm)
        meter = MeteredStore(store)
        client = Client(meter.store)
        worker = Worker(meter.store, WorkerConfig(), runtime=bench.runtime)
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            await anyio.sleep(0.05)
            for _ in range(sizes.latency_rounds):
                latencies: list[float] = []
                for i in range(warmup + sizes.latency):
                    await anyio.sleep(0.005)  # let the worker settle into its idle wait
                    ended = meter.ended
                    task = await client.launch(bench.wasm_hash, name="bench-latency", input=None)
                    with within(30, f"task {task.id} did not complete"):
                        await meter.wait_ended(ended + 1)
                    done = await store.get_task(task.id)
                    _check_complete(done)
                    first = json.loads(done.result or "0")
                    if i >= warmup:
                        latencies.append((first - task.created_at.timestamp()) * 1000)
                rounds.append(latencies)
            worker.stop()
    p50 = median([percentile(r, 50) for r in rounds])
    p99s = [percentile(r, 99) for r in rounds]
    p99 = median(p99s)
    every = [x for r in rounds for x in r]
    many = f"median of {len(rounds)} rounds of {sizes.latency}" if len(rounds) > 1 else ""
    return [
        Figure(
            key="e",
            id="start_latency_p50_ms",
            name="launch -> first instruction, p50",
            value=p50,
            unit="ms",
            note=f"{many or f'{sizes.latency} tasks'}, one at a time, compile cached",
        ),
        Figure(
            key="e",
            id="start_latency_p99_ms",
            name="launch -> first instruction, p99",
            value=p99,
            unit="ms",
            target="< 10 ms",
            met=p99 < 10,
            note=f"rounds' p99 {', '.join(f'{x:.1f}' for x in p99s)} ms; max {max(every):.1f} ms",
            samples=every,
        ),
    ]


# -- (g) ---------------------------------------------------------------------------------------


async def timer_lateness(backend: Backend, bench: Bench, sizes: Sizes) -> list[Figure]:
    """(g) how late suspended tasks wake after their deadlines: p50 and p99.

    The tasks sleep until deadlines spread evenly over `timer_window` seconds, starting
    `timer_lead` seconds after the launches begin (by then every task has suspended),
    so this measures how promptly a timer fires, not how fast a backlog drains.
    """
    # Suspension is decided by the attempt's host settings: a runtime of its own.
    runtime = Runtime(HostConfig(suspend_after=0.5, cache_dir=bench.runtime.config.cache_dir))
    lateness: list[float] = []
    try:
        runtime.cache.load(bench.wasm_hash, bench.wasm)
        async with backend.database() as (_, store):
            await store.put_workflow(bench.wasm)
            meter = MeteredStore(store)
            client = Client(meter.store)
            worker = Worker(meter.store, WorkerConfig(concurrency=16), runtime=runtime)
            deadlines: dict[int, float] = {}
            async with anyio.create_task_group() as tg:
                tg.start_soon(worker.run)
                await anyio.sleep(0.05)
                first = time.time() + sizes.timer_lead
                for i in range(sizes.timers):
                    deadline = first + sizes.timer_window * i / max(sizes.timers - 1, 1)
                    task = await client.launch(
                        bench.wasm_hash, name="bench-timer", input=deadline, entry="wake_at"
                    )
                    deadlines[task.id] = deadline
                limit = sizes.timer_lead + sizes.timer_window + 60
                with within(limit, "the sleeping tasks did not all wake and complete"):
                    await meter.wait_ended(sizes.timers)
                worker.stop()
            suspended = meter.finishes - meter.ended
            for task_id, deadline in deadlines.items():
                done = await store.get_task(task_id)
                _check_complete(done)
                lateness.append((json.loads(done.result or "0") - deadline) * 1000)
    finally:
        runtime.close()
    rate = sizes.timers / sizes.timer_window
    note = (
        f"{sizes.timers} tasks ({suspended} suspended), deadlines spread over "
        f"{sizes.timer_window:g} s ({rate:,.0f} wake-ups/s)"
    )
    return [
        Figure(
            key="g",
            id="timer_lateness_p50_ms",
            name="timer wake-up lateness, p50",
            value=percentile(lateness, 50),
            unit="ms",
            note=note,
        ),
        Figure(
            key="g",
            id="timer_lateness_p99_ms",
            name="timer wake-up lateness, p99",
            value=percentile(lateness, 99),
            unit="ms",
            target="< 200 ms",
            met=percentile(lateness, 99) < 200,
            note=f"max {max(lateness):.1f} ms",
            samples=lateness,
        ),
    ]


# -- (i) ---------------------------------------------------------------------------------------


def build_and_load_times(cache_dir: Path | None = None) -> list[Figure]:
    """(i) cold and cached build of the workflow, and cold and cached load.

    Cold build: componentize-py from scratch. Cached build: the build cache hit.
    Cold load: compile the component (in the detached compiler process, which writes the
    artifact), then deserialise it: the first use of a workflow on a machine.
    Cached load: deserialise the compiled artifact in a fresh process-wide runtime.
    """
    with tempfile.TemporaryDirectory(prefix="durable-bench-cache-", dir=cache_dir) as tmp:
        cache = Path(tmp)
        t0 = time.perf_counter()
        result = build_workflow(BENCH_WORKFLOW, cache_dir=cache)
        build_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = build_workflow(BENCH_WORKFLOW, cache_dir=cache)
        build_cached = time.perf_counter() - t0
        if result.cached or not again.cached:
            raise RuntimeError("the build cache did not behave: cold build was cached or not")
        wasm = result.wasm_path.read_bytes()
        digest = hashlib.sha256(wasm).hexdigest()
        loads = []
        for _ in range(2):  # cold: compile and store; then cached: deserialise
            runtime = Runtime(HostConfig(cache_dir=cache))
            try:
                cached = runtime.cache.cached(digest)
                t0 = time.perf_counter()
                runtime.cache.load(digest, wasm)
                loads.append((time.perf_counter() - t0, cached))
            finally:
                runtime.close()
        (load_cold, was_cached), (load_cached, now_cached) = loads
        if was_cached or not now_cached:
            raise RuntimeError("the compile cache did not behave")
    size = f"{len(wasm) / 2**20:.1f} MiB component"
    return [
        Figure(key="i", id="build_cold_s", name="build, cold (componentize-py)",
               value=build_cold, unit="s", note=size),
        Figure(key="i", id="build_cached_s", name="build, cached",
               value=build_cached, unit="s", note="content-hash hit"),
        Figure(key="i", id="load_cold_s", name="load, cold (compile)",
               value=load_cold, unit="s", note="compiler process, then cached on disk"),
        Figure(key="i", id="load_cached_s", name="load, cached (deserialise)",
               value=load_cached, unit="s", note="fresh runtime, artifact on disk"),
    ]  # fmt: skip


# -- helpers -----------------------------------------------------------------------------------


def _check_complete(task: Task) -> None:
    if task.state is not TaskState.COMPLETE:
        raise RuntimeError(f"benchmark task {task.id} ended {task.state}: {task.error}")


def median(values: Sequence[float]) -> float:
    """The median."""
    return statistics.median(values)


def percentile(values: Sequence[float], pct: int) -> float:
    """The `pct`-th percentile, interpolated between the closest ranks."""
    if not values:
        return math.nan
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def progress(message: str) -> None:
    """A progress line on stderr, shown while a run goes on."""
    print(f"  .. {message}", file=sys.stderr, flush=True)


def now_utc() -> str:
    """The run's timestamp for reports."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def machine() -> str:
    """A one-line description of this machine: CPU model, cores, memory, OS, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f", {int(line.split()[1]) / 2**20:.0f} GiB RAM"
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )
