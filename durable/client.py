"""The Python client API: launch tasks, inspect them, follow their logs.

The CLI is a thin layer over this module. Everything is async; a `Client` wraps one
open `Store` and can be used as an async context manager::

    async with await Client.open("sqlite:///app.db") as client:
        task = await client.launch(workflow_hash, name="greet", input="world")
        done = await client.wait(task.id)
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import anyio

from durable.core.model import LogChunk, NewTask, Task
from durable.storage import Store, open_store


class Client:
    """A handle on a durable database for launching and inspecting tasks."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @classmethod
    async def open(cls, url: str | None = None, *, migrate: bool = True) -> Client:
        """Open the database at `url` (default: DURABLE_DATABASE_URL, or the local file)."""
        return cls(await open_store(url, migrate=migrate))

    async def close(self) -> None:
        """Close the underlying store."""
        await self.store.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def register(self, wasm: bytes, *, name: str | None = None) -> str:
        """Store a workflow binary; return its SHA-256 hex. Idempotent."""
        return await self.store.put_workflow(wasm, name=name)

    async def launch(
        self,
        workflow_hash: str,
        *,
        name: str,
        input: Any = None,
        entry: str = "",
        idempotency_key: str | None = None,
    ) -> Task:
        """Enqueue a task running `workflow_hash` on `input` (any JSON value)."""
        spec = NewTask(
            name=name,
            workflow_hash=workflow_hash,
            input=json.dumps(input),
            entry=entry,
            idempotency_key=idempotency_key,
        )
        return await self.store.create_task(spec)

    async def get(self, task_id: int) -> Task:
        """Return the task, or raise `TaskNotFoundError`."""
        return await self.store.get_task(task_id)

    async def logs(self, task_id: int, *, after_seq: int = 0) -> list[LogChunk]:
        """Return the task's output so far."""
        await self.store.get_task(task_id)  # a clear error for an unknown id
        return await self.store.read_logs(task_id, after_seq=after_seq)

    async def follow(self, task_id: int, *, poll: float = 0.05) -> AsyncIterator[LogChunk]:
        """Yield the task's output as it is written, until the task ends."""
        seq = 0
        while True:
            task = await self.store.get_task(task_id)
            chunks = await self.store.read_logs(task_id, after_seq=seq)
            for chunk in chunks:
                seq = chunk.seq
                yield chunk
            if task.state.is_terminal and not chunks:
                return
            if not chunks:
                await anyio.sleep(poll)

    async def wait(self, task_id: int, *, poll: float = 0.05) -> Task:
        """Wait until the task ends; return it."""
        while True:
            task = await self.store.get_task(task_id)
            if task.state.is_terminal:
                return task
            await anyio.sleep(poll)
