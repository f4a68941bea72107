"""The monotonic clock a guest sees: virtual, derived from what the guest does.

A guest's `wasi:clocks/monotonic-clock` (JavaScript's `performance.now()`, the deadlines
behind `setTimeout`) is not read from the machine: it would differ on replay, and a
result or a durable call that depended on it would not replay. Instead each attempt
starts a virtual clock at the same origin and moves it only by what the guest does:

- each reading advances it by `QUANTUM_NS`, so a loop that waits for the clock to
  move (`while (performance.now() < t0 + 10)`) ends;
- a timer (`subscribe-duration`, `subscribe-instant`) is ready at once and moves the
  clock to its deadline, if that is later: time jumps instead of passing;
- a durable sleep moves it by the sleep's duration;
- a step's body runs once and is skipped on replay, so what it does to the clock is
  undone at the step's end: after a step the clock reads as it did before it, plus one
  quantum, whether the body ran or was replayed. (A reading after a step can thus be
  lower than one taken inside the step; the step's payload covers the latter.)

The guest's calls replay in the same order, so the readings are a function of the
history, and need no events.
"""

from __future__ import annotations

#: How much each reading advances the clock: the clock's resolution too.
QUANTUM_NS = 1_000
#: Where every attempt's clock starts (an arbitrary origin, as a monotonic clock's is).
ORIGIN_NS = 1_000_000_000


class VirtualClock:
    """One attempt's virtual monotonic clock (nanoseconds)."""

    __slots__ = ("_before_step", "_ns")

    def __init__(self) -> None:
        self._ns = ORIGIN_NS
        self._before_step: int | None = None

    def now(self) -> int:
        """A reading: the clock advances by one quantum first."""
        self._ns += QUANTUM_NS
        return self._ns

    def subscribe_duration(self, duration_ns: int) -> None:
        """A timer of `duration_ns` from now fires at once: jump to its deadline."""
        self._ns += max(0, duration_ns)

    def subscribe_instant(self, deadline_ns: int) -> None:
        """A timer for `deadline_ns` fires at once: jump there, if it is later."""
        self._ns = max(self._ns, deadline_ns)

    def sleep(self, duration_ns: int) -> None:
        """A durable sleep of `duration_ns` has passed."""
        self._ns += max(0, duration_ns)

    def enter_step(self) -> None:
        """A step's body starts (it will not run on replay)."""
        self._before_step = self._ns

    def exit_step(self) -> None:
        """The step's body ended: undo what it did to the clock."""
        if self._before_step is not None:
            self._ns, self._before_step = self._before_step, None
        self._ns += QUANTUM_NS

    def step_replayed(self) -> None:
        """A step was answered from the history: the same clock as `exit_step` leaves."""
        self._ns += QUANTUM_NS
