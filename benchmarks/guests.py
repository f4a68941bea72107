"""Guests in other languages: component sizes, run times, and the check before compiling.

    python -m benchmarks.guests [--repeat N]

Reports, for the JavaScript hello world (`examples/js/hello.js`), the hand-written
WAT guest (`tests/guests/hello.wat`) and the Python hello world: the component's size;
the time `durable run` takes the first time on this machine (a fresh cache directory:
componentize-js already installed, the build taken from the shared cache, so this is
the compile) and once cached; and the median time of the check before compiling
(`durable.component_check.check_component`), which must stay well under a second
whatever the component's size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from durable.builder import build_workflow
from durable.component_check import check_component
from durable.js_build import build_js_workflow

ROOT = Path(__file__).resolve().parent.parent


def _run_seconds(workflow: Path, cache: Path, work: Path) -> float:
    env = {**os.environ, "DURABLE_CACHE_DIR": str(cache)}
    env.pop("DURABLE_DATABASE_URL", None)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "durable", "run", str(workflow), "--input", '"bench"'],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def main() -> None:
    """Measure and print one line per guest."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=20, help="checks per component")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.guests.wat import build_hello_wat

    with tempfile.TemporaryDirectory(prefix="durable-bench-guests-") as tmp:
        work = Path(tmp)
        guests = {
            "javascript": build_js_workflow(ROOT / "examples" / "js" / "hello.js").wasm_path,
            "wat": build_hello_wat(work),
            "python": build_workflow(ROOT / "examples" / "hello_world.py").wasm_path,
        }
        print(f"{'guest':<11} {'size':>9} {'check p50':>10} {'first run':>10} {'cached run':>11}")
        for name, path in guests.items():
            wasm = path.read_bytes()
            check_component(wasm)  # the host's own WIT, read once per process
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                check_component(wasm)
                times.append(time.perf_counter() - started)
            # A fresh cache directory with only the builds: `durable run` compiles.
            cache = work / f"cache-{name}"
            (cache / "builds").mkdir(parents=True)
            copy = work / f"{name}.wasm"
            shutil.copyfile(path, copy)
            first = _run_seconds(copy, cache, work)
            cached = _run_seconds(copy, cache, work)
            print(
                f"{name:<11} {len(wasm) / 1e6:>7.2f}MB {statistics.median(times) * 1e3:>8.1f}ms "
                f"{first:>9.1f}s {cached:>10.2f}s"
            )


if __name__ == "__main__":
    main()
