"""`durable.continue_as_new` on real components: a loop of 50 runs keeps one run of
history on every backend, each run's effects are its own (children, randomness), a
`durable worker --exit-when-idle` runs the loop to its end, a worker SIGKILLed in a run
resumes that run with its SQL insert done exactly once, and the example runs."""

from __future__ import annotations

import functools
import json
import signal
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable.cli import _lineage as lineage
from durable.client import Client
from durable.core.model import Task, TaskState
from durable.host import HostConfig, Runtime
from durable.js_build import build_js_workflow
from durable.storage import open_store
from durable.storage.base import RunStore, Store
from tests.helpers import (
    EXAMPLES,
    IDLE_WITHIN,
    WORKFLOWS,
    compiled,
    completed_result,
    durable_cmd,
    launch_task,
    run_cli,
    run_until_idle,
    stock_env,
    until,
)

pytestmark = pytest.mark.anyio

WORKFLOW = WORKFLOWS / "continue_loop.py"
#: A bound on a hang, not on speed.
HANG = 300.0


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    rt = Runtime(HostConfig())
    yield rt  # type: ignore[misc]
    rt.close()


@pytest.fixture(scope="module")
def wasm() -> bytes:
    return compiled(WORKFLOW)


def _runs(store: Store) -> RunStore:
    assert isinstance(store, RunStore)
    return store


async def test_fifty_runs_keep_one_run_of_history(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    task = await launch_task(store, wasm, "loop", {"runs": 50, "steps": 2}, workflow_name="loop")
    await run_until_idle(store, runtime)
    done = await store.get_task(task.id)
    result = completed_result(done)
    assert done.run == 50
    per_run = len(await _runs(store).load_run_history(task.id, 1))
    # spawn, the draw, two more steps: a run's history, whichever run it is.
    assert per_run == 4
    assert len(await store.load_history(task.id)) == per_run, "only the current run's events"
    runs = await _runs(store).list_runs(task.id)
    assert [r.run for r in runs] == list(range(1, 50))
    assert {r.events for r in runs} == {per_run}
    assert json.loads(runs[0].input) == {"runs": 50, "steps": 2}
    # Each run's effects are its own: a new child each run (the spawn's key has the run
    # in it), and its own randomness (the seed has it too).
    children = [child for child, _ in result["seen"]]
    values = [value for _, value in result["seen"]]
    assert len(set(children)) == 50, children
    assert len(set(values)) == 50, values
    kids = await store.list_tasks(parent_id=task.id, limit=100)
    assert sorted(k.id for k in kids) == sorted(children)
    assert all(k.state is TaskState.COMPLETE for k in kids)
    logs = b"".join(c.data for c in await store.read_logs(task.id))
    assert logs == b"".join(f"run {n}\n".encode() for n in range(1, 51)), "each line once"


async def test_show_lists_the_runs(store: Store, runtime: Runtime, wasm: bytes) -> None:
    task = await launch_task(store, wasm, "loop", {"runs": 3}, workflow_name="loop")
    await run_until_idle(store, runtime)
    runs = await Client(store).runs(task.id)
    assert [(r.run, r.events, r.ended_at is not None) for r in runs] == [
        (1, 3, True),
        (2, 3, True),
        (3, 3, False),
    ]


async def test_status_values_carry_over_to_later_runs(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    """Status values are the task's, not a run's: one set in run 1 is still there at
    run 3, and one set again in each run has the last run's value."""
    task = await launch_task(store, wasm, "statuses", {"runs": 3}, workflow_name="loop")
    await run_until_idle(store, runtime)
    assert completed_result(await store.get_task(task.id)) == 3
    values = {v.key: json.loads(v.value) for v in await store.read_status(task.id)}
    assert values == {"first": "set in run 1", "run": 3}
    # Positions are the current run's: one carried from an earlier run is -1 (in effect
    # from the run's start), not the index of an event of a run that is no longer current.
    positions = {v.key: v.position for v in await store.read_status(task.id)}
    assert positions == {"first": -1, "run": 0}
    # So a fork of the current run at its start keeps the carried value ("run" was set
    # again at event 0: the store keeps only its latest value, from after the fork point).
    fork = await Client(store).fork(task.id, at=0)
    assert {v.key: json.loads(v.value) for v in await store.read_status(fork.id)} == {
        "first": "set in run 1"
    }


async def test_follow_status_sees_a_value_set_at_the_same_position_of_a_later_run(
    store: Store, runtime: Runtime, wasm: bytes
) -> None:
    """Every run sets `run` at its event 0: each is a change to follow, though the
    position repeats."""
    task = await launch_task(store, wasm, "paced_statuses", {"runs": 3}, workflow_name="loop")
    client = Client(store)
    seen: list[int] = []

    async def follow() -> None:
        async for value in client.follow_status(task.id, key="run"):
            seen.append(json.loads(value.value))

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        for run in (1, 2, 3):
            await run_until_idle(store, runtime)
            await until(functools.partial(_has, seen, run), within=HANG)
            await client.notify(task.id, "next")
        await run_until_idle(store, runtime)
    assert completed_result(await store.get_task(task.id)) == 3
    assert seen == [1, 2, 3]


async def _has(seen: list[int], run: int) -> bool:
    return run in seen


async def test_a_fork_of_run_k_replays_run_k(store: Store, runtime: Runtime, wasm: bytes) -> None:
    origin = await launch_task(store, wasm, "loop", {"runs": 5}, workflow_name="loop")
    await run_until_idle(store, runtime)
    seen = completed_result(await store.get_task(origin.id))["seen"]
    # Run 3's first two events: its spawn and its draw. Run 1's would diverge (the
    # spawn's input differs), so a fork from the wrong run fails.
    fork = await Client(store).fork(origin.id, at=2, run=3)
    await run_until_idle(store, runtime)
    done = await store.get_task(fork.id)
    forked = completed_result(done)["seen"]
    assert forked[:3] == seen[:3], "run 3's child and draw, replayed"
    assert len(forked) == 5
    assert {child for child, _ in forked[3:]}.isdisjoint(child for child, _ in seen), (
        "the fork's later runs spawn children of their own"
    )
    assert done.run == 3, "the fork's runs 1 to 3 are the origin's runs 3 to 5"
    # `durable show` of each says which run the fork came from.
    client = Client(store)
    assert ("forked from", f"task {origin.id} at event 2 of run 3") in lineage.pairs(
        await lineage.read_lineage(client, fork.id)
    )
    assert ("forks", f"{fork.id} (at 2 of run 3)") in lineage.pairs(
        await lineage.read_lineage(client, origin.id)
    )


async def test_javascript_continue_as_new(store: Store, runtime: Runtime) -> None:
    wasm = build_js_workflow(WORKFLOWS / "js" / "continue_loop.js").wasm_path.read_bytes()
    task = await launch_task(store, wasm, "loop", {"runs": 4}, workflow_name="loop-js")
    misuse = await launch_task(store, wasm, "misuse", None, workflow_name="loop-js")
    await run_until_idle(store, runtime)
    done = await store.get_task(task.id)
    assert completed_result(done) == 4
    assert done.run == 4
    assert [r.events for r in await _runs(store).list_runs(task.id)] == [1, 1, 1]
    # A step whose body throws anything but a built-in error fails as `StepFailed`.
    assert completed_result(await store.get_task(misuse.id)) == (
        "StepFailed: DurableError: durable.continue_as_new inside step 'step inside': "
        "call it outside steps"
    )


# -- worker processes -----------------------------------------------------------------


def _env() -> dict[str, str]:
    return stock_env()


async def _launch(url: str, wasm: bytes, entry: str, value: Any) -> Task:
    store = await open_store(url)
    try:
        await store.migrate()
        return await launch_task(store, wasm, entry, value, workflow_name="loop")
    finally:
        await store.close()


async def _task(url: str, task_id: int) -> Task:
    store = await open_store(url)
    try:
        return await store.get_task(task_id)
    finally:
        await store.close()


async def test_exit_when_idle_worker_runs_the_loop_to_its_end(
    backend_url: str, wasm: bytes, tmp_path: Path
) -> None:
    task = await _launch(backend_url, wasm, "loop", {"runs": 50})
    proc = await anyio.to_thread.run_sync(
        lambda: run_cli(
            "worker", "--db", backend_url, "--exit-when-idle", cwd=tmp_path, timeout=HANG
        )
    )
    assert proc.returncode == 0, proc.stderr
    done = await _task(backend_url, task.id)
    assert done.state is TaskState.COMPLETE, (done.state, done.run, proc.stderr[-2000:])
    assert done.run == 50


async def test_a_worker_killed_in_a_run_resumes_it_with_each_insert_once(
    backend_url: str, wasm: bytes, tmp_path: Path
) -> None:
    table = f"cont_{uuid.uuid4().hex[:8]}"
    runs = 6
    task = await _launch(backend_url, wasm, "ledger", {"table": table, "runs": runs, "pause": 0.5})
    # A worker killed after its third insert, inside run 3's pause (or just after it).
    proc = await anyio.open_process(
        durable_cmd("worker", "--db", backend_url), cwd=tmp_path, env=_env()
    )
    try:
        await until(lambda: _inserted(backend_url, table, 3), within=HANG)
    finally:
        proc.send_signal(signal.SIGKILL)
        with anyio.fail_after(30):
            await proc.wait()
        await proc.aclose()
    killed_at = await _task(backend_url, task.id)
    assert killed_at.run >= 3, killed_at
    assert not killed_at.state.is_terminal, killed_at
    resumed = await anyio.to_thread.run_sync(
        lambda: run_cli(
            "worker", "--db", backend_url, "--exit-when-idle", cwd=tmp_path, timeout=HANG
        )
    )
    assert resumed.returncode == 0, resumed.stderr
    done = await _task(backend_url, task.id)
    assert completed_result(done) == runs
    assert done.run == runs
    assert await _rows(backend_url, table) == list(range(1, runs + 1)), "each run's insert once"


async def _inserted(url: str, table: str, count: int) -> bool:
    try:
        return len(await _rows(url, table)) >= count
    except Exception:  # the table is not there yet
        return False


async def _rows(url: str, table: str) -> list[int]:
    if url.startswith("sqlite:"):
        import sqlite3

        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path, timeout=30) as conn:
            return sorted(r[0] for r in conn.execute(f"SELECT run FROM {table}"))
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return sorted(r[0] for r in await conn.fetch(f"SELECT run FROM {table}"))
    finally:
        await conn.close()


# -- the example ------------------------------------------------------------------------


def test_the_example_counts_through_its_runs(tmp_path: Path) -> None:
    db = tmp_path / "example.db"
    proc = run_cli(
        "run",
        str(EXAMPLES / "continue_as_new.py"),
        "--db",
        str(db),
        "--input",
        '{"stop": 25, "every": 10}',
        cwd=tmp_path,
        timeout=IDLE_WITHIN,
    )
    assert proc.returncode == 0, proc.stderr
    ticks = [line for line in proc.stdout.splitlines() if line.startswith("tick")]
    assert ticks == [f"tick {n}" for n in range(1, 26)]
    show = run_cli("show", "1", "--db", str(db), cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "run 3 of 3" in show.stdout, show.stdout
