"""A task's end is signalled to whoever waits for it, not found by polling.

In-process (every backend), from another process (SQLite's wake-up sockets, Postgres's
LISTEN), and with a wake-up lost: then the slow fallback still ends the wait.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from durable import client as client_module
from durable.client import Client
from durable.core.model import Completed, Failed, Suspended, TaskState
from durable.storage._contract import chunk, claimed, new_task
from durable.storage._sqlite_wake import WakeChannel, end_message
from durable.storage.base import EndSignals, Store
from durable.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

#: Opens the database at argv[1], claims the one ready task, and completes it.
FINISHER = """
import sys, anyio
from durable.core.model import Completed
from durable.storage import open_store

async def main() -> None:
    store = await open_store(sys.argv[1], migrate=False)
    try:
        claims = await store.claim(worker_id="other-process", limit=1, lease_seconds=60)
        assert len(claims) == 1, claims
        await store.finish(claims[0].lease, Completed(result='"done"'))
    finally:
        await store.close()

anyio.run(main)
"""


async def test_every_backend_has_end_signals(store: Store) -> None:
    assert isinstance(store, EndSignals)


async def test_a_finish_in_this_process_wakes_the_watch(store: Store) -> None:
    claim = await claimed(store)
    assert isinstance(store, EndSignals)
    async with store.watch_end(claim.task.id) as watch, anyio.create_task_group() as tg:
        tg.start_soon(store.finish, claim.lease, Completed(result="1"))
        with anyio.fail_after(30):
            await watch.wait(600)  # only the signal can end this in time
    assert (await store.get_task(claim.task.id)).state is TaskState.COMPLETE


async def test_an_ended_row_that_comes_with_the_signal_is_the_stored_one(store: Store) -> None:
    # SQLite's own finish hands its waiters the ended row, and `Client.wait` returns it
    # without reading the task again: it must be what a read after the commit returns.
    claim = await claimed(store)
    assert isinstance(store, EndSignals)
    async with store.watch_end(claim.task.id) as watch:
        await store.finish(claim.lease, Failed(error='{"kind": "ValueError", "message": "x"}'))
        with anyio.fail_after(30):
            await watch.wait(600)
    stored = await store.get_task(claim.task.id)
    assert stored.state is TaskState.FAILED
    if isinstance(store, SQLiteStore):
        assert watch.task is not None
    if watch.task is not None:
        assert watch.task == stored


async def test_a_suspension_brings_no_row(store: Store) -> None:
    claim = await claimed(store)
    assert isinstance(store, EndSignals)
    async with store.watch_end(claim.task.id) as watch:
        await store.finish(claim.lease, Suspended(wakeup_at=None, on_event=True))
        with anyio.move_on_after(0.05):  # a spurious wake-up is allowed, a row is not
            await watch.wait(600)
    assert watch.task is None
    assert (await store.get_task(claim.task.id)).state is TaskState.SUSPENDED


async def test_client_wait_returns_the_row_the_finish_brought(store: Store) -> None:
    claim = await claimed(store)
    client = Client(store)
    async with anyio.create_task_group() as tg:
        ended = []

        async def wait() -> None:
            ended.append(await client.wait(claim.task.id, timeout=60))

        tg.start_soon(wait)
        await anyio.lowlevel.checkpoint()  # registered, or soon: the wait sees the end
        await store.finish(claim.lease, Completed(result='"r"'))
    assert ended == [await store.get_task(claim.task.id)]
    assert ended[0].result == '"r"'


async def test_a_cancel_wakes_the_watch(store: Store) -> None:
    task = await new_task(store)
    assert isinstance(store, EndSignals)
    async with store.watch_end(task.id) as watch:
        await store.request_cancel(task.id)
        with anyio.fail_after(30):
            await watch.wait(600)
    assert (await store.get_task(task.id)).state is TaskState.CANCELLED


async def test_client_wait_is_woken_by_another_process(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not isinstance(store, SQLiteStore) and "postgres" not in type(store).__name__.lower():
        pytest.skip("an in-memory store has no other process")
    # No safety-net polling: only the signal from the other process can end the wait.
    monkeypatch.setattr(client_module, "_END_FALLBACK", 600.0)
    task = await new_task(store)
    client = Client(store)
    url = store.url  # type: ignore[attr-defined]
    async with anyio.create_task_group() as tg:

        async def finish_elsewhere() -> None:
            await anyio.sleep(0.2)  # the waiter is inside its wait by then
            done = await anyio.run_process([sys.executable, "-c", FINISHER, url], check=False)
            assert done.returncode == 0, done.stderr.decode()

        tg.start_soon(finish_elsewhere)
        with anyio.fail_after(300):
            ended = await client.wait(task.id)
    assert ended.state is TaskState.COMPLETE
    assert ended.result == '"done"'


async def test_a_lost_wake_up_only_delays_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "lost.db"
    waiting = await SQLiteStore.open(path)
    finishing = await SQLiteStore.open(path)
    try:
        await waiting.migrate()
        monkeypatch.setattr(client_module, "_END_FALLBACK", 0.2)
        # The finishing store's datagrams all go missing (a full queue, say).
        monkeypatch.setattr(finishing._wake, "send", lambda message: None)
        task = await new_task(finishing)
        async with anyio.create_task_group() as tg:

            async def finish() -> None:
                await anyio.sleep(0.1)
                claims = await finishing.claim(worker_id="w", limit=1, lease_seconds=60)
                await finishing.finish(claims[0].lease, Completed(result="2"))

            tg.start_soon(finish)
            with anyio.fail_after(60):
                ended = await Client(waiting).wait(task.id)
        assert ended.state is TaskState.COMPLETE
    finally:
        await finishing.close()
        await waiting.close()


async def test_a_dead_process_socket_is_cleared_by_the_next_send(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    heard: list[bytes] = []
    got = anyio.Event()
    receiver = WakeChannel(db, lambda message: (heard.append(message), got.set()))
    sender = WakeChannel(db, lambda message: None)
    try:
        assert receiver.listen()
        wake_dir = Path(f"{db}-wake")
        # A socket bound and closed without unlinking: what a SIGKILLed process leaves.
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        dead.bind(str(wake_dir / "dead"))
        dead.close()
        sender.send(end_message(7))
        with anyio.fail_after(30):
            await got.wait()
        assert heard == [b"e7"]
        assert "dead" not in os.listdir(wake_dir)
    finally:
        receiver.close()
        sender.close()
    assert os.listdir(f"{db}-wake") == []  # the receiver unregistered itself


@pytest.fixture
def deep(tmp_path: Path) -> Path:
    """A directory deeper than a socket address can name."""
    path = tmp_path / ("d" * 60) / ("e" * 60)
    path.mkdir(parents=True)
    return path


async def test_a_long_database_path_still_gets_wake_ups(deep: Path) -> None:
    got = anyio.Event()
    receiver = WakeChannel(deep / "x.db", lambda message: got.set())
    sender = WakeChannel(deep / "x.db", lambda message: None)
    try:
        assert receiver.listen()
        sender.send(b"w")
        with anyio.fail_after(30):
            await got.wait()
    finally:
        receiver.close()
        sender.close()


def test_a_wake_directory_open_to_others_is_not_used(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    wake_dir = Path(f"{db}-wake")
    wake_dir.mkdir()
    wake_dir.chmod(0o777)  # anyone could plant or redirect sockets here
    channel = WakeChannel(db, lambda message: None)
    try:
        assert not channel.listen()
        assert os.listdir(wake_dir) == []
    finally:
        channel.close()


def test_a_store_that_is_not_listening_sends_nothing_into_a_missing_directory(
    tmp_path: Path,
) -> None:
    channel = WakeChannel(tmp_path / "none.db", lambda message: None)
    channel.send(b"w")  # no directory: nobody ever listened; nothing is created
    channel.close()
    assert not Path(f"{tmp_path / 'none.db'}-wake").exists()


async def test_follow_ends_when_the_task_ends_without_polling(store: Store) -> None:
    claim = await claimed(store)
    client = Client(store)
    chunks = []

    async def finish_later() -> None:
        await anyio.sleep(0.2)  # `follow` is inside its (600 s) pause by then
        await store.finish(claim.lease, Completed(result="3"), logs=[chunk("last words\n")])

    async with anyio.create_task_group() as tg:
        tg.start_soon(finish_later)
        with anyio.fail_after(60):
            async for one in client.follow(claim.task.id, poll=600):
                chunks.append(one.data)
    assert chunks == [b"last words\n"]
