"""The watchdog and guest output on wasmtime-py's public API only (the fallback).

The fallback is what a wasmtime-py release other than the pinned one gets, and what
`DURABLE_WASMTIME_FALLBACK=1` forces; CI also runs the host tests under that variable.
Here it is switched on for one runtime in this process, so that the main run covers it
too: a guest in a CPU loop is stopped at its cancellation, a guest that had no reason
to stop is released (to run again from its history), and output reaches its sink.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

import anyio
import pytest

from durable.core.model import Event, LogChunk, NewTask, Stream, Task
from durable.core.side_writes import SideWrite
from durable.host import HostConfig, Runtime, _wasmtime, trampoline, watchdog
from durable.host.context import AttemptContext
from durable.host.runtime import AttemptEnd
from durable.storage.memory import MemoryStore
from tests.helpers import DiscardingSink, built, load_component
from tests.integration.limit_tasks import COORDINATION, LIMITS


@pytest.fixture
def fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runtimes made from here on use only the public API (the choice is read when a
    runtime starts its ticker, arms a store, defines host functions or attaches output)."""
    monkeypatch.setattr(watchdog, "CALLBACKS", False)
    monkeypatch.setattr(_wasmtime, "FAST", False)
    monkeypatch.setattr(trampoline, "FAST", False)
    return


def _task(source: str, entry: str, value: str) -> tuple[bytes, Task]:
    wasm, digest = built(LIMITS if source == "limits" else COORDINATION)

    async def create() -> Task:
        store = MemoryStore()
        await store.put_workflow(wasm)
        return await store.create_task(
            NewTask(name=entry, workflow_hash=digest, entry=entry, input=value)
        )

    return wasm, anyio.run(create)


class _Sink(DiscardingSink):
    """Keeps the output it is given."""

    def __init__(self) -> None:
        self.output = bytearray()

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        for chunk in logs:
            if chunk.stream is Stream.STDOUT:
                self.output += chunk.data


def _start(
    runtime: Runtime, wasm: bytes, task: Task
) -> tuple[threading.Thread, AttemptContext, list[AttemptEnd], _Sink]:
    component = load_component(runtime, wasm)
    sink = _Sink()
    ctx = AttemptContext(task=task, attempt=1, history=[], sink=sink, config=runtime.config)
    ends: list[AttemptEnd] = []
    thread = threading.Thread(target=lambda: ends.append(runtime.run(component, ctx)))
    thread.start()
    return thread, ctx, ends, sink


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.mark.usefixtures("fallback")
def test_a_cancelled_cpu_loop_stops_and_a_bystander_is_released() -> None:
    runtime = Runtime(HostConfig(cancel_grace=0.2, output_flush_interval=0.1))
    try:
        spin_wasm, spin = _task("coordination", "spin", "null")
        tick_wasm, ticks = _task("limits", "ticker", "100000")
        spinner, spin_ctx, spin_ends, _ = _start(runtime, spin_wasm, spin)
        ticker, _, tick_ends, tick_sink = _start(runtime, tick_wasm, ticks)
        _wait(lambda: spin_ctx.cursor.position >= 1, "the spinning guest never started")
        # Output committed by the sweeps while the guest runs (it makes no durable call).
        _wait(lambda: b"tick 3" in tick_sink.output, "no output reached the sink")
        spin_ctx.cancel.set()
        spinner.join(60)
        ticker.join(60)
        assert not spinner.is_alive()
        assert not ticker.is_alive()
        assert [type(end.outcome).__name__ for end in spin_ends] == ["Cancelled"]
        # The ticker had no reason to stop: it is handed back, to run again.
        assert [type(end.outcome).__name__ for end in tick_ends] == ["Released"]
    finally:
        assert runtime.close(timeout=60)


@pytest.mark.usefixtures("fallback")
def test_close_stops_a_looping_guest_on_the_fallback() -> None:
    runtime = Runtime(HostConfig())
    wasm, task = _task("coordination", "spin", "null")
    thread, ctx, ends, _ = _start(runtime, wasm, task)
    _wait(lambda: ctx.cursor.position >= 1, "the guest never started")
    assert runtime.close(timeout=60)
    thread.join(5)
    assert [type(end.outcome).__name__ for end in ends] == ["Released"]
    assert not runtime._ticker.is_alive()


def _probe(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


_REPORT = (
    "from durable.host import _wasmtime, trampoline, watchdog\n"
    "print(_wasmtime.FAST, trampoline.FAST, watchdog.CALLBACKS)\n"
)


def test_the_variable_forces_the_fallback_quietly() -> None:
    done = _probe(_REPORT, {"DURABLE_WASMTIME_FALLBACK": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "False"]
    assert done.stderr == ""


def test_the_pinned_release_takes_the_fast_path() -> None:
    done = _probe(_REPORT, {})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True"]
    assert done.stderr == ""


def test_another_release_takes_the_fallback_with_one_warning_line() -> None:
    pretend = (
        "import durable._dist as dist\n"
        "real = dist.version\n"
        "dist.version = lambda name: '99.0.0' if name == 'wasmtime' else real(name)\n"
    )
    done = _probe(pretend + _REPORT, {})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "False"]
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "wasmtime-py 99.0.0" in lines[0]
    assert "public API" in lines[0]


@pytest.mark.usefixtures("fallback")
def test_a_stop_on_one_runtime_leaves_another_runtimes_guest_alone() -> None:
    first, second = Runtime(HostConfig(cancel_grace=0.2)), Runtime(HostConfig(cancel_grace=0.2))
    try:
        wasm, task = _task("coordination", "spin", "null")
        one, one_ctx, one_ends, _ = _start(first, wasm, task)
        two, two_ctx, two_ends, _ = _start(second, wasm, task)
        _wait(lambda: one_ctx.cursor.position >= 1, "the first guest never started")
        _wait(lambda: two_ctx.cursor.position >= 1, "the second guest never started")
        one_ctx.cancel.set()
        one.join(60)
        assert [type(end.outcome).__name__ for end in one_ends] == ["Cancelled"]
        # The other engine's epoch did not move: its guest runs on, unmarked, and its
        # own cancellation still stops it.
        assert two.is_alive()
        assert two_ctx.stopped_by is None
        two_ctx.cancel.set()
        two.join(60)
        assert [type(end.outcome).__name__ for end in two_ends] == ["Cancelled"]
    finally:
        assert first.close(timeout=60)
        assert second.close(timeout=60)
