"""A cancelled task's next durable call stops a guest that never asked.

The guest SDKs call `task.cancelled()` before each durable call and raise their
cancellation exception, so cleanup can run. A guest written without an SDK may never
call it: before this gate, its blocking calls returned early and it carried on as if
nothing had happened, ending `complete`. Now, while the task is being cancelled and
the guest has not been told, a durable call that starts something new (a step, a
sleep, a request, a wait, a spawn, a transaction) traps instead, and the task ends
`cancelled`. Calls that finish what was started (`step.exit`, the statements and the
commit of an open transaction) are not gated, so a guest is never cut off halfway
through one. A replay is not gated either: it answers from the history, which holds
the cancellation where the guest was told of it.

A trap rather than an error value: `timer.sleep` and `step.enter` have no error case,
and any value they returned could be mistaken for success.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from durable.core.signals import ControlSignal

if TYPE_CHECKING:
    from durable.host.context import AttemptContext

#: Durable functions that start something, by WIT name (unique among the interfaces).
GATED = frozenset(
    {
        "enter", "sleep", "sleep-until", "fetch", "wait", "send", "spawn", "spawn-queued",
        "join", "begin",
    }
)  # fmt: skip
#: The task's error message when the gate stops a guest.
MESSAGE = "stopped at a durable call: the workflow did not read task.cancelled"


class CancelledAtCall(ControlSignal):
    """The guest made a durable call while its task was being cancelled, untold."""


def gate(
    name: str, current: Callable[[], AttemptContext], fn: Callable[..., Any]
) -> Callable[..., Any]:
    """`fn`, stopping the guest first if `name` starts something and the task is
    being cancelled without the guest knowing (see the module docstring)."""
    if name not in GATED:
        return fn

    def gated(store: object, *args: Any) -> Any:
        check(current())
        return fn(store, *args)

    return gated


def check(ctx: AttemptContext) -> None:
    """Stop the guest if the task is being cancelled without the guest knowing."""
    if (
        ctx.cancel.is_set()
        and not ctx.cancel_delivered
        and not ctx.in_step
        and not ctx.cursor.replaying
    ):
        raise CancelledAtCall()
