"""The state of one task attempt, as the host functions see it.

An `AttemptContext` lives on the thread that runs the guest. It owns the replay cursor,
the output captured from the guest, the deterministic entropy stream and the commit
policy. It writes through a `Sink`, which the worker bridges to the async store.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Protocol

from durable.core.entropy import derive_bytes
from durable.core.model import Event, LogChunk, Stream, Task
from durable.core.replay import ReplayCursor
from durable.core.signals import HistoryExhausted, Release, Suspend
from durable.host.config import HostConfig

# The panic note componentize-py's runtime prints after an uncaught guest exception:
# noise for users, who get the Python traceback itself.
_RUNTIME_NOISE = (b"\nthread '<unnamed>'", b"note: run with `RUST_BACKTRACE")


class Sink(Protocol):
    """Where an attempt writes. Called on the guest's thread; blocks until durable."""

    def write(self, events: Sequence[Event], logs: Sequence[LogChunk]) -> None:
        """Durably append events and log chunks (fenced by the attempt's lease)."""
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
    ) -> None:
        self.task = task
        self.attempt = attempt
        self.cursor = ReplayCursor(history)
        self.config = config
        # Replay-only attempts (`durable replay`) must not perform or record anything.
        self.replay_only = replay_only
        self.sink = sink
        self.in_step = False
        # Set when a step's body performed an external effect: its outcome is then
        # committed as soon as the step ends, to keep the repeat window small.
        self.effect_in_step = False
        self.step_label = ""
        self.step_digest: str | None = None
        # The exception a host function raised, parked while the guest unwinds.
        self.unwinding: BaseException | None = None
        # Set by the worker to stop a blocking sleep at once (shutdown).
        self.interrupt = threading.Event()
        self._logs: list[LogChunk] = []
        self._entropy_position = -1
        self._entropy_counter = 0
        self._oldest_pending = 0.0

    # -- recording and committing --------------------------------------------------------

    def record(self, label: str, digest: str | None, payload: str) -> Event:
        """Record a new event; it is committed by the next `flush`."""
        if self.replay_only:
            raise HistoryExhausted(self.cursor.position, label)
        if self.cursor.pending_count == 0:
            self._oldest_pending = time.monotonic()
        return self.cursor.record(label, digest, payload)

    def maybe_flush(self) -> None:
        """Commit if events have waited long enough, or too many are pending."""
        pending = self.cursor.pending_count
        if pending and (
            pending >= self.config.max_pending_events
            or time.monotonic() - self._oldest_pending >= self.config.flush_interval
        ):
            self.flush()

    def flush(self) -> None:
        """Commit every recorded event, and the output that happened before the last one.

        Output produced since the last event stays buffered: it is committed with the
        next event, so a crash before that event loses both and the replay produces the
        same output again, exactly once.
        """
        events = self.cursor.take_pending()
        logs = self.take_logs(frontier=False)
        if not events and not logs:
            return
        try:
            self.sink.write(events, logs)
        except BaseException:
            self.cursor.restore_pending(events)
            self._logs[:0] = logs
            raise

    def take_logs(self, *, frontier: bool) -> list[LogChunk]:
        """Remove and return buffered output; with `frontier`, also that after the last event."""
        if frontier:
            logs, self._logs = self._logs, []
            return logs
        cut = self.cursor.position
        logs = [c for c in self._logs if c.position < cut]
        self._logs = [c for c in self._logs if c.position >= cut]
        return logs

    # -- output --------------------------------------------------------------------------

    def on_output(self, stream: Stream, data: bytes) -> None:
        """Capture a guest write; drop it if an earlier attempt already logged it.

        Must not raise: wasmtime turns an exception here into a failed write.
        """
        position = self.cursor.position
        if position < self.cursor.history_length:
            return  # replaying: this output was committed with event `position`
        if stream is Stream.STDERR and data.startswith(_RUNTIME_NOISE):
            return
        last = self._logs[-1] if self._logs else None
        if last is not None and last.position == position and last.stream is stream:
            # Coalesce the many small writes `print` makes into one chunk.
            self._logs[-1] = LogChunk(position=position, stream=stream, data=last.data + data)
        else:
            self._logs.append(LogChunk(position=position, stream=stream, data=bytes(data)))

    def note(self, text: str) -> None:
        """Add a host message (e.g. why the task failed) to the task's log."""
        position = max(self.cursor.position, self.cursor.history_length)
        self._logs.append(LogChunk(position=position, stream=Stream.STDERR, data=text.encode()))

    # -- clock and entropy ---------------------------------------------------------------

    def now_ns(self) -> int:
        """The wall clock as the guest sees it: recorded outside steps, live inside."""
        if self.in_step:
            return time.time_ns()
        event = self.cursor.next("wasi:clocks/wall-clock.now")
        if event is not None:
            return int(json.loads(event.payload))
        value = time.time_ns()
        self.record("wasi:clocks/wall-clock.now", None, str(value))
        self.maybe_flush()
        return value

    def random_bytes(self, length: int) -> bytes:
        """Bytes derived from the task's seed and the current event position."""
        position = self.cursor.position
        if position != self._entropy_position:
            self._entropy_position, self._entropy_counter = position, 0
        self._entropy_counter += 1
        return derive_bytes(self.task.seed, position, self._entropy_counter, length)

    # -- steps ---------------------------------------------------------------------------

    def step_enter(self, label: str, digest: str | None) -> str | None:
        """Start a recorded step; return its recorded payload when replaying."""
        if self.in_step:
            from durable.errors import HostError

            raise HostError(f"step {label!r} started inside step {self.step_label!r}")
        event = self.cursor.next(label, digest)
        if event is not None:
            return event.payload
        self.in_step, self.step_label, self.step_digest = True, label, digest
        return None

    def step_exit(self, payload: str) -> None:
        """Record the outcome of the step started by the last `step_enter`."""
        if not self.in_step:
            from durable.errors import HostError

            raise HostError("step exit without a step in progress")
        self.in_step = False
        self.record(self.step_label, self.step_digest, payload)
        if self.effect_in_step:
            self.effect_in_step = False
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
        if self.in_step:
            self.effect_in_step = True
            return perform()
        event = self.cursor.next(label, digest)
        if event is not None:
            return event.payload
        if self.replay_only:
            raise HistoryExhausted(self.cursor.position, label)
        self.flush()
        payload = perform()
        self.record(label, digest, payload)
        self.flush()
        return payload

    # -- timers --------------------------------------------------------------------------

    def sleep(self, duration_ns: int) -> None:
        """Durable relative sleep: the deadline is recorded when the sleep starts."""
        if self.in_step:
            self._block(duration_ns / 1e9)
            return
        label, digest = "durable:timer.sleep", str(duration_ns)
        event = self.cursor.next(label, digest)
        if event is not None:
            deadline = int(json.loads(event.payload))
        else:
            deadline = time.time_ns() + duration_ns
            self.record(label, digest, str(deadline))
        self._wait_until(deadline)

    def sleep_until(self, deadline_ns: int) -> None:
        """Durable absolute sleep. Recorded, so replay takes the same path."""
        if self.in_step:
            self._block(max(0.0, (deadline_ns - time.time_ns()) / 1e9))
            return
        label, digest = "durable:timer.sleep-until", str(deadline_ns)
        if self.cursor.next(label, digest) is None:
            self.record(label, digest, str(deadline_ns))
        self._wait_until(deadline_ns)

    def _wait_until(self, deadline_ns: int) -> None:
        remaining = (deadline_ns - time.time_ns()) / 1e9
        if remaining <= 0:
            self.maybe_flush()
            return
        if self.replay_only:
            return  # a replay check never waits
        if remaining > self.config.suspend_after:
            raise Suspend(datetime.fromtimestamp(deadline_ns / 1e9, tz=UTC))
        self.flush()  # what happened before the sleep is durable before we block
        self._block(remaining)

    def _block(self, seconds: float) -> None:
        if self.replay_only:
            return
        if self.interrupt.wait(seconds):
            raise Release()
