"""The virtual monotonic clock's rule (durable.core.virtual_clock), and how the replay
machine drives it through steps."""

from __future__ import annotations

from durable.core.machine import ReplayMachine
from durable.core.virtual_clock import (
    ORIGIN_NS,
    QUANTUM_NS,
    STEP_ALLOWANCE_NS,
    STEP_LABEL,
    VirtualClock,
)


def test_each_reading_moves_the_clock_one_quantum() -> None:
    clock = VirtualClock()
    assert [clock.now() for _ in range(3)] == [ORIGIN_NS + QUANTUM_NS * i for i in (1, 2, 3)]


def test_timers_jump_to_their_deadline_and_never_back() -> None:
    clock = VirtualClock()
    t0 = clock.now()
    clock.subscribe_duration(5_000)
    assert clock.now() == t0 + 5_000 + QUANTUM_NS
    clock.subscribe_instant(t0)  # passed already: no jump, no going back
    assert clock.now() == t0 + 5_000 + 2 * QUANTUM_NS
    clock.subscribe_instant(t0 + 1_000_000)
    assert clock.now() == t0 + 1_000_000 + QUANTUM_NS
    clock.sleep(2_000)
    assert clock.now() == t0 + 1_000_000 + 2_000 + 2 * QUANTUM_NS


def test_a_step_without_timers_moves_the_clock_by_its_allowance_live_or_replayed() -> None:
    live, replayed = VirtualClock(), VirtualClock()
    live.now(), replayed.now()
    live.enter_step()
    inside = [live.now() for _ in range(50)]
    assert live.exit_step() is None  # nothing to record
    replayed.step_replayed(None)
    after = live.now()
    assert after == replayed.now()
    assert after > max(inside)  # never back below a reading inside the step


def test_a_step_whose_body_jumped_records_the_jump_and_stays_monotonic() -> None:
    live, replayed = VirtualClock(), VirtualClock()
    live.enter_step()
    live.subscribe_duration(10**9)
    inside = live.now()
    advance = live.exit_step()
    assert advance is not None
    assert advance > STEP_ALLOWANCE_NS
    replayed.step_replayed(advance)
    after = live.now()
    assert after == replayed.now()
    assert after > inside


def test_the_machine_replays_the_clock_after_a_live_step() -> None:
    first = ReplayMachine([], seed=1)
    first.monotonic.now()
    assert first.step_enter("s", None) is None
    inside = [first.monotonic.now() for _ in range(7)]
    first.step_exit('"ok"')
    after_live = first.monotonic.now()
    assert after_live > max(inside)
    events, _ = first.take()
    assert [e.label for e in events] == ["s"]  # a step that did not jump: no clock event
    again = ReplayMachine(events, seed=1)
    again.monotonic.now()
    assert again.step_enter("s", None) == '"ok"'
    assert again.monotonic.now() == after_live


def test_the_machine_records_a_step_body_s_timer_and_replays_past_it() -> None:
    first = ReplayMachine([], seed=1)
    assert first.step_enter("s", None) is None
    first.monotonic.subscribe_duration(5 * 10**9)  # a 5 s timer inside the step
    inside = first.monotonic.now()
    first.step_exit('"ok"')
    assert first.step_enter("t", None) is None
    first.step_exit('"ok"')
    after_live = first.monotonic.now()
    assert after_live > inside
    events, _ = first.take()
    assert [e.label for e in events] == ["s", STEP_LABEL, "t"]
    again = ReplayMachine(events, seed=1)
    assert again.step_enter("s", None) == '"ok"'
    assert again.step_enter("t", None) == '"ok"'
    assert again.monotonic.now() == after_live
