"""Run the benchmarks and print where durable stands against its targets.

    python -m benchmarks [--quick] [--backend sqlite|postgres|all] [--json OUT]

The Postgres figures run on a throwaway server started here, as the tests start theirs
(or on `DURABLE_TEST_POSTGRES_URL`). Without Postgres binaries the Postgres figures are
skipped with a warning, except under `CI=true`, where that is an error.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from benchmarks import coldstart, processes, scaling, waits, wake
from benchmarks import figures as f
from benchmarks.backends import Backend, PostgresBackend, SQLiteBackend
from benchmarks.figures import Bench, Figure, Sizes, progress
from durable.host import HostConfig, Runtime
from durable.testing.postgres import postgres_server, unavailable_reason


async def run_backend(backend: Backend, bench: Bench, sizes: Sizes, log_dir: Path) -> list[Figure]:
    """Measure every figure on one backend, in the order of the issue."""
    steps: list[tuple[str, Callable[..., Awaitable[list[Figure]]], tuple[Any, ...]]] = [
        ("(a)-(c) commits, recording, replay", f.recording_and_replay, ()),
        ("(d) trivial workflows/s", f.trivial_throughput, ()),
        ("(e) start latency", f.start_latency, ()),
        ("(e) start latency, worker process", processes.remote_start_latency, (log_dir,)),
        ("(k) launch -> Client.wait", waits.wait_figures, ()),
        ("(k) launch -> Client.wait, worker process", waits.remote_wait_figures, (log_dir,)),
        ("(k) launch -> Client.wait, a .py's bundle", waits.bundle_wait_figures, ()),
        ("(l) worker processes 1 and 2", scaling.process_scaling, (log_dir,)),
        ("(j) start from the artifact on disk", coldstart.start_from_disk, ()),
        ("(g) timer lateness", f.timer_lateness, ()),
        ("(m) wake a long task", wake.wake_figures, ()),
        ("(h) worker memory", processes.memory, (log_dir,)),
    ]
    if backend.name == "postgres":
        steps.append(("(f) failover after SIGKILL", processes.failover, (log_dir,)))
    out: list[Figure] = []
    for label, measure, extra in steps:
        started = time.perf_counter()
        out += await measure(backend, bench, sizes, *extra)
        progress(f"{backend.name}: {label} ({time.perf_counter() - started:.1f} s)")
    return sorted(out, key=lambda fig: fig.key)


def render(rows: list[Figure]) -> str:
    """A plain-text table: figure, value, target, met, and how it was measured."""
    lines = [f"{'':5} {'figure':46} {'value':>12}  {'target':14} {'met':4} note"]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        key = f"({r.key})"
        lines.append(
            f"{key:5} {r.name:46} {_value(r):>12}  {r.target:14} {met:4} {r.note}".rstrip()
        )
    return "\n".join(lines)


def _value(fig: Figure) -> str:
    if fig.unit == "s" and fig.value < 0.1:
        return f"{fig.value * 1000:,.1f} ms"
    if fig.unit in ("ms", "s"):
        return f"{fig.value:,.2f} {fig.unit}" if fig.value < 10 else f"{fig.value:,.1f} {fig.unit}"
    return f"{fig.value:,.0f} {fig.unit}"


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    sizes = f.QUICK if args.quick else f.FULL
    wanted = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    results: dict[str, list[Figure]] = {}
    skipped: dict[str, str] = {}
    if "postgres" in wanted and (reason := unavailable_reason()) is not None:
        if os.environ.get("CI", "").lower() == "true" or args.backend == "postgres":
            print(f"error: {reason}", file=sys.stderr)
            return 1
        print(f"WARNING: {reason}", file=sys.stderr)
        skipped["postgres"] = reason
        wanted.remove("postgres")
    started = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="durable-bench-") as tmp_name:
        tmp = Path(tmp_name)
        runtime = Runtime(HostConfig())
        try:
            bench = Bench.prepare(runtime)
            for name in wanted:
                if name == "sqlite":
                    backend: Backend = SQLiteBackend(tmp / "sqlite")
                    results[name] = anyio.run(run_backend, backend, bench, sizes, tmp)
                else:
                    with postgres_server() as server:
                        backend = PostgresBackend(server)
                        results[name] = anyio.run(run_backend, backend, bench, sizes, tmp)
        finally:
            runtime.close()
        common = f.build_and_load_times(tmp)
        progress("(i) build and load")
    elapsed = time.perf_counter() - started
    load = f"load average {load_before[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end"
    command = "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(f"durable benchmarks, {f.now_utc()}{' (quick)' if args.quick else ''}")
    print(f"machine: {f.machine()}; {load}")
    print(f"command: {command.strip()}   ({elapsed:.0f} s)")
    for name, rows in results.items():
        print(f"\n{name}\n{render(rows)}")
    for name, reason in skipped.items():
        print(f"\n{name}: not measured: {reason}")
    print(f"\nbackend-independent\n{render(common)}")
    if args.json:
        payload: dict[str, Any] = {
            "machine": f.machine(),
            "load": load,
            "when": f.now_utc(),
            "command": command.strip(),
            "quick": args.quick,
            "seconds": elapsed,
            "backends": {b: [r.as_dict() for r in rows] for b, rows in results.items()},
            "skipped": skipped,
            "common": [r.as_dict() for r in common],
        }
        args.json.write_text(json.dumps(payload, indent=2, allow_nan=True))
    bad = [r.id for rows in [*results.values(), common] for r in rows if not math.isfinite(r.value)]
    if bad:
        print(f"error: figures without a finite value: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
