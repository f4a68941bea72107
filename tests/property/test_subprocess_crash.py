"""Property: a `durable worker` process killed with SIGKILL at any write loses nothing.

The same property as `test_crash_replay`, between real processes on a SQLite file. A
task with a generated script (every operation, workflow SQL included) and seed is
created in the file; a `durable worker` process runs it with the test-only crash hook
on (`DURABLE_TEST_CRASH_AT=k`, `DURABLE_TEST_CRASH_POINT=before|after`: `open_store`
wraps the store so that the process SIGKILLs itself before write k, or right after it
commits). A second `durable worker --exit-when-idle` (which notices the dead worker and
frees its task) finishes it. The file must then hold what an uninterrupted in-process
run of the same script and seed produces: the same state, result or error, recorded
events and log, each line once, with everything durable at the kill kept unchanged,
each HTTP request sent at least once and at most twice, and each SQL row written
exactly once. One test kills the worker exactly at the commit of a workflow SQL
transaction, before it and after it.

Each example starts two processes (about a second each), so this runs a handful.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import tempfile
import time
from contextlib import closing
from pathlib import Path

import anyio
import pytest
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st

from durable.host import Runtime
from durable.storage.sqlite import SQLiteStore
from durable.testing.faults import CRASH_AT_ENV, CRASH_POINT_ENV, GUEST_COMMIT, WRITE_REPORT, Write
from tests.helpers import ROOT, cli_env, durable_cmd
from tests.property.harness import (
    SHRINK_TIMEOUT,
    Component,
    Snapshot,
    check_http_counts,
    check_matches_model,
    check_prefix_kept,
    check_same_end,
    check_sql_once,
    count_writes,
    launch,
    open_backend,
    snapshot,
    sql_rows,
)
from tests.property.http_server import CountingServer
from tests.property.scripts import ALL_OPS, SUSPEND_AFTER, Script, predict, scripts

SEEDS = st.integers(min_value=1, max_value=2**63 - 1)
#: A handful: each example costs two process starts.
EXAMPLES = max(4, settings().max_examples // 4)  # settings(): the loaded profile
#: How long the worker to be killed may run before the test fails.
KILL_TIMEOUT = 120.0


_env = cli_env


_EVENTS = re.compile(r"events \[([\d, ]*)\]")


def _event_count(description: str) -> int:
    """How many events a reported write carried (`... events [3, 4] ...` -> 2)."""
    found = _EVENTS.search(description)
    assert found is not None, f"cannot read the events of {description!r}"
    return len([i for i in found.group(1).split(",") if i.strip()])


def _state(db: Path, task_id: int) -> str:
    with closing(sqlite3.connect(db, timeout=10)) as conn:
        row = conn.execute("SELECT state FROM durable_task WHERE id = ?", (task_id,)).fetchone()
    return str(row[0])


def _run_to_be_killed(
    cmd: list[str], env: dict[str, str], db: Path, task_id: int
) -> subprocess.CompletedProcess[str] | None:
    """Run the worker that is to kill itself at its crash point.

    Returns None if the task ended first (a worker does not exit by itself): its group
    commit batched more events per write than the reference run's, so it made fewer
    writes. Fails the test if neither happens within `KILL_TIMEOUT`.
    """
    with (
        tempfile.TemporaryFile("w+") as stderr,
        subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr, text=True
        ) as proc,
    ):
        deadline = time.monotonic() + KILL_TIMEOUT
        ended: float | None = None
        while proc.poll() is None:
            now = time.monotonic()
            if now > deadline:
                proc.kill()
                pytest.fail(f"the worker was not killed within {KILL_TIMEOUT} s")
            if ended is None and _state(db, task_id) in ("complete", "failed"):
                ended = now
            if ended is not None and now - ended > 1.0:
                proc.kill()
                return None
            time.sleep(0.05)
        stderr.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, "", stderr.read())


async def _sql_rows(db: Path, task_id: int) -> list[tuple[int, int]] | None:
    store = await SQLiteStore.open(db)
    try:
        return await sql_rows(store, task_id)
    finally:
        await store.close()


async def _read(db: Path, task_id: int) -> Snapshot:
    store = await SQLiteStore.open(db)
    try:
        return await snapshot(store, task_id)
    finally:
        await store.close()


@pytest.mark.anyio
@SHRINK_TIMEOUT
@given(
    script=scripts(names=ALL_OPS, max_ops=6),
    seed=SEEDS,
    pick=st.integers(0, 15),
    after=st.booleans(),
)
@example(
    script=[
        {"op": "print", "text": "a"},
        {"op": "now"},
        {"op": "long_sleep"},
        {"op": "print", "text": "b"},
        {"op": "step", "arg": 2},
        {"op": "now"},
    ],
    seed=3,
    pick=0,  # the suspension: killed once it is durable, woken by the next worker
    after=True,
)
@settings(max_examples=EXAMPLES)
async def test_a_killed_worker_process_resumes_to_the_same_end(
    component: Component,
    runtimes: dict[str, Runtime],
    http_server: CountingServer,
    tmp_path_factory: pytest.TempPathFactory,
    script: Script,
    seed: int,
    pick: int,
    after: bool,
) -> None:
    reference, writes = await _reference(component, runtimes, script, seed)
    crash_at = pick % len(writes)
    note(f"kill {'after' if after else 'before'} write {crash_at} of {writes}")
    killed = await _kill_and_resume(
        component, http_server, tmp_path_factory, script, seed, reference, writes,
        crash_at=crash_at, after=after,
    )  # fmt: skip
    event("killed" if killed else "kill point not reached (timing-dependent group commit)")


@pytest.mark.anyio
@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
async def test_a_worker_killed_at_the_commit_of_workflow_sql_applies_it_once(
    component: Component,
    runtimes: dict[str, Runtime],
    http_server: CountingServer,
    tmp_path_factory: pytest.TempPathFactory,
    after: bool,
) -> None:
    """Killed just before the transaction's commit (nothing of it durable, so the
    next worker runs it again) or just after (the next worker replays it, no SQL)."""
    script: Script = [
        {"op": "print", "text": "a"},
        {"op": "sql_insert", "arg": 7},
        {"op": "print", "text": "b"},
        {"op": "sql_insert", "arg": 8},
        {"op": "now"},
    ]
    reference, writes = await _reference(component, runtimes, script, 5)
    commits = [w.number for w in writes if w.method == GUEST_COMMIT]
    assert len(commits) == 2, [w.describe() for w in writes]
    for crash_at in commits:
        killed = await _kill_and_resume(
            component, http_server, tmp_path_factory, script, 5, reference, writes,
            crash_at=crash_at, after=after,
        )  # fmt: skip
        assert killed, f"the worker was not killed at write {crash_at}"


async def _reference(
    component: Component, runtimes: dict[str, Runtime], script: Script, seed: int
) -> tuple[Snapshot, list[Write]]:
    """The same script and seed, uninterrupted, in process, with the settings `durable
    worker --suspend-after` uses (the default group commit), and its writes."""
    prediction = predict(script)
    async with open_backend("sqlite") as store:
        task = await launch(store, component, script, seed)
        reference, writes = await count_writes(store, runtimes["batched"], task.id)
        check_sql_once(await sql_rows(store, task.id), prediction, "reference run")
    check_matches_model(reference, prediction, "reference run")
    return reference, writes


async def _kill_and_resume(
    component: Component,
    http_server: CountingServer,
    tmp_path_factory: pytest.TempPathFactory,
    script: Script,
    seed: int,
    reference: Snapshot,
    writes: list[Write],
    *,
    crash_at: int,
    after: bool,
) -> bool:
    """Kill a worker process at write `crash_at`, finish the task with another, check
    it ended like `reference`. Returns whether the kill point was reached."""
    prediction = predict(script)
    point = "after" if after else "before"
    where = f"kill {point} write {crash_at} = {writes[crash_at].describe()}"

    db = tmp_path_factory.mktemp("killed") / "durable.db"
    store = await SQLiteStore.open(db)
    try:
        await store.migrate()
        task = await launch(store, component, script, seed)
    finally:
        await store.close()

    http_before = http_server.snapshot()
    env = _env(**{CRASH_AT_ENV: str(crash_at), CRASH_POINT_ENV: point})
    cmd = durable_cmd("worker", "--db", str(db), "--suspend-after", str(SUSPEND_AFTER))
    killed = await anyio.to_thread.run_sync(_run_to_be_killed, cmd, env, db, task.id)
    pre: Snapshot | None = None
    if killed is not None:
        assert killed.returncode == -signal.SIGKILL, (
            f"{where}: the worker exited with {killed.returncode}, not by SIGKILL\n"
            f"{killed.stderr[-3000:]}"
        )
        # What the killed process attempted, as it reported it (its group commit may
        # have batched differently from the reference run's).
        reported = [
            line.removeprefix(WRITE_REPORT)
            for line in killed.stderr.splitlines()
            if line.startswith(WRITE_REPORT)
        ]
        assert len(reported) == crash_at + 1, f"{where}: the process reported {reported}"
        where = f"kill {point} write {reported[-1]}"
        pre = await _read(db, task.id)
        count = sum(_event_count(w) for w in reported[: crash_at + 1 if after else crash_at])
        assert len(pre.history) == count, (
            f"{where}: the writes carried {count} events\n{pre.describe()}"
        )

    resumed = await anyio.run_process(
        durable_cmd("worker", "--db", str(db), "--exit-when-idle"),
        cwd=ROOT,
        env=_env(),
        check=False,
    )
    assert resumed.returncode == 0, f"{where}: {resumed.stderr.decode(errors='replace')}"
    final = await _read(db, task.id)
    if pre is not None:
        check_prefix_kept(pre, final, where)
    check_matches_model(final, prediction, where)
    check_same_end(reference, final, prediction, where)
    crashes = 0 if killed is None else 1
    check_http_counts(http_server.snapshot() - http_before, prediction, crashes, where)
    check_sql_once(await _sql_rows(db, task.id), prediction, where)
    return killed is not None
