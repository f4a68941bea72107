"""`durable.patched` and `deprecate_patch`: the replay machine's decision and the host
function's refusals, driven directly (no component, no store)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from durable.core import machine as m
from durable.core import ops
from durable.core.model import Event, LogChunk, Task, TaskState
from durable.core.side_writes import SideWrite
from durable.core.signals import HistoryExhausted
from durable.errors import NondeterminismError
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from durable.host.patch import MAX_ID_BYTES, patched

STEP = Event(index=0, label="step charge", digest="d", payload="1")


def marker(index: int, patch_id: str) -> Event:
    return Event(index=index, label=ops.patch_label(patch_id), digest=None, payload="true")


def machine(history: Sequence[Event] = (), **kw: bool) -> m.ReplayMachine:
    return m.ReplayMachine(history, seed=1, **kw)


def test_past_the_history_a_marker_is_recorded_and_the_new_branch_taken() -> None:
    mach = machine()
    assert mach.patched("v2") == (True, True)
    events, writes = mach.take()
    assert [(e.index, e.label, e.digest, e.payload) for e in events] == [
        (0, "patch v2", None, "true")
    ]
    assert writes == []


def test_a_history_recorded_without_the_patch_takes_the_old_branch() -> None:
    mach = machine([STEP])
    assert mach.patched("v2") == (False, False)
    assert mach.cursor.position == 0  # nothing consumed: the step is still due
    assert mach.step_enter("step charge", "d") == "1"


def test_a_history_recorded_with_the_patch_consumes_its_marker() -> None:
    mach = machine([marker(0, "v2"), Event(index=1, label="step charge", digest="d", payload="1")])
    assert mach.patched("v2") == (True, False)
    assert mach.cursor.position == 1
    assert mach.step_enter("step charge", "d") == "1"
    assert mach.take() == ([], [])


def test_a_marker_of_another_patch_is_a_divergence() -> None:
    mach = machine([marker(0, "v1")])
    with pytest.raises(NondeterminismError) as caught:
        mach.patched("v2")
    assert "'patch v1'" in str(caught.value)
    assert "'patch v2'" in str(caught.value)
    # A deprecated call records nothing: the next marker belongs to a later call.
    later = machine([marker(0, "v1")])
    assert later.patched("v0", deprecated=True) == (False, False)
    assert later.patched("v1") == (True, False)


def test_the_first_answer_holds_for_the_rest_of_the_run() -> None:
    # The old branch was taken while replaying; a later call past the history must not
    # switch this task to the new branch (nor record a marker).
    mach = machine([STEP])
    assert mach.patched("v2") == (False, False)
    mach.step_enter("step charge", "d")
    assert not mach.cursor.replaying
    assert mach.patched("v2") == (False, False)
    assert mach.take() == ([], [])
    fresh = machine()
    assert fresh.patched("v2") == (True, True)
    assert fresh.patched("v2") == (True, False)  # one marker per id
    assert len(fresh.take()[0]) == 1


def test_deprecate_consumes_a_due_marker_and_records_nothing() -> None:
    old = machine([marker(0, "v2")])
    assert old.patched("v2", deprecated=True) == (True, False)
    assert old.cursor.position == 1
    new = machine()
    assert new.patched("v2", deprecated=True) == (True, False)
    assert new.take() == ([], [])
    before = machine([STEP])
    assert before.patched("v2", deprecated=True) == (False, False)
    assert before.cursor.position == 0


def test_a_replay_check_stops_at_a_new_marker() -> None:
    mach = machine(replay_only=True)
    with pytest.raises(HistoryExhausted):
        mach.patched("v2")


# -- the host function -------------------------------------------------------------------


class RecordingSink:
    """Keeps every write; anything else is a test failure."""

    def __init__(self) -> None:
        self.writes: list[list[Event]] = []

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        self.writes.append(list(events))

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the patch effect reached the store ({name})")


def _ctx(history: Sequence[Event] = ()) -> AttemptContext:
    now = datetime.now(UTC)
    task = Task(
        id=7, name="t", workflow_hash="h", entry="", input="null", state=TaskState.ACTIVE,
        seed=1, created_at=now, updated_at=now, wakeup_at=None, result=None, error=None,
        owner="w", attempts=1, parent_id=None, idempotency_key=None, deadline_at=None,
        cancel_requested=False, deaths=0,
    )  # fmt: skip
    return AttemptContext(
        task=task, attempt=1, history=history, sink=RecordingSink(), config=HostConfig()
    )


def test_the_host_function_answers_and_records_through_the_machine() -> None:
    ctx = _ctx()
    assert patched(ctx, "v2") is True
    ctx.flush()
    assert [e.label for batch in ctx.sink.writes for e in batch] == ["patch v2"]  # type: ignore[attr-defined]
    assert patched(_ctx([STEP]), "v2") is False


@pytest.mark.parametrize(
    "bad", ["", "x" * (MAX_ID_BYTES + 1), "line\nbreak", "ü" * (MAX_ID_BYTES // 2 + 1)]
)
def test_a_bad_id_is_refused_with_why(bad: str) -> None:
    ctx = _ctx()
    why = patched(ctx, bad)
    assert isinstance(why, str)
    assert why.startswith(f"patch id must be 1 to {MAX_ID_BYTES} bytes of printable text")
    assert ctx.machine.take() == ([], [])


def test_inside_a_step_it_is_refused() -> None:
    ctx = _ctx()
    ctx.machine.step_enter("step s", None)
    assert patched(ctx, "v2", deprecated=True) == (
        "durable.deprecate_patch('v2') inside step 'step s': call it outside steps"
    )
