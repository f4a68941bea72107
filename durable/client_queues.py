"""The queue half of `durable.client.Client`: queue settings, and pausing tasks.

A mixin, like `client_schedules`; every method needs a store with the queue role
(SQLite or Postgres).
"""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

from durable.core.model import NewTask, Task
from durable.core.queue import KEEP, Keep, Queue, QueueSettings, check_name, placement_problem
from durable.errors import ConfigurationError, NotFoundError
from durable.storage.base import QueueStore

if TYPE_CHECKING:
    from durable.storage import Store


class QueueClient:
    """Queues with limits, and pause/resume of tasks."""

    store: Store

    def _queues(self) -> QueueStore:
        if not isinstance(self.store, QueueStore):
            raise ConfigurationError(f"the store {self.store.url} has no queues")
        return self.store

    async def set_queue(
        self,
        name: str,
        *,
        concurrency: int | Keep | None = KEEP,
        key_concurrency: int | Keep | None = KEEP,
        rate: tuple[int, float] | Keep | None = KEEP,
        priority: int | Keep = KEEP,
        paused: bool | Keep = KEEP,
    ) -> Queue:
        """Create queue `name`, or change the settings given (tasks waiting in it
        included); a setting left out keeps its value (a new queue's: no limit,
        priority 0, not paused). None clears a limit.

        Args:
            concurrency: most tasks of the queue active at once (None: no limit).
            key_concurrency: most active at once per queue key (`launch(queue_key=)`).
            rate: (N, seconds): at most N first starts per that many seconds.
            priority: the priority of tasks launched onto it without one.
            paused: start nothing more from it (running tasks go on).

        Raises:
            ConfigurationError: a bad name or limit.
        """
        store = self._queues()
        check_name(name)
        try:
            old = (await store.get_queue(name)).settings
        except NotFoundError:
            old = QueueSettings(name=name)
        # Read, then written whole: of two changes at the same instant to one queue,
        # the later write wins (settings are an operator's, not a workflow's).
        if rate is KEEP:
            count, period = old.rate_limit, old.rate_period
        else:
            count, period = rate if rate is not None else (None, None)
        settings = QueueSettings(
            name=name,
            concurrency=old.concurrency if concurrency is KEEP else concurrency,
            key_concurrency=old.key_concurrency if key_concurrency is KEEP else key_concurrency,
            rate_limit=count,
            rate_period=period,
            priority=old.priority if priority is KEEP else priority,
            paused=old.paused if paused is KEEP else paused,
        )
        return await store.set_queue(settings)

    async def get_queue(self, name: str) -> Queue:
        """The queue's settings and counts, or `NotFoundError`."""
        return await self._queues().get_queue(name)

    async def queues(self) -> builtins.list[Queue]:
        """Every queue, by name."""
        return await self._queues().list_queues()

    async def pause(self, task_id: int) -> Task:
        """Pause a task: no worker starts it, and a running one is parked (handed back,
        no instance kept) at once if it sleeps, else within a few seconds. Its timers
        keep their deadlines: one that passes meanwhile fires at `resume`."""
        return await self._queues().pause_task(task_id, paused=True)

    async def resume(self, task_id: int) -> Task:
        """Let a paused task run again."""
        return await self._queues().pause_task(task_id, paused=False)


def check_flow(store: Store, spec: NewTask) -> None:
    """Refuse flow control the store cannot do, or a bad queue name or debounce."""
    if spec.queue is None and spec.priority is None and spec.debounce_key is None:
        return
    if not isinstance(store, QueueStore):
        raise ConfigurationError(f"the store {store.url} has no queues, priorities or debounce")
    problem = placement_problem(spec.queue, spec.queue_key)
    if problem is not None:
        raise ConfigurationError(problem)
    if spec.debounce_key is not None and spec.debounce <= 0:
        raise ConfigurationError("a debounce key needs a debounce window of more than 0 s")
