"""`durable run`, `durable worker` and `durable logs` as a user runs them: subprocesses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.helpers import EXAMPLES, WORKFLOWS, run_cli, without_progress


def _task_count(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM durable_task").fetchone()[0])


def test_hello_world_prints_greeting(tmp_path: Path) -> None:
    proc = run_cli("run", str(EXAMPLES / "hello_world.py"), "--input", '"world"', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello, world!\n"
    assert "task 1" in proc.stderr.splitlines()  # after a first build's progress lines
    # The default database is a file under the current directory.
    assert (tmp_path / ".durable" / "durable.db").exists()


def test_logs_prints_the_whole_log(tmp_path: Path) -> None:
    run_cli("run", str(EXAMPLES / "hello_world.py"), "--input", '"you"', cwd=tmp_path)
    proc = run_cli("logs", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello, you!\n"


def test_result_is_printed_on_stdout(tmp_path: Path) -> None:
    proc = run_cli(
        "run", str(WORKFLOWS / "steps.py"), "--entry", "loop", "--input", "5", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "10"


def test_failing_workflow_exits_1_with_traceback_in_log(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    proc = run_cli(
        "run", str(WORKFLOWS / "failing.py"), "--input", "7", "--db", str(db), cwd=tmp_path
    )
    assert proc.returncode == 1
    assert "task 1 failed: ValueError: bad value 7" in proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr  # streamed from the log
    logs = run_cli("logs", "1", "--db", str(db), cwd=tmp_path)
    assert logs.stdout == "about to fail\n"
    assert "in helper" in logs.stderr
    assert "ValueError: bad value 7" in logs.stderr
    assert "panicked" not in logs.stderr  # componentize-py's runtime note is dropped
    # The worker carries on: the next task in the same database runs fine.
    ok = run_cli(
        "run", str(EXAMPLES / "hello_world.py"), "--input", '"again"', "--db", str(db), cwd=tmp_path
    )
    assert ok.returncode == 0
    assert ok.stdout == "Hello, again!\n"


def _assert_one_line_error(proc: object, needle: str) -> None:
    from subprocess import CompletedProcess

    assert isinstance(proc, CompletedProcess)
    assert proc.returncode != 0
    # Besides the error, a first build that took over a second says it started.
    lines = without_progress(proc.stderr)
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle in lines[0], lines[0]


def test_missing_file(tmp_path: Path) -> None:
    proc = run_cli("run", "nope.py", cwd=tmp_path)
    _assert_one_line_error(proc, "nope.py: no such file")
    assert _task_count(tmp_path / ".durable" / "durable.db") == 0


def test_file_that_is_neither_python_nor_wasm(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    proc = run_cli("run", str(bad), cwd=tmp_path)
    _assert_one_line_error(proc, "neither a Python workflow (.py) nor a WebAssembly component")
    assert not (tmp_path / ".durable").exists()


def test_core_wasm_module_is_refused(tmp_path: Path) -> None:
    core = tmp_path / "core.wasm"
    core.write_bytes(b"\0asm\x01\x00\x00\x00")
    proc = run_cli("run", str(core), cwd=tmp_path)
    _assert_one_line_error(proc, "core WebAssembly module, not a component")
    assert not (tmp_path / ".durable").exists()


def test_component_for_another_world_names_what_is_missing(
    tmp_path: Path, other_world_wasm: Path
) -> None:
    proc = run_cli("run", str(other_world_wasm), cwd=tmp_path)
    _assert_one_line_error(proc, "does not export `run`")
    assert "greet" in proc.stderr
    assert not (tmp_path / ".durable").exists()


def test_syntax_error_shows_message_and_line(tmp_path: Path) -> None:
    src = tmp_path / "broken.py"
    src.write_text("import durable\n\n@durable.workflow\ndef main(x)\n    return x\n")
    proc = run_cli("run", str(src), cwd=tmp_path)
    _assert_one_line_error(proc, "broken.py:4")
    assert "SyntaxError" in proc.stderr
    assert not (tmp_path / ".durable").exists()


def test_invalid_input_json(tmp_path: Path) -> None:
    proc = run_cli("run", str(EXAMPLES / "hello_world.py"), "--input", "{nope", cwd=tmp_path)
    _assert_one_line_error(proc, "--input is not valid JSON")
    assert not (tmp_path / ".durable").exists()


@pytest.mark.parametrize(
    ("db", "named"), [("/proc/durable/x.db", "/proc/durable"), ("/dev/null/x.db", "/dev/null")]
)
def test_unwritable_database_path(tmp_path: Path, db: str, named: str) -> None:
    proc = run_cli(
        "run", str(EXAMPLES / "hello_world.py"), "--input", '"x"', "--db", db, cwd=tmp_path
    )
    _assert_one_line_error(proc, named)


def test_import_error_in_workflow_is_one_line(tmp_path: Path) -> None:
    src = tmp_path / "needs_numpy.py"
    src.write_text(
        "import durable\nimport not_a_module_anywhere\n\n"
        "@durable.workflow\ndef main(x):\n    return x\n"
    )
    proc = run_cli("run", str(src), cwd=tmp_path)
    _assert_one_line_error(proc, "needs_numpy.py:2: no module named 'not_a_module_anywhere'")


def test_build_then_run_the_wasm(tmp_path: Path) -> None:
    out = tmp_path / "hello.wasm"
    proc = run_cli("build", str(EXAMPLES / "hello_world.py"), "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert out.read_bytes()[:8] == b"\0asm\x0d\x00\x01\x00"  # a component
    proc = run_cli("run", str(out), "--input", '"wasm"', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello, wasm!\n"


def test_guest_has_no_filesystem_environment_or_network(tmp_path: Path) -> None:
    import json

    proc = run_cli(
        "run", str(WORKFLOWS / "sandbox.py"), cwd=tmp_path, env={"SECRET_TOKEN": "s3cr3t"}
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["read_file"].startswith("refused"), seen
    assert seen["list_root"].startswith("refused"), seen
    assert seen["environ"] == {}
    assert seen["argv_env"] == "allowed: None"
    assert seen["socket"].startswith("refused"), seen


def test_host_only_modules_never_enter_the_component(tmp_path: Path) -> None:
    # aiosqlite is installed on the host; the guest's module path must not see it.
    src = tmp_path / "leaky.py"
    # Imported by name at run time, so the check before the build cannot see it: the
    # build itself must fail.
    src.write_text(
        "import importlib\nimport durable\nimportlib.import_module('aiosqlite')\n\n"
        "@durable.workflow\ndef main(x):\n    return x\n"
    )
    proc = run_cli("build", str(src), cwd=tmp_path)
    _assert_one_line_error(proc, "No module named 'aiosqlite'")
