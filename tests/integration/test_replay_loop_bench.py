"""`python -m benchmarks.replay_loop` keeps working: it records a small task, replays its
history and prints its rates per replay, by the wall clock and by the replaying thread's
CPU time (speed is not checked here)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_replay_loop_replays_and_reports() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.replay_loop", "--steps", "50", "--seconds", "0"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "replaying 50 events" in done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"[\d,]+ events/s, [\d,]+ events/CPU-s", lines[0]), done.stdout
    median = r"median [\d,]+ events/s over 1 replays \([\d,]+ events per CPU second of the"
    assert re.fullmatch(median + r" replaying thread\)", lines[-1]), done.stdout
