"""Group commit on SQLite (`durable.storage._sqlite_group`): launches and attempts' ends
that wait for the store together commit in one transaction, each still all or nothing:
one that fails (a lost lease) is rolled back alone, and the rest are written."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable.core.model import Completed, Event, NewTask, Released, TaskState
from durable.errors import LeaseLostError
from durable.storage import _sqlite_group as group
from durable.storage.sqlite import SQLiteStore
from tests.helpers import until

pytestmark = pytest.mark.anyio

WASM = b"\x00asm group commit tests"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = await SQLiteStore.open(tmp_path / "group.db")
    try:
        await opened.migrate()
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def transactions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of each group that committed in one transaction of several writes."""
    sizes: list[int] = []
    real = group._all

    def counted(works: list[Callable[[sqlite3.Connection], Any]], db: sqlite3.Connection) -> Any:
        sizes.append(len(works))
        return real(works, db)

    monkeypatch.setattr(group, "_all", counted)
    return sizes


async def _together(store: SQLiteStore, calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call while the store is busy, so that they all wait for it together."""
    outcomes: list[Any] = [None] * len(calls)

    async def one(i: int) -> None:
        try:
            outcomes[i] = await calls[i]()
        except Exception as exc:
            outcomes[i] = exc

    await store._lock.acquire()  # what a long write in progress would do
    async with anyio.create_task_group() as tg:
        for i in range(len(calls)):
            tg.start_soon(one, i)
        await until(_all_waiting(store, len(calls)), within=60)
        store._lock.release()
    return outcomes


def _all_waiting(store: SQLiteStore, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(store._group._waiting) == count

    return check


async def test_waiting_launches_and_ends_commit_together_each_all_or_nothing(
    store: SQLiteStore, transactions: list[int]
) -> None:
    digest = await store.put_workflow(WASM)
    for i in range(4):
        await store.create_task(NewTask(name=f"t{i}", workflow_hash=digest, input="{}"))
    claims = await store.claim(worker_id="w", limit=4, lease_seconds=600)
    assert len(claims) == 4
    lost = claims[3]
    await store.finish(lost.lease, Released())
    (again,) = await store.claim(worker_id="w2", limit=1, lease_seconds=600)  # lost's task
    transactions.clear()

    def finish(i: int) -> Callable[[], Any]:
        event = Event(index=0, label="op", digest=None, payload=str(i))
        return lambda: store.finish(claims[i].lease, Completed(result=str(i)), [event])

    def launch(i: int) -> Callable[[], Any]:
        return lambda: store.create_task(NewTask(name=f"new{i}", workflow_hash=digest, input="{}"))

    calls = [finish(0), launch(0), finish(1), finish(3), finish(2), launch(1)]
    outcomes = await _together(store, calls)

    assert transactions == [len(calls)]  # one transaction, one commit, for all six
    assert isinstance(outcomes[3], LeaseLostError)  # its lease had passed on: refused alone
    for i in range(3):
        task = await store.get_task(claims[i].task.id)
        assert task.state is TaskState.COMPLETE
        assert task.result == str(i)
        assert [e.payload for e in await store.load_history(task.id)] == [str(i)]
    assert [t.name for t in (outcomes[1], outcomes[5])] == ["new0", "new1"]
    # Nothing of the refused end was written: its task is still the new owner's.
    taken = await store.get_task(again.task.id)
    assert taken.state is TaskState.ACTIVE
    assert taken.owner == "w2"
    assert await store.load_history(again.task.id) == []


async def test_a_lone_write_commits_alone(store: SQLiteStore, transactions: list[int]) -> None:
    digest = await store.put_workflow(WASM)
    task = await store.create_task(NewTask(name="t", workflow_hash=digest, input="{}"))
    (claim,) = await store.claim(worker_id="w", limit=1, lease_seconds=600)
    await store.finish(claim.lease, Completed(result="1"))
    assert transactions == []  # no group of several: its own transaction, as before
    assert (await store.get_task(task.id)).state is TaskState.COMPLETE


async def test_a_write_that_fails_midway_is_undone_alone(
    store: SQLiteStore, transactions: list[int]
) -> None:
    """A write that fails after some of its statements went through leaves nothing."""
    with sqlite3.connect(store.path) as db:
        db.execute("CREATE TABLE scratch (name TEXT)")

    def write(name: str, *, fail: bool) -> Callable[[], Any]:
        def work(db: sqlite3.Connection) -> str:
            db.execute("INSERT INTO scratch VALUES (?)", (name + "-1",))
            db.execute("INSERT INTO scratch VALUES (?)", (name + "-2",))
            if fail:
                raise LookupError(name)
            return name

        return lambda: store._group.run(work)

    calls = [write("a", fail=False), write("b", fail=True), write("c", fail=False)]
    outcomes = await _together(store, calls)

    assert transactions == [3]
    assert outcomes[0] == "a"
    assert isinstance(outcomes[1], LookupError)
    assert outcomes[2] == "c"
    with sqlite3.connect(store.path) as db:
        rows = sorted(name for (name,) in db.execute("SELECT name FROM scratch"))
    assert rows == ["a-1", "a-2", "c-1", "c-2"]
