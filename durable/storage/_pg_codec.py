"""Rows to value objects, and values to query parameters, for the Postgres store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from durable.core import side_writes
from durable.core.model import (
    Cancelled,
    Completed,
    ContinuedAsNew,
    Event,
    Failed,
    LogChunk,
    Notification,
    Outcome,
    Released,
    Stream,
    Suspended,
    Task,
    TaskState,
)
from durable.core.side_writes import SideWrite
from durable.core.status import StatusValue
from durable.core.task_error import CANCELLED_ON_REQUEST

#: The error a task gets when `request_cancel` ends it before any worker saw it.
CANCELLED_ERROR = CANCELLED_ON_REQUEST.to_json()


def task(row: asyncpg.Record) -> Task:
    """A `Task` from a `durable.tasks` row."""
    return Task(
        id=row["id"],
        name=row["name"],
        workflow_hash=row["workflow_hash"],
        entry=row["entry"],
        input=row["input"],
        state=TaskState(row["state"]),
        seed=row["seed"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        wakeup_at=row["wakeup_at"],
        result=row["result"],
        error=row["error"],
        owner=row["owner"],
        attempts=row["attempts"],
        parent_id=row["parent_id"],
        idempotency_key=row["idempotency_key"],
        deadline_at=row["deadline_at"],
        cancel_requested=row["cancel_requested"],
        deaths=row["deaths"],
        queue=row["queue"],
        queue_key=row["queue_key"],
        priority=row["priority"],
        started_at=row["started_at"],
        run=row.get("run", 1),
    )


def event(row: asyncpg.Record) -> Event:
    """An `Event` from a `durable.events` row."""
    return Event(
        index=row["idx"],
        label=row["label"],
        digest=row["digest"],
        payload=row["payload"],
        created_at=row["created_at"],
    )


def log_chunk(row: asyncpg.Record) -> LogChunk:
    """A `LogChunk` from a `durable.logs` row."""
    return LogChunk(
        seq=row["seq"],
        position=row["position"],
        stream=Stream(row["stream"]),
        data=row["data"],
        created_at=row["created_at"],
    )


def notification(row: asyncpg.Record, prefix: str = "") -> Notification:
    """A `Notification` from a `durable.notifications` row (its columns named with
    `prefix`, in a row of another table's: the claim's)."""
    return Notification(
        task_id=row[prefix + "task_id"],
        seq=row[prefix + "seq"],
        event=row[prefix + "event"],
        data=row[prefix + "data"],
        created_at=row[prefix + "created_at"],
    )


def write_args(
    events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite]
) -> list[Any]:
    """The array parameters $4..$11 shared by the `append` and `finish` statements."""
    return [
        [e.index for e in events],
        [e.label for e in events],
        [e.digest for e in events],
        [e.payload for e in events],
        [chunk.position for chunk in logs],
        [str(chunk.stream) for chunk in logs],
        [bytes(chunk.data) for chunk in logs],
        side_writes.consumed(writes),
    ]


def status_args(writes: Sequence[SideWrite]) -> list[Any]:
    """The status arrays (key, value, position) of the `append` and `finish` statements:
    one entry per key, the last set, as one statement cannot upsert a row twice."""
    statuses = side_writes.statuses(writes)
    return [[s.key for s in statuses], [s.value for s in statuses], [s.position for s in statuses]]


def status_value(row: asyncpg.Record) -> StatusValue:
    """A `StatusValue` from a `durable.task_status` row."""
    return StatusValue(
        key=row["key"], value=row["value"], position=row["position"], updated_at=row["updated_at"]
    )


def consecutive(events: Sequence[Event]) -> bool:
    """Whether the events' indexes run on without a gap or a repeat."""
    return all(e.index == events[0].index + i for i, e in enumerate(events))


def outcome_args(
    outcome: Outcome, now: datetime
) -> tuple[str, str | None, str | None, timedelta | None, bool, bool]:
    """Parameters $12..$17 of `finish`: state, result, error, how long until the wake-up,
    on_event, and whether the task keeps its worker deaths (an attempt that never
    started its guest).

    The wake-up goes as a duration from `now`, the worker's clock that computed it: the
    database adds it to its own `now()`, so a worker whose clock is off still suspends a
    task for the time its timer asked, by the clock every claim reads.
    """
    match outcome:
        case Completed(result=result):
            return "complete", result, None, None, False, False
        case Failed(error=error):
            return "failed", None, error, None, False, False
        case Cancelled(error=error):
            return "cancelled", None, error, None, False, False
        case Suspended(wakeup_at=wakeup_at, on_event=on_event):
            # A naive time is taken as UTC (as MemoryStore does), not as local time.
            if wakeup_at is None:
                return "suspended", None, None, None, on_event, False
            if wakeup_at.tzinfo is None:
                wakeup_at = wakeup_at.replace(tzinfo=UTC)
            return "suspended", None, None, wakeup_at - now, on_event, False
        case Released(started=started):
            return "ready", None, None, None, False, not started
        case ContinuedAsNew():  # ready; its next run is set up by `continue_run`
            return "ready", None, None, None, False, False
    raise TypeError(f"not an Outcome: {outcome!r}")  # pragma: no cover


def glob_to_regex(pattern: str) -> str:
    """Translate a shell pattern (`fnmatch` rules) to an anchored Postgres regex.

    `*` and `?` match any run and any one character, `[...]` and `[!...]` a set; all
    else is literal. Case-sensitive, whole name.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = i + 1 if i < n and pattern[i] == "!" else i
            if end < n and pattern[end] == "]":
                end += 1  # a "]" first in the set is a member, as in fnmatch
            while end < n and pattern[end] != "]":
                end += 1
            if end >= n:
                out.append(r"\[")  # no closing bracket: a literal "["
                continue
            body = pattern[i:end]
            i = end + 1
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            escaped = "".join("\\" + c if c in "\\[]^" else c for c in body)
            out.append("[" + ("^" if negate else "") + escaped + "]")
        else:
            out.append("\\" + char if not char.isalnum() and char != "_" else char)
    return "^" + "".join(out) + "$"
