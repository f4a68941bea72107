"""Contract checks: worker deaths and quarantine (see `durable.storage.quarantine`).

A takeover claims a task whose worker died (its lease lapsed, or `remove_worker`
expired it). Leases are made to lapse at once with `lease_seconds=0`.
"""

from __future__ import annotations

import json
from datetime import timedelta

from durable.core.model import (
    Cancelled,
    Completed,
    Failed,
    Outcome,
    Released,
    Suspended,
    TaskState,
    WorkerInfo,
)
from durable.errors import LeaseLostError
from durable.storage._contract import (
    HOUR,
    assert_raises,
    batch,
    check,
    claim_ids,
    claimed,
    new_task,
    now,
)
from durable.storage.base import Store


async def _take_over(
    store: Store, worker: str, *, max_deaths: int | None = None
) -> list[tuple[int, int]]:
    """Claim with a lease that lapses at once; return (task id, deaths) of each claim."""
    claims = await store.claim(worker_id=worker, limit=10, lease_seconds=0, max_deaths=max_deaths)
    return [(c.task.id, c.task.deaths) for c in claims]


@check
async def check_takeover_counts_a_worker_death_and_finish_resets_it(store: Store) -> None:
    outcomes: list[Outcome] = [
        Completed(result="1"),
        Failed(error='{"kind": "x"}'),
        Cancelled(error='{"kind": "Cancelled"}'),
        Suspended(wakeup_at=now() + HOUR),
        Released(),
    ]
    for outcome in outcomes:
        first = await claimed(store, "w0", lease_seconds=0)
        assert first.task.deaths == 0, "a task never taken over has no deaths"
        task_id = first.task.id
        assert await _take_over(store, "w1") == [(task_id, 1)], "a takeover counts one death"
        (again,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)
        assert (again.task.id, again.task.deaths) == (task_id, 2)
        assert (await store.get_task(task_id)).deaths == 2
        await store.finish(again.lease, outcome)
        assert (await store.get_task(task_id)).deaths == 0, f"{outcome} must reset the deaths"
        if isinstance(outcome, Released):
            assert await _take_over(store, "w3") == [(task_id, 0)], "a ready task: no death"
            await store.finish(
                (await store.claim(worker_id="w4", limit=1, lease_seconds=3600))[0].lease,
                Completed(result="2"),
            )


@check
async def check_claiming_back_a_lapsed_lease_is_no_death(store: Store) -> None:
    # The worker is alive: its heartbeat was late, say. Only another worker's claim counts.
    first = await claimed(store, "w1", lease_seconds=0)
    assert await _take_over(store, "w1", max_deaths=1) == [(first.task.id, 0)]
    assert await _take_over(store, "w2", max_deaths=2) == [(first.task.id, 1)]


@check
async def check_remove_worker_expiry_counts_a_death(store: Store) -> None:
    await store.register_worker(WorkerInfo(id="w1", hostname="h", pid=1, started_at=now()))
    mine = await claimed(store, "w1", lease_seconds=3600)
    await store.remove_worker("w1")
    (again,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)
    assert (again.task.id, again.task.deaths) == (mine.task.id, 1)


@check
async def check_release_before_the_guest_starts_keeps_the_deaths(store: Store) -> None:
    first = await claimed(store, "w0", lease_seconds=0)
    (taken,) = await store.claim(worker_id="w1", limit=1, lease_seconds=3600)
    assert taken.task.deaths == 1
    await store.finish(taken.lease, Released(started=False))
    stored = await store.get_task(first.task.id)
    assert (stored.state, stored.deaths) == (TaskState.READY, 1), "deaths must be kept"
    (again,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)
    assert again.task.deaths == 1, "claiming a ready task is no takeover: no new death"


@check
async def check_nth_takeover_quarantines_the_task(store: Store) -> None:
    first = await claimed(store, "w0", lease_seconds=0)
    task_id = first.task.id
    assert await _take_over(store, "w1", max_deaths=3) == [(task_id, 1)]
    (last,) = await store.claim(worker_id="w2", limit=1, lease_seconds=0, max_deaths=3)
    assert last.task.deaths == 2
    innocent = await new_task(store)
    noticed = now()
    claims = await store.claim(worker_id="w3", limit=5, lease_seconds=3600, max_deaths=3)
    assert [c.task.id for c in claims] == [innocent.id], "the 3rd death fails the task"
    failed = await store.get_task(task_id)
    assert failed.state is TaskState.FAILED
    assert (failed.owner, failed.deaths, failed.attempts) == (None, 3, 3), failed
    error = json.loads(failed.error or "{}")
    assert error["kind"] == "Quarantined", error
    assert (
        f"task {task_id} was running when its worker died 3 times in a row" in error["message"]
    ), error
    assert noticed.strftime("%Y-%m-%d") in error["message"] or (
        (noticed - timedelta(days=1)).strftime("%Y-%m-%d") in error["message"]
    ), error
    await assert_raises(LeaseLostError, store.append(last.lease, batch(0, 1), []))
    assert await claim_ids(store, "w4") == [], "a quarantined task is never claimed again"


@check
async def check_without_a_limit_takeovers_go_on(store: Store) -> None:
    first = await claimed(store, "w0", lease_seconds=0)
    for deaths in range(1, 6):
        assert await _take_over(store, f"w{deaths}") == [(first.task.id, deaths)]


@check
async def check_quarantine_wakes_a_parent_waiting_on_the_child(store: Store) -> None:
    parent = await claimed(store, "w0", lease_seconds=3600)
    child = await new_task(store, "child", parent_id=parent.task.id)
    await store.finish(parent.lease, Suspended(wakeup_at=now() + HOUR, on_event=True))
    assert await _take_over(store, "w1") == [(child.id, 0)]
    assert await _take_over(store, "w2", max_deaths=2) == [(child.id, 1)]
    assert await _take_over(store, "w3", max_deaths=2) == [], "the child is quarantined"
    assert (await store.get_task(child.id)).state is TaskState.FAILED
    assert (await store.get_task(parent.task.id)).state is TaskState.READY, "parent woken"
    assert await claim_ids(store, "w4") == [parent.task.id]


@check
async def check_last_chance_tasks_are_handed_out_one_at_a_time(store: Store) -> None:
    a, b = await new_task(store, "a"), await new_task(store, "b")
    assert [t for t, _ in await _take_over(store, "w0")] == [a.id, b.id]
    assert await _take_over(store, "w1", max_deaths=3) == [(a.id, 1), (b.id, 1)]
    fresh = await new_task(store, "fresh")
    # Both now have one death left (3 - 1): one per claim at most, none with 0 allowed.
    claims = await store.claim(
        worker_id="w2", limit=5, lease_seconds=3600, max_deaths=3, last_chances=1
    )
    assert [(c.task.id, c.task.deaths) for c in claims] == [(a.id, 2), (fresh.id, 0)]
    none = await store.claim(worker_id="w3", limit=5, lease_seconds=0, max_deaths=3, last_chances=0)
    assert none == [], "a worker already running a last chance takes no other"
    (other,) = await store.claim(worker_id="w3", limit=5, lease_seconds=3600, max_deaths=3)
    assert (other.task.id, other.task.deaths) == (b.id, 2), "no limit: handed out"
    await store.finish(other.lease, Released(started=False))  # still on its last chance
    kept = await store.claim(worker_id="w4", limit=5, lease_seconds=0, max_deaths=3, last_chances=0)
    assert kept == [], "a ready task on its last chance is kept apart too"
    (back,) = await store.claim(
        worker_id="w4", limit=5, lease_seconds=3600, max_deaths=3, last_chances=1
    )
    assert (back.task.id, back.task.deaths) == (b.id, 2)
