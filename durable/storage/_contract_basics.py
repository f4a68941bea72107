"""Contract checks: schema, binaries, tasks, workers, claims and leases."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import anyio

from durable.core.model import (
    Completed,
    Failed,
    NewTask,
    TaskState,
    WorkerInfo,
)
from durable.errors import LeaseLostError, NotFoundError, TaskNotFoundError
from durable.storage._contract import (
    HOUR,
    WASM,
    assert_raises,
    batch,
    check,
    chunk,
    claim_ids,
    claimed,
    near,
    new_task,
    now,
)
from durable.storage.base import Store

# -- schema and binaries ------------------------------------------------------------------


@check
async def check_schema_is_current(store: Store) -> None:
    current, latest = await store.schema_version()
    assert latest >= 1, f"latest schema version {latest} < 1"
    assert current == latest, f"a migrated store reports version {current}, latest {latest}"
    assert await store.migrate() == latest, "migrate() on a current store changed the version"
    assert isinstance(store.url, str), "url must be a string"
    assert store.url, "url must not be empty"


@check
async def check_put_workflow_is_idempotent_and_content_addressed(store: Store) -> None:
    digest = await store.put_workflow(WASM, name="a")
    assert digest == hashlib.sha256(WASM).hexdigest()
    assert await store.put_workflow(WASM, name="another name") == digest
    assert await store.get_workflow(digest) == WASM
    other = await store.put_workflow(WASM + b"!")
    assert other != digest
    assert await store.get_workflow(other) == WASM + b"!"


@check
async def check_get_unknown_workflow_raises_not_found(store: Store) -> None:
    await assert_raises(NotFoundError, store.get_workflow("0" * 64))


# -- tasks --------------------------------------------------------------------------------


@check
async def check_create_task_returns_a_ready_task(store: Store) -> None:
    before = now()
    task = await new_task(store, "hello", entry="main", seed=12345)
    after = now()
    assert task.state is TaskState.READY
    assert (task.name, task.entry, task.input, task.seed) == ("hello", "main", '{"n": 1}', 12345)
    assert task.workflow_hash == hashlib.sha256(WASM).hexdigest()
    assert task.owner is None
    assert task.attempts == 0
    assert task.wakeup_at is None
    assert task.result is None
    assert task.error is None
    assert task.parent_id is None
    assert task.created_at.tzinfo is not None
    assert task.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= task.created_at <= after + timedelta(seconds=5)
    assert await store.get_task(task.id) == task
    child = await new_task(store, "child", parent_id=task.id)
    assert child.parent_id == task.id


@check
async def check_zero_seed_is_replaced_by_a_random_63_bit_seed(store: Store) -> None:
    seeds = {(await new_task(store)).seed for _ in range(3)}
    assert all(0 < seed < 2**63 for seed in seeds), seeds
    assert len(seeds) == 3, f"random seeds repeat: {seeds}"


@check
async def check_task_ids_increase(store: Store) -> None:
    ids = [(await new_task(store)).id for _ in range(5)]
    assert ids == sorted(set(ids)), f"ids must increase: {ids}"


@check
async def check_get_unknown_task_raises_task_not_found(store: Store) -> None:
    task = await new_task(store)
    await assert_raises(TaskNotFoundError, store.get_task(task.id + 1000))


@check
async def check_create_task_for_unknown_workflow_raises_and_creates_nothing(store: Store) -> None:
    spec = NewTask(name="x", workflow_hash="f" * 64, input="null")
    await assert_raises(NotFoundError, store.create_task(spec))
    assert await store.list_tasks() == []


@check
async def check_idempotency_key_returns_the_existing_task(store: Store) -> None:
    first = await new_task(store, "first", idempotency_key="order-1")
    again = await new_task(store, "second", idempotency_key="order-1", seed=7)
    assert again == first, "a second launch with the same key must return the first task"
    other = await new_task(store, "other", idempotency_key="order-2")
    assert other.id != first.id
    assert {t.id for t in await store.list_tasks()} == {first.id, other.id}


@check
async def check_list_tasks_newest_first_with_limit_and_states(store: Store) -> None:
    tasks = [await new_task(store, f"t{i}") for i in range(4)]
    ids = [t.id for t in tasks]
    assert [t.id for t in await store.list_tasks()] == ids[::-1]
    assert [t.id for t in await store.list_tasks(limit=2)] == ids[:1:-1]
    await store.claim(worker_id="w", limit=1, lease_seconds=3600)  # the oldest becomes active
    assert [t.id for t in await store.list_tasks(states=[TaskState.ACTIVE])] == ids[:1]
    ready = await store.list_tasks(states=[TaskState.READY, TaskState.COMPLETE])
    assert [t.id for t in ready] == ids[:0:-1]
    assert await store.list_tasks(states=[TaskState.FAILED]) == []


# -- workers and claims -------------------------------------------------------------------


@check
async def check_workers_register_list_and_remove(store: Store) -> None:
    started = now().replace(microsecond=0)
    w1 = WorkerInfo(id="w1", hostname="h", pid=1, started_at=started)
    w2 = WorkerInfo(id="w2", hostname="h", pid=2, started_at=started + timedelta(seconds=1))
    await store.register_worker(w1)
    await store.register_worker(w2)
    await store.register_worker(w1)
    assert sorted(w.id for w in await store.list_workers()) == ["w1", "w2"]
    found = {w.id: w for w in await store.list_workers()}
    assert (found["w2"].hostname, found["w2"].pid) == ("h", 2)
    assert near(found["w2"].started_at, w2.started_at)
    await store.remove_worker("w1")
    await store.remove_worker("w1")
    await store.remove_worker("never-registered")
    assert [w.id for w in await store.list_workers()] == ["w2"]


@check
async def check_claim_takes_oldest_first_up_to_limit(store: Store) -> None:
    ids = [(await new_task(store)).id for _ in range(5)]
    assert await claim_ids(store, "w1", limit=2) == ids[:2]
    assert await claim_ids(store, "w2", limit=10) == ids[2:]
    assert await claim_ids(store, "w3", limit=10) == []


@check
async def check_claim_makes_the_task_active_with_a_lease(store: Store) -> None:
    task = await new_task(store)
    before = now()
    (claim,) = await store.claim(worker_id="w1", limit=5, lease_seconds=3600)
    assert claim.task.id == task.id
    assert claim.lease.task_id == task.id
    assert claim.lease.worker_id == "w1"
    assert claim.lease.token > 0
    assert claim.task.state is TaskState.ACTIVE
    assert claim.task.owner == "w1"
    assert claim.task.attempts == 1
    assert claim.task.updated_at >= before - timedelta(seconds=5)
    stored = await store.get_task(task.id)
    assert (stored.state, stored.owner, stored.attempts) == (TaskState.ACTIVE, "w1", 1)
    expires = await store.next_wakeup()
    assert expires is not None
    assert before + HOUR - timedelta(seconds=5) <= expires
    assert expires <= now() + HOUR + timedelta(seconds=5), expires


@check
async def check_finished_tasks_are_never_claimed(store: Store) -> None:
    for outcome in (Completed(result="1"), Failed(error='{"kind": "x"}')):
        claim = await claimed(store, lease_seconds=0)
        await store.finish(claim.lease, outcome)
    assert await claim_ids(store, "w2") == []


@check
async def check_concurrent_claimers_never_share_a_task(store: Store) -> None:
    ids = {(await new_task(store)).id for _ in range(30)}
    taken: list[int] = []

    async def claimer(worker: str) -> None:
        for _ in range(len(ids)):  # bounded, so that a store that re-hands tasks fails
            claims = await store.claim(worker_id=worker, limit=3, lease_seconds=3600)
            if not claims:
                return
            taken.extend(c.task.id for c in claims)

    async with anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(claimer, f"w{n}")
    assert sorted(taken) == sorted(ids), "each task must be claimed exactly once"


@check
async def check_expired_lease_is_reclaimed_and_the_old_one_fenced(store: Store) -> None:
    old = await claimed(store, "w1", lease_seconds=0)
    await store.append(old.lease, batch(0, 1), [])
    (new,) = await store.claim(worker_id="w2", limit=1, lease_seconds=3600)
    assert new.task.id == old.task.id
    assert new.lease.token > old.lease.token, "a new claim must get a greater token"
    assert new.task.attempts == 2
    assert new.task.owner == "w2"
    await assert_raises(LeaseLostError, store.append(old.lease, batch(1, 1), []))
    await assert_raises(LeaseLostError, store.append(old.lease, batch(1, 1), [chunk("x")]))
    await assert_raises(LeaseLostError, store.finish(old.lease, Completed(result="1")))
    assert len(await store.load_history(old.task.id)) == 1
    assert await store.read_logs(old.task.id) == []
    assert (await store.get_task(old.task.id)).state is TaskState.ACTIVE
    await store.append(new.lease, batch(1, 1), [])  # the new holder is unaffected
    assert len(await store.load_history(old.task.id)) == 2


@check
async def check_lapsed_lease_still_writes_until_someone_claims(store: Store) -> None:
    # Deliberate: the token fences, not the clock. A slow worker whose lease lapsed but
    # whose task nobody took over may still write.
    claim = await claimed(store, lease_seconds=0)
    await store.append(claim.lease, batch(0, 2), [])
    await store.finish(claim.lease, Completed(result="2"))
    assert (await store.get_task(claim.task.id)).state is TaskState.COMPLETE


@check
async def check_renew_leases_pushes_expiry_back(store: Store) -> None:
    claim = await claimed(store, "w1", lease_seconds=0)
    assert await store.renew_leases(worker_id="w1", lease_seconds=3600) == []
    assert await claim_ids(store, "w2") == [], "a renewed lease must not be taken over"
    expires = await store.next_wakeup()
    assert expires is not None
    assert expires >= now() + HOUR - timedelta(seconds=5)
    await store.renew_leases(worker_id="w2", lease_seconds=0)  # another worker's: no effect
    assert await claim_ids(store, "w2") == []
    await store.append(claim.lease, batch(0, 1), [])


@check
async def check_remove_worker_frees_its_tasks_at_once(store: Store) -> None:
    await store.register_worker(WorkerInfo(id="w1", hostname="h", pid=1, started_at=now()))
    mine = await claimed(store, "w1", lease_seconds=3600)
    other = await new_task(store)
    (theirs,) = await store.claim(worker_id="w9", limit=1, lease_seconds=3600)
    assert theirs.task.id == other.id
    await store.remove_worker("w1")
    assert await store.list_workers() == []
    (again,) = await store.claim(worker_id="w2", limit=5, lease_seconds=3600)
    assert again.task.id == mine.task.id
    assert again.lease.token > mine.lease.token
    await assert_raises(LeaseLostError, store.append(mine.lease, batch(0, 1), []))
