"""The WASI monotonic clock is derived: a hand-written WAT guest that reads it around a
durable sleep, a 5 s timer and a step gets the same readings on every run, on
`durable replay`, and in a later attempt after a suspension; its timer is ready at once.

Built from text with wasm-tools, for the oldest and the vendored WASI 0.2 versions (the
host shadows every 0.2.x).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from durable.core.model import Task, TaskState
from durable.core.virtual_clock import ORIGIN_NS, QUANTUM_NS, STEP_ALLOWANCE_NS
from durable.host import HostConfig, Runtime
from durable.storage import open_store
from durable.worker import Worker, WorkerConfig
from tests.guests.wat import build_clock_wat
from tests.helpers import launch_task, run_cli, running, until

MS, S = 1_000_000, 1_000_000_000
#: What clock.wat returns: t0; t1 after a 1 ms durable sleep; t2 after a 5 s timer and
#: a step (whose three readings stay within its allowance: the step moves the clock by
#: that allowance and one quantum, whether it ran or was replayed).
EXPECTED = [
    ORIGIN_NS + QUANTUM_NS,
    ORIGIN_NS + 2 * QUANTUM_NS + 1 * MS,
    ORIGIN_NS + 4 * QUANTUM_NS + 1 * MS + 5 * S + STEP_ALLOWANCE_NS,
]


def _readings(result: str | None) -> list[int]:
    return [int(h, 16) for h in json.loads(result or "null").split()]


@pytest.mark.parametrize("wasi", ["0.2.0", "0.2.9"])
def test_readings_are_derived_and_replay_identically(tmp_path: Path, wasi: str) -> None:
    wasm = build_clock_wat(tmp_path, wasi)
    db = str(tmp_path / "clock.db")
    proc = run_cli("run", str(wasm), "--db", db, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = proc.stdout.splitlines()[-1]
    assert _readings(result) == EXPECTED
    replay = run_cli("replay", "1", "--json", "--db", db, cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    report = json.loads(replay.stdout)
    assert report["clean"], report
    assert _readings(report["result"]) == EXPECTED


@pytest.mark.anyio
async def test_a_later_attempt_continues_the_same_clock(tmp_path: Path) -> None:
    # suspend_after=0: the 1 ms sleep suspends the task, and a second attempt replays
    # the first reading and the sleep before it reads on.
    wasm = build_clock_wat(tmp_path).read_bytes()
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    runtime = Runtime(HostConfig(suspend_after=0, cache_dir=tmp_path / "cache"))
    try:
        task = await launch_task(store, wasm, "", None, workflow_name="clock")
        worker = Worker(store, WorkerConfig(host=runtime.config), runtime=runtime)
        async with running(worker):

            async def ended() -> Task | None:
                now = await store.get_task(task.id)
                return now if now.state.is_terminal else None

            done: Task = await until(ended, within=120)
        assert done.state is TaskState.COMPLETE, done.error
        assert done.attempts >= 2  # it did suspend and come back
        assert _readings(done.result) == EXPECTED
    finally:
        runtime.close()
        await store.close()
