"""What `durable worker -v` and `durable run`'s embedded worker say they run (issue 15)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import EXAMPLES, run_cli

HELLO = str(EXAMPLES / "hello_world.py")


def test_worker_verbose_logs_every_attempt(tmp_path: Path) -> None:
    launched = run_cli("launch", "greet", HELLO, "--input", '"v"', cwd=tmp_path)
    assert launched.returncode == 0, launched.stderr
    proc = run_cli("worker", "--exit-when-idle", "-v", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert "durable: task 1 (greet): attempt 1 started" in lines, proc.stderr
    assert "durable: task 1: attempt 1 completed" in lines, proc.stderr
    quiet = run_cli("worker", "--exit-when-idle", cwd=tmp_path)
    assert "attempt" not in quiet.stderr


def test_run_says_which_other_tasks_its_worker_runs(tmp_path: Path) -> None:
    queued = run_cli("launch", "queued", HELLO, "--input", '"early"', cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    proc = run_cli("run", HELLO, "--input", '"me"', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Hello, me!" in proc.stdout
    assert "Hello, early!" not in proc.stdout  # another task's output is not streamed
    assert (
        "durable: the embedded worker also runs task 1 (queued), found in this database "
        "(--db chooses a database of its own)"
    ) in proc.stderr.splitlines(), proc.stderr
    alone = run_cli("run", HELLO, "--input", '"alone"', "--db", "own.db", cwd=tmp_path)
    assert "also runs" not in alone.stderr
