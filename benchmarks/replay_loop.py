"""Replay figure (c)'s history again and again in one process, for a profiler.

    python -m benchmarks.replay_loop [--backend sqlite|postgres] [--steps N] [--seconds S]

Records one `steps` task as figure (c) does, then replays its history in replay-only
attempts until `--seconds` have passed, printing each replay's events/s, by the wall
clock as (c) counts them and by the CPU time of the thread that replays: on a busy
machine the second moves much less (it leaves out the time the thread waits for a
core), so two versions of the code compare best by it. Attach a sampling profiler to
the pid it prints (`py-spy record --pid PID ...`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from benchmarks import figures as f
from benchmarks.backends import Backend, MeteredStore, PostgresBackend, SQLiteBackend
from durable.core.model import Event, Task
from durable.host import HostConfig, Runtime
from durable.testing.postgres import postgres_server


async def _loop(
    backend: Backend, bench: f.Bench, steps: int, seconds: float
) -> tuple[list[float], list[float]]:
    async with backend.database() as (_, store):
        await store.put_workflow(bench.wasm)
        task, _ = await f._record_once(MeteredStore(store), bench, steps)
        history = await store.load_history(task.id)
    rates: list[float] = []
    cpu_rates: list[float] = []
    print(f"pid {os.getpid()}: replaying {len(history):,} events", file=sys.stderr, flush=True)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or not rates:
        wall, cpu = await anyio.to_thread.run_sync(_replay, bench, task, history)
        rates.append(len(history) / wall)
        cpu_rates.append(len(history) / cpu)
        print(f"{rates[-1]:,.0f} events/s, {cpu_rates[-1]:,.0f} events/CPU-s", flush=True)
    return rates, cpu_rates


def _replay(bench: f.Bench, task: Task, history: list[Event]) -> tuple[float, float]:
    """One replay-only attempt as (c) makes it, on this thread: (wall, CPU) seconds."""
    component = bench.runtime.cache.load(bench.wasm_hash)
    ctx = f.replay_context(bench, task, history)
    cpu, wall = time.thread_time(), time.perf_counter()
    end = bench.runtime.run(component, ctx)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    f.check_replayed(end)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    """Record, then replay in a loop; print the median rates."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay_loop")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    runtime = Runtime(HostConfig())
    bench = f.Bench.prepare(runtime)
    with tempfile.TemporaryDirectory(prefix="durable-replay-") as tmp:
        server: AbstractContextManager[Any] = (
            postgres_server() if args.backend == "postgres" else nullcontext()
        )
        with server as handle:
            backend: Backend = (
                PostgresBackend(handle) if handle is not None else SQLiteBackend(Path(tmp))
            )
            rates, cpu_rates = anyio.run(_loop, backend, bench, args.steps, args.seconds)
    print(
        f"median {statistics.median(rates):,.0f} events/s over {len(rates)} replays "
        f"({statistics.median(cpu_rates):,.0f} events per CPU second of the replaying thread)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
