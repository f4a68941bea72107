"""The schedule role of `PostgresStore`: the statements, on one of its connections.

A scheduler pass is one transaction: it locks the due schedules' rows (`FOR UPDATE
SKIP LOCKED`, so concurrent passes share the work instead of queueing), creates the
tasks of their due ticks and moves each cursor past them. Times come from the
database clock, as everywhere in this backend.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from durable.core.model import Task, TaskState
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
from durable.storage import _pg_codec, _pg_schema
from durable.storage import _schedule_rows as rows
from durable.storage._pg_errors import translate
from durable.storage._pg_pool import ConnectionPool

_Q = _pg_schema.queries()
_WIDTH = len(rows.COLUMNS.split(","))


def _same(value: Any) -> datetime:
    return value  # type: ignore[no-any-return]  # asyncpg hands back aware datetimes


async def get(conn: asyncpg.Connection, name: str) -> Schedule:
    """The stored schedule `name`, or `NotFoundError`."""
    row = await conn.fetchrow(_Q["get_schedule"], name)
    if row is None:
        raise NotFoundError(f"no schedule named {name!r}")
    return rows.schedule(tuple(row), _same)


async def list_all(conn: asyncpg.Connection) -> list[Schedule]:
    """Every schedule, by name."""
    return [rows.schedule(tuple(r), _same) for r in await conn.fetch(_Q["list_schedules"])]


async def add(conn: asyncpg.Connection, spec: ScheduleSpec) -> None:
    """Insert the schedule (in the caller's transaction)."""
    if await conn.fetchval(_Q["find_workflow"], spec.workflow) is None:
        raise NotFoundError(f"no workflow named {spec.workflow!r} is stored")
    now: datetime = await conn.fetchval(_Q["db_now"])
    c = spec.cadence
    cursor = first_cursor(c, now)
    probe = Schedule(
        spec=spec, paused=False, cursor=cursor, next_due=cursor, buffered=None,
        last_task_id=None, fired=0, skipped=0, created_at=now,
    )  # fmt: skip
    next_due = due_at(probe.state(), c.next_after(cursor))
    made = await conn.fetchval(
        _Q["insert_schedule"],
        spec.name, spec.workflow, spec.entry, spec.input, c.cron, c.tz, c.every, c.anchor,
        str(spec.overlap), str(spec.catch_up), float(spec.jitter), cursor, next_due,
    )  # fmt: skip
    if made is None:
        raise ConflictError(f"a schedule named {spec.name!r} already exists")


async def pause(conn: asyncpg.Connection, name: str, paused: bool) -> None:
    """Pause or resume it."""
    if await conn.fetchval(_Q["pause_schedule"], name, paused) is None:
        raise NotFoundError(f"no schedule named {name!r}")


async def delete(conn: asyncpg.Connection, name: str) -> None:
    """Forget it."""
    if await conn.fetchval(_Q["delete_schedule"], name) is None:
        raise NotFoundError(f"no schedule named {name!r}")


async def _launch(
    conn: asyncpg.Connection, spec: ScheduleSpec, tick: datetime, key: str
) -> int | None:
    """Create the task of one tick (or find the one its key already made); None when
    the schedule's workflow has no stored binary."""
    seed = secrets.randbelow(2**63 - 1) + 1
    name = tick_task_name(spec.name, tick)
    task_id = await conn.fetchval(
        _Q["schedule_task"], name, spec.entry, spec.input, seed, key, spec.workflow
    )
    if task_id is None:
        task_id = await conn.fetchval(_Q["task_id_by_key"], key)
    return None if task_id is None else int(task_id)


async def trigger(conn: asyncpg.Connection, name: str) -> int:
    """Launch a task of the schedule now, in the caller's transaction; return its id."""
    schedule = await get(conn, name)
    tick: datetime = await conn.fetchval(_Q["db_now"])
    key = f"schedule:{name}:trigger:{format_tick(tick)}:{uuid.uuid4().hex[:8]}"
    task_id = await _launch(conn, schedule.spec, tick, key)
    if task_id is None:
        raise NotFoundError(f"no workflow named {schedule.spec.workflow!r} is stored")
    await conn.execute(_Q["trigger_schedule"], name, task_id)
    return task_id


async def fire(conn: asyncpg.Connection, limit: int) -> int:
    """One scheduler pass, in the caller's transaction; returns the tasks created."""
    created = 0
    for row in await conn.fetch(_Q["due_schedules"], limit):
        schedule = rows.schedule(tuple(row)[:_WIDTH], _same)
        now: datetime = row["now"]
        last_state = row["last_state"]
        live = last_state is not None and not TaskState(last_state).is_terminal
        if schedule.next_due > now and (live or schedule.buffered is None):
            continue  # only here for its buffered tick, and its task still runs
        p = plan(schedule.state(), now, last_running=live)
        last = schedule.last_task_id
        fired = 0
        skipped = p.skipped
        for tick in p.fire:
            task_id = await _launch(conn, schedule.spec, tick, tick_key(schedule.spec.name, tick))
            if task_id is None:
                skipped += 1  # the workflow's binary is gone: the tick cannot run
                continue
            last, fired = task_id, fired + 1
        created += fired
        await conn.execute(
            _Q["advance_schedule"],
            schedule.spec.name, p.cursor, p.next_due, p.buffered, last, fired, skipped,
        )  # fmt: skip
    return created


async def look(conn: asyncpg.Connection) -> tuple[bool, datetime | None]:
    """Whether a pass would find anything to do (no locks taken), and when the next
    tick of any unpaused schedule is due: one round trip."""
    row = await conn.fetchrow(_Q["any_schedule_due"])
    assert row is not None  # an aggregate: always one row
    return bool(row["due"]), row["next"]


async def next_due(conn: asyncpg.Connection) -> datetime | None:
    """When the next tick of any unpaused schedule is due."""
    due: datetime | None = await conn.fetchval(_Q["next_schedule_due"])
    return due


class PgScheduleRole:
    """The schedule role of `PostgresStore` (`durable.storage.base.ScheduleStore`)."""

    _pool: ConnectionPool

    async def add_schedule(self, spec: ScheduleSpec) -> Schedule:
        """Store a new schedule; see `ScheduleStore.add_schedule`."""
        with translate("add a schedule"):
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    await add(conn, spec)
                return await get(conn, spec.name)

    async def get_schedule(self, name: str) -> Schedule:
        """The schedule, or `NotFoundError`."""
        with translate("read a schedule"):
            async with self._pool.acquire() as conn:
                return await get(conn, name)

    async def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        with translate("list schedules"):
            async with self._pool.acquire() as conn:
                return await list_all(conn)

    async def pause_schedule(self, name: str, *, paused: bool) -> Schedule:
        """Pause or resume the schedule."""
        with translate("pause a schedule"):
            async with self._pool.acquire() as conn:
                await pause(conn, name, paused)
                return await get(conn, name)

    async def delete_schedule(self, name: str) -> None:
        """Forget the schedule (its tasks stay)."""
        with translate("delete a schedule"):
            async with self._pool.acquire() as conn:
                await delete(conn, name)

    async def trigger_schedule(self, name: str) -> Task:
        """Launch one task of the schedule now."""
        with translate("trigger a schedule"):
            async with self._pool.acquire() as conn:
                async with conn.transaction():
                    task_id = await trigger(conn, name)
                row = await conn.fetchrow(_Q["get_task"], task_id)
        return _pg_codec.task(row)

    async def fire_schedules(self, *, limit: int = 20) -> datetime | None:
        """One scheduler pass; see `ScheduleStore.fire_schedules`. Looks first without
        locks: most passes find nothing due."""
        with translate("fire schedules"):
            async with self._pool.acquire() as conn:
                due, when = await look(conn)
                if not due:
                    return when
                async with conn.transaction():
                    await fire(conn, limit)
                return await next_due(conn)
