"""What `step.enter-ahead` handed the guest and it has not replayed yet: a window onto
the events the entries were read from (`durable.host.step_ahead`).

Why a window and not a queue of (label, digest) pairs: the entries are consecutive
events of one loaded history, which is never rewritten, so `take-ahead`'s short way
needs only the next entry's place (a counter moves; no pair is built at the hand-out
and taken apart at the step). The long way reads the entry's label and digest from its
event, the very fields the hand-out read.
"""

from __future__ import annotations

from collections.abc import Iterator

from durable.core.model import Event
from durable.core.replay import ReplayCursor


class AheadWindow:
    """Entries `events[next:stop]`, history indexes `base + next` on, read from `cursor`.

    Attributes:
        marked: a clock-advance marker follows the last entry (its step moved the clock
            far), so that entry takes the long way.
    """

    __slots__ = ("base", "cursor", "events", "marked", "next", "stop")

    def __init__(
        self,
        events: list[Event],
        stop: int,
        *,
        base: int,
        cursor: ReplayCursor | None,
        marked: bool,
    ) -> None:
        self.events = events
        self.next = 0
        self.stop = stop
        self.base = base
        self.cursor = cursor
        self.marked = marked

    def __len__(self) -> int:
        return self.stop - self.next

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        """The (label, digest) of each entry left, in order."""
        for event in self.events[self.next : self.stop]:
            yield event.label, event.digest

    def entry(self, offset: int) -> tuple[str, str | None]:
        """The (label, digest) of entry `offset` of `events`."""
        event = self.events[offset]
        return event.label, event.digest


#: Nothing handed out (shared: nothing ever moves in an empty window).
NOTHING = AheadWindow([], 0, base=0, cursor=None, marked=False)
