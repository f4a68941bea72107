"""The dashboard's counts by state: one read per moment, whatever the requests."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from durable.ui.counts import SharedCounts

pytestmark = pytest.mark.anyio


class _Table:
    """Counts that change, and how many times they were read."""

    def __init__(self) -> None:
        self.ready = 1
        self.reads = 0

    async def count(self) -> dict[str, int]:
        self.reads += 1
        await anyio.lowlevel.checkpoint()  # let other requests arrive while it reads
        return {"ready": self.ready}


async def test_requests_within_max_age_share_one_read_and_a_later_one_reads_again() -> None:
    table, now = _Table(), [100.0]
    counts = SharedCounts(table.count, max_age=2.0, clock=lambda: now[0])
    assert await counts() == {"ready": 1}
    table.ready = 5
    now[0] += 1.9
    assert await counts() == {"ready": 1}  # still the moment's count
    assert table.reads == 1
    now[0] += 0.1
    assert await counts() == {"ready": 5}
    assert table.reads == 2


async def test_requests_that_arrive_during_a_read_wait_for_it() -> None:
    table = _Table()
    counts = SharedCounts(table.count, max_age=60.0)
    results: list[dict[str, int]] = []

    async def request() -> None:
        results.append(await counts())

    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(request)
    assert results == [{"ready": 1}] * 20
    assert table.reads == 1


async def test_a_caller_cannot_change_the_shared_value() -> None:
    table = _Table()
    counts = SharedCounts(table.count, max_age=60.0)
    (await counts())["ready"] = 99
    assert await counts() == {"ready": 1}
