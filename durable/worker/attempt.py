"""Running one claimed task attempt: load, replay and run on a thread, then finish.

Whatever happens inside, the worker survives: a guest that raises or traps ends as a
`failed` task; a component that cannot load fails its task; a lost lease drops the
attempt without a write; a database error leaves the task for its lease to pass on.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Sequence

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import TaskGroup

from durable.core.model import (
    Claim,
    Event,
    Failed,
    Lease,
    LogChunk,
    NewTask,
    Notification,
    Released,
    Task,
)
from durable.errors import (
    ComponentError,
    InvalidStateError,
    LeaseLostError,
    NotFoundError,
    StorageError,
    TaskNotFoundError,
)
from durable.host.context import AttemptContext
from durable.host.runtime import AttemptEnd, Runtime
from durable.storage.base import Store

log = logging.getLogger("durable.worker")


class StoreSink:
    """The host's `Sink`: reaches the async store from the guest's thread."""

    def __init__(self, store: Store, lease: Lease) -> None:
        self._store = store
        self._lease = lease

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], consumed: Sequence[int] = ()
    ) -> None:
        """Append, fenced by the lease; blocks the guest until durable."""
        anyio.from_thread.run(
            functools.partial(self._store.append, self._lease, events, logs, consumed=consumed)
        )

    def next_notification(self, task_id: int, event: str | None) -> Notification | None:
        """The oldest unconsumed notification for the task."""
        return anyio.from_thread.run(
            functools.partial(self._store.next_notification, task_id, event=event)
        )

    def notify(self, task_id: int, event: str, data: str, key: str) -> str | None:
        """Send once per key; None, or why it was refused."""
        try:
            anyio.from_thread.run(
                functools.partial(self._store.notify, task_id, event, data, key=key)
            )
        except TaskNotFoundError:
            return "task-not-found"
        except InvalidStateError:
            return "task-ended"
        return None

    def spawn(self, spec: NewTask) -> int:
        """Create the child (idempotent by key) and return its id."""
        return anyio.from_thread.run(self._store.create_task, spec).id

    def find_workflow(self, name: str) -> str | None:
        """The newest binary registered as `name`."""
        try:
            return anyio.from_thread.run(self._store.find_workflow, name)
        except NotFoundError:
            return None

    def get_task(self, task_id: int) -> Task:
        """The task as stored now."""
        return anyio.from_thread.run(self._store.get_task, task_id)


class AttemptRunner:
    """Starts attempts in the worker's task group and keeps track of them."""

    def __init__(
        self,
        *,
        store: Store,
        runtime: Runtime,
        worker_id: str,
        limiter: anyio.CapacityLimiter,
        on_end: Callable[[], None],
    ) -> None:
        self._store = store
        self._runtime = runtime
        self._worker_id = worker_id
        self._limiter = limiter
        self._on_end = on_end
        self._contexts: dict[int, AttemptContext | None] = {}
        self._idle = anyio.Event()
        self._idle.set()
        self._interrupted = False

    @property
    def running(self) -> int:
        """How many attempts are in progress."""
        return len(self._contexts)

    def start(self, tg: TaskGroup, claim: Claim) -> None:
        """Begin running `claim` in the background."""
        self._contexts[claim.task.id] = None
        self._idle = anyio.Event()
        tg.start_soon(self._run, claim, name=f"task {claim.task.id}")

    def cancel(self, task_ids: Sequence[int]) -> None:
        """Tell the running attempts of these tasks that they are being cancelled."""
        for task_id in task_ids:
            ctx = self._contexts.get(task_id)
            if ctx is not None:
                ctx.cancel.set()

    def interrupt_all(self) -> None:
        """Make every blocking sleep end now; those tasks are released."""
        self._interrupted = True
        for ctx in self._contexts.values():
            if ctx is not None:
                ctx.interrupt.set()

    async def wait_all(self) -> None:
        """Wait until no attempt is running."""
        await self._idle.wait()

    async def _run(self, claim: Claim) -> None:
        task = claim.task
        try:
            end = await self._execute(claim)
            if end.outcome is not None:
                await self._store.finish(
                    claim.lease, end.outcome, end.events, end.logs, consumed=end.consumed
                )
        except LeaseLostError:
            log.info("task %d: lease lost to another worker; dropped this attempt", task.id)
        except StorageError as exc:
            # The database is unreachable or refused: the lease will lapse and another
            # attempt (here or elsewhere) will resume the task by replay.
            log.warning("task %d: storage error, leaving it to lease expiry: %s", task.id, exc)
        except Exception as exc:  # a host bug must not take the worker down
            log.exception("task %d: internal error", task.id)
            await self._fail(claim, "InternalError", f"{type(exc).__name__}: {exc}")
        finally:
            del self._contexts[task.id]
            if not self._contexts:
                self._idle.set()
            self._on_end()

    async def _execute(self, claim: Claim) -> AttemptEnd:
        task = claim.task
        try:
            wasm = None
            if not self._runtime.cache.cached(task.workflow_hash):
                wasm = await self._store.get_workflow(task.workflow_hash)
            component = await anyio.to_thread.run_sync(
                self._runtime.cache.load, task.workflow_hash, wasm
            )
        except (ComponentError, NotFoundError) as exc:
            return AttemptEnd(outcome=Failed(error=_error("ComponentError", str(exc))))
        history = await self._store.load_history(task.id)
        ctx = AttemptContext(
            task=task,
            attempt=task.attempts,
            history=history,
            sink=StoreSink(self._store, claim.lease),
            config=self._runtime.config,
        )
        self._contexts[task.id] = ctx
        if self._interrupted:
            return AttemptEnd(outcome=Released())
        return await anyio.to_thread.run_sync(
            self._runtime.run, component, ctx, limiter=self._limiter
        )

    async def _fail(self, claim: Claim, kind: str, message: str) -> None:
        try:
            await self._store.finish(claim.lease, Failed(error=_error(kind, message)))
        except StorageError as exc:
            log.warning("task %d: could not record failure: %s", claim.task.id, exc)


def _error(kind: str, message: str) -> str:
    return json.dumps({"kind": kind, "message": message, "traceback": ""})
