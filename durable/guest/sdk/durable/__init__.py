"""The `durable` API a workflow uses inside its component.

A workflow is a plain Python file with one entry function that takes the task's input
and returns its result::

    import durable

    @durable.step
    def charge(order_id: str, cents: int) -> dict:
        ...  # runs once; on replay its recorded result comes back instead

    @durable.workflow
    def main(order: dict) -> str:
        receipt = charge(order["id"], order["cents"])
        durable.sleep(3600)  # durable: a crash or restart never moves the deadline
        return receipt["id"]

`durable.http` sends HTTP requests at least once and records their outcomes.
`durable.transaction` runs SQL on the worker's own database exactly once (`durable.sql`).
`durable.set_status(key, value)` publishes a value that anyone outside can read while
the task runs.

`time.time()`, `time.sleep()`, `datetime.now()`, `random` and `uuid.uuid4()` are safe
in a workflow: the host records the clock and derives randomness from the task's seed,
so a replay sees the same values. This package is built into the component and never
imports the host's modules.
"""

from __future__ import annotations

from durable import http, sql
from durable._children import ChildHandle, spawn
from durable._continue import continue_as_new
from durable._errors import (
    Cancelled,
    ChildFailed,
    DurableGuestError,
    NotifyError,
    SpawnError,
    StepFailed,
)
from durable._info import TaskInfo, info
from durable._notify import Notification, notify, wait
from durable._patch import deprecate_patch, patched
from durable._status import set_status
from durable._steps import Retry, step, step_attempt
from durable._timers import sleep, sleep_until
from durable._workflows import workflow
from durable.sql import transaction

__all__ = [
    "Cancelled",
    "ChildFailed",
    "ChildHandle",
    "DurableGuestError",
    "Notification",
    "NotifyError",
    "Retry",
    "SpawnError",
    "StepFailed",
    "TaskInfo",
    "continue_as_new",
    "deprecate_patch",
    "http",
    "info",
    "notify",
    "patched",
    "set_status",
    "sleep",
    "sleep_until",
    "spawn",
    "sql",
    "step",
    "step_attempt",
    "transaction",
    "wait",
    "workflow",
]
