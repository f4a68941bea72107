"""Contract checks: claim affinity (`Suspended(kept=True)`, `claim(affinity_grace=...)`).

A task suspended by a worker that keeps its instance live is held for that worker for a
grace after it becomes runnable; other claims pass it over until then, and every claim
clears the hold. Checked without sleeping: a grace of an hour holds, a grace of 0 (or
shorter than the time since a past timer) has passed.
"""

from __future__ import annotations

from datetime import timedelta

from durable.core.model import Suspended, TaskState
from durable.storage._contract import HOUR, check, claimed, now, within
from durable.storage.base import Store


async def _ids(store: Store, worker: str, grace: float) -> list[int]:
    claims = await store.claim(worker_id=worker, limit=10, lease_seconds=3600, affinity_grace=grace)
    return [c.task.id for c in claims]


@check
async def check_a_kept_task_woken_is_left_to_its_worker_for_the_grace(store: Store) -> None:
    claim = await claimed(store, "keeper")
    task_id = claim.task.id
    await store.finish(claim.lease, Suspended(wakeup_at=None, on_event=True, kept=True))
    assert await _ids(store, "other", 3600) == [], "suspended: nothing to claim yet"
    before = now()
    await store.notify(task_id, "go", "1")
    assert (await store.get_task(task_id)).state is TaskState.READY
    assert await _ids(store, "other", 3600) == [], "held for its keeper during the grace"
    # Other workers look again when the grace ends.
    held_until = await store.next_wakeup(affinity_grace=3600)
    assert within(held_until, before + HOUR, now() + HOUR), held_until
    (again,) = await store.claim(
        worker_id="keeper", limit=10, lease_seconds=3600, affinity_grace=3600
    )
    assert again.task.id == task_id, "its keeper takes it at once"
    # The claim cleared the hold: suspended again without keeping, anyone takes it.
    await store.finish(again.lease, Suspended(wakeup_at=None, on_event=True))
    await store.notify(task_id, "go", "2")
    assert await _ids(store, "other", 3600) == [task_id]


@check
async def check_after_the_grace_anyone_claims_a_kept_task(store: Store) -> None:
    claim = await claimed(store, "keeper")
    task_id = claim.task.id
    await store.finish(claim.lease, Suspended(wakeup_at=None, on_event=True, kept=True))
    await store.notify(task_id, "go", "1")
    assert await _ids(store, "other", 3600) == []
    # A keeper that is dead or busy: once the grace has passed, another worker takes it.
    (taken,) = await store.claim(worker_id="other", limit=10, lease_seconds=3600, affinity_grace=0)
    assert taken.task.id == task_id
    assert taken.task.state is TaskState.ACTIVE
    assert taken.task.owner == "other"


@check
async def check_a_kept_timer_is_held_from_its_due_time(store: Store) -> None:
    claim = await claimed(store, "keeper")
    task_id = claim.task.id
    past = now() - timedelta(seconds=30)  # due 30 s ago
    await store.finish(claim.lease, Suspended(wakeup_at=past, kept=True))
    assert await _ids(store, "other", 3600) == [], "due, but held for its keeper"
    assert await _ids(store, "other", 5) == [task_id], "due for longer than the grace"


@check
async def check_a_suspension_not_kept_holds_nothing(store: Store) -> None:
    claim = await claimed(store, "keeper")
    task_id = claim.task.id
    await store.finish(claim.lease, Suspended(wakeup_at=None, on_event=True))
    await store.notify(task_id, "go", "1")
    assert await store.next_wakeup(affinity_grace=3600) is None, "nothing held, nothing timed"
    assert await _ids(store, "other", 3600) == [task_id]
