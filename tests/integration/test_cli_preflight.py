"""A newcomer's mistakes, caught by the CLI before a build or a write (issue 15).

Each case runs the real `durable` in a subprocess with a fresh, empty build cache: a
check made before the build leaves that cache empty, and no database file appears.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from durable.entry_section import read_entries, section
from tests.helpers import EXAMPLES, built, run_cli

FAN_OUT = EXAMPLES / "fan_out.py"  # entries: main, square


def _isolated(tmp_path: Path) -> dict[str, str]:
    return {"DURABLE_CACHE_DIR": str(tmp_path / "cache")}


def _assert_refused_early(proc: subprocess.CompletedProcess[str], tmp_path: Path) -> str:
    """The command exited 2 with one error line, and wrote neither a build nor a database."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert not (tmp_path / "cache").exists(), "a build started"
    assert not (tmp_path / ".durable").exists(), "a database was created"
    assert proc.stdout == ""
    return errors[0]


@pytest.mark.parametrize("command", ["run", "launch"])
def test_an_unknown_entry_is_refused_with_the_known_ones(command: str, tmp_path: Path) -> None:
    args = ["run", str(FAN_OUT)] if command == "run" else ["launch", "t", str(FAN_OUT)]
    proc = run_cli(*args, "--entry", "nosuch", cwd=tmp_path, env=_isolated(tmp_path))
    error = _assert_refused_early(proc, tmp_path)
    assert "fan_out.py has no entry 'nosuch' (its entries: main, square)" in error


def test_a_file_with_no_entry_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "nothing.py"
    src.write_text("import durable\n\n\ndef helper(x):\n    return x\n")
    proc = run_cli("launch", "t", str(src), cwd=tmp_path, env=_isolated(tmp_path))
    error = _assert_refused_early(proc, tmp_path)
    assert "decorate the function a task runs with @durable.workflow" in error


def test_an_import_the_sandbox_lacks_is_refused_before_the_build(tmp_path: Path) -> None:
    src = tmp_path / "fetch.py"
    src.write_text(
        "import durable\nimport requests\n\n\n"
        "@durable.workflow\ndef main(url):\n    return requests.get(url).text\n"
    )
    proc = run_cli("run", str(src), cwd=tmp_path, env=_isolated(tmp_path))
    error = _assert_refused_early(proc, tmp_path)
    assert "fetch.py:2: no module named 'requests' in the sandbox" in error
    assert "durable.http" in error
    assert "the standard library, the .py files and packages beside fetch.py" in error


def test_an_undecorated_main_is_said_before_anything_else(tmp_path: Path) -> None:
    src = tmp_path / "plain.py"
    # The import refusal stops it before the build; the note comes first.
    src.write_text("import ctypes\n\n\ndef main(x):\n    return x\n")
    proc = run_cli("launch", "t", str(src), cwd=tmp_path, env=_isolated(tmp_path))
    _assert_refused_early(proc, tmp_path)
    first = proc.stderr.splitlines()[0]
    assert first == (
        "durable: plain.py has no @durable.workflow function: running its main() "
        "(decorate it with @durable.workflow to say so)"
    )
    assert "the sandbox's Python has no 'ctypes' module" in proc.stderr


@pytest.mark.parametrize(
    "args",
    [["list"], ["show", "1"], ["logs", "1"], ["cancel", "1"], ["notify", "1", "go"]],
    ids=lambda args: args[0],
)
def test_read_only_commands_create_no_database(args: list[str], tmp_path: Path) -> None:
    proc = run_cli(*args, cwd=tmp_path)
    assert proc.returncode != 0
    assert proc.stderr.startswith("error: no database at .durable/durable.db (the default")
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert not (tmp_path / ".durable").exists()
    named = run_cli(*args, "--db", str(tmp_path / "other.db"), cwd=tmp_path)
    assert named.returncode != 0
    assert f"no database at {tmp_path / 'other.db'}:" in named.stderr
    assert not (tmp_path / "other.db").exists()


def test_run_timeout_fails_the_task(tmp_path: Path) -> None:
    proc = run_cli("run", str(EXAMPLES / "countdown.py"), "--timeout", "2", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert "TimeoutError" in proc.stderr
    assert "passed its deadline" in proc.stderr
    assert "liftoff" not in proc.stdout


def test_launch_timeout_sets_the_deadline(tmp_path: Path) -> None:
    proc = run_cli(
        "launch", "greet", str(EXAMPLES / "hello_world.py"), "--timeout", "30", cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    (task,) = json.loads(run_cli("list", "--json", cwd=tmp_path).stdout)
    assert task["deadline_at"] is not None
    hello = str(EXAMPLES / "hello_world.py")
    bad = run_cli("launch", "greet", hello, "--timeout", "0", cwd=tmp_path)
    assert bad.returncode == 2
    assert "--timeout" in bad.stderr


def test_a_task_name_on_two_lines_is_refused(tmp_path: Path) -> None:
    hello = str(EXAMPLES / "hello_world.py")
    for args in (["launch", "two\nlines", hello], ["run", hello, "--name", "\x1b[31mred"]):
        proc = run_cli(*args, cwd=tmp_path, env=_isolated(tmp_path))
        error = _assert_refused_early(proc, tmp_path)
        assert "a task name must be one line of printable text" in error


@pytest.mark.parametrize("command", ["run", "launch"])
def test_an_unknown_entry_of_a_wasm_is_refused_with_the_known_ones(
    command: str, tmp_path: Path
) -> None:
    wasm, _ = built(FAN_OUT)  # `durable build` records the entries in the component
    component = tmp_path / "fan_out.wasm"
    component.write_bytes(wasm)
    args = ["run", str(component)] if command == "run" else ["launch", "t", str(component)]
    proc = run_cli(*args, "--entry", "nosuch", cwd=tmp_path, env=_isolated(tmp_path))
    error = _assert_refused_early(proc, tmp_path)
    assert "fan_out.wasm has no entry 'nosuch' (its entries: main, square)" in error


def test_a_wasm_that_records_no_entries_is_not_refused_early(tmp_path: Path) -> None:
    wasm, _ = built(FAN_OUT)
    recorded = read_entries(wasm)
    assert recorded is not None
    assert recorded[0] == ["main", "square"]
    bare = wasm[: -len(section(*recorded))]  # the section is the component's last
    assert read_entries(bare) is None
    component = tmp_path / "other.wasm"
    component.write_bytes(bare)
    proc = run_cli("launch", "t", str(component), "--entry", "nosuch", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # queued: its task finds out (no list to check)
