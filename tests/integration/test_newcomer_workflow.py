"""What a newcomer meets inside a workflow (issue 15): a real component, real CLI.

- the list of standard-library modules the import check allows is what the sandbox's
  Python really imports (measured by a probe workflow, so it cannot drift);
- a failed task's traceback names the user's files, not sandbox paths, hides the SDK's
  own frames, and says in one line when the sandbox refused a file or a variable;
- a child name that is not one line is refused by the host, whatever the guest SDK does;
- an unknown entry of a `.wasm` (which cannot be read before it runs) fails its task
  with one line, not a traceback.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from durable._sandbox_stdlib import MISSING, STDLIB
from tests.helpers import WORKFLOWS, run_cli

NEWCOMER = WORKFLOWS / "newcomer" / "newcomer.py"
HINT_FILES = "hint: a workflow runs in a sandbox with no files"
HINT_ENV = "hint: a workflow runs in a sandbox with no environment variables"

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("newcomer")


@pytest.fixture
def durable_in(folder: Path) -> Run:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, "--db", str(folder / "n.db"), cwd=folder, timeout=900)

    return run


def test_the_allowed_stdlib_is_what_the_sandbox_imports(durable_in: Run) -> None:
    proc = durable_in("run", str(NEWCOMER), "--entry", "modules")
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert set(seen["imported"]) == STDLIB, "regenerate durable/_sandbox_stdlib.py"
    assert set(seen["refused"]) == MISSING, "regenerate durable/_sandbox_stdlib.py"


def _failed_log(durable_in: Run, entry: str) -> str:
    proc = durable_in("run", str(NEWCOMER), "--entry", entry)
    assert proc.returncode == 1, proc.stderr
    task = re.search(r"^task (\d+)$", proc.stderr, re.M)
    assert task, proc.stderr
    return durable_in("logs", task.group(1)).stderr


def test_a_file_read_shows_the_users_files_and_a_hint(durable_in: Run) -> None:
    log = _failed_log(durable_in, "reads_file")
    assert 'File "newcomer.py", line' in log, log
    assert 'File "newcomer_helpers.py", line 7, in read_settings' in log, log
    assert "FileNotFoundError" in log
    assert "_runtime.py" not in log  # the SDK's own frames are hidden
    assert not re.search(r'File "/\d+/', log), log  # no sandbox paths
    assert log.rstrip().splitlines()[-1].startswith(HINT_FILES), log


def test_an_environment_read_gets_a_hint(durable_in: Run) -> None:
    log = _failed_log(durable_in, "reads_env")
    assert "KeyError: 'API_TOKEN'" in log, log
    assert log.rstrip().splitlines()[-1].startswith(HINT_ENV), log


def test_the_host_refuses_a_child_name_on_two_lines(durable_in: Run) -> None:
    proc = durable_in("run", str(NEWCOMER), "--entry", "bad_child_name")
    assert proc.returncode == 0, proc.stderr
    assert "cannot spawn the child: a task name must be one line" in json.loads(proc.stdout)
    listed = json.loads(durable_in("list", "--json").stdout)
    assert all("\n" not in task["name"] for task in listed)


def test_an_unknown_entry_of_a_wasm_is_one_line(durable_in: Run, folder: Path) -> None:
    wasm = folder / "newcomer.wasm"
    built = run_cli("build", str(NEWCOMER), "-o", str(wasm), cwd=folder, timeout=900)
    assert built.returncode == 0, built.stderr
    proc = durable_in("run", str(wasm), "--entry", "nosuch")
    # `durable build` records the entries in the component: refused before a task exists.
    assert proc.returncode == 2, proc.stderr
    assert "newcomer.wasm has no entry 'nosuch' (its entries:" in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
