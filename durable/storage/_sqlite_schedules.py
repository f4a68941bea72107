"""The schedule role of `SQLiteStore`: the statements, run on the store's connection.

The store holds its lock and opens the transaction; these functions do the work. A
scheduler pass runs in one `BEGIN IMMEDIATE` transaction, so passes from every process
on the file are serial: the due ticks, their tasks and the moved cursor commit
together or not at all.
"""

from __future__ import annotations

import secrets
import sqlite3
import uuid
from datetime import datetime
from typing import Any

import aiosqlite

from durable.core.model import TaskState
from durable.core.schedule import (
    Schedule,
    ScheduleSpec,
    due_at,
    first_cursor,
    format_tick,
    plan,
    tick_key,
    tick_task_name,
)
from durable.errors import ConflictError, NotFoundError
from durable.storage import _schedule_rows as rows
from durable.storage import _sqlite_schema as schema
from durable.storage._sqlite_codec import maybe_dt, to_dt, to_ts

_Q = schema.queries()


async def _fetch(conn: aiosqlite.Connection, query: str, *params: Any) -> list[Any]:
    return list(await conn.execute_fetchall(_Q[query], params))


async def get(conn: aiosqlite.Connection, name: str) -> Schedule:
    """The stored schedule `name`, or `NotFoundError`."""
    found = await _fetch(conn, "get_schedule", name)
    if not found:
        raise NotFoundError(f"no schedule named {name!r}")
    return rows.schedule(found[0], to_dt)


async def list_all(conn: aiosqlite.Connection) -> list[Schedule]:
    """Every schedule, by name."""
    return [rows.schedule(r, to_dt) for r in await _fetch(conn, "list_schedules")]


async def add(conn: aiosqlite.Connection, spec: ScheduleSpec, now: float) -> None:
    """Insert the schedule (in the caller's transaction)."""
    if not await _fetch(conn, "find_workflow", spec.workflow):
        raise NotFoundError(f"no workflow named {spec.workflow!r} is stored")
    c = spec.cadence
    state_now = to_dt(now)
    cursor = first_cursor(c, state_now)
    probe = Schedule(
        spec=spec, paused=False, cursor=cursor, next_due=cursor, buffered=None,
        last_task_id=None, fired=0, skipped=0, created_at=state_now,
    )  # fmt: skip
    next_due = due_at(probe.state(), c.next_after(cursor))
    cursor_done = await conn.execute(
        _Q["insert_schedule"],
        (
            spec.name, spec.workflow, spec.entry, spec.input, c.cron, c.tz, c.every,
            to_ts(c.anchor), str(spec.overlap), str(spec.catch_up), spec.jitter,
            to_ts(cursor), to_ts(next_due), now, now,
        ),
    )  # fmt: skip
    if cursor_done.rowcount != 1:
        raise ConflictError(f"a schedule named {spec.name!r} already exists")


async def pause(conn: aiosqlite.Connection, name: str, paused: bool, now: float) -> None:
    """Pause or resume it."""
    done = await conn.execute(_Q["pause_schedule"], (int(paused), now, name))
    if done.rowcount != 1:
        raise NotFoundError(f"no schedule named {name!r}")


async def delete(conn: aiosqlite.Connection, name: str) -> None:
    """Forget it."""
    done = await conn.execute(_Q["delete_schedule"], (name,))
    if done.rowcount != 1:
        raise NotFoundError(f"no schedule named {name!r}")


async def _launch(
    conn: aiosqlite.Connection, spec: ScheduleSpec, tick: datetime, key: str, now: float
) -> int | None:
    """Create the task of one tick (or find the one its key already made); None when
    the schedule's workflow has no stored binary."""
    seed = secrets.randbelow(2**63 - 1) + 1
    name = tick_task_name(spec.name, tick)
    made = await _fetch(conn, "schedule_task", name, spec.entry, seed, now, now, key, spec.workflow)
    if made:
        task_id = int(made[0][0])
        await conn.execute(_Q["insert_input"], (task_id, spec.input))
        return task_id
    existing = await _fetch(conn, "task_id_by_key", key)
    return int(existing[0][0]) if existing else None


async def trigger(conn: aiosqlite.Connection, name: str, now: float) -> int:
    """Launch a task of the schedule now; return its id."""
    schedule = await get(conn, name)
    tick = to_dt(now)
    key = f"schedule:{name}:trigger:{format_tick(tick)}:{uuid.uuid4().hex[:8]}"
    task_id = await _launch(conn, schedule.spec, tick, key, now)
    if task_id is None:
        raise NotFoundError(f"no workflow named {schedule.spec.workflow!r} is stored")
    await conn.execute(_Q["trigger_schedule"], (task_id, now, name))
    return task_id


def any_due(db: sqlite3.Connection, now: float) -> bool:
    """Whether a pass would find anything to do (a read, no write lock); on the
    connection's thread (`_sqlite_batch`)."""
    return bool(db.execute(_Q["any_schedule_due"], (now,)).fetchone()[0])


async def fire(conn: aiosqlite.Connection, now: float, limit: int) -> int:
    """One scheduler pass, in the caller's transaction; returns the tasks created."""
    created = 0
    moment = to_dt(now)
    for row in await _fetch(conn, "due_schedules", now, limit):
        schedule = rows.schedule(row, to_dt)
        live = False
        if schedule.last_task_id is not None:
            state = await _fetch(conn, "task_state", schedule.last_task_id)
            live = bool(state) and not TaskState(state[0][0]).is_terminal
        if schedule.next_due > moment and (live or schedule.buffered is None):
            continue  # only here for its buffered tick, and its task still runs
        p = plan(schedule.state(), moment, last_running=live)
        last = schedule.last_task_id
        fired = 0
        skipped = p.skipped
        for tick in p.fire:
            task_id = await _launch(
                conn, schedule.spec, tick, tick_key(schedule.spec.name, tick), now
            )
            if task_id is None:
                skipped += 1  # the workflow's binary is gone: the tick cannot run
                continue
            last, fired = task_id, fired + 1
        created += fired
        await conn.execute(
            _Q["advance_schedule"],
            (
                to_ts(p.cursor), to_ts(p.next_due),
                None if p.buffered is None else to_ts(p.buffered), last, fired, skipped, now,
                schedule.spec.name,
            ),
        )  # fmt: skip
    return created


def next_due(db: sqlite3.Connection) -> datetime | None:
    """When the next tick of any unpaused schedule is due; on the connection's thread."""
    return maybe_dt(db.execute(_Q["next_schedule_due"]).fetchone()[0])
