"""Chaos: Postgres restarted with an immediate shutdown, again and again, under load.

A throwaway `PostgresServer` of its own (not the session's: its restarts would break
every other test's connections) holds 200 script tasks, each a step, an SQL insert, an
HTTP request, a short sleep and a clock reading. Two `durable worker` subprocesses run
them while the server is killed (`pg_ctl stop -m immediate`: no checkpoint, every
connection cut) and started again every few seconds. The workers must ride it out
(they retry with backoff), and at the end:

* every task is complete, with the result the model predicts;
* each task's history is gap-free: indexes 0..n-1, each exactly once, as predicted;
* each task's SQL row exists exactly once (the transaction commits with its event);
* each HTTP request was sent at least once;
* both workers are still alive.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import pytest

from durable.core.model import TaskState
from durable.storage import open_store
from durable.testing.postgres import PostgresServer, find_binaries, unavailable_reason
from tests.helpers import ROOT, durable_cmd
from tests.property.harness import (
    PROP_ROWS_DDL,
    Component,
    check_matches_model,
    check_sql_once,
    launch,
    snapshot,
)
from tests.property.http_server import CountingServer
from tests.property.scripts import Script, http_path, predict

pytestmark = [pytest.mark.anyio, pytest.mark.postgres, pytest.mark.slow]

TASKS = 200
WORKERS = 2
RESTART_EVERY = 2.0  # seconds between immediate shutdowns (the first: once work is done)
RESTARTS = 4
DEADLINE = 80.0  # seconds for every task to complete


def chaos_script(n: int) -> Script:
    """Task `n`'s script: every kind of effect, and a few events each."""
    return [
        {"op": "step", "arg": n % 21},
        {"op": "sql_insert", "arg": n},
        {"op": "http"},
        {"op": "long_sleep"},  # 0.1 s, in place (the workers' suspend-after is 10 s)
        {"op": "step", "arg": (n + 1) % 21},
        {"op": "long_sleep"},
        {"op": "now"},
    ]


@pytest.fixture
def chaos_server() -> Iterator[PostgresServer]:
    """A throwaway server for this test alone."""
    if find_binaries() is None:
        reason = unavailable_reason() or "PostgreSQL binaries not found"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    with PostgresServer() as server:
        yield server


def _restarter(
    server: PostgresServer, go: threading.Event, stop: threading.Event, done: list[float]
) -> None:
    """Once `go` is set (work under way), kill and restart the server at once, then every
    RESTART_EVERY seconds, RESTARTS times in all."""
    while not go.wait(0.05):
        if stop.is_set():
            return
    while len(done) < RESTARTS and not stop.is_set():
        server.restart(mode="immediate")
        done.append(time.monotonic())
        stop.wait(RESTART_EVERY)


async def _count_complete(url: str) -> int:
    """How many tasks are complete (0 while the server is down)."""
    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return 0
    try:
        return int(
            await conn.fetchval("SELECT count(*) FROM durable.tasks WHERE state = 'complete'")
        )
    except (OSError, asyncpg.PostgresError):
        return 0
    finally:
        await conn.close()


def _start_workers(url: str, logs: Path) -> list[subprocess.Popen[bytes]]:
    """Start the `durable worker` subprocesses, their stderr in `logs/worker<i>.log`."""
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DATABASE_URL"}
    workers = []
    for i in range(WORKERS):
        with (logs / f"worker{i}.log").open("wb") as err:
            workers.append(
                subprocess.Popen(
                    durable_cmd("worker", "--db", url, "--concurrency", "8"),
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            )
    return workers


async def test_workers_survive_immediate_restarts_and_every_task_completes_once(
    component: Component,
    http_server: CountingServer,
    chaos_server: PostgresServer,
    tmp_path: Path,
) -> None:
    url = chaos_server.url
    store = await open_store(url)
    try:
        await store.migrate()
        # Concurrent `CREATE TABLE IF NOT EXISTS` races in Postgres (a duplicate pg_type
        # row): create the table first, as the workflows' role, so theirs is a no-op.
        conn = await asyncpg.connect(url)
        try:
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE durable_guest")
                await conn.execute(PROP_ROWS_DDL)
        finally:
            await conn.close()
        ids = [(await launch(store, component, chaos_script(n), n + 1)).id for n in range(TASKS)]
    finally:
        await store.close()
    before = http_server.snapshot()

    workers = _start_workers(url, tmp_path)
    stop, go = threading.Event(), threading.Event()
    restarts: list[float] = []
    restarter = threading.Thread(target=_restarter, args=(chaos_server, go, stop, restarts))
    restarter.start()
    complete = 0
    hit_under_load = False
    try:
        started = time.monotonic()
        while time.monotonic() - started < DEADLINE:
            complete = await _count_complete(url) or complete
            if complete:
                go.set()  # the workers are running tasks: start the restarts
            if restarts and complete < TASKS:
                hit_under_load = True  # a restart came while tasks were still running
            if complete == TASKS and len(restarts) >= RESTARTS:
                break
            dead = [w.pid for w in workers if w.poll() is not None]
            assert not dead, f"worker(s) {dead} died during the restarts"
            await anyio.sleep(0.5)
        stop.set()
        await anyio.to_thread.run_sync(restarter.join)
        alive = [w.poll() is None for w in workers]
    finally:
        stop.set()
        for w in workers:
            if w.poll() is None:
                w.terminate()
        for w in workers:
            try:
                w.wait(timeout=20)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
    errors = [
        (tmp_path / f"worker{i}.log").read_text(errors="replace")[-3000:] for i in range(WORKERS)
    ]
    where = f"after {len(restarts)} immediate restart(s), {complete}/{TASKS} complete"
    assert all(alive), f"{where}: a worker died:\n" + "\n---\n".join(errors)
    assert len(restarts) >= RESTARTS, f"{where}: the server was not restarted enough"
    assert hit_under_load, f"{where}: every task completed before the first restart"

    store = await open_store(url)
    try:
        for n, task_id in enumerate(ids):
            run = await snapshot(store, task_id)
            prediction = predict(chaos_script(n))
            label = f"{where}: task {task_id}"
            assert run.task.state is TaskState.COMPLETE, f"{label}:\n{run.describe()}"
            indexes = [e.index for e in run.history]
            assert indexes == list(range(len(prediction.labels))), (
                f"{label}: history indexes {indexes}\n{run.describe()}"
            )
            check_matches_model(run, prediction, label)
            assert json.loads(run.task.result or "null")[2]["body"] == f"hit {http_path(2)}"
    finally:
        await store.close()
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT task, op, arg FROM prop_rows")
    finally:
        await conn.close()
    by_task: dict[int, list[tuple[int, int]]] = {}
    for r in rows:
        by_task.setdefault(int(r["task"]), []).append((int(r["op"]), int(r["arg"])))
    for n, task_id in enumerate(ids):
        check_sql_once(
            sorted(by_task.get(task_id, [])), predict(chaos_script(n)), f"{where}: task {task_id}"
        )
    sent = (http_server.snapshot() - before)[http_path(2)]
    assert sent >= TASKS, f"{where}: {sent} HTTP requests for {TASKS} tasks"
