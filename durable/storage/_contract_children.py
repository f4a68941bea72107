"""Contract checks: a workflow cancels its own children (`CancelChild` side-writes)."""

from __future__ import annotations

from durable.core.model import Claim, Completed, Lease, TaskState
from durable.core.side_writes import CancelChild, SideWrite
from durable.core.task_error import TaskError
from durable.errors import ConflictError, LeaseLostError
from durable.storage._contract import assert_raises, batch, check, claimed, new_task
from durable.storage.base import Store


async def _states(store: Store, *ids: int) -> list[TaskState]:
    return [(await store.get_task(i)).state for i in ids]


async def _claim_next(store: Store, worker: str) -> Claim:
    (claim,) = await store.claim(worker_id=worker, limit=1, lease_seconds=3600)
    return claim


@check
async def check_cancel_child_commits_with_its_event(store: Store) -> None:
    parent = await claimed(store)
    pid = parent.task.id
    busy = await new_task(store, "busy", parent_id=pid)
    assert (await _claim_next(store, "w2")).task.id == busy.id
    idle = await new_task(store, "idle", parent_id=pid)
    grandchild = await new_task(store, "grandchild", parent_id=idle.id)
    stranger = await new_task(store, "stranger")
    writes: list[SideWrite] = [
        CancelChild(task_id=idle.id),
        CancelChild(task_id=busy.id),
        CancelChild(task_id=stranger.id),  # not a child: never touched
        CancelChild(task_id=idle.id),  # twice in one batch: as once
    ]
    await store.append(parent.lease, batch(0, 1), [], writes=writes)
    assert await _states(store, idle.id, grandchild.id) == [TaskState.CANCELLED] * 2
    ended = await store.get_task(idle.id)
    assert ended.error is not None
    assert TaskError.from_json(ended.error).kind == "Cancelled"
    running = await store.get_task(busy.id)
    assert running.state is TaskState.ACTIVE
    assert running.cancel_requested, "an active child is asked to stop"
    assert await store.renew_leases(worker_id="w2", lease_seconds=3600) == [busy.id]
    assert await _states(store, stranger.id, pid) == [TaskState.READY, TaskState.ACTIVE]
    assert not (await store.get_task(pid)).cancel_requested, "the parent itself goes on"
    assert len(await store.load_history(pid)) == 1


@check
async def check_cancel_child_leaves_an_ended_child_as_it_is(store: Store) -> None:
    parent = await claimed(store)
    child = await new_task(store, "child", parent_id=parent.task.id)
    done = await _claim_next(store, "w2")
    await store.finish(done.lease, Completed(result="7"))
    await store.append(parent.lease, batch(0, 1), [], writes=[CancelChild(task_id=child.id)])
    ended = await store.get_task(child.id)
    assert (ended.state, ended.result) == (TaskState.COMPLETE, "7")


@check
async def check_cancel_child_with_finish(store: Store) -> None:
    parent = await claimed(store)
    child = await new_task(store, "child", parent_id=parent.task.id)
    writes = [CancelChild(task_id=child.id)]
    await store.finish(parent.lease, Completed(result="1"), batch(0, 1), writes=writes)
    assert await _states(store, parent.task.id, child.id) == [
        TaskState.COMPLETE,
        TaskState.CANCELLED,
    ]


@check
async def check_refused_writes_cancel_no_child(store: Store) -> None:
    parent = await claimed(store)
    child = await new_task(store, "child", parent_id=parent.task.id)
    writes = [CancelChild(task_id=child.id)]
    gap = store.append(parent.lease, batch(3, 1), [], writes=writes)
    await assert_raises(ConflictError, gap)
    lease = parent.lease
    stale = Lease(task_id=lease.task_id, worker_id=lease.worker_id, token=lease.token + 1)
    await assert_raises(LeaseLostError, store.append(stale, batch(0, 1), [], writes=writes))
    await assert_raises(LeaseLostError, store.finish(stale, Completed(result="1"), writes=writes))
    assert await _states(store, child.id) == [TaskState.READY]
