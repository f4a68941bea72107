"""Status values: `durable.set_status` publishes what the workflow is doing."""

from __future__ import annotations

import json
from typing import Any

from componentize_py_types import Err
from wit_world.imports import status as _status

from durable import _cancel


def set_status(key: str, value: Any) -> None:
    """Set this task's status value for `key` (any JSON value) while it runs.

    Anyone outside reads the latest value of each key (`durable status TASK`,
    `durable show`, `Client.status`) as soon as this returns. Recorded: a replay sets
    nothing again.

    Raises:
        TypeError: `key` is not a str, or `value` is not JSON-serialisable.
        ValueError: refused by the host: the key is empty or over 256 bytes, the value
            is over 64 KiB as JSON, the task would have more than 1000 keys, or the
            call is inside a step.
    """
    if not isinstance(key, str):
        raise TypeError(f"status key must be a str, not {type(key).__name__}")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"status value for {key!r} is not JSON-serialisable: {exc}") from None
    _cancel.check()
    try:
        _status.set(key, text)
    except Err as exc:
        raise ValueError(str(exc.value)) from None
