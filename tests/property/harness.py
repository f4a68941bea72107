"""Running script tasks, crashing them at a chosen write, and checking what they left.

The pieces the property tests share: opening a fresh store of a backend, launching a
script task with a given seed, driving a task to its end with `exit_when_idle`
workers (waiting out suspensions in between), crashing a run with a `CrashingStore`
and resuming it the way a real deployment would, and the checks that compare runs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable.core.model import (
    NOTE_POSITION,
    Claim,
    Event,
    Lease,
    LogChunk,
    NewTask,
    Outcome,
    Stream,
    Suspended,
    Task,
    TaskState,
)
from durable.host import HostConfig, Runtime
from durable.host.config import parse_size
from durable.storage import _pg_admin as pg_admin
from durable.storage import open_store
from durable.storage.base import Store
from durable.storage.memory import MemoryStore
from durable.storage.sqlite import SQLiteStore
from durable.testing.faults import CrashingStore, SimulatedCrash, Write
from durable.worker import Worker, WorkerConfig
from tests.helpers import joined
from tests.property.scripts import (
    SUSPEND_AFTER,
    Label,
    Prediction,
    Script,
    bind,
    expected_status,
    external_notifications,
    http_path,
    masked,
    resolve_labels,
)

#: Longest a run may take before the test calls it stuck: a bound on hangs, not on speed
#: (a loaded machine runs a replay many times slower than a quiet one).
RUN_TIMEOUT = 120.0
#: The in-process backends the property tests run on.
BACKENDS = ("memory", "sqlite")
#: The host configurations the in-process properties run under: one write per event
#: and one per guest write outside a step's body (so there is a crash point at every
#: event index, and between any two prints: output committed ahead of the next event),
#: and the default group commit. Under "per-event" no write may depend on time: a held
#: step body's output is otherwise committed early once it has waited
#: `output_flush_interval`, which a busy machine reaches at random points, adding a write
#: the reference run did not make.
#: "per-event-cached" is "per-event" with the instance cache on: a task woken on the
#: runtime that suspended it goes on from its live instance (the harness's workers come
#: and go, one after another, on the session's runtimes; the cache is the runtime's),
#: and must end exactly as a replay would, at every crash point. With
#: `DURABLE_TEST_INSTANCE_CACHE=SIZE` (512M, say), every configuration keeps instances.
_CACHE_SETTING = os.environ.get("DURABLE_TEST_INSTANCE_CACHE", "")
_CACHE = parse_size(_CACHE_SETTING) if _CACHE_SETTING else 0
_PER_EVENT = HostConfig(
    suspend_after=SUSPEND_AFTER,
    max_pending_events=1,
    output_flush_bytes=1,
    output_flush_interval=3600.0,
    instance_cache=_CACHE,
)
CONFIGS: dict[str, HostConfig] = {
    "per-event": _PER_EVENT,
    "batched": HostConfig(suspend_after=SUSPEND_AFTER, instance_cache=_CACHE),
    "per-event-cached": dataclasses.replace(_PER_EVENT, instance_cache=512 * 1024**2),
}
#: For Hypothesis tests: a failing property shrinks for up to about five minutes before
#: Hypothesis prints the falsifying example; pytest-timeout's default (300 s) would kill
#: the test first and lose the reproduction.
SHRINK_TIMEOUT = pytest.mark.timeout(900)


class Component:
    """The script workflow, built once per session.

    Not a dataclass: Hypothesis prints test arguments, and its printer would show all
    18 MB of the binary.
    """

    __slots__ = ("hash", "wasm")

    def __init__(self, *, wasm: bytes, hash: str) -> None:
        self.wasm = wasm
        self.hash = hash  # SHA-256 hex, as the store names it

    def __repr__(self) -> str:
        return f"Component(hash={self.hash[:12]}...)"


@asynccontextmanager
async def open_backend(backend: str, *, url: str | None = None) -> AsyncIterator[Store]:
    """A fresh, empty, migrated store of `backend`, closed on exit.

    "memory" and "sqlite" are made here; "postgres" is the database at `url`, whose
    durable tables are emptied and whose `prop_rows` table is dropped first.
    """
    if backend == "memory":
        store = MemoryStore()
        try:
            yield store
        finally:
            await store.close()
        return
    if backend == "postgres":
        if url is None:
            raise ValueError("the postgres backend needs the database's url")
        async with _postgres_backend(url) as pg:
            yield pg
        return
    if backend != "sqlite":
        raise ValueError(f"unknown backend {backend!r}")
    with tempfile.TemporaryDirectory(prefix="durable-prop-") as tmp:
        sqlite_store = await SQLiteStore.open(Path(tmp) / "durable.db")
        try:
            await sqlite_store.migrate()
            yield sqlite_store
        finally:
            await sqlite_store.close()


@asynccontextmanager
async def _postgres_backend(url: str) -> AsyncIterator[Store]:
    import asyncpg  # only where Postgres runs

    await pg_admin.reset(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP TABLE IF EXISTS prop_rows")
    finally:
        await conn.close()
    store = await open_store(url)
    try:
        yield store
    finally:
        await store.close()


async def launch(store: Store, component: Component, script: Script, seed: int) -> Task:
    """Store the workflow (idempotent) and create a task running `script` with `seed`.

    Each `http` op is pointed at the session's counting server, and the notification
    each `wait` op waits for is sent at once.
    """
    await store.put_workflow(component.wasm, name="script")
    task = await store.create_task(
        NewTask(
            name="script", workflow_hash=component.hash, input=json.dumps(bind(script)), seed=seed
        )
    )
    for event, data in external_notifications(script):
        await store.notify(task.id, event, data)
    return task


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A task as the store holds it: its row, its history and its log."""

    task: Task
    history: list[Event]
    logs: list[LogChunk]
    # Its status values: by key, the JSON text and the index of the event that set it.
    status: dict[str, tuple[str, int]] = dataclasses.field(default_factory=dict)

    @property
    def result(self) -> Any:
        """The decoded result (None unless complete)."""
        return None if self.task.result is None else json.loads(self.task.result)

    @property
    def error(self) -> dict[str, Any] | None:
        """The decoded error (None unless failed)."""
        return None if self.task.error is None else dict(json.loads(self.task.error))

    def labels(self) -> list[Label]:
        """Each recorded event's (label, digest)."""
        return [(e.label, e.digest) for e in self.history]

    def output(self, stream: Stream) -> bytes:
        """Everything logged on `stream`, concatenated."""
        return b"".join(c.data for c in self.logs if c.stream is stream)

    def chunks(self) -> list[tuple[int, str, bytes]]:
        """The log as (position, stream, data), with neighbours of the same position and
        stream joined: what any two equivalent runs share (where a flush cut the output
        into chunks depends on timing, and on where a replay took over)."""
        return joined(self.logs)

    def describe(self) -> str:
        """A multi-line dump for assertion messages."""
        lines = [
            f"task {self.task.id}: {self.task.state.value}, attempts {self.task.attempts}, "
            f"result {self.task.result}, error {self.task.error}"
        ]
        lines += [f"  event {e.index}: {e.label} [{e.digest}] = {e.payload}" for e in self.history]
        lines += [f"  log {c.seq} @{c.position} {c.stream.value}: {c.data!r}" for c in self.logs]
        return "\n".join(lines)


def resumed_log(kept: Snapshot, reference: Snapshot) -> list[tuple[int, str, bytes]]:
    """The log of a task that ran another script until `kept`, then ran `reference`'s.

    The rule of `durable.core.output`: what `kept` logged stays; of the reference's
    output, positions below `kept`'s history length are replayed silently, and at that
    length the first bytes (as many as `kept` logged there, in write order across
    streams) are skipped.
    """
    cut = len(kept.history)
    skip = sum(len(c.data) for c in kept.logs if c.position == cut)
    rest: list[LogChunk] = []
    for c in reference.logs:
        if c.position == cut and skip:
            taken = min(skip, len(c.data))
            skip -= taken
            c = dataclasses.replace(c, data=c.data[taken:])
        if c.data and (c.position >= cut or c.position == NOTE_POSITION):
            rest.append(c)
    return joined([*kept.logs, *rest])


async def snapshot(store: Store, task_id: int) -> Snapshot:
    """Read the task, its history and its log."""
    return Snapshot(
        task=await store.get_task(task_id),
        history=await store.load_history(task_id),
        logs=await store.read_logs(task_id),
        status={v.key: (v.value, v.position) for v in await store.read_status(task_id)},
    )


def make_worker(store: Store, runtime: Runtime, *, concurrency: int = 1) -> Worker:
    """A worker that exits when idle, sharing the session's `runtime`."""
    config = WorkerConfig(concurrency=concurrency, exit_when_idle=True, host=runtime.config)
    return Worker(store, config, runtime=runtime)


async def _until_due(*tasks: Task) -> None:
    """Sleep until the first timer of the suspended tasks is due (else a short pause)."""
    wakeups = [
        t.wakeup_at for t in tasks if t.state is TaskState.SUSPENDED and t.wakeup_at is not None
    ]
    if wakeups:
        delay = (min(wakeups) - datetime.now(UTC)).total_seconds()
        await anyio.sleep(max(0.0, delay) + 0.001)
    else:
        await anyio.sleep(0.01)


async def run_to_end(store: Store, runtime: Runtime, task_id: int) -> Snapshot:
    """Run `exit_when_idle` workers until the task ends; wait out suspensions between."""
    try:
        with anyio.fail_after(RUN_TIMEOUT):
            while True:
                await make_worker(store, runtime).run()
                task = await store.get_task(task_id)
                if task.state.is_terminal:
                    return await snapshot(store, task_id)
                await _until_due(task)
    except TimeoutError:
        stuck = await snapshot(store, task_id)
        raise AssertionError(
            f"task did not end within {RUN_TIMEOUT} s:\n{stuck.describe()}"
        ) from None


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    """Every exception in `exc`'s groups, and what a crash interrupted.

    A dead store raises again in the worker's `finally` clauses; the error those were
    handling (the implicit context) is followed, so a real error cannot hide behind a
    crash. A context the raiser suppressed (`raise ... from None`) is not.
    """
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
        return
    yield exc
    context = exc.__context__
    if isinstance(exc, SimulatedCrash) and context is not None and not exc.__suppress_context__:
        yield from _leaves(context)


def only_simulated_crashes(exc: BaseException) -> bool:
    """Whether `exc` is our crash (possibly grouped), hiding no real error."""
    cancelled = anyio.get_cancelled_exc_class()
    leaves = [e for e in _leaves(exc) if not isinstance(e, cancelled)]
    return bool(leaves) and all(isinstance(e, SimulatedCrash) for e in leaves)


@dataclass(frozen=True, slots=True, kw_only=True)
class Crash:
    """A run killed at one write: what the dead process did and what it left."""

    crash_at: int
    after: bool
    fired: Write | None  # the fatal write, None when the run ended before reaching it
    writes: list[Write]  # the writes the crashed process attempted
    dead_worker: str | None  # the id of the worker that died, None if none did
    pre: Snapshot  # what was durable when the process died

    def where(self) -> str:
        """Names the crash point, for assertion messages."""
        point = "after" if self.after else "before"
        what = self.fired.describe() if self.fired else "(not reached: the run ended first)"
        return f"crash {point} write {self.crash_at} = {what}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CrashRun(Crash):
    """A run crashed at one write and resumed to its end."""

    final: Snapshot  # after resuming


async def count_writes(
    store: Store, runtime: Runtime, task_id: int
) -> tuple[Snapshot, list[Write]]:
    """Run the task to its end uninterrupted, recording its history-carrying writes."""
    counting = CrashingStore(store, crash_at=None)
    await run_to_end(counting, runtime, task_id)
    return await snapshot(store, task_id), counting.writes


async def run_until_dead(
    store: Store,
    runtime: Runtime,
    task_ids: Sequence[int],
    *,
    crash_at: int,
    after: bool,
    concurrency: int = 1,
) -> tuple[CrashingStore, str | None]:
    """Run the tasks with workers that all die at write `crash_at` (before or after it).

    Workers run one after another (waiting out suspensions) until one dies or every
    task ends first. The dead worker makes no further call: its leases are still held.
    Returns the wrapper (with the writes attempted) and the dead worker's id, if any.
    """
    crashing = CrashingStore(store, crash_at=crash_at, after=after)
    try:
        with anyio.fail_after(RUN_TIMEOUT):
            while True:
                worker = make_worker(crashing, runtime, concurrency=concurrency)
                try:
                    await worker.run()
                except BaseException as exc:
                    if not (crashing.crashed and only_simulated_crashes(exc)):
                        raise
                    return crashing, worker.id
                tasks = [await store.get_task(task_id) for task_id in task_ids]
                if all(task.state.is_terminal for task in tasks):
                    return crashing, None  # fewer writes than `crash_at` this time
                await _until_due(*tasks)
    except TimeoutError:
        stuck = "\n".join([(await snapshot(store, i)).describe() for i in task_ids])
        raise AssertionError(f"crashing run did not end:\n{stuck}") from None


async def crash(
    store: Store, runtime: Runtime, task_id: int, *, crash_at: int, after: bool
) -> Crash:
    """Run the task with workers that die at write `crash_at` (before or after it)."""
    crashing, dead = await run_until_dead(store, runtime, [task_id], crash_at=crash_at, after=after)
    return Crash(
        crash_at=crash_at,
        after=after,
        fired=crashing.writes[crash_at] if crashing.crashed else None,
        writes=list(crashing.writes),
        dead_worker=dead,
        pre=await snapshot(store, task_id),
    )


async def resume(store: Store, runtime: Runtime, crashed: Crash) -> Snapshot:
    """What a live worker does on noticing a dead peer: free its tasks, run them."""
    if crashed.dead_worker is not None:
        await store.remove_worker(crashed.dead_worker)
    return await run_to_end(store, runtime, crashed.pre.task.id)


async def crash_and_resume(
    store: Store,
    runtime: Runtime,
    component: Component,
    script: Script,
    seed: int,
    *,
    crash_at: int,
    after: bool,
) -> CrashRun:
    """Launch `script`, kill its worker at write `crash_at`, and resume it to its end."""
    task = await launch(store, component, script, seed)
    crashed = await crash(store, runtime, task.id, crash_at=crash_at, after=after)
    final = await resume(store, runtime, crashed)
    return CrashRun(
        crash_at=crashed.crash_at,
        after=crashed.after,
        fired=crashed.fired,
        writes=crashed.writes,
        dead_worker=crashed.dead_worker,
        pre=crashed.pre,
        final=final,
    )


class _StopAtSuspension:
    """A worker's view of a store that shows no more work once a task has suspended.

    So that an `exit_when_idle` worker exits at the suspension, however slowly it gets
    there (left alone, it waits for a timer due within `suspend_after`).
    """

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.parked = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def finish(self, lease: Lease, outcome: Outcome, *args: Any, **kwargs: Any) -> None:
        await self.inner.finish(lease, outcome, *args, **kwargs)
        self.parked = self.parked or isinstance(outcome, Suspended)

    async def claim(self, **kwargs: Any) -> list[Claim]:
        if self.parked:
            return []
        return await self.inner.claim(**kwargs)

    async def next_wakeup(self, **kwargs: Any) -> datetime | None:
        return None if self.parked else await self.inner.next_wakeup(**kwargs)


async def run_until_suspended(store: Store, runtime: Runtime, task_id: int) -> Snapshot:
    """Run the task until its first suspension; fail if it ends first."""
    await make_worker(_StopAtSuspension(store), runtime).run()
    parked = await snapshot(store, task_id)
    assert parked.task.state is TaskState.SUSPENDED, f"expected a suspension:\n{parked.describe()}"
    return parked


# -- checks --------------------------------------------------------------------------------


def check_matches_model(
    run: Snapshot, prediction: Prediction, where: str, *, check_stdout: bool = True
) -> None:
    """One run, on its own: the history, result, error and log the model predicts.

    `check_stdout=False` when an earlier attempt ran another script, whose output the
    log keeps (output is not an event: a changed print is not nondeterminism); that
    goes for its stderr too (a traceback it printed and committed before a crash).
    """
    dump = f"{where}\n{run.describe()}"
    assert [e.index for e in run.history] == list(range(len(run.history))), f"gap: {dump}"
    expected_labels = resolve_labels(prediction, run.task.id, run.history)
    assert run.labels() == expected_labels, f"recorded events differ from the model: {dump}"
    if check_stdout:
        stdout = "".join(line + "\n" for line in prediction.print_lines()).encode()
        assert run.output(Stream.STDOUT) == stdout, f"each line once, in order: {dump}"
        check_status(run, prediction, where)
    if prediction.raises_at is not None:
        assert run.task.state is TaskState.FAILED, dump
        error = run.error or {}
        assert error.get("kind") == "ScriptRaised", dump
        assert error.get("message") == f"script raised at op {prediction.raises_at}", dump
        stderr = run.output(Stream.STDERR).decode(errors="replace")
        raised = prediction.raises_at
        assert f"ScriptRaised: script raised at op {raised}" in stderr, dump
        # Printed once: Python's traceback header, or the JavaScript SDK's error line.
        python = "Traceback (most recent call last)"
        once = python if python in stderr else f"ScriptRaised: script raised at op {raised}"
        if check_stdout:
            assert stderr.count(once) == 1, f"traceback once: {dump}"
        return
    assert run.task.state is TaskState.COMPLETE, dump
    if check_stdout:
        assert run.output(Stream.STDERR) == b"", dump
    observed = run.result
    assert isinstance(observed, list), dump
    assert len(observed) == len(prediction.performed), dump
    for p in prediction.performed:
        if p.spec.from_events is not None:
            own = [run.history[i] for i in p.event_range]
            expected = p.spec.from_events(own)
            assert observed[p.index] == expected, (
                f"op {p.index} ({p.spec.name}) observed {observed[p.index]!r}, but its "
                f"recorded event says {expected!r}: {dump}"
            )


def check_same_end(
    reference: Snapshot,
    run: Snapshot,
    prediction: Prediction,
    where: str,
    *,
    kept: Snapshot | None = None,
) -> None:
    """Two tasks with the same script and seed: the same end, up to live values.

    Live values (clock readings, deadlines) differ between tasks; they are checked
    against each task's own events by `check_matches_model`. Everything else, from the
    step payloads to the log bytes, must be identical. With `kept` (what was durable
    when an earlier attempt of `run` stopped), the log must be `kept`'s log followed by
    the reference's output from `kept`'s last event on (`resumed_log`): an earlier
    attempt may have run another script, and what it printed stays printed, once.
    """
    dump = f"{where}\n--- reference:\n{reference.describe()}\n--- this run:\n{run.describe()}"
    assert run.task.state is reference.task.state, dump
    assert masked(run.labels(), prediction) == masked(reference.labels(), prediction), dump
    for p in prediction.performed:
        if p.spec.stable_payloads:
            for i in p.event_range:
                assert run.history[i].payload == reference.history[i].payload, (
                    f"event {i} ({p.spec.name}): {dump}"
                )
    assert run.task.error == reference.task.error, dump
    expected = reference.chunks() if kept is None else resumed_log(kept, reference)
    assert run.chunks() == expected, f"the log differs: {dump}"
    if reference.task.state is TaskState.COMPLETE:
        for p in prediction.performed:
            if p.spec.from_events is None:
                assert run.result[p.index] == reference.result[p.index], (
                    f"op {p.index} ({p.spec.name}): {dump}"
                )


def check_status(run: Snapshot, prediction: Prediction, where: str) -> None:
    """The task's status values are exactly those set by the events it has durable: a
    value commits with its event, and a replay sets nothing again."""
    expected = expected_status(prediction, len(run.history))
    assert run.status == expected, f"{where}: status {run.status} != {expected}\n{run.describe()}"


def check_prefix_kept(pre: Snapshot, final: Snapshot, where: str) -> None:
    """What was durable at the crash is still there, unchanged (events and log)."""
    dump = f"{where}\n--- at the crash:\n{pre.describe()}\n--- at the end:\n{final.describe()}"
    assert final.history[: len(pre.history)] == pre.history, f"history rewritten: {dump}"
    assert final.logs[: len(pre.logs)] == pre.logs, f"log rewritten: {dump}"


def labels_prefix_ok(history: Sequence[Event], prediction: Prediction) -> bool:
    """Whether `history` is a prefix of what the model predicts."""
    labels = [(e.label, e.digest) for e in history]
    return masked(labels, prediction) == masked(prediction.labels[: len(history)], prediction)


def set_input(db: Path, task_id: int, script: Script) -> None:
    """Rewrite a task's input behind the engine's back (direct SQL on the SQLite file)."""
    with closing(sqlite3.connect(db)) as conn, conn:
        changed = conn.execute(
            "UPDATE durable_task_input SET input = ? WHERE task_id = ?",
            (json.dumps(bind(script)), task_id),
        ).rowcount
    assert changed == 1, f"no task {task_id} in {db}"


# -- effects outside the history: HTTP requests and SQL rows ------------------------------


def strip_sql(script: Script) -> Script:
    """`script` for a store without SQL (memory): each `sql_insert` becomes a `step`."""
    return [{"op": "step", "arg": op["arg"]} if op["op"] == "sql_insert" else op for op in script]


async def sql_rows(
    store: Store, task_id: int, *, url: str | None = None
) -> list[tuple[int, int]] | None:
    """The (op, arg) rows the task's `sql_insert` ops left, sorted; None without SQL.

    A Postgres store needs its `url` (the store only shows it with the password masked).
    """
    if isinstance(store, CrashingStore):
        store = store.inner
    if isinstance(store, SQLiteStore):
        with closing(sqlite3.connect(store.path)) as conn:
            tables = conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'prop_rows'"
            ).fetchone()[0]
            if not tables:
                return []
            rows = conn.execute(
                "SELECT op, arg FROM prop_rows WHERE task = ? ORDER BY op, arg", (task_id,)
            ).fetchall()
        return [(int(a), int(b)) for a, b in rows]
    if url is not None:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            if await conn.fetchval("SELECT to_regclass('prop_rows')") is None:
                return []
            records = await conn.fetch(
                "SELECT op, arg FROM prop_rows WHERE task = $1 ORDER BY op, arg", task_id
            )
        finally:
            await conn.close()
        return [(int(r[0]), int(r[1])) for r in records]
    return None


#: The table the `sql_insert` op writes (the workflow creates it if missing).
PROP_ROWS_DDL = "CREATE TABLE IF NOT EXISTS prop_rows (task INTEGER, op INTEGER, arg INTEGER)"


def check_sql_once(rows: list[tuple[int, int]] | None, prediction: Prediction, where: str) -> None:
    """Each performed `sql_insert` left its row exactly once (a `raise` rolls nothing back)."""
    if rows is None:
        return
    expected = sorted(
        (p.index, int(p.op["arg"])) for p in prediction.performed if p.spec.name == "sql_insert"
    )
    assert rows == expected, f"{where}: SQL rows {rows}, expected each exactly once: {expected}"


def check_http_counts(
    delta: Counter[str], prediction: Prediction, crashes: int, where: str
) -> None:
    """Each performed `http` op's request was sent at least once, at most once more per crash."""
    for p in prediction.performed:
        if p.spec.name != "http":
            continue
        path = http_path(p.index)
        assert 1 <= delta[path] <= 1 + crashes, (
            f"{where}: op {p.index} requested {path} {delta[path]} times "
            f"(at least once, at most {1 + crashes} with {crashes} crash(es))"
        )
