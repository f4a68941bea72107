"""Exceptions a workflow may see."""

from __future__ import annotations


class DurableGuestError(Exception):
    """Root of the errors raised by the guest SDK."""


class StepFailed(DurableGuestError):
    """A recorded step raised an exception that cannot be rebuilt as its own type.

    Raised on the first run and on every replay alike, so both take the same path.

    Attributes:
        kind: the original exception's type name.
        message: its message.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}" if message else kind)
        self.kind = kind
        self.message = message


class Cancelled(BaseException):
    """The task is being cancelled.

    Raised by the durable call at which the workflow learns of the cancellation. It
    derives from `BaseException` so that `except Exception` does not swallow it; use
    `try`/`finally` (or `except durable.Cancelled`) to run cleanup steps, which are
    recorded like any other. The task ends `cancelled` whatever the workflow does next.
    """


class ChildFailed(DurableGuestError):
    """A child task ended without a result.

    Attributes:
        child_id: the child's task id.
        state: "failed" or "cancelled".
        kind: the child's error type name.
        message: the child's error message.
    """

    def __init__(self, child_id: int, state: str, kind: str, message: str) -> None:
        super().__init__(f"child task {child_id} {state}: {kind}: {message}")
        self.child_id = child_id
        self.state = state
        self.kind = kind
        self.message = message


class NotifyError(DurableGuestError):
    """A notification could not be sent: no such task, or it has ended."""


class SpawnError(DurableGuestError):
    """A child task could not be started (e.g. no workflow registered under that name)."""
