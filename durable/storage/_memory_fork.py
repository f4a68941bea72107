"""`MemoryStore`'s fork and move roles (`durable.storage.fork`, `durable.storage.moves`).

A mixin, so that these roles sit beside their SQL twins rather than in the store's
core; it works on the store's own dicts and, like every `MemoryStore` method, yields
once at its start and then changes nothing until it has checked everything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from durable.core.model import Task, TaskState
from durable.core.runs import run_seed
from durable.core.status import StatusValue
from durable.errors import ConflictError, NotFoundError, TaskNotFoundError
from durable.storage._memory_rows import TaskRow, ready_task
from durable.storage.fork import TaskFork, TaskOrigin, check_at, log_range, no_run
from durable.storage.moves import BinaryMove

__all__ = ["MemoryForks"]

_MOVABLE = (TaskState.READY, TaskState.SUSPENDED)


class MemoryForks:
    """Forks, workflow versions and binary moves, kept in memory."""

    # The store's state, which `MemoryStore.reset` creates.
    _workflows: dict[str, bytes]
    _names: dict[str, str]
    _versions: dict[str, set[str]]
    _tasks: dict[int, TaskRow]
    _statuses: dict[int, dict[str, StatusValue]]
    _last_id: int
    _origins: dict[int, TaskOrigin]
    _moves: dict[int, list[BinaryMove]]
    _now: Callable[[], datetime]
    _notify: Callable[[], None]

    async def _enter(self, name: str) -> None:
        raise NotImplementedError  # pragma: no cover - `MemoryStore` defines it

    async def fork_task(
        self,
        origin_id: int,
        *,
        at: int,
        workflow_hash: str,
        input: str | None = None,
        run: int | None = None,
    ) -> Task:
        """A new task with the first `at` events of `origin_id`'s run (`ForkStore`)."""
        await self._enter("fork_task")
        if origin_id not in self._tasks:
            raise TaskNotFoundError(origin_id)
        origin = self._tasks[origin_id]
        current = origin.task.run
        run = current if run is None else run
        ended = {e.info.run: e for e in origin.runs}
        if run != current and run not in ended:
            raise ConflictError(no_run(origin_id, run, current))
        events = origin.events if run == current else ended[run].events
        why = check_at(at, len(events), origin_id)
        if why is not None:
            raise ConflictError(why)
        if workflow_hash not in self._workflows:
            raise NotFoundError(f"workflow {workflow_hash} is not stored")
        now = self._now()
        self._last_id += 1
        own_input = origin.task.input if run == current else ended[run].info.input
        task = ready_task(
            self._last_id,
            now,
            name=origin.task.name,
            workflow_hash=workflow_hash,
            entry=origin.task.entry,
            input=own_input if input is None else input,
            # The copied events derived their random bytes from the run's seed.
            seed=run_seed(origin.task.seed, run),
            parent_id=None,
            idempotency_key=None,
        )
        bases = {n: e.log_base for n, e in ended.items()}
        low, high = log_range(run, current, bases, origin.log_base)
        # Host notes (position -1) stay with the origin; the rest is renumbered from 1.
        kept = [c for c in origin.logs[low:high] if 0 <= c.position <= at]
        logs = [dataclasses.replace(c, seq=i) for i, c in enumerate(kept, start=1)]
        self._tasks[task.id] = TaskRow(task=task, events=list(events[:at]), logs=logs)
        values = self._statuses.get(origin_id, {}) if run == current else {}
        self._statuses[task.id] = {k: v for k, v in values.items() if v.position < at}
        self._origins[task.id] = TaskOrigin(origin_id=origin_id, at=at, run=run)
        self._notify()
        return task

    async def task_origin(self, task_id: int) -> TaskOrigin | None:
        """Where `task_id` was forked from, if it was (`ForkStore`)."""
        await self._enter("task_origin")
        return self._origins.get(task_id)

    async def task_forks(self, origin_id: int, *, limit: int = 100) -> list[TaskFork]:
        """The tasks forked from `origin_id` (`ForkStore`)."""
        await self._enter("task_forks")
        found = [
            TaskFork(task_id=i, at=o.at, run=o.run)
            for i, o in self._origins.items()
            if o.origin_id == origin_id
        ]
        return sorted(found, key=lambda f: f.task_id)[:limit]

    async def workflow_hashes(self, name: str) -> list[str]:
        """Every binary stored under `name` (`WorkflowVersions`)."""
        await self._enter("workflow_hashes")
        return sorted(self._versions.get(name, ()))

    async def move_task(
        self, task_id: int, *, from_hash: str, to_hash: str, attempts: int, events: int
    ) -> bool:
        """Move the task onto `to_hash` if it is as the upgrade saw it (`MoveStore`)."""
        await self._enter("move_task")
        if to_hash not in self._workflows:
            raise NotFoundError(f"workflow {to_hash} is not stored")
        row = self._tasks.get(task_id)
        if (
            row is None
            or row.task.workflow_hash != from_hash
            or row.task.state not in _MOVABLE
            or row.task.attempts != attempts
            or len(row.events) != events
        ):
            return False
        now = self._now()
        row.change(workflow_hash=to_hash, updated_at=now)
        move = BinaryMove(from_hash=from_hash, to_hash=to_hash, events=events, moved_at=now)
        self._moves.setdefault(task_id, []).append(move)
        return True

    async def binary_moves(self, task_id: int) -> list[BinaryMove]:
        """The task's moves onto other binaries, oldest first (`MoveStore`)."""
        await self._enter("binary_moves")
        return list(self._moves.get(task_id, []))
