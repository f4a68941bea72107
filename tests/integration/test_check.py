"""`durable check` and the `durable_check` pytest fixture: a deliberately broken
workflow is caught at its crash points; the examples pass."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from durable.loader import read_workflow
from durable.storage import open_store
from durable.testing.check import CheckReport, check_workflow
from tests.helpers import EXAMPLES, ROOT, WORKFLOWS, cli_env, run_cli
from tests.property.http_server import CountingServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def server() -> Iterator[CountingServer]:
    counting = CountingServer()
    counting.start()
    yield counting
    counting.stop()


def test_a_broken_workflow_is_caught_at_its_crash_points(
    tmp_path: Path, server: CountingServer
) -> None:
    url = f"{server.base}/notify"
    proc = run_cli(
        "check", str(WORKFLOWS / "check_broken.py"), "--input", json.dumps(url), cwd=tmp_path
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[-1] == "error: the workflow does not survive every crash point"
    out = proc.stdout
    # The step's request is sent again when the step's record is lost ...
    assert "crash before write 0 (append of events [0]): effect repeated: 2 HTTP requests" in out
    # ... and the attempt number, read outside the history, changes the result and
    # makes a replay end otherwise.
    assert 'result {"status": 200, "attempt": 2}, the reference\'s' in out
    assert "replay ends otherwise: the workflow read a value outside its history" in out
    assert out.splitlines()[-1] == "FAILED"
    # Only the reference run reached the server: the others got its recorded answer.
    assert server.snapshot()["/notify"] == 1


def test_live_http_sends_every_request(tmp_path: Path, server: CountingServer) -> None:
    url = f"{server.base}/live"
    proc = run_cli(
        "check",
        str(WORKFLOWS / "check_broken.py"),
        "--input",
        json.dumps(url),
        "--live",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert server.snapshot()["/live"] > 2


EXAMPLE_CHECKS = [
    ("hello_world.py", "world", "complete"),
    ("countdown.py", 2, "complete"),
    ("status.py", 3, "complete"),
    ("retry.py", 2, "complete"),
    ("fan_out.py", 3, "complete"),
    # Its tables first (the `setup` entry); each run moves 1 cent, so none runs dry.
    ("bank_transfer.py", {"from": "alice", "to": "bob", "cents": 1}, "complete"),
    ("approval.py", {"request": "deploy"}, "waits"),
]


@pytest.mark.parametrize(("example", "value", "end"), EXAMPLE_CHECKS)
async def test_the_examples_pass(tmp_path: Path, example: str, value: Any, end: str) -> None:
    wasm, _ = read_workflow(EXAMPLES / example)
    store = await open_store(str(tmp_path / "check.db"))
    try:
        if example == "bank_transfer.py":
            setup = await check_workflow(store, wasm, entry="setup")
            assert setup.ok, "\n".join(setup.lines())
        report = await check_workflow(store, wasm, input=json.dumps(value))
    finally:
        await store.close()
    assert isinstance(report, CheckReport)
    assert report.ok, "\n".join(report.lines())
    assert report.end == end
    assert report.writes >= 1
    assert report.runs == 2 + 2 * report.writes
    print(f"{example}: {report.lines()[0]}")  # the timings, for the record (-s)


USER_TESTS = """
import json

def test_hello_survives(durable_check):
    report = durable_check({hello!r}, "world")
    assert report.ok, report.lines()

def test_broken_is_caught(durable_check):
    report = durable_check({broken!r}, {url!r})
    assert not report.ok
    assert any("effect repeated" in d.what for d in report.differences)
"""


def test_the_pytest_fixture(tmp_path: Path, server: CountingServer) -> None:
    (tmp_path / "test_user.py").write_text(
        USER_TESTS.format(
            hello=str(EXAMPLES / "hello_world.py"),
            broken=str(WORKFLOWS / "check_broken.py"),
            url=f"{server.base}/fixture",
        )
    )
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"]
    if "durable" not in {ep.name for ep in entry_points(group="pytest11")}:
        args[3:3] = ["-p", "durable.testing.pytest_plugin"]  # an install older than the plugin
    import subprocess

    proc = subprocess.run(
        args, cwd=tmp_path, env=cli_env(), capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout
    assert ROOT.exists()
