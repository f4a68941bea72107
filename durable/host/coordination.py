"""Host functions for coordination: notifications, child tasks, cancellation.

Each operation is recorded like any other host call. Consuming a notification and
recording it commit together (the consumed sequence numbers ride along with the
event), so a workflow sees each notification exactly once. Sends and spawns carry an
idempotency key derived from the sender's own event position, so a replay that
repeats them changes nothing: exactly once, not just at least once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from wasmtime import component as wc

from durable.core import ops, runs
from durable.core.limits import input_too_large
from durable.core.model import NewTask, Notification, TaskState
from durable.core.queue import Placement, placement_problem
from durable.core.side_writes import ConsumeNotification
from durable.errors import ConfigurationError
from durable.host._wit import Current, add_funcs, record
from durable.host.context import AttemptContext
from durable.host.world import DURABLE_VERSION
from durable.task_names import name_problem, reserved_name


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _key(ctx: AttemptContext, kind: str) -> str:
    """A key unique to this call: task, run, event position, and calls so far at it."""
    n = ctx.next_call_number()
    return runs.effect_key(kind, ctx.task.id, ctx.task.run, ctx.cursor.position, n)


def _datetime(seconds: float) -> wc.Record:
    whole = int(seconds // 1)
    return record(seconds=whole, nanoseconds=int((seconds - whole) * 1e9))


# -- notifications --------------------------------------------------------------------


def wait_notification(
    ctx: AttemptContext, event: str | None, timeout_ns: int | None
) -> dict[str, Any] | None:
    """The guest's `notify.wait`: the next notification, or None at the deadline."""
    digest = _digest(event, timeout_ns)
    deadline = ctx.recorded_deadline(ops.NOTIFY_DEADLINE, digest, timeout_ns)
    op = ops.NOTIFY_WAIT
    recorded = ctx.cursor.next(op.label, digest)
    if recorded is not None:
        return op.decode(recorded.payload)
    if ctx.replay_only:
        ctx.record(op.label, digest, op.encode(None))  # raises HistoryExhausted
    ctx.flush()  # notifications consumed earlier are marked before we look again

    def poll() -> Notification | None:
        return ctx.sink.next_notification(ctx.task.id, event)

    found = ctx.await_condition(poll, deadline, on_event=True)
    if found is None:
        ctx.record(op.label, digest, op.encode(None))
        ctx.maybe_flush()
        return None
    payload = {
        "event": found.event,
        "data": found.data,
        "created_at": found.created_at.timestamp(),
        "seq": found.seq,
    }
    ctx.record(op.label, digest, op.encode(payload))
    ctx.side_writes.append(ConsumeNotification(seq=found.seq))
    ctx.maybe_flush()
    return payload


def send_notification(ctx: AttemptContext, task_id: int, event: str, data: str) -> str | None:
    """The guest's `notify.send`: None, or why it was refused. Exactly once."""
    key = _key(ctx, "notify")

    op = ops.NOTIFY_SEND

    def perform() -> str:
        return op.encode({"refused": ctx.sink.notify(task_id, event, data, key)})

    payload = ctx.effect(op.label, _digest(task_id, event, data), perform)
    refused: str | None = op.decode(payload)["refused"]
    return refused


# -- children -------------------------------------------------------------------------


def spawn_child(
    ctx: AttemptContext,
    workflow: str | None,
    entry: str,
    input_: str,
    name: str,
    placement: Placement | None = None,
) -> dict[str, Any]:
    """The guest's `children.spawn` (and, with a placement, `spawn-options.spawn-queued`):
    {"id": n} or {"error": [kind, detail]}."""
    key = _key(ctx, "spawn")
    op = ops.CHILDREN_SPAWN if placement is None else ops.CHILDREN_SPAWN_QUEUED
    # A queued spawn's digest covers its placement: a replay that moves the child to
    # another queue is a change of code, caught as nondeterminism.
    digest = (
        _digest(workflow, entry, input_, name)
        if placement is None
        else _digest(workflow, entry, input_, name, *placement)
    )
    queue, queue_key, priority = placement or (None, None, None)

    def perform() -> str:
        # Checked here, inside the recorded effect: the outcome is replayed as recorded
        # even if the limit changes between attempts.
        too_large = input_too_large(input_, ctx.config.max_payload_bytes)
        if too_large is not None:
            return op.encode({"error": ["other", f"cannot spawn the child: {too_large}"]})
        if workflow:
            # durable's interpreter components are not workflows a guest may start.
            workflow_hash = None if reserved_name(workflow) else ctx.sink.find_workflow(workflow)
            if workflow_hash is None:
                return op.encode({"error": ["workflow-not-found", workflow]})
        else:
            workflow_hash = ctx.task.workflow_hash
        label = name or f"{ctx.task.name}/{entry or workflow or 'child'}"
        problem = name_problem(label)  # the guest chose it: check as a launch would
        if problem is not None:
            return json.dumps({"error": ["other", f"cannot spawn the child: {problem}"]})
        problem = placement_problem(queue, queue_key)
        if problem is not None:
            return op.encode({"error": ["other", f"cannot spawn the child: {problem}"]})
        spec = NewTask(
            name=label,
            workflow_hash=workflow_hash,
            input=input_,
            entry=entry,
            parent_id=ctx.task.id,
            idempotency_key=key,
            queue=queue,
            queue_key=queue_key,
            priority=priority,
        )
        try:
            return op.encode({"id": ctx.sink.spawn(spec)})
        except ConfigurationError as exc:  # a store without queues
            return op.encode({"error": ["other", f"cannot spawn the child: {exc}"]})

    return op.decode(ctx.effect(op.label, digest, perform))


def join_child(ctx: AttemptContext, child_id: int, timeout_ns: int | None) -> dict[str, Any] | None:
    """The guest's `children.join`: the child's outcome, or None at the deadline."""
    digest = _digest(child_id, timeout_ns)
    deadline = ctx.recorded_deadline(ops.CHILDREN_DEADLINE, digest, timeout_ns)
    op = ops.CHILDREN_JOIN
    recorded = ctx.cursor.next(op.label, digest)
    if recorded is not None:
        return op.decode(recorded.payload)
    if ctx.replay_only:
        ctx.record(op.label, digest, op.encode(None))  # raises HistoryExhausted
    ctx.flush()

    def poll() -> dict[str, Any] | None:
        child = ctx.sink.get_task(child_id)
        if not child.state.is_terminal:
            return None
        return {
            "state": child.state.value,
            "value": child.result if child.state is TaskState.COMPLETE else None,
            "error": child.error,
        }

    outcome = ctx.await_condition(poll, deadline, on_event=True)
    ctx.record(op.label, digest, op.encode(outcome))
    ctx.maybe_flush()
    return outcome


# -- linking --------------------------------------------------------------------------


def define_coordination(root: wc.LinkerInstance, current: Current) -> None:
    """Link `durable:core/notify` and `durable:core/children`, and `task.cancelled`."""

    def wait(_store: object, event: str | None, timeout_ns: int | None) -> wc.Record | None:
        found = wait_notification(current(), event, timeout_ns)
        if found is None:
            return None
        return record(
            event=found["event"], data=found["data"], created_at=_datetime(found["created_at"])
        )

    def send(_store: object, task_id: int, event: str, data: str) -> wc.Variant | None:
        refused = send_notification(current(), task_id, event, data)
        return None if refused is None else wc.Variant(refused, None)

    with root.add_instance(f"durable:core/notify@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"wait": wait, "send": send})

    def spawn(_store: object, request: Any) -> int | wc.Variant:
        out = spawn_child(current(), request.workflow, request.entry, request.input, request.name)
        if "id" in out:
            return int(out["id"])
        kind, detail = out["error"]
        return wc.Variant(kind, detail)

    def join(_store: object, child: int, timeout_ns: int | None) -> wc.Record | None:
        outcome = join_child(current(), child, timeout_ns)
        if outcome is None:
            return None
        return record(state=outcome["state"], value=outcome["value"], error=outcome["error"])

    with root.add_instance(f"durable:core/children@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"spawn": spawn, "join": join})
