"""Run the benchmarks.

    python -m benchmarks [--quick] [--backend sqlite|postgres|all] [--json OUT]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import anyio

from benchmarks import figures as f
from benchmarks.figures import Figure
from durable.builder import build_workflow
from durable.host import HostConfig, Runtime
from durable.storage import open_store


async def run_backend(backend: str, quick: bool, tmp: Path, runtime: Runtime) -> list[Figure]:
    """Measure every figure on one backend."""
    wasm = build_workflow(f.BENCH_WORKFLOW).wasm_path.read_bytes()
    wasm_hash = hashlib.sha256(wasm).hexdigest()
    runtime.cache.load(wasm_hash, wasm)
    out: list[Figure] = []
    if backend != "sqlite":
        raise SystemExit(f"backend {backend!r} is not measured yet")
    raw = f.raw_sqlite_commits(tmp / "raw.db", 1.0 if quick else 3.0)
    out.append(
        Figure(key="a", name="raw single-row commits/s (SQLite, FULL)", value=raw, unit="/s")
    )
    store = await open_store(f"sqlite:///{tmp / 'bench.db'}")
    try:
        await store.put_workflow(wasm)
        n = 200 if quick else 2000
        recorded, replay = await f.recorded_and_replay(store, runtime, wasm_hash, n)
        out.append(
            Figure(
                key="b",
                name=f"recorded events/s, one task, {n} steps",
                value=recorded,
                unit="/s",
                target=">= 50% of (a)",
                met=recorded >= 0.5 * raw,
            )
        )
        out.append(
            Figure(
                key="c",
                name="replay events/s",
                value=replay,
                unit="/s",
                target=">= 50,000",
                met=replay >= 50_000,
            )
        )
        count = 50 if quick else 500
        for conc in (1, 16):
            wps = await f.workflows_per_second(store, runtime, wasm_hash, count, conc)
            out.append(
                Figure(
                    key="d",
                    name=f"trivial workflows/s, concurrency {conc}",
                    value=wps,
                    unit="/s",
                    target=">= 500",
                    met=wps >= 500,
                )
            )
        p50, p99 = await f.start_latency(store, runtime, wasm_hash, 20 if quick else 200)
        out.append(Figure(key="e", name="launch -> first instruction p50", value=p50, unit="ms"))
        out.append(
            Figure(
                key="e",
                name="launch -> first instruction p99",
                value=p99,
                unit="ms",
                target="< 10 ms",
                met=p99 < 10,
            )
        )
        l50, l99 = await f.timer_lateness(store, runtime, wasm_hash, 10 if quick else 200)
        out.append(Figure(key="g", name="timer lateness p50", value=l50, unit="ms"))
        out.append(
            Figure(
                key="g",
                name="timer lateness p99",
                value=l99,
                unit="ms",
                target="< 200 ms",
                met=l99 < 200,
            )
        )
    finally:
        await store.close()
    return out


def render(rows: list[Figure]) -> str:
    """A plain-text table."""
    lines = [f"{'':3} {'figure':48} {'value':>14}  {'target':16} met"]
    for r in rows:
        value = f"{r.value:,.1f} {r.unit}"
        met = "" if r.met is None else ("yes" if r.met else "NO")
        lines.append(f"({r.key}) {r.name:48} {value:>14}  {r.target:16} {met}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="sqlite")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    results: dict[str, list[Figure]] = {}
    with tempfile.TemporaryDirectory(prefix="durable-bench-") as tmp:
        runtime = Runtime(HostConfig())
        try:
            for backend in backends:
                results[backend] = anyio.run(run_backend, backend, args.quick, Path(tmp), runtime)
            times = f.build_and_load_times(runtime.config)
        finally:
            runtime.close()
    print(f"durable benchmarks, {f.now_utc()}, {f.machine()}{' (quick)' if args.quick else ''}")
    for backend, rows in results.items():
        print(f"\n{backend}\n{render(rows)}")
    print(
        "\n(i) build: cold {build_cold:.2f} s, cached {build_cached:.4f} s; "
        "load: cold {load_cold:.2f} s, cached {load_cached:.4f} s".format(**times)
    )
    if args.json:
        payload = {
            "machine": f.machine(),
            "when": f.now_utc(),
            "quick": args.quick,
            "backends": {b: [vars(r) for r in rows] for b, rows in results.items()},
            "build_and_load_seconds": times,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
