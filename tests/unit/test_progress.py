"""`progress` when stderr is a pipe: a line when slow work starts, one when it ends."""

from __future__ import annotations

import time

import pytest

from durable.cli._common import progress

START = "durable: building wf.py...\n"


def _wait_for_start(capsys: pytest.CaptureFixture[str]) -> str:
    seen = ""
    deadline = time.monotonic() + 30
    while START not in seen:
        assert time.monotonic() < deadline, "no start line after 30 s"
        seen += capsys.readouterr().err
        time.sleep(0.01)
    return seen


def test_slow_work_says_when_it_starts_and_ends(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("building wf.py"):
        seen = _wait_for_start(capsys)  # the work lasts until the line is out
    assert seen == START
    end = capsys.readouterr().err
    assert end.startswith("durable: building wf.py: done in ")
    assert end.endswith(" s\n")


def test_quick_work_says_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("building wf.py"):
        pass
    assert capsys.readouterr().err == ""


def _fail_slowly(capsys: pytest.CaptureFixture[str]) -> None:
    with progress("building wf.py"):
        _wait_for_start(capsys)
        raise RuntimeError("the build failed")


def test_failed_work_does_not_say_done(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError):
        _fail_slowly(capsys)
    assert capsys.readouterr().err == ""
