"""The status effect's host side, driven directly (no component): what it records,
what it writes with the event, what a replay does, and its bounds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from durable.core import ops
from durable.core.model import Event, LogChunk, Task, TaskState
from durable.core.side_writes import SetStatus, SideWrite
from durable.core.signals import HistoryExhausted
from durable.core.status import MAX_KEYS
from durable.errors import NondeterminismError
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from durable.host.status import set_status


class RecordingSink:
    """Keeps every write; anything else is a test failure."""

    def __init__(self) -> None:
        self.writes: list[tuple[list[Event], list[SideWrite]]] = []

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        self.writes.append((list(events), list(writes)))

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the status effect reached the store ({name})")


def _task() -> Task:
    now = datetime.now(UTC)
    return Task(
        id=7, name="t", workflow_hash="h", entry="", input="null", state=TaskState.ACTIVE,
        seed=1, created_at=now, updated_at=now, wakeup_at=None, result=None, error=None,
        owner="w", attempts=1, parent_id=None, idempotency_key=None, deadline_at=None,
        cancel_requested=False, deaths=0,
    )  # fmt: skip


def _ctx(
    history: Sequence[Event] = (), *, replay_only: bool = False
) -> tuple[AttemptContext, RecordingSink]:
    sink = RecordingSink()
    ctx = AttemptContext(
        task=_task(), attempt=1, history=history, sink=sink, config=HostConfig(),
        replay_only=replay_only,
    )  # fmt: skip
    return ctx, sink


def test_a_value_is_written_with_its_event_at_once() -> None:
    ctx, sink = _ctx()
    assert set_status(ctx, "phase", '"load"') is None
    [(events, writes)] = sink.writes
    [event] = events
    assert (event.index, event.label, ops.STATUS_SET.decode(event.payload)) == (
        0, ops.STATUS_SET.label, {"key": "phase"},
    )  # fmt: skip
    assert writes == [SetStatus(key="phase", value='"load"', position=0)]


def test_a_replay_answers_from_the_history_and_writes_nothing() -> None:
    first, sink = _ctx()
    set_status(first, "a", "1")
    set_status(first, "b", "2")
    history = [e for events, _ in sink.writes for e in events]
    again, replay_sink = _ctx(history)
    assert set_status(again, "a", "1") is None
    assert set_status(again, "b", "2") is None
    assert replay_sink.writes == []
    assert again.side_writes == []
    with pytest.raises(NondeterminismError):
        _ctx(history)[0].cursor.next(ops.STATUS_SET.label, "another digest")
    changed, _ = _ctx(history)
    with pytest.raises(NondeterminismError):
        set_status(changed, "a", "99")  # another value: another digest


def test_a_replay_check_stops_before_setting_anything_new() -> None:
    ctx, sink = _ctx(replay_only=True)
    with pytest.raises(HistoryExhausted):
        set_status(ctx, "a", "1")
    assert ctx.side_writes == []
    assert sink.writes == []


def test_the_key_bound_counts_the_keys_of_the_history() -> None:
    first, sink = _ctx()
    for i in range(MAX_KEYS):
        assert set_status(first, f"k{i}", "0") is None
    history = [e for events, _ in sink.writes for e in events]
    assert len(history) == MAX_KEYS
    again, replay_sink = _ctx(history)
    for i in range(MAX_KEYS):
        set_status(again, f"k{i}", "0")
    refused = set_status(again, "one-more", "0")
    assert refused == f"task has {MAX_KEYS} status keys, the limit: cannot add 'one-more'"
    assert set_status(again, "k3", "1") is None  # an existing key may change
    assert [w for _, writes in replay_sink.writes for w in writes] == [
        SetStatus(key="k3", value="1", position=MAX_KEYS)
    ]


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("", "1", "status key must not be empty"),
        ("k" * 257, "1", "status key of 257 bytes is over the limit of 256"),
        ("é" * 129, "1", "status key of 258 bytes is over the limit of 256"),
        ("k", "{nope", "status value for 'k' is not JSON text"),
        ("k", '"' + "x" * 65535 + '"', "status value for 'k' of 65537 bytes is over the limit"),
    ],
)
def test_bounds_refuse_and_record_nothing(key: str, value: str, why: str) -> None:
    ctx, sink = _ctx()
    refused = set_status(ctx, key, value)
    assert refused is not None
    assert refused.startswith(why)
    assert sink.writes == []
    assert ctx.cursor.position == 0


def test_inside_a_step_it_is_refused() -> None:
    ctx, sink = _ctx()
    assert ctx.step_enter("step s", None) is None
    refused = set_status(ctx, "k", "1")
    assert refused == "durable.set_status('k') inside step 'step s': call it outside steps"
    ctx.step_exit("{}")
    ctx.flush()
    assert [e.label for events, _ in sink.writes for e in events] == ["step s"]
    assert [w for _, writes in sink.writes for w in writes] == []
