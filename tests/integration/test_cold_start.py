"""A cold start cannot be starved by restarts.

A workflow new to a machine must be compiled (seconds; 40 s on a loaded machine)
before any of its tasks runs. These tests use a fresh cache directory each, so the
compile really happens, with real `durable` processes, real SIGKILLs, SQLite and
Postgres: a fleet killed every 1-2 s still completes tasks, and compiles once; the
process that started a compile can die without losing it; every entry point leaves
an artifact that workers load in milliseconds; a worker holds no task while it waits
for a compile; a binary that does not compile fails everyone with the same message.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import anyio.to_thread
import pytest

from benchmarks.coldstart import KillLoopResult, compiles_started, kill_loop
from benchmarks.figures import BENCH_WORKFLOW
from durable.builder import build_workflow
from durable.client import Client
from durable.core.model import TaskState
from durable.errors import ComponentError, NotFoundError
from durable.host import HostConfig, Runtime
from durable.host._cache_files import LOG_NAME
from durable.host._shared_compile import CompiledEntry, CompileState, start_compile
from durable.storage import open_store
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig
from tests.helpers import WORKFLOWS, built, durable_cmd, launch_task, run_cli

#: A compile took 5 s on a quiet machine and 130 s at a load average of 15 on two
#: cores; the bounds are generous for a CI machine three times slower than that.
COMPILE_WAIT = 400.0

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(2 * COMPILE_WAIT)]


def _wait_for(check: Callable[[], bool], what: str, within: float = COMPILE_WAIT) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:g} s waiting for {what}")
        time.sleep(0.05)


def _compiler_pids(cache_dir: Path, key: str) -> list[int]:
    """The pids of the compilers of `key` the compile log names, oldest first."""
    try:
        text = (cache_dir / "compiled" / LOG_NAME).read_text()
    except FileNotFoundError:
        return []
    return [int(m) for m in re.findall(rf"pid (\d+): compiling {re.escape(key)} ", text)]


@pytest.fixture(scope="module")
def bench_wasm() -> tuple[bytes, str]:
    """The benchmark workflow (its `main` is trivial), built in the usual build cache."""
    wasm = build_workflow(BENCH_WORKFLOW).wasm_path.read_bytes()
    return wasm, hashlib.sha256(wasm).hexdigest()


# -- the kill loop -------------------------------------------------------------------------


def _enough(result: KillLoopResult) -> bool:
    return result.completed >= 60


async def _kill_loop(url: str, wasm: bytes, tmp_path: Path) -> KillLoopResult:
    async with await Client.open(url) as client:
        return await kill_loop(
            url=url,
            store=client.store,
            wasm=wasm,
            cache_dir=tmp_path / "cache",  # new to this cache: the fleet must compile it
            log_dir=tmp_path,
            tasks=120,
            kill_every=(1.0, 2.0),
            max_seconds=COMPILE_WAIT,
            enough=_enough,
        )


def _check_progress(result: KillLoopResult) -> None:
    assert result.completed >= 60, result
    assert result.failed == 0, result
    assert result.artifact, result
    assert result.compiles == 1, result  # once, whatever was killed meanwhile
    # The compile outlived worker kills: some came before the first task completed.
    assert result.kills_before_first >= 2, result


async def test_a_fleet_killed_every_few_seconds_compiles_once_and_progresses_on_sqlite(
    tmp_path: Path, bench_wasm: tuple[bytes, str]
) -> None:
    result = await _kill_loop(f"sqlite:///{tmp_path / 'db.sqlite'}", bench_wasm[0], tmp_path)
    _check_progress(result)


@pytest.mark.postgres
async def test_a_fleet_killed_every_few_seconds_compiles_once_and_progresses_on_postgres(
    tmp_path: Path, pg_url: str, bench_wasm: tuple[bytes, str]
) -> None:
    result = await _kill_loop(pg_url, bench_wasm[0], tmp_path)
    _check_progress(result)


# -- entry points ------------------------------------------------------------------------


async def test_a_killed_launch_leaves_its_compile_running_and_register_finishes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bench_wasm: tuple[bytes, str]
) -> None:
    wasm, wasm_hash = bench_wasm
    cache = tmp_path / "cache"
    entry = CompiledEntry.of(cache, wasm_hash)
    component = tmp_path / "bench.wasm"
    component.write_bytes(wasm)
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    await anyio.to_thread.run_sync(_launch_killed_mid_compile, component, db, entry)
    assert not entry.artifact.exists()
    assert entry.state() is CompileState.RUNNING  # the compiler did not die with it

    monkeypatch.setenv("DURABLE_CACHE_DIR", str(cache))
    async with await Client.open(db) as client:
        assert await client.register(wasm, name="cold") == wasm_hash  # waits for that compile
        assert entry.artifact.exists()
        assert compiles_started(cache, wasm_hash) == 1

        # A worker on this machine now starts the workflow without compiling.
        runtime = Runtime(HostConfig(cache_dir=cache))
        try:
            assert runtime.cache.cached(wasm_hash)
            old = time.time() - 3600
            os.utime(entry.artifact, (old, old))
            assert runtime.cache.load_compiled(wasm_hash) is not None
            assert entry.artifact.stat().st_mtime > old + 3000  # used: last in line to go
        finally:
            runtime.close()

        # `compile=False` (an application on a machine with no workers) leaves nothing.
        other, other_hash = built(WORKFLOWS / "greeter.py")
        await client.register(other, name="greeter", compile=False)
        assert CompiledEntry.of(cache, other_hash).state() is CompileState.ABSENT

        # A binary that is not a workflow is refused before it is stored.
        with pytest.raises(ComponentError, match="not a WebAssembly binary"):
            await client.register(b"not a component", name="junk")
        with pytest.raises(NotFoundError):
            await client.store.get_workflow(hashlib.sha256(b"not a component").hexdigest())


def _launch_killed_mid_compile(component: Path, db: str, entry: CompiledEntry) -> None:
    """`durable launch COMPONENT`, SIGKILLed once it has started compiling."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["DURABLE_CACHE_DIR"] = str(entry.cache_dir)
    launch = subprocess.Popen(
        durable_cmd("launch", "cold", str(component), "--db", db),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: bool(_compiler_pids(entry.cache_dir, entry.key)), "the launch to compile")
    finally:
        launch.send_signal(signal.SIGKILL)
        launch.wait(30)


# -- workers -------------------------------------------------------------------------------


@asynccontextmanager
async def _new_to_the_machine(
    tmp_path: Path, wasm: bytes, entry: str
) -> AsyncIterator[tuple[Store, Runtime, list[int]]]:
    """A SQLite store holding `wasm` (stored, not compiled) and three tasks of `entry`,
    and a runtime whose cache directory is empty."""
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    runtime = Runtime(HostConfig(cache_dir=tmp_path / "cache"))
    try:
        ids = [(await launch_task(store, wasm, entry, None, workflow_name="new")).id for _ in "abc"]
        yield store, runtime, ids
    finally:
        runtime.close()
        await store.close()


async def test_a_worker_holds_no_task_while_their_workflow_compiles(
    tmp_path: Path, bench_wasm: tuple[bytes, str]
) -> None:
    wasm, wasm_hash = bench_wasm
    async with _new_to_the_machine(tmp_path, wasm, "main") as (store, runtime, ids):
        worker = Worker(store, WorkerConfig(concurrency=4), runtime=runtime)

        async def all_handed_back() -> bool:
            tasks = [await store.get_task(i) for i in ids]
            return all(t.state is TaskState.READY and t.owner is None for t in tasks)

        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run)
            seen_handed_back = False
            with anyio.fail_after(COMPILE_WAIT):
                while not runtime.cache.cached(wasm_hash):
                    compiling = runtime.cache.state(wasm_hash) is CompileState.RUNNING
                    if compiling and await all_handed_back():
                        seen_handed_back = True
                        break
                    await anyio.sleep(0.05)
                assert seen_handed_back, "the tasks were never all handed back during the compile"
                for task_id in ids:
                    await _ended(store, task_id)
            worker.stop()
        assert [(await store.get_task(i)).state for i in ids] == [TaskState.COMPLETE] * 3
        assert compiles_started(tmp_path / "cache", wasm_hash) == 1


async def _ended(store: Store, task_id: int) -> None:
    while True:
        if (await store.get_task(task_id)).state.is_terminal:
            return
        await anyio.sleep(0.05)


async def test_a_binary_that_does_not_compile_fails_every_task_with_one_message(
    tmp_path: Path, other_world_wasm: Path
) -> None:
    wasm = await anyio.Path(other_world_wasm).read_bytes()
    wasm_hash = hashlib.sha256(wasm).hexdigest()
    cache = tmp_path / "cache"
    async with _new_to_the_machine(tmp_path, wasm, "main") as (store, runtime, ids):
        worker = Worker(store, WorkerConfig(exit_when_idle=True), runtime=runtime)
        with anyio.fail_after(COMPILE_WAIT):
            await worker.run()
        errors = {(await store.get_task(i)).error or "" for i in ids}
        assert len(errors) == 1, errors
        error = json.loads(errors.pop())
        assert error["kind"] == "ComponentError"
        assert "does not target the durable:core workflow world" in error["message"]
        assert compiles_started(cache, wasm_hash) == 1
        # Anyone else asking fails at once, with the same message, compiling nothing.
        other = Runtime(HostConfig(cache_dir=cache))
        try:
            with pytest.raises(ComponentError) as caught:
                other.cache.load(wasm_hash, wasm)
            assert str(caught.value) == error["message"]
        finally:
            other.close()
        assert compiles_started(cache, wasm_hash) == 1


# -- the compiler's deaths ---------------------------------------------------------------------


def test_a_dead_compiler_is_taken_over_and_three_deaths_in_a_row_stop_the_retries(
    tmp_path: Path, bench_wasm: tuple[bytes, str]
) -> None:
    wasm, wasm_hash = bench_wasm
    cache = tmp_path / "cache"
    entry = CompiledEntry.of(cache, wasm_hash)

    def start_and_kill() -> None:
        before = len(_compiler_pids(cache, entry.key))
        assert start_compile(entry, wasm_hash, wasm, max_bytes=2**40, cpu_seconds=600)
        _wait_for(lambda: len(_compiler_pids(cache, entry.key)) > before, "a compiler")
        os.kill(_compiler_pids(cache, entry.key)[-1], signal.SIGKILL)
        _wait_for(lambda: entry.state() is CompileState.ABSENT, "the dead compiler's lock")

    start_and_kill()
    start_and_kill()
    runtime = Runtime(HostConfig(cache_dir=cache))
    try:
        runtime.cache.load(wasm_hash, wasm)  # takes over: the third compile finishes
    finally:
        runtime.close()
    assert entry.state() is CompileState.READY
    assert compiles_started(cache, wasm_hash) == 3

    entry.artifact.unlink()  # gone (say, evicted); the success reset the count
    for _ in range(3):
        start_and_kill()
    runtime = Runtime(HostConfig(cache_dir=cache))
    try:
        with pytest.raises(ComponentError, match="died 3 times"):
            runtime.cache.load(wasm_hash, wasm)
    finally:
        runtime.close()
    assert compiles_started(cache, wasm_hash) == 6


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["worker", "--exit-when-idle"], ["launch", "x", "w.wasm"]])
def test_a_bad_cache_bound_is_one_line_and_touches_no_database(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "w.wasm").write_bytes(b"\0asm\x0d\0\x01\0")
    proc = run_cli(*command, cwd=tmp_path, env={"DURABLE_CACHE_MAX_BYTES": "lots"})
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: DURABLE_CACHE_MAX_BYTES='lots' is not a size (like 4G or 512M)\n"
    )
    assert not (tmp_path / ".durable").exists()


def test_a_build_evicts_least_recently_used_entries_over_the_bound(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    mib = 1024 * 1024

    def entry(kind: str, name: str, size: int, age: float) -> Path:
        path = cache / kind / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
        os.utime(path, (time.time() - age, time.time() - age))
        return path

    oldest = entry("compiled", f"{'a' * 64}-x.cwasm", 40 * mib, age=300)
    old = entry("builds", f"{'b' * 32}.wasm", mib, age=200)
    recent = entry("builds", f"{'c' * 32}.wasm", mib, age=0)
    source = tmp_path / "fresh_workflow.py"  # new content: a real build
    source.write_text((WORKFLOWS / "greeter.py").read_text() + "\n# fresh\n")
    result = build_workflow(source, cache_dir=cache, max_bytes=25 * mib)
    assert not result.cached
    assert result.wasm_path.exists()
    assert not oldest.exists()  # the least recently used, and enough to fit
    assert old.exists()
    assert recent.exists()
