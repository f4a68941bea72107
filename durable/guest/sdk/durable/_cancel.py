"""Where a workflow learns that its task is being cancelled."""

from __future__ import annotations

from wit_world.imports import task as _task

from durable import _state
from durable._errors import Cancelled


def check() -> None:
    """Raise `Cancelled` if the task is being cancelled (at most once per run)."""
    if not _state.in_step and _task.cancelled():
        raise error()


def error() -> Cancelled:
    """What a durable call raises where the host delivers the cancellation."""
    return Cancelled("the task is being cancelled")
