"""Queues in the SQL stores: limits, priority, keys, rate, debounce, pause; no workers.

Claims are made by hand, as workers would make them, on SQLite and Postgres.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from durable.client import Client
from durable.core.model import Completed, Lease, TaskState
from durable.core.queue import Queue, QueueSettings
from durable.errors import ConfigurationError, InvalidStateError
from durable.storage.base import QueueStore, Store
from durable.storage.memory import MemoryStore
from tests.helpers import run_cli, until

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["sqlite", "postgres"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Client]:
    from tests.conftest import STORE_BACKENDS

    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    async with STORE_BACKENDS[request.param](request) as store:
        yield Client(store)


async def _hash(client: Client) -> str:
    return await client.store.put_workflow(b"not run here", name="w")


async def _claim(store: Store, n: int, worker: str = "w1") -> list[int]:
    claims = await store.claim(worker_id=worker, limit=n, lease_seconds=60)
    return [c.task.id for c in claims]


async def _finish(store: Store, worker: str, ids: list[int]) -> None:
    for task_id in ids:
        assert (await store.get_task(task_id)).owner == worker
        token = await _token(store, task_id)
        lease = Lease(task_id=task_id, worker_id=worker, token=token)
        await store.finish(lease, Completed(result="null"))


async def _token(store: Store, task_id: int) -> int:
    # The lease token is not part of `Task`: read it back the way each store keeps it.
    from durable.storage.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        async with store._use() as conn:
            rows = await conn.execute_fetchall(
                "SELECT lease_token FROM durable_task WHERE id = ?", (task_id,)
            )
        return int(next(iter(rows))[0])
    return int(
        await store._pool.fetchval(  # type: ignore[attr-defined]
            "SELECT lease_token FROM durable.tasks WHERE id = $1", task_id
        )
    )


async def test_concurrency_priority_and_keys(client: Client) -> None:
    h = await _hash(client)
    await client.set_queue("emails", concurrency=3, key_concurrency=1)
    plain = await client.launch(h, name="plain")
    low = [await client.launch(h, name=f"a{i}", queue="emails", queue_key="a") for i in range(3)]
    high = await client.launch(h, name="b", queue="emails", queue_key="b", priority=5)
    other = await client.launch(h, name="c", queue="emails", queue_key="c")
    got = await _claim(client.store, 10)
    # The unqueued task, then the queue's: the priority-5 task first, one per key.
    assert sorted(got) == sorted([plain.id, high.id, low[0].id, other.id])
    assert await _claim(client.store, 10) == []  # the queue is full, key a is busy
    q = await client.get_queue("emails")
    assert (q.active, q.ready) == (3, 2)
    await _finish(client.store, "w1", [high.id])
    assert await _claim(client.store, 10) == []  # a slot, but only key a waits
    await client.set_queue("emails", concurrency=3, key_concurrency=2)  # changed live
    assert await _claim(client.store, 10) == [low[1].id]


async def test_rate_limit(client: Client) -> None:
    h = await _hash(client)
    await client.set_queue("api", rate=(2, 1.0))
    ids = [(await client.launch(h, name=f"t{i}", queue="api")).id for i in range(5)]
    first = await _claim(client.store, 10)
    assert first == ids[:2]
    assert await _claim(client.store, 10) == []  # two starts in this second already
    more = await until(lambda: _claim(client.store, 10), within=30)
    assert more == ids[2:4]


async def test_paused_queue_and_task(client: Client) -> None:
    h = await _hash(client)
    await client.set_queue("q", paused=True)
    queued = await client.launch(h, name="queued", queue="q")
    plain = await client.launch(h, name="plain")
    await client.pause(plain.id)
    assert await _claim(client.store, 10) == []
    await client.set_queue("q", paused=False)
    assert await _claim(client.store, 10) == [queued.id]
    resumed = await client.resume(plain.id)
    assert resumed.state is TaskState.READY
    assert await _claim(client.store, 10) == [plain.id]
    await _finish(client.store, "w1", [plain.id])
    with pytest.raises(InvalidStateError, match="already complete"):
        await client.pause(plain.id)


async def test_debounce_replaces_the_waiting_input(client: Client) -> None:
    h = await _hash(client)
    # A window long enough for a busy machine to launch twice and claim within it.
    first = await client.launch(h, name="d", input=1, debounce_key="k", debounce=3.0)
    second = await client.launch(h, name="d", input=2, debounce_key="k", debounce=3.0)
    assert second.id == first.id
    assert (await client.get(first.id)).input == "2"
    assert second.state is TaskState.SUSPENDED
    assert await _claim(client.store, 10) == []  # still within its window
    got = await until(lambda: _claim(client.store, 10), within=30)
    assert got == [first.id]
    third = await client.launch(h, name="d", input=3, debounce_key="k", debounce=0.5)
    assert third.id != first.id  # the first one started: a new task waits


async def test_bad_flow_control_is_refused() -> None:
    client = Client(MemoryStore())
    h = await client.store.put_workflow(b"x", name="w")
    with pytest.raises(ConfigurationError, match="has no queues"):
        await client.launch(h, name="t", queue="q")
    assert not isinstance(client.store, QueueStore)
    with pytest.raises(ConfigurationError, match="at least 1"):
        QueueSettings(name="q", concurrency=0)
    with pytest.raises(ConfigurationError, match="queue name"):
        QueueSettings(name="no spaces")


async def test_a_task_shows_its_queue_key_priority_and_start(
    client: Client, tmp_path: Path
) -> None:
    h = await _hash(client)
    await client.set_queue("emails", priority=2)
    placed = await client.launch(h, name="placed", queue="emails", queue_key="acme")
    ranked = await client.launch(h, name="ranked", priority=7)
    plain = await client.launch(h, name="plain")
    assert (placed.queue, placed.queue_key, placed.priority) == ("emails", "acme", 2)
    assert (ranked.queue, ranked.priority, plain.queue, plain.priority) == (None, 7, None, 0)
    assert placed.started_at is None
    await _claim(client.store, 10)
    started = await client.get(placed.id)
    assert started.started_at is not None
    assert started.started_at <= datetime.now(UTC)
    listed = {t.id: t for t in await client.list()}
    assert (listed[placed.id].queue_key, listed[ranked.id].priority) == ("acme", 7)

    url = client.store.url
    shown = run_cli("show", str(placed.id), "--db", url, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^queue +emails, key acme, priority 2$", shown.stdout, re.M)
    assert re.search(r"^started +\d{4}-", shown.stdout, re.M)
    table = run_cli("list", "--db", url, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert table.stdout.splitlines()[0].split()[-1] == "QUEUE"
    assert rows[str(placed.id)].endswith("emails, key acme, priority 2")
    assert rows[str(ranked.id)].endswith("priority 7")
    assert rows[str(plain.id)].endswith(" -")


async def test_debounce_keys_are_per_queue(client: Client) -> None:
    h = await _hash(client)

    async def launch(queue: str | None, value: int) -> int:
        task = await client.launch(
            h, name="d", input=value, queue=queue, debounce_key="tenant-1", debounce=30
        )
        return task.id

    a = await launch("a", 1)
    b = await launch("b", 2)
    plain = await launch(None, 3)
    assert len({a, b, plain}) == 3  # one key, three scopes: three waiting tasks
    assert await launch("a", 4) == a  # the same queue and key: replaced
    assert await launch("b", 5) == b
    assert await launch(None, 6) == plain
    inputs = [(await client.get(i)).input for i in (a, b, plain)]
    assert inputs == ["4", "5", "6"]


async def test_set_changes_only_what_it_is_given(client: Client, tmp_path: Path) -> None:
    await client.set_queue("q", concurrency=3, key_concurrency=2, rate=(5, 1.0), priority=4)

    def limits(q: Queue) -> tuple[object, ...]:
        s = q.settings
        return (s.concurrency, s.key_concurrency, s.rate_limit, s.rate_period, s.priority, s.paused)

    assert limits(await client.set_queue("q", paused=True)) == (3, 2, 5, 1.0, 4, True)
    assert limits(await client.set_queue("q", concurrency=None)) == (None, 2, 5, 1.0, 4, True)

    url = client.store.url
    cleared = run_cli("queue", "set", "q", "--rate", "none", "--resume", "--db", url, cwd=tmp_path)
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stderr == "queue q: per key 2, priority 4\n"
    assert limits(await client.get_queue("q")) == (None, 2, None, None, 4, False)
    more = run_cli("queue", "set", "q", "--concurrency", "7", "--db", url, cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    assert limits(await client.get_queue("q")) == (7, 2, None, None, 4, False)
    unset = run_cli("queue", "set", "q", "--key-concurrency", "none", "--db", url, cwd=tmp_path)
    assert unset.returncode == 0, unset.stderr
    assert limits(await client.get_queue("q")) == (7, None, None, None, 4, False)

    bad = run_cli("queue", "set", "q", "--concurrency", "0", "--db", url, cwd=tmp_path)
    assert bad.returncode == 2
    assert "is not a whole number of at least 1, nor 'none'" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert limits(await client.get_queue("q")) == (7, None, None, None, 4, False)
