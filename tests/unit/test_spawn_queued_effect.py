"""Spawning a child onto a queue, host side, driven directly (no component): the
placement reaches the store, the spawn is recorded under its own label with the
placement in the digest, a replay spawns nothing, and a bad placement is refused."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from durable.core import ops
from durable.core.model import Event, LogChunk, NewTask, Task, TaskState
from durable.core.side_writes import SideWrite
from durable.errors import ConfigurationError, NondeterminismError
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from durable.host.coordination import spawn_child

PARENT = 7


def _task(task_id: int) -> Task:
    now = datetime.now(UTC)
    return Task(
        id=task_id, name="parent", workflow_hash="h", entry="", input="null",
        state=TaskState.ACTIVE, seed=1, created_at=now, updated_at=now, wakeup_at=None,
        result=None, error=None, owner="w", attempts=1, parent_id=None, idempotency_key=None,
    )  # fmt: skip


class SpawningSink:
    """Keeps what is written and spawned; `queues` says whether the store has them."""

    def __init__(self, *, queues: bool = True) -> None:
        self.queues = queues
        self.spawned: list[NewTask] = []
        self.events: list[Event] = []

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        self.events += events

    def spawn(self, spec: NewTask) -> int:
        if not self.queues:
            raise ConfigurationError("the store memory:// has no queues or priorities")
        self.spawned.append(spec)
        return 100 + len(self.spawned)


def _ctx(
    history: Sequence[Event] = (), *, queues: bool = True
) -> tuple[AttemptContext, SpawningSink]:
    sink = SpawningSink(queues=queues)
    ctx = AttemptContext(
        task=_task(PARENT), attempt=1, history=history, sink=sink, config=HostConfig()
    )
    return ctx, sink


def test_the_placement_reaches_the_store_and_is_recorded() -> None:
    ctx, sink = _ctx()
    out = spawn_child(ctx, None, "main", '{"n": 1}', "child", ("emails", "acme", 5))
    ctx.flush()
    assert out == {"id": 101}
    [spec] = sink.spawned
    assert (spec.queue, spec.queue_key, spec.priority, spec.parent_id) == (
        "emails", "acme", 5, PARENT,
    )  # fmt: skip
    assert spec.idempotency_key is not None  # a replay that reaches the store adds nothing
    [event] = sink.events
    assert event.label == ops.CHILDREN_SPAWN_QUEUED.label


def test_a_replay_spawns_nothing_and_a_moved_child_is_nondeterminism() -> None:
    ctx, sink = _ctx()
    spawn_child(ctx, None, "main", "1", "child", ("emails", None, None))
    ctx.flush()
    history = sink.events
    again, replay_sink = _ctx(history)
    assert spawn_child(again, None, "main", "1", "child", ("emails", None, None)) == {"id": 101}
    assert replay_sink.spawned == []
    moved, _ = _ctx(history)
    with pytest.raises(NondeterminismError):
        spawn_child(moved, None, "main", "1", "child", ("other", None, None))


def test_without_a_placement_it_is_a_plain_spawn() -> None:
    ctx, sink = _ctx()
    spawn_child(ctx, None, "main", "1", "child")
    ctx.flush()
    assert sink.events[0].label == ops.CHILDREN_SPAWN.label
    assert sink.spawned[0].queue is None


@pytest.mark.parametrize(
    ("placement", "why"),
    [
        (("bad name!", None, None), "a queue name is 1 to 200"),
        ((None, "acme", None), "a queue key needs a queue"),
        (("q", "k" * 201, None), "a queue key is at most 200"),
        (("q", "a\nb", None), "queue key: it must be one line"),
    ],
)
def test_a_bad_placement_is_refused_and_recorded(
    placement: tuple[str | None, str | None, int | None], why: str
) -> None:
    ctx, sink = _ctx()
    out = spawn_child(ctx, None, "main", "1", "child", placement)
    ctx.flush()
    kind, detail = out["error"]
    assert kind == "other"
    assert why in detail
    assert sink.spawned == []
    assert ops.CHILDREN_SPAWN_QUEUED.decode(sink.events[0].payload) == out


def test_a_store_without_queues_refuses() -> None:
    ctx, _ = _ctx(queues=False)
    out = spawn_child(ctx, None, "main", "1", "child", ("emails", None, 1))
    why = "cannot spawn the child: the store memory:// has no queues or priorities"
    assert out["error"] == ["other", why]
