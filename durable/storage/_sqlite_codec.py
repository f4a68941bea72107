"""Pure helpers of the SQLite store: times, rows to value objects, fenced write batches.

No I/O here. Times are REAL unix seconds (UTC) in the file and aware UTC datetimes in
Python; a naive datetime handed in is taken to be UTC.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from durable.core import side_writes
from durable.core.model import Event, Lease, LogChunk, Notification, Stream, Task, TaskState
from durable.core.side_writes import SideWrite
from durable.core.task_error import CANCELLED_ON_REQUEST
from durable.storage._sqlite_schema import TASK_COLUMNS, queries

#: Rows per INSERT statement; keeps each statement well under SQLite's 32,766 variables.
CHUNK = 200


def to_ts(moment: datetime) -> float:
    """Aware datetime to unix seconds; a naive datetime is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def to_dt(value: float) -> datetime:
    """Unix seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(value, UTC)


def maybe_dt(value: float | None) -> datetime | None:
    """`to_dt`, passing None through."""
    return None if value is None else to_dt(value)


def task(row: Sequence[Any]) -> Task:
    """A row of `_sqlite_schema.TASK_COLUMNS` as a `Task`."""
    return Task(
        id=row[0],
        name=row[1],
        workflow_hash=row[2],
        entry=row[3],
        input=row[4],
        state=TaskState(row[5]),
        seed=row[6],
        created_at=to_dt(row[7]),
        updated_at=to_dt(row[8]),
        wakeup_at=maybe_dt(row[9]),
        result=row[10],
        error=row[11],
        owner=row[12],
        attempts=row[13],
        parent_id=row[14],
        idempotency_key=row[15],
        deadline_at=maybe_dt(row[16]),
        cancel_requested=bool(row[17]),
        deaths=row[18],
        queue=row[19],
        queue_key=row[20],
        priority=row[21],
        started_at=maybe_dt(row[22]),
        run=row[23],
    )


def notification(row: Sequence[Any]) -> Notification:
    """A `(seq, task_id, event, data, created_at)` row as a `Notification`."""
    return Notification(
        seq=row[0], task_id=row[1], event=row[2], data=row[3], created_at=to_dt(row[4])
    )


def event(row: Sequence[Any]) -> Event:
    """An `(idx, label, digest, payload, created_at)` row as an `Event`."""
    return Event(
        index=row[0], label=row[1], digest=row[2], payload=row[3], created_at=to_dt(row[4])
    )


def log_chunk(row: Sequence[Any]) -> LogChunk:
    """A `(seq, position, stream, data, created_at)` row as a `LogChunk`."""
    return LogChunk(
        seq=row[0],
        position=row[1],
        stream=Stream(row[2]),
        data=bytes(row[3]),
        created_at=to_dt(row[4]),
    )


def list_tasks_query(
    states: Sequence[TaskState] | None, limit: int, name_glob: str | None, parent_id: int | None
) -> tuple[str, list[Any]]:
    """The `list_tasks` SELECT for these filters (built here: their number varies)."""
    where: list[str] = []
    params: list[Any] = []
    if states is not None:
        where.append(f"state IN ({', '.join('?' * len(states))})")
        params.extend(TaskState(state).value for state in states)
    if name_glob is not None:
        where.append("name GLOB ?")  # case-sensitive and whole-name, like fnmatchcase
        params.append(name_glob)
    if parent_id is not None:
        where.append("parent_id = ?")
        params.append(parent_id)
    sql = f"SELECT {TASK_COLUMNS} FROM durable_task"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY id DESC LIMIT ?", [*params, limit]


def consecutive(events: Sequence[Event]) -> bool:
    """Whether the batch's own indexes run on without gaps or repeats."""
    return all(b.index == a.index + 1 for a, b in itertools.pairwise(events))


def fence(lease: Lease) -> tuple[int, str, int]:
    """The parameters of the fence clause: task, owner, lease token."""
    return lease.task_id, lease.worker_id, lease.token


#: The error of a task cancelled on request (by a client, or by its parent).
CANCELLED_ERROR = CANCELLED_ON_REQUEST.to_json()


@dataclass(frozen=True, slots=True)
class Write:
    """One fenced statement, and how many rows it changes if the lease holds."""

    sql: str
    params: tuple[Any, ...]
    rows: int | None  # None: any number (a statement that may find nothing to change)
    what: str  # what a shortfall means, if the lease still holds


@functools.lru_cache(maxsize=64)
def _batch_sql(name: str, rows: int) -> str:
    marks = "?" if name == "consume" else "(?, ?, ?, ?)"
    return queries()[name].replace("{rows}", ", ".join([marks] * rows))


def fenced_writes(
    lease: Lease,
    events: Sequence[Event],
    logs: Sequence[LogChunk],
    side: Sequence[SideWrite],
    now: float,
) -> list[Write]:
    """The statements that append `events` and `logs` and apply the side-writes.

    Each carries the fence (task active, same owner, same token); the event inserts
    also carry the gap check. A statement that changes fewer rows than it should was
    refused, and the caller rolls everything back.
    """
    writes: list[Write] = []
    task_id = lease.task_id
    for start in range(0, len(events), CHUNK):
        chunk = events[start : start + CHUNK]
        values: list[Any] = [v for e in chunk for v in (e.index, e.label, e.digest, e.payload)]
        params = (task_id, now, *values, *fence(lease), task_id, chunk[0].index)
        what = f"events from index {chunk[0].index} do not continue the history of task {task_id}"
        writes.append(Write(_batch_sql("insert_events", len(chunk)), params, len(chunk), what))
    for start in range(0, len(logs), CHUNK):
        part = logs[start : start + CHUNK]
        values = [
            v
            for offset, c in enumerate(part, start=1)
            for v in (offset, c.position, Stream(c.stream).value, bytes(c.data))
        ]
        params = (task_id, task_id, now, *values, *fence(lease))
        writes.append(Write(_batch_sql("insert_logs", len(part)), params, len(part), "logs"))
    seqs = side_writes.consumed(side)
    if seqs:
        params = (now, task_id, *seqs, *fence(lease))
        what = f"notifications {seqs} are not all pending for task {task_id}"
        # A repeated seq can only be consumed once: asking for len(seqs) rows refuses it.
        writes.append(Write(_batch_sql("consume", len(seqs)), params, len(seqs), what))
    for status in side_writes.statuses(side):
        params = (task_id, status.key, status.value, status.position, now, *fence(lease))
        writes.append(Write(queries()["set_status"], params, 1, f"status {status.key!r}"))
    _, worker, token = fence(lease)
    for child in side_writes.cancelled_children(side):
        # Both fenced in SQL; a child that ended meanwhile changes no row, which is right.
        flag = (child, task_id, now, worker, token)
        writes.append(Write(queries()["flag_child"], flag, None, f"cancel child {child}"))
        cancel = (child, task_id, CANCELLED_ERROR, now, worker, token)
        writes.append(Write(queries()["cancel_child"], cancel, None, f"cancel child {child}"))
    return writes
