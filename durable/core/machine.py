"""The replay machine: every decision an attempt makes about its history, with no I/O.

A host call comes in (a clock reading, a step, a sleep, an effect, a wait, a
cancellation check); the machine answers it from the history, or records it, and
says what the host must do next: commit now, perform the effect, suspend, block, or
give up. It owns the replay cursor, the events and side-writes not yet committed, the
group-commit policy, the event positions that name calls and derive entropy, the step
in progress, and the delivery of a cancellation. Time comes from an injected `Clock`,
so tests drive every decision (and every crash point) without threads, wasmtime or a
store.

The host side (`durable.host.context.AttemptContext`) is the adapter: it takes calls
from WIT, asks the machine, and does the I/O the answer calls for (writing through the
sink, polling the store, blocking a thread, buffering output).

Rejected alternative: a machine that takes a whole call as a value and returns a
command value. The calls differ too much in shape (a step has two halves, an effect
runs in the middle of its own record) for one message type to stay readable; one
method per kind of call, each returning plain values or a small decision, keeps the
machine pure and the adapter thin.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from durable.core import ops
from durable.core.entropy import derive_bytes
from durable.core.model import Event
from durable.core.replay import ReplayCursor
from durable.core.side_writes import SideWrite
from durable.core.signals import HistoryExhausted
from durable.core.virtual_clock import STEP_LABEL, VirtualClock
from durable.errors import HostError


class Clock(Protocol):
    """Where the machine reads time: injected, so tests can move it."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for group-commit ages)."""
        ...

    def time_ns(self) -> int:
        """The wall clock, nanoseconds since the epoch (for recorded readings and
        deadlines)."""
        ...


class SystemClock:
    """The real clocks."""

    def monotonic(self) -> float:
        """`time.monotonic()`."""
        return time.monotonic()

    def time_ns(self) -> int:
        """`time.time_ns()`."""
        return time.time_ns()


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The bounds and the group-commit policy the machine applies (from `HostConfig`)."""

    max_events: int = 100_000  # events per task
    max_payload_bytes: int = 16 * 1024 * 1024  # bytes per recorded payload
    max_pending_events: int = 1000  # commit when this many are pending ...
    flush_interval: float = 0.2  # ... or the oldest has waited this long (seconds)
    suspend_after: float = 10.0  # a wait longer than this suspends the task


@dataclass(frozen=True, slots=True)
class Replayed:
    """An effect found in the history: its recorded payload is the answer."""

    payload: str


@dataclass(frozen=True, slots=True)
class Perform:
    """An effect past the history: commit what is pending, perform it, then `recorded`."""


@dataclass(frozen=True, slots=True)
class Unrecorded:
    """An effect inside a step: perform it unrecorded (the step's record covers it)."""


EffectDecision = Replayed | Perform | Unrecorded


@dataclass(frozen=True, slots=True)
class Expired:
    """The wait's deadline has passed: it ends with nothing."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """The wait ends with nothing now: a replay check never waits, and a task being
    cancelled stops waiting."""


@dataclass(frozen=True, slots=True)
class TaskTimedOut:
    """The task itself passed its deadline."""


@dataclass(frozen=True, slots=True)
class SuspendTask:
    """Suspend the task, to wake at `wakeup_ns` (None: on an event only)."""

    wakeup_ns: int | None


@dataclass(frozen=True, slots=True)
class Block:
    """Commit what is pending, then block the thread for `seconds` and look again."""

    seconds: float


WaitDecision = Expired | GiveUp | TaskTimedOut | SuspendTask | Block


class ReplayMachine:
    """The decisions of one attempt of one task (see the module docstring).

    Attributes:
        cursor: the replay cursor; `durable.host.sql` stands a transaction's cursor in
            for it while a SQL transaction's body runs.
        side_writes: side-writes of the events recorded and not yet taken for a commit.
        in_step, step_label, step_digest: the step whose body is running, if any.
        effect_in_step: the running step's body performed an external effect.
        cancel_delivered: the guest has been told that its task is being cancelled.
    """

    def __init__(
        self,
        history: Sequence[Event],
        *,
        seed: int,
        task_id: int = 0,
        limits: Limits | None = None,
        clock: Clock | None = None,
        replay_only: bool = False,
        task_deadline_ns: int | None = None,
        before_record: Callable[[], None] | None = None,
    ) -> None:
        """Start from `history`. `replay_only`: a replay check, which must not perform or
        record anything. `task_deadline_ns`: when the task times out, if it does.
        `before_record`: called before each event is recorded; it may raise to refuse
        (the host raises a failure deferred from another thread there)."""
        self.cursor = ReplayCursor(history)
        self.side_writes: list[SideWrite] = []
        self.limits = limits or Limits()
        self.clock: Clock = clock or SystemClock()
        self.replay_only = replay_only
        self.task_id = task_id
        self.seed = seed
        self.task_deadline_ns = task_deadline_ns
        self.in_step = False
        self.step_label = ""
        self.step_digest: str | None = None
        self.effect_in_step = False
        self.cancel_delivered = False
        self._before_record = before_record
        self._oldest_pending = 0.0
        self._entropy_position = -1
        self._entropy_counter = 0
        self._call_position = -1
        self._call_counter = 0
        self._patches: dict[str, bool] = {}  # each patch's answer in this run, by id
        # The guest's monotonic clock: derived from what it does (no events).
        self.monotonic = VirtualClock()

    # -- recording and group commit --------------------------------------------------------

    def record(self, label: str, digest: str | None, payload: str) -> Event:
        """Record a new event (committed by the next `take`).

        Raises:
            HistoryExhausted: a replay check reached new work.
            HostError: the task reached its event limit, or the payload is too large.
        """
        if self._before_record is not None:
            self._before_record()
        if self.replay_only:
            raise HistoryExhausted(self.cursor.position, label)
        limits = self.limits
        if self.cursor.position >= limits.max_events:
            raise HostError(f"task {self.task_id} reached the limit of {limits.max_events} events")
        if len(payload) > limits.max_payload_bytes:
            raise HostError(
                f"{label}: recorded payload of {len(payload)} bytes is over the limit of "
                f"{limits.max_payload_bytes} bytes"
            )
        if self.cursor.pending_count == 0:
            self._oldest_pending = self.clock.monotonic()
        return self.cursor.record(label, digest, payload)

    def commit_due(self) -> bool:
        """Whether pending events must be committed now: too many, or waited too long."""
        pending = self.cursor.pending_count
        return bool(pending) and (
            pending >= self.limits.max_pending_events
            or self.clock.monotonic() - self._oldest_pending >= self.limits.flush_interval
        )

    def take(self) -> tuple[list[Event], list[SideWrite]]:
        """The pending events and their side-writes, to be committed together."""
        writes, self.side_writes = self.side_writes, []
        return self.cursor.take_pending(), writes

    def restore(self, events: Sequence[Event], writes: Sequence[SideWrite]) -> None:
        """Put back what `take` returned, after its commit failed."""
        self.cursor.restore_pending(events)
        self.side_writes[:0] = writes

    def discard(self) -> None:
        """Forget everything pending (a nondeterministic run writes none of it)."""
        self.cursor.take_pending()
        self.side_writes.clear()

    # -- clock, names and entropy ----------------------------------------------------------

    def now_ns(self) -> tuple[int, bool]:
        """The wall clock as the guest sees it, and whether the reading was recorded now
        (then the host may commit). Live inside a step; recorded outside."""
        if self.in_step:
            return self.clock.time_ns(), False
        op = ops.CLOCK_NOW
        event = self.cursor.next(op.label)
        if event is not None:
            return op.decode(event.payload), False
        value = self.clock.time_ns()
        self.record(op.label, None, op.encode(value))
        return value, True

    def call_number(self) -> int:
        """Count calls at the current event position: 1, 2, ... (reset when it moves).

        With the position, this names a call the same way on every replay, which is
        what idempotency keys for sends and spawns are made of.
        """
        position = self.cursor.position
        if position != self._call_position:
            self._call_position, self._call_counter = position, 0
        self._call_counter += 1
        return self._call_counter

    def random_bytes(self, length: int) -> bytes:
        """Bytes derived from the task's seed and the current event position."""
        position = self.cursor.position
        if position != self._entropy_position:
            self._entropy_position, self._entropy_counter = position, 0
        self._entropy_counter += 1
        return derive_bytes(self.seed, position, self._entropy_counter, length)

    # -- steps and effects -------------------------------------------------------------------

    def step_enter(self, label: str, digest: str | None) -> str | None:
        """Start a recorded step; its recorded payload when replaying, else None (the
        host runs the body)."""
        if self.in_step:
            raise HostError(f"step {label!r} started inside step {self.step_label!r}")
        event = self.cursor.next(label, digest)
        if event is not None:
            advance = None
            if self.cursor.peek_label() == STEP_LABEL:  # the body moved the clock far
                moved = self.cursor.next(STEP_LABEL)
                advance = None if moved is None else int(moved.payload)
            self.monotonic.step_replayed(advance)
            return event.payload
        if self.replay_only:
            # A replay check must not run a step's body: it may have effects.
            raise HistoryExhausted(self.cursor.position, label)
        self.in_step, self.step_label, self.step_digest = True, label, digest
        self.monotonic.enter_step()
        return None

    def step_exit(self, payload: str) -> bool:
        """Record the outcome of the running step; whether to commit at once (its body
        performed an effect: keep the repeat window small)."""
        if not self.in_step:
            raise HostError("step exit without a step in progress")
        self.in_step = False
        advance = self.monotonic.exit_step()
        self.record(self.step_label, self.step_digest, payload)
        if advance is not None:
            self.record(STEP_LABEL, None, str(advance))
        effect, self.effect_in_step = self.effect_in_step, False
        return effect

    def effect(self, label: str, digest: str | None) -> EffectDecision:
        """Decide an external effect: replay it, perform it unrecorded (inside a step),
        or commit, perform and then record it (`recorded`)."""
        if self.in_step:
            self.effect_in_step = True
            return Unrecorded()
        event = self.cursor.next(label, digest)
        if event is not None:
            return Replayed(event.payload)
        if self.replay_only:
            raise HistoryExhausted(self.cursor.position, label)
        return Perform()

    # -- timers and waits --------------------------------------------------------------------

    def sleep_deadline(self, duration_ns: int) -> int:
        """The deadline of a durable relative sleep: recorded when it starts."""
        return self._deadline(ops.TIMER_SLEEP, str(duration_ns), duration_ns)

    def sleep_until(self, deadline_ns: int) -> int:
        """Record (or replay) a durable absolute sleep; its deadline."""
        op, digest = ops.TIMER_SLEEP_UNTIL, str(deadline_ns)
        if self.cursor.next(op.label, digest) is None:
            self.record(op.label, digest, op.encode(deadline_ns))
        return deadline_ns

    def recorded_deadline(self, op: ops.Op[int], digest: str, timeout_ns: int | None) -> int | None:
        """Record (or replay) `now + timeout_ns` once, so that a wait's deadline survives
        suspensions and crashes instead of restarting from zero."""
        if timeout_ns is None:
            return None
        return self._deadline(op, digest, timeout_ns)

    def _deadline(self, op: ops.Op[int], digest: str, after_ns: int) -> int:
        event = self.cursor.next(op.label, digest)
        if event is not None:
            return op.decode(event.payload)
        deadline = self.clock.time_ns() + after_ns
        self.record(op.label, digest, op.encode(deadline))
        return deadline

    def wait(
        self, deadline_ns: int | None, *, cancelling: bool, on_event: bool, interval: float
    ) -> WaitDecision:
        """What a wait does now, its condition being unmet: end, time the task out,
        suspend, or block for a while (at most `interval` when `on_event`)."""
        now = self.clock.time_ns()
        if deadline_ns is not None and now >= deadline_ns:
            return Expired()
        if self.task_deadline_ns is not None and now >= self.task_deadline_ns:
            return TaskTimedOut()
        if self.replay_only or cancelling:
            return GiveUp()
        remaining = None if deadline_ns is None else (deadline_ns - now) / 1e9
        if remaining is None or remaining > self.limits.suspend_after:
            return SuspendTask(self._capped(deadline_ns))
        return Block(remaining if not on_event else min(remaining, interval))

    def _capped(self, wakeup_ns: int | None) -> int | None:
        """A suspended task wakes at its own timeout at the latest."""
        deadline = self.task_deadline_ns
        if deadline is None:
            return wakeup_ns
        return deadline if wakeup_ns is None else min(wakeup_ns, deadline)

    # -- cancellation ------------------------------------------------------------------------

    def cancelled(self, requested: bool) -> tuple[bool, bool]:
        """Whether to tell the guest, now, that its task is being cancelled (once), and
        whether to commit at once (the delivery was recorded).

        While replaying, the answer is whatever the history says at this point: True
        only where a delivery was recorded. At the end of the history it is True once
        the task is being cancelled (`requested`), and that delivery is recorded, so a
        crash during cleanup replays the same path.
        """
        op = ops.TASK_CANCELLED
        if self.cursor.replaying:
            if self.cursor.peek_label() == op.label:
                self.cursor.next(op.label)
                self.cancel_delivered = True
                return True, False
            return False, False
        if requested and not self.cancel_delivered and not self.in_step:
            self.record(op.label, None, op.encode(True))
            self.cancel_delivered = True
            return True, True
        return False, False

    # -- patches -----------------------------------------------------------------------------

    def patched(self, patch_id: str, *, deprecated: bool = False) -> tuple[bool, bool]:
        """`durable.patched(patch_id)` (or `deprecate_patch`): whether the task takes the
        new branch, and whether a marker was recorded now (then the host may commit).

        * Replaying, the next event is this patch's marker: consume it; new branch.
        * Replaying, the next event is anything else but a marker: the task was recorded
          by code without the patch, past this point; old branch, nothing consumed.
        * Replaying, the next event is another patch's marker: a divergence (for
          `patched`; `deprecate_patch` leaves it to the call it belongs to).
        * Past the history: record the marker; new branch. `deprecated` records nothing
          (the old branch is gone from the code, so no replay needs to tell them apart).

        The first answer for an id holds for the rest of the run: a task that took the
        old branch at its first call must not switch to the new one at a later call
        made past the end of its history.
        """
        known = self._patches.get(patch_id)
        if known is not None:
            return known, False
        label = ops.patch_label(patch_id)
        if self.cursor.replaying:
            recorded = self.cursor.peek_label()
            if recorded == label or (
                # A deprecated call records nothing, so the same code may well have
                # recorded another patch's marker right after it.
                not deprecated and recorded is not None and recorded.startswith(ops.PATCH_PREFIX)
            ):
                self.cursor.next(label)  # raises NondeterminismError for another patch's
                taken = True
            else:
                taken = False
            self._patches[patch_id] = taken
            return taken, False
        self._patches[patch_id] = True
        if deprecated:
            return True, False
        self.record(label, None, ops.PATCH_PAYLOAD)
        return True, True
