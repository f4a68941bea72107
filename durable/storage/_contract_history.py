"""Contract checks: history, logs, finishing, timers and waiting for work."""

from __future__ import annotations

from datetime import timedelta

import anyio

from durable.core.model import (
    NOTE_POSITION,
    Completed,
    Event,
    Failed,
    Lease,
    LogChunk,
    Released,
    Stream,
    Suspended,
    TaskState,
)
from durable.errors import ConflictError, LeaseLostError
from durable.storage._contract import (
    HOUR,
    assert_raises,
    batch,
    check,
    chunk,
    claim_ids,
    claimed,
    new_task,
    now,
    shape,
    suspend,
    within,
)
from durable.storage.base import Store

# -- history and logs ---------------------------------------------------------------------


@check
async def check_append_and_load_history_round_trip(store: Store) -> None:
    claim = await claimed(store)
    assert await store.load_history(claim.task.id) == []
    assert await store.history_length(claim.task.id) == 0
    before = now()
    await store.append(claim.lease, batch(0, 3), [])
    odd = Event(index=3, label="wasi:random ünïcode", digest="", payload='"\\u0000 \\"q\\""')
    await store.append(claim.lease, [odd], [])
    await store.append(claim.lease, batch(4, 1), [])
    history = await store.load_history(claim.task.id)
    assert shape(history) == shape([*batch(0, 3), odd, *batch(4, 1)])
    assert await store.history_length(claim.task.id) == 5
    assert await store.history_length(claim.task.id + 1000) == 0  # no such task
    for event in history:
        assert event.created_at is not None
        assert event.created_at >= before - timedelta(seconds=5)


@check
async def check_event_gap_or_duplicate_raises_conflict_and_writes_nothing(store: Store) -> None:
    claim = await claimed(store)
    await store.append(claim.lease, batch(0, 2), [])
    bad_batches = {
        "gap": batch(3, 1),
        "duplicate": batch(1, 1),
        "rewrite from 0": batch(0, 3),
        "duplicate inside the batch": [*batch(2, 1), *batch(2, 1)],
        "gap inside the batch": [*batch(2, 1), *batch(4, 1)],
    }
    for why, bad in bad_batches.items():
        await assert_raises(ConflictError, store.append(claim.lease, bad, [chunk(why)]))
        await assert_raises(ConflictError, store.finish(claim.lease, Completed(result="1"), bad))
    assert shape(await store.load_history(claim.task.id)) == shape(batch(0, 2))
    assert await store.read_logs(claim.task.id) == [], "a refused append must write no logs"
    assert (await store.get_task(claim.task.id)).state is TaskState.ACTIVE
    await store.append(claim.lease, batch(2, 1), [])  # the right index still works


@check
async def check_stale_lease_writes_nothing(store: Store) -> None:
    claim = await claimed(store, "w1")
    lease = claim.lease
    stale = [
        Lease(task_id=lease.task_id, worker_id=lease.worker_id, token=lease.token - 1),
        Lease(task_id=lease.task_id, worker_id=lease.worker_id, token=lease.token + 1),
        Lease(task_id=lease.task_id, worker_id="someone-else", token=lease.token),
    ]
    for bad in stale:
        await assert_raises(LeaseLostError, store.append(bad, batch(0, 1), []))
        await assert_raises(LeaseLostError, store.append(bad, batch(0, 1), [chunk("x")]))
        await assert_raises(LeaseLostError, store.append(bad, [], [chunk("x")]))
        await assert_raises(LeaseLostError, store.finish(bad, Completed(result="1")))
        await assert_raises(
            LeaseLostError, store.finish(bad, Released(), batch(0, 1), [chunk("x")])
        )
    assert await store.load_history(lease.task_id) == []
    assert await store.read_logs(lease.task_id) == []
    task = await store.get_task(lease.task_id)
    assert (task.state, task.owner) == (TaskState.ACTIVE, "w1")


@check
async def check_large_batches_are_written_whole(store: Store) -> None:
    claim = await claimed(store)
    logs = [chunk(f"line {i}\n", position=i) for i in range(450)]
    await store.append(claim.lease, batch(0, 1000), logs)
    history = await store.load_history(claim.task.id)
    assert [e.index for e in history] == list(range(1000))
    assert [c.seq for c in await store.read_logs(claim.task.id)] == list(range(1, 451))
    bad = batch(1000, 600) + batch(5, 1)
    await assert_raises(ConflictError, store.append(claim.lease, bad, logs))
    assert len(await store.load_history(claim.task.id)) == 1000
    assert len(await store.read_logs(claim.task.id)) == 450


@check
async def check_logs_are_numbered_in_order_and_filtered(store: Store) -> None:
    claim = await claimed(store)
    raw = bytes(range(256))  # not UTF-8: must come back byte for byte
    first = [chunk("a", 0), LogChunk(position=0, stream=Stream.STDERR, data=raw)]
    await store.append(claim.lease, batch(0, 1), first)
    await store.append(claim.lease, [], [chunk("b", 1)])
    await store.finish(claim.lease, Completed(result="0"), batch(1, 1), [chunk("c", 2)])
    logs = await store.read_logs(claim.task.id)
    assert [c.seq for c in logs] == [1, 2, 3, 4]
    assert [c.data for c in logs] == [b"a", raw, b"b", b"c"]
    assert [c.stream for c in logs] == [Stream.STDOUT, Stream.STDERR, Stream.STDOUT, Stream.STDOUT]
    assert [c.position for c in logs] == [0, 0, 1, 2]
    assert all(c.created_at is not None for c in logs)
    assert [c.seq for c in await store.read_logs(claim.task.id, after_seq=2)] == [3, 4]
    assert await store.read_logs(claim.task.id, after_seq=4) == []
    other = await claimed(store)
    await store.append(other.lease, [], [chunk("z")])
    assert [c.seq for c in await store.read_logs(other.task.id)] == [1], "seq counts per task"


@check
async def check_logs_page_and_count_bytes_per_position(store: Store) -> None:
    claim = await claimed(store)
    first = [chunk("ab", 0), chunk("cde", 1), LogChunk(position=1, stream=Stream.STDERR, data=b"f")]
    await store.append(claim.lease, batch(0, 1), first)
    note = LogChunk(position=NOTE_POSITION, stream=Stream.STDERR, data=b"note\n")
    await store.append(claim.lease, [], [chunk("gh", 1), note])
    assert [c.seq for c in await store.read_logs(claim.task.id, limit=2)] == [1, 2]
    assert [c.seq for c in await store.read_logs(claim.task.id, after_seq=2, limit=2)] == [3, 4]
    assert [c.seq for c in await store.read_logs(claim.task.id, after_seq=4, limit=9)] == [5]
    assert await store.read_logs(claim.task.id, limit=0) == []
    page = await store.read_logs(claim.task.id, after_seq=4)
    assert [(c.position, c.data) for c in page] == [(NOTE_POSITION, b"note\n")]
    assert await store.logged_bytes(claim.task.id, 0) == 2
    assert await store.logged_bytes(claim.task.id, 1) == 6, "both streams, every chunk"
    assert await store.logged_bytes(claim.task.id, 2) == 0
    other = await claimed(store)
    assert await store.logged_bytes(other.task.id, 1) == 0, "per task"


@check
async def check_load_attempt_reads_history_and_bytes_logged_at_its_end(store: Store) -> None:
    claim = await claimed(store)
    assert await store.load_attempt(claim.task.id) == ([], 0)
    await store.append(claim.lease, batch(0, 2), [chunk("ab", 0), chunk("cde", 2)])
    history, logged = await store.load_attempt(claim.task.id)
    assert shape(history) == shape(batch(0, 2))
    assert logged == 3, "the bytes at position 2, where an attempt from this history starts"
    assert history == await store.load_history(claim.task.id)


# -- finishing ----------------------------------------------------------------------------


@check
async def check_finish_completed_and_failed_end_the_task(store: Store) -> None:
    done = await claimed(store)
    result = '{"ok": true}'
    await store.finish(done.lease, Completed(result=result), batch(0, 2), [chunk("bye")])
    task = await store.get_task(done.task.id)
    assert (task.state, task.result, task.owner) == (TaskState.COMPLETE, result, None)
    assert task.updated_at >= done.task.updated_at
    assert len(await store.load_history(task.id)) == 2
    assert len(await store.read_logs(task.id)) == 1
    await assert_raises(LeaseLostError, store.append(done.lease, batch(2, 1), []))
    await assert_raises(LeaseLostError, store.finish(done.lease, Released()))

    failed = await claimed(store)
    error = '{"kind": "ValueError", "message": "no", "traceback": ""}'
    await store.finish(failed.lease, Failed(error=error))
    task = await store.get_task(failed.task.id)
    assert (task.state, task.error, task.owner) == (TaskState.FAILED, error, None)
    assert task.state.is_terminal
    assert await claim_ids(store) == []


@check
async def check_finish_released_makes_the_task_ready_for_anyone(store: Store) -> None:
    claim = await claimed(store, "w1")
    await store.finish(claim.lease, Released(), batch(0, 1))
    task = await store.get_task(claim.task.id)
    assert (task.state, task.owner) == (TaskState.READY, None)
    (again,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)
    assert again.task.id == claim.task.id
    assert again.lease.token > claim.lease.token
    assert again.task.attempts == 2
    # A claim may read the history's length with the task (None: it does not).
    assert again.history_length in (None, 1), again.history_length
    assert claim.history_length in (None, 0), claim.history_length
    await store.append(again.lease, batch(1, 1), [])  # history carries on
    await assert_raises(LeaseLostError, store.append(claim.lease, batch(2, 1), []))


@check
async def check_suspended_task_is_claimable_only_when_due(store: Store) -> None:
    later = await claimed(store)
    wake = now() + HOUR
    latest = await suspend(store, later.lease, wake, batch(0, 1))
    task = await store.get_task(later.task.id)
    assert (task.state, task.owner) == (TaskState.SUSPENDED, None)
    assert within(task.wakeup_at, wake, latest), (task.wakeup_at, wake)
    assert await claim_ids(store) == []
    assert within(await store.next_wakeup(), wake, latest)

    due = await claimed(store)
    past = now() - timedelta(seconds=1)
    latest = await suspend(store, due.lease, past, [])
    assert within(await store.next_wakeup(), past, latest)
    (claim,) = await store.claim(worker_id="w2", limit=5, lease_seconds=3600)
    assert claim.task.id == due.task.id
    assert claim.task.wakeup_at is None
    assert claim.lease.token > due.lease.token
    assert claim.task.attempts == 2
    await assert_raises(LeaseLostError, store.append(due.lease, batch(0, 1), []))


@check
async def check_suspended_without_wakeup_waits_for_ever(store: Store) -> None:
    claim = await claimed(store)
    await store.finish(claim.lease, Suspended(wakeup_at=None))
    task = await store.get_task(claim.task.id)
    assert (task.state, task.wakeup_at) == (TaskState.SUSPENDED, None)
    assert await claim_ids(store) == []
    assert await store.next_wakeup() is None


@check
async def check_next_wakeup_is_the_earliest_timer_or_lease_expiry(store: Store) -> None:
    assert await store.next_wakeup() is None
    await new_task(store)
    assert await store.next_wakeup() is None, "ready tasks do not wait on time"
    await store.claim(worker_id="w", limit=1, lease_seconds=2 * 3600)
    lease_end = await store.next_wakeup()
    assert lease_end is not None
    assert lease_end > now() + HOUR
    timer = await claimed(store, lease_seconds=3 * 3600)
    wake = now() + timedelta(minutes=30)
    latest = await suspend(store, timer.lease, wake, [])
    assert within(await store.next_wakeup(), wake, latest)


# -- waiting for work ---------------------------------------------------------------------


@check
async def check_wait_for_work_returns_by_its_timeout(store: Store) -> None:
    await store.wait_for_work(0.01)  # may return at once (spurious wake-ups are allowed)
    with anyio.fail_after(10):
        await store.wait_for_work(0.2)


@check
async def check_wait_for_work_wakes_on_a_new_task(store: Store) -> None:
    await store.wait_for_work(0)
    woke = anyio.Event()

    async def waiter() -> None:
        await store.wait_for_work(60)
        woke.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.05)
        await new_task(store)
        with anyio.fail_after(10):
            await woke.wait()


@check
async def check_wait_for_work_misses_no_change_between_calls(store: Store) -> None:
    await store.wait_for_work(0)
    claim = await claimed(store)  # work appears while nobody waits ...
    with anyio.fail_after(10):
        await store.wait_for_work(60)  # ... and the next wait returns promptly
    await store.finish(claim.lease, Released())
    with anyio.fail_after(10):
        await store.wait_for_work(60)


@check
async def check_close_is_idempotent(store: Store) -> None:
    await store.close()
    await store.close()
