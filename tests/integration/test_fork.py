"""`durable fork` and `durable retry` on SQLite and Postgres: a fork at every index of
a recorded history ends as the original did, the original is untouched, and a failed
task is retried from just before its failed step."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from durable.client import Client
from durable.core.model import Stream, Task, TaskState
from durable.errors import ConflictError, InvalidStateError
from durable.host import HostConfig, Runtime
from durable.storage.base import Store
from durable.storage.fork import TaskOrigin
from durable.worker import Worker, WorkerConfig
from tests.helpers import WORKFLOWS, compiled, launch_task, run_cli, running, until

pytestmark = pytest.mark.anyio

FAST = HostConfig(suspend_after=0.3)


@pytest.fixture
def store(sql_store: Store) -> Store:
    return sql_store


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    rt = Runtime(FAST)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def wasm() -> bytes:
    return compiled(WORKFLOWS / "fork_me.py")


class Flaky:
    """A real local HTTP server whose first answer is a 503, then 200s."""

    def __init__(self) -> None:
        self.hits = 0
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                flaky.hits += 1
                body = b"fine"
                self.send_response(503 if flaky.hits == 1 else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/x"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def flaky() -> Iterator[Flaky]:
    server = Flaky()
    yield server
    server.server.shutdown()
    server.server.server_close()


def worker(store: Store, runtime: Runtime) -> Worker:
    return Worker(store, WorkerConfig(concurrency=2, lease_seconds=5, host=FAST), runtime=runtime)


async def ended(store: Store, *task_ids: int) -> list[Task]:
    async def check() -> list[Task] | None:
        tasks = [await store.get_task(i) for i in task_ids]
        return tasks if all(t.state.is_terminal for t in tasks) else None

    found: list[Task] = await until(check, within=300)
    return found


async def test_a_fork_at_every_index_ends_as_the_original(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    client = Client(store)
    original = await launch_task(store, wasm, "main", 3, workflow_name="fork_me")
    async with running(worker(store, runtime)):
        (done,) = await ended(store, original.id)
    assert done.state is TaskState.COMPLETE, done.error
    history = (await client.history(original.id)).events
    assert [e.label for e in history][:4] == ["step add"] * 3 + ["durable:status.set"]
    assert len(history) == 5

    forks = [await client.fork(original.id, at=k) for k in range(len(history) + 1)]
    for k, fork in enumerate(forks):
        assert fork.input == "3"
        assert fork.seed == original.seed
        assert await store.task_origin(fork.id) == TaskOrigin(origin_id=original.id, at=k)  # type: ignore[attr-defined]
        copied = await store.load_history(fork.id)
        assert copied == [e for e in history if e.index < k]
        # The status value set by event 3 is copied with it, and only with it.
        status = [(v.key, v.value, v.position) for v in await store.read_status(fork.id)]
        assert status == ([("total", "3", 3)] if k > 3 else []), k
    async with running(worker(store, runtime)):
        finished = await ended(store, *(f.id for f in forks))
    for k, task in enumerate(finished):
        assert task.state is TaskState.COMPLETE, (k, task.error)
        assert json.loads(task.result or "") == json.loads(done.result or ""), k
        assert [e.label for e in await store.load_history(task.id)] == [e.label for e in history]
        # The output of the copied part is copied, not printed twice nor lost.
        logs = await store.read_logs(task.id)
        assert b"".join(c.data for c in logs if c.stream is Stream.STDOUT) == b"done 3\n", k
        assert [c.seq for c in logs] == list(range(1, len(logs) + 1))
    # The original is untouched, and is not a fork itself.
    assert await store.load_history(original.id) == list(history)
    assert (await store.get_task(original.id)).result == done.result
    assert await store.task_origin(original.id) is None  # type: ignore[attr-defined]


async def test_a_fork_with_new_input_and_bad_cuts(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    client = Client(store)
    original = await launch_task(store, wasm, "main", 3, workflow_name="fork_me")
    async with running(worker(store, runtime)):
        await ended(store, original.id)
    # Two steps kept (add(0, 0), add(0, 1)), then the new input decides how many more.
    fork = await client.fork(original.id, at=2, input=5)
    async with running(worker(store, runtime)):
        (task,) = await ended(store, fork.id)
    assert task.state is TaskState.COMPLETE, task.error
    assert json.loads(task.result or "")["total"] == 0 + 1 + 2 + 3 + 4
    for bad in (-1, 6):
        with pytest.raises(ConflictError, match=f"--at {bad} is outside task {original.id}"):
            await client.fork(original.id, at=bad)
    with pytest.raises(InvalidStateError, match="only a failed task is retried"):
        await client.retry(original.id)


async def test_retry_reruns_a_failed_task_from_before_its_failed_step(
    store: Store, runtime: Runtime, wasm: bytes, flaky: Flaky
) -> None:
    client = Client(store)
    original = await launch_task(store, wasm, "fetch", flaky.url, workflow_name="fork_me")
    async with running(worker(store, runtime)):
        (failed,) = await ended(store, original.id)
    assert failed.state is TaskState.FAILED
    assert "answered 503" in (failed.error or "")
    retried = await client.retry(original.id)
    assert await store.task_origin(retried.id) == TaskOrigin(origin_id=original.id, at=1)  # type: ignore[attr-defined]
    async with running(worker(store, runtime)):
        (task,) = await ended(store, retried.id)
    assert task.state is TaskState.COMPLETE, task.error
    assert json.loads(task.result or "") == {"before": 3, "body": "fine"}
    assert flaky.hits == 2  # the failed step ran again; the step before it did not
    assert (await store.get_task(original.id)).state is TaskState.FAILED


# -- through the CLI -----------------------------------------------------------------------


def test_fork_and_retry_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "fork.db")
    source = str(WORKFLOWS / "fork_me.py")
    ran = run_cli("run", source, "--entry", "main", "--input", "2", "--db", db, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    forked = run_cli("fork", "1", "--at", "1", "--input", "4", "--db", db, cwd=tmp_path)
    assert forked.returncode == 0, forked.stderr
    assert forked.stdout == "2\n"
    assert forked.stderr == "task 2: forked from task 1 at event 1\n"
    worked = run_cli("worker", "--exit-when-idle", "--db", db, cwd=tmp_path)
    assert worked.returncode == 0, worked.stderr
    shown = run_cli("show", "2", "--json", "--db", db, cwd=tmp_path)
    exported = json.loads(shown.stdout)
    assert json.loads(exported["task"]["result"])["total"] == 0 + 1 + 2 + 3
    assert exported["origin"] == {"task": 1, "at": 1, "run": 1}
    assert "origin" not in json.loads(
        run_cli("show", "1", "--json", "--db", db, cwd=tmp_path).stdout
    )
    fork_text = run_cli("show", "2", "--db", db, cwd=tmp_path).stdout
    assert "\nforked from  task 1 at event 1\n" in fork_text, fork_text
    origin_text = run_cli("show", "1", "--db", db, cwd=tmp_path).stdout
    assert "\nforks     2 (at 1)\n" in origin_text, origin_text

    for args, message in [
        (["fork", "1", "--at", "99"], "error: --at 99 is outside task 1's history of 4 events"),
        (["fork", "9", "--at", "0"], "error: task 9"),
        (["retry", "1"], "error: task 1 is complete: only a failed task is retried"),
        (["fork", "1", "--at", "0", "--input", "{"], "error: --input is not valid JSON"),
    ]:
        proc = run_cli(*args, "--db", db, cwd=tmp_path)
        assert proc.returncode != 0, args
        assert proc.stderr.startswith(message), (args, proc.stderr)
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert "Traceback" not in proc.stderr
