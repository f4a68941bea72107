"""The storage contract suite (`durable.storage.testing`) against every backend.

Each check runs as its own test on a fresh store from the `store` fixture, which is
parametrized over `tests.conftest.STORE_BACKENDS`. Two more tests show that the suite
can fail: it must reject stores that break the fencing and claiming promises.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import pytest

from durable.core.model import Claim, Lease, Suspended
from durable.storage._contract import new_task
from durable.storage.base import Store
from durable.storage.memory import MemoryStore, _TaskRow
from durable.storage.sqlite import SQLiteStore
from durable.storage.testing import STORE_CHECKS, StoreCheck, check_store

pytestmark = pytest.mark.anyio

if TYPE_CHECKING:
    # Static conformance: mypy fails here if a backend drifts from the protocol.
    def _conforms(memory: MemoryStore, sqlite: SQLiteStore) -> tuple[Store, Store]:
        return memory, sqlite


@pytest.mark.parametrize("check", list(STORE_CHECKS.values()), ids=list(STORE_CHECKS))
async def test_store_contract(store: Store, check: StoreCheck) -> None:
    await check(store)


async def test_check_store_runs_the_whole_suite() -> None:
    made: list[MemoryStore] = []

    @asynccontextmanager
    async def factory() -> AsyncIterator[Store]:
        store = MemoryStore()
        made.append(store)
        yield store
        await store.close()

    await check_store(factory)
    assert len(made) == len(STORE_CHECKS) > 25


class _UnfencedStore(MemoryStore):
    """Broken on purpose: accepts writes from any lease on an active task."""

    def _fenced(self, lease: Lease) -> _TaskRow:
        return self._tasks[lease.task_id]


class _GreedyStore(MemoryStore):
    """Broken on purpose: claims hand out tasks whose lease is still running."""

    async def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_deaths: int | None = None,
        last_chances: int | None = None,
    ) -> list[Claim]:
        for row in self._tasks.values():
            row.lease_expires_at = None if row.lease_expires_at is None else self._now()
        return await super().claim(worker_id=worker_id, limit=limit, lease_seconds=lease_seconds)


class _ImmortalStore(MemoryStore):
    """Broken on purpose: a task that keeps killing its workers is never quarantined,
    and tasks on their last chance are handed out together."""

    async def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_deaths: int | None = None,
        last_chances: int | None = None,
    ) -> list[Claim]:
        return await super().claim(worker_id=worker_id, limit=limit, lease_seconds=lease_seconds)


@pytest.mark.parametrize(
    ("broken", "check_name"),
    [
        (_UnfencedStore, "stale_lease_writes_nothing"),
        (_UnfencedStore, "expired_lease_is_reclaimed_and_the_old_one_fenced"),
        (_GreedyStore, "claim_takes_oldest_first_up_to_limit"),
        (_GreedyStore, "concurrent_claimers_never_share_a_task"),
        (_ImmortalStore, "nth_takeover_quarantines_the_task"),
        (_ImmortalStore, "last_chance_tasks_are_handed_out_one_at_a_time"),
    ],
)
async def test_the_suite_catches_a_broken_store(broken: type[MemoryStore], check_name: str) -> None:
    with pytest.raises(AssertionError):
        await STORE_CHECKS[check_name](broken())


async def test_every_backend_hands_over_the_pending_notification(store: Store) -> None:
    # The contract lets a store leave `Claim.notification` None; the built-in ones read
    # it, so that a woken attempt's first look for a notification makes no trip.
    task = await new_task(store)
    (claim,) = await store.claim(worker_id="w1", limit=1, lease_seconds=3600)
    await store.finish(claim.lease, Suspended(wakeup_at=None, on_event=True))
    sent = await store.notify(task.id, "go", "1")
    (woken,) = await store.claim(worker_id="w1", limit=1, lease_seconds=3600)
    assert woken.notification == sent
