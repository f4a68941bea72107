"""`MemoryStore`: a complete `Store` kept in Python dicts, for tests and throwaway runs.

It is a real backend, not a mock: it honours every promise in `durable.storage.base`
and runs the same contract suite (`durable.storage.testing`) as SQLite and Postgres.
Nothing survives the process, so it is no use for crash recovery across processes.

Atomicity comes from the event loop rather than a lock: each method yields once at its
start (so concurrent callers really interleave, as they would on a database) and then
runs to the end without another `await`, so no other coroutine sees a half-done write.
Every write checks everything first and changes rows only after, so a refused write
leaves no trace.

Extras for tests: an injectable `clock` (lease expiry and timers without sleeping),
`calls` (the names of the methods called, in order) and `reset()`.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import assert_never

import anyio
import anyio.lowlevel

from durable.core import side_writes
from durable.core.model import (
    Cancelled,
    Claim,
    Completed,
    ContinuedAsNew,
    Event,
    Failed,
    Lease,
    LogChunk,
    NewTask,
    Notification,
    Outcome,
    Released,
    RunInfo,
    Suspended,
    Task,
    TaskState,
    WorkerInfo,
)
from durable.core.side_writes import CancelChild, ConsumeNotification, SetStatus, SideWrite
from durable.core.status import StatusValue
from durable.core.task_error import CANCELLED_ON_REQUEST
from durable.errors import (
    ConflictError,
    InvalidStateError,
    LeaseLostError,
    NotFoundError,
    TaskNotFoundError,
)
from durable.storage import quarantine
from durable.storage._end_watch import EndWaiters, EndWatch
from durable.storage._memory_fork import MemoryForks
from durable.storage._memory_rows import EndedRun
from durable.storage._memory_rows import NotificationRow as _NotificationRow
from durable.storage._memory_rows import TaskRow as _TaskRow
from durable.storage._memory_rows import aware as _aware
from durable.storage._memory_rows import ready_task as _ready_task
from durable.storage.fork import TaskOrigin
from durable.storage.moves import BinaryMove

__all__ = ["MemoryStore"]

#: MemoryStore has no migrations; its schema is always the newest.
_SCHEMA_VERSION = 1
_CANCELLED = CANCELLED_ON_REQUEST.to_json()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MemoryStore(MemoryForks):
    """A `Store` that keeps everything in memory.

    Args:
        clock: returns the current time as an aware UTC datetime; tests pass a fake one
            to expire leases and fire timers without sleeping. Defaults to the wall clock.

    Attributes:
        calls: the name of every `Store` method called, in order (for assertions).
    """

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        """Create an empty store."""
        self._clock = clock or _utcnow
        self.calls: list[str] = []
        self.reset()
        # A signal for wait_for_work, created lazily: an anyio.Event needs a running loop.
        self._changed: anyio.Event | None = None
        self._ends = EndWaiters()

    def reset(self) -> None:
        """Forget every workflow, task, event, log, notification, worker and call."""
        self.calls.clear()
        self._workflows: dict[str, bytes] = {}
        self._names: dict[str, str] = {}  # workflow name -> the hash last stored under it
        self._versions: dict[str, set[str]] = {}  # workflow name -> every hash stored under it
        self._origins: dict[int, TaskOrigin] = {}  # a fork -> where it came from
        self._moves: dict[int, list[BinaryMove]] = {}  # a task -> its binary moves
        self._tasks: dict[int, _TaskRow] = {}
        self._keys: dict[str, int] = {}  # idempotency key -> task id
        self._notifications: dict[int, _NotificationRow] = {}  # by seq
        self._statuses: dict[int, dict[str, StatusValue]] = {}  # by task, then key
        self._workers: dict[str, WorkerInfo] = {}
        self._last_id = 0
        self._last_seq = 0
        # For wait_for_work: notable changes so far, and how many it saw at its last return.
        self._changes = 0
        self._seen = 0

    @property
    def url(self) -> str:
        """Always `memory://`."""
        return "memory://"

    async def _enter(self, name: str) -> None:
        # Yield once so that concurrent callers interleave between operations, like
        # they would against a database; the rest of each method never awaits.
        self.calls.append(name)
        await anyio.lowlevel.checkpoint()

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("MemoryStore clock must return an aware datetime")
        return now.astimezone(UTC)

    async def close(self) -> None:
        """Nothing to release. Idempotent; the data stays readable for assertions."""
        self.calls.append("close")

    # -- schema ---------------------------------------------------------------------------

    async def migrate(self) -> int:
        """Nothing to migrate: return the (only) schema version."""
        await self._enter("migrate")
        return _SCHEMA_VERSION

    async def schema_version(self) -> tuple[int, int]:
        """Return `(1, 1)`: a memory store is always current."""
        await self._enter("schema_version")
        return _SCHEMA_VERSION, _SCHEMA_VERSION

    # -- workflow binaries ----------------------------------------------------------------

    async def put_workflow(self, wasm: bytes, *, name: str | None = None) -> str:
        """Store a binary under its SHA-256 and return the hex digest. Idempotent."""
        await self._enter("put_workflow")
        digest = hashlib.sha256(wasm).hexdigest()
        self._workflows.setdefault(digest, bytes(wasm))
        if name is not None:
            self._names[name] = digest
            self._versions.setdefault(name, set()).add(digest)
        return digest

    async def get_workflow(self, workflow_hash: str) -> bytes:
        """Return the stored binary, or raise `NotFoundError`."""
        await self._enter("get_workflow")
        try:
            return self._workflows[workflow_hash]
        except KeyError:
            raise NotFoundError(f"workflow {workflow_hash} is not stored") from None

    async def find_workflow(self, name: str) -> str:
        """Return the hash of the binary most recently stored as `name`."""
        await self._enter("find_workflow")
        try:
            return self._names[name]
        except KeyError:
            raise NotFoundError(f"no workflow named {name!r} is stored") from None

    # -- tasks ----------------------------------------------------------------------------

    async def create_task(self, spec: NewTask) -> Task:
        """Insert a `ready` task, or return the one that already has its idempotency key.

        Raises:
            NotFoundError: the workflow binary is not stored.
            TaskNotFoundError: `parent_id` names no task.
        """
        await self._enter("create_task")
        if spec.idempotency_key is not None and spec.idempotency_key in self._keys:
            return self._tasks[self._keys[spec.idempotency_key]].task
        if spec.workflow_hash not in self._workflows:
            raise NotFoundError(f"workflow {spec.workflow_hash} is not stored")
        if spec.parent_id is not None and spec.parent_id not in self._tasks:
            raise TaskNotFoundError(spec.parent_id)
        now = self._now()
        self._last_id += 1
        task = _ready_task(
            self._last_id,
            now,
            name=spec.name,
            workflow_hash=spec.workflow_hash,
            entry=spec.entry,
            input=spec.input,
            seed=spec.seed or secrets.randbits(63) or 1,
            parent_id=spec.parent_id,
            idempotency_key=spec.idempotency_key,
            deadline_at=None if spec.timeout is None else now + timedelta(seconds=spec.timeout),
        )
        self._tasks[task.id] = _TaskRow(task=task)
        if spec.idempotency_key is not None:
            self._keys[spec.idempotency_key] = task.id
        self._notify()
        return task

    async def get_task(self, task_id: int) -> Task:
        """Return the task, or raise `TaskNotFoundError`."""
        await self._enter("get_task")
        return self._row(task_id).task

    async def list_tasks(
        self,
        *,
        states: Sequence[TaskState] | None = None,
        limit: int = 100,
        name_glob: str | None = None,
        parent_id: int | None = None,
    ) -> list[Task]:
        """Return up to `limit` tasks, newest first, filtered by state, name and parent."""
        await self._enter("list_tasks")
        wanted = None if states is None else frozenset(states)
        found: list[Task] = []
        for task_id in sorted(self._tasks, reverse=True):
            task = self._tasks[task_id].task
            if len(found) >= limit:
                break
            if (
                (wanted is None or task.state in wanted)
                and (name_glob is None or fnmatch.fnmatchcase(task.name, name_glob))
                and (parent_id is None or task.parent_id == parent_id)
            ):
                found.append(task)
        return found

    def _row(self, task_id: int) -> _TaskRow:
        try:
            return self._tasks[task_id]
        except KeyError:
            raise TaskNotFoundError(task_id) from None

    def _running(self, task_id: int) -> _TaskRow:
        row = self._row(task_id)
        if row.task.state.is_terminal:
            raise InvalidStateError(f"task {task_id} is already {row.task.state.value}")
        return row

    # -- notifications and cancellation ---------------------------------------------------

    async def notify(
        self, task_id: int, event: str, data: str, *, key: str | None = None
    ) -> Notification:
        """Queue a notification and wake the task if it waits for one."""
        await self._enter("notify")
        if key is not None:
            for row in self._notifications.values():
                if row.notification.task_id == task_id and row.key == key:
                    return row.notification
        task = self._running(task_id)
        self._last_seq += 1
        note = Notification(
            task_id=task_id, seq=self._last_seq, event=event, data=data, created_at=self._now()
        )
        self._notifications[note.seq] = _NotificationRow(notification=note, key=key)
        self._wake(task)
        return note

    async def next_notification(
        self, task_id: int, *, event: str | None = None
    ) -> Notification | None:
        """The oldest notification not yet consumed, optionally only with this `event`."""
        await self._enter("next_notification")
        return self._oldest_pending(task_id, event)

    async def request_cancel(self, task_id: int) -> Task:
        """Cancel the task and its unfinished descendants (active ones are flagged)."""
        await self._enter("request_cancel")
        self._running(task_id)
        self._cancel_tree(task_id, self._now())
        return self._tasks[task_id].task

    def _cancel_tree(self, task_id: int, now: datetime) -> None:
        """End the ready and suspended ones of the task's family; flag the active ones."""
        tree = [task_id]
        for parent in tree:  # grows as it goes: a breadth-first walk down the family
            tree.extend(t for t, row in self._tasks.items() if row.task.parent_id == parent)
        ended: list[_TaskRow] = []
        for row in (self._tasks[t] for t in tree):
            if row.task.state in (TaskState.READY, TaskState.SUSPENDED):
                self._end(row, TaskState.CANCELLED, None, _CANCELLED, now)
                ended.append(row)
            elif row.task.state is TaskState.ACTIVE:
                row.change(cancel_requested=True, updated_at=now)
        for row in ended:
            self._wake_parent(row)
        self._notify()

    def _wake(self, row: _TaskRow) -> None:
        """A notification or a child's end: run a task waiting on events, or mark it."""
        if row.task.state is TaskState.SUSPENDED and row.on_event:
            row.on_event = False
            row.change(state=TaskState.READY, wakeup_at=None, updated_at=self._now())
            self._notify()
        elif row.task.state is TaskState.ACTIVE:
            row.wake_pending = True

    def _wake_parent(self, row: _TaskRow) -> None:
        if row.task.parent_id is not None and row.task.parent_id in self._tasks:
            self._wake(self._tasks[row.task.parent_id])

    # -- workers and leases ---------------------------------------------------------------

    async def register_worker(self, info: WorkerInfo) -> None:
        """Record a live worker (the latest registration for an id wins). Idempotent."""
        await self._enter("register_worker")
        self._workers[info.id] = info

    async def list_workers(self) -> list[WorkerInfo]:
        """Return every registered worker, oldest first."""
        await self._enter("list_workers")
        return sorted(self._workers.values(), key=lambda w: (w.started_at, w.id))

    async def remove_worker(self, worker_id: str) -> None:
        """Forget the worker and expire its leases now. Idempotent."""
        await self._enter("remove_worker")
        self._workers.pop(worker_id, None)
        now = self._now()
        for row in self._owned_by(worker_id):
            row.lease_expires_at = now
        self._notify()

    def _owned_by(self, worker_id: str) -> Iterable[_TaskRow]:
        return (
            row
            for row in self._tasks.values()
            if row.task.state is TaskState.ACTIVE and row.task.owner == worker_id
        )

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
        """Claim up to `limit` runnable tasks, oldest first (atomic: no await inside).

        A takeover counts a worker death; at `max_deaths` the task is failed instead
        (`durable.storage.quarantine`), and at most `last_chances` tasks with one death left go out.
        A task held for another worker is passed over for `affinity_grace` seconds.
        """
        await self._enter("claim")
        now = self._now()
        claims: list[Claim] = []
        taken = 0  # claimed or quarantined: both take a place of `limit`
        last = quarantine.last_chance(max_deaths)
        for task_id in sorted(self._tasks):
            if taken >= limit:
                break
            row = self._tasks[task_id]
            if not self._runnable(row, now):
                continue
            if row.affinity not in (None, worker_id):
                since = row.task.wakeup_at or row.task.updated_at  # when it became runnable
                if since > now - timedelta(seconds=affinity_grace):
                    continue  # held for the worker that keeps its instance live
            # A takeover from another worker: this one, claiming back a task whose lease
            # it let lapse, is alive, so that is no death.
            takeover = row.task.state is TaskState.ACTIVE and row.task.owner != worker_id
            deaths = row.task.deaths + takeover
            if (
                deaths == last
                and last_chances is not None
                and last_chances <= sum(c.task.deaths == last for c in claims)
            ):
                continue  # left for a worker without a task on its last chance
            taken += 1
            row.lease_token += 1
            if takeover and max_deaths is not None and deaths >= max_deaths:
                assert row.lease_expires_at is not None  # an expired lease, when noticed
                error = quarantine.error_json(task_id, max_deaths, row.lease_expires_at)
                row.change(deaths=deaths)
                self._end(row, TaskState.FAILED, None, error, now)
                self._wake_parent(row)
                self._notify()
                continue
            row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            row.on_event = row.wake_pending = False
            row.affinity = None
            row.change(
                state=TaskState.ACTIVE,
                owner=worker_id,
                attempts=row.task.attempts + 1,
                deaths=deaths,
                wakeup_at=None,
                updated_at=now,
            )
            lease = Lease(task_id=task_id, worker_id=worker_id, token=row.lease_token)
            claims.append(
                Claim(
                    task=row.task,
                    lease=lease,
                    history_length=len(row.events),
                    notification=self._oldest_pending(task_id),
                )
            )
        return claims

    def _oldest_pending(self, task_id: int, event: str | None = None) -> Notification | None:
        """The task's oldest unconsumed notification (only `event`, if given)."""
        for seq in sorted(self._notifications):
            row = self._notifications[seq]
            note = row.notification
            if note.task_id == task_id and not row.consumed and event in (None, note.event):
                return note
        return None

    @staticmethod
    def _runnable(row: _TaskRow, now: datetime) -> bool:
        task = row.task
        if task.state is TaskState.READY:
            return True
        if task.state is TaskState.SUSPENDED:
            return task.wakeup_at is not None and task.wakeup_at <= now
        if task.state is TaskState.ACTIVE:
            return row.lease_expires_at is not None and row.lease_expires_at <= now
        return False

    async def renew_leases(self, *, worker_id: str, lease_seconds: float) -> list[int]:
        """Push back this worker's leases; return its tasks with a cancel request."""
        await self._enter("renew_leases")
        expires = self._now() + timedelta(seconds=lease_seconds)
        cancel: list[int] = []
        for row in self._owned_by(worker_id):
            row.lease_expires_at = expires
            if row.task.cancel_requested:
                cancel.append(row.task.id)
        return sorted(cancel)

    async def next_wakeup(self, *, affinity_grace: float = 0.0) -> datetime | None:
        """The earliest suspended `wakeup_at`, active lease expiry or end of a held
        ready task's affinity grace, or None."""
        await self._enter("next_wakeup")
        times: list[datetime] = []
        for row in self._tasks.values():
            if row.task.state is TaskState.SUSPENDED and row.task.wakeup_at is not None:
                times.append(row.task.wakeup_at)
            elif row.task.state is TaskState.ACTIVE and row.lease_expires_at is not None:
                times.append(row.lease_expires_at)
            elif row.task.state is TaskState.READY and row.affinity is not None:
                times.append(row.task.updated_at + timedelta(seconds=affinity_grace))
        return min(times, default=None)

    async def wait_for_work(self, timeout: float) -> None:  # noqa: ASYNC109 - Store protocol
        """Return when work may have appeared since the last return, or after `timeout`.

        Task creation, release, suspension, wake-ups and worker removal count as work.
        A change made between two calls is never missed: the next call returns at once.
        With several waiters on one store, the first to wake consumes the news and the
        others sleep on until the next change or their timeout (callers poll anyway).
        """
        await self._enter("wait_for_work")
        if self._changes == self._seen:
            if self._changed is None:
                self._changed = anyio.Event()
            with anyio.move_on_after(timeout):
                await self._changed.wait()
        self._seen = self._changes

    def _notify(self) -> None:
        self._changes += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # -- history and output ---------------------------------------------------------------

    async def load_history(self, task_id: int) -> list[Event]:
        """Return the task's events in index order ([] for an unknown task)."""
        await self._enter("load_history")
        row = self._tasks.get(task_id)
        return [] if row is None else list(row.events)

    async def load_attempt(self, task_id: int) -> tuple[list[Event], int]:
        """The history, and the output bytes logged at its end."""
        history = await self.load_history(task_id)
        return history, await self.logged_bytes(task_id, len(history))

    async def history_length(self, task_id: int) -> int:
        """How many events the task's history holds."""
        await self._enter("history_length")
        row = self._tasks.get(task_id)
        return 0 if row is None else len(row.events)

    async def append(
        self,
        lease: Lease,
        events: Sequence[Event],
        logs: Sequence[LogChunk],
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        """Append events and log chunks and consume notifications, fenced, all or nothing."""
        await self._enter("append")
        row = self._fenced(lease)
        self._check_writes(row, events, writes)
        self._write(row, events, logs, writes, self._now())

    async def finish(
        self,
        lease: Lease,
        outcome: Outcome,
        events: Sequence[Event] = (),
        logs: Sequence[LogChunk] = (),
        *,
        writes: Sequence[SideWrite] = (),
    ) -> None:
        """Append the last events and logs and apply `outcome`, all or nothing.

        A task that ends wakes its parent if the parent waits `on_event`. A `Suspended`
        task that was asked to cancel, or (with `on_event`) was woken while it ran,
        becomes `ready` instead, so it runs again at once.
        """
        await self._enter("finish")
        row = self._fenced(lease)
        self._check_writes(row, events, writes)
        now = self._now()
        self._write(row, events, logs, writes, now)
        if outcome != Released(started=False):  # a finished attempt: its worker lived
            row.change(deaths=0)
        match outcome:
            case Completed(result=result):
                self._end(row, TaskState.COMPLETE, result, None, now)
            case Failed(error=error):
                self._end(row, TaskState.FAILED, None, error, now)
            case Cancelled(error=error):
                self._end(row, TaskState.CANCELLED, None, error, now)
            case Suspended(wakeup_at=wakeup_at, on_event=on_event, kept=kept):
                row.lease_expires_at = None
                row.affinity = lease.worker_id if kept else None
                if row.task.cancel_requested or (on_event and row.wake_pending):
                    row.change(state=TaskState.READY, owner=None, updated_at=now)
                else:
                    row.on_event = on_event
                    row.change(
                        state=TaskState.SUSPENDED,
                        owner=None,
                        wakeup_at=_aware(wakeup_at),
                        updated_at=now,
                    )
            case Released():
                row.lease_expires_at = None
                row.change(state=TaskState.READY, owner=None, updated_at=now)
            case ContinuedAsNew(input=text):
                self._continue(row, text, now)
                # Status values carry over; their positions were the old run's.
                carried = self._statuses.get(row.task.id, {})
                for key, value in carried.items():
                    carried[key] = dataclasses.replace(value, position=-1)
            case _:
                assert_never(outcome)
        if row.task.state.is_terminal:
            self._wake_parent(row)
        self._notify()

    @staticmethod
    def _continue(row: _TaskRow, text: str, now: datetime) -> None:
        """Keep the run's history as run n; the task is ready at run n + 1 on `text`."""
        task = row.task
        info = RunInfo(run=task.run, input=task.input, events=len(row.events), ended_at=now)
        row.runs.append(EndedRun(info=info, events=row.events, log_base=row.log_base))
        row.events = []
        row.log_base = len(row.logs)
        row.lease_expires_at = None
        row.on_event = False
        row.wake_pending = False
        row.change(
            state=TaskState.READY,
            run=task.run + 1,
            input=text,
            owner=None,
            wakeup_at=None,
            updated_at=now,
        )

    async def list_runs(self, task_id: int) -> list[RunInfo]:
        """The task's ended runs, oldest first (`RunStore`)."""
        await self._enter("list_runs")
        row = self._tasks.get(task_id)
        return [] if row is None else [ended.info for ended in row.runs]

    async def load_run_history(self, task_id: int, run: int) -> list[Event]:
        """The events of run `run` of the task, ended or current (`RunStore`)."""
        await self._enter("load_run_history")
        row = self._tasks.get(task_id)
        if row is None:
            return []
        if run == row.task.run:
            return list(row.events)
        return next((list(e.events) for e in row.runs if e.info.run == run), [])

    def _end(
        self, row: _TaskRow, state: TaskState, result: str | None, error: str | None, now: datetime
    ) -> None:
        row.lease_expires_at = None
        row.on_event = False
        row.change(
            state=state, result=result, error=error, owner=None, wakeup_at=None, updated_at=now
        )
        self._ends.ended(row.task.id)

    @asynccontextmanager
    async def watch_end(self, task_id: int) -> AsyncIterator[EndWatch]:
        """A signal that `task_id` may have ended, for the block's duration (`EndSignals`)."""
        with self._ends.watch(task_id) as watch:
            yield watch

    async def read_logs(
        self, task_id: int, *, after_seq: int = 0, limit: int | None = None
    ) -> list[LogChunk]:
        """Return up to `limit` of the task's log chunks with `seq > after_seq`, in order."""
        await self._enter("read_logs")
        row = self._tasks.get(task_id)
        start = max(after_seq, 0)  # seq is the chunk's index + 1
        end = None if limit is None else start + max(limit, 0)
        return [] if row is None else row.logs[start:end]

    async def logged_bytes(self, task_id: int, position: int) -> int:
        """Bytes of guest output logged at `position`."""
        await self._enter("logged_bytes")
        row = self._tasks.get(task_id)
        # Only the current run's output: each run starts again at position 0.
        logs = [] if row is None else row.logs[row.log_base :]
        return sum(len(c.data) for c in logs if c.position == position)

    async def read_status(self, task_id: int) -> list[StatusValue]:
        """The task's status values, ordered by key."""
        await self._enter("read_status")
        values = self._statuses.get(task_id, {})
        return [values[key] for key in sorted(values)]

    def _fenced(self, lease: Lease) -> _TaskRow:
        """The task row, if `lease` is still the one in force; else `LeaseLostError`."""
        row = self._tasks.get(lease.task_id)
        if (
            row is None
            or row.task.state is not TaskState.ACTIVE
            or row.task.owner != lease.worker_id
            or row.lease_token != lease.token
        ):
            raise LeaseLostError(lease.task_id)
        return row

    def _check_writes(
        self, row: _TaskRow, events: Sequence[Event], writes: Sequence[SideWrite]
    ) -> None:
        """Refuse, before changing anything, a gap, a repeat or a notification not pending."""
        start = len(row.events)
        indexes = [event.index for event in events]
        if indexes != list(range(start, start + len(indexes))):
            raise ConflictError(
                f"events {indexes} do not continue the history of task {row.task.id} "
                f"(next event index is {start})"
            )
        consumed = side_writes.consumed(writes)
        pending = {
            seq
            for seq in consumed
            if seq in self._notifications
            and self._notifications[seq].notification.task_id == row.task.id
            and not self._notifications[seq].consumed
        }
        if len(pending) != len(consumed):
            raise ConflictError(
                f"notifications {list(consumed)} are not all pending for task {row.task.id}"
            )

    def _write(
        self,
        row: _TaskRow,
        events: Sequence[Event],
        logs: Sequence[LogChunk],
        writes: Sequence[SideWrite],
        now: datetime,
    ) -> None:
        row.events.extend(dataclasses.replace(event, created_at=now) for event in events)
        seq = len(row.logs)
        for offset, chunk in enumerate(logs, start=1):
            data = bytes(chunk.data)
            row.logs.append(dataclasses.replace(chunk, data=data, seq=seq + offset, created_at=now))
        for write in writes:
            match write:
                case ConsumeNotification(seq=seq):
                    self._notifications[seq].consumed = True
                case SetStatus():
                    statuses = self._statuses.setdefault(row.task.id, {})
                    statuses[write.key] = StatusValue(
                        key=write.key, value=write.value, position=write.position, updated_at=now
                    )
                case CancelChild(task_id=child_id):
                    child = self._tasks.get(child_id)
                    if (
                        child is not None
                        and child.task.parent_id == row.task.id
                        and not child.task.state.is_terminal
                    ):
                        self._cancel_tree(child_id, now)
                case _:
                    assert_never(write)
