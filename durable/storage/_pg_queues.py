"""Queues, debounce and task pause in `PostgresStore`.

The queue claim is one transaction: it locks the rows of the queues it serves (`FOR
UPDATE SKIP LOCKED`: a queue another worker is claiming from is passed over, not
waited for), counts the queue's active tasks and recent starts, and makes the chosen
tasks active. Only a claim that holds a queue's row can make its tasks active, and it
reads the counts after taking the lock (READ COMMITTED: each statement sees what was
committed before it), so no two workers can both take the queue's last slot.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from durable.core import queue as q
from durable.core.model import NewTask, Task
from durable.errors import InvalidStateError, NotFoundError, TaskNotFoundError
from durable.storage import _pg_codec, _pg_schema
from durable.storage._pg_errors import translate
from durable.storage._pg_pool import ConnectionPool

_Q = _pg_schema.queries()


def placed(spec: NewTask) -> bool:
    """Whether `create_task` must take the flow-control path for `spec`."""
    return spec.queue is not None or spec.priority is not None or spec.debounce_key is not None


async def create(conn: asyncpg.Connection, spec: NewTask, seed: int) -> asyncpg.Record | None:
    """Create a queued, prioritised or debounced task, in the caller's transaction; a
    debounced launch whose key has a waiting task renews that task instead. No row when
    the idempotency key is taken."""
    if spec.debounce_key is not None:
        await conn.execute(_Q["debounce_lock"], spec.debounce_key, spec.queue)
        row = await conn.fetchrow(
            _Q["debounce_renew"], spec.debounce_key, spec.input, float(spec.debounce), spec.queue
        )
        if row is not None:
            return row
    if spec.queue is not None:
        await conn.execute(_Q["ensure_queue"], spec.queue)
    record: asyncpg.Record | None = await conn.fetchrow(
        _Q["create_placed_task"],
        spec.name, spec.workflow_hash, spec.entry, spec.input, seed, spec.parent_id,
        spec.idempotency_key, spec.timeout, spec.queue, spec.queue_key, spec.priority,
        spec.debounce_key, float(spec.debounce),
    )  # fmt: skip
    return record


async def claim(
    conn: asyncpg.Connection, worker_id: str, limit: int, lease_seconds: float
) -> list[asyncpg.Record]:
    """Claim up to `limit` queued tasks within their queues' limits, in the caller's
    transaction."""
    chosen: list[int] = []
    for row in await conn.fetch(_Q["claimable_queues"]):
        wanted = limit - len(chosen)
        if wanted <= 0:
            break
        settings = q.QueueSettings(
            name=row["name"], concurrency=row["concurrency"],
            key_concurrency=row["key_concurrency"], rate_limit=row["rate_limit"],
            rate_period=row["rate_period"],
        )  # fmt: skip
        active = await conn.fetchval(_Q["queue_active"], settings.name)
        started = 0
        if settings.rate_period is not None:
            started = await conn.fetchval(_Q["queue_started"], settings.name, settings.rate_period)
        room = q.room(settings, wanted, active, started)
        if room == 0:
            continue
        key_active: dict[str | None, int] = {}
        window = room
        if settings.key_concurrency is not None:
            counts = await conn.fetch(_Q["queue_key_active"], settings.name)
            key_active = {r[0]: r[1] for r in counts}
            window = room * 4 + 100  # keys at their limit are passed over
        candidates = await conn.fetch(_Q["queue_candidates"], settings.name, window)
        chosen += q.pick(
            ((c["id"], c["queue_key"]) for c in candidates),
            room,
            settings.key_concurrency,
            key_active,
        )
    if not chosen:
        return []
    rows: list[asyncpg.Record] = await conn.fetch(
        _Q["claim_queued"], worker_id, float(lease_seconds), chosen
    )
    return rows


def _settings(row: Any) -> q.QueueSettings:
    return q.QueueSettings(
        name=row["name"], concurrency=row["concurrency"], key_concurrency=row["key_concurrency"],
        rate_limit=row["rate_limit"], rate_period=row["rate_period"], priority=row["priority"],
        paused=row["paused"],
    )  # fmt: skip


class PgQueueRole:
    """The queue role of `PostgresStore` (`durable.storage.base.QueueStore`)."""

    _pool: ConnectionPool

    async def set_queue(self, settings: q.QueueSettings) -> q.Queue:
        """Create the queue or replace its settings."""
        s = settings
        with translate("set a queue"):
            await self._pool.execute(
                _Q["set_queue"], s.name, s.concurrency, s.key_concurrency, s.rate_limit,
                s.rate_period, s.priority, s.paused,
            )  # fmt: skip
        return await self.get_queue(s.name)

    async def get_queue(self, name: str) -> q.Queue:
        """The queue and its counts, or `NotFoundError`."""
        with translate("read a queue"):
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(_Q["get_queue"], name)
                if row is None:
                    raise NotFoundError(f"no queue named {name!r}")
                counts = await conn.fetchrow(_Q["queue_counts"], name)
        return q.Queue(
            settings=_settings(row),
            ready=counts["ready"],
            active=counts["active"],
            suspended=counts["suspended"],
        )

    async def list_queues(self) -> list[q.Queue]:
        """Every queue, by name."""
        with translate("list queues"):
            names = [r["name"] for r in await self._pool.fetch(_Q["list_queues"])]
        return [await self.get_queue(name) for name in names]

    async def pause_task(self, task_id: int, *, paused: bool) -> Task:
        """Pause or resume the task."""
        with translate("pause task", task_id):
            async with self._pool.acquire() as conn, conn.transaction():
                state = await conn.fetchval(_Q["task_state_for_update"], task_id)
                if state is None:
                    raise TaskNotFoundError(task_id)
                if state in ("complete", "failed", "cancelled"):
                    raise InvalidStateError(f"task {task_id} is already {state}")
                row = await conn.fetchrow(_Q["pause_task"], task_id, paused)
                await conn.execute("SELECT pg_notify('durable_work', '')")
        return _pg_codec.task(row)

    async def paused_tasks(self, worker_id: str) -> list[int]:
        """This worker's active tasks that have been paused."""
        with translate("read paused tasks"):
            rows = await self._pool.fetch(_Q["paused_active"], worker_id)
        return [int(r["id"]) for r in rows]
