"""The replay cursor: matches each host call against the recorded history.

Host call k of an attempt is answered by event k of the history while the history lasts
(replay), and recorded as a new event after it (execution). The cursor is pure: it holds
the loaded history and the events recorded since, and leaves writing them to its owner.
"""

from __future__ import annotations

from collections.abc import Sequence

from durable.core.model import Event
from durable.errors import NondeterminismError


def describe(label: str, digest: str | None) -> str:
    """How an operation is named in nondeterminism errors."""
    return f"{label!r}" if digest is None else f"{label!r} (digest {digest})"


class ReplayCursor:
    """Walks a task's history in step with the guest's host calls.

    Attributes:
        position: how many events this attempt has consumed or recorded so far; the
            index the next recorded host call gets.
    """

    __slots__ = ("_history", "_pending", "position")

    def __init__(self, history: Sequence[Event]) -> None:
        for i, event in enumerate(history):
            if event.index != i:
                raise ValueError(f"history has a gap: event {i} has index {event.index}")
        self._history = list(history)
        self._pending: list[Event] = []
        self.position = 0

    @property
    def replaying(self) -> bool:
        """True while the next host call will be answered from the history."""
        return self.position < len(self._history)

    @property
    def history_length(self) -> int:
        """How many events were recorded before this attempt."""
        return len(self._history)

    def next(self, label: str, digest: str | None = None) -> Event | None:
        """Match the next host call against the history.

        Returns the recorded event (and advances) when replaying; returns None when the
        history is exhausted, and the caller must perform the operation and `record` it.

        Raises:
            NondeterminismError: the recorded event at this index has another label or
                digest. The cursor does not advance; the history is left intact.
        """
        if self.position >= len(self._history):
            return None
        event = self._history[self.position]
        if event.label != label:
            raise NondeterminismError(self.position, repr(event.label), repr(label))
        if event.digest != digest:
            raise NondeterminismError(
                self.position, describe(event.label, event.digest), describe(label, digest)
            )
        self.position += 1
        return event

    def peek_label(self) -> str | None:
        """The label of the next recorded event, without matching it; None at the end."""
        if self.position >= len(self._history):
            return None
        return self._history[self.position].label

    def upcoming(self, limit: int) -> list[Event]:
        """Up to `limit` recorded events from the position on, without consuming them."""
        return self._history[self.position : self.position + limit]

    def record(self, label: str, digest: str | None, payload: str) -> Event:
        """Record the outcome of a host call performed at the end of the history."""
        if self.replaying:
            raise RuntimeError("record() while the history still has events to replay")
        event = Event(index=self.position, label=label, digest=digest, payload=payload)
        self._pending.append(event)
        self._history.append(event)
        self.position += 1
        return event

    def take_pending(self) -> list[Event]:
        """Return and forget the events recorded since the last call (to be written)."""
        pending, self._pending = self._pending, []
        return pending

    def restore_pending(self, events: Sequence[Event]) -> None:
        """Put back events whose write failed, ahead of any recorded since."""
        self._pending[:0] = events

    @property
    def pending_count(self) -> int:
        """How many recorded events have not been taken for writing yet."""
        return len(self._pending)

    def check_finished(self) -> None:
        """At the end of a run every recorded event must have been replayed.

        Raises:
            NondeterminismError: the run ended before consuming the whole history.
        """
        if self.replaying:
            event = self._history[self.position]
            raise NondeterminismError(
                self.position, describe(event.label, event.digest), "the end of the workflow"
            )
