"""The `Store` protocol: everything the engine asks of a database.

It is about rows and events, not SQL. A `typing.Protocol` (not a base class) because the
in-memory store shares no code with the SQL ones, and structural typing keeps
`durable.core` free of storage imports. Each method states what it promises about
atomicity and idempotency; the contract suite in `durable.storage.testing` checks
every backend against these promises.

Fencing: every write for a running task takes the `Lease` handed out by `claim`, and
checks it in the same statement or transaction as the write. A worker whose lease has
passed on (it was frozen, cut off, or presumed dead) gets `LeaseLostError` and writes
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from durable.core.model import (
    Claim,
    Event,
    Lease,
    LogChunk,
    NewTask,
    Outcome,
    Task,
    TaskState,
    WorkerInfo,
)


class Store(Protocol):
    """Async storage for workflow binaries, tasks, events, logs and leases."""

    @property
    def url(self) -> str:
        """The URL the store was opened with (passwords masked)."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...

    # -- schema ---------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Apply every pending migration, each in its own transaction.

        Returns the schema version afterwards. Safe to call concurrently from many
        processes: exactly one applies each migration.
        """
        ...

    async def schema_version(self) -> tuple[int, int]:
        """Return `(current, latest)`: the database's version and this code's newest."""
        ...

    # -- workflow binaries ----------------------------------------------------------------

    async def put_workflow(self, wasm: bytes, *, name: str | None = None) -> str:
        """Store a binary under its SHA-256 and return the hex digest. Idempotent."""
        ...

    async def get_workflow(self, workflow_hash: str) -> bytes:
        """Return the binary with this SHA-256 hex digest, or raise `NotFoundError`."""
        ...

    # -- tasks ----------------------------------------------------------------------------

    async def create_task(self, spec: NewTask) -> Task:
        """Insert a `ready` task and return it.

        With an `idempotency_key` that an existing task already has, return that task
        unchanged instead. A `seed` of 0 is replaced by a random non-zero 63-bit seed.
        Raises `NotFoundError` when the workflow binary is not stored.
        """
        ...

    async def get_task(self, task_id: int) -> Task:
        """Return the task, or raise `TaskNotFoundError`."""
        ...

    async def list_tasks(
        self,
        *,
        states: Sequence[TaskState] | None = None,
        limit: int = 100,
    ) -> list[Task]:
        """Return up to `limit` tasks, newest first, optionally only in `states`."""
        ...

    # -- workers and leases ---------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        """Record a live worker. Idempotent for the same id."""
        ...

    async def list_workers(self) -> list[WorkerInfo]:
        """Return every registered worker."""
        ...

    async def remove_worker(self, worker_id: str) -> None:
        """Forget a worker (it stopped, or it is known dead) and expire its leases now.

        Its active tasks become claimable at once. Idempotent.
        """
        ...

    async def claim(self, *, worker_id: str, limit: int, lease_seconds: float) -> list[Claim]:
        """Atomically claim up to `limit` runnable tasks for `worker_id`, oldest first.

        Runnable: `ready`; `suspended` with `wakeup_at` due; `active` with an expired
        lease. Each claimed task becomes `active`, owned by the worker, with a fresh lease
        token (strictly greater than any before) that expires `lease_seconds` from now,
        and `attempts` one higher. No task is ever handed to two claimers at once.
        """
        ...

    async def renew_leases(self, *, worker_id: str, lease_seconds: float) -> None:
        """Push back the expiry of every active task this worker owns. One statement."""
        ...

    async def next_wakeup(self) -> datetime | None:
        """When the next non-ready task becomes runnable: the earliest due timer or
        lease expiry. None when nothing is waiting on time."""
        ...

    async def wait_for_work(self, timeout: float) -> None:
        """Return when work may have become runnable, or after `timeout` seconds.

        Woken by task creation, `finish` with `Released`/`Suspended`, and lease removal,
        whether done by this process or (for shared databases) another one. Postgres
        uses LISTEN/NOTIFY; SQLite polls `PRAGMA data_version` cheaply; memory uses an
        in-process event. Spurious wake-ups are allowed; missed ones are not (callers
        re-check with `claim` and `next_wakeup` after every return).
        """
        ...

    # -- history and output ---------------------------------------------------------------

    async def load_history(self, task_id: int) -> list[Event]:
        """Return the task's events in index order."""
        ...

    async def append(
        self, lease: Lease, events: Sequence[Event], logs: Sequence[LogChunk]
    ) -> None:
        """Durably append events and log chunks in one transaction, fenced by `lease`.

        Event indexes must continue the history with no gap; a duplicate index raises
        `ConflictError` and writes nothing. A stale lease raises `LeaseLostError` and
        writes nothing. Log chunks get the next `seq` numbers.
        """
        ...

    async def finish(
        self,
        lease: Lease,
        outcome: Outcome,
        events: Sequence[Event] = (),
        logs: Sequence[LogChunk] = (),
    ) -> None:
        """End an attempt: append the last events and logs and apply `outcome`, atomically.

        `Completed`/`Failed` end the task; `Suspended` parks it (no owner, `wakeup_at`
        set); `Released` makes it `ready` for any worker. Fenced like `append`.
        """
        ...

    async def read_logs(self, task_id: int, *, after_seq: int = 0) -> list[LogChunk]:
        """Return the task's log chunks with `seq > after_seq`, in order."""
        ...
