"""The `durable:core/child-control` host function: a workflow cancels one of its children.

The whole host side of the effect (see "Adding an effect" in `docs/architecture.md`):

* First run: the child is looked up. A task that is not a child of this one is refused
  (a workflow cancels only its own children), and the refusal is recorded so a replay
  gives the same answer. Otherwise the call is recorded with whether the child was
  still running, and then the cancel request rides along as a `CancelChild` side-write
  that every store applies in the same transaction as the event, committed at once.
  A crash before that commit loses both the event and the request; the replay makes
  the call again. A crash after it has both.
* Replay: the recorded event answers; nothing is sent again.
* Inside a step the call is refused: the step's body may run again, and its effects
  belong in its own record, not in events of their own.
"""

from __future__ import annotations

import hashlib
import json

from wasmtime import component as wc

from durable.core import ops
from durable.core.side_writes import CancelChild
from durable.errors import TaskNotFoundError
from durable.host._wit import Current, add_funcs
from durable.host.context import AttemptContext
from durable.host.world import DURABLE_VERSION

__all__ = ["cancel_child", "define_child_control"]


def _digest(child_id: int) -> str:
    return hashlib.sha256(json.dumps(["cancel", child_id]).encode()).hexdigest()[:16]


def _refusal(ctx: AttemptContext, child_id: int) -> str | None:
    """Why `child_id` cannot be cancelled by this task, or None."""
    try:
        child = ctx.sink.get_task(child_id)
    except TaskNotFoundError:
        return f"task {child_id} does not exist"
    if child.parent_id != ctx.task.id:
        return f"task {child_id} is not a child of this task"
    return None


def cancel_child(ctx: AttemptContext, child_id: int) -> bool | str:
    """The guest's `child-control.cancel`: whether the child was still running (a cancel
    request went with the event), or why the call was refused (a str)."""
    if ctx.in_step:
        return f"cancelling child {child_id} inside step {ctx.step_label!r}: call it outside steps"
    op = ops.CHILDREN_CANCEL
    digest = _digest(child_id)
    recorded = ctx.cursor.next(op.label, digest)
    if recorded is None:
        if ctx.replay_only:
            ctx.record(op.label, digest, op.encode({}))  # raises HistoryExhausted
        ctx.flush()  # what the workflow did before commits first, as for any effect
        why = _refusal(ctx, child_id)
        payload: dict[str, object]
        if why is not None:
            payload = {"refused": why}
        else:
            # Looked at now; if it ends before the commit, the store leaves it as it is.
            payload = {"running": not ctx.sink.get_task(child_id).state.is_terminal}
        ctx.record(op.label, digest, op.encode(payload))
        if payload.get("running"):
            ctx.side_writes.append(CancelChild(task_id=child_id))
        ctx.flush()  # the request is sent now, not at the next durable call
    else:
        payload = op.decode(recorded.payload)
    refused = payload.get("refused")
    return str(refused) if refused is not None else bool(payload.get("running"))


def define_child_control(root: wc.LinkerInstance, current: Current) -> None:
    """Link `durable:core/child-control`."""

    def cancel(_store: object, child: int) -> bool | str:
        return cancel_child(current(), child)  # a bool is the `ok` case, a str the `err`

    with root.add_instance(f"durable:core/child-control@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"cancel": cancel})
