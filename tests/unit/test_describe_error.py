"""`durable show` and `durable replay` describe a task's error through `TaskError`."""

from __future__ import annotations

import pytest

from durable.cli._format import describe_error
from durable.core.task_error import CANCELLED_ON_REQUEST, TaskError


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (None, "-"),
        (TaskError(kind="ValueError", message="bad value 7", traceback="tb").to_json(),
         "ValueError: bad value 7"),
        (TaskError(kind="Quarantined").to_json(), "Quarantined"),
        (CANCELLED_ON_REQUEST.to_json(), "Cancelled: cancelled on request"),
        ("not json at all", "Error: not json at all"),
        ("[1, 2]", "Error: [1, 2]"),
        ('{"message": "no kind"}', "Error: no kind"),
    ],
)  # fmt: skip
def test_describe_error(error: str | None, shown: str) -> None:
    assert describe_error(error) == shown
