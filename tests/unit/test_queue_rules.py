"""The pure rules of queues (`durable.core.queue`): how many may start, and which."""

from __future__ import annotations

import pytest

from durable.core.queue import QueueSettings, parse_rate, pick, room
from durable.errors import ConfigurationError


def test_room_is_the_tightest_limit() -> None:
    unlimited = QueueSettings(name="q")
    assert room(unlimited, 7, active=100, started=100) == 7
    s = QueueSettings(name="q", concurrency=5, rate_limit=3, rate_period=1.0)
    assert room(s, 10, active=1, started=0) == 3  # the rate binds
    assert room(s, 10, active=4, started=0) == 1  # the concurrency binds
    assert room(s, 10, active=6, started=0) == 0  # over (the limit was lowered): none
    assert room(s, 10, active=0, started=3) == 0


def test_pick_keeps_order_and_per_key_limits() -> None:
    candidates = [(1, "a"), (2, "a"), (3, "b"), (4, "a"), (5, None), (6, "b")]
    assert pick(candidates, 10, None, {}) == [1, 2, 3, 4, 5, 6]
    assert pick(candidates, 10, 1, {}) == [1, 3, 5]
    assert pick(candidates, 10, 2, {"a": 1}) == [1, 3, 5, 6]
    assert pick(candidates, 2, 1, {}) == [1, 3]


@pytest.mark.parametrize(("text", "rate"), [("10/1s", (10, 1.0)), ("100/1m", (100, 60.0))])
def test_parse_rate(text: str, rate: tuple[int, float]) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["10", "0/1s", "x/1s", "10/", "10/fast"])
def test_parse_rate_refuses(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_rate(text)
