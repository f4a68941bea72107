"""The host side of the replay buffer (`durable.host.step_ahead`): which recorded events
`enter-ahead` hands out, and that `take-ahead` is `enter-checked` with the entry's label
and digest (the integration tests run it in real components)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from durable.core import ops
from durable.core.model import Event, Task, TaskState
from durable.core.virtual_clock import STEP_LABEL
from durable.errors import HostError, NondeterminismError
from durable.host import step_ahead
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from tests.helpers import NoStoreSink


def _task(*, cancel_requested: bool = False) -> Task:
    now = datetime.now(UTC)
    return Task(
        id=7, name="t", workflow_hash="h", entry="", input="null", state=TaskState.ACTIVE,
        seed=1, created_at=now, updated_at=now, wakeup_at=None, result=None, error=None,
        owner="w", attempts=1, parent_id=None, idempotency_key=None,
        cancel_requested=cancel_requested,
    )  # fmt: skip


def _ctx(labels: list[tuple[str, str | None, str]], **task: bool) -> AttemptContext:
    history = [Event(index=i, label=lb, digest=d, payload=p) for i, (lb, d, p) in enumerate(labels)]
    return AttemptContext(
        task=_task(**task), attempt=2, history=history, sink=NoStoreSink(), config=HostConfig()
    )


def _step(i: int) -> tuple[str, str | None, str]:
    return ("step add", f"d{i}", f'{{"ok": {i}}}')


def _fields(text: str) -> list[str]:
    assert text.endswith("\0")
    return text[:-1].split("\0")


def test_the_run_is_the_steps_after_the_one_entered_up_to_another_kind_of_event() -> None:
    ctx = _ctx([_step(0), _step(1), ("step plain", None, "{}"), (ops.CLOCK_NOW.label, None, "5")])
    assert step_ahead.enter_ahead(ctx, "step add", "d0") == '{"ok": 0}'
    text = step_ahead.handed_out(ctx, 100)
    assert _fields(text) == ["step add", "d1", '{"ok": 1}', "step plain", "", "{}"]
    assert ctx.cursor.position == 1  # handed out, not consumed
    assert list(ctx.ahead) == [("step add", "d1"), ("step plain", None)]


@pytest.mark.parametrize(
    "stop",
    [
        (ops.TASK_CANCELLED.label, None, "true"),  # `cancelled` would consume it first
        ("step odd", "", "1"),  # "" is how an entry says "no digest"
        ("step nul\0", None, "1"),
        ("step add", "d9", '"a\0b"'),
        ("other label", None, "1"),
    ],
    ids=["cancelled", "empty-digest", "nul-label", "nul-payload", "not-a-step"],
)
def test_the_run_ends_before_an_event_it_cannot_carry(stop: tuple[str, str | None, str]) -> None:
    ctx = _ctx([_step(0), _step(1), stop, _step(3)])
    step_ahead.enter_ahead(ctx, "step add", "d0")
    assert _fields(step_ahead.handed_out(ctx, 100)) == ["step add", "d1", '{"ok": 1}']


def test_the_run_is_bounded_by_the_guest_and_by_its_size() -> None:
    ctx = _ctx([_step(i) for i in range(10)])
    step_ahead.enter_ahead(ctx, "step add", "d0")
    assert len(_fields(step_ahead.handed_out(ctx, 3))) == 9
    big = "x" * (step_ahead.MAX_CHARS // 2)
    ctx = _ctx([_step(0), ("step a", None, big), ("step b", None, big), _step(3)])
    step_ahead.enter_ahead(ctx, "step add", "d0")
    assert _fields(step_ahead.handed_out(ctx, 100))[:2] == ["step a", ""]
    assert len(ctx.ahead) == 1


def test_nothing_is_handed_out_past_the_history_or_for_a_live_step() -> None:
    ctx = _ctx([_step(0)])
    step_ahead.enter_ahead(ctx, "step add", "d0")
    assert step_ahead.handed_out(ctx, 100) == ""
    assert step_ahead.enter_ahead(ctx, "step add", "d1") is None  # a live step starts
    assert step_ahead.handed_out(ctx, 100) == ""
    assert not ctx.ahead


def test_take_ahead_is_enter_checked_with_the_entry() -> None:
    # A step whose body moved the clock far has a marker after it: `step_enter` takes it.
    ctx = _ctx([_step(0), _step(1), (STEP_LABEL, None, "5000000000"), _step(2)])
    plain = _ctx([_step(0), _step(1), (STEP_LABEL, None, "5000000000"), _step(2)])
    step_ahead.enter_ahead(ctx, "step add", "d0")
    step_ahead.handed_out(ctx, 100)
    assert list(ctx.ahead) == [("step add", "d1")]  # the run ends at the marker
    plain.step_enter("step add", "d0")
    step_ahead.take_ahead(ctx)
    plain.step_enter("step add", "d1")
    assert ctx.cursor.position == plain.cursor.position == 3
    assert ctx.machine.monotonic.now() == plain.machine.monotonic.now()
    with pytest.raises(HostError, match="no step handed out"):
        step_ahead.take_ahead(ctx)


def test_a_new_enter_forgets_what_was_handed_out_and_matches_as_always() -> None:
    ctx = _ctx([_step(0), _step(1), _step(2)])
    step_ahead.enter_ahead(ctx, "step add", "d0")
    step_ahead.handed_out(ctx, 100)
    with pytest.raises(NondeterminismError, match="at event 1: history recorded 'step add'"):
        step_ahead.enter_ahead(ctx, "step other", "d1")
    assert not ctx.ahead


def test_a_cancellation_recorded_in_the_history_is_delivered_before_the_step() -> None:
    ctx = _ctx([(ops.TASK_CANCELLED.label, None, "true"), _step(0)], cancel_requested=True)
    with pytest.raises(step_ahead.Cancelled):
        step_ahead.enter_ahead(ctx, "step add", "d0")
    assert ctx.cancel_delivered
