"""Property: a task that continues as new, crashed at any write and resumed, ends as if
never crashed.

`durable.continue_as_new` ends a run and starts the next in one transaction (the old
run's events archived, the task ready at run n + 1 with the new input). The script
model of the other property tests has one history per task, so this runs its own
workflow (`tests/workflows/continue_loop.py`: three runs, each spawning a child and
drawing random numbers in steps, then continuing with what it saw) and, for every
history-carrying write of an uninterrupted reference run, a task with the same seed is
crashed before that write is durable and, separately, right after it commits, then
resumed by a fresh worker once the dead one is removed. The resumed task must end like
the reference:

* the same result, which lists each run's child and first draw: no run is skipped
  or done twice, and each run's random numbers come from its own seed;
* the same runs (number, input, event count) and each run's identical history;
* exactly one child per run, each complete: a spawn is never doubled;
* the same log, each run's line exactly once.

Task ids are not part of "the same": a store may skip ids (an insert that finds its
idempotency key taken can use one up), so a child is named by its place among the
task's children, and every id the task recorded must be one of them.

Runs with one write per event (a crash point at every event index) and with the
default group commit, on the memory, SQLite and Postgres stores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from durable.core.model import NewTask, TaskState
from durable.host import Runtime
from durable.storage.base import RunStore, Store
from tests.helpers import WORKFLOWS, built
from tests.property.harness import (
    BACKENDS,
    Component,
    Snapshot,
    count_writes,
    crash,
    open_backend,
    resume,
    snapshot,
)

pytestmark = pytest.mark.anyio

#: Three runs of two steps each (besides the spawn and the first draw).
INPUT = {"runs": 3, "steps": 2}
SEED = 0x5EED_C0DE
SPAWN = "durable:children.spawn"

#: An event as compared: (label, digest, payload).
Event3 = tuple[str, str | None, str]


@pytest.fixture(scope="module")
def looper() -> Component:
    wasm, digest = built(WORKFLOWS / "continue_loop.py")
    return Component(wasm=wasm, hash=digest)


@dataclass(frozen=True)
class End:
    """How a continuing task ended: what must be the same after any crash."""

    task: Snapshot
    result: Any  # the task's result, children named by place
    runs: list[tuple[int, Any, int]]  # (run, input, events) of each ended run
    run_histories: list[list[Event3]]  # each ended run's events
    history: list[Event3]  # the current (last) run's events
    children: list[tuple[str, str | None]]  # each child's (state, result), oldest first

    def describe(self) -> str:
        return f"{self.task.describe()}\nruns {self.runs}\nchildren {self.children}"


async def _launch(store: Store, looper: Component) -> int:
    await store.put_workflow(looper.wasm, name="loop")
    spec = NewTask(
        name="loop",
        workflow_hash=looper.hash,
        input=json.dumps(INPUT),
        entry="loop",
        seed=SEED,
    )
    return (await store.create_task(spec)).id


async def _end(store: Store, task_id: int) -> End:
    assert isinstance(store, RunStore)
    runs = await store.list_runs(task_id)
    histories = [
        [(e.label, e.digest, e.payload) for e in await store.load_run_history(task_id, r.run)]
        for r in runs
    ]
    children = sorted(await store.list_tasks(parent_id=task_id, limit=100), key=lambda c: c.id)
    place = {c.id: f"child {k}" for k, c in enumerate(children)}
    task = await snapshot(store, task_id)
    return End(
        task=task,
        result=_named(task.result, place),
        runs=[(r.run, _named(json.loads(r.input), place), r.events) for r in runs],
        run_histories=[_spawns_named(h, place) for h in histories],
        history=_spawns_named([(e.label, e.digest, e.payload) for e in task.history], place),
        children=[(c.state.value, c.result) for c in children],
    )


def _named(value: Any, place: dict[int, str]) -> Any:
    """`value` (a result or an input: {"seen": [[child id, draw], ...]}) with each child
    id replaced by the child's place; KeyError for an id that is not a child's."""
    if not isinstance(value, dict) or "seen" not in value:
        return value
    return {**value, "seen": [[place[child], draw] for child, draw in value["seen"]]}


def _spawns_named(history: list[Event3], place: dict[int, str]) -> list[Event3]:
    """A history with each spawn's recorded child id replaced by the child's place."""
    out = []
    for label, digest, payload in history:
        if label == SPAWN:
            payload = json.dumps({"id": place[json.loads(payload)["id"]]})
        out.append((label, digest, payload))
    return out


def _check_same_end(reference: End, run: End, where: str) -> None:
    dump = f"{where}\n--- reference:\n{reference.describe()}\n--- this run:\n{run.describe()}"
    assert run.task.task.state is TaskState.COMPLETE, dump
    assert run.result == reference.result, dump
    assert run.task.task.run == reference.task.task.run, dump
    assert run.runs == reference.runs, dump
    assert run.run_histories == reference.run_histories, dump
    assert run.history == reference.history, dump
    assert run.children == reference.children, dump
    assert run.task.chunks() == reference.task.chunks(), f"the log differs: {dump}"


async def _every_crash_point(
    backend: str, runtime: Runtime, looper: Component, *, url: str | None = None
) -> int:
    """Crash at every write, before and after it; return how many writes there were."""
    async with open_backend(backend, url=url) as store:
        task_id = await _launch(store, looper)
        _, writes = await count_writes(store, runtime, task_id)
        reference = await _end(store, task_id)
    assert reference.task.task.state is TaskState.COMPLETE, reference.describe()
    assert len(reference.runs) == INPUT["runs"] - 1, "the runs before the last are kept"
    assert [state for state, _ in reference.children] == ["complete"] * INPUT["runs"]
    for crash_at in range(len(writes)):
        for after in (False, True):
            async with open_backend(backend, url=url) as store:
                task_id = await _launch(store, looper)
                crashed = await crash(store, runtime, task_id, crash_at=crash_at, after=after)
                await resume(store, runtime, crashed)
                _check_same_end(reference, await _end(store, task_id), crashed.where())
    return len(writes)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("config", ["per-event", "batched"])
async def test_every_crash_point_of_a_continuing_task_resumes_to_the_same_end(
    backend: str, config: str, runtimes: dict[str, Runtime], looper: Component
) -> None:
    writes = await _every_crash_point(backend, runtimes[config], looper)
    assert writes >= INPUT["runs"], "at least a finish per run"


@pytest.mark.postgres
async def test_every_crash_point_of_a_continuing_task_on_postgres(
    runtimes: dict[str, Runtime], looper: Component, shared_pg_url: str
) -> None:
    await _every_crash_point("postgres", runtimes["per-event"], looper, url=shared_pg_url)
