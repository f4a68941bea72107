"""The claim, the hottest statement, still reads only its partial indexes with claim
affinity in it (and next_wakeup its new one): EXPLAIN on SQLite and on Postgres, the
latter over a table of many ended and sleeping tasks, analysed, where a scan would show."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from durable.storage import open_store
from durable.storage._pg_claim import PRELOAD_EVENTS
from durable.storage._pg_schema import queries as pg_queries
from durable.storage._sqlite_schema import queries as sqlite_queries
from durable.storage.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio

#: claim's parameters: worker, limit, lease seconds, max deaths, last-chance count, how
#: many last chances, message template, affinity grace, history read ahead (SQLite's
#: differ; see there).
PG_CLAIM = ("w1", 16, 5.0, 3, 2, None, "task %s %s", 0.1, PRELOAD_EVENTS)


async def test_sqlite_claim_and_next_wakeup_use_their_indexes(tmp_path: Path) -> None:
    store = await SQLiteStore.open(tmp_path / "plan.db")
    await store.migrate()
    await store.close()
    q = sqlite_queries()
    with sqlite3.connect(tmp_path / "plan.db") as db:
        # ?1 worker, ?2 lease end, ?3 now, ?4 limit, ?5..?8 as above, ?9 grace cutoff.
        claim = _sqlite_plan(db, q["claim"], ("w1", 5.0, 0.0, 16, 3, 2, None, "%s %s", -0.1))
        wakeup = _sqlite_plan(db, q["next_wakeup"], (0.0, 0.1))
    for index in ("unqueued", "timer", "lease", "deaths"):
        assert f"USING INDEX durable_task_{index}" in claim, claim
    assert "USING INDEX durable_task_affine" in wakeup, wakeup
    for plan in (claim, wakeup):
        assert not any(
            line.startswith("SCAN durable_task") and "USING" not in line
            for line in plan.splitlines()
        ), plan


def _sqlite_plan(db: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> str:
    return "\n".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, params))


async def _migrated_with_binary(pg_url: str, wasm: bytes) -> str:
    """Migrate the database at `pg_url`, store `wasm` in it and return its hash."""
    store = await open_store(pg_url)
    try:
        await store.migrate()
        return await store.put_workflow(wasm)
    finally:
        await store.close()


async def test_postgres_claim_and_next_wakeup_use_their_indexes(pg_url: str) -> None:
    digest = await _migrated_with_binary(pg_url, b"\x00asm\x01\x00\x00\x00 plan")
    conn = await asyncpg.connect(pg_url)
    try:
        # 20,000 ended tasks, 5,000 asleep (half held for a worker), a few runnable.
        await conn.execute(
            """
            INSERT INTO durable.tasks (name, workflow_hash, input, state, seed, result)
            SELECT 'done', $1, '{}', 'complete', 0, 'null' FROM generate_series(1, 20000)
            """,
            digest,
        )
        await conn.execute(
            """
            INSERT INTO durable.tasks (name, workflow_hash, input, state, seed, wakeup_at,
                                       on_event, affinity)
            SELECT 'asleep', $1, '{}', 'suspended', 0, now() + interval '1 hour', true,
                   CASE WHEN n % 2 = 0 THEN 'w2' END
            FROM generate_series(1, 5000) AS n
            """,
            digest,
        )
        await conn.execute(
            """
            INSERT INTO durable.tasks (name, workflow_hash, input, state, seed, affinity)
            SELECT 'woken', $1, '{}', 'ready', 0, CASE WHEN n % 2 = 0 THEN 'w2' END
            FROM generate_series(1, 20) AS n
            """,
            digest,
        )
        await conn.execute("ANALYZE durable.tasks")
        q = pg_queries()
        claim = await _pg_plan(conn, q["claim"], PG_CLAIM)
        wakeup = await _pg_plan(conn, q["next_wakeup"], (0.1,))
        # The store's claim connections plan it generic (`_CLAIM_SETTINGS`): that plan too.
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        generic = await _pg_plan(conn, q["claim"], PG_CLAIM)
    finally:
        await conn.close()
    assert "$1" in generic, f"not the generic plan: {generic}"
    # The branches that affinity filters: ready tasks, due timers (the planner picks its
    # own index for expired leases, unchanged).
    for plan in (claim, generic):
        for index in ("tasks_unqueued", "tasks_wakeup"):
            assert f"Index Scan using {index}" in plan, plan
    assert "tasks_affine" in wakeup, wakeup
    for plan in (claim, generic, wakeup):
        assert "Seq Scan on tasks" not in plan, plan


async def _pg_plan(conn: asyncpg.Connection, sql: str, params: tuple[object, ...]) -> str:
    # EXPLAIN only (no ANALYZE): the claim is an UPDATE, and must not run.
    rows = await conn.fetch("EXPLAIN " + sql, *params)
    return "\n".join(row[0] for row in rows)


async def test_postgres_claim_reads_a_long_history_of_no_task_it_claims(pg_url: str) -> None:
    """Its read-ahead (`_pg_claim`) is for first claims of short histories: a task woken
    on its kept instance, with thousands of events, must not have them read on the way
    (a gate written in the join's ON was checked on every event read)."""
    digest = await _migrated_with_binary(pg_url, b"\x00asm\x01\x00\x00\x00 history")
    events = PRELOAD_EVENTS * 20
    conn = await asyncpg.connect(pg_url)
    try:
        for attempts in (1, 0):  # claimed before (its events recorded then), or a fork's
            task_id = await conn.fetchval(
                "INSERT INTO durable.tasks (name, workflow_hash, input, state, seed, attempts)"
                " VALUES ('long', $1, '{}', 'ready', 0, $2) RETURNING id",
                digest,
                attempts,
            )
            await conn.execute(
                "INSERT INTO durable.events (task_id, idx, label, payload)"
                " SELECT $1, n, 'step', '{}' FROM generate_series(0, $2 - 1) AS n",
                task_id,
                events,
            )
            transaction = conn.transaction()
            await transaction.start()
            try:
                rows = await conn.fetch("EXPLAIN (ANALYZE) " + pg_queries()["claim"], *PG_CLAIM)
            finally:
                await transaction.rollback()  # the claim ran: undo it
            plan = "\n".join(row[0] for row in rows)
            assert f"rows={events} " not in plan, plan
            await conn.execute("DELETE FROM durable.events WHERE task_id = $1", task_id)
            await conn.execute("DELETE FROM durable.tasks WHERE id = $1", task_id)
    finally:
        await conn.close()
