"""The `durable:core/continuation` host function: `durable.continue_as_new(input)`.

It ends the attempt like a return: the guest is unwound with the `ContinueAsNew`
signal, and the runtime turns it into the `ContinuedAsNew` outcome, which the store
applies in the attempt's last transaction (the run's history is kept as run n, the task
becomes `ready` at run n + 1 with the new input and no history). Nothing is recorded:
a crash before that transaction replays the run, which reaches the same call again.
Like a return, it must come after the whole recorded history (else nondeterminism).
"""

from __future__ import annotations

import json

from wasmtime import component as wc

from durable.core.limits import input_too_large
from durable.core.signals import ContinueAsNew
from durable.host._sql_cursor import TransactionCursor
from durable.host._wit import Current, add_funcs
from durable.host.context import AttemptContext
from durable.host.world import DURABLE_VERSION

__all__ = ["continue_as_new", "define_continuation"]


def continue_as_new(ctx: AttemptContext, input_: str) -> str:
    """The guest's `continuation.continue-as-new`: raises `ContinueAsNew`, or returns
    why the call was refused."""
    if ctx.in_step:
        return f"durable.continue_as_new inside step {ctx.step_label!r}: call it outside steps"
    if isinstance(ctx.cursor, TransactionCursor):
        label = ctx.cursor.conversation.label
        return f"durable.continue_as_new inside SQL transaction {label!r}"
    too_large = input_too_large(input_, ctx.config.max_payload_bytes)
    if too_large is not None:
        return f"cannot continue as new: {too_large}"
    try:
        json.loads(input_)
    except ValueError as exc:
        return f"cannot continue as new: the input is not JSON ({exc})"
    ctx.cursor.check_finished()  # like a return: after the whole recorded history
    raise ContinueAsNew(input_)


def define_continuation(root: wc.LinkerInstance, current: Current) -> None:
    """Link `durable:core/continuation`."""

    def continue_(_store: object, input_: str) -> str | None:
        return continue_as_new(current(), input_)  # a str is the `err` case

    with root.add_instance(f"durable:core/continuation@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"continue-as-new": continue_})
