"""The exported history format: round trips, versioning, and what a bad file says."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from durable.core.model import Event, Task, TaskState
from durable.errors import ConfigurationError
from durable.history import HISTORY_FORMAT, TaskHistory, task_from_dict, task_to_dict

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "histories"
T0 = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _task(**overrides: Any) -> Task:
    fields: dict[str, Any] = {
        "id": 3,
        "name": "greeter",
        "workflow_hash": "ab" * 32,
        "entry": "main",
        "input": '{"b": 1,  "a": [1.50, "\\u00e9"]}',  # odd spacing and escapes, kept as is
        "state": TaskState.FAILED,
        "seed": 2**62 + 5,
        "created_at": T0,
        "updated_at": T0,
        "wakeup_at": None,
        "result": None,
        "error": '{"kind": "ValueError", "message": "bad", "traceback": ""}',
        "owner": None,
        "attempts": 2,
        "parent_id": 1,
        "idempotency_key": "order-9",
        "deadline_at": T0,
        "cancel_requested": True,
    }
    fields.update(overrides)
    return Task(**fields)


def _history() -> TaskHistory:
    events = (
        Event(index=0, label="step fetch", digest="1a2b", payload='{"ok":  1}', created_at=T0),
        Event(index=1, label="wasi:clocks/wall-clock.now", digest=None, payload="17"),
    )
    return TaskHistory(task=_task(), events=events)


def test_round_trip_keeps_every_field_and_the_exact_json_text() -> None:
    history = _history()
    again = TaskHistory.from_dict(json.loads(history.dumps()))
    assert again == history
    assert again.task.input == history.task.input  # byte for byte, not re-encoded
    assert again.events[0].payload == '{"ok":  1}'


def test_document_names_its_format_version() -> None:
    data = _history().to_dict()
    assert data["format"] == HISTORY_FORMAT == 1
    assert list(data) == ["format", "task", "events"]
    assert data["task"]["created_at"] == "2025-06-01T12:00:00.123456+00:00"


def test_task_dict_round_trip() -> None:
    task = _task(state=TaskState.SUSPENDED, wakeup_at=T0, error=None)
    assert task_from_dict(task_to_dict(task)) == task


def test_task_dict_keeps_a_queued_task_s_placement_and_deaths() -> None:
    task = _task(deaths=2, queue="emails", queue_key="acme", priority=5, started_at=T0)
    data = task_to_dict(task)
    assert (data["queue"], data["queue_key"], data["priority"], data["deaths"]) == (
        "emails", "acme", 5, 2,
    )  # fmt: skip
    assert data["started_at"] == "2025-06-01T12:00:00.123456+00:00"
    assert task_from_dict(data) == task


def test_golden_histories_load() -> None:
    for path in sorted(FIXTURES.glob("*.json")):
        history = TaskHistory.load(path)
        assert history.events, path
        assert history.task.state is TaskState.COMPLETE


def test_newer_format_asks_for_an_upgrade() -> None:
    data = _history().to_dict() | {"format": HISTORY_FORMAT + 1}
    with pytest.raises(ConfigurationError, match="newer than this durable reads"):
        TaskHistory.from_dict(data)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "not a durable history"),
        ({"task": {}}, "no `format` field"),
        ({"format": "one"}, "unknown history format"),
        ({"format": 1, "events": []}, "missing field 'task'"),
        ({"format": 1, "task": None, "events": []}, "malformed history"),
    ],
)
def test_malformed_documents_are_one_clear_error(data: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        TaskHistory.from_dict(data)


def test_events_must_be_gap_free() -> None:
    data = _history().to_dict()
    data["events"][1]["index"] = 2
    with pytest.raises(ConfigurationError, match="event 1 has index 2"):
        TaskHistory.from_dict(data)


def test_payload_must_stay_json_text() -> None:
    data = _history().to_dict()
    data["events"][0]["payload"] = {"ok": 1}
    with pytest.raises(ConfigurationError, match="`payload` must be a string"):
        TaskHistory.from_dict(data)


def test_naive_times_are_refused() -> None:
    data = _history().to_dict()
    data["task"]["created_at"] = "2025-06-01T12:00:00"
    with pytest.raises(ConfigurationError, match="no time zone"):
        TaskHistory.from_dict(data)


def test_load_reports_bad_files_by_name(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(ConfigurationError, match=r"missing\.json"):
        TaskHistory.load(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{nope")
    with pytest.raises(ConfigurationError, match=r"broken\.json: not valid JSON: .*line 1"):
        TaskHistory.load(broken)
