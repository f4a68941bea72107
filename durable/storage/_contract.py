"""The machinery of the storage contract suite: the check registry and shared helpers.

The checks themselves live in `_contract_*.py`; `durable.storage.testing` is the public
face. A check takes an empty, migrated store and raises AssertionError on failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from durable.core.model import Claim, Event, Lease, LogChunk, NewTask, Stream, Suspended, Task
from durable.storage.base import Store

StoreCheck = Callable[[Store], Awaitable[None]]
"""One contract check: takes an empty, migrated store; raises AssertionError on failure."""

STORE_CHECKS: dict[str, StoreCheck] = {}
"""Every check, by name, in the order they are defined."""


def check(fn: StoreCheck) -> StoreCheck:
    """Register `fn` in `STORE_CHECKS` under its name without the `check_` prefix."""
    STORE_CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


# -- helpers used by the checks -------------------------------------------------------------

WASM = b"\x00asm\x01\x00\x00\x00 contract-suite"
HOUR = timedelta(hours=1)


def now() -> datetime:
    return datetime.now(UTC)


def near(a: datetime | None, b: datetime | None) -> bool:
    """Equal to the millisecond (backends may round what they store)."""
    return a is not None and b is not None and abs(a - b) <= timedelta(milliseconds=1)


def within(a: datetime | None, low: datetime, high: datetime) -> bool:
    """Between `low` and `high`, to the millisecond."""
    ms = timedelta(milliseconds=1)
    return a is not None and low - ms <= a <= high + ms


async def suspend(store: Store, lease: Lease, wake: datetime, events: list[Event]) -> datetime:
    """Suspend the task until `wake`; return the latest time the store may keep instead.

    A store may anchor the timer on its own clock (Postgres adds the time left to the
    database's clock): the wake-up it keeps is then later by at most the call's time.
    """
    started = now()
    await store.finish(lease, Suspended(wakeup_at=wake), events)
    return wake + (now() - started)


async def new_task(
    store: Store,
    name: str = "t",
    *,
    entry: str = "",
    seed: int = 0,
    parent_id: int | None = None,
    idempotency_key: str | None = None,
    timeout: float | None = None,  # noqa: ASYNC109 - NewTask.timeout, not ours
) -> Task:
    """Store the contract's binary and launch a task of it."""
    digest = await store.put_workflow(WASM, name="contract")
    spec = NewTask(
        name=name,
        workflow_hash=digest,
        input='{"n": 1}',
        entry=entry,
        seed=seed,
        parent_id=parent_id,
        idempotency_key=idempotency_key,
        timeout=timeout,
    )
    return await store.create_task(spec)


async def claimed(store: Store, worker: str = "w1", *, lease_seconds: float = 3600) -> Claim:
    """Create one task and claim it (the store must hold nothing else runnable)."""
    task = await new_task(store)
    claims = await store.claim(worker_id=worker, limit=1, lease_seconds=lease_seconds)
    assert [c.task.id for c in claims] == [task.id], f"expected to claim task {task.id}: {claims}"
    return claims[0]


def batch(start: int, count: int) -> list[Event]:
    """Events `start .. start+count-1`; odd ones carry no digest."""
    return [
        Event(index=i, label=f"op {i}", digest=None if i % 2 else f"d{i}", payload=f'{{"i": {i}}}')
        for i in range(start, start + count)
    ]


def chunk(text: str, position: int = 0, stream: Stream = Stream.STDOUT) -> LogChunk:
    return LogChunk(position=position, stream=stream, data=text.encode())


async def assert_raises(
    exc_type: type[BaseException], awaitable: Awaitable[object], match: str = ""
) -> None:
    """Await, and fail unless it raises `exc_type` with `match` in its message."""
    try:
        await awaitable
    except exc_type as exc:
        if match not in str(exc):
            raise AssertionError(f"expected {match!r} in the message, got {exc}") from exc
        return
    except Exception as exc:
        raise AssertionError(f"expected {exc_type.__name__}, got {exc!r}") from exc
    raise AssertionError(f"expected {exc_type.__name__}, nothing was raised")


def shape(events: list[Event]) -> list[tuple[int, str, str | None, str]]:
    """What a stored event must keep of what was appended (created_at is the store's)."""
    return [(e.index, e.label, e.digest, e.payload) for e in events]


async def claim_ids(store: Store, worker: str = "w", limit: int = 10) -> list[int]:
    claims = await store.claim(worker_id=worker, limit=limit, lease_seconds=3600)
    return [c.task.id for c in claims]
