"""Notifications: `durable.wait` receives, `durable.notify` sends."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from componentize_py_types import Err
from wit_world.imports import notify as _notify

from durable import _cancel
from durable._errors import NotifyError


@dataclass(frozen=True)
class Notification:
    """A notification received by this task."""

    event: str  # the event name the sender gave
    data: Any  # the payload, decoded from JSON
    created_at: datetime  # when it was sent, UTC


def wait(event: str | None = None, timeout: float | None = None) -> Notification | None:
    """Wait for the next notification (only `event`, if given); None after `timeout` s.

    Each notification is seen exactly once, in the order sent, even across crashes. A
    notification sent before the wait starts is kept for it. The timeout's deadline is
    recorded when the wait starts, so a suspension or crash does not restart it. A long
    wait suspends the task: the worker holds nothing for it meanwhile.
    """
    if timeout is not None and (timeout != timeout or timeout < 0):
        raise ValueError("timeout must be a non-negative number of seconds")
    _cancel.check()
    timeout_ns = None if timeout is None else int(timeout * 1_000_000_000)
    got = _notify.wait(event, timeout_ns)
    _cancel.check()
    if got is None:
        return None
    created = got.created_at.seconds + got.created_at.nanoseconds / 1e9
    return Notification(
        event=got.event,
        data=json.loads(got.data),
        created_at=datetime.fromtimestamp(created, tz=UTC),
    )


def notify(task_id: int, event: str, data: Any = None) -> None:
    """Send a notification to another task, exactly once even across replays.

    Raises:
        NotifyError: no such task, or it has ended.
    """
    _cancel.check()
    try:
        _notify.send(task_id, event, json.dumps(data))
    except Err as exc:
        reason = type(exc.value).__name__.split("_")[-1]
        detail = getattr(exc.value, "value", None)
        text = {
            "TaskNotFound": f"task {task_id} does not exist",
            "TaskEnded": f"task {task_id} has ended",
        }.get(reason, str(detail))
        raise NotifyError(text) from None
