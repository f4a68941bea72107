"""A task's history as a portable JSON document: what `durable show --json` writes and
`durable replay --history` reads.

The document is versioned by its `format` field (`HISTORY_FORMAT`), so that golden
histories checked in next to the tests keep replaying, or fail with a clear message,
after the format moves on. Every JSON-text field of the store (the task's `input`,
`result` and `error`, each event's `payload`) is kept as a string holding exactly the
stored text: decoding and re-encoding it could change its bytes (spacing, float
spelling, escapes), and replay hands the guest what was recorded, byte for byte.
Times are ISO 8601 strings in UTC.

Format 1::

    {
      "format": 1,
      "task": {"id": 3, "name": "greeter", "workflow_hash": "9f2c...", "entry": "",
               "input": "7", "state": "complete", "seed": 81231,
               "created_at": "2025-06-01T12:03:07.123456+00:00", "updated_at": "...",
               "wakeup_at": null, "deadline_at": null, "result": "\\"Hello\\"",
               "error": null, "owner": null, "attempts": 1, "parent_id": null,
               "idempotency_key": null, "cancel_requested": false},
      "events": [{"index": 0, "label": "step fetch_name", "digest": "1a2b3c",
                  "payload": "{\\"value\\": \\"user-7\\"}",
                  "created_at": "2025-06-01T12:03:07.130000+00:00"}, ...]
    }
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from durable.core.model import Event, Task, TaskState
from durable.errors import ConfigurationError

#: The version of the history document this code writes, and the newest it reads.
HISTORY_FORMAT = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskHistory:
    """A task as stored, with its recorded events in index order."""

    task: Task  # the task row
    events: tuple[Event, ...]  # its history, gap-free from index 0

    def to_dict(self) -> dict[str, Any]:
        """The history as a JSON-ready document in the current format."""
        return {
            "format": HISTORY_FORMAT,
            "task": task_to_dict(self.task),
            "events": [event_to_dict(e) for e in self.events],
        }

    def dumps(self) -> str:
        """The history as JSON text, indented for reading and diffing."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "history") -> TaskHistory:
        """Read a history document.

        Raises:
            ConfigurationError: not a history document, a format newer than this code
                reads, or events with a gap.
        """
        if not isinstance(data, Mapping) or "format" not in data:
            raise ConfigurationError(f"{source}: not a durable history (no `format` field)")
        version = data["format"]
        if not isinstance(version, int) or version < 1:
            raise ConfigurationError(f"{source}: unknown history format {version!r}")
        if version > HISTORY_FORMAT:
            raise ConfigurationError(
                f"{source}: history format {version} is newer than this durable reads "
                f"(up to {HISTORY_FORMAT}); upgrade durable"
            )
        try:
            task = task_from_dict(data["task"])
            events = tuple(event_from_dict(e) for e in data["events"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"{source}: malformed history: {_describe(exc)}") from None
        for i, event in enumerate(events):
            if event.index != i:
                raise ConfigurationError(
                    f"{source}: malformed history: event {i} has index {event.index}"
                )
        return cls(task=task, events=events)

    @classmethod
    def load(cls, path: Path) -> TaskHistory:
        """Read a history document from a file.

        Raises:
            ConfigurationError: the file cannot be read, is not JSON, or not a history.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"{path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigurationError(f"{path}: not a durable history (not UTF-8 text)") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"{path}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        return cls.from_dict(data, source=str(path))


def task_to_dict(task: Task) -> dict[str, Any]:
    """A task as a JSON-ready dict (the `task` object of the history format)."""
    return {
        "id": task.id,
        "name": task.name,
        "workflow_hash": task.workflow_hash,
        "entry": task.entry,
        "input": task.input,
        "state": task.state.value,
        "seed": task.seed,
        "created_at": _time(task.created_at),
        "updated_at": _time(task.updated_at),
        "wakeup_at": _time(task.wakeup_at),
        "deadline_at": _time(task.deadline_at),
        "result": task.result,
        "error": task.error,
        "owner": task.owner,
        "attempts": task.attempts,
        "parent_id": task.parent_id,
        "idempotency_key": task.idempotency_key,
        "cancel_requested": task.cancel_requested,
        "deaths": task.deaths,
        "queue": task.queue,
        "queue_key": task.queue_key,
        "priority": task.priority,
        "started_at": _time(task.started_at),
        # Which run of the task the history is (`durable.continue_as_new`): its entropy
        # derives from it, so a replay needs it.
        "run": task.run,
    }


def task_from_dict(data: Mapping[str, Any]) -> Task:
    """The inverse of `task_to_dict`. Fields after `attempts` may be missing."""
    return Task(
        id=int(data["id"]),
        name=str(data["name"]),
        workflow_hash=str(data["workflow_hash"]),
        entry=str(data.get("entry", "")),
        input=_text(data["input"], "input"),
        state=TaskState(data["state"]),
        seed=int(data["seed"]),
        created_at=_parse_time(data["created_at"]),
        updated_at=_parse_time(data.get("updated_at", data["created_at"])),
        wakeup_at=_parse_optional_time(data.get("wakeup_at")),
        deadline_at=_parse_optional_time(data.get("deadline_at")),
        result=_optional_text(data.get("result"), "result"),
        error=_optional_text(data.get("error"), "error"),
        owner=data.get("owner"),
        attempts=int(data.get("attempts", 0)),
        parent_id=data.get("parent_id"),
        idempotency_key=data.get("idempotency_key"),
        cancel_requested=bool(data.get("cancel_requested", False)),
        deaths=int(data.get("deaths", 0)),
        queue=data.get("queue"),
        queue_key=data.get("queue_key"),
        priority=int(data.get("priority", 0)),
        started_at=_parse_optional_time(data.get("started_at")),
        run=int(data.get("run", 1)),
    )


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event as a JSON-ready dict (an item of the history's `events`)."""
    return {
        "index": event.index,
        "label": event.label,
        "digest": event.digest,
        "payload": event.payload,
        "created_at": _time(event.created_at),
    }


def event_from_dict(data: Mapping[str, Any]) -> Event:
    """The inverse of `event_to_dict`."""
    digest = data.get("digest")
    return Event(
        index=int(data["index"]),
        label=str(data["label"]),
        digest=None if digest is None else str(digest),
        payload=_text(data["payload"], "payload"),
        created_at=_parse_optional_time(data.get("created_at")),
    )


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse_time(value: Any) -> datetime:
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError(f"time {value!r} has no time zone")
    return parsed


def _parse_optional_time(value: Any) -> datetime | None:
    return None if value is None else _parse_time(value)


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"`{field}` must be a string holding JSON text")
    return value


def _optional_text(value: Any, field: str) -> str | None:
    return None if value is None else _text(value, field)


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)
