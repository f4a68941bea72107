"""Every error `durable` raises, under one root.

The tree::

    DurableError
    ├── ConfigurationError         bad URL, missing driver, unwritable path, bad flag value
    ├── InputTooLargeError         a task's input is over the payload limit
    ├── BuildError                 a workflow could not be built into a component
    ├── ComponentError             a binary is not a workflow component, or fails to load
    ├── StorageError               the database failed or refused
    │   ├── SchemaError            the schema is missing or out of date
    │   ├── NotFoundError          no such task or workflow binary
    │   │   └── TaskNotFoundError
    │   ├── ConflictError          a write collided with an existing row
    │   ├── InvalidStateError      the task is not in a state that allows this
    │   └── LeaseLostError         this worker no longer owns the task (fencing)
    ├── ReplayError
    │   └── NondeterminismError    the workflow did something other than what it recorded
    ├── WorkflowError              the workflow raised or trapped (carried as data)
    └── HostError                  a host function failed for a reason outside the guest
        └── OutputLimitExceeded    a task printed more than the worker's output limit

Control signals (suspend, cancel) are not errors: they live in `durable.core.signals`
and derive from `BaseException`.
"""

from __future__ import annotations


class DurableError(Exception):
    """Root of every error raised by `durable`."""


class ConfigurationError(DurableError):
    """The configuration is unusable: a bad URL, a missing driver, a bad flag value."""


class InputTooLargeError(DurableError):
    """A task's input, as JSON, is larger than the payload limit (`max_payload_bytes`).

    Raised before anything is written: no task is created.
    """


class BuildError(DurableError):
    """A workflow source file could not be compiled into a component."""


class ComponentError(DurableError):
    """A binary is not a valid workflow component, or does not target the workflow world."""


class StorageError(DurableError):
    """The database failed or refused an operation."""


class SchemaError(StorageError):
    """The database schema is missing or older than this version of durable expects."""


class NotFoundError(StorageError):
    """A row that was asked for does not exist."""


class TaskNotFoundError(NotFoundError):
    """No task has the given id."""

    def __init__(self, task_id: int) -> None:
        super().__init__(f"task {task_id} does not exist")
        self.task_id = task_id


class ConflictError(StorageError):
    """A write collided with a row that already exists (for example an event index)."""


class InvalidStateError(StorageError):
    """The task is in a state that does not allow the operation."""


class LeaseLostError(StorageError):
    """This worker's lease on the task has passed to another worker: it must not write.

    Raised by fenced writes. The worker drops the task attempt without touching it.
    """

    def __init__(self, task_id: int) -> None:
        super().__init__(f"lease on task {task_id} was lost")
        self.task_id = task_id


class ReplayError(DurableError):
    """Replaying a task's history failed."""


class NondeterminismError(ReplayError):
    """On replay, host call `index` did not match event `index` of the recorded history.

    Attributes:
        index: the event index where the run diverged from its history.
        expected: the operation the history recorded at that index.
        found: the operation the workflow performed instead.
    """

    def __init__(self, index: int, expected: str, found: str) -> None:
        super().__init__(
            f"nondeterminism at event {index}: history recorded {expected}, "
            f"but the workflow performed {found}"
        )
        self.index = index
        self.expected = expected
        self.found = found


class WorkflowError(DurableError):
    """The workflow itself raised or trapped.

    Attributes:
        kind: the guest's exception type name, or "trap".
        message: the guest's error message.
        traceback: the guest's Python traceback, when there is one.
    """

    def __init__(self, kind: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind
        self.message = message
        self.traceback = traceback


class HostError(DurableError):
    """A host function failed for a reason that is not the guest's fault."""


class OutputLimitExceeded(HostError):
    """A task printed more than the worker's output limit (`max_output_bytes`).

    The task fails with this as its error kind; its log keeps the output up to the limit.
    """
