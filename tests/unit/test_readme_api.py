"""The README's reference tables list what the code has (issue 15, item 16)."""

from __future__ import annotations

import dataclasses
import re

from durable import Task
from tests.helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _task_table() -> str:
    match = re.search(r"return `durable\.Task` objects.*?\n\n(\|.*?)\n\n", README, re.S)
    assert match, "README has no table of the Task object's attributes"
    return match.group(1)


def test_every_task_attribute_is_listed() -> None:
    table = _task_table()
    listed = set(re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)?", table, re.M))
    names = {name for pair in listed for name in pair if name}
    fields = {field.name for field in dataclasses.fields(Task)}
    assert fields - names == set(), f"README does not list Task.{sorted(fields - names)}"
    assert names - fields == set(), f"README lists what Task has not: {sorted(names - fields)}"
