"""Queues, debounce and task pause in `SQLiteStore`: statements on the store's connection.

The store holds its lock and opens the transactions. A SQLite file has one writer at a
time (`BEGIN IMMEDIATE`), so the queue claim reads the queue's counts and makes its
tasks active with nothing in between: no two workers can take the same last slot.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import aiosqlite

from durable.core import queue as q
from durable.core.model import NewTask
from durable.errors import NotFoundError, TaskNotFoundError
from durable.storage import _sqlite_schema as schema

_Q = schema.queries()


async def _fetch(conn: aiosqlite.Connection, query: str, *params: Any) -> list[Any]:
    return list(await conn.execute_fetchall(_Q[query], params))


async def debounced(conn: aiosqlite.Connection, spec: NewTask, now: float) -> int | None:
    """The waiting task `spec`'s debounce key already names in its queue, given `spec`'s
    input and a fresh wait; None when there is none (in the caller's transaction)."""
    if spec.debounce_key is None:
        return None
    found = await _fetch(conn, "debounce_find", spec.debounce_key, spec.queue)
    if not found:
        return None
    task_id = int(found[0][0])
    await conn.execute(_Q["replace_input"], (spec.input, task_id))
    await conn.execute(_Q["debounce_task"], (spec.debounce_key, now + spec.debounce, now, task_id))
    return task_id


async def place(conn: aiosqlite.Connection, task_id: int, spec: NewTask, now: float) -> None:
    """Put a new task in its queue, with its priority and debounce (caller's transaction)."""
    if spec.queue is not None:
        await conn.execute(_Q["ensure_queue"], (spec.queue, now))
        await conn.execute(_Q["place_task"], (spec.queue, spec.queue_key, spec.priority, task_id))
    elif spec.priority is not None:
        await conn.execute(_Q["place_task"], (None, None, spec.priority, task_id))
    if spec.debounce_key is not None:
        await conn.execute(
            _Q["debounce_task"], (spec.debounce_key, now + spec.debounce, now, task_id)
        )


def _settings(row: Any) -> q.QueueSettings:
    name, concurrency, key_concurrency, rate_limit, rate_period, priority, paused = row
    return q.QueueSettings(
        name=name, concurrency=concurrency, key_concurrency=key_concurrency,
        rate_limit=rate_limit, rate_period=rate_period, priority=int(priority),
        paused=bool(paused),
    )  # fmt: skip


async def get(conn: aiosqlite.Connection, name: str, now: float) -> q.Queue:
    """The queue and its counts, or `NotFoundError`."""
    rows = await _fetch(conn, "get_queue", name)
    if not rows:
        raise NotFoundError(f"no queue named {name!r}")
    ready, active, suspended = (await _fetch(conn, "queue_counts", name))[0]
    return q.Queue(settings=_settings(rows[0]), ready=ready, active=active, suspended=suspended)


async def list_all(conn: aiosqlite.Connection, now: float) -> list[q.Queue]:
    """Every queue, by name, with its counts."""
    return [await get(conn, row[0], now) for row in await _fetch(conn, "list_queues")]


async def put(conn: aiosqlite.Connection, settings: q.QueueSettings, now: float) -> None:
    """Create or change a queue (caller's transaction)."""
    await conn.execute(_Q["ensure_queue"], (settings.name, now))
    s = settings
    await conn.execute(
        _Q["set_queue"],
        (
            s.concurrency, s.key_concurrency, s.rate_limit, s.rate_period, s.priority,
            int(s.paused), now, s.name,
        ),
    )  # fmt: skip


def any_queue(db: sqlite3.Connection) -> bool:
    """Whether any queue exists (else the queue claim has nothing to do); on the
    connection's thread (`_sqlite_batch`)."""
    return bool(db.execute(_Q["any_queue"]).fetchone()[0])


async def claim(
    conn: aiosqlite.Connection, worker_id: str, limit: int, lease_expires: float, now: float
) -> list[Any]:
    """Claim up to `limit` queued tasks within their queues' limits (caller's
    transaction); returns their rows as the general claim does."""
    chosen: list[int] = []
    for row in await _fetch(conn, "claimable_queues", now):
        wanted = limit - len(chosen)
        if wanted <= 0:
            break
        settings = q.QueueSettings(
            name=row[0], concurrency=row[1], key_concurrency=row[2], rate_limit=row[3],
            rate_period=row[4],
        )  # fmt: skip
        active = (await _fetch(conn, "queue_active", settings.name))[0][0]
        started = 0
        if settings.rate_limit is not None and settings.rate_period is not None:
            since = now - settings.rate_period
            started = (await _fetch(conn, "queue_started", settings.name, since))[0][0]
        room = q.room(settings, wanted, active, started)
        if room == 0:
            continue
        key_active: dict[str | None, int] = {}
        window = room
        if settings.key_concurrency is not None:
            key_active = dict(await _fetch(conn, "queue_key_active", settings.name))
            window = room * 4 + 100  # keys at their limit are passed over
        candidates = await _fetch(conn, "queue_candidates", settings.name, now, window)
        chosen += q.pick(
            ((c[0], c[1]) for c in candidates), room, settings.key_concurrency, key_active
        )
    if not chosen:
        return []
    sql = _Q["claim_queued"].replace("{rows}", ", ".join("?" * len(chosen)))
    return list(await conn.execute_fetchall(sql, (worker_id, lease_expires, now, now, *chosen)))


async def pause_task(conn: aiosqlite.Connection, task_id: int, paused: bool, now: float) -> None:
    """Set the task's pause flag (its worker parks it at its next durable call)."""
    done = await conn.execute(_Q["pause_task"], (int(paused), now, task_id))
    if done.rowcount != 1:
        raise TaskNotFoundError(task_id)


def rate_window_opens(db: sqlite3.Connection, now: float) -> float | None:
    """When a rate-limited queue at its limit, with a task ready, may start one again;
    on the connection's thread (`_sqlite_batch`)."""
    opens = db.execute(_Q["rate_window_opens"], (now,)).fetchone()[0]
    return None if opens is None else float(opens) + q.RATE_WAKE_MARGIN
