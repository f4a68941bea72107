"""Control signals that unwind a running guest.

A host function raises one of these to stop the guest: the exception traps the
component and reaches the worker as the same Python object. They derive from
`BaseException`, not `Exception`, so that no `except Exception` between the host
function and the worker (ours or a library's) can swallow a suspension or a cancellation
and let the task carry on in a state it never recorded.
"""

from __future__ import annotations

from datetime import datetime


class ControlSignal(BaseException):
    """Root of the signals that end an attempt without ending the task."""


class Suspend(ControlSignal):
    """Park the task until `wakeup_at` (None: until something else wakes it).

    With `on_event`, a notification to the task or the end of one of its children also
    wakes it.
    """

    def __init__(self, wakeup_at: datetime | None, *, on_event: bool = False) -> None:
        super().__init__(f"suspend until {wakeup_at}")
        self.wakeup_at = wakeup_at
        self.on_event = on_event


class TimedOut(ControlSignal):
    """The task's own wall-clock timeout passed: it fails."""


class Release(ControlSignal):
    """Give the task back to the queue: the worker is shutting down."""


class Evicted(ControlSignal):
    """A parked instance is dropped from the worker's instance cache: unwind it and
    write nothing (the task's suspension is committed; whoever claims it replays)."""


class LeaseLost(ControlSignal):
    """Another worker owns the task now: stop at once and write nothing."""


class HistoryExhausted(ControlSignal):
    """A replay-only run went past the recorded history: everything before matched."""

    def __init__(self, position: int, label: str) -> None:
        super().__init__(f"history ends at event {position}; the workflow went on to {label!r}")
        self.position = position
        self.label = label


class ContinueAsNew(ControlSignal):
    """End this run and start the task's next run afresh on `input` (JSON text)."""

    def __init__(self, input_: str) -> None:
        super().__init__("continue as new")
        self.input = input_
