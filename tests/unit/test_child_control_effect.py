"""Cancelling a child, host side, driven directly (no component): what it records, what
it writes with the event, what a replay does, and what it refuses."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from durable.core import ops
from durable.core.model import Event, LogChunk, Task, TaskState
from durable.core.side_writes import CancelChild, SideWrite
from durable.core.signals import HistoryExhausted
from durable.errors import TaskNotFoundError
from durable.host.child_control import cancel_child
from durable.host.config import HostConfig
from durable.host.context import AttemptContext

PARENT = 7


def _task(task_id: int, parent_id: int | None, state: TaskState) -> Task:
    now = datetime.now(UTC)
    return Task(
        id=task_id, name="t", workflow_hash="h", entry="", input="null", state=state,
        seed=1, created_at=now, updated_at=now, wakeup_at=None, result=None, error=None,
        owner="w", attempts=1, parent_id=parent_id, idempotency_key=None, deadline_at=None,
        cancel_requested=False, deaths=0,
    )  # fmt: skip


class RecordingSink:
    """Keeps every write and answers `get_task` from a table; nothing else is allowed."""

    def __init__(self, tasks: Sequence[Task] = ()) -> None:
        self.tasks = {t.id: t for t in tasks}
        self.writes: list[tuple[list[Event], list[SideWrite]]] = []
        self.looked: list[int] = []

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        self.writes.append((list(events), list(writes)))

    def get_task(self, task_id: int) -> Task:
        self.looked.append(task_id)
        if task_id not in self.tasks:
            raise TaskNotFoundError(task_id)
        return self.tasks[task_id]

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the cancel effect reached the store ({name})")


CHILD = _task(8, PARENT, TaskState.SUSPENDED)
DONE = _task(9, PARENT, TaskState.COMPLETE)
STRANGER = _task(10, None, TaskState.READY)


def _ctx(
    history: Sequence[Event] = (), *, replay_only: bool = False
) -> tuple[AttemptContext, RecordingSink]:
    sink = RecordingSink([CHILD, DONE, STRANGER])
    ctx = AttemptContext(
        task=_task(PARENT, None, TaskState.ACTIVE), attempt=1, history=history, sink=sink,
        config=HostConfig(), replay_only=replay_only,
    )  # fmt: skip
    return ctx, sink


def test_the_request_is_written_with_its_event_at_once() -> None:
    ctx, sink = _ctx()
    assert cancel_child(ctx, CHILD.id) is True
    [(events, writes)] = sink.writes
    [event] = events
    assert (event.index, event.label, ops.CHILDREN_CANCEL.decode(event.payload)) == (
        0, ops.CHILDREN_CANCEL.label, {"running": True},
    )  # fmt: skip
    assert writes == [CancelChild(task_id=CHILD.id)]


def test_an_ended_child_is_recorded_without_a_request() -> None:
    ctx, sink = _ctx()
    assert cancel_child(ctx, DONE.id) is False
    [(events, writes)] = sink.writes
    assert ops.CHILDREN_CANCEL.decode(events[0].payload) == {"running": False}
    assert writes == []


@pytest.mark.parametrize(
    ("task_id", "why"),
    [(STRANGER.id, "task 10 is not a child of this task"), (99, "task 99 does not exist")],
)
def test_a_task_that_is_not_a_child_is_refused_and_the_refusal_recorded(
    task_id: int, why: str
) -> None:
    ctx, sink = _ctx()
    assert cancel_child(ctx, task_id) == why
    [(events, writes)] = sink.writes
    assert ops.CHILDREN_CANCEL.decode(events[0].payload) == {"refused": why}
    assert writes == []
    # The replay gives the same answer without looking again, even if the world changed.
    again, replay_sink = _ctx(events)
    replay_sink.tasks[task_id] = dataclasses.replace(STRANGER, id=task_id, parent_id=PARENT)
    assert cancel_child(again, task_id) == why
    assert replay_sink.looked == []


def test_a_replay_answers_from_the_history_and_sends_nothing() -> None:
    first, sink = _ctx()
    cancel_child(first, CHILD.id)
    cancel_child(first, DONE.id)
    history = [e for events, _ in sink.writes for e in events]
    again, replay_sink = _ctx(history)
    replay_sink.tasks[CHILD.id] = dataclasses.replace(CHILD, state=TaskState.CANCELLED)
    assert cancel_child(again, CHILD.id) is True  # as recorded, not as it is now
    assert cancel_child(again, DONE.id) is False
    again.flush()
    assert replay_sink.writes == []
    assert replay_sink.looked == []


def test_a_replay_check_stops_before_sending_anything() -> None:
    ctx, sink = _ctx(replay_only=True)
    with pytest.raises(HistoryExhausted):
        cancel_child(ctx, CHILD.id)
    assert ctx.side_writes == []
    assert sink.writes == []
    assert sink.looked == []


def test_inside_a_step_it_is_refused() -> None:
    ctx, sink = _ctx()
    assert ctx.step_enter("step s", None) is None
    refused = cancel_child(ctx, CHILD.id)
    assert refused == "cancelling child 8 inside step 'step s': call it outside steps"
    ctx.step_exit("{}")
    ctx.flush()
    assert [e.label for events, _ in sink.writes for e in events] == ["step s"]
    assert [w for _, writes in sink.writes for w in writes] == []
