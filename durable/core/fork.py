"""Where a fork may cut a history, and where `durable retry` cuts a failed task's.

Pure rules, no I/O: the store copies the events (`durable.storage.fork`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from durable.core import ops
from durable.core.model import Event

_DIVERGED_AT = re.compile(r"nondeterminism at event (\d+):")


def check_at(at: int, events: int, origin_id: int) -> str | None:
    """Why `at` cannot cut a history of `events` events, or None."""
    if 0 <= at <= events:
        return None
    return f"--at {at} is outside task {origin_id}'s history of {events} events (0 .. {events})"


def retry_at(events: Sequence[Event], error: str | None) -> int:
    """How many events of a failed task a retry keeps: its last clean event is the one
    before the failure.

    * A nondeterminism error names the event where the code departed: cut there.
    * Otherwise, cut before the last step that recorded an error, so that it runs
      again (a step's failure is recorded: replaying it would fail the same way).
    * Otherwise keep everything: the failure came after the history (a raise in the
      workflow's own code, a trap), and running the code again reaches it afresh.
    """
    found = _DIVERGED_AT.search(_message(error))
    if found is not None:
        return min(int(found.group(1)), len(events))
    for event in reversed(events):
        if event.label.startswith(ops.STEP_PREFIX) and _is_error(event.payload):
            return event.index
    return len(events)


def _message(error: str | None) -> str:
    try:
        value = json.loads(error or "{}")
    except json.JSONDecodeError:
        return ""
    return str(value.get("message", "")) if isinstance(value, dict) else ""


def _is_error(payload: str) -> bool:
    try:
        value = json.loads(payload)
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and "error" in value and "ok" not in value
