"""The recorded operations and the task error: one definition, byte-compatible formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from durable.core import ops
from durable.core.task_error import CANCELLED_ON_REQUEST, TaskError

HISTORIES = Path(__file__).parents[1] / "fixtures" / "histories"
FAMILIES = (ops.STEP_PREFIX, ops.SQL_PREFIX, ops.HTTP_PREFIX, ops.PATCH_PREFIX)


def test_every_golden_label_is_a_known_operation() -> None:
    files = sorted(HISTORIES.glob("*.json"))
    assert files
    for path in files:
        for event in json.loads(path.read_text())["events"]:
            label = event["label"]
            assert label in ops.FIXED or label.startswith(FAMILIES), (path.name, label)


def test_golden_clock_payloads_decode_and_encode_to_the_same_bytes() -> None:
    seen = 0
    for path in sorted(HISTORIES.glob("*.json")):
        for event in json.loads(path.read_text())["events"]:
            if event["label"] == ops.CLOCK_NOW.label:
                value = ops.CLOCK_NOW.decode(event["payload"])
                assert isinstance(value, int)
                assert ops.CLOCK_NOW.encode(value) == event["payload"]
                seen += 1
    assert seen


@pytest.mark.parametrize(
    ("op", "value", "payload"),
    [
        (ops.CLOCK_NOW, 1_700_000_000_123_456_789, "1700000000123456789"),
        (ops.TIMER_SLEEP, 5, "5"),
        (ops.TASK_CANCELLED, True, "true"),
        (ops.NOTIFY_WAIT, None, "null"),
        (ops.NOTIFY_SEND, {"refused": None}, '{"refused": null}'),
        (
            ops.CHILDREN_SPAWN,
            {"error": ["workflow-not-found", "x"]},
            '{"error": ["workflow-not-found", "x"]}',
        ),
    ],
)
def test_payloads_are_what_the_first_recordings_wrote(
    op: ops.Op[object], value: object, payload: str
) -> None:
    assert op.encode(value) == payload
    assert op.decode(payload) == value


def test_labels_are_unique_and_families_are_built_from_their_prefix() -> None:
    assert len(ops.FIXED) == 12
    assert ops.sql_label("move money") == "sql move money"
    assert not any(label.startswith(FAMILIES) for label in ops.FIXED)


def test_task_error_json_keeps_its_key_order_and_bytes() -> None:
    error = TaskError(kind="ValueError", message="bad ü", traceback="tb")
    assert error.to_json() == '{"kind": "ValueError", "message": "bad \\u00fc", "traceback": "tb"}'
    assert TaskError.from_json(error.to_json()) == error
    assert CANCELLED_ON_REQUEST.to_json() == (
        '{"kind": "Cancelled", "message": "cancelled on request", "traceback": ""}'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"kind": "x"}', TaskError(kind="x")),
        ("not json", TaskError(kind="Error", message="not json")),
        ("[1]", TaskError(kind="Error", message="[1]")),
        ('{"message": "m"}', TaskError(kind="Error", message="m")),
    ],
)
def test_task_error_reads_hand_written_errors_leniently(text: str, expected: TaskError) -> None:
    assert TaskError.from_json(text) == expected


def test_describe() -> None:
    assert TaskError(kind="ValueError", message="no").describe() == "ValueError: no"
    assert TaskError(kind="Cancelled").describe() == "Cancelled"
