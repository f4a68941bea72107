"""Every limit fails only its own task, with one line that names the limit, and the
worker (a real `durable worker` process) runs the next task as if nothing happened."""

from __future__ import annotations

import json
from pathlib import Path

from durable.cli._output import describe_end
from durable.core.model import Task, TaskState
from tests.helpers import run_cli
from tests.integration.limit_tasks import Spec, build, launch, tasks

MEMORY = "the workflow needed more than its 32 MiB memory limit"


def _worker(db: Path, *args: str) -> None:
    """Run a worker process until idle; it must exit cleanly and quietly."""
    build()  # compiled here first, so that the worker's timing is its own
    proc = run_cli(
        "worker", "--db", str(db), "--exit-when-idle", "--concurrency", "1", *args, cwd=db.parent
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "panic" not in proc.stderr, proc.stderr


def _error(task: Task) -> tuple[str, str]:
    assert task.state is TaskState.FAILED, task
    error = json.loads(task.error or "{}")
    return error["kind"], error["message"]


def test_memory_exhaustion_names_the_memory_limit(tmp_path: Path) -> None:
    db = tmp_path / "memory.db"
    hogs = [
        Spec("hog"),  # allocates in chunks, without bound
        Spec("huge", 1 << 30),  # one object of 1 GiB at once
        # Huge inputs: the guest runs out while it turns its input into a Python string
        # (and aborts), or has no room to receive it at all.
        Spec("echo_size", "x" * 14_000_000),
        Spec("echo_size", "x" * 40_000_000),
    ]
    specs = []
    for n, hog in enumerate(hogs):
        specs += [hog, Spec("fine", n)]  # after each, the worker runs the next task
    ids = launch(db, specs)
    _worker(db, "--memory-limit", "32M")
    ended = tasks(db, ids)
    for hungry, fine in zip(ended[::2], ended[1::2], strict=True):
        kind, message = _error(hungry)
        assert kind == "MemoryLimitExceeded", (hungry.name, kind, message)
        assert message.startswith(MEMORY), message
        assert "\n" not in describe_end(hungry)
        assert fine.state is TaskState.COMPLETE, fine
    shown = run_cli("show", str(ids[0]), "--db", str(db), cwd=tmp_path)
    assert f"error     MemoryLimitExceeded: {MEMORY} (MemoryError)" in shown.stdout
    logs = run_cli("logs", str(ids[4]), "--db", str(db), cwd=tmp_path)
    assert f"MemoryLimitExceeded: {MEMORY}" in logs.stderr


def test_other_limits_fail_with_one_line_each(tmp_path: Path) -> None:
    db = tmp_path / "limits.db"
    failing = [
        Spec("spin", timeout=1.0),  # a CPU loop, stopped by the watchdog at its timeout
        Spec("chatty", 500),
        Spec("big_result", 2_000_000),
        Spec("deep", 200_000),
    ]
    specs = []
    for n, spec in enumerate(failing):
        specs += [spec, Spec("fine", n)]
    ids = launch(db, specs)
    _worker(db, "--max-events", "50", "--max-payload", "1M")
    ended = tasks(db, ids)
    assert all(t.state is TaskState.COMPLETE for t in ended[1::2])
    expected = [
        ("TimeoutError", f"task {ids[0]} passed its deadline ("),
        ("HostError", f"task {ids[2]} reached the limit of 50 events"),
        ("HostError", "step blob: recorded payload of 2000010 bytes is over the limit of "),
        ("StackOverflow", "the workflow ran out of stack: recursion too deep"),
    ]
    for task, (want_kind, want_start) in zip(ended[::2], expected, strict=True):
        kind, message = _error(task)
        assert (kind, message[: len(want_start)]) == (want_kind, want_start), message
        assert "\n" not in describe_end(task)
