"""`Runtime.close` stops guests and says whether anything is still inside wasmtime."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import anyio
import pytest

from durable.core.model import NewTask, Task
from durable.host import HostConfig, Runtime
from durable.host.context import AttemptContext
from durable.host.runtime import AttemptEnd
from durable.storage.memory import MemoryStore
from tests.helpers import DiscardingSink, built, load_component
from tests.integration.limit_tasks import COORDINATION, LIMITS


def _task(source: str, entry: str, value: str) -> tuple[bytes, Task]:
    wasm, digest = built(LIMITS if source == "limits" else COORDINATION)

    async def create() -> Task:
        store = MemoryStore()
        await store.put_workflow(wasm)
        return await store.create_task(
            NewTask(name=entry, workflow_hash=digest, entry=entry, input=value)
        )

    return wasm, anyio.run(create)


def _start(
    runtime: Runtime, wasm: bytes, task: Task
) -> tuple[threading.Thread, AttemptContext, list[AttemptEnd]]:
    """Run one attempt on a thread of its own; its end lands in the returned list."""
    component = load_component(runtime, wasm)
    ctx = AttemptContext(
        task=task, attempt=1, history=[], sink=DiscardingSink(), config=runtime.config
    )
    ends: list[AttemptEnd] = []
    thread = threading.Thread(target=lambda: ends.append(runtime.run(component, ctx)))
    thread.start()
    return thread, ctx, ends


@pytest.fixture
def silent_server() -> Iterator[tuple[str, threading.Event, list[socket.socket]]]:
    """A server that accepts and never answers: its URL, `accepted`, the connections."""
    accepted = threading.Event()
    held: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as server:

        def hold() -> None:
            conn, _ = server.accept()
            held.append(conn)
            accepted.set()

        threading.Thread(target=hold, daemon=True).start()
        yield f"http://127.0.0.1:{server.getsockname()[1]}/", accepted, held
        for conn in held:
            conn.close()


def test_close_stops_a_looping_guest_and_then_the_ticker() -> None:
    runtime = Runtime(HostConfig())
    wasm, task = _task("coordination", "spin", "null")
    thread, ctx, ends = _start(runtime, wasm, task)
    deadline = time.monotonic() + 60
    while ctx.cursor.position < 1:  # its first step is recorded: it is in its loop
        assert time.monotonic() < deadline, "the guest never started"
        time.sleep(0.01)
    # The watchdog needs the ticker to stop it: close must stop the guest first.
    assert runtime.close(timeout=60)
    thread.join(5)
    assert not thread.is_alive()
    assert [type(end.outcome).__name__ for end in ends] == ["Released"]
    assert not runtime._ticker.is_alive()


def test_close_reports_a_guest_still_in_a_host_call(
    silent_server: tuple[str, threading.Event, list[socket.socket]],
) -> None:
    url, accepted, held = silent_server
    runtime = Runtime(HostConfig())
    wasm, task = _task("limits", "stall", f'"{url}"')
    thread, _, ends = _start(runtime, wasm, task)
    assert accepted.wait(60)
    assert not runtime.close(timeout=0.5)  # the guest waits for an answer
    assert runtime._ticker.is_alive()  # kept, so the watchdog can still stop guests
    held[0].close()  # the request fails, the guest goes on and is stopped
    thread.join(60)
    assert runtime.close(timeout=60)
    assert len(ends) == 1
