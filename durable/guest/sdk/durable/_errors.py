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
