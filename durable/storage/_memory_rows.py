"""The rows of `MemoryStore`: a task with the bookkeeping its public view does not show,
and a notification with its key and whether it was consumed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from durable.core.model import Event, LogChunk, Notification, RunInfo, Task, TaskState

__all__ = ["EndedRun", "NotificationRow", "TaskRow", "aware"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EndedRun:
    """A run that continued as the next one: what it was, its history, and the seq of
    the last log chunk before it."""

    info: RunInfo
    events: list[Event]
    log_base: int


@dataclasses.dataclass(slots=True, kw_only=True)
class TaskRow:
    """A task as stored: the public `Task` plus the bookkeeping it does not show."""

    task: Task  # the public view; replaced (never mutated) on every change
    lease_token: int = 0  # fencing token, +1 on every claim
    lease_expires_at: datetime | None = None  # while active: when others may take over
    on_event: bool = False  # suspended: a notification or a child's end makes it ready
    wake_pending: bool = False  # active: such a wake-up happened; cleared by claim
    # Suspended by a worker that keeps its instance live: held for it for a grace once
    # runnable (claim affinity); cleared by claim.
    affinity: str | None = None
    events: list[Event] = dataclasses.field(default_factory=list)
    logs: list[LogChunk] = dataclasses.field(default_factory=list)
    # The ended runs (`durable.continue_as_new`), oldest first; and the seq of the
    # last log chunk before the current run (its output follows).
    runs: list[EndedRun] = dataclasses.field(default_factory=list)
    log_base: int = 0

    def change(self, **fields: Any) -> None:
        self.task = dataclasses.replace(self.task, **fields)


@dataclasses.dataclass(slots=True, kw_only=True)
class NotificationRow:
    notification: Notification
    key: str | None
    consumed: bool = False


def aware(moment: datetime | None) -> datetime | None:
    """Normalise to aware UTC; a naive datetime is taken to be UTC already."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def ready_task(task_id: int, now: datetime, **fields: Any) -> Task:
    """A task as it is made (by a launch or a fork): ready, never claimed, no result."""
    return Task(
        id=task_id,
        state=TaskState.READY,
        created_at=now,
        updated_at=now,
        wakeup_at=None,
        result=None,
        error=None,
        owner=None,
        attempts=0,
        **fields,
    )
