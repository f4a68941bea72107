"""Durable sleep. `time.sleep` inside a workflow is routed here too."""

from __future__ import annotations

from datetime import UTC, datetime

from wit_world.imports import timer as _timer
from wit_world.imports.types import Datetime

from durable import _cancel


def sleep(seconds: float) -> None:
    """Sleep durably for `seconds`.

    The deadline is recorded when the sleep starts, so a crash or a restart never moves
    it. A short sleep blocks in place; a long one suspends the task, and the worker
    holds nothing for it until the deadline.
    """
    if seconds != seconds or seconds < 0:  # NaN or negative, as time.sleep refuses
        raise ValueError("sleep length must be a non-negative number")
    _cancel.check()
    _timer.sleep(int(seconds * 1_000_000_000))
    _cancel.check()


def sleep_until(when: datetime | float) -> None:
    """Sleep durably until `when` (an aware datetime, or Unix seconds)."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            raise ValueError("sleep_until needs an aware datetime (add tzinfo=timezone.utc)")
        ts = when.astimezone(UTC).timestamp()
    else:
        ts = float(when)
    seconds = int(ts // 1)
    nanos = round((ts - seconds) * 1_000_000_000)
    if nanos >= 1_000_000_000:
        seconds, nanos = seconds + 1, nanos - 1_000_000_000
    _cancel.check()
    _timer.sleep_until(Datetime(seconds=seconds, nanoseconds=nanos))
    _cancel.check()
