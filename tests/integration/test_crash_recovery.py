"""Kill -9 in the middle of a workflow, resume it, and check nothing is lost or doubled."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.helpers import EXAMPLES, WORKFLOWS, kill_and_resume, run_cli


def test_countdown_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "countdown.db"
    run = kill_and_resume(EXAMPLES / "countdown.py", db, tmp_path, lines_before=4)
    assert run.worker.returncode == 0, run.worker.stderr
    lines = run.logs
    assert len(lines) == 10, lines
    numbers = [int(line.split()[0]) for line in lines]
    assert numbers == list(range(10, 0, -1))  # each line once, in order
    # Lines printed before the kill are byte-identical: replayed clock and randomness.
    assert lines[: len(run.before)] == run.before
    with sqlite3.connect(db) as conn:
        state, result, attempts = conn.execute(
            "SELECT state, result, attempts FROM durable_task WHERE id = 1"
        ).fetchone()
        indexes = [
            row[0]
            for row in conn.execute("SELECT idx FROM durable_event WHERE task_id = 1 ORDER BY idx")
        ]
    assert (state, result) == ("complete", '"liftoff"')
    assert attempts == 2
    assert indexes == list(range(len(indexes)))  # gap-free, each index once


def test_changed_behaviour_fails_with_nondeterminism(tmp_path: Path) -> None:
    db = tmp_path / "nd.db"
    proc = run_cli(
        "run",
        str(WORKFLOWS / "flaky_branch.py"),
        "--db",
        str(db),
        "--suspend-after",
        "0.5",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "task 1 failed: NondeterminismError" in proc.stderr
    assert "event 0" in proc.stderr
    assert "'step first'" in proc.stderr
    assert "'step second'" in proc.stderr
    with sqlite3.connect(db) as conn:
        events = conn.execute(
            "SELECT idx, label FROM durable_event WHERE task_id = 1 ORDER BY idx"
        ).fetchall()
        state = conn.execute("SELECT state FROM durable_task WHERE id = 1").fetchone()[0]
    # The history is kept as it was recorded.
    assert events == [(0, "step first"), (1, "durable:timer.sleep")]
    assert state == "failed"
    logs = run_cli("logs", "1", "--db", str(db), cwd=tmp_path)
    assert "NondeterminismError" in logs.stderr
