"""`durable.continue_as_new`, driven directly (no component, no store): the run's
entropy seed and effect keys, and the host function's signal and refusals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from durable.core.model import Event, LogChunk, Task, TaskState
from durable.core.runs import effect_key, run_seed
from durable.core.side_writes import SideWrite
from durable.core.signals import ContinueAsNew
from durable.errors import NondeterminismError
from durable.history import task_from_dict, task_to_dict
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from durable.host.continuation import continue_as_new

STEP = Event(index=0, label="step tick", digest="d", payload='{"ok": 1}')


def test_run_one_keeps_the_seed_and_keys_of_a_task_without_runs() -> None:
    assert run_seed(12345, 1) == 12345
    assert effect_key("spawn", 7, 1, 3, 0) == "spawn:7:3:0"


def test_each_run_has_its_own_seed_and_keys() -> None:
    seeds = [run_seed(12345, run) for run in range(1, 200)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 < s < 2**63 for s in seeds)
    assert run_seed(12345, 2) == run_seed(12345, 2), "a pure function"
    assert run_seed(12345, 2) != run_seed(54321, 2)
    keys = {effect_key("spawn", 7, run, 3, 0) for run in range(1, 50)}
    assert len(keys) == 49
    assert effect_key("notify", 7, 2, 3, 0) == "notify:7.2:3:0"


class RefusingSink:
    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        raise AssertionError("continue_as_new writes nothing itself: the finish does")

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"continue_as_new reached the store ({name})")


def _ctx(history: Sequence[Event] = (), run: int = 1) -> AttemptContext:
    now = datetime.now(UTC)
    task = Task(
        id=7, name="t", workflow_hash="h", entry="", input="null", state=TaskState.ACTIVE,
        seed=99, created_at=now, updated_at=now, wakeup_at=None, result=None, error=None,
        owner="w", attempts=1, parent_id=None, idempotency_key=None, run=run,
    )  # fmt: skip
    return AttemptContext(
        task=task, attempt=1, history=history, sink=RefusingSink(), config=HostConfig()
    )


def test_the_attempt_derives_its_entropy_from_the_run_seed() -> None:
    assert _ctx(run=1).machine.seed == 99
    assert _ctx(run=3).machine.seed == run_seed(99, 3)
    assert _ctx(run=3).random_bytes(16) != _ctx(run=2).random_bytes(16)


def test_it_ends_the_run_with_the_new_input() -> None:
    ctx = _ctx()
    with pytest.raises(ContinueAsNew) as caught:
        continue_as_new(ctx, '{"n": 2}')
    assert caught.value.input == '{"n": 2}'


def test_like_a_return_it_comes_after_the_whole_history() -> None:
    ctx = _ctx([STEP])
    with pytest.raises(NondeterminismError, match="the end of the workflow"):
        continue_as_new(ctx, "1")
    replayed = _ctx([STEP])
    assert replayed.step_enter("step tick", "d") == '{"ok": 1}'
    with pytest.raises(ContinueAsNew):
        continue_as_new(replayed, "1")


def test_inside_a_step_it_is_refused() -> None:
    ctx = _ctx()
    ctx.machine.step_enter("step s", None)
    assert continue_as_new(ctx, "1") == (
        "durable.continue_as_new inside step 'step s': call it outside steps"
    )


@pytest.mark.parametrize("bad", ["", "{", "NaN x"])
def test_an_input_that_is_not_json_is_refused(bad: str) -> None:
    why = continue_as_new(_ctx(), bad)
    assert isinstance(why, str)
    assert why.startswith("cannot continue as new: the input is not JSON")


def test_an_input_over_the_payload_limit_is_refused() -> None:
    ctx = _ctx()
    big = '"' + "x" * (ctx.config.max_payload_bytes + 1) + '"'
    why = continue_as_new(ctx, big)
    assert isinstance(why, str)
    assert why.startswith("cannot continue as new:")


def test_a_history_file_keeps_its_run() -> None:
    task = _ctx(run=4).task
    data = task_to_dict(task)
    assert data["run"] == 4
    assert task_from_dict(data) == task
    del data["run"]  # a file written before runs existed
    assert task_from_dict(data).run == 1
