"""The `Store` protocols: everything the engine asks of a database, by role.

`Store` is split by role (the queue and its leases, history, notifications, status,
and workflow SQL), so that a backend that lacks a capability says so in its type: the
memory store is a `Store` but not a `WorkflowSQL`, and the host checks for that role
with `isinstance` instead of meeting a refusal at run time.

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
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol, runtime_checkable

from durable.core.model import (
    Claim,
    Event,
    Lease,
    LogChunk,
    NewTask,
    Notification,
    Outcome,
    RunInfo,
    Task,
    TaskState,
    WorkerInfo,
)
from durable.core.queue import Queue, QueueSettings
from durable.core.schedule import Schedule, ScheduleSpec
from durable.core.side_writes import SideWrite
from durable.core.status import StatusValue
from durable.storage._end_watch import EndWatch
from durable.storage.guest import GuestResult, GuestValue


class GuestTransaction(Protocol):
    """A database transaction in which a workflow runs its own SQL (`durable.transaction`).

    Opened by `Store.begin_guest_transaction`; ended by exactly one `commit` or
    `rollback` (`rollback` may follow anything, and is then a no-op). Statements run
    with the workflow's privileges, which exclude durable's own tables. Calls must not
    overlap.
    """

    async def execute(
        self, sql: str, params: Sequence[GuestValue], *, max_bytes: int
    ) -> GuestResult:
        """Run one statement (`?` placeholders) and return its result.

        Raises:
            GuestSQLError: the statement failed; it changed nothing, and the transaction
                goes on unless the error's kind is "aborted". "too-large" when the rows
                would take more than `max_bytes` in their JSON form.
            StorageError: the database itself failed (the connection broke, say): the
                transaction is lost, and the attempt should end.
        """
        ...

    async def commit(self, events: Sequence[Event], logs: Sequence[LogChunk]) -> None:
        """Append `events` and `logs` as `append` does, fenced by the transaction's
        lease, in this transaction, and commit it: the workflow's changes and the events
        that record them are durable together, or not at all. (No side-write rides on
        it: the host commits everything recorded before a transaction begins.)

        Raises:
            GuestSQLError: the database refused the commit (a deferred constraint, or a
                statement aborted the transaction); everything was rolled back.
            LeaseLostError, ConflictError: as for `append`; everything was rolled back.
        """
        ...

    async def rollback(self) -> None:
        """Roll back (if still open) and release the connection. Idempotent; never
        raises for a connection that is already gone."""
        ...


class TaskQueue(Protocol):
    """The queue role: workflow binaries, tasks, workers, leases and the schema."""

    @property
    def url(self) -> str:
        """The URL the store was opened with (passwords masked)."""
        ...

    async def close(self) -> None:
        """Release connections. Idempotent."""
        ...

    async def migrate(self) -> int:
        """Apply every pending migration, each in its own transaction.

        Returns the schema version afterwards. Safe to call concurrently from many
        processes: exactly one applies each migration.
        """
        ...

    async def schema_version(self) -> tuple[int, int]:
        """Return `(current, latest)`: the database's version and this code's newest."""
        ...

    async def put_workflow(self, wasm: bytes, *, name: str | None = None) -> str:
        """Store a binary under its SHA-256 and return the hex digest. Idempotent."""
        ...

    async def get_workflow(self, workflow_hash: str) -> bytes:
        """Return the binary with this SHA-256 hex digest, or raise `NotFoundError`."""
        ...

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
        name_glob: str | None = None,
        parent_id: int | None = None,
    ) -> list[Task]:
        """Return up to `limit` tasks, newest first.

        Filters, all optional and combined with AND: `states`; `name_glob`, a shell
        pattern (`*`, `?`) matched against the whole name, case-sensitive; `parent_id`,
        the children of one task.
        """
        ...

    async def find_workflow(self, name: str) -> str:
        """Return the hash of the most recently stored binary named `name`.

        Raises `NotFoundError` when no binary has that name.
        """
        ...

    async def request_cancel(self, task_id: int) -> Task:
        """Ask for the task and all its unfinished descendants to be cancelled.

        A `ready` or `suspended` task becomes `cancelled` at once, with error
        {"kind": "Cancelled", ...}; its row keeps no owner. An `active` one gets
        `cancel_requested`, and its worker learns of it from `renew_leases` (or whoever
        claims it next sees the flag). Returns the task after the change.

        Raises:
            TaskNotFoundError: no such task.
            InvalidStateError: the task has already ended ("task 7 is already complete").
        """
        ...

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

    async def claim(
        self,
        *,
        worker_id: str,
        limit: int,
        lease_seconds: float,
        max_deaths: int | None = None,
        last_chances: int | None = None,
        affinity_grace: float = 0.0,
    ) -> list[Claim]:
        """Atomically claim up to `limit` runnable tasks for `worker_id`, oldest first.

        Runnable: `ready`; `suspended` with `wakeup_at` due; `active` with an expired
        lease. Each claimed task becomes `active`, owned by the worker, with a fresh lease
        token (strictly greater than any before) that expires `lease_seconds` from now,
        and `attempts` one higher. No task is ever handed to two claimers at once.

        Taking over an `active` task from another worker counts a worker death: its
        `deaths` goes one up (see `durable.storage.quarantine`); a worker claiming back
        a task whose lease it let lapse is alive, and counts none. With `max_deaths`,
        a task whose count reaches it is failed instead, in the same transaction
        (error kind "Quarantined"; a parent waiting on it wakes), and is not returned;
        it still takes one of the `limit` places. With `last_chances`, at most that
        many of the tasks handed out have one death left before quarantine
        (`deaths == max_deaths - 1` once claimed, for a `max_deaths` of 2 or more).

        Claim affinity: a task suspended with `Suspended(kept=True)` is held for the
        worker that suspended it (which keeps its instance live). Another worker's claim
        passes it over until `affinity_grace` seconds after it became runnable (a ready
        task: its `updated_at`; a timer: its `wakeup_at`); after that anyone may take it.
        Every claim clears the hold. Queued tasks are never held.

        A store may fill each claim's `notification` with the task's oldest pending
        notification, which its attempt then takes instead of asking `next_notification`
        once; only if nothing can have consumed it by the time the claim holds the task
        (it is what `next_notification` would answer then). None is always allowed.
        """
        ...

    async def renew_leases(self, *, worker_id: str, lease_seconds: float) -> list[int]:
        """Push back the expiry of every active task this worker owns.

        Returns the ids of those tasks that have `cancel_requested` set, so the worker
        can stop them.
        """
        ...

    async def next_wakeup(self, *, affinity_grace: float = 0.0) -> datetime | None:
        """When the next non-ready task becomes runnable: the earliest due timer or
        lease expiry; or a ready task held for a worker (see `claim`) becomes claimable
        by others, `affinity_grace` after it became ready. None when nothing is waiting
        on time."""
        ...

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - the protocol's shape
        """Return when work may have become runnable, or after `timeout` seconds.

        Woken by task creation, `finish` with `Released`/`Suspended`, and lease removal,
        whether done by this process or (for shared databases) another one. Postgres
        uses LISTEN/NOTIFY; SQLite the wake-up sockets beside its file, with a slow look
        at `PRAGMA data_version` under them; memory uses an in-process event. Spurious
        wake-ups are allowed; missed ones are not (callers re-check with `claim` and
        `next_wakeup` after every return).
        """
        ...


class HistoryStore(Protocol):
    """The history role: events, output and the end of attempts, fenced by a lease."""

    async def load_history(self, task_id: int) -> list[Event]:
        """Return the task's events in index order."""
        ...

    async def load_attempt(self, task_id: int) -> tuple[list[Event], int]:
        """What an attempt starts from: `load_history`, and `logged_bytes` at its end,
        read together (SQLite: one trip to its thread; Postgres: one statement). The
        lease keeps other writers out between the two reads."""
        ...

    async def history_length(self, task_id: int) -> int:
        """How many events the task's history holds (0 for an unknown task): one
        indexed read, where `load_history` would read them all."""
        ...

    async def append(
        self,
        lease: Lease,
        events: Sequence[Event],
        logs: Sequence[LogChunk],
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        """Durably append events and log chunks in one transaction, fenced by `lease`.

        Event indexes must continue the history with no gap; a duplicate index raises
        `ConflictError` and writes nothing. A stale lease raises `LeaseLostError` and
        writes nothing. Log chunks get the next `seq` numbers. Every side-write in
        `writes` (`durable.core.side_writes`) is applied in the same transaction: a
        `ConsumeNotification` of one already consumed, or of another task, raises
        `ConflictError` and writes nothing; a `SetStatus` sets the task's value for its
        key; a `CancelChild` cancels a running child of the task as `request_cancel`
        would (an ended child, or a task that is not its child, is left as it is).
        """
        ...

    async def finish(
        self,
        lease: Lease,
        outcome: Outcome,
        events: Sequence[Event] = (),
        logs: Sequence[LogChunk] = (),
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        """End an attempt: append the last events and logs and apply `outcome`, atomically.

        `Completed`/`Failed`/`Cancelled` end the task (result or error stored, no
        owner), and if it has a parent suspended with `on_event`, the parent becomes
        runnable. `Suspended` parks it (no owner, `wakeup_at` set, `on_event`
        remembered). No wake-up is ever lost: a notification to the task, or the end of
        one of its children, that happens while the task is `active` leaves a "wake
        pending" mark (cleared by `claim`), and a later `Suspended(on_event=True)` then
        leaves the task runnable at once. `Released` makes it `ready` for any worker.
        `ContinuedAsNew` ends the task's run n and starts run n + 1: the run's events
        are kept as run n's (`RunStore`), the task is `ready` with `run` one higher, the
        new input and an empty history, and its output so far no longer counts for
        `logged_bytes`. Every outcome resets the task's `deaths` to 0, except
        `Released(started=False)`, which keeps it. Fenced like `append`; `writes` as in
        `append`.
        """
        ...

    async def read_logs(
        self, task_id: int, *, after_seq: int = 0, limit: int | None = None
    ) -> list[LogChunk]:
        """Return the task's log chunks with `seq > after_seq`, in order: up to `limit`
        of them (None: all), so that a reader can page through a large log."""
        ...

    async def logged_bytes(self, task_id: int, position: int) -> int:
        """How many bytes of guest output are logged at `position` (>= 0): the total
        `data` length of the task's chunks with exactly that position, stdout and
        stderr together (host notes sit below every position, at `NOTE_POSITION`).

        An attempt that starts from a history of `position` events skips that many
        bytes of what its guest prints there (`durable.core.output`).
        """
        ...


class NotificationStore(Protocol):
    """The notification role: messages queued for a task, consumed exactly once."""

    async def notify(
        self, task_id: int, event: str, data: str, *, key: str | None = None
    ) -> Notification:
        """Queue a notification (`data` is JSON text) for the task and return it.

        A task suspended with `on_event` becomes runnable at once. With a `key`, a
        second call with the same key for the same task queues nothing and returns the
        first notification (workflows send with a key, so a replay never sends twice).

        Raises:
            TaskNotFoundError: no such task.
            InvalidStateError: the task has ended (message: "task 7 is already complete").
        """
        ...

    async def next_notification(
        self, task_id: int, *, event: str | None = None
    ) -> Notification | None:
        """The oldest notification not yet consumed, optionally only with this `event`."""
        ...


class StatusStore(Protocol):
    """The status role: the latest status value per key of each task."""

    async def read_status(self, task_id: int) -> list[StatusValue]:
        """The task's status values (`durable.core.status`), ordered by key.

        A value appears exactly when the event that set it is committed (it is applied
        as a `SetStatus` side-write of `append` or `finish`). No values, or no such
        task: an empty list.
        """
        ...


class Store(TaskQueue, HistoryStore, NotificationStore, StatusStore, Protocol):
    """Async storage for workflow binaries, tasks, events, logs, leases and status.

    Every backend has these roles. Workflow SQL is a role of its own
    (`WorkflowSQL`), which the memory store does not have: the host checks for it by
    type, and a workflow that asks for it there fails with a clear error.
    """


@runtime_checkable
class RunStore(Protocol):
    """The runs role: the ended runs of a task (`durable.continue_as_new`), kept.

    `load_history` reads only the current run, so a replay never reads old runs.
    """

    async def list_runs(self, task_id: int) -> list[RunInfo]:
        """The task's ended runs, oldest first (none for a task still in run 1)."""
        ...

    async def load_run_history(self, task_id: int, run: int) -> list[Event]:
        """The events of run `run` of the task (ended, or the current one), in order;
        [] for no such run."""
        ...


@runtime_checkable
class WorkflowSQL(Protocol):
    """The workflow SQL role: transactions in which a workflow runs its own SQL."""

    async def begin_guest_transaction(self, lease: Lease) -> GuestTransaction:
        """Open a transaction for the SQL of the task that `lease` holds.

        Its statements cannot read or change durable's own tables; its `commit` appends
        the task's events in the same database transaction, fenced by `lease`. The
        caller must end it (`commit` or `rollback`), whatever happens to the attempt.

        Raises:
            ConfigurationError: the database is not set up for workflow SQL (Postgres:
                the `durable_guest` role is missing).
            StorageError: no transaction could be opened (the database is locked, say).
        """
        ...


@runtime_checkable
class SqlStore(Store, WorkflowSQL, Protocol):
    """A store with every role, workflow SQL included (SQLite, Postgres)."""


@runtime_checkable
class EndSignals(Protocol):
    """The end-signal role: hear of a task's end when it is committed, not by polling.

    Every backend has it (memory: in-process; SQLite: wake-up sockets beside the file;
    Postgres: LISTEN); a store wrapper may not, and callers then poll.
    """

    def watch_end(self, task_id: int) -> AbstractAsyncContextManager[EndWatch]:
        """A signal, for the block's duration, that `task_id` may have ended.

        Registered when the block starts, so a waiter that enters it and then reads
        the task misses no end committed after that read, in this process or (for a
        shared database) another one. Spurious wake-ups are allowed; a lost one (a
        dropped datagram or connection) only delays: wait with a timeout and re-read.
        A watch whose `task` is set carries the ended row itself, read by this store
        in the transaction that ended it: no need to re-read then.
        """
        ...


@runtime_checkable
class ScheduleStore(Protocol):
    """The schedule role (SQLite, Postgres): schedules whose ticks launch tasks.

    A tick is claimed in the same transaction that creates its task, whose
    idempotency key is (schedule, tick): however many workers run passes, and however
    they die, each tick launches at most one task, and a pass that dies leaves its
    ticks for the next one. See `durable.core.schedule` for when ticks fall and what
    the overlap and catch-up policies do.
    """

    async def add_schedule(self, spec: ScheduleSpec) -> Schedule:
        """Store a new schedule; its first tick is the first one after now.

        Raises:
            ConflictError: a schedule with this name exists.
            NotFoundError: no workflow binary is stored under `spec.workflow`.
        """
        ...

    async def get_schedule(self, name: str) -> Schedule:
        """The schedule, or `NotFoundError`."""
        ...

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        ...

    async def pause_schedule(self, name: str, *, paused: bool) -> Schedule:
        """Pause (no tick fires) or resume it; on resume, the ticks missed meanwhile
        follow its catch-up policy. Raises `NotFoundError`."""
        ...

    async def delete_schedule(self, name: str) -> None:
        """Forget the schedule (its tasks stay). Raises `NotFoundError`."""
        ...

    async def trigger_schedule(self, name: str) -> Task:
        """Launch one task of the schedule now, as a tick at this instant would, whatever
        its overlap policy says. Raises `NotFoundError`."""
        ...

    async def fire_schedules(self, *, limit: int = 20) -> datetime | None:
        """One scheduler pass: fire the due ticks of up to `limit` schedules.

        Returns when the next tick of any unpaused schedule is due (None: no schedule),
        so a worker knows how long it may sleep.
        """
        ...


@runtime_checkable
class QueueStore(Protocol):
    """The queue role (SQLite, Postgres): queue settings, and pausing tasks.

    Tasks go into a queue at `create_task` (`NewTask.queue`); `claim` hands out a
    queued task only within its queue's limits, checked in the claiming transaction.
    See `durable.core.queue`.
    """

    async def set_queue(self, settings: QueueSettings) -> Queue:
        """Create the queue or replace its settings; applies to tasks already waiting."""
        ...

    async def get_queue(self, name: str) -> Queue:
        """The queue and its counts, or `NotFoundError`."""
        ...

    async def list_queues(self) -> list[Queue]:
        """Every queue (made by `set_queue` or by a launch onto it), by name."""
        ...

    async def pause_task(self, task_id: int, *, paused: bool) -> Task:
        """Pause the task (no worker claims it; a running one is parked at its next
        durable call and handed back) or resume it. Its timers keep their deadlines.

        Raises:
            TaskNotFoundError: no such task.
            InvalidStateError: the task has ended.
        """
        ...

    async def paused_tasks(self, worker_id: str) -> list[int]:
        """The active tasks of `worker_id` that have been paused: the worker parks them."""
        ...
