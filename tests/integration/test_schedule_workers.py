"""Schedules run by real `durable worker` processes, on SQLite and Postgres.

A schedule ticking every second while workers are killed with SIGKILL, one after the
other, launches exactly one task per tick: none lost, none doubled (counted by the
tasks' idempotency keys, one per tick). The task reads its own tick. Waits are on
conditions ("a new tick fired"), each bounded.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import anyio
import pytest

from durable.client import Client
from durable.core.model import TaskState
from durable.core.schedule import (
    Cadence,
    CatchUp,
    Overlap,
    ScheduleSpec,
    tick_key,
    tick_of,
)
from durable.storage.base import ScheduleStore
from tests.helpers import EXAMPLES, cli_env, durable_cmd, until

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: How long the schedule ticks under the kill loop.
LOOP_SECONDS = 60


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


async def test_one_task_per_tick_for_a_minute_under_a_kill_loop(
    tmp_path: Path, pg_url: str
) -> None:
    """A schedule ticking every second for a minute, on SQLite and Postgres at once,
    while a worker of each is SIGKILLed every 1 to 3 s (and replaced): every tick from
    the first to the last launched exactly one task."""
    sqlite_url = f"sqlite:///{tmp_path / 'durable.db'}"
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "postgres").mkdir()
    began = time.monotonic()
    results: dict[str, str] = {}
    async with anyio.create_task_group() as tg:
        for label, url in (("sqlite", sqlite_url), ("postgres", pg_url)):
            tg.start_soon(_kill_loop, label, url, tmp_path / label, results)
    wall = time.monotonic() - began
    for label, line in results.items():
        print(f"{label}: {line}")
    print(f"kill-loop test wall time, both backends at once: {wall:.0f} s")


async def _kill_loop(label: str, url: str, directory: Path, results: dict[str, str]) -> None:
    group = Workers(url, directory)
    try:
        async with await Client.open(url) as client:
            await client.register_file(EXAMPLES / "nightly_report.py")
            added = await client.add_schedule(
                "tick", "nightly_report", every="1s", input={"team": "ops"},
                overlap="allow", catch_up="all",
            )  # fmt: skip
            first = added.spec.cadence.anchor
            group.start()
            group.start()
            # Kill for a minute of ticks: until the tick a minute after the first is due.
            kills = 0
            rng = random.Random()
            while datetime.now(UTC) < first + timedelta(seconds=LOOP_SECONDS):
                await anyio.sleep(rng.uniform(1.0, 3.0))  # the kill loop's pace, not a wait
                group.kill_one()
                group.start()
                kills += 1

            async def past_the_minute() -> bool:  # the survivors fire what is left
                cursor = (await client.get_schedule("tick")).cursor
                return cursor >= first + timedelta(seconds=LOOP_SECONDS)

            await until(past_the_minute, within=300)
            await client.pause_schedule("tick")
            schedule = await client.get_schedule("tick")
            tasks = [t for t in await client.list(limit=10_000) if t.name.startswith("tick@")]
            ticks = sorted(t for t in (tick_of(task.name) for task in tasks) if t is not None)
            expected = [first + timedelta(seconds=k) for k in range(len(ticks))]
            doubled = len(ticks) - len(set(ticks))
            missed = len(set(expected) - set(ticks))
            assert ticks == expected, f"{label}: {missed} missed, {doubled} doubled"
            assert len(ticks) > LOOP_SECONDS
            assert ticks[-1] == schedule.cursor
            assert (schedule.fired, schedule.skipped) == (len(tasks), 0)
            assert {t.idempotency_key for t in tasks} == {tick_key("tick", t) for t in ticks}

            # Every task runs to its end, and reports on the day before its own tick.
            async def all_done() -> bool:
                states = [(await client.get(t.id)).state for t in tasks]
                return all(s is TaskState.COMPLETE for s in states)

            await until(all_done, within=300)
            sample = await client.get(tasks[0].id)
            result = json.loads(sample.result or "null")
            assert result["tick"] == tick_of(sample.name).isoformat()  # type: ignore[union-attr]
            results[label] = (
                f"{len(ticks)} ticks, {missed} missed, {doubled} doubled; {kills} kills, "
                f"{group.started} workers started"
            )
    finally:
        group.stop()


async def _more(fired: object, seen: int) -> int:
    count: int = await fired()  # type: ignore[operator]
    return count if count > seen else 0


#: A task that runs about 2.5 s: longer than its schedule's 1 s period.
SLOW = {"customer": "x", "order": 1, "prepare": 2.5}


async def test_overlap_policies_under_workers(workers: Workers) -> None:
    """`skip` never starts a tick while the previous task runs, `buffer-one` keeps one
    tick waiting (and starts it when the task ends), `allow` overlaps: sampled from the
    database while two worker processes run the ticks."""
    policies = ("skip", "buffer-one", "allow")
    async with await Client.open(workers.url) as client:
        await client.register_file(EXAMPLES / "per_customer_queue.py")
        for policy in policies:
            await client.add_schedule(
                policy, "per_customer_queue", every="1s", input=SLOW, overlap=policy,
                catch_up="all",
            )  # fmt: skip
        workers.start()
        workers.start()
        most = dict.fromkeys(policies, 0)
        waited: set[datetime] = set()  # ticks seen buffered while a task ran

        async def enough() -> bool:
            tasks = await client.list(limit=10_000)
            for policy in policies:
                live = [
                    t for t in tasks if t.name.startswith(f"{policy}@") and not t.state.is_terminal
                ]
                most[policy] = max(most[policy], len(live))
            buffered = (await client.get_schedule("buffer-one")).buffered
            if buffered is not None:
                waited.add(buffered)
            started = {tick_of(t.name) for t in tasks if t.name.startswith("buffer-one@")}
            return (
                (await client.get_schedule("skip")).fired >= 3
                and (await client.get_schedule("allow")).fired >= 4
                and bool(waited & started)  # a buffered tick started later
            )

        await until(enough, within=300)
        for policy in policies:
            await client.pause_schedule(policy)
        schedules = {p: await client.get_schedule(p) for p in policies}
    print(f"most tasks running at once per overlap policy: {most}")
    assert most["skip"] == 1
    assert most["buffer-one"] == 1  # the waiting tick is not a task until its turn
    assert most["allow"] >= 2
    assert schedules["skip"].skipped >= 1
    assert schedules["buffer-one"].skipped >= 1  # one waits; the others are dropped


async def test_catch_up_after_every_worker_was_down(workers: Workers) -> None:
    """Ticks that fell while no worker ran: those missed by more than the grace follow
    the policy (all: each fires; latest: the newest only; none: none), and recent
    ones fire on restart, whatever the policy: none lost, none doubled."""
    async with await Client.open(workers.url) as client:
        await client.register_file(EXAMPLES / "nightly_report.py")
        store = client.store
        assert isinstance(store, ScheduleStore)
        # Added before the outage began: six ten-minute ticks fell while no worker ran,
        # the last five minutes ago, and the next is five minutes off.
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=55)
        for policy in ("all", "latest", "none"):
            await store.add_schedule(
                ScheduleSpec(
                    name=f"missed-{policy}", workflow="nightly_report",
                    cadence=Cadence(every=600, anchor=start), input='{"team": "ops"}',
                    overlap=Overlap.ALLOW, catch_up=CatchUp(policy),
                )
            )  # fmt: skip
        await client.add_schedule(
            "recent", "nightly_report", every="1s", input={"team": "ops"}, overlap="allow",
            catch_up="none",
        )  # fmt: skip
        workers.start()
        workers.start()
        workers.start()

        async def fired(name: str, at_least: int) -> bool:
            return (await client.get_schedule(name)).fired >= at_least

        await until(lambda: fired("recent", 2), within=300)
        for _ in range(3):
            workers.kill_one()  # every worker down
        down = await client.get_schedule("recent")

        async def ticks_fell() -> bool:  # a condition on the clock: four ticks are due
            return datetime.now(UTC) >= down.cursor + timedelta(seconds=5)

        await until(ticks_fell, within=60)
        assert (await client.get_schedule("recent")).fired == down.fired  # nobody fired
        back = datetime.now(UTC)
        workers.start()
        workers.start()

        async def caught_up() -> bool:
            return (await client.get_schedule("recent")).cursor >= back

        await until(caught_up, within=300)
        for name in ("recent", "missed-all", "missed-latest", "missed-none"):
            await client.pause_schedule(name)
        tasks = await client.list(limit=10_000)
        by_schedule: dict[str, list[datetime]] = {}
        for task in tasks:
            name, _, _ = task.name.partition("@")
            tick = tick_of(task.name)
            assert tick is not None
            by_schedule.setdefault(name, []).append(tick)
        schedules = {p: await client.get_schedule(f"missed-{p}") for p in ("all", "latest", "none")}
    missed = [start + timedelta(minutes=10 * k) for k in range(6)]
    assert sorted(by_schedule.get("missed-all", [])) == missed
    assert sorted(by_schedule.get("missed-latest", [])) == missed[-1:]
    assert by_schedule.get("missed-none", []) == []
    assert [(s.fired, s.skipped) for s in schedules.values()] == [(6, 0), (1, 5), (0, 6)]
    recent = sorted(by_schedule["recent"])
    first = recent[0]
    # The ticks that fell while every worker was down fired after the restart.
    assert recent == [first + timedelta(seconds=k) for k in range(len(recent))]
    assert recent[-1] >= back - timedelta(seconds=1)
    print(f"catch-up: {len(recent)} one-second ticks, {down.fired} before the outage; "
          f"missed ten-minute ticks fired: all 6/6, latest 1/6, none 0/6")  # fmt: skip
