"""Workflows for the child-cancel tests: a parent cancels its children."""

from __future__ import annotations

import durable


@durable.workflow
def sleeper(seconds: float) -> str:
    """A child that waits long enough to be cancelled."""
    durable.sleep(seconds)
    return "slept"


@durable.workflow
def impatient(args: dict) -> dict:
    """Spawn a long sleeper and wait for it with a timeout."""
    handle = durable.spawn(sleeper, args["seconds"])
    try:
        return {"child": handle.id, "result": handle.result(timeout=args["timeout"])}
    except TimeoutError as exc:
        timed_out = str(exc)
    if args["then"] == "wait":  # see how the child ended
        try:
            handle.result()
        except durable.ChildFailed as exc:
            return {"child": handle.id, "timeout": timed_out, "then": exc.state}
    return {"child": handle.id, "timeout": timed_out}


@durable.workflow
def impatient_cancels(args: dict) -> dict:
    """Spawn a long sleeper; cancel it when the wait times out."""
    handle = durable.spawn(sleeper, args["seconds"])
    try:
        handle.result(timeout=args["timeout"], cancel_on_timeout=True)
    except TimeoutError as exc:
        timed_out = str(exc)
    durable.sleep(args.get("linger", 0))  # a kill here must not send the cancel again
    try:
        handle.result()
    except durable.ChildFailed as exc:
        return {"child": handle.id, "timeout": timed_out, "then": exc.state, "kind": exc.kind}
    return {"child": handle.id, "timeout": timed_out, "then": "not cancelled"}


@durable.workflow
def canceller(task_ids: list) -> list:
    """Cancel a fresh child, then each of `task_ids` (not children: refused)."""
    handle = durable.spawn(sleeper, 3600)
    out: list = [handle.cancel()]
    for task_id in task_ids:
        try:
            durable.ChildHandle(task_id).cancel()
        except RuntimeError as exc:
            out.append(str(exc))
    try:
        handle.result()
    except durable.ChildFailed as exc:
        out.append(exc.state)
    return out
