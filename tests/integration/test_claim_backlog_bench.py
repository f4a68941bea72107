"""`python -m benchmarks.claim_backlog` keeps working: a small backlog on SQLite gives
every figure (speed is what the benchmark itself reports, not checked here)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_claim_backlog_benchmark_runs() -> None:
    args = ["--tasks", "2000", "--backend", "sqlite"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.claim_backlog", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("2000 sleeping + 2000 queued" in line for line in lines), done.stdout
    assert sum("p50" in line and "p99" in line for line in lines) == 2, done.stdout
