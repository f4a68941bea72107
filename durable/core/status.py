"""Task status values: what a workflow publishes about itself while it runs.

A workflow calls `durable.set_status(key, value)`; anyone outside reads the latest
value per key (`durable status`, `durable show`, `Client.status`). Each call is a
recorded event, and the value is a side-write (`SetStatus`) committed with it, so a
value is visible exactly when the event that set it is durable, and a replay, which
answers the call from the history, sets nothing again.

The bounds keep one task from filling the database through its status: they are
checked on the host, and refused with a workflow error naming the bound.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

#: The longest key, in UTF-8 bytes.
MAX_KEY_BYTES = 256
#: The largest value, as JSON text in UTF-8 bytes.
MAX_VALUE_BYTES = 64 * 1024
#: How many keys one task may set.
MAX_KEYS = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusValue:
    """The latest value of one status key of a task, as stored."""

    key: str  # the key the workflow chose
    value: str  # JSON text
    # The index of the current run's event that set it; -1 for a value carried over
    # from an earlier run (`durable.continue_as_new`), in effect from the run's start.
    position: int
    updated_at: datetime  # when that event was committed (the store's clock)

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict: the value decoded, the time in ISO 8601."""
        return {
            "value": json.loads(self.value),
            "position": self.position,
            "updated_at": self.updated_at.isoformat(),
        }


def refusal(key: str, value: str, known_keys: int, is_new: bool) -> str | None:
    """Why `set_status(key, value)` is refused (a workflow error), or None.

    `value` is the JSON text; `known_keys` how many keys the task has set so far;
    `is_new` whether `key` is not one of them.
    """
    if not key:
        return "status key must not be empty"
    if len(key.encode()) > MAX_KEY_BYTES:
        return f"status key of {len(key.encode())} bytes is over the limit of {MAX_KEY_BYTES}"
    try:
        json.loads(value)
    except json.JSONDecodeError:
        return f"status value for {key!r} is not JSON text"
    size = len(value.encode())
    if size > MAX_VALUE_BYTES:
        return f"status value for {key!r} of {size} bytes is over the limit of {MAX_VALUE_BYTES}"
    if is_new and known_keys >= MAX_KEYS:
        return f"task has {known_keys} status keys, the limit: cannot add {key!r}"
    return None
