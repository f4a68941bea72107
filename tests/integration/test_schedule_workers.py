"""Schedules run by real `durable worker` processes, on SQLite and Postgres.

A schedule ticking every second while workers are killed with SIGKILL, one after the
other, launches exactly one task per tick: none lost, none doubled (counted by the
tasks' idempotency keys, one per tick). The task reads its own tick. Waits are on
conditions ("a new tick fired"), each bounded.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import pytest

from durable.client import Client
from durable.core.model import TaskState
from durable.core.schedule import tick_key, tick_of
from tests.helpers import EXAMPLES, cli_env, durable_cmd, until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: Kills to make while the schedule ticks.
KILLS = 6


class Workers:
    """`durable worker` processes on one database, stderr to files."""

    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.directory = directory
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[BinaryIO] = []
        self.started = 0

    def start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = (self.directory / f"worker{self.started}.err").open("wb")
        self.logs.append(log)
        proc = subprocess.Popen(
            # Kills come faster than a busy machine may run a task: no quarantine here.
            durable_cmd(
                "worker", "--db", self.url, "--lease-seconds", "2", "--max-worker-deaths", "100"
            ),
            cwd=self.directory, env=cli_env(), stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def kill_one(self) -> None:
        victim = next(p for p in self.procs if p.poll() is None)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        self.procs.remove(victim)

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


async def test_one_task_per_tick_under_a_kill_loop(workers: Workers) -> None:
    async with await Client.open(workers.url) as client:
        await client.register_file(EXAMPLES / "nightly_report.py")
        added = await client.add_schedule(
            "tick", "nightly_report", every="1s", input={"team": "ops"},
            overlap="allow", catch_up="all",
        )  # fmt: skip
        workers.start()
        workers.start()

        async def fired() -> int:
            return (await client.get_schedule("tick")).fired

        seen = 0
        for _ in range(KILLS):
            # Kill only once a tick fired since the last kill: the loop keeps up with
            # the machine, however busy.
            seen = await until(lambda s=seen: _more(fired, s), within=120)
            workers.kill_one()
            workers.start()
        await until(lambda s=seen: _more(fired, s), within=120)
        await client.pause_schedule("tick")
        schedule = await client.get_schedule("tick")

        tasks = [t for t in await client.list(limit=10_000) if t.name.startswith("tick@")]
        ticks = sorted(t for t in (tick_of(task.name) for task in tasks) if t is not None)
        first = added.spec.cadence.anchor
        expected = [first + timedelta(seconds=k) for k in range(len(ticks))]
        assert ticks == expected  # none lost, none doubled
        assert ticks[-1] == schedule.cursor
        assert schedule.fired == len(tasks)
        assert schedule.skipped == 0
        assert {t.idempotency_key for t in tasks} == {tick_key("tick", t) for t in ticks}

        # Every task runs to its end, and reports on the day before its own tick.
        async def all_done() -> bool:
            states = [(await client.get(t.id)).state for t in tasks]
            return all(s is TaskState.COMPLETE for s in states)

        await until(all_done, within=300)
        sample = await client.get(tasks[0].id)
        result = json.loads(sample.result or "null")
        assert result["tick"] == tick_of(sample.name).isoformat()  # type: ignore[union-attr]
    print(f"{len(ticks)} ticks, {KILLS} kills, {workers.started} workers started")


async def _more(fired: object, seen: int) -> int:
    count: int = await fired()  # type: ignore[operator]
    return count if count > seen else 0
