"""`durable debug`: a task's history replayed in CPython, stopping at a breakpoint with
pdb driven non-interactively, and the first divergence reported as replay does."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import WORKFLOWS, cli_env, durable_cmd, run_cli


def test_pdb_stops_in_the_workflow_with_the_recorded_values(tmp_path: Path) -> None:
    source = tmp_path / "debug_me.py"
    shutil.copyfile(WORKFLOWS / "debug_me.py", source)
    db = str(tmp_path / "debug.db")
    ran = run_cli("run", str(source), "--input", '"apple"', "--db", db, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    recorded = json.loads(ran.stdout.splitlines()[-1])

    proc = subprocess.run(
        durable_cmd("debug", "1", str(source), "--db", db),
        cwd=tmp_path,
        env=cli_env(DEBUG_ME="1"),
        input="p cents, started\nwhere\nc\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    # pdb stopped in the workflow's own frame, at the line after the breakpoint ...
    assert f"> {source}(24)main()" in out, out
    assert '-> durable.set_status("cents", cents)' in out
    # ... where the step's result and the clock reading are the recorded ones.
    assert f"(Pdb) (500, {recorded['started']!r})" in out, out
    head, _, result = proc.stderr.splitlines()[-1].partition(" then completes: ")
    assert head == "task 1 replays cleanly (3 events),"
    replayed = json.loads(result)
    # Random draws are CPython's own here (README, "Debugging"); the rest is recorded.
    assert {k: replayed[k] for k in ("cents", "started")} == {
        k: recorded[k] for k in ("cents", "started")
    }


def test_the_first_divergence_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "debug_me.py"
    shutil.copyfile(WORKFLOWS / "debug_me.py", source)
    db = str(tmp_path / "debug.db")
    ran = run_cli("run", str(source), "--input", '"pear"', "--db", db, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    changed = tmp_path / "changed.py"
    changed.write_text(source.read_text().replace("price(item)", 'price(item + "s")'))
    proc = run_cli("debug", "1", str(changed), "--db", db, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        "task 1 diverges: nondeterminism at event 0: history recorded 'step price'"
    )
    missing = run_cli("debug", "1", "nope.py", "--db", db, cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == "error: nope.py: no such file\n"


class _Echo(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = f"probe {self.headers.get('X-Probe')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/echo"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("entry", "labels"),
    [
        ("family", ["durable:children.spawn", "durable:children.join", "durable:child-control"]),
        ("fetch", ["http GET"]),
        ("books", ["sql books", "sql undo"]),
    ],
)
def test_children_http_and_sql_are_answered_from_the_history(
    tmp_path: Path, echo: str, entry: str, labels: list[str]
) -> None:
    """A task whose history holds child tasks (spawn, join, cancel, a refused spawn),
    HTTP requests (answered and refused) or SQL transactions (every kind of value, a
    failed statement, a rollback) replays in CPython to the result it recorded."""
    source = tmp_path / "debug_effects.py"
    shutil.copyfile(WORKFLOWS / "debug_effects.py", source)
    db = str(tmp_path / "debug.db")
    args = {"family": 3, "fetch": {"url": echo, "closed": f"http://127.0.0.1:{_closed_port()}/"}}
    value = json.dumps(args.get(entry))
    ran = run_cli("run", str(source), "--entry", entry, "--input", value, "--db", db, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    recorded = json.loads(ran.stdout.splitlines()[-1])
    shown = json.loads(run_cli("show", "1", "--json", "--db", db, cwd=tmp_path).stdout)
    events = [e["label"] for e in shown["events"]]
    for label in labels:  # the history really holds what this test is about
        assert any(e.startswith(label) for e in events), (label, events)

    proc = run_cli("debug", "1", str(source), "--db", db, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head, _, result = proc.stderr.splitlines()[-1].partition(" then completes: ")
    assert head == f"task 1 replays cleanly ({len(events)} events),", proc.stderr
    assert json.loads(result) == recorded
