"""A guest kept live across its suspensions, on a thread of its own.

Without the instance cache, a wait longer than `suspend_after` unwinds the guest and
ends the attempt; the next attempt replays the whole history. With it, the wait
*parks* the guest's thread inside the host call instead (`AttemptContext.park`): the
worker commits the suspension exactly as before (events, output and `Suspended`, in
one `finish`), so that any worker may still claim the task and replay it, and keeps the
instance in its `InstanceCache`. If this worker claims the task again and the instance
is still valid (`durable.worker.resume`), it gets the new lease and the guest's wait
goes on where it stopped: no replay. Otherwise the instance is evicted: the parked call
raises `Evicted`, the guest unwinds, and its thread ends without writing anything.

The thread is our own, not one of anyio's (a parked instance outlives the attempt, and
the worker task group, that started it); the worker hears of it through `wait`, which
the thread signals on the event loop of whoever resumed it last.
"""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime

import anyio
import anyio.from_thread
import anyio.lowlevel
from wasmtime import component as wc

from durable.core.model import Task
from durable.core.signals import Evicted
from durable.host.context import AttemptContext, Sink
from durable.host.runtime import AttemptEnd, Runtime, suspended
from durable.tracing import AttemptTrace

_RESUME = "resume"
_EVICT = "evict"


class LiveInstance:
    """One task's guest, running or parked in a wait, and the hand-over with the worker."""

    def __init__(
        self, runtime: Runtime, component: wc.Component, ctx: AttemptContext, workflow_hash: str
    ) -> None:
        """Prepare to run `ctx`'s attempt of `component` (the task's `workflow_hash`)."""
        self.runtime = runtime
        self.component = component
        self.ctx = ctx
        self.workflow_hash = workflow_hash
        # How many events the history held when the guest last parked: the stored
        # history must still hold exactly these for the instance to go on.
        self.seen = 0
        self._cond = threading.Condition()
        self._answer: str | None = None
        self._evicted = False
        self._report: tuple[AttemptEnd, bool] | BaseException | None = None
        self._signal = anyio.Event()
        self._token: anyio.lowlevel.EventLoopToken | None = None
        self._thread = threading.Thread(
            target=self._main, name=f"durable task {ctx.task.id}", daemon=True
        )
        ctx.park = self._park

    # -- on the event loop ------------------------------------------------------------------

    def start(self) -> None:
        """Start the guest; `wait` for it to end or park."""
        self._arm()
        self._thread.start()

    def resume(self, task: Task, sink: Sink, trace: AttemptTrace | None) -> None:
        """Hand the parked guest its new attempt (claimed by this worker): it goes on."""
        ctx = self.ctx
        ctx.task = task
        ctx.attempt = task.attempts
        ctx.sink = sink
        ctx.trace = trace
        self._arm()
        with self._cond:
            self._answer = _RESUME
            self._cond.notify_all()

    async def wait(self) -> tuple[AttemptEnd, bool]:
        """How the attempt ended, and whether the guest is parked (True) or gone.

        Shielded, like a thread run by anyio: the guest cannot be cancelled, only told
        to stop, and its end must still be written or dropped by the caller.
        """
        with anyio.CancelScope(shield=True):
            await self._signal.wait()
        report = self._report
        if isinstance(report, BaseException):
            raise report
        assert report is not None
        return report

    def evict(self) -> None:
        """Drop a parked guest: it unwinds and its thread ends, writing nothing."""
        with self._cond:
            self._evicted = True
            self._answer = _EVICT
            self._cond.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the guest's thread to end; whether it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _arm(self) -> None:
        self._signal = anyio.Event()
        self._token = anyio.lowlevel.current_token()
        self._report = None

    # -- on the guest's thread --------------------------------------------------------------

    def _main(self) -> None:
        report: tuple[AttemptEnd, bool] | BaseException
        try:
            report = (self.runtime.run(self.component, self.ctx), False)
        except BaseException as exc:  # the worker's `except` clauses decide, as before
            report = exc
        with self._cond:
            if self._evicted:
                return  # nobody waits for it: its suspension was written already
        self._post(report)

    def _park(self, wakeup: datetime | None, on_event: bool) -> None:
        """`AttemptContext.park`: report the suspension, then wait for the worker."""
        end = suspended(self.ctx, wakeup, on_event=on_event)
        self.seen = self.ctx.cursor.position
        with self._cond:
            if self._evicted:
                raise Evicted()
            self._answer = None
        self.ctx.parked = True
        try:
            self._post((end, True))
            with self._cond:
                while self._answer is None:
                    self._cond.wait()
                answer = self._answer
        finally:
            self.ctx.parked = False
        if answer == _EVICT:
            raise Evicted()

    def _post(self, report: tuple[AttemptEnd, bool] | BaseException) -> None:
        self._report = report
        with contextlib.suppress(RuntimeError):  # that event loop has ended: nobody waits
            anyio.from_thread.run_sync(self._signal.set, token=self._token)
