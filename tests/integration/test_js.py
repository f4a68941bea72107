"""JavaScript workflows: the SDK, the examples, errors and cancellation, SIGKILL and resume.

Built for real with componentize-js (installed by npm into the cache the first time)
and run by real workers on SQLite files.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from durable.client import Client
from durable.core.model import Task, TaskState
from durable.host import HostConfig, Runtime
from durable.js_build import build_js_workflow
from durable.storage import open_store
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig
from tests.helpers import (
    ROOT,
    WORKFLOWS,
    kill_and_resume,
    launch_task,
    run_cli,
    running,
    until,
    without_progress,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

JS_EXAMPLES = ROOT / "examples" / "js"
TOUR = WORKFLOWS / "js" / "tour.js"
CLOCK = WORKFLOWS / "js" / "clock.js"
CONFIG = HostConfig(suspend_after=5)
#: How long a CLI run may take when it builds and compiles (minutes on a busy machine).
BUILD = 600


@pytest.fixture(scope="module")
def tour() -> bytes:
    return build_js_workflow(TOUR).wasm_path.read_bytes()


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    rt = Runtime(CONFIG)
    yield rt
    rt.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await open_store(f"sqlite:///{tmp_path / 'js.db'}")
    yield opened
    await opened.close()


class _Server:
    """A real local HTTP server that answers every GET with a fixed JSON document."""

    def __init__(self) -> None:
        self.requests = 0
        body = json.dumps({"hello": "from the server"}).encode()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


async def _run(store: Store, runtime: Runtime, wasm: bytes, entry: str, value: Any) -> Task:
    task = await launch_task(store, wasm, entry, value, workflow_name="tour")
    worker = Worker(store, WorkerConfig(host=CONFIG), runtime=runtime)
    async with running(worker):
        return await _ended(store, task.id)


async def _ended(store: Store, task_id: int) -> Task:
    async def check() -> Task | None:
        task = await store.get_task(task_id)
        return task if task.state.is_terminal else None

    done: Task = await until(check, within=300)
    return done


@pytest.mark.anyio
async def test_steps_clock_and_random_replay_identically(
    tmp_path: Path, store: Store, runtime: Runtime, tour: bytes
) -> None:
    done = await _run(store, runtime, tour, "steps", 21)
    assert done.state is TaskState.COMPLETE, done.error
    result = json.loads(done.result or "null")
    assert result["a"] == 42
    assert result["failed"] == "RangeError: no good"
    labels = [e.label for e in await store.load_history(done.id)]
    assert labels[:2] == ["step double", "step fail"]
    assert "wasi:clocks/wall-clock.now" in labels  # Date.now() is recorded
    # A replay from the history gives the same result: clock, randomness and steps.
    proc = run_cli("replay", str(done.id), "--json", "--db", str(tmp_path / "js.db"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(json.loads(proc.stdout)["result"]) == result


@pytest.mark.anyio
async def test_an_exception_becomes_the_tasks_error(
    store: Store, runtime: Runtime, tour: bytes
) -> None:
    done = await _run(store, runtime, tour, "boom", None)
    assert done.state is TaskState.FAILED
    error = json.loads(done.error or "{}")
    assert error["kind"] == "TypeError"
    assert "null" in error["message"]
    assert "boom" in error["traceback"]  # the JS stack names the function


@pytest.mark.anyio
async def test_cancellation_raises_cancelled_and_cleanup_runs(
    store: Store, runtime: Runtime, tour: bytes
) -> None:
    task = await launch_task(store, tour, "cancellable", None, workflow_name="tour")
    worker = Worker(store, WorkerConfig(host=CONFIG), runtime=runtime)
    async with running(worker):

        async def sleeping() -> bool:
            return len(await store.load_history(task.id)) >= 2

        await until(sleeping, within=300)
        await Client(store).cancel(task.id)
        done = await _ended(store, task.id)
    assert done.state is TaskState.CANCELLED, done.error
    labels = [e.label for e in await store.load_history(task.id)]
    assert labels[-2:] == ["durable:task.cancelled", "step cleanup"]


@pytest.mark.anyio
async def test_notify_spawn_and_join(store: Store, runtime: Runtime, tour: bytes) -> None:
    waiting = await launch_task(store, tour, "inbox", None, workflow_name="tour")
    sender = await launch_task(store, tour, "notifier", waiting.id, workflow_name="tour")
    parent = await launch_task(store, tour, "parent", 4, workflow_name="tour")
    worker = Worker(store, WorkerConfig(host=CONFIG), runtime=runtime)
    async with running(worker):
        got = await _ended(store, waiting.id)
        sent = await _ended(store, sender.id)
        joined = await _ended(store, parent.id)
    assert sent.state is TaskState.COMPLETE, sent.error
    assert json.loads(got.result or "null") == ["ping", {"from": sender.id}]
    result = json.loads(joined.result or "null")
    assert result["result"]["a"] == 8
    assert result["me"] == parent.id
    child = await store.get_task(result["child"])
    assert child.parent_id == parent.id


@pytest.mark.anyio
async def test_cancel_on_timeout_cancels_the_child(
    store: Store, runtime: Runtime, tour: bytes
) -> None:
    done = await _run(store, runtime, tour, "impatient", 1000)
    assert done.state is TaskState.COMPLETE, done.error
    out = json.loads(done.result or "null")
    timed_out = f"child task {out['child']} did not end within 0.2 s; it was cancelled"
    assert out["timedOut"] == timed_out
    assert (out["then"], out["again"]) == ("cancelled", False)
    assert (await store.get_task(out["child"])).state is TaskState.CANCELLED
    labels = [e.label for e in await store.load_history(done.id)]
    assert labels.count("durable:child-control.cancel") == 2


@pytest.mark.anyio
async def test_set_status_is_read_back_by_durable_status(
    tmp_path: Path, store: Store, runtime: Runtime, tour: bytes
) -> None:
    done = await _run(store, runtime, tour, "progress", 3)
    assert done.state is TaskState.COMPLETE, done.error
    assert "inside step" in json.loads(done.result or "null")  # refused in a step body
    db = str(tmp_path / "js.db")
    proc = run_cli("status", str(done.id), "--json", "--db", db, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"phase": "done", "progress": {"done": 3, "of": 3}}
    proc = run_cli("status", str(done.id), "progress", "--db", db, cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, '{"done": 3, "of": 3}\n'), proc.stderr


@pytest.mark.anyio
async def test_http_and_sql(store: Store, runtime: Runtime, tour: bytes, server: _Server) -> None:
    fetched = await _run(store, runtime, tour, "fetcher", server.url)
    assert fetched.state is TaskState.COMPLETE, fetched.error
    result = json.loads(fetched.result or "null")
    assert result["status"] == 200
    assert json.loads(result["text"]) == {"hello": "from the server"}
    assert result["error"] == "HttpError connect"
    stored = await _run(store, runtime, tour, "sql", 3)
    assert stored.state is TaskState.COMPLETE, stored.error
    assert json.loads(stored.result or "null") == {
        "rows": [{"n": 3, "s": "s3"}],
        "error": "SqlError forbidden",
    }


def test_hello_example_through_the_cli(tmp_path: Path) -> None:
    proc = run_cli(
        "run", str(JS_EXAMPLES / "hello.js"), "--input", '"world"', cwd=tmp_path, timeout=BUILD
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'Hello, world!\n"Hello, world!"\n'


def test_http_sql_example_through_the_cli(tmp_path: Path, server: _Server) -> None:
    proc = run_cli(
        "run",
        str(JS_EXAMPLES / "http_sql.js"),
        "--input",
        json.dumps(server.url),
        cwd=tmp_path,
        timeout=BUILD,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {"status": 200, "bytes": 28, "copies": 1}
    assert server.requests == 1


def test_countdown_example_survives_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "countdown.db"
    countdown = JS_EXAMPLES / "countdown.js"
    run = kill_and_resume(countdown, db, tmp_path, lines_before=3, timeout=300)
    assert run.worker.returncode == 0, run.worker.stderr
    lines = run.logs
    assert len(lines) == 10, lines
    assert lines[: len(run.before)] == run.before  # byte-identical: clock recorded, random derived
    assert len(set(lines)) == 10  # none printed twice
    show = run_cli("show", "1", "--json", "--db", str(db), cwd=tmp_path)
    assert json.loads(json.loads(show.stdout)["task"]["result"]) == "liftoff"


@pytest.mark.parametrize(
    ("source", "needle"),
    [
        ("export const run = (;\n", "bad.js:1: SyntaxError"),
        ('import x from "./other.js";\nexport const run = x;\n', "bad.js:1: cannot import"),
        ('\nimport fs from "node:fs";\n', "bad.js:2: cannot import 'node:fs'"),
    ],
)
def test_a_bad_workflow_is_refused_in_one_line(tmp_path: Path, source: str, needle: str) -> None:
    bad = tmp_path / "bad.js"
    bad.write_text(source)
    proc = run_cli("build", str(bad), cwd=tmp_path, timeout=BUILD)
    assert proc.returncode == 2, proc.stderr
    # One line, besides the "durable: building ..." line a slow machine adds.
    assert len(without_progress(proc.stderr)) == 1, proc.stderr
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.anyio
async def test_spawn_onto_a_queue(store: Store, runtime: Runtime, tour: bytes) -> None:
    done = await _run(store, runtime, tour, "queuedParent", 2)
    assert done.state is TaskState.COMPLETE, done.error
    out = json.loads(done.result or "null")
    child = await store.get_task(out["child"])
    assert (child.queue, child.queue_key, child.priority) == ("js", "k", 3)
    assert child.state is TaskState.COMPLETE
    labels = [e.label for e in await store.load_history(done.id)]
    assert "durable:spawn-options.spawn-queued" in labels


def _fired_in_deadline_order(line: dict[str, Any]) -> None:
    delays = [ms for ms, _ in line["fired"]]
    assert delays == [0, 10, 10, 20, 30], line  # by deadline, ties in the order set
    times = [at for _, at in line["fired"]]
    assert times == sorted(times), line
    start = times[0]
    for ms, at in line["fired"]:  # each fired no earlier than its deadline
        assert at >= start + ms, line


def test_timers_and_performance_now_replay_after_sigkill(tmp_path: Path) -> None:
    # The reference: the same workflow, run to its end without a crash.
    ref_db = tmp_path / "ref.db"
    ref = run_cli("run", str(CLOCK), "--db", str(ref_db), cwd=tmp_path, timeout=BUILD)
    assert ref.returncode == 0, ref.stderr
    ref_logs = run_cli("logs", "1", "--db", str(ref_db), cwd=tmp_path).stdout.splitlines()
    assert len(ref_logs) == 6, ref_logs
    for text in ref_logs:
        _fired_in_deadline_order(json.loads(text))
    db = tmp_path / "clock.db"
    run = kill_and_resume(CLOCK, db, tmp_path, lines_before=2, timeout=300)
    assert run.worker.returncode == 0, run.worker.stderr
    # The resumed attempt replays the first rounds and goes on with the same clock: the
    # whole log, and the result, are those of the run that was never killed.
    assert [line.decode().rstrip("\n") for line in run.logs] == ref_logs
    show = run_cli("show", "1", "--json", "--db", str(db), cwd=tmp_path)
    ref_show = run_cli("show", "1", "--json", "--db", str(ref_db), cwd=tmp_path)
    result = json.loads(show.stdout)["task"]["result"]
    assert result == json.loads(ref_show.stdout)["task"]["result"]
    proc = run_cli("replay", "1", "--json", "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    replayed = json.loads(proc.stdout)
    assert replayed["clean"], replayed
    assert replayed["result"] == result


def test_a_loop_waiting_for_performance_now_to_move_ends(tmp_path: Path) -> None:
    proc = run_cli(
        "run", str(CLOCK), "--entry", "spin", "--input", "10", cwd=tmp_path, timeout=BUILD
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) > 0


def test_an_async_workflows_rejection_is_the_tasks_error(tmp_path: Path) -> None:
    db = str(tmp_path / "late.db")
    proc = run_cli("run", str(CLOCK), "--entry", "late", "--db", db, cwd=tmp_path, timeout=BUILD)
    assert proc.returncode != 0
    show = run_cli("show", "1", "--json", "--db", db, cwd=tmp_path)
    task = json.loads(show.stdout)["task"]
    assert task["state"] == "failed", task
    error = json.loads(task["error"])
    assert (error["kind"], error["message"]) == ("RangeError", "too late")
    assert "late" in error["traceback"]
