"""Cold starts: (j) a worker starting a task from the compiled artifact on disk, and
(k) a fleet of `durable worker` processes, SIGKILLed every 1-3 s, running a workflow
that is new to the machine.

(j) is part of `python -m benchmarks`. (k) takes ten minutes per backend, so it runs
on its own::

    python -m benchmarks.coldstart [--minutes 10] [--backend sqlite|postgres|all] [--json OUT]

The kill loop is also what `tests/integration/test_cold_start.py` runs, briefly.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import anyio

from benchmarks.backends import Backend, PostgresBackend, SQLiteBackend, within
from benchmarks.figures import BENCH_WORKFLOW, Bench, Figure, Sizes, median, percentile
from benchmarks.processes import WorkerProcess, worker_command, worker_processes
from durable.builder import build_workflow
from durable.client import Client
from durable.core.model import Claim, NewTask, TaskState
from durable.host import HostConfig, Runtime
from durable.host._cache_files import LOG_NAME
from durable.host._shared_compile import CompiledEntry
from durable.storage import _pg_admin as pg_admin
from durable.storage import parse_url
from durable.storage.base import Store
from durable.testing.postgres import postgres_server, unavailable_reason
from durable.worker import Worker, WorkerConfig

# -- (j) ---------------------------------------------------------------------------------------


class ClaimClock:
    """A `Store` that notes the wall-clock time each task was last claimed at."""

    def __init__(self, store: Store) -> None:
        """Wrap `store`."""
        self._store = store
        self.claimed_at: dict[int, float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @property
    def store(self) -> Store:
        """This wrapper, typed as the `Store` it stands in for."""
        return cast("Store", self)

    async def claim(self, **options: Any) -> list[Claim]:
        """Claim through the wrapped store, and note when the claim returned."""
        claims = await self._store.claim(**options)
        now = time.time()
        for claim in claims:
            self.claimed_at[claim.task.id] = now
        return claims


async def start_from_disk(backend: Backend, bench: Bench, sizes: Sizes) -> list[Figure]:
    """(j) claim -> first guest instruction in a worker that has never loaded the workflow.

    Each sample is a fresh `Runtime` (nothing in memory) over the machine's cache, where
    the artifact is on disk: the worker deserialises it, instantiates and runs.
    """
    samples: list[float] = []
    async with backend.database() as (_, store):
        await store.put_workflow(bench.wasm)
        clock = ClaimClock(store)
        client = Client(store)
        for _ in range(sizes.cold_starts):
            runtime = Runtime(HostConfig(cache_dir=bench.runtime.config.cache_dir))
            try:
                if not runtime.cache.cached(bench.wasm_hash):
                    raise RuntimeError("the benchmark workflow is not compiled on disk")
                task = await client.launch(bench.wasm_hash, name="bench-cold", input=None)
                worker = Worker(clock.store, WorkerConfig(exit_when_idle=True), runtime=runtime)
                with within(60, f"task {task.id} did not complete"):
                    await worker.run()
            finally:
                runtime.close()
            done = await store.get_task(task.id)
            if done.state is not TaskState.COMPLETE:
                raise RuntimeError(f"task {task.id} ended {done.state}: {done.error}")
            samples.append((json.loads(done.result or "0") - clock.claimed_at[task.id]) * 1000)
    p99 = percentile(samples, 99)
    return [
        Figure(
            key="j",
            id="cold_start_p50_ms",
            name="claim -> first instruction, artifact on disk, p50",
            value=percentile(samples, 50),
            unit="ms",
            note=f"{len(samples)} fresh runtimes: deserialise, instantiate, run",
        ),
        Figure(
            key="j",
            id="cold_start_p99_ms",
            name="the same, p99",
            value=p99,
            unit="ms",
            target="< 10 ms",
            met=p99 < 10,
            note=f"max {max(samples):.1f} ms",
            samples=samples,
        ),
    ]


# -- (k) ---------------------------------------------------------------------------------------


@dataclass
class KillLoopResult:
    """What a kill loop achieved."""

    seconds: float  # how long it ran
    kills: int  # SIGKILLs sent to workers
    launched: int  # tasks launched
    completed: int  # tasks complete at the end
    failed: int  # tasks failed or cancelled (there should be none)
    compiles: int  # compiles of the workflow started on this machine
    artifact: bool  # whether the compiled artifact exists at the end
    first_completion: float | None  # seconds from the start to the first completed task
    kills_before_first: int = 0  # SIGKILLs before the first task completed (the compile's)
    per_minute: list[int] = field(default_factory=list)  # completions in each whole minute

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return asdict(self)


def compiles_started(cache_dir: Path, wasm_hash: str) -> int:
    """How many compiles of `wasm_hash` this cache's compile log records as started."""
    key = CompiledEntry.of(cache_dir, wasm_hash).key
    try:
        text = (cache_dir / "compiled" / LOG_NAME).read_text(errors="replace")
    except FileNotFoundError:
        return 0
    return sum(1 for line in text.splitlines() if f": compiling {key} " in line)


async def kill_loop(
    *,
    url: str,
    store: Store,
    wasm: bytes,
    cache_dir: Path,
    log_dir: Path,
    tasks: int,
    max_seconds: float,
    workers: int = 3,
    kill_every: tuple[float, float] = (1.0, 3.0),
    backlog: int = 0,
    enough: Callable[[KillLoopResult], bool] | None = None,
    seed: int = 7,
    max_worker_deaths: int = 1000,
) -> KillLoopResult:
    """Run `tasks` short tasks of `wasm` (stored, not compiled) on a fleet of `workers`
    `durable worker` processes over `cache_dir`, SIGKILLing one at random (and starting
    a new one at once) every `kill_every` seconds, until `enough(result)` or `max_seconds`.

    With `backlog`, more tasks are launched whenever fewer than that are waiting, so the
    fleet always has work (a throughput run).

    The kills come from outside, at random: a task that happens to be running each time
    would be quarantined at the workers' default `--max-worker-deaths`, so the fleet runs
    with `max_worker_deaths` (a bound no loop reaches) unless told otherwise.
    """
    workflow_hash = await store.put_workflow(wasm, name="coldstart")
    launched = await _launch(store, workflow_hash, tasks)
    rng = random.Random(seed)
    env = {"DURABLE_CACHE_DIR": str(cache_dir)}
    result = KillLoopResult(
        seconds=0.0, kills=0, launched=launched, completed=0, failed=0, compiles=0,
        artifact=False, first_completion=None,
    )  # fmt: skip
    started = time.monotonic()
    minute_mark = 0
    with worker_processes() as procs:

        def spawn(i: int) -> WorkerProcess:
            proc = WorkerProcess(
                worker_command(url, max_worker_deaths=max_worker_deaths),
                log_dir / f"kill-loop-worker-{i}.log",
                env=env,
            )
            procs.append(proc)
            return proc

        live = [spawn(i) for i in range(workers)]

        async def killer() -> None:
            # On its own, so that slow counting or launching never spaces the kills out.
            while True:
                await anyio.sleep(rng.uniform(*kill_every))
                victim = rng.randrange(len(live))
                live[victim].kill()
                live[victim] = spawn(len(procs))
                result.kills += 1

        async with anyio.create_task_group() as tg:
            tg.start_soon(killer)
            while True:
                result.seconds = time.monotonic() - started
                result.completed = (await state_counts(url)).get("complete", 0)
                if result.completed and result.first_completion is None:
                    result.first_completion = result.seconds
                    result.kills_before_first = result.kills
                while result.seconds >= 60 * (minute_mark + 1):
                    minute_mark += 1
                    result.per_minute.append(result.completed - sum(result.per_minute))
                if (enough is not None and enough(result)) or result.seconds >= max_seconds:
                    break
                if backlog and result.launched - result.completed < backlog:
                    result.launched += await _launch(store, workflow_hash, backlog)
                await anyio.sleep(0.1)
            tg.cancel_scope.cancel()
        for proc in live:
            proc.stop()
    counts = await state_counts(url)
    result.completed = counts.get("complete", 0)
    result.failed = counts.get("failed", 0) + counts.get("cancelled", 0)
    result.compiles = compiles_started(cache_dir, workflow_hash)
    result.artifact = CompiledEntry.of(cache_dir, workflow_hash).artifact.exists()
    return result


async def state_counts(url: str) -> dict[str, int]:
    """How many tasks are in each state (one query: the loop looks every 0.1 s)."""
    parsed = parse_url(url)
    if parsed.scheme == "postgres":
        rows = await pg_admin.fetch(url, "SELECT state, count(*) FROM durable.tasks GROUP BY 1")
    else:
        rows = await anyio.to_thread.run_sync(_sqlite_counts, parsed.path)
    return {str(state): int(cast("int", n)) for state, n in rows}


def _sqlite_counts(path: Path | None) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT state, count(*) FROM durable_task GROUP BY 1").fetchall()
    finally:
        conn.close()


async def _launch(store: Store, workflow_hash: str, count: int) -> int:
    for _ in range(count):
        await store.create_task(
            NewTask(name="coldstart", workflow_hash=workflow_hash, input="null", entry="main")
        )
    return count


# -- python -m benchmarks.coldstart -------------------------------------------------------------


async def _run_backend(backend: Backend, wasm: bytes, minutes: float, tmp: Path) -> KillLoopResult:
    async with backend.database() as (url, store):
        return await kill_loop(
            url=url,
            store=store,
            wasm=wasm,
            cache_dir=tmp / f"cache-{backend.name}",  # new: the workflow is compiled under kills
            log_dir=tmp,
            tasks=200,
            backlog=200,
            max_seconds=minutes * 60,
        )


def _summary(result: KillLoopResult) -> list[str]:
    steady = result.per_minute[1:] or result.per_minute
    first = "never" if result.first_completion is None else f"{result.first_completion:.1f} s"
    return [
        f"  ran {result.seconds:.0f} s, {result.kills} SIGKILLs "
        f"(one every {result.seconds / max(result.kills, 1):.1f} s)",
        f"  first task complete after {first}, {result.kills_before_first} SIGKILLs into "
        f"the compile; compiles started: {result.compiles}",
        f"  tasks complete: {result.completed:,} of {result.launched:,} launched; "
        f"failed or cancelled: {result.failed}",
        f"  tasks completed per minute: {', '.join(f'{n:,}' for n in result.per_minute)}",
        f"  median per minute after the first: {median(steady) if steady else 0:,.0f}",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.coldstart")
    parser.add_argument("--minutes", type=float, default=10.0, help="per backend")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    args = parser.parse_args(argv)
    wanted = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    if "postgres" in wanted and (reason := unavailable_reason()) is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    wasm = build_workflow(BENCH_WORKFLOW).wasm_path.read_bytes()
    load = os.getloadavg()[0]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="durable-coldstart-") as tmp_name:
        tmp = Path(tmp_name)
        for name in wanted:
            if name == "sqlite":
                backend: Backend = SQLiteBackend(tmp / "db")
                result = anyio.run(_run_backend, backend, wasm, args.minutes, tmp)
            else:
                with postgres_server() as server:
                    backend = PostgresBackend(server)
                    result = anyio.run(_run_backend, backend, wasm, args.minutes, tmp)
            results[name] = result.as_dict()
            print(f"{name}: 3 `durable worker` processes, one SIGKILLed every 1-3 s")
            print("\n".join(_summary(result)), flush=True)
    print(f"load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, allow_nan=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
