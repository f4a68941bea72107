"""Where a fork may cut a history and where `durable retry` cuts a failed task's."""

from __future__ import annotations

import json

from durable.core.fork import check_at, retry_at
from durable.core.model import Event


def ev(index: int, label: str, payload: object) -> Event:
    return Event(index=index, label=label, digest=None, payload=json.dumps(payload))


HISTORY = [
    ev(0, "step a", {"ok": 1}),
    ev(1, "step b", {"error": {"kind": "ValueError", "message": "x", "args": ["x"]}}),
    ev(2, "wasi:clocks/wall-clock.now", 5),
    ev(3, "step b", {"error": {"kind": "ValueError", "message": "y", "args": ["y"]}}),
    ev(4, "step c", {"ok": {"error": "a value that looks like one"}}),
]


def test_every_cut_of_the_history_is_allowed_and_nothing_else() -> None:
    assert [check_at(k, 5, 7) for k in range(6)] == [None] * 6
    assert check_at(-1, 5, 7) == "--at -1 is outside task 7's history of 5 events (0 .. 5)"
    assert check_at(6, 5, 7) is not None


def test_retry_cuts_before_the_last_failed_step() -> None:
    assert retry_at(HISTORY, json.dumps({"kind": "ValueError", "message": "y"})) == 3


def test_retry_cuts_at_a_divergence() -> None:
    error = {"kind": "NondeterminismError", "message": "nondeterminism at event 2: ..."}
    assert retry_at(HISTORY, json.dumps(error)) == 2


def test_retry_keeps_everything_when_no_step_failed() -> None:
    clean = HISTORY[:1]
    assert retry_at(clean, json.dumps({"kind": "RuntimeError", "message": "boom"})) == 1
    assert retry_at(clean, None) == 1
    assert retry_at(clean, "not json") == 1
