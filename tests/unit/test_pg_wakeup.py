"""A suspension reaches Postgres as a duration, so a worker's clock cannot move it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from durable.core.model import Completed, Suspended
from durable.storage._pg_codec import outcome_args


def test_a_worker_clock_a_day_behind_still_suspends_for_the_timers_duration() -> None:
    # The worker's clock is a day behind: its timer's deadline is too, by its clock.
    worker_now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    args = outcome_args(Suspended(wakeup_at=worker_now + timedelta(minutes=5)), worker_now)
    assert args[0] == "suspended"
    assert args[3] == timedelta(minutes=5)  # the database adds this to its now()


def test_a_naive_deadline_is_utc_and_a_wait_without_one_has_none() -> None:
    now = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
    naive = Suspended(wakeup_at=datetime(2026, 12, 7, 8, 1))
    assert outcome_args(naive, now)[3] == timedelta(minutes=1)
    assert outcome_args(Suspended(wakeup_at=None, on_event=True), now)[3:5] == (None, True)
    assert outcome_args(Completed(result="1"), now)[3] is None
