"""Tasks of the limit workflows in a SQLite file, for tests that run worker processes.

The workflows are `tests/workflows/limits.py`'s, and `coordination.py`'s `hog`, `spin`
and `chatty`. Each helper opens the file, does its work and closes it, so a worker
process can hold the same file in between.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from durable.core.model import NewTask, Task
from durable.host import HostConfig, Runtime
from durable.storage.sqlite import SQLiteStore
from tests.helpers import WORKFLOWS, built, load_component

LIMITS = WORKFLOWS / "limits.py"
COORDINATION = WORKFLOWS / "coordination.py"
#: Entries taken from `coordination.py`; every other one is in `limits.py`.
FROM_COORDINATION = frozenset({"hog", "spin", "chatty"})


@dataclass(frozen=True)
class Spec:
    """A task to launch: its entry, its input (any JSON), its timeout in seconds."""

    entry: str
    value: Any = None
    timeout: float | None = None


def build() -> None:
    """Build and compile both workflows now (both cached on this machine), so that
    worker processes start them in milliseconds, not each compiling them at once."""
    runtime = Runtime(HostConfig())
    try:
        for source in (LIMITS, COORDINATION):
            load_component(runtime, built(source)[0])
    finally:
        runtime.close()


def launch(db: Path, specs: Sequence[Spec]) -> list[int]:
    """Create the database if needed and a ready task per spec; return their ids."""
    limits, coordination = built(LIMITS), built(COORDINATION)

    async def create(store: SQLiteStore) -> list[int]:
        for wasm, _ in (limits, coordination):
            await store.put_workflow(wasm)
        ids = []
        for spec in specs:
            _, digest = coordination if spec.entry in FROM_COORDINATION else limits
            task = await store.create_task(
                NewTask(
                    name=spec.entry,
                    workflow_hash=digest,
                    entry=spec.entry,
                    input=json.dumps(spec.value),
                    timeout=spec.timeout,
                )
            )
            ids.append(task.id)
        return ids

    ids: list[int] = _with_store(db, create)
    return ids


def tasks(db: Path, ids: Sequence[int]) -> list[Task]:
    """The tasks as stored now."""

    async def get(store: SQLiteStore) -> list[Task]:
        return [await store.get_task(i) for i in ids]

    found: list[Task] = _with_store(db, get)
    return found


def _with_store(db: Path, fn: Any) -> Any:
    async def run() -> Any:
        store = await SQLiteStore.open(db)
        try:
            await store.migrate()
            return await fn(store)
        finally:
            await store.close()

    return anyio.run(run)
