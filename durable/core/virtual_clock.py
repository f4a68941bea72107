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
- a step's body runs once and is skipped on replay, so the clock after a step must not
  depend on what the body did, yet must not go back below a reading taken inside it.
  So a step moves the clock by a fixed allowance (`STEP_ALLOWANCE_NS`, whether the body
  ran or was replayed), and a body that moved it further than that (a timer, a long
  spin) has its advance recorded in one event right after the step's own
  (`STEP_LABEL`), which a replay applies.

The guest's calls replay in the same order, so the readings are a function of the
history; only such steps need an event.
"""

from __future__ import annotations

#: How much each reading advances the clock: the clock's resolution too.
QUANTUM_NS = 1_000
#: Where every attempt's clock starts (an arbitrary origin, as a monotonic clock's is).
ORIGIN_NS = 1_000_000_000
#: How far a step moves the clock when its body moved it no further (1 ms: a thousand
#: readings, far more than a step's own bookkeeping makes).
STEP_ALLOWANCE_NS = 1_000_000
#: The label of the event that records a step body's larger advance (nanoseconds).
STEP_LABEL = "wasi:clocks/monotonic-clock.step"
#: How far a step without such an event moves the clock.
_PLAIN_STEP_NS = STEP_ALLOWANCE_NS + QUANTUM_NS


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

    def exit_step(self) -> int | None:
        """The step's body ended: move past its readings by the step's rule.

        Returns the advance to record (nanoseconds) when the body moved the clock past
        the allowance, else None (nothing to record).
        """
        before, self._before_step = self._before_step, None
        if before is None:
            before = self._ns
        advance = self._ns - before
        recorded = advance if advance > STEP_ALLOWANCE_NS else None
        self._ns = before
        self.step_replayed(recorded)
        return recorded

    def step_replayed(self, recorded: int | None) -> None:
        """A step ended, live or from the history, with `recorded` (its event's advance)."""
        self._ns += max(STEP_ALLOWANCE_NS, recorded or 0) + QUANTUM_NS

    def plain_step_replayed(self) -> None:
        """`step_replayed(None)`: a step without a recorded advance (a replay's most)."""
        self._ns += _PLAIN_STEP_NS
