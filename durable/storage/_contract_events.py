"""Contract checks: notifications, cancellation, children, timeouts, names and filters."""

from __future__ import annotations

import json
from datetime import timedelta

from durable.core.model import (
    Cancelled,
    Completed,
    Failed,
    Lease,
    Outcome,
    Released,
    Suspended,
    TaskState,
)
from durable.core.side_writes import ConsumeNotification
from durable.errors import (
    ConflictError,
    InvalidStateError,
    LeaseLostError,
    NotFoundError,
    TaskNotFoundError,
)
from durable.storage._contract import (
    HOUR,
    WASM,
    assert_raises,
    batch,
    check,
    claim_ids,
    claimed,
    near,
    new_task,
    now,
)
from durable.storage.base import Store

WAIT = Suspended(wakeup_at=None, on_event=True)  # park until a notification or a child


# -- launching, naming, listing -----------------------------------------------------------


@check
async def check_timeout_sets_a_deadline(store: Store) -> None:
    timed = await new_task(store, timeout=90)
    assert timed.deadline_at is not None
    assert near(timed.deadline_at, timed.created_at + timedelta(seconds=90))
    assert (await store.get_task(timed.id)).deadline_at == timed.deadline_at
    assert (await new_task(store)).deadline_at is None


@check
async def check_find_workflow_returns_the_latest_binary_of_a_name(store: Store) -> None:
    first = await store.put_workflow(WASM + b"1", name="wf")
    second = await store.put_workflow(WASM + b"2", name="wf")
    assert await store.find_workflow("wf") == second
    assert await store.put_workflow(WASM + b"1", name="wf") == first
    assert await store.find_workflow("wf") == first, "storing again makes it the latest"
    await store.put_workflow(WASM + b"3")  # no name: not findable by one
    await assert_raises(NotFoundError, store.find_workflow("other"))


@check
async def check_list_tasks_filters_by_name_glob_and_parent(store: Store) -> None:
    root = await new_task(store, "root")
    a = await new_task(store, "fetch-a", parent_id=root.id)
    b = await new_task(store, "fetch-b", parent_id=root.id)
    other = await new_task(store, "send", parent_id=a.id)

    async def ids(**filters: object) -> list[int]:
        return [t.id for t in await store.list_tasks(**filters)]  # type: ignore[arg-type]

    assert await ids(name_glob="fetch-*") == [b.id, a.id]
    assert await ids(name_glob="fetch-?") == [b.id, a.id]
    assert await ids(name_glob="fetch") == [], "the pattern must match the whole name"
    assert await ids(name_glob="Fetch-*") == [], "matching is case-sensitive"
    assert await ids(parent_id=root.id) == [b.id, a.id]
    assert await ids(parent_id=a.id) == [other.id]
    assert await ids(parent_id=root.id, name_glob="*-a") == [a.id]
    assert await ids(parent_id=root.id, limit=1) == [b.id]
    assert await ids(parent_id=root.id, states=[TaskState.ACTIVE]) == []


# -- notifications ------------------------------------------------------------------------


@check
async def check_notifications_queue_in_order_per_task(store: Store) -> None:
    one, two = await new_task(store), await new_task(store)
    before = now()
    a = await store.notify(one.id, "approve", '{"by": "ann"}')
    b = await store.notify(one.id, "reject", "null")
    c = await store.notify(two.id, "approve", "1")
    assert a.seq < b.seq < c.seq, "seq grows in order of arrival"
    assert (a.task_id, a.event, a.data) == (one.id, "approve", '{"by": "ann"}')
    assert a.created_at >= before - timedelta(seconds=5)
    assert await store.next_notification(one.id) == a
    assert await store.next_notification(one.id, event="reject") == b
    assert await store.next_notification(one.id, event="other") is None
    assert await store.next_notification(two.id) == c


@check
async def check_notify_with_a_key_queues_once(store: Store) -> None:
    task, other = await new_task(store), await new_task(store)
    first = await store.notify(task.id, "go", "1", key="k")
    again = await store.notify(task.id, "go", "2", key="k")
    assert again == first, "a second notify with the same key must return the first"
    (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=3600)
    assert claim.task.id == task.id
    await store.append(claim.lease, [], [], writes=[ConsumeNotification(seq=first.seq)])
    assert await store.next_notification(task.id) is None, "the key queued only one"
    elsewhere = await store.notify(other.id, "go", "3", key="k")
    assert elsewhere.seq != first.seq, "keys are per recipient"


@check
async def check_notify_unknown_or_ended_task_raises(store: Store) -> None:
    claim = await claimed(store)
    await assert_raises(TaskNotFoundError, store.notify(claim.task.id + 99, "go", "1"))
    await store.finish(claim.lease, Completed(result="1"))
    ended = store.notify(claim.task.id, "go", "1")
    await assert_raises(InvalidStateError, ended, match=f"task {claim.task.id} is already complete")


@check
async def check_consumed_notifications_go_with_the_events(store: Store) -> None:
    claim = await claimed(store)
    a = await store.notify(claim.task.id, "a", "1")
    b = await store.notify(claim.task.id, "b", "2")
    await store.append(claim.lease, batch(0, 1), [], writes=[ConsumeNotification(seq=a.seq)])
    assert await store.next_notification(claim.task.id) == b
    await store.finish(
        claim.lease, Completed(result="1"), batch(1, 1), writes=[ConsumeNotification(seq=b.seq)]
    )
    assert await store.next_notification(claim.task.id) is None
    assert len(await store.load_history(claim.task.id)) == 2


@check
async def check_a_claim_hands_over_only_the_oldest_pending_notification(store: Store) -> None:
    # `Claim.notification` may be left None (a store that does not read it ahead); if
    # set, it is what `next_notification` answers after the claim: never one consumed.
    first = await claimed(store)
    assert first.notification is None, "a new task has no notification"
    a = await store.notify(first.task.id, "a", "1")
    b = await store.notify(first.task.id, "b", "2")
    await store.finish(first.lease, WAIT, batch(0, 1), writes=[ConsumeNotification(seq=a.seq)])
    (second,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)
    assert second.notification in (None, b), f"handed {second.notification}, pending {b}"
    await store.finish(second.lease, WAIT, batch(1, 1), writes=[ConsumeNotification(seq=b.seq)])
    c = await store.notify(first.task.id, "c", "3")
    d = await store.notify(first.task.id, "d", "4")
    (third,) = await store.claim(worker_id="w1", limit=1, lease_seconds=0)
    assert third.notification in (None, c)
    # A takeover: the lapsed lease could still consume until the claim, so a store
    # hands over only what is pending when the claim holds the task.
    await store.append(third.lease, batch(2, 1), [], writes=[ConsumeNotification(seq=c.seq)])
    (fourth,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)
    assert fourth.task.id == first.task.id
    assert fourth.notification in (None, d), f"handed {fourth.notification}, pending {d}"
    assert await store.next_notification(first.task.id) == d


@check
async def check_bad_consumption_writes_nothing(store: Store) -> None:
    claim = await claimed(store)
    other = await new_task(store)
    mine = await store.notify(claim.task.id, "a", "1")
    theirs = await store.notify(other.id, "a", "1")
    await store.append(claim.lease, batch(0, 1), [], writes=[ConsumeNotification(seq=mine.seq)])
    later = await store.notify(claim.task.id, "b", "2")
    for seqs in ([mine.seq], [theirs.seq], [later.seq, later.seq], [later.seq + 1000]):
        bad = [ConsumeNotification(seq=seq) for seq in seqs]
        await assert_raises(ConflictError, store.append(claim.lease, batch(1, 1), [], writes=bad))
        await assert_raises(
            ConflictError, store.finish(claim.lease, Completed(result="1"), writes=bad)
        )
    lease = claim.lease
    for stale in (
        Lease(task_id=lease.task_id, worker_id=lease.worker_id, token=lease.token - 1),
        Lease(task_id=lease.task_id, worker_id=lease.worker_id, token=lease.token + 1),
        Lease(task_id=lease.task_id, worker_id="someone-else", token=lease.token),
    ):
        await assert_raises(
            LeaseLostError, store.append(stale, [], [], writes=[ConsumeNotification(seq=later.seq)])
        )
    assert len(await store.load_history(claim.task.id)) == 1, "a refused write wrote events"
    assert await store.next_notification(claim.task.id) == later, "a refused write consumed"
    assert await store.next_notification(other.id) == theirs
    assert (await store.get_task(claim.task.id)).state is TaskState.ACTIVE


@check
async def check_a_notification_wakes_a_task_waiting_on_events(store: Store) -> None:
    waiting = await claimed(store)
    await store.finish(waiting.lease, WAIT)
    sleeping = await claimed(store)
    await store.finish(sleeping.lease, Suspended(wakeup_at=now() + HOUR, on_event=False))
    assert await claim_ids(store) == []
    await store.notify(sleeping.task.id, "go", "1")
    assert await claim_ids(store) == [], "a task not waiting on events must stay parked"
    await store.notify(waiting.task.id, "go", "1")
    (claim,) = await store.claim(worker_id="w2", limit=5, lease_seconds=3600)
    assert claim.task.id == waiting.task.id
    assert claim.lease.token > waiting.lease.token


@check
async def check_a_wake_up_while_active_is_not_lost(store: Store) -> None:
    claim = await claimed(store)
    await store.notify(claim.task.id, "go", "1")  # arrives while the task runs
    await store.finish(claim.lease, WAIT)
    (again,) = await store.claim(worker_id="w2", limit=5, lease_seconds=3600)
    assert again.task.id == claim.task.id, "the pending wake-up must make it runnable"
    await store.finish(again.lease, WAIT)  # the claim used the pending wake-up up
    assert await claim_ids(store) == []


@check
async def check_the_end_of_a_child_wakes_its_parent(store: Store) -> None:
    parent = await claimed(store)
    children = [await new_task(store, f"child{i}", parent_id=parent.task.id) for i in range(3)]
    await store.finish(parent.lease, WAIT)
    leases = {
        c.task.id: c.lease for c in await store.claim(worker_id="w", limit=3, lease_seconds=3600)
    }
    assert sorted(leases) == [c.id for c in children]
    outcomes: list[Outcome] = [Completed(result="1"), Failed(error="{}"), Cancelled(error="{}")]
    for child, outcome in zip(children, outcomes, strict=True):
        await store.finish(leases[child.id], outcome)
        (woken,) = await store.claim(worker_id="w2", limit=5, lease_seconds=3600)
        assert woken.task.id == parent.task.id, f"a {type(outcome).__name__} child must wake it"
        if child is not children[-1]:
            await store.finish(woken.lease, WAIT)


@check
async def check_a_child_ending_while_the_parent_runs_is_not_lost(store: Store) -> None:
    parent = await claimed(store)
    child = await new_task(store, "child", parent_id=parent.task.id)
    (running,) = await store.claim(worker_id="w2", limit=5, lease_seconds=3600)
    assert running.task.id == child.id
    await store.finish(running.lease, Completed(result="1"))
    await store.finish(parent.lease, WAIT)
    assert await claim_ids(store) == [parent.task.id]


# -- cancellation -------------------------------------------------------------------------


@check
async def check_cancel_ends_ready_and_suspended_tasks_at_once(store: Store) -> None:
    ready = await new_task(store)
    cancelled = await store.request_cancel(ready.id)
    assert (cancelled.state, cancelled.owner) == (TaskState.CANCELLED, None)
    assert cancelled.error is not None
    assert json.loads(cancelled.error)["kind"] == "Cancelled"
    assert await store.get_task(ready.id) == cancelled
    sleeping = await claimed(store)
    await store.finish(sleeping.lease, Suspended(wakeup_at=now() - timedelta(seconds=1)))
    assert (await store.request_cancel(sleeping.task.id)).state is TaskState.CANCELLED
    assert await claim_ids(store) == [], "cancelled tasks are never claimed"
    await assert_raises(LeaseLostError, store.append(sleeping.lease, batch(0, 1), []))


@check
async def check_cancel_of_an_active_task_is_a_request_its_worker_sees(store: Store) -> None:
    claim = await claimed(store, "w1", lease_seconds=3600)
    assert await store.renew_leases(worker_id="w1", lease_seconds=3600) == []
    asked = await store.request_cancel(claim.task.id)
    assert (asked.state, asked.cancel_requested, asked.owner) == (TaskState.ACTIVE, True, "w1")
    assert await store.renew_leases(worker_id="w1", lease_seconds=0) == [claim.task.id]
    assert await store.renew_leases(worker_id="w2", lease_seconds=0) == []
    (taken,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)  # lease lapsed
    assert taken.task.cancel_requested, "whoever claims it next must see the request"
    error = json.dumps({"kind": "Cancelled", "message": "stop", "traceback": ""})
    await store.finish(taken.lease, Cancelled(error=error), batch(0, 1))
    task = await store.get_task(claim.task.id)
    assert (task.state, task.error, task.owner) == (TaskState.CANCELLED, error, None)
    assert len(await store.load_history(task.id)) == 1


@check
async def check_cancel_reaches_every_unfinished_descendant(store: Store) -> None:
    root = await new_task(store, "root")
    child = await new_task(store, "child", parent_id=root.id)
    done = await new_task(store, "done", parent_id=root.id)
    grandchild = await new_task(store, "grandchild", parent_id=child.id)
    outsider = await new_task(store, "outsider")
    claims = {c.task.id: c for c in await store.claim(worker_id="w", limit=5, lease_seconds=3600)}
    await store.finish(claims[done.id].lease, Completed(result="1"))
    await store.finish(claims[root.id].lease, WAIT)
    await store.finish(claims[child.id].lease, Released())
    await store.finish(claims[outsider.id].lease, Released())
    # Now: root ready (done's end woke it), child ready, done complete, grandchild
    # active, outsider ready.
    assert (await store.request_cancel(root.id)).state is TaskState.CANCELLED
    states = {t.id: (t.state, t.cancel_requested) for t in await store.list_tasks()}
    assert states[child.id][0] is TaskState.CANCELLED
    assert states[done.id][0] is TaskState.COMPLETE
    assert states[grandchild.id] == (TaskState.ACTIVE, True)
    assert states[outsider.id] == (TaskState.READY, False)


@check
async def check_cancel_of_an_ended_or_unknown_task_raises(store: Store) -> None:
    claim = await claimed(store)
    await store.finish(claim.lease, Failed(error="{}"))
    ended = store.request_cancel(claim.task.id)
    await assert_raises(InvalidStateError, ended, match=f"task {claim.task.id} is already failed")
    await assert_raises(TaskNotFoundError, store.request_cancel(claim.task.id + 99))


@check
async def check_cancelling_a_child_wakes_its_parent(store: Store) -> None:
    parent = await claimed(store)
    child = await new_task(store, "child", parent_id=parent.task.id)
    await store.finish(parent.lease, WAIT)
    await store.request_cancel(child.id)
    assert await claim_ids(store) == [parent.task.id]
