"""Every recorded operation: its event label, and how its payload is written and read.

A label names an operation in the history; the payload is its outcome as JSON text.
Both are part of the on-disk format (`tests/fixtures/histories` holds golden ones), so
each is defined here once and every layer (the host functions, the replay check, the
tools that read histories) uses these names instead of repeating string literals.

Operations with a fixed label are `Op` values. Families whose label carries a name
chosen by the workflow (`step NAME`, `sql LABEL`, `http GET url`) have a prefix and a
function that builds the label.

Every payload is JSON; the codec of each operation says which Python value it holds,
so that a reader gets a typed value and a writer cannot change the bytes by accident
(`json.dumps` of an int is `str(int)`, which is what the first recordings wrote).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# What some operations record: a JSON object, or null (a wait that timed out).
JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Op(Generic[T]):
    """One recorded operation with a fixed label.

    `encode` and `decode` are plain JSON: the type parameter documents (and checks, for
    mypy) the value each operation records.
    """

    label: str  # the event label, exactly as stored

    def encode(self, value: T) -> str:
        """The payload recorded for `value`."""
        return json.dumps(value)

    def decode(self, payload: str) -> T:
        """The value a recorded payload holds."""
        value: T = json.loads(payload)
        return value


# -- WASI shadows ------------------------------------------------------------------------

#: A wall-clock reading outside steps: nanoseconds since the epoch.
CLOCK_NOW: Op[int] = Op("wasi:clocks/wall-clock.now")

# -- durable:core/timer and task ---------------------------------------------------------

#: A relative sleep (digest: the duration in ns): the deadline it computed, in ns.
TIMER_SLEEP: Op[int] = Op("durable:timer.sleep")
#: An absolute sleep (digest: the deadline in ns): that deadline, in ns.
TIMER_SLEEP_UNTIL: Op[int] = Op("durable:timer.sleep-until")
#: The delivery of a cancellation to the guest: always true.
TASK_CANCELLED: Op[bool] = Op("durable:task.cancelled")

# -- durable:core/notify -----------------------------------------------------------------

#: The deadline of a notification wait with a timeout, in ns.
NOTIFY_DEADLINE: Op[int] = Op("durable:notify.deadline")
#: A notification consumed ({"event", "data", "created_at", "seq"}), or null.
NOTIFY_WAIT: Op[JsonObject | None] = Op("durable:notify.wait")
#: A notification sent: {"refused": null | "task-not-found" | "task-ended"}.
NOTIFY_SEND: Op[JsonObject] = Op("durable:notify.send")

# -- durable:core/children ---------------------------------------------------------------

#: A child spawned: {"id": n} or {"error": [kind, detail]}.
CHILDREN_SPAWN: Op[JsonObject] = Op("durable:children.spawn")
#: The deadline of a join with a timeout, in ns.
CHILDREN_DEADLINE: Op[int] = Op("durable:children.deadline")
#: A child's outcome ({"state", "value", "error"}), or null at the deadline.
CHILDREN_JOIN: Op[JsonObject | None] = Op("durable:children.join")
#: A child cancelled (digest: its id): {"running": bool} (whether it had not ended yet,
#: so a cancel request was sent with the event) or {"refused": message}.
CHILDREN_CANCEL: Op[JsonObject] = Op("durable:child-control.cancel")
#: A child spawned onto a queue (`spawn-options.spawn-queued`): as `CHILDREN_SPAWN`.
CHILDREN_SPAWN_QUEUED: Op[JsonObject] = Op("durable:spawn-options.spawn-queued")

# -- durable:core/status -----------------------------------------------------------------

#: A status value set (digest: of the key and value): null, or {"error": message}.
STATUS_SET: Op[JsonObject | None] = Op("durable:status.set")

# -- durable:core/patch ------------------------------------------------------------------

#: The payload of a patch marker (`patch ID`, a family below): always JSON true.
PATCH_PAYLOAD = "true"

# -- families: the workflow names the operation ------------------------------------------

STEP_PREFIX = "step "  # `step NAME`, chosen by the SDK; payload: the step's outcome
SQL_PREFIX = "sql "  # `sql LABEL`: a workflow SQL transaction's whole conversation
HTTP_PREFIX = "http "  # `http METHOD url`: a request's response or typed error
PATCH_PREFIX = "patch "  # `patch ID`: a `durable.patched(ID)` marker; payload: true


def sql_label(label: str) -> str:
    """The event label of the SQL transaction the workflow labelled `label`."""
    return f"{SQL_PREFIX}{label}"


def patch_label(patch_id: str) -> str:
    """The event label of the marker `durable.patched(patch_id)` records."""
    return f"{PATCH_PREFIX}{patch_id}"


#: Every operation with a fixed label, by label (for tools that read histories).
FIXED: dict[str, Op[Any]] = {
    op.label: op
    for op in (
        CLOCK_NOW,
        TIMER_SLEEP,
        TIMER_SLEEP_UNTIL,
        TASK_CANCELLED,
        NOTIFY_DEADLINE,
        NOTIFY_WAIT,
        NOTIFY_SEND,
        CHILDREN_SPAWN,
        CHILDREN_DEADLINE,
        CHILDREN_JOIN,
        STATUS_SET,
        CHILDREN_CANCEL,
    )
}
