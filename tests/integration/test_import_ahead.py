"""The shared interpreter's instances made ahead of the claim have their workflow
imported already (`durable.host.instance_pool`, the interpreter's `prepare` export).

A task on such an instance sees what it would see on an instance made at its claim: a
module-level draw of `random` is the same on every instance (the import comes before
the task's reseed in both paths, as in a standalone build), its own draws come from its
seed, and its history replays. A workflow whose import has an effect (output, a clock
or random read, a durable call), fails, or computes for long is imported in its
attempt instead, as before, with the same result. Real bundles in the real interpreter
component, an in-process worker.

On wasmtime-py's fallback (`.ci/run` runs this file there too) nothing stops workflow
code outside an attempt, so a pooled instance is made without its import, and the
attempt imports it: the same results, checked by the same tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from durable.client import Client
from durable.core.model import NewTask, TaskState
from durable.host import HostConfig, Runtime, watchdog
from durable.host.runtime import CLOSE_TIMEOUT
from durable.replayer import Replayer
from durable.storage.base import Store
from durable.storage.sqlite import SQLiteStore
from durable.worker import Worker, WorkerConfig
from tests.helpers import running, until

pytestmark = pytest.mark.anyio

#: Whether workflows are imported ahead here (not on wasmtime-py's fallback).
AHEAD = watchdog.CALLBACKS
#: Seeds of the tasks run in order: the third repeats the first.
SEEDS = (11, 22, 11)

DRAWS = """\
import random
import uuid

import durable
from helper import SCALE

AT_IMPORT = random.random()


@durable.workflow
def main(n):
    return {"at_import": AT_IMPORT, "drawn": random.random() * SCALE, "uuid": str(uuid.uuid4())}
"""


def _folder(tmp_path: Path, body: str, name: str = "flow") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "helper.py").write_text("SCALE = 1000\n")
    path = folder / "flow.py"
    path.write_text(body)
    return path


async def _run(store: Store, runtime: Runtime, workflow_hash: str) -> list[dict[str, Any]]:
    """One task per seed of `SEEDS`, one after another, each checked to replay; with a
    pool, each after the first waits for an instance made (and imported) ahead."""
    client = Client(store)
    results = []
    async with running(Worker(store, WorkerConfig(concurrency=1), runtime=runtime)):
        for seed in SEEDS:
            if runtime.pool.enabled and results:
                await until(_ready(runtime))
            spec = NewTask(name="f", workflow_hash=workflow_hash, input="0", entry="", seed=seed)
            task = await store.create_task(spec)
            done = await client.wait(task.id, timeout=300)
            assert done.state is TaskState.COMPLETE, done.error
            report = await client.replay(task.id, replayer=Replayer(runtime=runtime))
            assert report.clean, report
            assert report.result == done.result
            results.append(json.loads(done.result or "null"))
    return results


def _ready(runtime: Runtime) -> Any:
    async def check() -> bool:
        return runtime.pool.ready() > 0

    return check


def _tried(runtime: Runtime) -> Any:
    """Until the pool has tried to make an instance after the first task: ahead, it
    gives up on the workflow; on the fallback, it keeps one without the import."""

    async def check() -> bool:
        return runtime.pool.refusals == 1 if AHEAD else runtime.pool.ready() > 0

    return check


@asynccontextmanager
async def _worker(
    tmp_path: Path, *, concurrency: int = 1, close_timeout: float = CLOSE_TIMEOUT
) -> AsyncIterator[tuple[SQLiteStore, Client, Runtime]]:
    """A SQLite store, its client, and a worker running on a runtime with a pool of
    one instance per workflow; the runtime is checked to close with no guest left."""
    store = await SQLiteStore.open(tmp_path / "durable.db")
    await store.migrate()
    runtime = Runtime(HostConfig(instance_pool=1))
    try:
        async with running(Worker(store, WorkerConfig(concurrency=concurrency), runtime=runtime)):
            yield store, Client(store), runtime
    finally:
        await store.close()
        assert runtime.close(timeout=close_timeout), "a guest was left inside wasmtime"


async def test_a_bundles_tasks_run_on_instances_with_their_workflow_imported(
    sql_store: Store, tmp_path: Path
) -> None:
    workflow_hash = await Client(sql_store).register_file(_folder(tmp_path, DRAWS))
    pooled = Runtime(HostConfig(instance_pool=1))
    fresh = Runtime(HostConfig(instance_pool=0))
    try:
        with_pool = await _run(sql_store, pooled, workflow_hash)
        without = await _run(sql_store, fresh, workflow_hash)
    finally:
        closed = [pooled.close(), fresh.close()]
    assert all(closed), "a guest was left inside wasmtime"
    # The second and third tasks ran on instances made ahead, with the workflow imported.
    assert pooled.pool.taken >= len(SEEDS) - 1
    assert pooled.pool.imported >= len(SEEDS) - 1 if AHEAD else pooled.pool.imported == 0
    assert pooled.pool.refusals == 0
    assert fresh.pool.taken == 0
    assert with_pool == without  # imported ahead or in the attempt: the same values
    first, second, again = with_pool
    assert first == again  # the same seed: the same values
    assert first["drawn"] != second["drawn"]  # another seed: another task's own draws
    assert first["uuid"] != second["uuid"]
    # The module-level draw comes before the reseed: the same on every instance.
    assert first["at_import"] == second["at_import"]


#: Imports with an effect, or that fail: never run ahead of a task.
REFUSED = {
    "output": 'print("loaded")\n',
    "clock": "import time\nLOADED_AT = time.time()\n",
    "entropy": "import os\nKEY = os.urandom(8)\n",
    "durable-call": "import durable\nTASK = durable.info().id\n",
    "reseed": "import random\nrandom.seed()\n",
}


@pytest.mark.parametrize("effect", sorted(REFUSED))
async def test_an_import_with_an_effect_runs_in_the_attempt(tmp_path: Path, effect: str) -> None:
    body = REFUSED[effect] + "\nimport durable\n\n\n@durable.workflow\ndef main(n):\n    return n\n"
    async with _worker(tmp_path) as (store, client, runtime):
        workflow_hash = await client.register_file(_folder(tmp_path, body))
        for n in range(2):
            if n:  # the pool tried to import it after the first task, and gave up
                await until(_tried(runtime))
            task = await client.launch(workflow_hash, name="f", input=n)
            done = await client.wait(task.id, timeout=300)
            assert (done.state, done.result) == (TaskState.COMPLETE, str(n)), done.error
            report = await client.replay(task.id, replayer=Replayer(runtime=runtime))
            assert report.clean, report
            logs = b"".join(c.data for c in await store.read_logs(task.id, limit=100))
            assert logs == (b"loaded\n" if effect == "output" else b""), logs
    assert runtime.pool.imported == 0
    assert runtime.pool.taken == 0 if AHEAD else runtime.pool.taken >= 1


async def test_an_import_that_fails_fails_each_task_the_same_way(tmp_path: Path) -> None:
    body = "import helper\nraise ValueError(f'bad scale {helper.SCALE}')\n"
    errors = []
    async with _worker(tmp_path) as (_, client, runtime):
        workflow_hash = await client.register_file(_folder(tmp_path, body))
        for n in range(2):
            if n:
                await until(_tried(runtime))
            task = await client.launch(workflow_hash, name="f", input=n)
            done = await client.wait(task.id, timeout=300)
            assert done.state is TaskState.FAILED
            errors.append(json.loads(done.error or "{}"))
    assert errors[0] == errors[1]
    assert (errors[0]["kind"], errors[0]["message"]) == ("ValueError", "bad scale 1000")
    assert 'File "flow.py", line 2' in errors[0]["traceback"]


async def test_an_import_that_computes_for_long_holds_up_no_other_task(tmp_path: Path) -> None:
    """Ahead of a task, the pool's thread stops the import at its budget and gives up on
    the workflow; in its attempt the import spins until the task's deadline, like any
    guest that spins. Other workflows' tasks run meanwhile and after."""
    async with _worker(tmp_path, concurrency=2, close_timeout=60) as (_, client, runtime):
        spin_hash = await client.register_file(_folder(tmp_path, "while True:\n    pass\n", "spin"))
        other_hash = await client.register_file(_folder(tmp_path, DRAWS))
        first = await client.launch(spin_hash, name="spin", timeout=2)
        spun = await client.wait(first.id, timeout=300)
        assert spun.state is TaskState.FAILED
        assert json.loads(spun.error or "{}")["kind"] == "TimeoutError", spun.error
        # Its refill imports it ahead: stopped at its budget, then refused.
        spinning = await client.launch(spin_hash, name="spin", timeout=30)
        for _ in range(3):  # while it spins in its attempt, and while the pool tries
            other = await client.launch(other_hash, name="other", input=0)
            done = await client.wait(other.id, timeout=300)
            assert done.state is TaskState.COMPLETE, done.error

        if AHEAD:  # stopped at its budget, then given up on
            await until(_tried(runtime))
        await client.cancel(spinning.id)
        assert (await client.wait(spinning.id, timeout=300)).state is TaskState.CANCELLED


async def test_the_standard_library_wins_over_a_file_of_the_same_name(tmp_path: Path) -> None:
    """The workflow's files are looked up first (`sys.path` has no files to look at),
    yet as in a standalone build a `json.py` beside the workflow does not replace
    `json`, which the interpreter imported when it was built."""
    body = "import json\nimport durable\nfrom helper import SCALE\n\n\n@durable.workflow\n"
    body += "def main(n):\n    return json.dumps({'n': n * SCALE})\n"
    path = _folder(tmp_path, body)
    (path.parent / "json.py").write_text("raise RuntimeError('the file beside it was imported')\n")
    async with _worker(tmp_path) as (_, client, runtime):
        workflow_hash = await client.register_file(path)
        for n in (1, 2):  # imported in the attempt, then ahead
            if n == 2:
                await until(_ready(runtime))
            task = await client.launch(workflow_hash, name="f", input=n)
            done = await client.wait(task.id, timeout=300)
            assert done.state is TaskState.COMPLETE, done.error
            assert json.loads(json.loads(done.result or "null")) == {"n": n * 1000}
    assert runtime.pool.taken >= 1
    assert runtime.pool.imported >= 1 if AHEAD else runtime.pool.imported == 0
