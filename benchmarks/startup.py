"""Start-up: the wall time of `durable --version`, `durable --help` and a cached
`durable run` of hello world, each a fresh process, as a user types them::

    python -m benchmarks.startup [--runs 7] [--json OUT]

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
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HELLO = REPO_ROOT / "examples" / "hello_world.py"
#: Seconds each command should take at most (the median of the runs).
TARGETS = {"version": 0.2, "help": 0.2, "run_cached": 0.5}


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
            runs_of = [_timed(argv, work) for _ in range(runs)]
            walls = [wall for wall, _ in runs_of]
            out[name] = {
                "median_s": round(statistics.median(walls), 3),
                "best_s": round(min(walls), 3),
                # On a busy machine the wall time is mostly waiting for a core.
                "cpu_median_s": round(statistics.median(cpu for _, cpu in runs_of), 3),
                "target_s": TARGETS[name],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="processes per command")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = measure(max(1, args.runs))
    for name, row in figures.items():
        verdict = "ok" if row["median_s"] <= row["target_s"] else "over target"
        print(
            f"{name:12} median {row['median_s']:.3f} s  best {row['best_s']:.3f} s  "
            f"cpu {row['cpu_median_s']:.3f} s  (target {row['target_s']} s: {verdict})"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
