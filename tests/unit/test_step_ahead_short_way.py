"""`take-ahead`'s short way (`durable.host.step_ahead.take_ahead`): an entry whose
position the hand-out validated moves the attempt exactly as `enter-checked` would,
and any other state takes the long way, `enter-checked` itself."""

from __future__ import annotations

import pytest

from durable.core.model import Event
from durable.core.replay import ReplayCursor
from durable.core.virtual_clock import STEP_LABEL
from durable.errors import NondeterminismError, OutputLimitExceeded
from durable.host import step_ahead
from durable.host.context import AttemptContext
from tests.unit.test_step_ahead import _ctx, _step


def _handed(ctx: AttemptContext) -> None:
    """Enter step 0 as `enter-ahead` does and hand out the run after it."""
    step_ahead.enter_ahead(ctx, "step add", "d0")
    step_ahead.handed_out(ctx, 100)


def test_each_entry_moves_the_cursor_and_the_clock_as_enter_checked_does() -> None:
    # Step 3's body moved the clock far: its marker follows, and ends the run there.
    events = [_step(0), _step(1), _step(2), _step(3), (STEP_LABEL, None, "5000000000"), _step(4)]
    ctx, plain = _ctx(events), _ctx(events)
    _handed(ctx)
    plain.step_enter("step add", "d0")
    for i in (1, 2, 3):
        step_ahead.take_ahead(ctx)
        plain.step_enter("step add", f"d{i}")
        assert ctx.cursor.position == plain.cursor.position
        # A reading advances both clocks alike: equal now, equal after every step.
        assert ctx.machine.monotonic.now() == plain.machine.monotonic.now()
    assert ctx.cursor.position == 5  # the marker was taken with step 3
    assert not ctx.ahead


def test_a_failure_deferred_from_an_output_flush_is_raised_before_the_step() -> None:
    ctx = _ctx([_step(0), _step(1), _step(2)])
    _handed(ctx)
    failure = OutputLimitExceeded("printed too much")
    ctx._deferred = failure
    with pytest.raises(OutputLimitExceeded) as raised:
        step_ahead.take_ahead(ctx)
    assert raised.value is failure
    assert ctx.cursor.position == 1  # nothing moved


def test_an_entry_met_at_another_position_is_matched_against_the_history() -> None:
    ctx = _ctx([_step(0), _step(1), _step(2), _step(3)])
    _handed(ctx)
    ctx.step_enter("step add", "d1")  # a guest that entered step 1 without the buffer
    with pytest.raises(NondeterminismError, match="at event 2: history recorded 'step add'"):
        step_ahead.take_ahead(ctx)  # entry 1 where the history holds step 2
    assert ctx.cursor.position == 2


def test_another_cursor_in_place_takes_the_long_way() -> None:
    # A SQL transaction stands its own cursor in while its block runs: the entries were
    # not read from it, so `take-ahead` matches the step against it.
    ctx = _ctx([_step(0), _step(1), _step(2)])
    _handed(ctx)
    own = ctx.cursor
    other = ReplayCursor(
        [Event(index=0, label="step add", digest="d0", payload="1"),
         Event(index=1, label="step other", digest=None, payload="2")]
    )  # fmt: skip
    other.position = own.position
    ctx.cursor = other
    with pytest.raises(NondeterminismError, match="at event 1: history recorded 'step other'"):
        step_ahead.take_ahead(ctx)
    assert own.position == other.position == 1


def test_a_cancellation_requested_during_the_run_is_not_seen_at_its_steps() -> None:
    ctx = _ctx([_step(0), _step(1), _step(2)], cancel_requested=True)
    _handed(ctx)
    step_ahead.take_ahead(ctx)
    step_ahead.take_ahead(ctx)
    assert ctx.cursor.position == 3
    assert not ctx.cancel_delivered
