"""Contract checks: task status values (`SetStatus` side-writes, `Store.read_status`)."""

from __future__ import annotations

from durable.core.model import Completed, Lease
from durable.core.side_writes import ConsumeNotification, SetStatus, SideWrite
from durable.errors import ConflictError, LeaseLostError
from durable.storage._contract import assert_raises, batch, check, claimed, new_task
from durable.storage.base import Store


def _status(key: str, value: str, position: int) -> SetStatus:
    return SetStatus(key=key, value=value, position=position)


async def _values(store: Store, task_id: int) -> dict[str, tuple[str, int]]:
    return {s.key: (s.value, s.position) for s in await store.read_status(task_id)}


@check
async def check_status_values_commit_with_their_events(store: Store) -> None:
    claim = await claimed(store)
    task_id = claim.task.id
    assert await store.read_status(task_id) == []
    await store.append(claim.lease, batch(0, 1), [], writes=[_status("phase", '"load"', 0)])
    await store.append(
        claim.lease,
        batch(1, 2),
        [],
        writes=[_status("phase", '"fit"', 1), _status("done", "0.5", 2), _status("done", "1", 2)],
    )
    assert await _values(store, task_id) == {"phase": ('"fit"', 1), "done": ("1", 2)}
    values = await store.read_status(task_id)
    assert [v.key for v in values] == ["done", "phase"], "ordered by key"
    assert all(v.updated_at.tzinfo is not None for v in values)
    ends = [_status("phase", '{"end": ["ü", null]}', 3)]
    await store.finish(claim.lease, Completed(result="1"), batch(3, 1), writes=ends)
    assert (await _values(store, task_id))["phase"] == ('{"end": ["ü", null]}', 3)
    assert await store.read_status((await new_task(store)).id) == [], "another task has none"
    assert await store.read_status(task_id + 10_000) == [], "no such task: none"


@check
async def check_refused_writes_set_no_status(store: Store) -> None:
    claim = await claimed(store)
    task_id = claim.task.id
    await store.append(claim.lease, batch(0, 1), [], writes=[_status("k", "1", 0)])
    gap = store.append(claim.lease, batch(5, 1), [], writes=[_status("k", "2", 5)])
    await assert_raises(ConflictError, gap)
    unknown: list[SideWrite] = [ConsumeNotification(seq=10_000), _status("k", "3", 1)]
    await assert_raises(ConflictError, store.append(claim.lease, batch(1, 1), [], writes=unknown))
    lease = claim.lease
    stale = Lease(task_id=lease.task_id, worker_id=lease.worker_id, token=lease.token + 1)
    await assert_raises(
        LeaseLostError, store.append(stale, batch(1, 1), [], writes=[_status("k", "4", 1)])
    )
    await assert_raises(
        LeaseLostError, store.finish(stale, Completed(result="1"), writes=[_status("x", "4", 1)])
    )
    assert await _values(store, task_id) == {"k": ("1", 0)}
