"""The move role of a store: a task moved onto a new binary, fenced and recorded.

`durable upgrade NAME NEW` replays each unfinished task of a workflow against new
code; a task that replays cleanly is moved onto the new binary here. The move is one
statement, fenced so that it changes nothing unless the task is exactly as the
upgrade saw it: on the old binary, not running (no lease), not claimed since (its
`attempts` unchanged: only a claim's lease adds events), and with the history that
was replayed (its event count). A move is recorded (`BinaryMove`) in the same
transaction, so `durable show` can say when a task changed code, and from which.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

__all__ = ["BinaryMove", "MoveStore"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BinaryMove:
    """One move of a task onto another binary."""

    from_hash: str
    to_hash: str
    events: int  # the history's length when it was moved
    moved_at: datetime

    def to_json(self) -> dict[str, object]:
        """As `durable show --json` exports it."""
        return {
            "from": self.from_hash,
            "to": self.to_hash,
            "events": self.events,
            "moved_at": self.moved_at.isoformat(),
        }


@runtime_checkable
class MoveStore(Protocol):
    """The move role (see the module docstring)."""

    async def move_task(
        self, task_id: int, *, from_hash: str, to_hash: str, attempts: int, events: int
    ) -> bool:
        """Put the task on binary `to_hash` and record the move, in one transaction,
        if it is still on `from_hash`, ready or suspended, with `attempts` claims so
        far and `events` events. False, with nothing written, otherwise (also for a
        task that does not exist).

        Raises:
            NotFoundError: `to_hash` is not stored.
        """
        ...

    async def binary_moves(self, task_id: int) -> list[BinaryMove]:
        """The task's moves, oldest first (none for a task never moved)."""
        ...
