"""What the Postgres claim statement answers besides the claims: one round trip in place
of three on a short task's way to its first instruction.

The claim statement (`queries.sql`, `claim`) also says whether any queue exists (the
claimer's next question when it claimed fewer than it asked for), and, for a task
claimed for the first time with a short history, reads what its attempt starts from:
the history and the bytes logged at its end, which `load_attempt` would otherwise
fetch right after. They go to the attempt with its claim (`Claim.start`).

Why this is what `load_attempt` would have read: only a first claim is read ahead,
and a task's events before its first claim are those copied in the transaction that
inserted its row (a fork), which the claim's snapshot sees, since it found the row;
the lease the claim takes keeps every other writer out until the attempt writes.
Read-ahead is bounded by `PRELOAD_EVENTS`: a long history (a kept instance's, say,
that needs none) is not read on the claim's way.

It also reads each claimed task's oldest pending notification (`Claim.notification`),
for the attempt's first look for one: a task woken by a notification then makes no
trip for it (on the instance cache's wake-up, the guest goes on without one). Only
when nothing can have consumed it between the statement's snapshot and its lock:
consuming takes a lease, so the snapshot's row held none (not active) and no claim
came in between (the new token is one above the snapshot's). Consuming it is still
the attempt's write, fenced by the lease, exactly as before.

Rejected: reading every claimed task's attempt (a takeover's history may have grown
after the claim's snapshot, before its lock), and two statements in one transaction
(as many round trips as before).
"""

from __future__ import annotations

import asyncpg

from durable.core.model import Event, Notification
from durable.storage import _pg_codec as codec

__all__ = ["PRELOAD_EVENTS", "pending", "read_ahead"]

#: Histories up to this many events are read by the claim of a task's first attempt.
PRELOAD_EVENTS = 64


def read_ahead(row: asyncpg.Record) -> tuple[list[Event], int] | None:
    """What the claim read of the attempt of the task in `row`, as `load_attempt`
    returns it; None if it read nothing (not a first claim, a long history, or a
    queued task's claim, whose rows have no such columns)."""
    if row.get("logged") is None:
        return None
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
    return events, int(row["logged"])


def pending(row: asyncpg.Record) -> Notification | None:
    """The oldest pending notification of the task in `row`, as the claim read it
    (`Claim.notification`); None if it read none (or a queued task's claim, whose rows
    have no such columns)."""
    return None if row.get("note_seq") is None else codec.notification(row, "note_")
