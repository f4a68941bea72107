"""Many `durable worker` processes on one Postgres database, as production runs them.

Real processes, real signals, a real server: three workers share 300 tasks while one
is killed with SIGKILL; a worker frozen with SIGSTOP loses its task and, woken up,
cannot write; SIGTERM and SIGINT hand running tasks back at once; bad settings give
one line; a server restart under a running task loses nothing. Plus the local-run
tests (`durable run`, kill and resume, nondeterminism) on Postgres.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import pytest

from durable.client import Client
from durable.core.model import Event, Lease, LogChunk, TaskState
from durable.core.side_writes import SideWrite
from durable.errors import StorageError
from durable.host import HostConfig, Runtime
from durable.storage import _pg_admin as pg_admin
from durable.storage import open_store
from durable.storage.base import Store
from durable.testing.postgres import PostgresServer, ServerHandle, find_binaries, skip_or_fail
from durable.worker import Worker, WorkerConfig
from tests.helpers import (
    EXAMPLES,
    WORKFLOWS,
    built,
    durable_cmd,
    run_cli,
    stock_env,
    without_progress,
)

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]

T = TypeVar("T")

WORKFLOW = WORKFLOWS / "pg_workers.py"
#: A lease no test here outlives: a task that moves before it lapses was handed back.
HAND_BACK_LEASE = 600.0
#: A bound on waits for something that must happen, not on how fast: a loaded machine
#: starts a worker process or runs 300 tasks many times slower than a quiet one.
HANG = 120.0
MAIN_LABELS = ["step double", "durable:timer.sleep", "step double"]


# -- processes ----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    """The test's environment without durable settings (database, lease...) that could
    leak in; the compile cache's location stays."""
    return stock_env()


def _spawn(*args: str, cwd: Path, stderr: int) -> subprocess.Popen[bytes]:
    """Start `durable ARGS` with its stdout on a pipe (bytes)."""
    return subprocess.Popen(
        durable_cmd(*args), cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=stderr
    )


class WorkerProcess:
    """A `durable worker` subprocess whose stderr goes to a file."""

    def __init__(self, url: str, directory: Path, name: str, *args: str) -> None:
        """Start `durable worker --db URL ARGS` in `directory`."""
        self.name = name
        self.stderr_path = directory / f"{name}.stderr"
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(
                durable_cmd("worker", "--db", url, *args),
                cwd=directory,
                env=_env(),
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    def send(self, sig: signal.Signals) -> None:
        """Send `sig` to the worker."""
        self.proc.send_signal(sig)

    async def wait(self, timeout: float) -> int:  # noqa: ASYNC109 - a bound on the wait
        """Wait for the process to exit; return its exit status."""
        return await anyio.to_thread.run_sync(lambda: self.proc.wait(timeout))

    def stderr(self) -> str:
        """What the worker has written on stderr so far."""
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        """Kill the process if it still runs (it may be stopped: continue it first)."""
        if self.proc.poll() is None:
            with suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGCONT)
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker processes with `workers(url, name, *args)`; all killed at the end."""
    started: list[WorkerProcess] = []

    def start(url: str, name: str, *args: str) -> WorkerProcess:
        proc = WorkerProcess(url, tmp_path, name, *args)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


# -- database ------------------------------------------------------------------------------


@pytest.fixture
async def store(pg_url: str) -> AsyncIterator[Store]:
    """A migrated store on the test's fresh database."""
    opened = await open_store(pg_url)
    try:
        yield opened
    finally:
        await opened.close()


async def _rows(url: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
    return await pg_admin.fetch(url, sql, *args)


async def _histories(url: str, task_ids: Sequence[int]) -> dict[int, list[tuple[Any, ...]]]:
    """Every event of these tasks as (idx, label, payload, created_at), per task."""
    rows = await _rows(
        url,
        "SELECT task_id, idx, label, payload, created_at FROM durable.events "
        "WHERE task_id = ANY($1::bigint[]) ORDER BY task_id, idx",
        list(task_ids),
    )
    out: dict[int, list[tuple[Any, ...]]] = {t: [] for t in task_ids}
    for task_id, *rest in rows:
        out[task_id].append(tuple(rest))
    return out


async def _eventually(
    check: Callable[[], Awaitable[T | None]], within: float, what: str, poll: float = 0.05
) -> T:
    """Poll `check` until it returns something other than None (or fail after `within` s)."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what}")
        await anyio.sleep(poll)


async def _worker_id(store: Store, pid: int) -> str:
    """The id of the registered worker with this pid, once it has registered."""

    async def find() -> str | None:
        return next((w.id for w in await store.list_workers() if w.pid == pid), None)

    return await _eventually(find, HANG, f"worker pid {pid} to register")


async def _launch(
    store: Store, entry: str, inputs: Sequence[Any], *, name: str | None = None
) -> list[int]:
    wasm, digest = built(WORKFLOW)
    await anyio.to_thread.run_sync(_compile, wasm, digest)
    client = Client(store)
    workflow_hash = await client.register(wasm, name="pg_workers")
    ids = []
    for value in inputs:
        task = await client.launch(workflow_hash, name=name or entry, input=value, entry=entry)
        ids.append(task.id)
    return ids


def _compile(wasm: bytes, digest: str) -> None:
    """Fill the machine's compile cache, so worker processes start the workflow in ms."""
    runtime = Runtime(HostConfig())
    try:
        runtime.cache.load(digest, wasm)
    finally:
        runtime.close()


def _one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = without_progress(proc.stderr)  # a slow load may announce itself
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert needle in lines[0], lines[0]


# -- many workers, one killed --------------------------------------------------------------


async def test_three_workers_300_tasks_one_killed(
    pg_url: str, store: Store, workers: Callable[..., WorkerProcess]
) -> None:
    """300 tasks on three workers; one is SIGKILLed midway; its tasks move within the lease."""
    ids = await _launch(store, "main", list(range(300)))
    procs = [workers(pg_url, f"w{k}") for k in range(3)]
    victim = procs[0]
    victim_id = await _worker_id(store, victim.pid)
    for proc in procs[1:]:
        await _worker_id(store, proc.pid)

    async def midway() -> list[tuple[Any, ...]] | None:
        (done,) = await _rows(pg_url, "SELECT count(*) FROM durable.tasks WHERE state='complete'")
        held = await _rows(
            pg_url,
            "SELECT id, lease_token FROM durable.tasks WHERE state = 'active' AND owner = $1",
            victim_id,
        )
        return held if done[0] >= 90 and held else None

    await _eventually(midway, HANG, "a third of the tasks done, the victim busy", 0.01)
    ports = _tcp_ports(victim.pid)
    victim.send(signal.SIGKILL)
    ((killed_at,),) = await _rows(pg_url, "SELECT clock_timestamp()")
    assert await victim.wait(HANG) == -signal.SIGKILL

    # A statement the victim sent just before the SIGKILL still runs to its end on the
    # server, and its COMMIT lands (a claim may take more tasks): look at what it holds
    # once the server has closed every connection of the dead process.
    async def victim_disconnected() -> bool | None:
        rows = await _rows(
            pg_url,
            "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY($1::int[])",
            sorted(ports),
        )
        return True if rows[0][0] == 0 else None

    await _eventually(victim_disconnected, HANG, "the server to drop the victim's connections")
    # What the dead worker holds now stays put until its leases lapse, seconds from now.
    orphans: dict[int, int] = dict(
        await _rows(
            pg_url,
            "SELECT id, lease_token FROM durable.tasks WHERE state = 'active' AND owner = $1",
            victim_id,
        )
    )
    assert orphans, "the victim held no task at the kill"

    # Each orphan's next claim bumps its lease token and sets `updated_at` (the database
    # clock). If it finished between two looks, `updated_at` is its end: a later time,
    # so the measured takeover can only be longer than the real one.
    takeover: dict[int, float] = {}

    async def all_taken_over() -> bool | None:
        rows = await _rows(
            pg_url,
            "SELECT id, lease_token, updated_at FROM durable.tasks WHERE id = ANY($1::bigint[])",
            [t for t in orphans if t not in takeover],
        )
        for task_id, token, updated_at in rows:
            if token > orphans[task_id]:
                takeover[task_id] = (updated_at - killed_at).total_seconds()
        return True if len(takeover) == len(orphans) else None

    try:
        await _eventually(all_taken_over, HANG, "every orphan to be claimed again", 0.02)
    except AssertionError:
        left = await _rows(
            pg_url,
            "SELECT id, state, owner, lease_token, lease_expires_at, deaths, attempts, now() "
            "FROM durable.tasks WHERE id = ANY($1::bigint[])",
            [t for t in orphans if t not in takeover],
        )
        workers_now = await _rows(pg_url, "SELECT id, pid FROM durable.workers")
        raise AssertionError(f"not taken over: {left}; workers {workers_now}; {orphans}") from None

    async def all_done() -> bool | None:
        (row,) = await _rows(pg_url, "SELECT count(*) FROM durable.tasks WHERE state='complete'")
        return True if row[0] == len(ids) else None

    await _eventually(all_done, 2 * HANG, "all 300 tasks to complete", 0.1)
    for proc in procs[1:]:
        proc.send(signal.SIGTERM)
    for proc in procs[1:]:
        assert await proc.wait(HANG) == 0, proc.stderr()
        assert "Traceback" not in proc.stderr()

    tasks = await _rows(pg_url, "SELECT id, input, result, attempts FROM durable.tasks ORDER BY id")
    assert [t[0] for t in tasks] == ids
    for task_id, value, result, attempts in tasks:
        assert json.loads(result) == 4 * json.loads(value), task_id
        # Orphans ran twice; every other task exactly once: no lease lapsed under load.
        assert attempts == (2 if task_id in orphans else 1), (task_id, attempts)
    histories = await _histories(pg_url, ids)
    for task_id, events in histories.items():
        assert [e[0] for e in events] == list(range(len(events))), task_id  # gap-free
        assert [e[1] for e in events] == MAIN_LABELS, (task_id, events)
    # How soon is a figure (the benchmarks' failover_s), not a bound: on a loaded machine
    # the survivors finish their own tasks first.
    spread = f"{min(takeover.values()):.2f}-{max(takeover.values()):.2f}s" if takeover else "-"
    print(f"\n{len(orphans)} orphans taken over {spread} after the SIGKILL")


# -- a frozen worker cannot write after losing its lease ------------------------------------


async def test_frozen_worker_cannot_write_after_takeover(
    pg_url: str, store: Store, workers: Callable[..., WorkerProcess], tmp_path: Path
) -> None:
    """SIGSTOP past the lease; another worker finishes the task; SIGCONT: nothing written."""
    launched = run_cli(
        "launch", "stale", str(WORKFLOW), "--entry", "stale", "--input", "3",
        "--db", pg_url, cwd=tmp_path,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr
    task_id = int(launched.stdout)
    first = workers(pg_url, "first", "--lease-seconds", "2", "-v")
    first_id = await _worker_id(store, first.pid)

    async def sleeping() -> bool | None:
        task = await store.get_task(task_id)
        events = await store.load_history(task_id)
        return True if task.owner == first_id and len(events) == 2 else None

    await _eventually(sleeping, HANG, "the first worker to reach the sleep")
    first.send(signal.SIGSTOP)
    try:
        frozen = await _histories(pg_url, [task_id])
        second = workers(pg_url, "second", "--lease-seconds", "2", "-v")
        second_id = await _worker_id(store, second.pid)

        async def complete() -> bool | None:
            task = await store.get_task(task_id)
            return True if task.state is TaskState.COMPLETE else None

        await _eventually(complete, HANG, "the second worker to finish the task")
        done = await _histories(pg_url, [task_id])
        done_task = await store.get_task(task_id)
    finally:
        first.send(signal.SIGCONT)

    assert done_task.result == '"attempt 2"'
    assert done_task.attempts == 2
    assert "dropped this attempt" not in second.stderr()
    assert second_id != first_id
    # The new owner replayed the two events and wrote none: the history is as frozen.
    assert done == frozen

    # Woken up, the stale worker carries on: its sleep is over, it records one more
    # step and tries to finish. Both writes are fenced off.
    await _eventually(
        lambda: _ready(lambda: "dropped this attempt" in first.stderr()),
        20,
        "the stale worker to try",
    )
    # By then the second worker has finished the task: it is named no more.
    assert (
        f"task {task_id}: taken over by another worker after this worker's lease lapsed "
        "(it is complete now); dropped this attempt"
    ) in first.stderr()
    after = await _histories(pg_url, [task_id])
    after_task = await store.get_task(task_id)
    assert after == done  # no event added, none rewritten
    assert after_task == done_task  # state, result, attempts, timestamps untouched
    logs = await store.read_logs(task_id)
    assert b"".join(c.data for c in logs) == b"finished by attempt 2\n"
    for proc in (first, second):
        proc.send(signal.SIGTERM)
        assert await proc.wait(HANG) == 0, proc.stderr()


async def _ready(predicate: Callable[[], bool]) -> bool | None:
    return True if predicate() else None


# -- graceful shutdown ---------------------------------------------------------------------


async def test_sigterm_and_sigint_hand_running_tasks_back_at_once(
    pg_url: str, store: Store, workers: Callable[..., WorkerProcess]
) -> None:
    """A task in a blocking sleep and one in a CPU loop go back to `ready` at once.

    The workers hold leases far longer than the test may take, so a takeover can only
    come from the stopping worker handing its tasks back, never from a lapsed lease:
    the proof does not depend on how fast a busy machine is."""
    # ... and hold the sleeper's thread for the whole test rather than suspend it.
    long_lease = ("--lease-seconds", str(HAND_BACK_LEASE), "--suspend-after", "3600")
    (sleeper,) = await _launch(store, "nap", [1800])
    (spinner,) = await _launch(store, "spin", [10**10])
    first = workers(pg_url, "first", *long_lease)
    first_id = await _worker_id(store, first.pid)

    async def both_running(owner: str) -> bool | None:
        tasks = [await store.get_task(t) for t in (sleeper, spinner)]
        sleeping = len(await store.load_history(sleeper)) == 2
        return True if sleeping and all(t.owner == owner for t in tasks) else None

    await _eventually(lambda: both_running(first_id), HANG, "both tasks to run")
    # A second worker waits idle: both tasks are leased to the first.
    second = workers(pg_url, "second", *long_lease)
    second_id = await _worker_id(store, second.pid)
    assert {(await store.get_task(t)).owner for t in (sleeper, spinner)} == {first_id}

    for proc, sig, owner in ((first, signal.SIGTERM, first_id), (second, signal.SIGINT, None)):
        if owner is None:  # the second round: wait for the second worker to hold both
            await _eventually(lambda: both_running(second_id), HANG, "the second worker")
        started = time.monotonic()
        proc.send(sig)
        # Well inside the lease: the worker stopped its guests instead of waiting them out.
        assert await proc.wait(HAND_BACK_LEASE / 4) == 0, proc.stderr()
        print(f"\n{sig.name}: the worker exited after {time.monotonic() - started:.2f}s")
        assert "Traceback" not in proc.stderr()
        if sig is signal.SIGTERM:
            # The idle second worker takes both: the leases are far from lapsing, so
            # only the first worker's hand-back can have freed them.
            await _eventually(lambda: both_running(second_id), HAND_BACK_LEASE / 4, "takeover")
        else:
            for task_id in (sleeper, spinner):
                rows = await _rows(
                    pg_url,
                    "SELECT state, owner, lease_expires_at, attempts FROM durable.tasks "
                    "WHERE id = $1",
                    task_id,
                )
                assert rows == [("ready", None, None, 2)], (task_id, rows)
    # What ran before the stops is kept: the spinner's first step and the sleeper's
    # recorded deadline, each once.
    histories = await _histories(pg_url, [sleeper, spinner])
    assert [e[1] for e in histories[sleeper]] == ["step first", "durable:timer.sleep"]
    assert [e[1] for e in histories[spinner]] == ["step first"]


# -- bad settings: one line, exit 2 --------------------------------------------------------


@pytest.fixture(scope="module")
def password_role(pg_server: ServerHandle) -> str:
    """A role that logs in with a password ('right'), for the wrong-password case."""
    name = "durable_pw_test"
    pg_server.execute(
        f"DO $$ BEGIN CREATE ROLE {name} LOGIN PASSWORD 'right'; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
    )
    return name


def _tcp_ports(pid: int) -> set[int]:
    """The local TCP ports of process `pid`'s open sockets (its database connections)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with suppress(OSError), open(f"/proc/{pid}/net/{table}") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    assert ports, f"process {pid} has no TCP socket open"
    return ports


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("command", ["worker", "launch"])
@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("unreachable", "cannot reach Postgres at"),
        ("wrong password", "password authentication failed"),
        ("no schema", "database schema is at version 0, this durable needs"),
        ("malformed port", "invalid Postgres URL"),
        ("no host", "names no host"),
    ],
)
async def test_bad_database_settings_are_one_line(
    pg_url: str, password_role: str, tmp_path: Path, command: str, case: str, needle: str
) -> None:
    """Each bad setting: one clear line on stderr, exit 2, and nothing written."""
    parts = urlsplit(pg_url)
    host, port, database = parts.hostname, parts.port, parts.path
    url = {
        "unreachable": f"postgresql://postgres@127.0.0.1:{_free_port()}{database}",
        "wrong password": f"postgresql://{password_role}:wrong@{host}:{port}{database}",
        "no schema": pg_url,
        "malformed port": f"postgresql://postgres@{host}:notaport{database}",
        "no host": "postgres://",
    }[case]
    args = ["--exit-when-idle"] if command == "worker" else ["x", str(EXAMPLES / "hello_world.py")]
    proc = await anyio.to_thread.run_sync(
        lambda: run_cli(command, *args, "--db", url, cwd=tmp_path, timeout=60)
    )
    _one_line_error(proc, needle)
    if case == "wrong password":
        assert "wrong" not in proc.stderr  # the password is masked
    # Nothing was written: the fresh database still has no durable schema.
    assert await _rows(pg_url, "SELECT 1 FROM pg_namespace WHERE nspname = 'durable'") == []


async def test_worker_migrate_flag_upgrades_and_starts(pg_url: str, tmp_path: Path) -> None:
    """Without --migrate an empty database is refused; with it the worker starts."""
    refused = run_cli("worker", "--db", pg_url, "--exit-when-idle", cwd=tmp_path)
    _one_line_error(refused, "run `durable migrate` or start the worker with --migrate")
    started = run_cli("worker", "--db", pg_url, "--exit-when-idle", "--migrate", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    assert started.stderr == ""
    async with await Client.open(pg_url, migrate=False) as client:
        current, latest = await client.schema_version()
    assert current == latest


# -- a server restart under a running task --------------------------------------------------


async def test_worker_rides_out_a_server_restart(tmp_path: Path) -> None:
    """The server goes down mid-task: the worker says so once, retries, and finishes it."""
    if os.environ.get("DURABLE_TEST_POSTGRES_URL") or find_binaries() is None:
        skip_or_fail("this test restarts a throwaway server of its own: needs server binaries")
    with PostgresServer() as server:  # not the session's: the restart would hit every test
        url = server.create_database("restart")
        async with await Client.open(url) as client:
            (task_id,) = await _launch(client.store, "nap", [6])
        worker = WorkerProcess(url, tmp_path, "worker")
        try:

            async def asleep() -> bool | None:
                events = await _rows(
                    url, "SELECT 1 FROM durable.events WHERE task_id = $1", task_id
                )
                return True if len(events) == 2 else None

            await _eventually(asleep, HANG, "the task to reach its sleep")
            # Down long enough for the worker's lease renewals and its claim loop to
            # notice (they run every second), up again well within the 5 s lease.
            await anyio.to_thread.run_sync(server._pg_ctl_stop, "immediate")
            await anyio.sleep(2.5)
            await anyio.to_thread.run_sync(server._pg_ctl_start)

            async def complete() -> tuple[Any, ...] | None:
                rows = await _rows(
                    url, "SELECT state, result, attempts FROM durable.tasks WHERE id = $1", task_id
                )
                return rows[0] if rows and rows[0][0] == "complete" else None

            state = await _eventually(complete, HANG, "the task to complete after the restart")
            # Usually the lease outlives the outage and there is one attempt; on a loaded
            # machine the restart can outlast it, and the worker takes its task again.
            assert state[:2] == ("complete", '"rested"')
            assert state[2] in (1, 2)
            labels = [e[1] for e in (await _histories(url, [task_id]))[task_id]]
            assert labels == ["step first", "durable:timer.sleep", "step extra"]
            worker.send(signal.SIGTERM)
            assert await worker.wait(HANG) == 0, worker.stderr()
            stderr = worker.stderr()
            assert stderr.count("database unavailable") == 1, stderr
            assert "Traceback" not in stderr
        finally:
            worker.stop()


# -- an attempt dropped on a storage error is handed back, not stranded ---------------------


class _FailOneAppend:
    """A store whose first `append` for one task fails as if the connection dropped."""

    def __init__(self, inner: Store, task_id: int) -> None:
        self._inner = inner
        self._task_id = task_id
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(
        self,
        lease: Lease,
        events: Sequence[Event],
        logs: Sequence[LogChunk],
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        if lease.task_id == self._task_id and not self.failed:
            self.failed = True
            raise StorageError(f"append to task {lease.task_id}: connection lost (injected)")
        await self._inner.append(lease, events, logs, writes=writes)


async def test_attempt_dropped_on_storage_error_is_handed_back(store: Store) -> None:
    """A task whose attempt died on a database error runs again at once, not after the
    worker's other tasks (whose lease renewals would otherwise keep renewing it too)."""
    (long_task,) = await _launch(store, "nap", [6])
    (flaky_task,) = await _launch(store, "nap", [0.2])
    flaky = _FailOneAppend(store, flaky_task)
    runtime = Runtime(HostConfig())
    worker = Worker(
        flaky,
        WorkerConfig(lease_seconds=1.0, poll_interval=0.2, exit_when_idle=True),
        runtime=runtime,
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            done = await Client(store).wait(flaky_task, timeout=300)
            long_state = (await store.get_task(long_task)).state
            worker.stop()  # hands the long task back
        assert flaky.failed
        assert done.state is TaskState.COMPLETE
        assert done.attempts == 2
        # It finished while the long task still ran, not after it.
        assert long_state is TaskState.ACTIVE
    finally:
        runtime.close()


class _RenewalsFail:
    """A store whose lease renewals fail while `failing` is set, as in an outage."""

    def __init__(self, inner: Store) -> None:
        self._inner = inner
        self.failing = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def renew_leases(self, *, worker_id: str, lease_seconds: float) -> list[int]:
        if self.failing:
            raise StorageError("renew leases: connection lost (injected)")
        return await self._inner.renew_leases(worker_id=worker_id, lease_seconds=lease_seconds)


async def test_worker_reclaiming_its_own_lapsed_task_survives(store: Store) -> None:
    """Renewals fail until the lease of a running task lapses; the worker's own claim loop
    then takes the task again while the first attempt still runs. The stale attempt is
    fenced off, the new one finishes the task, and the worker carries on."""
    (task_id,) = await _launch(store, "nap", [3])
    flaky = _RenewalsFail(store)
    runtime = Runtime(HostConfig())
    worker = Worker(flaky, WorkerConfig(lease_seconds=1.0, poll_interval=0.2), runtime=runtime)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)

            async def asleep() -> bool | None:
                return True if len(await store.load_history(task_id)) == 2 else None

            await _eventually(asleep, HANG, "the task to reach its sleep")
            flaky.failing = True

            async def reclaimed() -> bool | None:
                return True if (await store.get_task(task_id)).attempts == 2 else None

            await _eventually(reclaimed, HANG, "the worker to claim its lapsed task again")
            flaky.failing = False
            done = await Client(store).wait(task_id, timeout=300)

            # The end's NOTIFY can wake the waiter before the attempt counts itself out.
            async def idle() -> bool | None:
                return True if worker.running == 0 else None

            await _eventually(idle, HANG, "both attempts of the task to leave the worker")
            worker.stop()
    finally:
        runtime.close()
    assert (done.state, done.result, done.attempts) == (TaskState.COMPLETE, '"rested"', 2)
    labels = [e.label for e in await store.load_history(task_id)]
    assert labels == ["step first", "durable:timer.sleep", "step extra"]


# -- the local-run tests, on Postgres -------------------------------------------------------


def test_hello_world_through_durable_run(pg_url: str, tmp_path: Path) -> None:
    """`durable run --db postgres://...`: refused before `durable migrate`, then it runs."""
    refused = run_cli(
        "run", str(EXAMPLES / "hello_world.py"), "--input", '"pg"', "--db", pg_url, cwd=tmp_path
    )
    _one_line_error(refused, "run `durable migrate`")
    migrated = run_cli("migrate", "--db", pg_url, cwd=tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    proc = run_cli(
        "run", str(EXAMPLES / "hello_world.py"), "--input", '"pg"', "--db", pg_url, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello, pg!\n"
    assert "task 1" in proc.stderr.splitlines()  # after a first build's progress lines
    logs = run_cli("logs", "1", "--db", pg_url, cwd=tmp_path)
    assert logs.stdout == "Hello, pg!\n"
    assert not (tmp_path / ".durable" / "durable.db").exists()  # nothing went to SQLite


async def test_countdown_killed_and_resumed_by_worker(pg_url: str, tmp_path: Path) -> None:
    """SIGKILL `durable run` mid-countdown; `durable worker --exit-when-idle` finishes it."""
    assert run_cli("migrate", "--db", pg_url, cwd=tmp_path).returncode == 0
    before: list[bytes] = []
    with _spawn(
        "run", str(EXAMPLES / "countdown.py"), "--input", "6", "--db", pg_url,
        cwd=tmp_path, stderr=subprocess.DEVNULL,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        try:
            while len(before) < 3:
                line = await anyio.to_thread.run_sync(proc.stdout.readline)
                assert line, "durable run ended before printing 3 lines"
                before.append(line)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    # The worker frees the killed run's lease because its process is gone (same
    # machine), so it resumes at once instead of after the lease. (The elapsed time
    # cannot show it: on a loaded machine the worker's own start outlasts a lease.)
    resumed = run_cli("worker", "--db", pg_url, "--exit-when-idle", "-v", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "freed the tasks of dead worker" in resumed.stderr, resumed.stderr
    logs = run_cli("logs", "1", "--db", pg_url, cwd=tmp_path)
    lines = logs.stdout.encode().splitlines(keepends=True)
    assert [int(line.split()[0]) for line in lines] == [6, 5, 4, 3, 2, 1]
    assert lines[: len(before)] == before  # replayed clock and randomness
    ((state, result, attempts),) = await _rows(
        pg_url, "SELECT state, result, attempts FROM durable.tasks WHERE id = 1"
    )
    assert (state, result, attempts) == ("complete", '"liftoff"', 2)
    events = (await _histories(pg_url, [1]))[1]
    assert [e[0] for e in events] == list(range(len(events)))


async def test_nondeterminism_is_detected(pg_url: str, tmp_path: Path) -> None:
    """A workflow that takes another path on replay fails; its history is kept."""
    assert run_cli("migrate", "--db", pg_url, cwd=tmp_path).returncode == 0
    proc = run_cli(
        "run", str(WORKFLOWS / "flaky_branch.py"), "--db", pg_url, "--suspend-after", "0.5",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "task 1 failed: NondeterminismError" in proc.stderr
    assert "event 0" in proc.stderr
    assert "'step first'" in proc.stderr
    assert "'step second'" in proc.stderr
    events = (await _histories(pg_url, [1]))[1]
    assert [(e[0], e[1]) for e in events] == [(0, "step first"), (1, "durable:timer.sleep")]
    ((state,),) = await _rows(pg_url, "SELECT state FROM durable.tasks WHERE id = 1")
    assert state == "failed"
    logs = run_cli("logs", "1", "--db", pg_url, cwd=tmp_path)
    assert "NondeterminismError" in logs.stderr


# -- durable launch ------------------------------------------------------------------------


async def test_launch_enqueues_and_tail_follows(pg_url: str, tmp_path: Path) -> None:
    """`launch` prints the id and runs nothing; `--tail` follows the task to its end and
    exits with its status."""
    assert run_cli("migrate", "--db", pg_url, cwd=tmp_path).returncode == 0
    hello = str(EXAMPLES / "hello_world.py")
    queued = run_cli("launch", "greet", hello, "--input", '"queue"', "--db", pg_url, cwd=tmp_path)
    assert queued.returncode == 0, queued.stderr
    assert queued.stdout == "1\n"
    rows = await _rows(pg_url, "SELECT name, state, attempts FROM durable.tasks")
    assert rows == [("greet", "ready", 0)]  # enqueued, not run

    async def tail(*args: str) -> subprocess.CompletedProcess[str]:
        """`durable launch ... --tail`, with a worker started once the task is queued."""
        before = len(await _rows(pg_url, "SELECT id FROM durable.tasks"))
        with _spawn(
            "launch", *args, "--tail", "--db", pg_url, cwd=tmp_path, stderr=subprocess.PIPE
        ) as proc:

            async def queued() -> bool | None:
                count = len(await _rows(pg_url, "SELECT id FROM durable.tasks"))
                return True if count > before else None

            await _eventually(queued, HANG, "the launch")
            worker = run_cli("worker", "--db", pg_url, "--exit-when-idle", cwd=tmp_path)
            assert worker.returncode == 0, worker.stderr
            out, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=60))
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())

    ok = await tail("greet", hello, "--input", '"tail"')
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "2\nHello, tail!\n"
    assert run_cli("logs", "1", "--db", pg_url, cwd=tmp_path).stdout == "Hello, queue!\n"
    failed = await tail("boom", str(WORKFLOWS / "failing.py"), "--input", "3")
    assert failed.returncode == 1
    assert failed.stdout == "3\nabout to fail\n"
    assert "ValueError: bad value 3" in failed.stderr  # the traceback, from the log
    assert failed.stderr.strip().splitlines()[-1] == "task 3 failed: ValueError: bad value 3"
