"""The value objects every layer shares: tasks, events, log chunks, leases.

They are frozen, slotted and keyword-only so that a value read from storage cannot be
changed behind the store's back, and so that adding a field never silently shifts a
positional argument. Times are timezone-aware UTC datetimes; payloads are JSON text,
kept as text so that what was recorded is byte-for-byte what replay returns.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class TaskState(enum.StrEnum):
    """Where a task is in its life. `ready -> active -> (suspended -> ready ...) -> end`."""

    READY = "ready"  # waiting for a worker to claim it
    ACTIVE = "active"  # claimed by a worker, which holds a lease on it
    SUSPENDED = "suspended"  # parked until `wakeup_at`, a notification or a child
    COMPLETE = "complete"  # finished with a result
    FAILED = "failed"  # finished with an error
    CANCELLED = "cancelled"  # stopped on request

    @property
    def is_terminal(self) -> bool:
        """Whether the task has ended and will never run again."""
        return self in _TERMINAL


_TERMINAL = frozenset({TaskState.COMPLETE, TaskState.FAILED, TaskState.CANCELLED})


class Stream(enum.StrEnum):
    """Which guest output stream a log chunk came from."""

    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTask:
    """What a client asks for when it launches a task."""

    name: str  # a human label; need not be unique
    workflow_hash: str  # SHA-256 hex of the stored workflow binary
    input: str  # JSON text handed to the entry function
    entry: str = ""  # entry function name; "" means the workflow's default entry
    seed: int = 0  # per-task entropy seed (63 bits); 0 asks the store to pick one
    parent_id: int | None = None  # the task that spawned this one, if any
    idempotency_key: str | None = None  # launching twice with one key returns one task
    timeout: float | None = None  # seconds from launch after which the task fails
    # Flow control (durable/core/queue.py): the queue the task waits in, its key there
    # (for the per-key limit), its priority (None: the queue's default; higher first),
    # and a debounce key: launching again with that key within `debounce` seconds
    # replaces the waiting task's input and restarts its wait, instead of adding a task.
    queue: str | None = None
    queue_key: str | None = None
    priority: int | None = None
    debounce_key: str | None = None
    debounce: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """One run of a workflow, as stored."""

    id: int  # assigned by the store, increasing
    name: str  # the human label given at launch
    workflow_hash: str  # SHA-256 hex of the binary the task runs and replays against
    entry: str  # entry function name ("" = default)
    input: str  # JSON text
    state: TaskState  # see TaskState
    seed: int  # per-task entropy seed; replays derive the same random bytes from it
    created_at: datetime  # when the task was launched
    updated_at: datetime  # when its row last changed
    wakeup_at: datetime | None  # when a suspended task becomes claimable again
    result: str | None  # JSON text of the result, once complete
    error: str | None  # JSON text {"kind","message","traceback"}, once failed/cancelled
    owner: str | None  # id of the worker holding the lease, while active
    attempts: int  # how many times a worker has claimed it
    parent_id: int | None  # the spawning task, if any
    idempotency_key: str | None  # the launch key, if one was given
    deadline_at: datetime | None = None  # launch + timeout: the task fails if still running
    cancel_requested: bool = False  # `cancel` was asked while the task was active
    # Attempts in a row that ended with their worker dying (taken over by a claim after
    # its lease lapsed or its worker was removed); any `finish` resets it. At the
    # worker's `max_worker_deaths` the task is failed ("Quarantined") instead.
    deaths: int = 0
    # Flow control (durable/core/queue.py): the queue it waits or runs in, its key
    # there, its priority (higher starts first), and when a worker first started it
    # (kept for queued tasks, whose rate limits count it).
    queue: str | None = None
    queue_key: str | None = None
    priority: int = 0
    started_at: datetime | None = None
    # Which run of the task this is: 1, then one more at each `durable.continue_as_new`,
    # which ends a run (its history kept as that run's) and starts the next afresh.
    run: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One recorded host call: `(task, index, label, payload)`; never rewritten."""

    index: int  # position in the task's history, from 0, gap-free
    label: str  # names the operation, e.g. "step fetch_price" or "wasi:clocks/wall-clock.now"
    digest: str | None  # short hash of the request, for effects; checked on replay
    payload: str  # JSON text of the recorded outcome
    created_at: datetime | None = None  # set by the store when written; None before


#: The `position` of a host note: a line of durable's own in a task's log (why it
#: failed, say). Below every event position, so that no replay counts it as guest output.
NOTE_POSITION = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class LogChunk:
    """A piece of guest output, stored once and never printed again on replay."""

    position: int  # number of events recorded before the output; NOTE_POSITION for a note
    stream: Stream  # stdout or stderr
    data: bytes  # the bytes the guest wrote
    seq: int = 0  # order within the task, assigned by the store (0 until stored)
    created_at: datetime | None = None  # set by the store when written; None before


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """A message to a task, consumed by the task exactly once, in order."""

    task_id: int  # the recipient
    seq: int  # order of arrival, increasing per database
    event: str  # the event name, e.g. "approve"
    data: str  # JSON text
    created_at: datetime  # when it was sent


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A worker's claim on an active task. Every write for the task presents it."""

    task_id: int  # the task claimed
    worker_id: str  # the worker that holds it
    token: int  # increases on every claim; a write with an older token is refused


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A task handed to a worker, with the lease that lets it write."""

    task: Task  # the task as it was when claimed (state is ACTIVE)
    lease: Lease  # present this on every write
    # How many events its history held, read by the claim itself (None: not read): a
    # worker resuming its live instance checks it without another trip to the store.
    history_length: int | None = None
    # What its attempt starts from, read by the claim too (None: not read): the history
    # and the output bytes logged at its end, as `Store.load_attempt` returns them. The
    # attempt then starts without a read of its own.
    start: tuple[list[Event], int] | None = None
    # The task's oldest pending notification, read by the claim too (None: none, or not
    # read): the attempt's first look for a notification takes it instead of a trip.
    # Read only where nothing can have consumed it since (no lease between the read and
    # the claim), so it is what that look would find; consuming it stays the attempt's
    # write, fenced by the lease, as ever.
    notification: Notification | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInfo:
    """A live worker process, so that others can tell when it has died."""

    id: str  # unique per process start
    hostname: str  # machine the worker runs on
    pid: int  # its process id on that machine
    started_at: datetime  # when it registered


@dataclass(frozen=True, slots=True, kw_only=True)
class Completed:
    """The attempt ended with a result."""

    result: str  # JSON text


@dataclass(frozen=True, slots=True, kw_only=True)
class Failed:
    """The attempt ended with an error that no retry will fix."""

    error: str  # JSON text {"kind","message","traceback"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Suspended:
    """The task parks until `wakeup_at` (or until something else wakes it, if None)."""

    wakeup_at: datetime | None
    # Also wake on a notification to the task or the end of one of its children.
    on_event: bool = False
    # The worker keeps the task's instance live (`durable.host.instance_cache`): the store
    # holds the task for it for a short grace once it is runnable (claim affinity).
    kept: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancelled:
    """The attempt ended because the task was cancelled."""

    error: str  # JSON text {"kind": "Cancelled", "message", "traceback"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Released:
    """The worker gives the task back (shutdown, transient error): ready for anyone."""

    # False: the attempt never started the guest (it hands the task back to compile the
    # workflow first, say). That says nothing about whether the task kills workers, so
    # its count of worker deaths in a row is kept instead of reset.
    started: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ContinuedAsNew:
    """The run ends and the task starts its next run, afresh, on `input`.

    In one transaction: the run's history is kept as run n of the task, and the task,
    now at run n + 1, is `ready` with an empty history and this input.
    """

    input: str  # JSON text for the next run


@dataclass(frozen=True, slots=True, kw_only=True)
class RunInfo:
    """One run of a task (`durable.continue_as_new`): stores keep the ended ones."""

    run: int  # 1, 2, 3 ...
    input: str  # the input the run was started with, JSON text
    events: int  # how many events its history holds
    ended_at: datetime | None  # when it continued as the next run; None: the current run


Outcome = Completed | Failed | Cancelled | Suspended | Released | ContinuedAsNew
