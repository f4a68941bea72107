"""`TaskError`: why a task failed or was cancelled, as stored in `Task.error`.

The stored form is JSON text `{"kind", "message", "traceback"}` in that key order; it
is part of the on-disk and export formats, so it is built and parsed only here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskError:
    """A task's error: what kind, what it said, and the guest's traceback if any."""

    kind: str  # the exception's class name, or the host's reason ("TimeoutError", ...)
    message: str = ""  # the exception's message
    traceback: str = ""  # the guest's formatted traceback ("" when the host ended it)

    def to_json(self) -> str:
        """The stored JSON text."""
        return json.dumps({"kind": self.kind, "message": self.message, "traceback": self.traceback})

    @classmethod
    def from_json(cls, text: str) -> TaskError:
        """Read a stored error leniently: text that is not a JSON object (written by
        hand, or by a store outside durable) becomes the message of an `Error`."""
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return cls(kind="Error", message=text)
        if not isinstance(value, dict):
            return cls(kind="Error", message=str(value))
        return cls(
            kind=str(value.get("kind", "Error")),
            message=str(value.get("message", "")),
            traceback=str(value.get("traceback", "")),
        )

    def describe(self) -> str:
        """`ValueError: bad value 7`, or the kind alone when there is no message."""
        return f"{self.kind}: {self.message}" if self.message else self.kind


#: The error of a task that `request_cancel` ended before any worker ran it again.
CANCELLED_ON_REQUEST = TaskError(kind="Cancelled", message="cancelled on request")
