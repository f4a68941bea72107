"""The shared interpreter: a Python workflow runs as data (a bundle of its source) in
one interpreter component per SDK version, built and compiled once per machine.

Real subprocesses, a real SQLite file, the real interpreter component."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from durable.bundle import decode, is_bundle
from tests.helpers import run_cli

FLOW = """\
import durable
import helper
from pkg import inner


@durable.workflow
def main(name):
    import email.mime.text  # a submodule imported late: there, as at the top
    durable.set_status("phase", "greeting")
    mime = type(email.mime.text.MIMEText("x")).__name__
    return {"greet": helper.greet(name), "inner": inner.VALUE, "mime": mime}
"""


HELPER = """\
def greet(name):
    return f"hello {name}"


def boom(x):
    raise ValueError(f"bad {x}")
"""


def _workflow(folder: Path, body: str = FLOW, name: str = "flow.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "helper.py").write_text(HELPER)
    (folder / "pkg").mkdir(exist_ok=True)
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "inner.py").write_text("VALUE = 42\n")
    source = folder / name
    source.write_text(body)
    return source


def _binaries(db: Path) -> dict[str, bytes]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT hash, wasm FROM durable_workflow").fetchall()
    return {str(h): bytes(w) for h, w in rows}


def _task_hash(db: Path, task: int) -> str:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT workflow_hash FROM durable_task WHERE id = ?", (task,))
        return str(row.fetchone()[0])


def test_a_workflow_runs_from_its_bundle_in_the_shared_interpreter(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    source = _workflow(tmp_path / "one")
    proc = run_cli("run", str(source), "--input", '"ada"', "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"greet": "hello ada", "inner": 42, "mime": "MIMEText"}
    # A second workflow, elsewhere: another bundle, the same interpreter.
    other = tmp_path / "two" / "other.py"
    other.parent.mkdir()
    other.write_text("import durable\n\n@durable.workflow\ndef main(x):\n    return x * 2\n")
    proc = run_cli("run", str(other), "--input", "21", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "42"
    stored = _binaries(db)
    first, second = decode(stored[_task_hash(db, 1)]), decode(stored[_task_hash(db, 2)])
    assert first.main == "flow"
    assert [name for name, _ in first.files] == [
        "flow.py",
        "helper.py",
        "pkg/__init__.py",
        "pkg/inner.py",
    ]
    assert first.interpreter == second.interpreter
    # The interpreter is stored once, beside the bundles, so any worker can run them.
    assert stored[first.interpreter].startswith(b"\0asm")
    assert sum(1 for data in stored.values() if not is_bundle(data)) == 1


def test_a_failure_names_the_users_files_and_lines(tmp_path: Path) -> None:
    body = "import durable\nimport helper\n\n\n@durable.workflow\ndef main(x):\n"
    body += "    return helper.boom(x)\n"
    source = _workflow(tmp_path / "f", body)
    proc = run_cli("run", str(source), "--input", "7", "--db", str(tmp_path / "t.db"), cwd=tmp_path)
    assert proc.returncode == 1
    assert 'File "flow.py", line 7, in main' in proc.stderr
    assert "    return helper.boom(x)" in proc.stderr  # the source line, from the bundle
    assert 'File "helper.py", line 6, in boom' in proc.stderr
    assert "ValueError: bad 7" in proc.stderr
    assert "importlib" not in proc.stderr
    assert "durable/_" not in proc.stderr


def test_an_error_at_import_is_the_tasks_failure(tmp_path: Path) -> None:
    body = "import durable\nraise RuntimeError('at import')\n\n\n@durable.workflow\ndef main(x):\n"
    body += "    return x\n"
    source = _workflow(tmp_path / "f", body)
    proc = run_cli("run", str(source), "--db", str(tmp_path / "t.db"), cwd=tmp_path)
    assert proc.returncode == 1
    assert 'File "flow.py", line 2, in <module>' in proc.stderr
    assert "task 1 failed: RuntimeError: at import" in proc.stderr
    assert "<frozen" not in proc.stderr


def test_replay_against_changed_code(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    source = _workflow(tmp_path / "r")
    proc = run_cli("run", str(source), "--input", '"x"', "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # The same calls in the same order, the file changed: the history replays.
    same = _workflow(tmp_path / "changed", FLOW.replace("mime = ", "# reworded\n    mime = "))
    proc = run_cli("replay", "1", str(same), "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Against its own code (the bundle it is pinned to), with no file given.
    proc = run_cli("replay", "1", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    # Another call where the history has the status: named, not replayed.
    moved = FLOW.replace('durable.set_status("phase", "greeting")', "durable.sleep(0)")
    other = _workflow(tmp_path / "moved", moved)
    proc = run_cli("replay", "1", str(other), "--db", str(db), cwd=tmp_path)
    assert proc.returncode != 0
    assert "task 1 diverges at event 0" in proc.stdout
    assert "found     'durable:timer.sleep'" in proc.stdout


def test_a_worker_fetches_a_bundle_it_has_not_seen(tmp_path: Path) -> None:
    """A worker whose machine has no copy of the bundle (another machine, in effect)
    gets it from the database, keeps it, and runs the task."""
    from durable.host.config import default_cache_dir

    db = tmp_path / "t.db"
    source = _workflow(tmp_path / "w")
    proc = run_cli(
        "launch", "greet", str(source), "--input", '"eve"', "--db", str(db), cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    digest = _task_hash(db, 1)
    kept = default_cache_dir() / "bundles" / f"{digest}.bundle"
    kept.unlink()  # as on a machine that never saw this workflow
    proc = run_cli("worker", "--exit-when-idle", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("show", "1", "--json", "--db", str(db), cwd=tmp_path)
    shown = json.loads(proc.stdout)["task"]
    assert shown["state"] == "complete", shown
    assert json.loads(shown["result"])["greet"] == "hello eve"
    assert kept.exists()


def test_a_bundle_for_another_interpreter_is_refused_in_one_line(tmp_path: Path) -> None:
    """Registering a bundle made by another version of durable, whose interpreter the
    store does not have, says which interpreter it needs; nothing is stored."""
    import anyio
    import pytest

    from durable.bundle import Bundle
    from durable.client import Client
    from durable.errors import ConfigurationError, NotFoundError

    bundle = Bundle(interpreter="0" * 64, main="m", files=(("m.py", "pass\n"),))

    async def register() -> None:
        async with await Client.open(f"sqlite:///{tmp_path / 't.db'}") as client:
            with pytest.raises(ConfigurationError, match=r"needs Python interpreter 0{12}, "):
                await client.register(bundle.encode(), name="m")
            with pytest.raises(NotFoundError):
                await client.store.find_workflow("m")

    anyio.run(register)


SPAWNS_BY_NAME = """\
import durable


@durable.workflow
def main(name):
    try:
        durable.spawn(name)
    except durable.SpawnError as exc:
        return str(exc)
    return "spawned"
"""


def test_the_interpreter_is_not_a_workflow_to_spawn_or_register(tmp_path: Path) -> None:
    """The interpreter component is stored under a name like a workflow's, but a guest
    cannot start it by that name, and no user workflow can take such a name."""
    db = tmp_path / "t.db"
    source = _workflow(tmp_path / "flow", body=SPAWNS_BY_NAME)
    first = run_cli(
        "run", str(source), "--input", '"nothing-by-this-name"', "--db", str(db), cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    with sqlite3.connect(db) as conn:
        (name,) = conn.execute(
            "SELECT name FROM durable_workflow WHERE name LIKE 'durable-interpreter-%'"
        ).fetchone()
    proc = run_cli("run", str(source), "--input", json.dumps(name), "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(first.stdout).replace(
        "nothing-by-this-name", name
    ), "refused as a workflow that does not exist"
    taken = _workflow(tmp_path / "taken", name=f"{name}.py")
    proc = run_cli("launch", "job", str(taken), "--db", str(db), cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "durable's own" in proc.stderr
