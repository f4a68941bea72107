"""Child tasks: `durable.spawn` starts one, `handle.result()` waits for it, and
`handle.cancel()` cancels it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from componentize_py_types import Err
from wit_world.imports import child_control as _child_control
from wit_world.imports import children as _children
from wit_world.imports import spawn_options as _spawn_options

from durable import _cancel
from durable._errors import ChildFailed, SpawnError
from durable._workflows import entry_name


class ChildHandle:
    """A child task started by `durable.spawn`."""

    def __init__(self, child_id: int) -> None:
        self.id = child_id

    def result(self, timeout: float | None = None, *, cancel_on_timeout: bool = False) -> Any:
        """Wait for the child to end and return its result.

        With a timeout, raises `TimeoutError` when it passes (the deadline is recorded,
        so it survives suspensions and crashes). The child goes on running then, unless
        `cancel_on_timeout` is true: then it is cancelled first, as by `cancel()`. A
        long wait suspends this task.

        Raises:
            ChildFailed: the child failed or was cancelled.
            TimeoutError: the timeout passed first.
        """
        if timeout is not None and (timeout != timeout or timeout < 0):
            raise ValueError("timeout must be a non-negative number of seconds")
        _cancel.check()
        timeout_ns = None if timeout is None else int(timeout * 1_000_000_000)
        outcome = _children.join(self.id, timeout_ns)
        _cancel.check()
        if outcome is None:
            if cancel_on_timeout:
                self.cancel()
                raise TimeoutError(
                    f"child task {self.id} did not end within {timeout} s; it was cancelled"
                )
            raise TimeoutError(f"child task {self.id} did not end within {timeout} s")
        if outcome.state == "complete":
            return json.loads(outcome.value or "null")
        error = json.loads(outcome.error or "{}")
        raise ChildFailed(
            self.id, outcome.state, error.get("kind", "Error"), error.get("message", "")
        )

    def cancel(self) -> bool:
        """Cancel the child and its unfinished descendants, as `durable cancel` would.

        A ready or suspended child ends `cancelled` at once; a running one is asked to
        stop (its `durable.Cancelled` cleanup runs). The request is recorded and sent
        with its event: exactly once, even across replays. Returns whether the child
        was still running; a child that has ended is left as it was. `result()` then
        raises `ChildFailed` with state "cancelled" (or returns, if it had completed).

        Raises:
            RuntimeError: called inside a step.
        """
        try:
            running: bool = _child_control.cancel(self.id)
        except Err as exc:
            raise RuntimeError(str(exc.value)) from None
        return running

    def __repr__(self) -> str:
        return f"ChildHandle(id={self.id})"


def spawn(
    workflow: Callable[..., Any] | str,
    input: Any = None,
    *,
    entry: str = "",
    name: str = "",
    queue: str | None = None,
    queue_key: str | None = None,
    priority: int | None = None,
) -> ChildHandle:
    """Start a child task and return its handle. Its id is recorded: never spawned twice.

    `workflow` is an entry function of this workflow file (the child runs the same
    binary from that entry), or the name of another registered workflow (then `entry`
    picks its entry function, default its own default).

    `queue` launches the child onto a named queue: it starts only within the queue's
    limits (`durable queue set`), as a task launched with `--queue` does; `queue_key`
    is its key for the queue's per-key limit, and `priority` orders it in the queue
    (higher first; None: the queue's default).

    Raises:
        SpawnError: no workflow is registered under that name, or the placement is
            refused (a bad queue name, a key without a queue, a store without queues).
    """
    _cancel.check()
    if callable(workflow):
        other, entry = None, entry_name(workflow)
    else:
        other = workflow
    request = _children.SpawnRequest(
        workflow=other, entry=entry, input=json.dumps(input), name=name
    )
    try:
        if queue is None and queue_key is None and priority is None:
            child_id = _children.spawn(request)
        else:
            options = _spawn_options.QueueOptions(
                queue=queue, queue_key=queue_key, priority=priority
            )
            child_id = _spawn_options.spawn_queued(request, options)
    except Err as exc:
        detail = getattr(exc.value, "value", "")
        if type(exc.value).__name__.endswith("WorkflowNotFound"):
            raise SpawnError(f"no workflow is registered as {detail!r}") from None
        raise SpawnError(str(detail)) from None
    return ChildHandle(child_id)
