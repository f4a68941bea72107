"""The state of one task attempt, as the host functions see it.

An `AttemptContext` lives on the thread that runs the guest. It owns the replay cursor,
the output captured from the guest, the deterministic entropy stream and the commit
policy. It writes through a `Sink`, which the worker bridges to the async store.

Output (`durable.core.output` has the rule) arrives on wasmtime's I/O threads, one call
per guest write, while the guest's thread waits for the write to finish. It is
committed with the events before it, in one `Sink.write`, when enough of it is pending
or it has waited long enough: checked on each write, at each durable call, and every
watchdog slice while the guest computes (`on_tick`). A flush made on an I/O thread
cannot raise into the guest; its failure is deferred to the guest's next durable call
or slice, before which the guest can make nothing durable or visible.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from durable import metrics
from durable.bundle import Bundle
from durable.core import machine as m
from durable.core import ops, runs
from durable.core.model import Event, LogChunk, NewTask, Notification, Stream, Task
from durable.core.output import OutputBuffer
from durable.core.replay import ReplayCursor
from durable.core.side_writes import SideWrite
from durable.core.signals import Release, Suspend, TimedOut
from durable.errors import OutputLimitExceeded
from durable.host._sql_cursor import TransactionCursor
from durable.host.ahead_window import NOTHING as NOTHING_AHEAD
from durable.host.ahead_window import AheadWindow
from durable.host.config import HostConfig
from durable.tracing import AttemptTrace

if TYPE_CHECKING:
    from durable.host.monotonic import ReadyPollables

T = TypeVar("T")


def _utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC)


def _size(n: int) -> str:
    """`n` bytes for a message: "64 MiB", "512 KiB", "100 bytes"."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} bytes"


# The panic note componentize-py's runtime prints after an uncaught guest exception:
# noise for users, who get the Python traceback itself.
_RUNTIME_NOISE = (b"\nthread '<unnamed>'", b"note: run with `RUST_BACKTRACE")


class Sink(Protocol):
    """The attempt's way to the store. Each call blocks. Called on the guest's thread,
    and `write` also on wasmtime's I/O threads (output flushes, while the guest waits)."""

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        """Durably append events and log chunks, and apply the side-writes that go with
        the events, in one transaction fenced by the attempt's lease."""
        ...

    def next_notification(self, task_id: int, event: str | None) -> Notification | None:
        """The oldest unconsumed notification for the task (only `event`, if given)."""
        ...

    def notify(self, task_id: int, event: str, data: str, key: str) -> str | None:
        """Send a notification once per `key`; return None, or why it was refused
        ("task-not-found" or "task-ended")."""
        ...

    def spawn(self, spec: NewTask) -> int:
        """Create a child task (idempotent by `spec.idempotency_key`); return its id."""
        ...

    def find_workflow(self, name: str) -> str | None:
        """The hash of the newest binary registered under `name`, or None."""
        ...

    def get_task(self, task_id: int) -> Task:
        """The task as stored now."""
        ...


class AttemptContext:
    """Everything host functions need while a guest runs one attempt of a task."""

    def __init__(
        self,
        *,
        task: Task,
        attempt: int,
        history: Sequence[Event],
        sink: Sink,
        config: HostConfig,
        replay_only: bool = False,
        logged: int = 0,
    ) -> None:
        """Start an attempt from `history`; `logged` is how many bytes of guest output
        are logged at its end already (`Store.logged_bytes`): the replay skips them."""
        self.task = task
        self.attempt = attempt
        self.config = config
        # Every decision about the history: replay or record, when to commit, positions,
        # entropy, steps, deadlines, cancellation (`durable.core.machine`).
        deadline = task.deadline_at
        self.machine = m.ReplayMachine(
            history,
            seed=runs.run_seed(task.seed, task.run),
            task_id=task.id,
            limits=m.Limits(
                max_events=config.max_events,
                max_payload_bytes=config.max_payload_bytes,
                max_pending_events=config.max_pending_events,
                flush_interval=config.flush_interval,
                suspend_after=config.suspend_after,
            ),
            replay_only=replay_only,
            task_deadline_ns=None if deadline is None else int(deadline.timestamp() * 1e9),
            before_record=self.raise_deferred,
        )
        # Replay-only attempts (`durable replay`) must not perform or record anything.
        self.replay_only = replay_only
        # The workflow's source, when the component is the shared interpreter.
        self.source: Bundle | None = None
        self.sink = sink
        # The exception a host function raised, parked while the guest unwinds.
        self.unwinding: BaseException | None = None
        # Set by the worker to stop a blocking sleep at once (shutdown).
        self.interrupt = threading.Event()
        # Set when the task is being cancelled: blocking waits end at once, and the next
        # durable call at the end of the history tells the guest (`task.cancelled`).
        self.cancel = threading.Event()
        if task.cancel_requested:
            self.cancel.set()
        # The attempt's OpenTelemetry spans (`durable.tracing`); None: tracing is off.
        self.trace: AttemptTrace | None = None
        # When the watchdog first saw the cancellation or the shutdown (monotonic), and
        # why it stopped the guest, if it did.
        self.cancel_seen_at: float | None = None
        self.interrupt_seen_at: float | None = None
        self.stopped_by: str | None = None
        # Where the guest's timers get their ready pollables (set by the runtime).
        self.pollables: ReadyPollables | None = None
        # Set when the worker keeps suspended instances (`durable.host.live`): a wait
        # that would suspend parks the guest's thread here instead, until this worker
        # wakes it (it returns) or drops it (it raises `Evicted`).
        self.park: Callable[[datetime | None, bool], None] | None = None
        self.parked = False
        self._output = OutputBuffer(
            frontier=len(history),
            logged=logged,
            limit=config.max_output_bytes,
            flush_bytes=config.output_flush_bytes,
            interval=config.output_flush_interval,
            hold_bytes=config.output_hold_bytes,
        )
        # Guards `_output`: writes arrive on wasmtime's I/O threads.
        self._output_lock = threading.Lock()
        # One flush at a time, so that writes reach the store in the order they were taken.
        self._flush_lock = threading.Lock()
        # A failure of a flush made on an I/O thread (or the output limit), raised on the
        # guest's thread at its next durable call or slice; output is dropped meanwhile.
        self._deferred: BaseException | None = None
        self._closed = False
        # The steps `step.enter-ahead` handed the guest and it has not replayed yet, in
        # order (`durable.host.step_ahead`), as a window onto the events they were read from.
        self.ahead: AheadWindow = NOTHING_AHEAD

    # -- the machine's state, as host functions see it -------------------------------------

    @property
    def cursor(self) -> ReplayCursor:
        """The replay cursor (a SQL transaction's stands in for it while its body runs)."""
        return self.machine.cursor

    @cursor.setter
    def cursor(self, cursor: ReplayCursor) -> None:
        self.machine.cursor = cursor

    @property
    def side_writes(self) -> list[SideWrite]:
        """Side-writes of events not yet committed (written with them)."""
        return self.machine.side_writes

    @side_writes.setter
    def side_writes(self, writes: list[SideWrite]) -> None:
        self.machine.side_writes = writes

    @property
    def in_step(self) -> bool:
        """Whether a step's body is running."""
        return self.machine.in_step

    @in_step.setter
    def in_step(self, value: bool) -> None:
        self.machine.in_step = value

    @property
    def step_label(self) -> str:
        """The label of the running step."""
        return self.machine.step_label

    @property
    def cancel_delivered(self) -> bool:
        """Whether the guest has been told that its task is being cancelled."""
        return self.machine.cancel_delivered

    # -- recording and committing --------------------------------------------------------

    def record(self, label: str, digest: str | None, payload: str) -> Event:
        """Record a new event; it is committed by the next `flush` (a failure deferred
        from an output flush is raised first: `before_record`)."""
        return self.machine.record(label, digest, payload)

    def maybe_flush(self) -> None:
        """Commit if events have waited long enough, or too many are pending, or output
        is due (see `durable.core.output`)."""
        self.raise_deferred()
        if self.machine.commit_due() or self._output_due():
            self.flush()

    def flush(self) -> None:
        """Commit every recorded event, and the output so far after them.

        Output at position p is a function of events 0 .. p-1, which this same write
        (or an earlier one) makes durable: a replay prints it again, and skips what
        is logged. A step body's output waits for the step (`durable.core.output`).
        """
        self.raise_deferred()
        with self._flush_lock:
            events, writes = self.machine.take()
            with self._output_lock:
                logs = self._output.take()
            if not events and not logs and not writes:
                return
            try:
                self.sink.write(events, logs, writes)
            except BaseException:
                self.machine.restore(events, writes)
                with self._output_lock:
                    self._output.restore(logs, time.monotonic())
                raise

    def take_logs(self, *, frontier: bool) -> list[LogChunk]:
        """Remove and return the buffered output, to be written with the last events.

        With `frontier` (the task has ended, or a commit follows that needs all of it),
        a running step body's held output too; without (the task will run again), the
        output of a step body or SQL transaction block still running is dropped: it
        runs again, and prints again, next time.
        """
        with self._output_lock:
            if frontier:
                return self._output.take(held=True)
            self._output.drop_held()
            logs = self._output.take()
        # Inside a live SQL transaction (`begin` committed all output before it), all of
        # it is the block's, which runs again too.
        return [] if self._holds_transaction() else logs

    def close(self) -> None:
        """The attempt has ended: ignore any output that still arrives."""
        self._closed = True

    def raise_deferred(self) -> None:
        """Raise the failure of an output flush made off the guest's thread (or the
        output limit), if there was one."""
        if self._deferred is not None:
            raise self._deferred

    def on_tick(self) -> None:
        """Every watchdog slice, on the guest's thread while it runs: commit output
        that is due, so that a guest computing after a print still shows it."""
        self.raise_deferred()
        if self._output_due():
            self.flush()

    def _output_due(self) -> bool:
        if not self._may_stream():
            return False
        with self._output_lock:
            return self._output.due(time.monotonic())

    def _may_stream(self) -> bool:
        # Not while a workflow SQL transaction is open on the store: on SQLite it holds
        # the write lock, so nothing else may be written until it ends (its output
        # commits with it). Never in a replay check, which writes nothing.
        return not self.replay_only and not self._holds_transaction()

    def _holds_transaction(self) -> bool:
        cursor = self.cursor
        return isinstance(cursor, TransactionCursor) and cursor.session is not None

    # -- output --------------------------------------------------------------------------

    def on_output(self, stream: Stream, data: bytes) -> None:
        """Take a guest write: drop or skip what is logged already, buffer the rest, and
        commit when due. Runs on a wasmtime I/O thread while the guest waits.

        Must not raise: wasmtime turns an exception here into a failed write.
        """
        if self.replay_only or self._closed or self._deferred is not None:
            return
        if stream is Stream.STDERR and data.startswith(_RUNTIME_NOISE):
            return
        try:
            now = time.monotonic()
            with self._output_lock:  # one lock, one clock reading: this runs per write
                output = self._output
                output.write(self.cursor.position, stream, data, now)
                exceeded = output.exceeded
                due = not exceeded and output.due(now)
            if exceeded:
                limit = _size(self.config.max_output_bytes)
                self._deferred = OutputLimitExceeded(
                    f"task {self.task.id} printed more than {limit} (the limit, --max-output);"
                    " its output past the limit is dropped"
                )
            elif due and self._may_stream():
                self.flush()
        except BaseException as exc:  # raised on the guest's thread, at its next call
            self._deferred = exc

    def note(self, text: str) -> None:
        """Add a host message (e.g. why the task failed) to the task's log."""
        with self._output_lock:
            self._output.note(text, time.monotonic())

    # -- clock and entropy ---------------------------------------------------------------

    def now_ns(self) -> int:
        """The wall clock as the guest sees it: recorded outside steps, live inside."""
        value, recorded = self.machine.now_ns()
        if recorded:
            self.maybe_flush()
        return value

    def next_call_number(self) -> int:
        """Count calls at the current event position: 1, 2, ... (reset when it moves).

        With the position, this names a call the same way on every replay, which is
        what idempotency keys for sends and spawns are made of.
        """
        return self.machine.call_number()

    def random_bytes(self, length: int) -> bytes:
        """Bytes derived from the task's seed and the current event position."""
        return self.machine.random_bytes(length)

    # -- steps ---------------------------------------------------------------------------

    def step_enter(self, label: str, digest: str | None) -> str | None:
        """Start a recorded step; return its recorded payload when replaying."""
        self.raise_deferred()
        payload = self.machine.step_enter(label, digest)
        if payload is not None:
            return payload
        with self._output_lock:
            self._output.enter_step()  # the body's output waits for its result
        if self.trace is not None:
            self.trace.step_started(label)
        return None

    def step_exit(self, payload: str) -> None:
        """Record the outcome of the step started by the last `step_enter`."""
        commit_now = self.machine.step_exit(payload)
        if self.trace is not None:
            self.trace.step_ended()
        with self._output_lock:
            self._output.exit_step()
        if commit_now:
            self.flush()
        else:
            self.maybe_flush()

    # -- external effects ----------------------------------------------------------------

    def effect(self, label: str, digest: str | None, perform: Callable[[], str]) -> str:
        """Perform an external effect at least once, and record its outcome.

        On replay the recorded payload comes back and `perform` is not called. Otherwise
        everything recorded so far is committed first (so the world never sees an
        effect whose causes could be lost), then `perform` runs, then its outcome is
        recorded and committed before the guest can act on it. A crash between the
        effect and that commit repeats the effect once on replay: at least once.
        Inside a step the effect runs unrecorded; the step's own record covers it.
        """
        self.raise_deferred()
        decision = self.machine.effect(label, digest)
        if isinstance(decision, m.Replayed):
            return decision.payload
        if isinstance(decision, m.Unrecorded):
            if self._may_stream() and self._output.ready_bytes:
                self.flush()  # the effect may take long: what was printed before shows now
            return perform()
        self.flush()
        payload = perform()
        self.record(label, digest, payload)
        self.flush()
        return payload

    # -- timers --------------------------------------------------------------------------

    def sleep(self, duration_ns: int) -> None:
        """Durable relative sleep: the deadline is recorded when the sleep starts."""
        self.machine.monotonic.sleep(duration_ns)
        if self.in_step:
            self._block(duration_ns / 1e9)
            return
        self._wait_until(self.machine.sleep_deadline(duration_ns))

    def sleep_until(self, deadline_ns: int) -> None:
        """Durable absolute sleep. Recorded, so replay takes the same path."""
        if self.in_step:
            self._block(max(0.0, (deadline_ns - time.time_ns()) / 1e9))
            return
        self._wait_until(self.machine.sleep_until(deadline_ns))

    def _wait_until(self, deadline_ns: int) -> None:
        self.await_condition(lambda: None, deadline_ns, on_event=False)
        # Past the history, a sleep that ended is live: how late it woke is timer
        # lateness. (While replaying, it is a sleep that woke long ago.)
        meter = metrics.active()
        if meter is not None and not self.machine.cursor.replaying:
            late = (time.time_ns() - deadline_ns) / 1e9
            if late >= 0 and not self.cancel.is_set() and not self.interrupt.is_set():
                meter.timer_lateness.observe(late)

    def recorded_deadline(self, op: ops.Op[int], digest: str, timeout_ns: int | None) -> int | None:
        """Record (or replay) `now + timeout_ns` once, so that a wait's deadline survives
        suspensions and crashes instead of restarting from zero."""
        return self.machine.recorded_deadline(op, digest, timeout_ns)

    def await_condition(
        self, poll: Callable[[], T | None], deadline_ns: int | None, *, on_event: bool
    ) -> T | None:
        """Wait until `poll()` gives a value or the deadline passes (then None).

        A wait that would last longer than `suspend_after` suspends the task instead
        (waking at the deadline, or on an event when `on_event`); a shorter one blocks
        this thread, polling. Cancellation ends the wait early with None, and shutdown
        releases the task.
        """
        self.raise_deferred()
        interval = 0.01
        while True:
            value = poll()
            if value is not None:
                return value
            decision = self.machine.wait(
                deadline_ns, cancelling=self.cancel.is_set(), on_event=on_event, interval=interval
            )
            if isinstance(decision, m.Expired | m.GiveUp):
                return None  # a replay check never waits; a cancelled task stops waiting
            if isinstance(decision, m.TaskTimedOut):
                raise TimedOut()
            if isinstance(decision, m.SuspendTask):
                wakeup = self._wakeup(decision.wakeup_ns)
                if self.park is None or self.replay_only or self._holds_transaction():
                    raise Suspend(wakeup, on_event=on_event)
                # The suspension is committed as it would be by `Suspend`; the guest
                # goes on from here if this worker claims the task back in time.
                self.park(wakeup, on_event)
                interval = 0.01
                continue
            self.flush()  # what happened before the wait is durable before we block
            interval = min(interval * 2, 0.2)
            self._block(decision.seconds)

    def _wakeup(self, wakeup_ns: int | None) -> datetime | None:
        """The machine's wake-up time as a datetime (the task's own deadline exactly,
        when it is that)."""
        if wakeup_ns is None:
            return None
        if wakeup_ns == self.machine.task_deadline_ns:
            return self.task.deadline_at
        return _utc(wakeup_ns)

    def cap_at_task_deadline(self, wakeup: datetime | None) -> datetime | None:
        """A suspended task wakes at its own timeout at the latest."""
        deadline = self.task.deadline_at
        if deadline is None:
            return wakeup
        return deadline if wakeup is None else min(wakeup, deadline)

    def _block(self, seconds: float) -> None:
        if self.replay_only:
            return
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.cancel.is_set():
                return
            task_deadline = self.task.deadline_at
            if task_deadline is not None and time.time() >= task_deadline.timestamp():
                raise TimedOut()
            if self.interrupt.wait(min(left, 0.05)):
                raise Release()
            if self._output_due():  # a sleep inside a step: what came before still shows
                self.flush()

    # -- cancellation --------------------------------------------------------------------

    def cancelled(self) -> bool:
        """Tell the guest, once, that its task is being cancelled. Recorded.

        While replaying, the answer is whatever the history says at this point: True
        only where a cancellation event was recorded. At the end of the history it is
        True once the task is being cancelled, and that delivery is recorded, so a crash
        during cleanup replays the same path.
        """
        deliver, commit_now = self.machine.cancelled(self.cancel.is_set())
        if commit_now:
            self.flush()
        return deliver
