"""The virtual monotonic clock's rule (durable.core.virtual_clock), and how the replay
machine drives it through steps."""

from __future__ import annotations

from durable.core.machine import ReplayMachine
from durable.core.virtual_clock import ORIGIN_NS, QUANTUM_NS, VirtualClock


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


def test_a_step_leaves_the_clock_as_a_replayed_step_does() -> None:
    live, replayed = VirtualClock(), VirtualClock()
    live.now(), replayed.now()
    live.enter_step()
    live.subscribe_duration(10**9)
    for _ in range(50):
        live.now()
    live.exit_step()
    replayed.step_replayed()
    assert live.now() == replayed.now()


def test_the_machine_undoes_a_live_steps_readings_and_replays_the_same_clock() -> None:
    first = ReplayMachine([], seed=1)
    first.monotonic.now()
    assert first.step_enter("s", None) is None
    for _ in range(7):
        first.monotonic.now()
    first.step_exit('"ok"')
    after_live = first.monotonic.now()
    events, _ = first.take()
    again = ReplayMachine(events, seed=1)
    again.monotonic.now()
    assert again.step_enter("s", None) == '"ok"'
    assert again.monotonic.now() == after_live
