"""The dashboard's read-only queries, which the `Store` protocols do not have: a page of
tasks by keyset, counts by state, throughput over time, a task's notifications, the
leases held by workers.

A `Reader` has a connection of its own (SQLite: a `query_only` connection to the file;
Postgres: a small pool), so that a busy dashboard never queues behind a worker's writes
on the store's connection. Every query is bounded by an index (see the migrations'
`durable_task_ended`/`tasks_ended`): pages walk ids downward from a key instead of
counting or skipping rows, so a page costs the same with 100,000 tasks as with ten.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from durable.core.model import TaskState
from durable.errors import ConfigurationError
from durable.storage._url import parse_url

#: The states a task ends in, whose ends the overview charts.
ENDED = ("complete", "failed", "cancelled")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFilter:
    """Which tasks a page shows; every field optional, combined with AND."""

    states: tuple[TaskState, ...] = ()
    name_glob: str | None = None  # a shell pattern against the whole name
    parent_id: int | None = None
    since: datetime | None = None  # created at or after
    until: datetime | None = None  # created before
    before_id: int | None = None  # the keyset: ids below this one (the next page)
    limit: int = 50


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRow:
    """A task as a list shows it (no input, result or error: those can be large)."""

    id: int
    name: str
    state: str
    created_at: datetime
    updated_at: datetime
    attempts: int
    parent_id: int | None
    owner: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class NotificationRow:
    """A notification sent to a task, consumed or not."""

    seq: int
    event: str
    data: str
    created_at: datetime
    consumed_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRow:
    """An active task and the lease its worker holds on it."""

    task_id: int
    name: str
    owner: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Flow:
    """A task's flow control, which `Task` does not carry: its queue and pause flag."""

    queue: str | None
    paused: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """How many tasks ended in one state during one interval."""

    start: datetime
    state: str
    count: int


class Reader(Protocol):
    """The dashboard's queries on one database."""

    async def close(self) -> None:
        """Release the connection(s). Idempotent."""
        ...

    async def count_by_state(self) -> dict[str, int]:
        """How many tasks are in each state (states with none are left out)."""
        ...

    async def tasks(self, where: TaskFilter) -> list[TaskRow]:
        """Up to `where.limit` tasks, newest first."""
        ...

    async def notifications(self, task_id: int, limit: int = 200) -> list[NotificationRow]:
        """The task's notifications, oldest first."""
        ...

    async def leases(self, limit: int = 500) -> list[LeaseRow]:
        """Active tasks with their owner, the lease expiring soonest first."""
        ...

    async def flow(self, task_id: int) -> Flow | None:
        """The task's queue and whether it is paused; None if there is no such task."""
        ...

    async def ended(self, since: datetime, bucket_seconds: int) -> list[Bucket]:
        """Tasks that ended since `since`, counted per state and interval."""
        ...

    async def heartbeats(self) -> dict[str, datetime | None]:
        """When each registered worker last said it is alive, by worker id."""
        ...


def _utc(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _ts(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class SQLiteReader:
    """A `Reader` on a SQLite file, through a `query_only` connection."""

    def __init__(self, conn: Any) -> None:
        """Wrap an open aiosqlite connection; use `open_reader` instead."""
        self._conn = conn

    @classmethod
    async def open(cls, path: str) -> SQLiteReader:
        """Open `path`, which must exist (the dashboard creates no database)."""
        import aiosqlite

        conn = await aiosqlite.connect(f"file:{path}?mode=ro", uri=True)
        await conn.execute("PRAGMA busy_timeout = 5000")
        await conn.execute("PRAGMA query_only = 1")
        return cls(conn)

    async def close(self) -> None:
        """Close the connection."""
        await self._conn.close()

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, tuple(params)))

    async def count_by_state(self) -> dict[str, int]:
        """One grouped count over the `(state, id)` index."""
        rows = await self._rows(
            "SELECT state, count(*) FROM durable_task INDEXED BY durable_task_state GROUP BY state"
        )
        return {state: n for state, n in rows}

    async def tasks(self, where: TaskFilter) -> list[TaskRow]:
        """Newest first, from the keyset down."""
        sql = [
            "SELECT id, name, state, created_at, updated_at, attempts, parent_id, owner",
            "FROM durable_task WHERE 1",
        ]
        params: list[Any] = []
        if where.states:
            sql.append(f"AND state IN ({', '.join('?' * len(where.states))})")
            params += [s.value for s in where.states]
        if where.name_glob is not None:
            sql.append("AND name GLOB ?")
            params.append(where.name_glob)
        if where.parent_id is not None:
            sql.append("AND parent_id = ?")
            params.append(where.parent_id)
        if where.since is not None:
            sql.append("AND created_at >= ?")
            params.append(_ts(where.since))
        if where.until is not None:
            sql.append("AND created_at < ?")
            params.append(_ts(where.until))
        if where.before_id is not None:
            sql.append("AND id < ?")
            params.append(where.before_id)
        sql.append("ORDER BY id DESC LIMIT ?")
        params.append(where.limit)
        rows = await self._rows(" ".join(sql), params)
        return [
            TaskRow(
                id=r[0],
                name=r[1],
                state=r[2],
                created_at=_utc(r[3]) or datetime.now(UTC),
                updated_at=_utc(r[4]) or datetime.now(UTC),
                attempts=r[5],
                parent_id=r[6],
                owner=r[7],
            )
            for r in rows
        ]

    async def notifications(self, task_id: int, limit: int = 200) -> list[NotificationRow]:
        """By the primary key's order of arrival, for one task."""
        rows = await self._rows(
            "SELECT seq, event, data, created_at, consumed_at FROM durable_notification "
            "WHERE task_id = ? ORDER BY seq LIMIT ?",
            (task_id, limit),
        )
        return [
            NotificationRow(
                seq=r[0],
                event=r[1],
                data=r[2],
                created_at=_utc(r[3]) or datetime.now(UTC),
                consumed_at=_utc(r[4]),
            )
            for r in rows
        ]

    async def leases(self, limit: int = 500) -> list[LeaseRow]:
        """Over the lease index."""
        rows = await self._rows(
            "SELECT id, name, owner, lease_expires_at FROM durable_task "
            "INDEXED BY durable_task_lease WHERE state = 'active' "
            "ORDER BY lease_expires_at LIMIT ?",
            (limit,),
        )
        return [
            LeaseRow(task_id=r[0], name=r[1], owner=r[2] or "", expires_at=_utc(r[3])) for r in rows
        ]

    async def flow(self, task_id: int) -> Flow | None:
        """By the primary key."""
        rows = await self._rows("SELECT queue, paused FROM durable_task WHERE id = ?", (task_id,))
        return Flow(queue=rows[0][0], paused=bool(rows[0][1])) if rows else None

    async def heartbeats(self) -> dict[str, datetime | None]:
        """From the workers' table (one row per live worker)."""
        rows = await self._rows("SELECT id, heartbeat_at FROM durable_worker")
        return {worker: _utc(at) for worker, at in rows}

    async def ended(self, since: datetime, bucket_seconds: int) -> list[Bucket]:
        """Over the index of ended tasks by `updated_at`."""
        rows = await self._rows(
            "SELECT CAST(updated_at / ?1 AS INTEGER) AS b, state, count(*) FROM durable_task "
            "INDEXED BY durable_task_ended "
            "WHERE state IN ('complete', 'failed', 'cancelled') AND updated_at >= ?2 "
            "GROUP BY b, state ORDER BY b",
            (bucket_seconds, _ts(since)),
        )
        return [
            Bucket(start=datetime.fromtimestamp(b * bucket_seconds, UTC), state=s, count=n)
            for b, s, n in rows
        ]


class PostgresReader:
    """A `Reader` on Postgres, through a pool of its own."""

    def __init__(self, pool: Any) -> None:
        """Wrap an open asyncpg pool; use `open_reader` instead."""
        self._pool = pool

    @classmethod
    async def open(cls, dsn: str) -> PostgresReader:
        """Connect to `dsn`."""
        import asyncpg

        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=4, server_settings={"application_name": "durable-ui"}
        )
        return cls(pool)

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def count_by_state(self) -> dict[str, int]:
        """One grouped count over the `(state, id)` index."""
        rows = await self._pool.fetch("SELECT state, count(*) FROM durable.tasks GROUP BY state")
        return {r[0]: r[1] for r in rows}

    async def tasks(self, where: TaskFilter) -> list[TaskRow]:
        """Newest first, from the keyset down."""
        from durable.storage._pg_codec import glob_to_regex

        sql = [
            "SELECT id, name, state, created_at, updated_at, attempts, parent_id, owner",
            "FROM durable.tasks WHERE true",
        ]
        params: list[Any] = []

        def arg(value: Any, cast: str) -> str:
            params.append(value)
            return f"${len(params)}::{cast}"

        if where.states:
            sql.append(f"AND state = ANY ({arg([s.value for s in where.states], 'text[]')})")
        if where.name_glob is not None:
            sql.append(f"AND name ~ {arg(glob_to_regex(where.name_glob), 'text')}")
        if where.parent_id is not None:
            sql.append(f"AND parent_id = {arg(where.parent_id, 'bigint')}")
        if where.since is not None:
            sql.append(f"AND created_at >= {arg(where.since, 'timestamptz')}")
        if where.until is not None:
            sql.append(f"AND created_at < {arg(where.until, 'timestamptz')}")
        if where.before_id is not None:
            sql.append(f"AND id < {arg(where.before_id, 'bigint')}")
        sql.append(f"ORDER BY id DESC LIMIT {arg(where.limit, 'int')}")
        rows = await self._pool.fetch(" ".join(sql), *params)
        tasks = [TaskRow(**dict(r)) for r in rows]
        if where.name_glob is not None:  # agree with fnmatch exactly, as the store does
            tasks = [t for t in tasks if fnmatch.fnmatchcase(t.name, where.name_glob)]
        return tasks

    async def notifications(self, task_id: int, limit: int = 200) -> list[NotificationRow]:
        """By order of arrival, for one task."""
        rows = await self._pool.fetch(
            "SELECT seq, event, data, created_at, consumed_at FROM durable.notifications "
            "WHERE task_id = $1 ORDER BY seq LIMIT $2",
            task_id,
            limit,
        )
        return [NotificationRow(**dict(r)) for r in rows]

    async def leases(self, limit: int = 500) -> list[LeaseRow]:
        """Over the lease index."""
        rows = await self._pool.fetch(
            "SELECT id, name, owner, lease_expires_at FROM durable.tasks "
            "WHERE state = 'active' ORDER BY lease_expires_at LIMIT $1",
            limit,
        )
        return [LeaseRow(task_id=r[0], name=r[1], owner=r[2] or "", expires_at=r[3]) for r in rows]

    async def flow(self, task_id: int) -> Flow | None:
        """By the primary key."""
        row = await self._pool.fetchrow(
            "SELECT queue, paused FROM durable.tasks WHERE id = $1", task_id
        )
        return None if row is None else Flow(queue=row[0], paused=bool(row[1]))

    async def heartbeats(self) -> dict[str, datetime | None]:
        """From the workers' table (one row per live worker)."""
        rows = await self._pool.fetch("SELECT id, heartbeat_at FROM durable.workers")
        return {r[0]: r[1] for r in rows}

    async def ended(self, since: datetime, bucket_seconds: int) -> list[Bucket]:
        """Over the index of ended tasks by `updated_at`."""
        rows = await self._pool.fetch(
            "SELECT floor(extract(epoch FROM updated_at) / $1)::bigint AS b, state, count(*) "
            "FROM durable.tasks WHERE state IN ('complete', 'failed', 'cancelled') "
            "AND updated_at >= $2 GROUP BY b, state ORDER BY b",
            bucket_seconds,
            since,
        )
        return [
            Bucket(start=datetime.fromtimestamp(r[0] * bucket_seconds, UTC), state=r[1], count=r[2])
            for r in rows
        ]


async def open_reader(url: str | None) -> Reader:
    """A `Reader` on the database at `url` (the `--db` rules).

    Raises:
        ConfigurationError: a memory URL (a dashboard cannot see another process's
            memory), or a SQLite file that does not exist.
    """
    parsed = parse_url(url)
    if parsed.scheme == "memory":
        raise ConfigurationError("the dashboard needs a SQLite or Postgres database, not memory")
    if parsed.scheme == "sqlite":
        assert parsed.path is not None
        if not parsed.path.exists():
            raise ConfigurationError(f"no database at {parsed.path}")
        return await SQLiteReader.open(str(parsed.path))
    assert parsed.dsn is not None
    return await PostgresReader.open(parsed.dsn)
