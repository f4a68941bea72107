"""The figures that need worker processes of their own: (e') latency into a separate
worker, (f) failover and (h) memory.

Workers here are real `durable worker` processes (`python -m durable worker --db URL`),
each stopped by its own pid.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio

from benchmarks.backends import Backend, within
from benchmarks.figures import Bench, Figure, Sizes, median, percentile
from durable.client import Client
from durable.core.model import Task, TaskState
from durable.storage.base import Store
from durable.worker import WorkerConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
CLOCK_LABEL = "wasi:clocks/wall-clock.now"


def worker_command(
    url: str,
    *,
    concurrency: int | None = None,
    suspend_after: float | None = None,
    lease_seconds: float | None = None,
    max_worker_deaths: int | None = None,
) -> list[str]:
    """The command line of a worker process on `url` (None: the worker's default)."""
    # One process: the figures read its memory, and kill it, by its pid.
    args = ["--db", url, "--processes", "1"]
    if concurrency is not None:
        args += ["--concurrency", str(concurrency)]
    if suspend_after is not None:
        args += ["--suspend-after", repr(suspend_after)]
    if lease_seconds is not None:
        args += ["--lease-seconds", repr(lease_seconds)]
    if max_worker_deaths is not None:
        args += ["--max-worker-deaths", str(max_worker_deaths)]
    return [sys.executable, "-m", "durable", "worker", *args]


class WorkerProcess:
    """A worker subprocess, its output in a log file, and its memory from /proc."""

    def __init__(
        self, command: list[str], log_path: Path, *, env: dict[str, str] | None = None
    ) -> None:
        """Start `command`, with the variables of `env` on top of the defaults."""
        self.command = command
        self.log_path = log_path
        # The worker's defaults, not whatever DURABLE_* settings this shell has (the
        # build cache aside): the figures are for a stock `durable worker`.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DURABLE_") or k == "DURABLE_CACHE_DIR"
        } | (env or {})
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
        )
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env
            )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def memory_mib(self) -> dict[str, float]:
        """`VmHWM` (peak resident set), `VmRSS` (resident now) and `Pss` (the resident
        set with each page shared by N mappings counted 1/N), in MiB.

        Every instance maps the component's memory image from the artifact file
        copy-on-write: the pages it only reads are one page of the page cache, yet
        VmRSS counts them once per instance. Pss counts them once.
        """
        out: dict[str, float] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name in ("VmHWM", "VmRSS"):
                out[name] = int(rest.split()[0]) / 1024  # kB
        for line in Path(f"/proc/{self.pid}/smaps_rollup").read_text().splitlines():
            name, _, rest = line.partition(":")
            if name == "Pss":
                out[name] = int(rest.split()[0]) / 1024  # kB
        return out

    def reset_peak(self) -> None:
        """Start `VmHWM` again from the resident set now (Linux `clear_refs`)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def kill(self) -> None:
        """SIGKILL, and reap."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it does not exit in `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the process's output, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    async def wait_registered(self, store: Store) -> str:
        """Wait until the worker has registered in the database; return its id."""
        with within(60, f"worker {self.pid} did not register"):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"worker {' '.join(self.command)} exited with {self.proc.returncode}:\n"
                        + self.log_tail()
                    )
                for info in await store.list_workers():
                    if info.pid == self.pid:
                        return info.id
                await anyio.sleep(0.05)


@contextlib.contextmanager
def worker_processes() -> Iterator[list[WorkerProcess]]:
    """A list to start workers into; on exit every one still running is killed."""
    procs: list[WorkerProcess] = []
    try:
        yield procs
    finally:
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.kill()


# -- (e), across processes --------------------------------------------------------------------


async def remote_start_latency(
    backend: Backend, bench: Bench, sizes: Sizes, log_dir: Path
) -> list[Figure]:
    """(e) launch -> first guest instruction with the worker in a process of its own.

    The in-process figure is what `durable run` and an embedded worker see; this is an
    application launching into a separate `durable worker`, which learns of the task
    from the database: LISTEN/NOTIFY on Postgres, the wake-up sockets on SQLite.
    """
    warmup = 3
    latencies: list[float] = []
    async with backend.database() as (url, store):
        await store.put_workflow(bench.wasm)
        client = Client(store)
        with worker_processes() as procs:
            proc = WorkerProcess(worker_command(url), log_dir / f"latency-{backend.name}.log")
            procs.append(proc)
            await proc.wait_registered(store)
            gaps = random.Random(7)  # the same pseudo-random arrivals in every run
            for i in range(warmup + sizes.latency):
                # Arrive at random points of the worker's wait: a closed loop would always
                # launch just after the worker went idle (the same point of SQLite's poll).
                await anyio.sleep(gaps.uniform(0.005, 0.06))
                task = await client.launch(bench.wasm_hash, name="bench-latency", input=None)
                with within(30, f"task {task.id} did not complete"):
                    done = await _wait_ended(store, task.id)
                if done.state is not TaskState.COMPLETE:
                    raise RuntimeError(f"task {task.id} ended {done.state}: {done.error}")
                if i >= warmup:
                    first = json.loads(done.result or "0")
                    latencies.append((first - task.created_at.timestamp()) * 1000)
            proc.stop()
    p99 = percentile(latencies, 99)
    return [
        Figure(
            key="e'",
            id="start_latency_remote_p50_ms",
            name="the same, worker in another process, p50",
            value=percentile(latencies, 50),
            unit="ms",
            note=f"{len(latencies)} tasks, random arrivals, into a `durable worker` process",
        ),
        Figure(
            key="e'",
            id="start_latency_remote_p99_ms",
            name="the same, worker in another process, p99",
            value=p99,
            unit="ms",
            target="< 10 ms",
            met=p99 < 10,
            note=f"max {max(latencies):.1f} ms",
            samples=latencies,
        ),
    ]


async def _wait_ended(store: Store, task_id: int) -> Task:
    """Poll until the task has ended (every 2 ms: this only measures when it started)."""
    while True:
        task = await store.get_task(task_id)
        if task.state.is_terminal:
            return task
        await anyio.sleep(0.002)


# -- (h) ---------------------------------------------------------------------------------------


async def memory(backend: Backend, bench: Bench, sizes: Sizes, log_dir: Path) -> list[Figure]:
    """(h) resident memory of a worker process: idle, with `active` tasks each holding an
    instance, and after running `suspended` tasks to suspension (a fresh process each)."""
    log = log_dir / f"memory-{backend.name}.log"
    async with backend.database() as (url, store):
        await store.put_workflow(bench.wasm)
        client = Client(store)
        with worker_processes() as procs:
            # A sleep below --suspend-after holds its instance and a thread: "active".
            proc = WorkerProcess(
                worker_command(url, concurrency=max(16, sizes.active), suspend_after=3600), log
            )
            procs.append(proc)
            await proc.wait_registered(store)
            await anyio.sleep(0.5)
            idle = proc.memory_mib()
            ids = [
                (await client.launch(bench.wasm_hash, name="bench-active", input=300.0,
                                     entry="block")).id
                for _ in range(sizes.active)
            ]  # fmt: skip
            with within(120, "the tasks did not all become active"):
                await _wait_all_sleeping(store, ids)
            await anyio.sleep(0.5)
            active = proc.memory_mib()
            proc.stop()
    async with backend.database() as (url, store):
        await store.put_workflow(bench.wasm)
        client = Client(store)
        with worker_processes() as procs:
            proc = WorkerProcess(worker_command(url), log)  # defaults: a 3600 s sleep parks
            procs.append(proc)
            await proc.wait_registered(store)
            for _ in range(sizes.suspended):
                await client.launch(bench.wasm_hash, name="bench-parked", input=3600.0,
                                    entry="block")  # fmt: skip
            with within(300, "the tasks did not all suspend"):
                await _wait_count(store, TaskState.SUSPENDED, sizes.suspended)
            await anyio.sleep(0.5)
            parked = proc.memory_mib()
            proc.stop()
    per_task = (active["VmRSS"] - idle["VmRSS"]) / sizes.active
    # What each active task costs the machine: shared clean pages of the image once.
    pss_per_task = (active["Pss"] - idle["Pss"]) / sizes.active
    return [
        Figure(key="h", id="rss_idle_mib", name="worker RSS, idle", value=idle["VmRSS"],
               unit="MiB", note="a `durable worker` process, component loaded on demand"),
        Figure(key="h", id="rss_active_peak_mib", name=f"worker peak RSS, {sizes.active:,} active",
               value=active["VmHWM"], unit="MiB",
               note=f"VmRSS {active['VmRSS']:,.0f} MiB, {per_task:.1f} MiB per active task"),
        Figure(key="h", id="pss_per_active_task_mib", name="worker memory per active task (PSS)",
               value=pss_per_task, unit="MiB", target="<= 2 MiB", met=pss_per_task <= 2,
               note=f"{sizes.active:,} active; VmRSS counts the shared memory image per "
               f"instance: {per_task:.1f} MiB"),
        Figure(key="h", id="rss_suspended_peak_mib",
               name=f"worker peak RSS, {sizes.suspended:,} suspended", value=parked["VmHWM"],
               unit="MiB", note=f"VmRSS {parked['VmRSS']:,.0f} MiB once all are parked"),
    ]  # fmt: skip


async def _wait_all_sleeping(store: Store, ids: list[int]) -> None:
    """Until every task is active and has committed its sleep (its guest is blocked in it)."""
    waiting = set(ids)
    while waiting:
        for task_id in sorted(waiting):
            task = await store.get_task(task_id)
            if task.state.is_terminal:
                raise RuntimeError(f"task {task_id} ended {task.state}: {task.error}")
            if task.state is TaskState.ACTIVE and await store.load_history(task_id):
                waiting.discard(task_id)
        await anyio.sleep(0.1)


async def _wait_count(store: Store, state: TaskState, count: int) -> None:
    """Until `count` tasks are in `state`."""
    while len(await store.list_tasks(states=[state], limit=count + 1)) < count:
        failed = await store.list_tasks(states=[TaskState.FAILED], limit=1)
        if failed:
            raise RuntimeError(f"task {failed[0].id} failed: {failed[0].error}")
        await anyio.sleep(0.2)


# -- (f) ---------------------------------------------------------------------------------------


async def failover(backend: Backend, bench: Bench, sizes: Sizes, log_dir: Path) -> list[Figure]:
    """(f) SIGKILL the worker running a task; time until it runs on another worker.

    Two workers share the database. A `hold` task reads the clock and commits every
    0.1 s. Once it has run for a second or two (killing at a different point of the
    lease renewal cycle in each trial), its owner is killed with SIGKILL; the figure is
    the first clock reading the task takes on the surviving worker, after replaying its
    history, minus the moment of the kill. Each trial then starts a replacement worker.
    """
    lease = sizes.lease_seconds if sizes.lease_seconds is not None else WorkerConfig().lease_seconds
    log = log_dir / f"failover-{backend.name}.log"
    samples: list[float] = []
    by_lease = 0
    async with backend.database() as (url, store):
        await store.put_workflow(bench.wasm)
        client = Client(store)
        with worker_processes() as procs:
            command = worker_command(url, lease_seconds=sizes.lease_seconds)
            for _ in range(2):
                procs.append(WorkerProcess(command, log))
            ids = {p.pid: await p.wait_registered(store) for p in procs}
            for trial in range(sizes.failover_trials):
                task = await client.launch(
                    bench.wasm_hash, name="bench-hold", input=3 * lease + 60, entry="hold"
                )
                with within(60, f"task {task.id} did not start running"):
                    owner = await _wait_running(store, task.id)
                # Kill at a different point of the once-a-second lease renewal each trial.
                await anyio.sleep(1.0 + trial / sizes.failover_trials)
                victim = next(p for p in procs if ids.get(p.pid) == owner)
                killed_at = time.time()
                victim.kill()
                with within(3 * lease + 30, f"task {task.id} did not run again"):
                    first, reaped = await _wait_resumed(store, task.id, owner, killed_at)
                samples.append(first - killed_at)
                by_lease += not reaped
                await client.cancel(task.id)
                procs.remove(victim)
                replacement = WorkerProcess(command, log)
                procs.append(replacement)
                ids[replacement.pid] = await replacement.wait_registered(store)
            for proc in procs:
                proc.stop()
    value = median(samples)
    how = "lease expiry" if by_lease == len(samples) else f"lease expiry in {by_lease}"
    return [
        Figure(
            key="f",
            id="failover_s",
            name="SIGKILLed worker's task running elsewhere",
            value=value,
            unit="s",
            target="< 10 s",
            met=value < 10,
            note=f"{how} of {len(samples)}, lease {lease:g} s; max {max(samples):.2f} s",
            samples=samples,
        )
    ]


async def _wait_running(store: Store, task_id: int) -> str:
    """Until the task is active and has committed a few events; return its owner."""
    while True:
        task = await store.get_task(task_id)
        running = task.state is TaskState.ACTIVE and task.owner is not None
        if running and len(await store.load_history(task_id)) >= 4:
            assert task.owner is not None
            return task.owner
        await anyio.sleep(0.02)


async def _wait_resumed(
    store: Store, task_id: int, dead_owner: str, killed_at: float
) -> tuple[float, bool]:
    """The first clock reading the task took after `killed_at` on another worker, and
    whether the dead worker had been reaped (rather than its lease expiring) by then."""
    while True:
        task = await store.get_task(task_id)
        if task.owner not in (None, dead_owner):
            readings = [
                int(json.loads(e.payload)) / 1e9
                for e in await store.load_history(task_id)
                if e.label == CLOCK_LABEL
            ]
            after = [r for r in readings if r > killed_at]
            if after:
                workers = {w.id for w in await store.list_workers()}
                return min(after), dead_owner not in workers
        await anyio.sleep(0.02)
