"""Start-up: the wall time of `durable --version`, `durable --help` and a cached
`durable run` of hello world, each a fresh process, as a user types them; and of a
NEW workflow's first run and a replay against changed code::

    python -m benchmarks.startup [--runs 7] [--before-runs 1] [--json OUT]

New code (issue 14, target 1: at most 1.5 s wall): each timed run is hello world with
a comment no run had before, so it is a workflow this machine never saw.
`run_new` runs it into a database that has the shared interpreter already (a user's
second workflow); `run_new_fresh_db` into a new database, which stores the interpreter
once (about 40 MB); `replay_changed` replays task 1 against it. `before_run_new` is what
every new workflow cost before the shared interpreter (and what `durable build -o`
still costs): a component of its own, built by componentize-py and compiled, then run.

Targets (issue 15, item 19): under 0.2 s for `--version` and `--help`, under 0.5 s for
the cached run. The CPU time (user + system) is reported too: on a busy machine the
wall time is mostly waiting for a core. The workflow is built and compiled first (not
timed), so
what is timed is Python's start, the imports, opening a SQLite file and the run itself.
`python -X importtime -m durable --version` shows where the import time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HELLO = REPO_ROOT / "examples" / "hello_world.py"
#: Seconds each command should take at most (the median of the runs).
TARGETS = {
    "version": 0.2,
    "help": 0.2,
    "run_cached": 0.5,
    "run_new": 1.5,
    "run_new_fresh_db": 1.5,
    "replay_changed": 1.5,
    "before_run_new": 1.5,
}


def _durable() -> list[str]:
    found = shutil.which("durable", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "durable"]


def _env() -> dict[str, str]:
    """This environment, but with bytecode caching on, as an installed package has it:
    the first (untimed) run writes the `.pyc` files the timed ones read."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("DURABLE_DATABASE_URL", None)
    return env


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """The wall time and the CPU time (user + system) of one run of `argv`."""
    cpu = _cpu()
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed, _cpu() - cpu


def measure(runs: int) -> dict[str, dict[str, float]]:
    """Median and best wall time of each command over `runs` fresh processes."""
    durable = _durable()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "startup.db"
        commands = {
            "version": [*durable, "--version"],
            "help": [*durable, "--help"],
            "run_cached": [*durable, "run", str(HELLO), "--db", str(db)],
        }
        for argv in commands.values():  # builds and compiles; writes bytecode caches
            _timed(argv, work)
        out: dict[str, dict[str, float]] = {}
        for name, argv in commands.items():
            out[name] = _row(name, [_timed(argv, work) for _ in range(runs)])
    return out


def _row(name: str, runs_of: list[tuple[float, float]]) -> dict[str, float]:
    walls = [wall for wall, _ in runs_of]
    return {
        "median_s": round(statistics.median(walls), 3),
        "best_s": round(min(walls), 3),
        # On a busy machine the wall time is mostly waiting for a core.
        "cpu_median_s": round(statistics.median(cpu for _, cpu in runs_of), 3),
        "target_s": TARGETS[name],
    }


def measure_new(runs: int, before_runs: int) -> dict[str, dict[str, float]]:
    """New and changed code: median and best wall time over fresh processes."""
    durable = _durable()
    hello = HELLO.read_text()
    counter = iter(range(1_000_000))

    def new_workflow(work: Path) -> Path:
        n = next(counter)
        folder = work / f"new{n}"
        folder.mkdir()
        path = folder / "hello_world.py"
        path.write_text(f"{hello}\n# a new workflow: {n} {time.time_ns()}\n")
        return path

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db = work / "new.db"
        # Warm: the interpreter is built and compiled, the database has it and task 1.
        _timed([*durable, "run", str(new_workflow(work)), "--db", str(db)], work)
        out: dict[str, dict[str, float]] = {}
        plans: dict[str, Callable[[], list[str]]] = {
            "run_new": lambda: [*durable, "run", str(new_workflow(work)), "--db", str(db)],
            "run_new_fresh_db": lambda: [
                *durable,
                "run",
                str(new_workflow(work)),
                "--db",
                str(work / f"fresh{next(counter)}.db"),
            ],
            "replay_changed": lambda: [
                *durable,
                "replay",
                "1",
                str(new_workflow(work)),
                "--db",
                str(db),
            ],
        }
        for name, plan in plans.items():
            out[name] = _row(name, [_timed(plan(), work) for _ in range(runs)])
        befores = []
        for _ in range(before_runs):
            wasm = work / f"standalone{next(counter)}.wasm"
            build = _timed([*durable, "build", str(new_workflow(work)), "-o", str(wasm)], work)
            run = _timed([*durable, "run", str(wasm), "--db", str(db)], work)
            befores.append((build[0] + run[0], build[1] + run[1]))
        if befores:
            out["before_run_new"] = _row("before_run_new", befores)
            out["before_run_new"]["ratio_to_run_new"] = round(
                out["before_run_new"]["median_s"] / out["run_new"]["median_s"], 1
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="processes per command")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--before-runs",
        type=int,
        default=1,
        help="runs of the per-workflow component path (each builds and compiles: minutes)",
    )
    args = parser.parse_args()
    figures = measure(max(1, args.runs))
    figures.update(measure_new(max(1, args.runs), max(0, args.before_runs)))
    for name, row in figures.items():
        verdict = "ok" if row["median_s"] <= row["target_s"] else "over target"
        ratio = f"  ({row['ratio_to_run_new']}x run_new)" if "ratio_to_run_new" in row else ""
        print(
            f"{name:16} median {row['median_s']:.3f} s  best {row['best_s']:.3f} s  "
            f"cpu {row['cpu_median_s']:.3f} s  (target {row['target_s']} s: {verdict}){ratio}"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
