"""Helpers shared by the test tiers: running the CLI, building test workflows."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from wasmtime import component as wc

from durable.builder import build_workflow
from durable.core.model import Event, LogChunk, NewTask, Task, TaskState
from durable.core.side_writes import SideWrite
from durable.host import Runtime
from durable.host.context import AttemptContext
from durable.host.runtime import AttemptEnd
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
WORKFLOWS = Path(__file__).resolve().parent / "workflows"


def durable_cmd(*args: str) -> list[str]:
    """The argv that runs the `durable` CLI of this checkout, with the test harness's
    hooks installed (`durable.testing.cli`: fault injection, when a test's environment
    asks for it)."""
    return [sys.executable, "-m", "durable.testing.cli", *args]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a `durable` subprocess: this process's, plus `extra`.

    The caller's database setting and any crash hook must not leak into it.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "DURABLE_DATABASE_URL" and not k.startswith("DURABLE_TEST_CRASH")
    }
    env.update(extra)
    return env


#: Durable settings a stock process still gets from the test session: where the compile
#: cache is, and one process per `durable worker` (see tests/conftest.py).
KEPT_SETTINGS = ("DURABLE_CACHE_DIR", "DURABLE_PROCESSES")


def stock_env(**extra: str) -> dict[str, str]:
    """The environment of a stock `durable` process: this process's without durable's
    settings (a database, a lease...) that could leak in, except `KEPT_SETTINGS`; plus
    `extra`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("DURABLE_") or k in KEPT_SETTINGS
    }
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run `durable ARGS` in a subprocess and capture its output as text."""
    return subprocess.run(
        durable_cmd(*args),
        cwd=cwd,
        env=cli_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def built(source: Path) -> tuple[bytes, str]:
    """Build a workflow (cached) and return its bytes and SHA-256."""
    wasm = build_workflow(source).wasm_path.read_bytes()
    return wasm, hashlib.sha256(wasm).hexdigest()


async def launch_task(
    store: Store, wasm: bytes, entry: str, value: Any, *, workflow_name: str
) -> Task:
    """Store a workflow binary and launch one task of it on `value` (any JSON)."""
    workflow_hash = await store.put_workflow(wasm, name=workflow_name)
    spec = NewTask(name=entry, workflow_hash=workflow_hash, input=json.dumps(value), entry=entry)
    return await store.create_task(spec)


#: A CLI progress line on a pipe (`progress` in durable/cli/_common.py): work that takes
#: over a second says so when it starts and ends, which a loaded machine reaches at random.
PROGRESS = re.compile(r"durable: \w+ \S+(\.\.\.|: done in \d+ s)")


def without_progress(stderr: str) -> list[str]:
    """The lines of a command's `stderr` other than its progress lines."""
    return [line for line in stderr.strip().splitlines() if not PROGRESS.fullmatch(line)]


#: How long a worker may take to run a test's tasks: a bound on a hang, not on speed.
#: It includes compiling a workflow new to this machine, minutes on a busy one.
IDLE_WITHIN = 600.0


async def run_until_idle(store: Store, runtime: Runtime) -> None:
    """Run every runnable task with a real worker until it is idle."""
    worker = Worker(store, WorkerConfig(exit_when_idle=True, host=runtime.config), runtime=runtime)
    with anyio.fail_after(IDLE_WITHIN):
        await worker.run()


async def until(check: Callable[[], Awaitable[Any]], within: float = 300.0) -> Any:
    """Poll `check` until it returns something truthy; fail after `within` seconds (a
    bound on a hang, not on speed: a busy machine may take many times longer)."""
    with anyio.fail_after(within):
        while True:
            value = await check()
            if value:
                return value
            await anyio.sleep(0.02)


def completed_result(task: Task) -> Any:
    """The decoded result of a task that must have completed."""
    assert task.state is TaskState.COMPLETE, task.error
    assert task.result is not None
    return json.loads(task.result)


def load_component(runtime: Runtime, wasm: bytes) -> wc.Component:
    """`wasm`, compiled (or taken from the runtime's cache)."""
    return runtime.cache.load(hashlib.sha256(wasm).hexdigest(), wasm)


def compiled(source: Path) -> bytes:
    """Build `source` and compile it into this machine's cache, as `durable launch`
    does, so that `durable worker` subprocesses load it in milliseconds."""
    wasm, _ = built(source)
    runtime = Runtime()
    try:
        load_component(runtime, wasm)
    finally:
        runtime.close()
    return wasm


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[Worker]:
    """`worker` running in the background for the duration of the block, then stopped."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(worker.run)
        try:
            yield worker
        finally:
            worker.stop()


class NoStoreSink:
    """The sink of a replay: any use of the store (a write, SQL, a lookup) fails the test."""

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        raise AssertionError(f"a replay wrote {len(events)} events")

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"a replay reached the store ({name})")


class DiscardingSink(NoStoreSink):
    """A first attempt's sink outside any store: writes (events at a durable call, output
    flushed on a tick) are taken and dropped; any other use of the store fails the test."""

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        pass


async def replay(store: Store, runtime: Runtime, wasm: bytes, task: Task) -> AttemptEnd:
    """Run `task` again on its stored history, touching nothing outside the guest."""
    component = await anyio.to_thread.run_sync(load_component, runtime, wasm)
    ctx = AttemptContext(
        task=task,
        attempt=task.attempts + 1,
        history=await store.load_history(task.id),
        sink=NoStoreSink(),
        config=runtime.config,
    )
    return await anyio.to_thread.run_sync(runtime.run, component, ctx)


def joined(logs: Sequence[LogChunk]) -> list[tuple[int, str, bytes]]:
    """A log as (position, stream, data), neighbours of one position and stream joined:
    where flushes cut output into chunks depends on timing, not on what was printed."""
    out: list[tuple[int, str, bytes]] = []
    for c in logs:
        if out and out[-1][:2] == (c.position, c.stream.value):
            out[-1] = (c.position, c.stream.value, out[-1][2] + c.data)
        else:
            out.append((c.position, c.stream.value, c.data))
    return out


@dataclass(frozen=True, slots=True)
class KilledAndResumed:
    """What `kill_and_resume` saw."""

    before: list[bytes]  # the lines `durable run` printed before it was killed
    worker: subprocess.CompletedProcess[str]  # the `durable worker` that resumed the task
    logs: list[bytes]  # task 1's whole log afterwards (`durable logs 1`), line by line


def kill_and_resume(
    workflow: Path, db: Path, cwd: Path, *, lines_before: int, timeout: float = 120
) -> KilledAndResumed:
    """`durable run WORKFLOW` on a fresh SQLite `db` until it has printed `lines_before`
    lines, SIGKILL it there, then resume the task with `durable worker --exit-when-idle`
    and read its log. The kill waits for output, never for time."""
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DATABASE_URL"}
    before: list[bytes] = []
    with subprocess.Popen(
        durable_cmd("run", str(workflow), "--db", str(db)),
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdout is not None
        try:
            while len(before) < lines_before:
                line = proc.stdout.readline()
                assert line, f"durable run ended before printing {lines_before} lines"
                before.append(line)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    worker = run_cli("worker", "--db", str(db), "--exit-when-idle", cwd=cwd, timeout=timeout)
    logs = run_cli("logs", "1", "--db", str(db), cwd=cwd)
    return KilledAndResumed(
        before=before, worker=worker, logs=logs.stdout.encode().splitlines(keepends=True)
    )
