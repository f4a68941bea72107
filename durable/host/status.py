"""The `durable:core/status` host function: task status values, set with their event.

This module is the whole host side of the effect (`docs/architecture.md`, "Adding an
effect", walks through it): the WIT function, the recorded operation
(`ops.STATUS_SET`), its digest, and the side-write (`SetStatus`) that every store
applies in the same transaction as the event.

* First run: the bounds are checked (`durable.core.status.refusal`), the call is
  recorded with the key as its payload, the value rides along as a side-write, and
  both are committed at once, so an observer sees the value while the task runs on.
* Replay: the recorded event answers the call; nothing is written again.
* The bound of keys per task counts the keys in the history, so a refusal is the same
  on every replay (nothing is recorded for a refused call).
* Inside a step the call is refused: a step body may run again after a crash, and its
  status would then be set by a body whose outcome was never recorded.
"""

from __future__ import annotations

import hashlib
import json
import weakref

from wasmtime import component as wc

from durable.core import ops
from durable.core.side_writes import SetStatus
from durable.core.status import refusal
from durable.host._wit import Current, add_funcs
from durable.host.context import AttemptContext
from durable.host.world import DURABLE_VERSION

__all__ = ["define_status", "set_status"]

#: The keys each running attempt has set so far (its history's, then its own).
_KEYS: weakref.WeakKeyDictionary[AttemptContext, set[str]] = weakref.WeakKeyDictionary()


def _digest(key: str, value: str) -> str:
    return hashlib.sha256(json.dumps([key, value]).encode()).hexdigest()[:16]


def set_status(ctx: AttemptContext, key: str, value: str) -> str | None:
    """The guest's `status.set`: None, or why it was refused."""
    if ctx.in_step:
        return f"durable.set_status({key!r}) inside step {ctx.step_label!r}: call it outside steps"
    keys = _KEYS.setdefault(ctx, set())
    op = ops.STATUS_SET
    digest = _digest(key, value)
    if ctx.cursor.next(op.label, digest) is not None:
        keys.add(key)
        return None
    why = refusal(key, value, len(keys), key not in keys)
    if why is not None:
        return why
    event = ctx.record(op.label, digest, op.encode({"key": key}))  # raises in a replay check
    ctx.side_writes.append(SetStatus(key=key, value=value, position=event.index))
    keys.add(key)
    ctx.flush()  # visible now, not at the next durable call
    return None


def define_status(root: wc.LinkerInstance, current: Current) -> None:
    """Link `durable:core/status`."""

    def set_(_store: object, key: str, value: str) -> str | None:
        return set_status(current(), key, value)  # a str is the `err` case

    with root.add_instance(f"durable:core/status@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"set": set_})
