"""What the Postgres claim statement answers besides the claims: one round trip in place
of three on a short task's way to its first instruction.

The claim statement (`queries.sql`, `claim`) also says whether any queue exists (the
claimer's next question when it claimed fewer than it asked for), and, for a task
claimed for the first time with a short history, reads what its attempt starts from:
the history and the bytes logged at its end, which `load_attempt` would otherwise
fetch right after. Those wait here (`Preloaded`) until the attempt asks, once.

Why this is what `load_attempt` would have read: only a first claim is read ahead,
and a task's events before its first claim are those copied in the transaction that
inserted its row (a fork), which the claim's snapshot sees, since it found the row;
the lease the claim takes keeps every other writer out until the attempt writes. An
entry is forgotten when anything is written for its task through this store (append,
finish, workflow SQL), and when the task is claimed again. Read-ahead is bounded by
`PRELOAD_EVENTS`: a long history (a kept instance's, say, that needs none) is not read
on the claim's way.

Rejected: reading every claimed task's attempt (a takeover's history may have grown
after the claim's snapshot, before its lock), and two statements in one transaction
(as many round trips as before).
"""

from __future__ import annotations

import asyncpg

from durable.core.model import Event

__all__ = ["PRELOAD_EVENTS", "Preloaded"]

#: Histories up to this many events are read by the claim of a task's first attempt.
PRELOAD_EVENTS = 64
#: Entries kept at most: one per claimed task not started yet (a bound, not a policy:
#: an entry lost costs its attempt one round trip).
_MAX_ENTRIES = 4096


class Preloaded:
    """The attempts the claim statement read ahead, by task id, each taken once."""

    __slots__ = ("_by_task",)

    def __init__(self) -> None:
        """Start empty."""
        self._by_task: dict[int, tuple[list[Event], int]] = {}

    def claimed(self, row: asyncpg.Record) -> None:
        """Keep what the claim read of the task in `row` (or forget an older entry)."""
        task_id: int = row["id"]
        self._by_task.pop(task_id, None)
        if row.get("logged") is None:  # not read ahead
            return
        if len(self._by_task) >= _MAX_ENTRIES:
            self._by_task.clear()
        labels = row["label"]
        events = (
            []
            if labels is None  # no events: array_agg of nothing is NULL
            else [
                Event(index=i, label=label, digest=digest, payload=payload, created_at=created)
                for i, label, digest, payload, created in zip(
                    row["idx"], labels, row["digest"], row["payload"], row["created"], strict=True
                )
            ]
        )
        self._by_task[task_id] = (events, int(row["logged"]))

    def take(self, task_id: int) -> tuple[list[Event], int] | None:
        """The task's attempt as its claim read it, once; None if it was not read."""
        return self._by_task.pop(task_id, None)

    def forget(self, task_id: int) -> None:
        """Something was written for the task: what was read ahead is out of date."""
        self._by_task.pop(task_id, None)
