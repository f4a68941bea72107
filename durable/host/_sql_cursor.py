"""The cursor of an attempt while a guest SQL transaction is open.

A `with durable.transaction(...)` block cannot skip its body on replay the way a step
does, so the transaction's whole conversation is its record: each statement's outcome
(and each wall-clock reading the body makes) in order, in ONE event, at the index where
the transaction began. While the block runs, this cursor stands in for the attempt's
own (`AttemptContext.cursor`):

* Its position stays at that index, on the first run as on replay, so the body's output
  is logged (or, on replay, dropped) at the same position, and randomness derived from
  the position is the same.
* Clock readings are answered from, or added to, the conversation.
* Every other durable call (a step, a sleep, HTTP, a notification ...) is refused: it
  would be performed again on every replay, or be recorded out of order.

`Conversation` holds the conversation itself: what the first run adds to it, and what a
replay takes from it, checking that the workflow asks the same things in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from durable.core import ops
from durable.core.model import Event
from durable.core.replay import ReplayCursor
from durable.errors import HostError, NondeterminismError

#: The label of wall-clock readings (`AttemptContext.now_ns`).
CLOCK = ops.CLOCK_NOW.label

Entry = dict[str, Any]  # {"digest", "ok"|"error"} for a statement, {"clock"} for a reading


class Conversation:
    """What a transaction's body asked and got, in order (see the module docstring).

    Attributes:
        label: the transaction's event label, `sql LABEL`.
        index: the event index of the transaction.
        entries: what the body asked and got so far (live), or everything recorded
            (replay).
        recorded: the recorded payload on replay; None on the first run.
    """

    def __init__(self, label: str, index: int, recorded: dict[str, Any] | None) -> None:
        """Start a conversation, live (`recorded` None) or replayed."""
        self.label = label
        self.index = index
        self.recorded = recorded
        self.entries: list[Entry] = [] if recorded is None else list(recorded["results"])
        self._next = 0  # replay: the next entry to hand out
        self._statements = 0  # statements asked so far, for messages
        self.size = 0  # live: the JSON size of `entries`

    @property
    def replaying(self) -> bool:
        """True when the conversation is answered from the history."""
        return self.recorded is not None

    # -- the first run -----------------------------------------------------------------------

    def add(self, entry: Entry) -> None:
        """Record what the body just asked and got."""
        self.entries.append(entry)
        self.size += len(json.dumps(entry)) + 2

    def payload(self, outcome: str, **extra: Any) -> str:
        """The transaction's event payload: {"outcome", "results", ...}."""
        return json.dumps({"outcome": outcome, "results": self.entries, **extra})

    # -- replay ------------------------------------------------------------------------------

    def take_statement(self, digest: str) -> Entry:
        """The recorded outcome of the next statement, which must have this digest."""
        self._statements += 1
        found = f"statement {self._statements} (digest {digest}) in {self.label!r}"
        entry = self._take(found)
        if entry.get("digest") != digest:
            raise self._diverged(entry, found)
        return entry

    def take_clock(self) -> int:
        """The recorded clock reading the body makes next."""
        entry = self._take(f"a clock reading in {self.label!r}")
        if "clock" not in entry:
            raise self._diverged(entry, f"a clock reading in {self.label!r}")
        return int(entry["clock"])

    def finish(self, outcome: str) -> dict[str, Any]:
        """Check that the body asked for everything recorded and ended the same way
        (`outcome`: "commit" or "rollback"); return the recorded payload."""
        assert self.recorded is not None
        found = f"the end of {self.label!r} ({outcome})"
        if self._next < len(self.entries):
            self._next += 1
            raise self._diverged(self.entries[self._next - 1], found)
        recorded = self.recorded["outcome"]
        if ("rollback" if recorded == "rollback" else "commit") != outcome:
            raise NondeterminismError(self.index, f"the end of {self.label!r} ({recorded})", found)
        return self.recorded

    def _take(self, found: str) -> Entry:
        if self._next >= len(self.entries):
            outcome = self.recorded["outcome"] if self.recorded else "?"
            raise NondeterminismError(self.index, f"the end of {self.label!r} ({outcome})", found)
        entry = self.entries[self._next]
        self._next += 1
        return entry

    def _diverged(self, entry: Entry, found: str) -> NondeterminismError:
        """The error for a body that asked for `found` where `entry` was recorded."""
        if "clock" in entry:
            expected = f"a clock reading in {self.label!r}"
        else:
            number = sum("digest" in e for e in self.entries[: self._next])
            expected = f"statement {number} (digest {entry.get('digest')}) in {self.label!r}"
        return NondeterminismError(self.index, expected, found)


class TransactionCursor(ReplayCursor):
    """Stands in for the attempt's cursor while a transaction's body runs.

    Attributes:
        outer: the attempt's own cursor, put back when the transaction ends.
        conversation: the transaction's record.
        session: the store's transaction (first run only; None on replay).
    """

    __slots__ = ("conversation", "outer", "session")

    def __init__(self, outer: ReplayCursor, conversation: Conversation, session: Any) -> None:
        """Stand in for `outer`, at the transaction's event index."""
        super().__init__(())
        self.outer = outer
        self.conversation = conversation
        self.session = session
        self.position = conversation.index

    @property
    def replaying(self) -> bool:
        """Always True: nothing may be recorded in the task's history inside the body
        (`AttemptContext.cancelled` then only reads the history, which has nothing for
        it here)."""
        return True

    @property
    def history_length(self) -> int:
        """The outer cursor's, so that output is kept or dropped as it would be there."""
        return self.outer.history_length

    def next(self, label: str, digest: str | None = None) -> Event | None:
        """Answer a clock reading from the conversation; refuse anything else."""
        if label != CLOCK:
            raise self._refused(label)
        if not self.conversation.replaying:
            return None  # the caller reads the clock and records it (`record`)
        value = self.conversation.take_clock()
        return Event(index=self.position, label=label, digest=None, payload=str(value))

    def peek_label(self) -> str | None:
        """Nothing of the task's history is due inside the body."""
        return None

    def record(self, label: str, digest: str | None, payload: str) -> Event:
        """Add a clock reading to the conversation; refuse anything else."""
        if label != CLOCK:
            raise self._refused(label)
        self.conversation.add({"clock": int(payload)})
        return Event(index=self.position, label=label, digest=None, payload=payload)

    def take_pending(self) -> list[Event]:
        """The outer cursor's pending events (there are none: `begin` committed them)."""
        return self.outer.take_pending()

    def restore_pending(self, events: Sequence[Event]) -> None:
        """Hand back to the outer cursor."""
        self.outer.restore_pending(events)

    @property
    def pending_count(self) -> int:
        """The outer cursor's."""
        return self.outer.pending_count

    def check_finished(self) -> None:
        """A run that ends with a transaction open is a bug in the workflow (or the SDK).

        Raises:
            HostError: always.
        """
        raise HostError(
            f"the workflow ended inside SQL transaction {self.conversation.label!r}, which "
            "was rolled back"
        )

    def _refused(self, label: str) -> HostError:
        return HostError(
            f"{label!r} inside SQL transaction {self.conversation.label!r}: only SQL and the "
            "clock may be used inside a transaction (move other durable calls out of the "
            "`with durable.transaction(...)` block)"
        )
