"""The schedule role of the SQL stores: passes, policies and exactly one task per tick.

SQLite gets a fake clock, so a day of ticks takes no time; Postgres keeps the database
clock and a one-second schedule. Many concurrent passes (as many workers would run)
never launch a tick twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from durable.core.model import TaskState
from durable.core.schedule import Cadence, CatchUp, Overlap, ScheduleSpec, tick_of
from durable.errors import ConflictError, NotFoundError
from durable.storage import _pg_admin as pg_admin
from durable.storage import open_store
from durable.storage.base import ScheduleStore, Store
from durable.storage.sqlite import SQLiteStore
from tests.helpers import until

pytestmark = pytest.mark.anyio
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def fake_sqlite(tmp_path: object) -> AsyncIterator[tuple[SQLiteStore, Clock]]:
    clock = Clock()
    store = await SQLiteStore.open(f"{tmp_path}/db.sqlite", clock=clock)
    await store.migrate()
    await store.put_workflow(b"not run here", name="report")
    try:
        yield store, clock
    finally:
        await store.close()


@pytest.fixture
async def pg_store(shared_pg_url: str) -> AsyncIterator[Store]:
    store = await open_store(shared_pg_url)
    await pg_admin.reset(shared_pg_url)
    await store.put_workflow(b"not run here", name="report")
    try:
        yield store
    finally:
        await store.close()


def spec(**kw: object) -> ScheduleSpec:
    base: dict[str, object] = {
        "name": "nightly", "workflow": "report", "cadence": Cadence(every=10, anchor=T0),
        "input": '{"x": 1}', "overlap": Overlap.ALLOW, "catch_up": CatchUp.ALL,
    }  # fmt: skip
    base.update(kw)
    return ScheduleSpec(**base)  # type: ignore[arg-type]


async def scheduled(store: Store) -> list[datetime]:
    tasks = await store.list_tasks(limit=10_000)
    ticks = [tick_of(t.name) for t in tasks if t.name.startswith("nightly@")]
    return sorted(t for t in ticks if t is not None)


async def test_crud_and_bad_input(fake_sqlite: tuple[SQLiteStore, Clock]) -> None:
    store, _ = fake_sqlite
    assert isinstance(store, ScheduleStore)
    added = await store.add_schedule(spec())
    assert added.spec == spec()
    assert not added.paused
    assert added.next_due == T0
    with pytest.raises(ConflictError, match="already exists"):
        await store.add_schedule(spec())
    with pytest.raises(NotFoundError, match="no workflow named 'nope'"):
        await store.add_schedule(spec(name="other", workflow="nope"))
    assert [s.spec.name for s in await store.list_schedules()] == ["nightly"]
    assert (await store.pause_schedule("nightly", paused=True)).paused
    task = await store.trigger_schedule("nightly")
    assert task.input == '{"x": 1}'
    assert tick_of(task.name) == T0
    assert (await store.get_schedule("nightly")).last_task_id == task.id
    await store.delete_schedule("nightly")
    for call in (
        store.get_schedule("nightly"),
        store.delete_schedule("nightly"),
        store.trigger_schedule("nightly"),
        store.pause_schedule("nightly", paused=False),
    ):
        with pytest.raises(NotFoundError, match="no schedule named 'nightly'"):
            await call


async def test_every_tick_once_under_concurrent_passes(
    fake_sqlite: tuple[SQLiteStore, Clock], tmp_path: object
) -> None:
    store, clock = fake_sqlite
    await store.add_schedule(spec())
    # Three more connections to the same file, as three more worker processes.
    others = [await SQLiteStore.open(f"{tmp_path}/db.sqlite", clock=clock) for _ in range(3)]
    try:
        for _ in range(40):
            clock.now += timedelta(seconds=3)
            async with anyio.create_task_group() as tg:
                for s in [store, *others]:
                    tg.start_soon(s.fire_schedules)
    finally:
        for s in others:
            await s.close()
    ticks = await scheduled(store)
    assert ticks == [T0 + timedelta(seconds=10 * k) for k in range(13)]
    assert (await store.get_schedule("nightly")).fired == 13


async def test_paused_schedules_fire_nothing_then_catch_up(
    fake_sqlite: tuple[SQLiteStore, Clock],
) -> None:
    store, clock = fake_sqlite
    await store.add_schedule(spec(catch_up=CatchUp.LATEST))
    await store.pause_schedule("nightly", paused=True)
    clock.now += timedelta(minutes=10)
    await store.fire_schedules()
    assert await scheduled(store) == []
    await store.pause_schedule("nightly", paused=False)
    await store.fire_schedules()
    # Ticks 0..540 s were missed by more than the grace: latest keeps none of them,
    # as the recent ones (540..600 s) fire.
    ticks = await scheduled(store)
    assert ticks == [T0 + timedelta(seconds=s) for s in range(540, 601, 10)]
    assert (await store.get_schedule("nightly")).skipped == 54


async def test_overlap_skip_and_buffer_one(fake_sqlite: tuple[SQLiteStore, Clock]) -> None:
    store, clock = fake_sqlite
    await store.add_schedule(spec(overlap=Overlap.SKIP))
    await store.add_schedule(spec(name="buffered", overlap=Overlap.BUFFER_ONE))
    clock.now += timedelta(seconds=25)  # ticks 0, 10, 20: the first starts, the rest wait
    await store.fire_schedules()
    skip = await store.get_schedule("nightly")
    buffered = await store.get_schedule("buffered")
    assert (skip.fired, skip.skipped) == (1, 2)
    assert (buffered.fired, buffered.skipped, buffered.buffered) == (
        1,
        1,
        T0 + timedelta(seconds=10),
    )
    # The buffered tick starts once its running task ends, not before.
    await store.fire_schedules()
    assert (await store.get_schedule("buffered")).fired == 1
    claims = await store.claim(worker_id="w", limit=10, lease_seconds=30)
    for claim in claims:
        from durable.core.model import Completed

        await store.finish(claim.lease, Completed(result="null"))
    await store.fire_schedules()
    after = await store.get_schedule("buffered")
    assert after.fired == 2
    assert after.buffered is None
    task = await store.get_task(after.last_task_id or 0)
    assert tick_of(task.name) == T0 + timedelta(seconds=10)
    assert task.state is TaskState.READY


@pytest.mark.postgres
async def test_postgres_ticks_once_under_concurrent_passes(pg_store: Store) -> None:
    assert isinstance(pg_store, ScheduleStore)
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    await pg_store.add_schedule(spec(cadence=Cadence(every=1, anchor=now)))
    with pytest.raises(ConflictError):
        await pg_store.add_schedule(spec(cadence=Cadence(every=1, anchor=now)))

    async def passes() -> None:
        for _ in range(30):
            await pg_store.fire_schedules()
            await anyio.sleep(0.1)

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(passes)
    await until(lambda: pg_store.fire_schedules(), within=30)
    ticks = await scheduled(pg_store)
    assert len(ticks) >= 2
    assert ticks == [now + timedelta(seconds=k) for k in range(len(ticks))]
    assert (await pg_store.get_schedule("nightly")).fired == len(ticks)
    paused = await pg_store.pause_schedule("nightly", paused=True)
    assert paused.paused
    task = await pg_store.trigger_schedule("nightly")
    assert task.input == '{"x": 1}'
    await pg_store.delete_schedule("nightly")
    assert await pg_store.list_schedules() == []


@pytest.mark.postgres
@pytest.mark.parametrize(("policy", "fired"), [("all", 6), ("latest", 1), ("none", 0)])
async def test_postgres_catch_up_after_an_outage(pg_store: Store, policy: str, fired: int) -> None:
    # Ticks every 10 minutes since an hour ago: all six were missed by more than the
    # grace (as if every worker had been down), and none is recent.
    assert isinstance(pg_store, ScheduleStore)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=59, seconds=30)
    cadence = Cadence(every=600, anchor=start)
    await pg_store.add_schedule(spec(cadence=cadence, catch_up=CatchUp(policy)))
    await pg_store.fire_schedules()
    assert len(await scheduled(pg_store)) == fired
    after = await pg_store.get_schedule("nightly")
    assert (after.fired, after.skipped) == (fired, 6 - fired)
    assert after.cursor == start + timedelta(minutes=50)
    await pg_store.fire_schedules()  # nothing more is due
    assert (await pg_store.get_schedule("nightly")).fired == fired
