"""Schedule rows to `Schedule` values and back, for the SQL stores.

Both backends keep the same columns (migrations `*_schedules.sql`); they differ in how
times are stored (REAL unix seconds in SQLite, timestamptz in Postgres), so the
conversion takes the backend's time reader.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from durable.core.schedule import Cadence, CatchUp, Overlap, Schedule, ScheduleSpec

#: The columns `schedule` reads, in this order.
COLUMNS = (
    "name, workflow, entry, input, cron, tz, every, anchor, overlap, catch_up, jitter, "
    "paused, cursor, next_due_at, buffered_tick, last_task_id, fired, skipped, created_at"
)
_NAMES = [c.strip() for c in COLUMNS.split(",")]


def schedule(row: Any, when: Callable[[Any], datetime]) -> Schedule:
    """A `Schedule` from a row in `COLUMNS` order; `when` reads a stored time."""
    r: Mapping[str, Any] = dict(zip(_NAMES, row, strict=True))
    spec = ScheduleSpec(
        name=r["name"],
        workflow=r["workflow"],
        entry=r["entry"],
        input=r["input"],
        cadence=Cadence(
            cron=r["cron"],
            tz=r["tz"],
            every=None if r["every"] is None else int(r["every"]),
            anchor=when(r["anchor"]),
        ),
        overlap=Overlap(r["overlap"]),
        catch_up=CatchUp(r["catch_up"]),
        jitter=float(r["jitter"]),
    )
    return Schedule(
        spec=spec,
        paused=bool(r["paused"]),
        cursor=when(r["cursor"]),
        next_due=when(r["next_due_at"]),
        buffered=None if r["buffered_tick"] is None else when(r["buffered_tick"]),
        last_task_id=r["last_task_id"],
        fired=int(r["fired"]),
        skipped=int(r["skipped"]),
        created_at=when(r["created_at"]),
    )
