"""Contract checks: runs of a task (`ContinuedAsNew`, `RunStore`)."""

from __future__ import annotations

from durable.core.model import Completed, ContinuedAsNew, Event, Lease, TaskState
from durable.core.runs import run_seed
from durable.core.side_writes import SetStatus
from durable.errors import ConflictError, LeaseLostError
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
from durable.storage.fork import ForkStore, TaskFork, TaskOrigin


def _runs(store: Store) -> RunStore:
    assert isinstance(store, RunStore), f"{type(store).__name__} keeps no runs"
    return store


def _forks(store: Store) -> ForkStore:
    assert isinstance(store, ForkStore), f"{type(store).__name__} cannot fork"
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
    assert await store.load_attempt(task_id) == ([], 0), "nor does it for an attempt"
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
async def check_status_values_carry_over_from_the_runs_start(store: Store) -> None:
    claim = await claimed(store)
    task_id = claim.task.id
    await store.append(
        claim.lease, batch(0, 5), [], writes=[SetStatus(key="early", value="1", position=0)]
    )
    # One set by the run's last events, in the finish that continues it.
    last = [SetStatus(key="late", value="2", position=6)]
    await store.finish(claim.lease, ContinuedAsNew(input="{}"), batch(5, 2), writes=last)
    values = {v.key: (v.value, v.position) for v in await store.read_status(task_id)}
    assert values == {"early": ("1", -1), "late": ("2", -1)}, (
        "carried over: in effect from the next run's start, not at the old run's positions"
    )
    (again,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)
    await store.append(
        again.lease, batch(0, 1), [], writes=[SetStatus(key="late", value="3", position=0)]
    )
    values = {v.key: (v.value, v.position) for v in await store.read_status(task_id)}
    assert values == {"early": ("1", -1), "late": ("3", 0)}
    fork = await _forks(store).fork_task(task_id, at=0, workflow_hash=again.task.workflow_hash)
    forked = {v.key: (v.value, v.position) for v in await store.read_status(fork.id)}
    assert forked == {"early": ("1", -1)}, "a fork at the run's start keeps what was carried"


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


#: The (at, run) each of the three forks below copies.
_COPIED = [(2, 1), (1, 2), (0, 3)]


@check
async def check_a_fork_of_run_k_copies_run_k(store: Store) -> None:
    forks = _forks(store)
    claim = await claimed(store)
    task_id, seed = claim.task.id, claim.task.seed
    # Run 1: three events and "a" at 0, "b" at 2; run 2: two events and "c" at 0, "d" at 1.
    await store.append(claim.lease, batch(0, 3), [chunk("a", 0), chunk("b", 2)])
    await store.finish(claim.lease, ContinuedAsNew(input='{"n": 2}'))
    (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=3600)
    second = [Event(index=i, label=f"two {i}", digest=None, payload="2") for i in range(2)]
    await store.append(claim.lease, second, [chunk("c", 0), chunk("d", 1)])
    await store.finish(claim.lease, ContinuedAsNew(input='{"n": 3}'))

    one = await forks.fork_task(task_id, at=2, workflow_hash=claim.task.workflow_hash, run=1)
    assert (one.run, one.input, one.seed) == (1, '{"n": 1}', run_seed(seed, 1))
    assert shape(await store.load_history(one.id)) == shape(batch(0, 2))
    assert b"".join(c.data for c in await store.read_logs(one.id)) == b"ab"
    two = await forks.fork_task(
        task_id, at=1, workflow_hash=claim.task.workflow_hash, run=2, input="7"
    )
    assert (two.input, two.seed) == ("7", run_seed(seed, 2))
    assert shape(await store.load_history(two.id)) == shape(second[:1])
    assert b"".join(c.data for c in await store.read_logs(two.id)) == b"cd"
    # The current run (3) has no events yet: a fork of it at 0 has its input and seed.
    three = await forks.fork_task(task_id, at=0, workflow_hash=claim.task.workflow_hash)
    assert (three.input, three.seed) == ('{"n": 3}', run_seed(seed, 3))
    assert await store.read_logs(three.id) == [], "no output of earlier runs"
    origins = [await forks.task_origin(f.id) for f in (one, two, three)]
    assert origins == [TaskOrigin(origin_id=task_id, at=at, run=run) for at, run in _COPIED]
    made = zip((one, two, three), _COPIED, strict=True)
    assert await forks.task_forks(task_id) == [
        TaskFork(task_id=f.id, at=at, run=run) for f, (at, run) in made
    ]
    for run, at in ((4, 0), (2, 3)):
        await assert_raises(
            ConflictError,
            forks.fork_task(task_id, at=at, workflow_hash=claim.task.workflow_hash, run=run),
        )
