"""Queues under real `durable worker` processes, killed with SIGKILL, on SQLite and
Postgres: the queue's limits are sampled from the database while they run.

Measured and printed: the most tasks of the queue active at once (against its
concurrency limit), the most per key (against the per-key limit), and the starts per
rate window (against the rate limit).
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import anyio
import pytest

from durable.client import Client
from durable.core.model import TaskState
from tests.helpers import EXAMPLES, cli_env, durable_cmd, until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WORKFLOW = EXAMPLES / "per_customer_queue.py"
#: How late after its rate window opens a queued task may start: a busy machine's
#: scheduling (a starved Postgres took 8 s), far below the test worker's poll.
WAKE_BOUND = 30.0
#: The test worker's poll: without the wake-up, each start would wait about this long.
SLOW_POLL = 600


class Workers:
    """`durable worker` processes on one database, stderr to files."""

    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.directory = directory
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[BinaryIO] = []
        self.started = 0

    def start(self, poll: float = 0.2) -> None:
        self.started += 1
        log = (self.directory / f"worker{self.started}.err").open("wb")
        self.logs.append(log)
        # Leases lapse on a starved machine, counted as deaths: no quarantine here.
        args = (
            "worker", "--db", self.url, "--lease-seconds", "2", "--poll-interval", str(poll),
            "--max-worker-deaths", "100",
        )  # fmt: skip
        self.procs.append(
            subprocess.Popen(
                durable_cmd(*args),
                cwd=self.directory,
                env=cli_env(),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        )

    def kill_one(self) -> None:
        victim = self.procs.pop(0)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait(timeout=30)
        for log in self.logs:
            log.close()


@pytest.fixture
def workers(backend_url: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(backend_url, tmp_path)
    try:
        yield group
    finally:
        group.stop()


async def _launch(client: Client, workflow: str, n: int, keys: str, **kw: object) -> list[int]:
    ids = []
    for i in range(n):
        key = keys[i % len(keys)]
        task = await client.launch(
            workflow, name=f"{key}-{i}", input={"customer": key, "order": i, "prepare": 0.3},
            queue_key=key, **kw,  # type: ignore[arg-type]
        )  # fmt: skip
        ids.append(task.id)
    return ids


async def test_limits_hold_under_three_workers_and_kills(workers: Workers) -> None:
    async with await Client.open(workers.url) as client:
        workflow = await client.register_file(WORKFLOW)
        await client.set_queue("emails", concurrency=3, key_concurrency=2)
        ids = await _launch(client, workflow, 30, "abcd", queue="emails")
        for _ in range(3):
            workers.start()
        most = 0
        most_per_key = 0
        samples = 0
        done = False

        async def sample() -> None:
            nonlocal most, most_per_key, samples
            while not done:
                active = await client.list(states=[TaskState.ACTIVE], limit=1000)
                per_key = Counter(t.name.split("-")[0] for t in active)
                most = max(most, len(active))
                most_per_key = max([most_per_key, *per_key.values()])
                samples += 1
                await anyio.sleep(0.02)

        async def completed() -> int:
            tasks = [await client.get(i) for i in ids]
            return sum(t.state is TaskState.COMPLETE for t in tasks)

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            finished = 0
            for _ in range(3):  # kill a worker each time a few more tasks complete
                finished = await until(lambda f=finished: _more(completed, f + 3), within=180)
                workers.kill_one()
                workers.start()
            await until(lambda: _more(completed, len(ids)), within=300)
            done = True
        results = [json.loads((await client.get(i)).result or "null") for i in ids]
        assert all(r.startswith("order ") for r in results)
    print(f"queue limit 3: max active {most}; per-key limit 2: max {most_per_key} "
          f"({samples} samples, {workers.started} workers)")  # fmt: skip
    assert most <= 3
    assert most_per_key <= 2
    assert most == 3  # the limit was reached: the sampler can see a breach


async def test_rate_limit_and_priority(workers: Workers, backend_url: str) -> None:
    async with await Client.open(workers.url) as client:
        workflow = await client.register_file(WORKFLOW)
        await client.set_queue("api", rate=(4, 1.0), paused=True)
        low = await _launch(client, workflow, 12, "x", queue="api")
        high = await _launch(client, workflow, 2, "y", queue="api", priority=10)
        workers.start()
        workers.start()
        await client.set_queue("api", paused=False)  # go

        async def all_done() -> bool:
            tasks = [await client.get(i) for i in low + high]
            return all(t.state is TaskState.COMPLETE for t in tasks)

        await until(all_done, within=300)
        starts = await _started_at(client, backend_url, low + high)
    # The higher priority started first (in the same claim as some others, maybe).
    assert max(starts[i] for i in high) <= min(starts[i] for i in low)
    times = sorted(starts.values())
    # No sliding window of one second holds more than 4 first starts.
    most = max(sum(1 for t in times if s <= t < s + 1.0) for s in times)
    span = times[-1] - times[0]
    rate = (len(times) - 1) / span
    print(f"rate limit 4/1s: max {most} starts in any 1 s window, {rate:.2f} starts/s overall")
    assert most <= 4
    assert span >= 2.0  # 14 starts at 4 per second take at least three windows


async def test_a_rate_limited_queue_wakes_its_worker_when_the_window_opens(
    workers: Workers, backend_url: str
) -> None:
    """A worker that polls only every ten minutes starts the next task of a queue
    limited to one start per 2 s when the window opens: nothing else wakes it."""
    async with await Client.open(workers.url) as client:
        workflow = await client.register_file(WORKFLOW)
        await client.set_queue("slow-api", rate=(1, 2.0))
        ids = await _launch(client, workflow, 4, "z", queue="slow-api")
        workers.start(poll=SLOW_POLL)

        async def all_done() -> bool:
            tasks = [await client.get(i) for i in ids]
            return all(t.state is TaskState.COMPLETE for t in tasks)

        await until(all_done, within=300)
        starts = sorted((await _started_at(client, backend_url, ids)).values())
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    print(
        f"rate limit 1/2s, worker polling every {SLOW_POLL} s: gaps between starts "
        + ", ".join(f"{g:.2f}s" for g in gaps)
    )
    assert min(gaps) >= 2.0 - 0.01  # the limit holds (clock rounding aside)
    assert max(gaps) <= 2.0 + WAKE_BOUND  # woken by the window, not by the poll


async def _started_at(client: Client, url: str, ids: list[int]) -> dict[int, float]:
    """When each task first started (the column rate limits count), in unix seconds."""
    store = client.store
    if url.startswith("sqlite"):
        async with store._use() as conn:  # type: ignore[attr-defined]
            rows = await conn.execute_fetchall(
                f"SELECT id, started_at FROM durable_task WHERE id IN ({','.join('?' * len(ids))})",
                ids,
            )
        return {int(r[0]): float(r[1]) for r in rows}
    rows = await store._pool.fetch(  # type: ignore[attr-defined]
        "SELECT id, started_at FROM durable.tasks WHERE id = ANY ($1::bigint[])", ids
    )
    return {int(r["id"]): datetime.timestamp(r["started_at"]) for r in rows}


async def _more(count: object, at_least: int) -> int:
    n: int = await count()  # type: ignore[operator]
    return n if n >= at_least else 0


async def test_pause_parks_a_running_task_across_a_worker_kill(workers: Workers) -> None:
    async with await Client.open(workers.url) as client:
        countdown = await client.register_file(EXAMPLES / "countdown.py")
        hello = await client.register_file(EXAMPLES / "hello_world.py")
        task = await client.launch(countdown, name="countdown", input=6)
        workers.start()

        async def printed() -> int:
            return len(b"".join(c.data for c in await client.logs(task.id)).splitlines())

        await until(lambda: _more(printed, 2), within=300)
        await client.pause(task.id)

        async def parked() -> bool:
            t = await client.get(task.id)
            return t.state is TaskState.READY and t.owner is None

        await until(parked, within=60)  # handed back from its sleep, no instance kept
        attempts = (await client.get(task.id)).attempts
        workers.kill_one()
        workers.start()
        # The new worker runs other work, and leaves the paused task alone.
        other = await client.launch(hello, name="other", input="x")
        done = await client.wait(other.id, timeout=300)
        assert done.state is TaskState.COMPLETE
        still = await client.get(task.id)
        assert (still.state, still.attempts) == (TaskState.READY, attempts)
        await client.resume(task.id)
        end = await client.wait(task.id, timeout=300)
    assert end.state is TaskState.COMPLETE
    lines = b"".join(c.data for c in await _logs(workers.url, task.id)).decode().splitlines()
    assert [int(line.split()[0]) for line in lines] == [6, 5, 4, 3, 2, 1]  # each once


async def _logs(url: str, task_id: int) -> list[Any]:
    async with await Client.open(url) as client:
        return await client.logs(task_id)


async def test_children_spawned_onto_a_queue_run_one_at_a_time(workers: Workers) -> None:
    """`durable.spawn(queue=, queue_key=)` from a workflow: the children wait in the
    queue and start within its limit (1 here, sampled from the database), and a worker
    killed while the parent runs spawns none twice."""
    orders = [["acme", 1], ["globex", 2], ["acme", 3], ["initech", 4], ["globex", 5]]
    async with await Client.open(workers.url) as client:
        workflow = await client.register_file(WORKFLOW)
        await client.set_queue("serial", concurrency=1)
        parent = await client.launch(
            workflow, name="batch", entry="batch",
            input={"orders": orders, "queue": "serial", "prepare": 0.3},
        )  # fmt: skip
        workers.start()
        workers.start()
        most = 0
        samples = 0
        done = False

        async def children() -> list[Any]:
            return [t for t in await client.list(limit=1000) if t.parent_id == parent.id]

        async def sample() -> None:
            nonlocal most, samples
            while not done:
                active = await client.list(states=[TaskState.ACTIVE], limit=1000)
                most = max(most, sum(t.parent_id == parent.id for t in active))
                samples += 1
                await anyio.sleep(0.02)

        async def one_finished() -> bool:
            ended = (await client.get(parent.id)).state.is_terminal  # failed: no hang
            return ended or any(t.state is TaskState.COMPLETE for t in await children())

        async with anyio.create_task_group() as tg:
            tg.start_soon(sample)
            await until(one_finished, within=300)
            workers.kill_one()  # the parent's replay finds its children recorded
            workers.start()
            end = await client.wait(parent.id, timeout=300)
            done = True
        spawned = await children()
    assert end.state is TaskState.COMPLETE, end.error
    assert json.loads(end.result or "null") == [f"order {n} confirmed for {c}" for c, n in orders]
    assert sorted(t.name for t in spawned) == sorted(f"{c}-{n}" for c, n in orders)
    print(f"spawned onto a queue of limit 1: max {most} running ({samples} samples)")
    assert most == 1
