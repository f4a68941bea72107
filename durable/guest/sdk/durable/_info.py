"""The running task's facts: id, name, input, creation time, attempt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from wit_world.imports import task as _task

_cached: TaskInfo | None = None


@dataclass(frozen=True)
class TaskInfo:
    """Facts about the running task; the same on every replay."""

    id: int  # the task id
    name: str  # the label given at launch
    entry: str  # the entry function running ("" = default)
    input: Any  # the input, decoded from JSON
    created_at: datetime  # launch time, UTC
    attempt: int  # 1 on the first run; higher after a crash or a suspension

    @property
    def tick(self) -> datetime | None:
        """The schedule tick that launched this task (`durable schedule`), or None.

        A tick's task is named `SCHEDULE@TICK` (TICK in ISO 8601 UTC, with a Z), so
        every replay reads the same tick.
        """
        _, sep, stamp = self.name.rpartition("@")
        if not sep or not stamp.endswith("Z"):
            return None
        try:
            return datetime.fromisoformat(stamp[:-1] + "+00:00")
        except ValueError:
            return None


def info() -> TaskInfo:
    """Return the running task's `TaskInfo`."""
    global _cached
    if _cached is None:
        raw = _task.info()
        created = raw.created_at.seconds + raw.created_at.nanoseconds / 1e9
        _cached = TaskInfo(
            id=raw.id,
            name=raw.name,
            entry=raw.entry,
            input=json.loads(raw.input),
            created_at=datetime.fromtimestamp(created, tz=UTC),
            attempt=raw.attempt,
        )
    return _cached


def _reset() -> None:
    global _cached
    _cached = None
