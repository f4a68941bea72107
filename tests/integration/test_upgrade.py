"""`durable upgrade --check` on SQLite and Postgres: every unfinished task of a workflow
replayed against new code; clean ones and divergent ones told apart, nothing written."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from durable.client import Client
from durable.core.model import TaskState
from durable.host import HostConfig, Runtime
from durable.loader import read_workflow
from durable.storage import open_store
from durable.storage.base import Store
from durable.upgrade import check_upgrade
from durable.worker import Worker, WorkerConfig
from tests.helpers import (
    WORKFLOWS,
    cli_env,
    compiled,
    completed_result,
    durable_cmd,
    launch_task,
    run_cli,
    running,
    until,
)

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


async def test_check_tells_clean_tasks_from_divergent_ones(store: Store, runtime: Runtime) -> None:
    old = compiled(WORKFLOWS / "patch_old.py")
    new = compiled(WORKFLOWS / "patch_new.py")
    olds = [await launch_task(store, old, "order", c, workflow_name="order") for c in (1, 2)]
    on_new = await launch_task(store, new, "order", 3, workflow_name="order")
    done = await launch_task(store, old, "misuse", None, workflow_name="order")  # fails: ends
    worker = Worker(store, WorkerConfig(concurrency=4, lease_seconds=5, host=FAST), runtime=runtime)
    async with running(worker):

        async def settled() -> bool:
            ids = [*(t.id for t in olds), on_new.id]
            states = [(await store.get_task(i)).state for i in ids]
            ended = (await store.get_task(done.id)).state.is_terminal
            return ended and all(s is TaskState.SUSPENDED for s in states)

        await until(settled, within=300)
    before = {t.id: await store.load_history(t.id) for t in [*olds, on_new]}
    client = Client(store)

    # Onto the new code (patched): the old tasks replay cleanly, up to their wait.
    report = await check_upgrade(client, "order", new, parallel=2)
    assert [r.task_id for r in report.reports] == [t.id for t in olds]
    assert all(r.clean for r in report.reports)
    assert report.already == 1
    assert report.lines()[0] == (f"task {olds[0].id}: clean (1 events, then 'durable:notify.wait')")
    # Back onto the old code: the task that recorded the patch marker diverges.
    back = await check_upgrade(client, "order", old)
    assert [(r.task_id, r.clean) for r in back.reports] == [(on_new.id, False)]
    assert back.reports[0].divergence is not None
    assert "patch charge-fee" in back.reports[0].divergence.expected
    assert back.lines()[-1].startswith(
        "0 of 1 unfinished task(s) of 'order' replay cleanly against the new code ("
    )
    # Nothing was written.
    assert {t.id: await store.load_history(t.id) for t in [*olds, on_new]} == before


def test_the_command(tmp_path: Path) -> None:
    db = str(tmp_path / "up.db")
    launched = run_cli(
        "launch", "order", str(WORKFLOWS / "patch_old.py"), "--entry", "order", "--input", "7",
        "--db", db, cwd=tmp_path,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr
    worked = run_cli("worker", "--exit-when-idle", "--db", db, cwd=tmp_path)
    assert worked.returncode == 0, worked.stderr
    new = str(WORKFLOWS / "patch_new.py")
    checked = run_cli("upgrade", "patch_old", new, "--check", "--db", db, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.splitlines()[0] == "task 1: clean (1 events, then 'durable:notify.wait')"
    for flags in (["--check"], []):
        unknown = run_cli("upgrade", "nope", new, *flags, "--db", db, cwd=tmp_path)
        assert unknown.returncode != 0
        assert unknown.stderr == "error: no workflow binary is stored under the name 'nope'\n"
    assert "nope" not in run_cli("list", "--json", "--db", db, cwd=tmp_path).stdout


class Hold:
    """A real local HTTP server that holds every request until `release` is set."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        hold = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hold.arrived.set()
                hold.release.wait(600)
                with contextlib.suppress(OSError):  # the worker may be gone by then
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hold"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def hold() -> Iterator[Hold]:
    server = Hold()
    yield server
    server.release.set()
    server.server.shutdown()
    server.server.server_close()


def _worker(db: str, cwd: Path) -> subprocess.Popen[bytes]:
    """A `durable worker` process: waits of over 0.2 s suspend."""
    return subprocess.Popen(
        durable_cmd("worker", "--db", db, "--suspend-after", "0.2", "--lease-seconds", "60"),
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


V1 = WORKFLOWS / "upgrade_v1.py"
V2 = WORKFLOWS / "upgrade_v2.py"


async def test_upgrade_moves_only_the_clean_tasks(
    tmp_path: Path, backend_url: str, hold: Hold
) -> None:
    """Three tasks of v1 under a real worker process: one that diverges on v2, one
    that replays cleanly, and one running (leased, held in an HTTP request). The
    upgrade moves only the clean one, which then finishes on v2; the others finish on
    v1. The move is in `durable show`, and the name's newest binary is v2's."""
    compiled(V1), compiled(V2)  # built and compiled once, for the worker process
    db = backend_url

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = run_cli(*args, "--db", db, cwd=tmp_path)
        assert done.returncode in (0, 1), done.stderr
        return done

    cli("migrate")  # an empty Postgres database; a SQLite file is created by `launch`
    ids = {}
    for kind in ("diverge", "clean", "busy"):
        job = json.dumps({"kind": kind, "url": hold.url})
        launched = cli("launch", kind, str(V1), "--entry", "order", "--input", job)
        ids[kind] = int(launched.stdout)
    worker = _worker(db, tmp_path)
    try:
        async with Client(await open_store(db)) as client:

            async def settled() -> bool:
                states = [(await client.get(ids[k])).state for k in ("diverge", "clean")]
                return hold.arrived.is_set() and states == [TaskState.SUSPENDED] * 2

            await until(settled, within=600)
            old = (await client.get(ids["clean"])).workflow_hash
            busy = await client.get(ids["busy"])
            assert busy.state is TaskState.ACTIVE, "held in its request: leased and running"

            upgraded = await anyio.to_thread.run_sync(lambda: cli("upgrade", "upgrade_v1", str(V2)))
            assert upgraded.returncode == 1, "two tasks stay on the old code"
            lines = upgraded.stdout.splitlines()
            new = hashlib.sha256(read_workflow(V2)[0]).hexdigest()
            diverged = f"task {ids['diverge']}: diverges at event 1: recorded 'step reserve'"
            assert lines[0].startswith(diverged), upgraded.stdout
            assert "found 'step reserve_stock'" in lines[0]
            assert lines[0].endswith(f"; stays on {old[:12]}")
            assert lines[1:3] == [
                f"task {ids['clean']}: moved from {old[:12]} to {new[:12]} (1 events, then "
                "'durable:notify.wait')",
                f"task {ids['busy']}: skipped: running, or its history grew since it was "
                f"replayed; stays on {old[:12]} (run the upgrade again)",
            ], upgraded.stdout
            assert lines[3].startswith(
                f"moved 1 of 3 unfinished task(s) of 'upgrade_v1' onto {new[:12]}: 1 diverge, "
                "1 skipped; 0 already on it; replayed "
            ), lines[3]
            tasks = {k: await client.get(i) for k, i in ids.items()}
            assert {k: t.workflow_hash for k, t in tasks.items()} == {
                "diverge": old, "clean": new, "busy": old
            }  # fmt: skip
            assert await client.store.find_workflow("upgrade_v1") == new, "launch by name: v2"

            hold.release.set()
            for task_id in ids.values():
                cli("notify", str(task_id), "go")

            async def ended() -> bool:
                states = [(await client.get(i)).state for i in ids.values()]
                return all(s.is_terminal for s in states)

            await until(ended, within=600)
            results = {k: completed_result(await client.get(i)) for k, i in ids.items()}
            assert results == {
                "diverge": {"code": "v1", "kind": "diverge"},
                "clean": {"code": "v2", "kind": "clean"},
                "busy": {"code": "v1", "kind": "busy"},
            }
    finally:
        worker.terminate()
        worker.communicate(timeout=120)
    shown = cli("show", str(ids["clean"])).stdout
    assert f"moved     {old[:12]} -> {new[:12]} after 1 events, " in shown, shown
    exported = json.loads(cli("show", str(ids["clean"]), "--json").stdout)
    assert [(m["from"], m["to"], m["events"]) for m in exported["moves"]] == [(old, new, 1)]
    assert "moves" not in json.loads(cli("show", str(ids["busy"]), "--json").stdout)
    again = cli("upgrade", "upgrade_v1", str(V2), "--check")
    assert again.stdout.splitlines()[-1].startswith("0 of 0 unfinished task(s)"), again.stdout
