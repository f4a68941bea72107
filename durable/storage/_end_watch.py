"""In-process "this task may have ended" signals, behind `Store.watch_end`.

A store keeps one `EndWaiters`; each `Client.wait` (or `follow`) registers an
`EndWatch` for its task *before* it first reads the task, so an end committed after
that read is never missed in this process: the store's own `finish` sets it directly,
and what a backend hears from other processes (LISTEN on Postgres, the wake-up
sockets on SQLite) sets it through `ended` or `wake_all`. A watch is only a hint:
callers re-read the task after every return, and keep a slow timeout as a safety
net for a wake-up that was lost (a dropped datagram, a dropped connection).

The one exception: a store whose own `finish` ended the task may hand the ended row,
read in the transaction that ended it, to `ended`; the watch then carries it
(`EndWatch.task`) and a waiter returns it without reading the task again, which on a
short task was one of its two trips to the database. A row read in the committed
transaction that ended the task is what a read after the commit would return: an
ended task's row changes again only by a retry or a fork's own row, both later acts
that a waiter returning at the end could not have seen either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import anyio

from durable.core.model import Task


class EndWatch:
    """A latched signal for one waiter: set when its task may have ended."""

    __slots__ = ("_event", "task")

    def __init__(self) -> None:
        """An unset watch."""
        self._event = asyncio.Event()
        # The task as it ended, when the store that ended it said so (else None).
        self.task: Task | None = None

    def set(self, task: Task | None = None) -> None:
        """Wake the waiter (now, or at its next `wait`), with the ended task if known."""
        if task is not None:
            self.task = task
        self._event.set()

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - a wait, not a deadline
        """Return when set (now, or since the last return), or after `timeout` seconds."""
        if not self._event.is_set():
            with anyio.move_on_after(max(0.0, timeout)):
                await self._event.wait()
        self._event.clear()


class EndWaiters:
    """The watches of one store, by task id."""

    def __init__(self) -> None:
        """No watches yet."""
        self._by_task: dict[int, set[EndWatch]] = {}

    def __bool__(self) -> bool:
        return bool(self._by_task)

    @contextmanager
    def watch(self, task_id: int) -> Iterator[EndWatch]:
        """A watch on `task_id`, registered while the block runs."""
        watch = EndWatch()
        self._by_task.setdefault(task_id, set()).add(watch)
        try:
            yield watch
        finally:
            watches = self._by_task.get(task_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._by_task[task_id]

    def watching(self, task_id: int) -> bool:
        """Whether a watch on `task_id` is registered now."""
        return task_id in self._by_task

    def ended(self, task_id: int, task: Task | None = None) -> None:
        """Wake the watches on `task_id`; `task`, if given, is its ended row (terminal),
        read in the transaction that ended it."""
        for watch in self._by_task.get(task_id, ()):
            watch.set(task)

    def wake_all(self) -> None:
        """Wake every watch: some task, which one unknown, may have ended."""
        for watches in self._by_task.values():
            for watch in watches:
                watch.set()
