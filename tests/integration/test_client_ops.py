"""The client API that operates tasks: launch, list, history, wait, notify, cancel, replay.

On every store backend (the `store` fixture), with real components and a real worker.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import anyio
import pytest

from durable.client import Client
from durable.core.model import NewTask, Task, TaskState
from durable.errors import ConfigurationError, InvalidStateError, TaskNotFoundError
from durable.history import TaskHistory
from durable.host import HostConfig, Runtime
from durable.replayer import ReplayEnd, Replayer
from durable.storage.base import Store
from durable.worker import Worker, WorkerConfig
from tests.helpers import IDLE_WITHIN, WORKFLOWS, built

pytestmark = pytest.mark.anyio

FAST = HostConfig(suspend_after=0.3)
Binary = tuple[bytes, str]


@pytest.fixture(scope="module")
def runtime() -> Iterator[Runtime]:
    rt = Runtime(FAST)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def replayer(runtime: Runtime) -> Replayer:
    return Replayer(runtime=runtime)


@pytest.fixture(scope="module")
def greeter() -> Binary:
    return built(WORKFLOWS / "greeter.py")


@pytest.fixture(scope="module")
def refactored() -> Binary:
    return built(WORKFLOWS / "greeter_refactored.py")


@pytest.fixture(scope="module")
def changed() -> Binary:
    return built(WORKFLOWS / "greeter_changed.py")


class ReadOnlyStore:
    """Forwards reads to a store; any other call fails the test."""

    READS = frozenset({"get_task", "load_history", "get_workflow", "list_tasks", "read_logs"})

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name not in self.READS:
            raise AssertionError(f"a read-only operation called Store.{name}")
        self.calls.append(name)
        return getattr(self._store, name)


async def run_until_idle(store: Store, runtime: Runtime) -> None:
    """Run a worker until nothing is runnable (suspended tasks stay suspended)."""
    config = WorkerConfig(exit_when_idle=True, lease_seconds=5, host=FAST)
    with anyio.fail_after(IDLE_WITHIN):
        await Worker(store, config, runtime=runtime).run()


async def launch(client: Client, binary: Binary, entry: str = "", **kw: Any) -> Task:
    workflow = await client.register(binary[0], name="greeter")
    return await client.launch(workflow, name=kw.pop("name", "greeter"), entry=entry, **kw)


# -- launch, get, list ----------------------------------------------------------------


async def test_launching_twice_with_one_key_returns_one_task(store: Store, greeter: Binary) -> None:
    client = Client(store)
    first = await launch(client, greeter, input=1, idempotency_key="order-1")
    again = await launch(client, greeter, input=2, idempotency_key="order-1")
    other = await launch(client, greeter, input=1)
    assert again.id == first.id
    assert again.input == "1"  # the first launch's task, unchanged
    assert other.id != first.id
    assert [t.id for t in await client.list()] == [other.id, first.id]


async def test_list_filters_by_state_name_parent_and_limit(store: Store, greeter: Binary) -> None:
    client = Client(store)
    order1 = await launch(client, greeter, name="order-1")
    order2 = await launch(client, greeter, name="order-2")
    refund = await launch(client, greeter, name="refund-1")
    child = await store.create_task(
        NewTask(name="child-1", workflow_hash=greeter[1], input="1", parent_id=order1.id)
    )
    await client.cancel(order2.id)

    async def ids(**kw: Any) -> list[int]:
        return [t.id for t in await client.list(**kw)]

    assert await ids() == [child.id, refund.id, order2.id, order1.id]  # newest first
    assert await ids(states=["cancelled"]) == [order2.id]
    assert await ids(states=[TaskState.READY], name="order-*") == [order1.id]
    assert await ids(name="order-?") == [order2.id, order1.id]
    assert await ids(parent_id=order1.id) == [child.id]
    assert await ids(limit=2) == [child.id, refund.id]
    with pytest.raises(ConfigurationError, match="unknown task state 'done'"):
        await client.list(states=["done"])
    with pytest.raises(ConfigurationError, match="limit must be at least 1"):
        await client.list(limit=0)


async def test_unknown_task_is_one_clear_error_everywhere(store: Store) -> None:
    client = Client(store)
    calls = [
        client.get(99),
        client.history(99),
        client.logs(99),
        client.wait(99, timeout=1),
        client.notify(99, "go"),
        client.cancel(99),
        client.replay(99),
    ]
    for call in calls:
        with pytest.raises(TaskNotFoundError, match="task 99 does not exist"):
            await call


async def test_wait_gives_up_after_its_timeout(store: Store, greeter: Binary) -> None:
    client = Client(store)
    task = await launch(client, greeter, input=1)  # no worker: it stays ready
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=f"task {task.id} is still ready after 0.3s"):
        await client.wait(task.id, timeout=0.3)
    assert time.monotonic() - started >= 0.3  # it waited its timeout out


# -- running, history, wrong states ---------------------------------------------------


async def test_wait_history_and_ended_tasks_refuse_control(
    store: Store, runtime: Runtime, greeter: Binary
) -> None:
    client = Client(store)
    task = await launch(client, greeter, input=7)
    async with anyio.create_task_group() as tg:
        worker = Worker(store, WorkerConfig(host=FAST), runtime=runtime)
        tg.start_soon(worker.run)
        done = await client.wait(task.id, timeout=300)
        worker.stop()
    assert done.state is TaskState.COMPLETE
    assert json.loads(done.result or "null") == "Hello, user-7!"
    history = await client.history(task.id)
    assert history.task == done
    assert [e.label for e in history.events] == [
        "step fetch_name",
        "wasi:clocks/wall-clock.now",
        "step greet",
    ]
    with pytest.raises(InvalidStateError, match=f"task {task.id} is already complete"):
        await client.notify(task.id, "go")
    with pytest.raises(InvalidStateError, match=f"task {task.id} is already complete"):
        await client.cancel(task.id)


# -- replay ---------------------------------------------------------------------------


async def test_replay_of_a_complete_task_against_same_refactored_and_changed_code(
    store: Store,
    runtime: Runtime,
    replayer: Replayer,
    greeter: Binary,
    refactored: Binary,
    changed: Binary,
) -> None:
    client = Client(store)
    task = await launch(client, greeter, input=7)
    await run_until_idle(store, runtime)
    before = await client.history(task.id)
    reader = Client(cast("Store", ReadOnlyStore(store)))

    same = await reader.replay(task.id, replayer=replayer)
    assert same.clean
    assert same.end is ReplayEnd.COMPLETE
    assert (same.events, same.last_index, same.same_end) == (3, 2, True)
    assert json.loads(same.result or "null") == "Hello, user-7!"

    # Other code, other names for the step functions, the same behaviour: still clean.
    moved = await reader.replay(task.id, wasm=refactored[0], replayer=replayer)
    assert moved.clean
    assert moved.same_end is True

    # An extra step before the clock read: the behaviour changed at event 1.
    broken = await reader.replay(task.id, wasm=changed[0], replayer=replayer)
    assert not broken.clean
    assert broken.end is ReplayEnd.DIVERGED
    assert broken.divergence is not None
    assert broken.divergence.index == 1
    assert broken.divergence.expected == "'wasi:clocks/wall-clock.now'"
    assert broken.divergence.found == "'step audit'"
    assert broken.last_index == 0

    assert await client.history(task.id) == before  # nothing written
    assert (await client.get(task.id)).attempts == 1


async def test_replay_of_a_task_in_flight_checks_only_what_it_has_done(
    store: Store, runtime: Runtime, replayer: Replayer, greeter: Binary, changed: Binary
) -> None:
    client = Client(store)
    task = await launch(client, greeter, "patient", input=7)
    await run_until_idle(store, runtime)
    assert (await client.get(task.id)).state is TaskState.SUSPENDED

    same = await client.replay(task.id, replayer=replayer)
    assert same.clean
    assert same.end is ReplayEnd.CONTINUES
    assert same.next_operation == "durable:notify.wait"
    assert same.same_end is None  # the task has not ended
    # The change comes after the point the task has reached: safe to upgrade.
    later = await client.replay(task.id, wasm=changed[0], replayer=replayer)
    assert later.clean
    assert later.next_operation == "step audit"
    assert await client.logs(task.id) == []

    await client.notify(task.id, "go")
    await run_until_idle(store, runtime)
    assert (await client.get(task.id)).state is TaskState.COMPLETE
    now = await client.replay(task.id, wasm=changed[0], replayer=replayer)
    assert now.divergence is not None
    assert (now.divergence.index, now.divergence.expected) == (1, "'durable:notify.wait'")


async def test_replay_of_an_exported_history(
    store: Store, runtime: Runtime, replayer: Replayer, greeter: Binary, changed: Binary
) -> None:
    client = Client(store)
    task = await launch(client, greeter, input=3)
    await run_until_idle(store, runtime)
    exported = TaskHistory.from_dict(json.loads((await client.history(task.id)).dumps()))
    # From the document alone, against a given component: no store needed.
    report = await anyio.to_thread.run_sync(replayer.replay, exported, changed[0])
    assert report.divergence is not None
    assert report.divergence.index == 1
    # Against the task's own binary, fetched from the store by the history's hash.
    fresh = Replayer(FAST)
    try:
        own = await client.replay(exported, replayer=fresh)
    finally:
        fresh.close()
    assert own.clean
    assert json.loads(own.result or "null") == "Hello, user-3!"


@pytest.fixture
def counting_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that answers 204 and records every request path."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/probe", hits
    finally:
        server.shutdown()
        server.server_close()


async def test_replay_never_runs_a_step_body_past_the_history(
    store: Store, runtime: Runtime, replayer: Replayer, counting_server: tuple[str, list[str]]
) -> None:
    url, hits = counting_server
    probe = built(WORKFLOWS / "step_probe.py")
    client = Client(store)
    task = await launch(client, probe, input=url)
    await run_until_idle(store, runtime)
    assert (await client.get(task.id)).state is TaskState.COMPLETE
    assert hits == ["/probe"]
    history = await client.history(task.id)
    assert [e.label for e in history.events] == ["step begin", "step fetch"]

    # As if the task had stopped after its first step: the next step's body, which
    # would send a request for real, must not run.
    cut = dataclasses.replace(history, events=history.events[:1])
    report = await anyio.to_thread.run_sync(replayer.replay, cut, probe[0])
    assert report.clean
    assert report.end is ReplayEnd.CONTINUES
    assert report.next_operation == "step fetch"
    full = await anyio.to_thread.run_sync(replayer.replay, history, probe[0])
    assert full.end is ReplayEnd.COMPLETE
    assert hits == ["/probe"]
