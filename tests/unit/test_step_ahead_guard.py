"""`step.take-ahead` as the trampoline calls it (`durable.host.linker.guarded_take_ahead`):
guarded in its own frame, as `durable.host._wit.guarded` guards every other host call."""

from __future__ import annotations

import pytest
import wasmtime

from durable.errors import HostError
from durable.host import step_ahead
from durable.host.linker import guarded_take_ahead
from tests.helpers import DiscardingSink
from tests.unit.test_step_ahead import _ctx, _step


def test_an_entry_is_replayed_and_answers_ok() -> None:
    ctx = _ctx([_step(0), _step(1)])
    step_ahead.enter_ahead(ctx, "step add", "d0")
    step_ahead.handed_out(ctx, 100)
    assert guarded_take_ahead(lambda: ctx)(None).tag == "ok"
    assert ctx.cursor.position == 2


def test_a_host_failure_is_parked_on_the_attempt_and_the_guest_unwound() -> None:
    ctx = _ctx([_step(0), _step(1)])
    take_ahead = guarded_take_ahead(lambda: ctx)
    with pytest.raises(wasmtime.WasmtimeError, match=r"durable: unwinding \(HostError\)"):
        take_ahead(None)  # nothing handed out: only a broken guest calls it
    assert isinstance(ctx.unwinding, HostError)
    assert "no step handed out" in str(ctx.unwinding)


def test_a_cancellation_is_the_err_case() -> None:
    # Only the long way can answer `err`: here the guest entered step 1 itself, so the
    # entry meets the end of the history, where a requested cancellation is delivered.
    ctx = _ctx([_step(0), _step(1)])
    ctx.sink = DiscardingSink()  # the delivery is recorded
    step_ahead.enter_ahead(ctx, "step add", "d0")
    step_ahead.handed_out(ctx, 100)
    ctx.step_enter("step add", "d1")
    ctx.cancel.set()
    assert guarded_take_ahead(lambda: ctx)(None).tag == "err"
    assert ctx.cancel_delivered
    assert not ctx.ahead
