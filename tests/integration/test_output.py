"""Guest output at scale, streamed, exactly once across SIGKILL, and limited.

Real components (`tests/workflows/output/printer.py`), real `durable worker`
processes (memory read from /proc, killed with SIGKILL), on SQLite and Postgres.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from benchmarks.processes import WorkerProcess, worker_command, worker_processes
from durable.client import Client
from durable.core.model import NOTE_POSITION, LogChunk, Stream, Task, TaskState
from durable.host import HostConfig, Runtime
from durable.storage import open_store
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig
from tests.helpers import ROOT, WORKFLOWS, built, run_cli

pytestmark = pytest.mark.anyio

PRINTER = WORKFLOWS / "output" / "printer.py"
LINE_BYTES = 100  # printer.LINE_BYTES
MiB = 1024 * 1024
KILL_TOLERANCE = 10  # worker deaths before quarantine, above the kills a test makes
#: Generous: this machine may be three times slower in CI.
SLOW = 600


def line(i: int) -> bytes:
    """The printer's line `i`."""
    head = f"line {i:09d} "
    return (head + "x" * (LINE_BYTES - 1 - len(head)) + "\n").encode()


def flood_digest(lines: int) -> str:
    digest = hashlib.sha256()
    for i in range(lines):
        digest.update(line(i))
    return digest.hexdigest()


@pytest.fixture(scope="module")
def printer() -> tuple[bytes, str]:
    return built(PRINTER)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend, by URL (for worker processes)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'durable.db'}"
    request.applymarker(pytest.mark.postgres)
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def client(db_url: str) -> AsyncIterator[Client]:
    store = await open_store(db_url)
    try:
        yield Client(store)
    finally:
        await store.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[str], WorkerProcess]]:
    """Starts `durable worker` processes on a URL; each is killed when the test ends."""
    with worker_processes() as started:

        def start(url: str) -> WorkerProcess:
            # The kills here are deliberate: more of them than the default quarantine allows.
            command = worker_command(url, max_worker_deaths=KILL_TOLERANCE)
            proc = WorkerProcess(command, tmp_path / f"worker-{len(started)}.log")
            started.append(proc)
            return proc

        yield start


async def launch(client: Client, printer: tuple[bytes, str], entry: str, value: Any) -> Task:
    workflow_hash = await client.register(printer[0], name="printer")
    return await client.launch(workflow_hash, name=entry, input=value, entry=entry)


async def ended(client: Client, task_id: int) -> Task:
    return await client.wait(task_id, timeout=SLOW)


async def whole_log(store: Store, task_id: int) -> list[LogChunk]:
    """The task's log, read a page at a time."""
    chunks: list[LogChunk] = []
    while page := await store.read_logs(task_id, after_seq=len(chunks), limit=16):
        chunks += page  # seq runs 1, 2, 3 ... per task
    return chunks


# -- volume and memory ------------------------------------------------------------------------


@pytest.mark.timeout(2 * SLOW)
async def test_a_flood_is_logged_whole_streams_and_holds_no_more_memory_than_a_trickle(
    client: Client,
    db_url: str,
    printer: tuple[bytes, str],
    workers: Callable[[str], WorkerProcess],
) -> None:
    """40 MiB printed with no durable call in between: the log holds exactly those bytes,
    they show while the task still runs, and the worker's peak memory grows no more
    than for 2 MiB (a bounded buffer: no output is held whole, or joined per write)."""
    worker = workers(db_url)
    warm = await launch(client, printer, "flood", 1)  # loads (or compiles) the component
    assert (await ended(client, warm.id)).state is TaskState.COMPLETE

    growth: dict[int, float] = {}
    for mib in (2, 40):
        lines = mib * MiB // LINE_BYTES
        worker.reset_peak()
        base = worker.memory_mib()["VmHWM"]
        task = await launch(client, printer, "flood", lines)
        streamed = False
        with anyio.fail_after(SLOW):
            while not (current := await client.get(task.id)).state.is_terminal:
                if not streamed and await client.store.read_logs(task.id, limit=1):
                    streamed = (await client.get(task.id)).state is TaskState.ACTIVE
                await anyio.sleep(0.05)
        assert current.state is TaskState.COMPLETE, current.error
        growth[mib] = worker.memory_mib()["VmHWM"] - base
        log = await whole_log(client.store, task.id)
        assert {c.stream for c in log} == {Stream.STDOUT}
        data = hashlib.sha256()
        for chunk in log:
            data.update(chunk.data)
        assert sum(len(c.data) for c in log) == lines * LINE_BYTES
        assert data.hexdigest() == flood_digest(lines), "exactly the bytes printed, in order"
        assert streamed, f"nothing of {mib} MiB showed before the task ended"
    assert growth[40] < growth[2] + 12, f"peak memory grew with the output: {growth} MiB"


# -- streaming -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    rt = Runtime(HostConfig())
    try:
        yield rt
    finally:
        rt.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def live_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        url = request.getfixturevalue("shared_pg_url")
        from durable.storage import _pg_admin

        await _pg_admin.reset(url)
    else:
        url = f"sqlite:///{tmp_path / 'live.db'}"
    store = await open_store(url)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def running_worker(store: Store, runtime: Runtime) -> AsyncIterator[None]:
    """An in-process worker for the block; stopped, its guests with it, on the way out."""
    worker = Worker(store, WorkerConfig(host=runtime.config), runtime=runtime)
    stopped = anyio.Event()

    async def run() -> None:
        try:
            await worker.run()
        finally:
            stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        try:
            yield
        finally:
            # Before the group is cancelled: a cancelled worker would not hand its tasks
            # back, and a guest that never makes a durable call would run on.
            worker.stop()
            with anyio.CancelScope(shield=True), anyio.move_on_after(SLOW):
                await stopped.wait()


async def text_shows(client: Client, task_id: int, text: bytes) -> Task:
    """Follow the task's log until `text` shows; return the task as it is then."""
    seen = b""
    with anyio.fail_after(SLOW):
        async for chunk in client.follow(task_id):
            seen += chunk.data
            if text in seen:
                return await client.get(task_id)
    raise AssertionError(f"the task ended before {text!r} showed: {seen[-300:]!r}")


async def test_output_shows_while_the_guest_computes_without_durable_calls(
    live_store: Store, printer: tuple[bytes, str], runtime: Runtime
) -> None:
    """A print followed by a loop that never makes a durable call: the line is logged
    within about a second, while the task runs, not when it ends."""
    client = Client(live_store)
    task = await launch(client, printer, "spin", "working on it")
    async with running_worker(live_store, runtime):
        seen = await text_shows(client, task.id, b"working on it\n")
        assert seen.state is TaskState.ACTIVE, "still computing"
        await client.cancel(task.id)
        done = await ended(client, task.id)
    assert done.state is TaskState.CANCELLED
    log = await whole_log(live_store, task.id)
    guest = b"".join(c.data for c in log if c.position != NOTE_POSITION)
    assert guest == b"working on it\n", "once"
    notes = [c.data for c in log if c.position == NOTE_POSITION]
    assert notes
    assert notes[0].startswith(b"Cancelled:")


async def test_output_before_a_wait_shows_before_the_notification(
    live_store: Store, printer: tuple[bytes, str], runtime: Runtime
) -> None:
    """The workflow prints, then waits for `go` (suspended, with nothing after its last
    event): the test sees the output first, and only then releases it."""
    client = Client(live_store)
    task = await launch(client, printer, "flood_then_wait", 300)
    async with running_worker(live_store, runtime):
        seen = await text_shows(client, task.id, line(299))
        assert not seen.state.is_terminal, "it cannot end before the notification"
        await client.notify(task.id, "go", None)
        done = await ended(client, task.id)
    assert done.state is TaskState.COMPLETE, done.error
    log = await whole_log(live_store, task.id)
    expected = b"".join(line(i) for i in range(300)) + b"released\n"
    assert b"".join(c.data for c in log) == expected, "each line once, in order"


@pytest.mark.timeout(2 * SLOW)
async def test_one_write_of_twenty_mib_is_logged_whole(
    live_store: Store, printer: tuple[bytes, str], runtime: Runtime
) -> None:
    """A single `write` larger than WASI's 8 KiB per call reaches the log whole (the
    guest's stdout used to drop all but the first 8 KiB of it, silently)."""
    client = Client(live_store)
    lines = 20 * MiB // LINE_BYTES
    task = await launch(client, printer, "one_write", lines)
    async with running_worker(live_store, runtime):
        done = await ended(client, task.id)
    assert done.state is TaskState.COMPLETE, done.error
    data = hashlib.sha256()
    for chunk in await whole_log(live_store, task.id):
        data.update(chunk.data)
    assert data.hexdigest() == flood_digest(lines)


# -- SIGKILL in the middle of printing ---------------------------------------------------------


@pytest.mark.timeout(3 * SLOW)
async def test_workers_killed_mid_print_loop_lose_and_double_no_line(
    client: Client,
    db_url: str,
    printer: tuple[bytes, str],
    workers: Callable[[str], WorkerProcess],
) -> None:
    """Numbered lines on stdout and stderr, in stretches with durable calls and long
    stretches without any; the worker is SIGKILLed three times while output it printed
    after its last event is logged, and a fresh one resumes each time. The log holds
    every line once, in write order."""
    # Each call-free block is 2.5 MB, more than a worker holds (1 MiB) before it logs
    # output on its own, so every such block logs output after the last event.
    spec = {"lines": 150_000, "every": 40, "block": 25_000}
    task = await launch(client, printer, "stretches", spec)
    frontier_output = []
    killed_at = (0, 0)
    for _ in range(3):
        worker = workers(db_url)
        with anyio.fail_after(SLOW):
            while not await _past(client.store, task.id, killed_at, worker):
                assert not (await client.get(task.id)).state.is_terminal, "ended too soon"
                await anyio.sleep(0.02)
        worker.kill()
        killed_at = await _frontier(client.store, task.id)
        # Output committed after the last event: the next attempt must skip it exactly.
        frontier_output.append(killed_at[1])
    finish = await anyio.to_thread.run_sync(
        lambda: run_cli(
            "worker",
            *("--db", db_url, "--max-worker-deaths", str(KILL_TOLERANCE), "--exit-when-idle"),
            cwd=ROOT,
            timeout=SLOW,
        )
    )
    assert finish.returncode == 0, finish.stderr
    done = await client.get(task.id)
    assert done.state is TaskState.COMPLETE, done.error
    assert done.attempts >= 4
    log = await whole_log(client.store, task.id)
    got = b"".join(c.data for c in log)
    expected = b"".join(line(i) for i in range(spec["lines"]))
    if got != expected:
        numbers = [int(text.split()[1]) for text in got.splitlines() if text.startswith(b"line")]
        raise AssertionError(f"lines logged out of order or not once: {_first_bad(numbers)}")
    streams = b"".join(c.data for c in log if c.stream is Stream.STDERR)
    assert streams == b"".join(line(i) for i in range(spec["lines"]) if i % 7 == 3)
    # Each kill came after output was logged past the last event. On Postgres a COMMIT
    # the worker sent just before its SIGKILL may still land and move the frontier.
    assert any(frontier_output), f"no kill left output after the last event: {frontier_output}"


async def _past(
    store: Store, task_id: int, killed_at: tuple[int, int], worker: WorkerProcess
) -> bool:
    """Whether the worker has gone past `killed_at` and has logged output after the last
    event; if so, it is left stopped (SIGSTOP), so that nothing more commits before
    the caller kills it."""

    def ready(at: tuple[int, int]) -> bool:
        return at > killed_at and at[1] > 0

    if not ready(await _frontier(store, task_id)):
        return False
    os.kill(worker.pid, signal.SIGSTOP)
    if ready(await _frontier(store, task_id)):
        return True
    os.kill(worker.pid, signal.SIGCONT)  # an event landed in between: go on
    return False


async def _frontier(store: Store, task_id: int) -> tuple[int, int]:
    """The task's recorded events, and the bytes of output logged after the last."""
    events = len(await store.load_history(task_id))
    return events, await store.logged_bytes(task_id, events)


def _first_bad(numbers: list[int]) -> str:
    for i, n in enumerate(numbers):
        if n != i:
            return f"line #{i} is number {n} (around: {numbers[max(0, i - 3) : i + 3]})"
    return f"{len(numbers)} lines, the last ones missing"


# -- the limit ---------------------------------------------------------------------------------


async def test_a_task_over_the_output_limit_fails_and_the_worker_carries_on(
    client: Client, db_url: str, printer: tuple[bytes, str]
) -> None:
    over = await launch(client, printer, "flood", 2 * MiB // LINE_BYTES)
    after = await launch(client, printer, "flood", 3)
    args = ("worker", "--db", db_url, "--exit-when-idle", "--max-output", "1M")
    finish = await anyio.to_thread.run_sync(lambda: run_cli(*args, cwd=ROOT, timeout=SLOW))
    assert finish.returncode == 0, finish.stderr
    failed = await client.get(over.id)
    assert failed.state is TaskState.FAILED
    error = json.loads(failed.error or "{}")
    assert error["kind"] == "OutputLimitExceeded"
    assert error["message"].startswith(f"task {over.id} printed more than 1 MiB"), error
    log = await whole_log(client.store, over.id)
    guest = b"".join(c.data for c in log if c.position != NOTE_POSITION)
    assert guest == b"".join(line(i) for i in range(2 * MiB // LINE_BYTES))[:MiB]
    notes = b"".join(c.data for c in log if c.position == NOTE_POSITION)
    assert notes.startswith(b"OutputLimitExceeded: task ")
    assert (await client.get(after.id)).state is TaskState.COMPLETE


def test_durable_run_reports_the_output_limit_in_one_line(tmp_path: Path) -> None:
    proc = run_cli(
        "run", str(PRINTER), "--entry", "flood", "--input", "30000", "--max-output", "1M",
        "--db", str(tmp_path / "run.db"), cwd=tmp_path, timeout=SLOW,
    )  # fmt: skip
    assert proc.returncode == 1
    assert len(proc.stdout.encode()) == MiB, "the output up to the limit, streamed"
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("task 1 failed: OutputLimitExceeded: task 1 printed more than 1 MiB")
    assert "Traceback" not in proc.stderr
