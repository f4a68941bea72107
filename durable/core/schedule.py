"""Schedules: when a schedule's ticks fall, and what a pass of the scheduler does.

Pure: no clock, no storage. The stores call `plan` inside the transaction that claims
a schedule's due ticks and creates their tasks, with the database's "now" and whether
the schedule's last task is still running; tests call it with any "now" they like.

Ticks are instants in UTC. A cron expression is read in the schedule's time zone
(croniter, with aware datetimes), and names wall-clock times: each wall-clock time
fires once, so the hour that repeats when clocks go back fires once, not twice, and a
time skipped when clocks go forward fires at the first instant after the gap (croniter
moves it there).
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from durable.errors import ConfigurationError

#: Ticks missed for longer than this (every worker was down, or the schedule was
#: paused) are "missed", and follow the catch-up policy; later ones always fire.
GRACE = timedelta(seconds=60)
#: The most ticks one pass creates for one schedule (`catch-up all` after a long
#: outage): the rest follow on the next passes, so one transaction stays short.
MAX_TICKS_PER_PASS = 100
#: Longest schedule name: it goes into task names and idempotency keys.
MAX_NAME_CHARS = 200

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_EVERY = re.compile(r"(\d+)\s*(s|m|h|d)")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class Overlap(enum.StrEnum):
    """What a tick does while the schedule's previous task still runs."""

    SKIP = "skip"  # the tick is dropped
    BUFFER_ONE = "buffer-one"  # the first such tick waits and starts when it ends
    ALLOW = "allow"  # the tick starts a task anyway


class CatchUp(enum.StrEnum):
    """What happens to ticks missed for longer than `GRACE`."""

    NONE = "none"  # dropped
    LATEST = "latest"  # only the newest of them fires
    ALL = "all"  # every one fires


@dataclass(frozen=True, slots=True, kw_only=True)
class Cadence:
    """When ticks fall: a cron expression in a time zone, or a fixed period."""

    cron: str | None = None
    tz: str = "UTC"
    every: int | None = None  # seconds; ticks at anchor + k * every
    anchor: datetime = field(default_factory=lambda: datetime(2000, 1, 1, tzinfo=UTC))

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ConfigurationError("a schedule needs exactly one of --cron and --every")
        if self.every is not None and self.every < 1:
            raise ConfigurationError("--every must be at least 1s")
        zone(self.tz)
        from croniter import croniter  # here: importing durable.core stays light

        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ConfigurationError(f"not a cron expression: {self.cron!r}")

    def next_after(self, after: datetime) -> datetime:
        """The first tick strictly after `after` (both UTC)."""
        if self.every is not None:
            if after < self.anchor:
                return self.anchor
            steps = int((after - self.anchor).total_seconds() // self.every) + 1
            return self.anchor + timedelta(seconds=steps * self.every)
        assert self.cron is not None
        from croniter import croniter

        tz = zone(self.tz)
        it = croniter(self.cron, after.astimezone(tz))
        while True:
            local: datetime = it.get_next(datetime)
            if not _repeated_wall_time(local, tz):
                return local.astimezone(UTC)


def _repeated_wall_time(local: datetime, tz: ZoneInfo) -> bool:
    """Whether `local` is the second occurrence of its wall-clock time (clocks went back)."""
    first = local.replace(tzinfo=None).replace(tzinfo=tz, fold=0)
    return first.utcoffset() != local.utcoffset()


def zone(name: str) -> ZoneInfo:
    """The time zone `name`, or a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown time zone: {name!r}") from exc


def parse_every(text: str) -> int:
    """Seconds in a period like "30s", "5m", "2h", "1d" or "1h30m"."""
    compact = text.strip().lower()
    parts = _EVERY.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact.replace(" ", ""):
        raise ConfigurationError(f"not a period (like 30s, 5m, 2h, 1d): {text!r}")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def check_name(name: str) -> None:
    """Refuse a schedule name that is empty, too long, or more than [A-Za-z0-9_.-]."""
    if len(name) > MAX_NAME_CHARS or not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"a schedule name is 1 to {MAX_NAME_CHARS} letters, digits, '_', '.' or '-', "
            f"starting with a letter or digit: {name[:60]!r}"
        )


def jitter(name: str, tick: datetime, seconds: float) -> timedelta:
    """How long after `tick` it is due: the same on every worker (a hash, not a random
    draw), below `seconds`, and different from tick to tick."""
    if seconds <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{name}\n{tick.isoformat()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=fraction * seconds)


def tick_key(name: str, tick: datetime) -> str:
    """The idempotency key of the task a tick launches: one task per tick, ever."""
    return f"schedule:{name}:{format_tick(tick)}"


def tick_task_name(name: str, tick: datetime) -> str:
    """The name of the task a tick launches, which says which tick it was
    (`durable.info().name`, read back by `tick_of`)."""
    return f"{name}@{format_tick(tick)}"


def format_tick(tick: datetime) -> str:
    """A tick as ISO 8601 UTC, to the microsecond when it has any."""
    text = tick.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return text


def tick_of(task_name: str) -> datetime | None:
    """The tick a scheduled task's name records, or None for a task no tick launched."""
    _, sep, stamp = task_name.rpartition("@")
    if not sep or not stamp.endswith("Z"):
        return None
    try:
        return datetime.fromisoformat(stamp[:-1] + "+00:00")
    except ValueError:
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleState:
    """What a pass needs to know about one schedule, as stored."""

    name: str
    cadence: Cadence
    overlap: Overlap
    catch_up: CatchUp
    jitter: float  # seconds
    cursor: datetime  # the latest tick already handled; later ones are pending
    buffered: datetime | None  # a tick waiting for the running task (buffer-one)


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What one pass does to one schedule."""

    fire: tuple[datetime, ...]  # ticks that start a task now, oldest first
    cursor: datetime  # the new cursor
    buffered: datetime | None  # the tick left waiting (buffer-one)
    skipped: int  # ticks dropped by the overlap or catch-up policy
    next_due: datetime  # when the next pending tick is due (jitter included)


def due_at(state: ScheduleState, tick: datetime) -> datetime:
    """When `tick` of this schedule is due: the tick plus its jitter."""
    return tick + jitter(state.name, tick, state.jitter)


def plan(state: ScheduleState, now: datetime, *, last_running: bool) -> Plan:
    """Decide which ticks fire at `now`, given whether the last task still runs.

    Ticks after the cursor that are due are taken in order, at most
    `MAX_TICKS_PER_PASS`. Missed ones (due more than `GRACE` ago) follow the catch-up
    policy; then each tick meets the overlap policy: a task started earlier in this
    pass counts as running.
    """
    due: list[datetime] = []
    tick = state.cadence.next_after(state.cursor)
    while due_at(state, tick) <= now and len(due) < MAX_TICKS_PER_PASS:
        due.append(tick)
        tick = state.cadence.next_after(tick)
    cursor = due[-1] if due else state.cursor
    missed = [t for t in due if now - due_at(state, t) > GRACE]
    recent = due[len(missed) :]
    kept: list[datetime] = []
    if missed and state.catch_up is CatchUp.ALL:
        kept = missed
    elif missed and state.catch_up is CatchUp.LATEST and not recent:
        kept = missed[-1:]  # the newest missed tick stands for the others
    skipped = len(missed) - len(kept)
    candidates = kept + recent
    buffered = state.buffered
    fire: list[datetime] = []
    running = last_running
    if buffered is not None and not running:
        fire.append(buffered)
        buffered = None
        running = True
    for t in candidates:
        if not running or state.overlap is Overlap.ALLOW:
            fire.append(t)
            running = True
        elif state.overlap is Overlap.BUFFER_ONE and buffered is None:
            buffered = t
        else:
            skipped += 1
    next_due = due_at(state, state.cadence.next_after(cursor))
    return Plan(
        fire=tuple(fire), cursor=cursor, buffered=buffered, skipped=skipped, next_due=next_due
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleSpec:
    """What a client asks for when it adds a schedule."""

    name: str  # unique; see `check_name`
    workflow: str  # the name of a stored workflow: each tick runs its newest binary
    cadence: Cadence
    input: str = "null"  # JSON text handed to every task
    entry: str = ""
    overlap: Overlap = Overlap.SKIP
    catch_up: CatchUp = CatchUp.LATEST
    jitter: float = 0.0  # seconds: each tick is due up to this much after its time


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """A stored schedule and where it is."""

    spec: ScheduleSpec
    paused: bool
    cursor: datetime  # the latest tick handled (fired, skipped or buffered)
    next_due: datetime  # when the next tick is due, jitter included
    buffered: datetime | None  # a tick waiting for the running task (buffer-one)
    last_task_id: int | None  # the task the latest tick (or trigger) launched
    fired: int  # ticks that launched a task
    skipped: int  # ticks dropped by the overlap or catch-up policy
    created_at: datetime

    def state(self) -> ScheduleState:
        """The part of it a scheduler pass works on."""
        return ScheduleState(
            name=self.spec.name,
            cadence=self.spec.cadence,
            overlap=self.spec.overlap,
            catch_up=self.spec.catch_up,
            jitter=self.spec.jitter,
            cursor=self.cursor,
            buffered=self.buffered,
        )


def first_cursor(cadence: Cadence, now: datetime) -> datetime:
    """The cursor of a schedule added at `now`: ticks after it are pending. A period's
    ticks start at its anchor (which fires at once when it has passed); a cron's with
    the first one after `now`."""
    if cadence.every is not None:
        return cadence.anchor - timedelta(seconds=1)  # before the anchor: it is pending
    return now
