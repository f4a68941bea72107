"""Contract checks: runs of a task (`ContinuedAsNew`, `RunStore`)."""

from __future__ import annotations

from durable.core.model import Completed, ContinuedAsNew, Lease, TaskState
from durable.errors import LeaseLostError
from durable.storage._contract import (
    assert_raises,
    batch,
    check,
    chunk,
    claim_ids,
    claimed,
    now,
    shape,
    within,
)
from durable.storage.base import RunStore, Store


def _runs(store: Store) -> RunStore:
    assert isinstance(store, RunStore), f"{type(store).__name__} keeps no runs"
    return store


@check
async def check_continue_as_new_starts_the_next_run_afresh(store: Store) -> None:
    runs = _runs(store)
    claim = await claimed(store)
    task_id = claim.task.id
    assert claim.task.run == 1
    assert await runs.list_runs(task_id) == []
    await store.append(claim.lease, batch(0, 2), [chunk("one ", 0), chunk("two ", 2)])
    before = now()
    await store.finish(
        claim.lease, ContinuedAsNew(input='{"n": 2}'), batch(2, 1), [chunk("end", 3)]
    )
    after = now()
    task = await store.get_task(task_id)
    assert (task.state, task.run, task.input, task.owner) == (TaskState.READY, 2, '{"n": 2}', None)
    assert await store.load_history(task_id) == [], "the new run starts with no history"
    assert await store.logged_bytes(task_id, 0) == 0, "the old run's output does not count"
    (kept,) = await runs.list_runs(task_id)
    assert (kept.run, kept.input, kept.events) == (1, '{"n": 1}', 3)
    assert within(kept.ended_at, before, after), (kept.ended_at, before, after)
    assert shape(await runs.load_run_history(task_id, 1)) == shape(batch(0, 3))
    assert await runs.load_run_history(task_id, 2) == []
    assert await runs.load_run_history(task_id, 7) == []
    # Run 2 is claimed like any ready task, and records from index 0 again.
    (again,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)
    assert (again.task.id, again.task.run, again.task.input) == (task_id, 2, '{"n": 2}')
    await store.append(again.lease, batch(0, 1), [chunk("new", 0)])
    assert await store.logged_bytes(task_id, 0) == 3
    assert shape(await runs.load_run_history(task_id, 2)) == shape(batch(0, 1))
    await store.finish(again.lease, Completed(result="5"))
    done = await store.get_task(task_id)
    assert (done.state, done.run, done.result) == (TaskState.COMPLETE, 2, "5")
    logs = await store.read_logs(task_id)
    assert b"".join(c.data for c in logs) == b"one two endnew", "every run's output is kept"


@check
async def check_many_runs_keep_one_run_of_history(store: Store) -> None:
    runs = _runs(store)
    claim = await claimed(store)
    task_id = claim.task.id
    for run in range(1, 6):
        assert claim.task.run == run
        assert await store.load_history(task_id) == []
        await store.finish(claim.lease, ContinuedAsNew(input=f'{{"n": {run + 1}}}'), batch(0, run))
        (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=3600)
    assert [(r.run, r.input, r.events) for r in await runs.list_runs(task_id)] == [
        (n, f'{{"n": {n}}}', n) for n in range(1, 6)
    ]
    for n in range(1, 6):
        assert shape(await runs.load_run_history(task_id, n)) == shape(batch(0, n))


@check
async def check_a_stale_lease_continues_nothing(store: Store) -> None:
    runs = _runs(store)
    claim = await claimed(store)
    task_id = claim.task.id
    await store.append(claim.lease, batch(0, 2), [])
    lease = claim.lease
    stale = Lease(task_id=task_id, worker_id=lease.worker_id, token=lease.token + 1)
    await assert_raises(LeaseLostError, store.finish(stale, ContinuedAsNew(input="2"), batch(2, 1)))
    task = await store.get_task(task_id)
    assert (task.state, task.run, task.input) == (TaskState.ACTIVE, 1, '{"n": 1}')
    assert shape(await store.load_history(task_id)) == shape(batch(0, 2))
    assert await runs.list_runs(task_id) == []
    assert await claim_ids(store) == [], "still held by its worker"
