"""Contract checks: forks (`durable.storage.fork`) and binary moves (`...moves`)."""

from __future__ import annotations

from durable.core.model import Completed, Suspended, TaskState
from durable.core.side_writes import SetStatus
from durable.errors import ConflictError, NotFoundError, TaskNotFoundError
from durable.storage._contract import (
    WASM,
    assert_raises,
    batch,
    check,
    chunk,
    claimed,
    new_task,
    shape,
)
from durable.storage.base import Store
from durable.storage.fork import ForkStore, TaskFork, TaskOrigin, WorkflowVersions
from durable.storage.moves import MoveStore

OTHER = WASM + b" v2"


def _forks(store: Store) -> ForkStore:
    assert isinstance(store, ForkStore), "every backend can fork"
    return store


def _moves(store: Store) -> MoveStore:
    assert isinstance(store, MoveStore), "every backend can move tasks"
    return store


@check
async def check_a_fork_copies_history_output_and_status_up_to_its_point(store: Store) -> None:
    claim = await claimed(store)
    origin = claim.task
    writes = [
        SetStatus(key="early", value='"a"', position=0),
        SetStatus(key="late", value='"b"', position=2),
    ]
    logs = [chunk("zero", 0), chunk("one", 1), chunk("two", 2), chunk("three", 3)]
    await store.append(claim.lease, batch(0, 4), logs, writes=writes)
    await store.finish(claim.lease, Completed(result="1"))
    other = await store.put_workflow(OTHER, name="contract")
    fork = await _forks(store).fork_task(origin.id, at=2, workflow_hash=other, input='{"n": 2}')
    assert fork.state is TaskState.READY
    assert fork.id != origin.id
    assert (fork.workflow_hash, fork.input, fork.seed) == (other, '{"n": 2}', origin.seed)
    assert (fork.name, fork.entry, fork.parent_id) == (origin.name, origin.entry, None)
    assert shape(await store.load_history(fork.id)) == shape(batch(0, 2))
    copied = await store.read_logs(fork.id)
    assert [(c.seq, c.data) for c in copied] == [(1, b"zero"), (2, b"one"), (3, b"two")]
    assert [(v.key, v.value) for v in await store.read_status(fork.id)] == [("early", '"a"')]
    assert await _forks(store).task_origin(fork.id) == TaskOrigin(origin_id=origin.id, at=2)
    assert await _forks(store).task_origin(origin.id) is None
    again = await _forks(store).fork_task(origin.id, at=4, workflow_hash=origin.workflow_hash)
    assert again.input == origin.input
    assert len(await store.read_status(again.id)) == 2
    assert await _forks(store).task_forks(origin.id) == [
        TaskFork(task_id=fork.id, at=2),
        TaskFork(task_id=again.id, at=4),
    ]
    assert await _forks(store).task_forks(origin.id, limit=1) == [TaskFork(task_id=fork.id, at=2)]
    assert len(await store.load_history(origin.id)) == 4, "the origin is untouched"
    assert len(await store.read_logs(origin.id)) == 4


@check
async def check_a_fork_outside_the_history_is_refused(store: Store) -> None:
    claim = await claimed(store)
    await store.append(claim.lease, batch(0, 2), [])
    forks = _forks(store)
    task = claim.task
    before = len(await store.list_tasks(limit=100))
    await assert_raises(
        ConflictError, forks.fork_task(task.id, at=3, workflow_hash=task.workflow_hash)
    )
    await assert_raises(
        ConflictError, forks.fork_task(task.id, at=-1, workflow_hash=task.workflow_hash)
    )
    await assert_raises(NotFoundError, forks.fork_task(task.id, at=1, workflow_hash="0" * 64))
    await assert_raises(
        TaskNotFoundError, forks.fork_task(task.id + 1000, at=0, workflow_hash=task.workflow_hash)
    )
    assert len(await store.list_tasks(limit=100)) == before, "nothing was created"


@check
async def check_workflow_hashes_lists_every_binary_of_a_name(store: Store) -> None:
    assert isinstance(store, WorkflowVersions)
    first = await store.put_workflow(WASM, name="shop")
    second = await store.put_workflow(OTHER, name="shop")
    assert sorted(await store.workflow_hashes("shop")) == sorted([first, second])
    assert await store.workflow_hashes("none") == []


@check
async def check_a_move_is_fenced_by_state_claims_and_history(store: Store) -> None:
    moves = _moves(store)
    claim = await claimed(store)
    task = claim.task
    old = task.workflow_hash
    new = await store.put_workflow(OTHER, name="contract")
    running = await store.get_task(task.id)

    async def move(attempts: int, events: int, from_hash: str = old) -> bool:
        return await moves.move_task(
            task.id, from_hash=from_hash, to_hash=new, attempts=attempts, events=events
        )

    assert not await move(running.attempts, 0), "a leased task is not moved"
    await store.append(claim.lease, batch(0, 2), [])
    await store.finish(claim.lease, Suspended(wakeup_at=None), [])
    seen = await store.get_task(task.id)
    assert not await move(seen.attempts, 1), "a history that is not the one replayed"
    assert not await move(seen.attempts - 1, 2), "claimed since the upgrade read it"
    assert not await move(seen.attempts, 2, from_hash="f" * 64), "on another binary"
    await assert_raises(
        NotFoundError,
        moves.move_task(task.id, from_hash=old, to_hash="0" * 64, attempts=1, events=2),
    )
    assert await moves.binary_moves(task.id) == []
    assert (await store.get_task(task.id)).workflow_hash == old, "nothing was written"
    assert await move(seen.attempts, 2)
    assert (await store.get_task(task.id)).workflow_hash == new
    [moved] = await moves.binary_moves(task.id)
    assert (moved.from_hash, moved.to_hash, moved.events) == (old, new, 2)
    assert moved.moved_at.tzinfo is not None
    assert not await move(seen.attempts, 2), "moved already: on another binary now"
    assert not await moves.move_task(
        task.id + 1000, from_hash=old, to_hash=new, attempts=0, events=0
    ), "no such task"
    fresh = await new_task(store)
    back = await moves.move_task(fresh.id, from_hash=old, to_hash=new, attempts=0, events=0)
    assert back, "a task that has not run yet moves"
    assert await moves.binary_moves(fresh.id) != []
    assert await moves.binary_moves(task.id + 1000) == []
