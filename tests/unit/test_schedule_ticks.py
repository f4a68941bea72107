"""The pure tick maths of schedules (`durable.core.schedule`), with a made-up "now"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from durable.core.schedule import (
    GRACE,
    Cadence,
    CatchUp,
    Overlap,
    ScheduleState,
    jitter,
    parse_every,
    plan,
    tick_key,
    tick_of,
    tick_task_name,
)
from durable.errors import ConfigurationError

PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def state(
    cadence: Cadence,
    cursor: datetime,
    *,
    overlap: Overlap = Overlap.ALLOW,
    catch_up: CatchUp = CatchUp.ALL,
    jitter_s: float = 0.0,
    buffered: datetime | None = None,
) -> ScheduleState:
    return ScheduleState(
        name="s", cadence=cadence, overlap=overlap, catch_up=catch_up, jitter=jitter_s,
        cursor=cursor, buffered=buffered,
    )  # fmt: skip


def fired_over(cadence: Cadence, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Every tick fired by passes every `step` from `start` to `end`."""
    s = state(cadence, start)
    fired: list[datetime] = []
    now = start
    while True:
        p = plan(s, min(now, end), last_running=False)
        fired += p.fire
        s = state(cadence, p.cursor)
        if now >= end:
            return fired
        now += step


def test_every_ticks_from_its_anchor() -> None:
    c = Cadence(every=30, anchor=T0)
    assert c.next_after(T0 - timedelta(hours=1)) == T0
    assert c.next_after(T0) == T0 + timedelta(seconds=30)
    assert c.next_after(T0 + timedelta(seconds=29.9)) == T0 + timedelta(seconds=30)


def test_each_tick_fires_once_whatever_the_pass_rhythm() -> None:
    c = Cadence(every=10, anchor=T0)
    for step in (timedelta(seconds=1), timedelta(seconds=7), timedelta(seconds=25)):
        fired = fired_over(c, T0, T0 + timedelta(seconds=55), step)
        assert fired == [T0 + timedelta(seconds=10 * k) for k in range(1, 6)], step


def test_daylight_saving_forward_fires_once_after_the_gap() -> None:
    # 29 March 2026: Paris clocks go from 02:00 to 03:00; 02:30 does not exist.
    c = Cadence(cron="30 2 * * *", tz="Europe/Paris")
    start = datetime(2026, 3, 27, 12, tzinfo=PARIS).astimezone(UTC)
    fired = fired_over(c, start, start + timedelta(days=3), timedelta(minutes=7))
    local = [t.astimezone(PARIS) for t in fired]
    assert [d.day for d in local] == [28, 29, 30]  # none lost, none doubled
    assert local[1].hour == 3  # the missing 02:30 fires at the end of the gap


def test_daylight_saving_back_fires_the_repeated_time_once() -> None:
    # 25 October 2026: Paris clocks go from 03:00 back to 02:00; 02:30 happens twice.
    c = Cadence(cron="30 2 * * *", tz="Europe/Paris")
    start = datetime(2026, 10, 23, 12, tzinfo=PARIS).astimezone(UTC)
    fired = fired_over(c, start, start + timedelta(days=3), timedelta(minutes=7))
    local = [t.astimezone(PARIS) for t in fired]
    assert [(d.day, d.hour, d.minute) for d in local] == [(24, 2, 30), (25, 2, 30), (26, 2, 30)]


def test_hourly_cron_across_the_change_back_is_neither_lost_nor_doubled() -> None:
    c = Cadence(cron="0 * * * *", tz="Europe/Paris")
    start = datetime(2026, 10, 24, 23, 30, tzinfo=PARIS).astimezone(UTC)
    fired = fired_over(c, start, start + timedelta(hours=6), timedelta(minutes=1))
    walls = [t.astimezone(PARIS).strftime("%H:%M") for t in fired]
    assert len(walls) == len(set(walls))  # each wall-clock time once
    assert walls[:5] == ["00:00", "01:00", "02:00", "03:00", "04:00"]


def test_catch_up_policies_after_an_outage() -> None:
    c = Cadence(every=10, anchor=T0)
    now = T0 + GRACE + timedelta(seconds=95)  # ticks 10..150 s due; those before 95 s missed
    all_ = plan(state(c, T0), now, last_running=False)
    assert len(all_.fire) == 15
    assert all_.skipped == 0
    none = plan(state(c, T0, catch_up=CatchUp.NONE), now, last_running=False)
    assert all(now - t <= GRACE for t in none.fire)
    assert none.skipped == 9
    assert len(none.fire) == 6
    assert none.cursor == all_.cursor == T0 + timedelta(seconds=150)
    # `latest`: the newest missed tick stands for all the missed ones, when no
    # recent tick does.
    later = T0 + timedelta(seconds=95) + GRACE * 2
    s = state(Cadence(every=3600, anchor=T0), T0, catch_up=CatchUp.LATEST)
    assert plan(s, later, last_running=False).fire == ()
    s = state(Cadence(every=60, anchor=T0), T0, catch_up=CatchUp.LATEST)
    latest = plan(s, T0 + timedelta(minutes=10, seconds=30), last_running=False)
    assert latest.fire == (T0 + timedelta(minutes=10),)
    assert latest.skipped == 9  # minute 10 is within the grace: it fires, others drop


def test_overlap_policies() -> None:
    c = Cadence(every=10, anchor=T0)
    now = T0 + timedelta(seconds=30)
    skip = plan(state(c, T0, overlap=Overlap.SKIP), now, last_running=True)
    assert skip.fire == ()
    assert skip.skipped == 3
    skip_idle = plan(state(c, T0, overlap=Overlap.SKIP), now, last_running=False)
    assert len(skip_idle.fire) == 1
    assert skip_idle.skipped == 2
    buf = plan(state(c, T0, overlap=Overlap.BUFFER_ONE), now, last_running=True)
    assert buf.fire == ()
    assert buf.buffered == T0 + timedelta(seconds=10)
    assert buf.skipped == 2
    # Once the running task ends, the buffered tick fires, even with no tick due.
    s = state(c, buf.cursor, overlap=Overlap.BUFFER_ONE, buffered=buf.buffered)
    after = plan(s, now + timedelta(seconds=1), last_running=False)
    assert after.fire == (buf.buffered,)
    assert after.buffered is None
    assert plan(s, now + timedelta(seconds=1), last_running=True).fire == ()
    allow = plan(state(c, T0), now, last_running=True)
    assert len(allow.fire) == 3


def test_jitter_is_deterministic_bounded_and_varies() -> None:
    ticks = [T0 + timedelta(minutes=k) for k in range(50)]
    delays = [jitter("s", t, 30).total_seconds() for t in ticks]
    assert delays == [jitter("s", t, 30).total_seconds() for t in ticks]
    assert all(0 <= d < 30 for d in delays)
    assert len(set(delays)) > 40
    c = Cadence(every=60, anchor=T0)
    s = state(c, T0, jitter_s=30)
    first = T0 + timedelta(minutes=1)
    delay = jitter("s", first, 30)
    assert plan(s, first + delay - timedelta(microseconds=1), last_running=False).fire == ()
    assert plan(s, first + delay, last_running=False).fire == (first,)


def test_the_tick_is_in_the_task_name_and_key() -> None:
    tick = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert tick_of(tick_task_name("nightly", tick)) == tick
    assert tick_key("nightly", tick) == "schedule:nightly:2026-03-29T01:00:00Z"
    assert tick_of("an ordinary task") is None
    assert tick_of("mail@example.com") is None


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400), ("1h30m", 5400)]
)
def test_parse_every(text: str, seconds: int) -> None:
    assert parse_every(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "s", "-5s", "1w", "5 minutes"])
def test_parse_every_refuses(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_every(text)


def test_cadence_refuses_bad_input() -> None:
    with pytest.raises(ConfigurationError, match="exactly one"):
        Cadence()
    with pytest.raises(ConfigurationError, match="cron expression"):
        Cadence(cron="every day")
    with pytest.raises(ConfigurationError, match="time zone"):
        Cadence(cron="* * * * *", tz="Mars/Olympus")
