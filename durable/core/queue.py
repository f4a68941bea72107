"""Queues: named lines of tasks with limits that hold across every worker.

A queue's settings are all optional and may change while tasks wait: a concurrency
limit (active tasks of the queue at once), a limit per queue key (one tenant, one
customer), a rate limit (at most N first starts per period), a default priority, and
a pause (no new starts). "Active" means claimed by a worker and running: a queued task
that sleeps or waits (suspended) holds no slot, and needs one again to go on.

The stores check the limits in the transaction that claims the tasks (SQLite: its
one writer at a time; Postgres: a lock on the queue's row), so no two workers can
both take the last slot.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from durable.errors import ConfigurationError
from durable.task_names import name_problem

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}")


class Keep(enum.Enum):
    """A setting left out of a change: it keeps its value (None would clear it)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """A queue's limits; None means no limit."""

    name: str
    concurrency: int | None = None
    key_concurrency: int | None = None
    rate_limit: int | None = None  # starts ...
    rate_period: float | None = None  # ... per this many seconds
    priority: int = 0  # for tasks launched without a priority
    paused: bool = False

    def __post_init__(self) -> None:
        check_name(self.name)
        for what, value in (
            ("concurrency", self.concurrency),
            ("key concurrency", self.key_concurrency),
            ("rate limit", self.rate_limit),
        ):
            if value is not None and value < 1:
                raise ConfigurationError(f"a queue's {what} is at least 1, not {value}")
        if (self.rate_limit is None) != (self.rate_period is None):
            raise ConfigurationError("a rate limit needs both a count and a period")
        if self.rate_period is not None and self.rate_period <= 0:
            raise ConfigurationError(f"a rate period is positive, not {self.rate_period:g}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Queue:
    """A queue's settings and what is in it now."""

    settings: QueueSettings
    ready: int  # waiting for a slot
    active: int  # running now
    suspended: int  # sleeping or waiting, holding no slot


def check_name(name: str) -> None:
    """Refuse a queue name that is empty, too long or more than [A-Za-z0-9_.:-]."""
    if not _NAME.fullmatch(name):
        raise ConfigurationError(
            "a queue name is 1 to 200 letters, digits, '_', '.', ':' or '-', starting with a "
            f"letter or digit: {name[:60]!r}"
        )


#: How long after a rate window opens a waiting worker looks: a claim exactly at the
#: boundary may still count the start that is leaving (clocks, the database's
#: transaction time), and would then wait for its poll.
RATE_WAKE_MARGIN = 0.05

#: Where a spawned child waits: (queue, queue key, priority), each optional.
Placement = tuple[str | None, str | None, int | None]

#: The longest queue key: a workflow chooses it, and it is stored with every task.
MAX_KEY_LENGTH = 200


def placement_problem(queue: str | None, queue_key: str | None) -> str | None:
    """Why a task cannot be placed so (a bad queue name, a key without a queue or too
    long), or None. Pure: the host checks what an untrusted workflow asks for."""
    if queue is not None:
        try:
            check_name(queue)
        except ConfigurationError as exc:
            return str(exc)
    if queue_key is not None:
        if queue is None:
            return "a queue key needs a queue"
        if len(queue_key) > MAX_KEY_LENGTH:
            return f"a queue key is at most {MAX_KEY_LENGTH} characters, not {len(queue_key)}"
        problem = name_problem(queue_key)  # shown in tables, as a task name is
        if problem is not None:
            return "queue key: " + problem.replace("a task name", "it")
    return None


def pick(
    candidates: Iterable[tuple[int, str | None]],
    room: int,
    key_limit: int | None,
    key_active: dict[str | None, int],
) -> list[int]:
    """The ids to start, in the candidates' order (priority, then age): at most `room`,
    and none whose key already has `key_limit` active ones. Pure."""
    counts = dict(key_active)
    chosen: list[int] = []
    for task_id, key in candidates:
        if len(chosen) >= room:
            break
        if key_limit is not None and counts.get(key, 0) >= key_limit:
            continue
        counts[key] = counts.get(key, 0) + 1
        chosen.append(task_id)
    return chosen


def room(settings: QueueSettings, wanted: int, active: int, started: int) -> int:
    """How many more tasks of the queue may start now: `wanted` at most, within the
    concurrency limit (given `active`) and the rate limit (given `started` in the
    current window). Pure."""
    free = wanted
    if settings.concurrency is not None:
        free = min(free, settings.concurrency - active)
    if settings.rate_limit is not None:
        free = min(free, settings.rate_limit - started)
    return max(free, 0)


def parse_rate(text: str) -> tuple[int, float]:
    """ "10/1s", "100/1m" or "5/30s": (count, period in seconds)."""
    from durable.core.schedule import parse_every

    count, sep, period = text.partition("/")
    if not sep or not count.strip().isdigit() or int(count) < 1:
        raise ConfigurationError(f"not a rate (like 10/1s, 100/1m): {text!r}")
    return int(count), float(parse_every(period))


def describe(settings: QueueSettings) -> Sequence[str]:
    """The limits in words, for tables."""
    parts = []
    if settings.concurrency is not None:
        parts.append(f"concurrency {settings.concurrency}")
    if settings.key_concurrency is not None:
        parts.append(f"per key {settings.key_concurrency}")
    if settings.rate_limit is not None:
        parts.append(f"rate {settings.rate_limit}/{settings.rate_period:g}s")
    return parts
