"""Page load times of the dashboard (`durable ui`) with many tasks in the database.

    python -m benchmarks.dashboard [--tasks 100000] [--loads 20] [--db URL | --postgres]
                                   [--json OUT]

The tasks are written straight into durable's tables, in one transaction, as a
database that ran them would hold them: a mix of states, ended over the last hour, every
tenth a child of an earlier task, each with a few events and a log line. Each page is
then fetched `--loads` times through the dashboard's ASGI application (the queries and
the rendering, without a network in between), and its p50 and p99 are reported.
Default database: a fresh SQLite file; `--db postgresql://...` measures Postgres (an
empty database: it is migrated, then filled); `--postgres` starts a throwaway server for
it, as the tests do.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx

from durable.app import open_client
from durable.client import Client
from durable.storage._url import parse_url
from durable.ui.app import Dashboard, create_app
from durable.ui.reader import open_reader
from durable.ui.security import Guard

STATES = ["complete"] * 80 + ["failed"] * 8 + ["cancelled"] * 2 + ["suspended"] * 6 + ["ready"] * 4


def _rows(n: int, workflow: str) -> list[tuple[Any, ...]]:
    """(id, name, workflow, state, created, updated, parent) for `n` tasks."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    rows = []
    for i in range(1, n + 1):
        state = rng.choice(STATES)
        created = now - timedelta(seconds=3600 * (n - i) / n + 5)
        updated = created + timedelta(seconds=rng.uniform(0.01, 5))
        parent = i - rng.randint(1, min(i - 1, 50)) if i > 1 and i % 10 == 0 else None
        rows.append((i, f"order-{i % 1000}", workflow, state, created, updated, parent))
    return rows


async def _fill_sqlite(path: Path, rows: list[tuple[Any, ...]]) -> None:
    import aiosqlite

    async with aiosqlite.connect(path) as conn:
        await conn.execute("BEGIN")
        await conn.executemany(
            "INSERT INTO durable_task (id, name, workflow_hash, state, seed, created_at, "
            "updated_at, attempts, parent_id) VALUES (?, ?, ?, ?, 1, ?, ?, 1, ?)",
            [(i, nm, wf, st, c.timestamp(), u.timestamp(), p) for i, nm, wf, st, c, u, p in rows],
        )
        await conn.executemany(
            "INSERT INTO durable_task_input (task_id, input) VALUES (?, ?)",
            [(r[0], json.dumps({"n": r[0]})) for r in rows],
        )
        await conn.executemany(
            "INSERT INTO durable_event (task_id, idx, label, digest, payload, created_at) "
            "VALUES (?, ?, 'step charge', NULL, '{\"ok\": 1}', ?)",
            [(r[0], k, r[4].timestamp() + k / 10) for r in rows for k in range(3)],
        )
        await conn.executemany(
            "INSERT INTO durable_log (task_id, seq, position, stream, data, created_at) "
            "VALUES (?, 1, 0, 'stdout', ?, ?)",
            [(r[0], f"charging order {r[0]}\n".encode(), r[4].timestamp()) for r in rows],
        )
        await conn.execute(
            "UPDATE sqlite_sequence SET seq = ? WHERE name = 'durable_task'", (len(rows),)
        )
        await conn.commit()


async def _fill_postgres(dsn: str, rows: list[tuple[Any, ...]]) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "tasks", schema_name="durable",
                columns=["id", "name", "workflow_hash", "input", "state", "seed", "created_at",
                         "updated_at", "attempts", "parent_id"],
                records=[(i, nm, wf, json.dumps({"n": i}), st, 1, c, u, 1, p)
                         for i, nm, wf, st, c, u, p in rows],
            )  # fmt: skip
            await conn.copy_records_to_table(
                "events", schema_name="durable",
                columns=["task_id", "idx", "label", "payload", "created_at"],
                records=[(r[0], k, "step charge", '{"ok": 1}', r[4] + timedelta(seconds=k / 10))
                         for r in rows for k in range(3)],
            )  # fmt: skip
            await conn.execute(
                "SELECT setval(pg_get_serial_sequence('durable.tasks', 'id'), $1)", len(rows)
            )
        # What autovacuum does to a table that has lived a while: the visibility map lets
        # counts by state read the (state, id) index alone.
        await conn.execute("VACUUM ANALYZE durable.tasks")
    finally:
        await conn.close()


async def measure(url: str, tasks: int, loads: int) -> dict[str, dict[str, float]]:
    """Fill the database at `url` with `tasks` tasks; time each page `loads` times (ms)."""
    client = await open_client(url, migrate=True)
    try:
        workflow = await client.register(b"\0asm benchmark", name="bench", compile=False)
        rows = _rows(tasks, workflow)
        parsed = parse_url(url)
        if parsed.scheme == "sqlite":
            assert parsed.path is not None
            await _fill_sqlite(parsed.path, rows)
        else:
            assert parsed.dsn is not None
            await _fill_postgres(parsed.dsn, rows)
        return await _time_pages(client, url, tasks, loads)
    finally:
        await client.close()


async def _time_pages(
    client: Client, url: str, tasks: int, loads: int
) -> dict[str, dict[str, float]]:
    reader = await open_reader(url)
    dash = Dashboard(client=client, reader=reader, guard=Guard(None))
    middle = tasks // 2
    pages = {
        "overview /": "/",
        "tasks, newest page": "/tasks",
        "tasks, a page in the middle": f"/tasks?before={middle}",
        "tasks, state=failed": "/tasks?state=failed",
        "tasks, name pattern": "/tasks?name=order-7*",
        "tasks, children of a task": f"/tasks?parent={middle - 20}",
        "tasks, live JSON": "/api/tasks",
        "a task": f"/tasks/{middle}",
        "workers": "/workers",
        "metrics": "/metrics",
    }
    out: dict[str, dict[str, float]] = {}
    transport = httpx.ASGITransport(app=create_app(dash))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            for label, path in pages.items():
                (await http.get(path)).raise_for_status()  # warm
                times = []
                for _ in range(loads):
                    started = time.perf_counter()
                    response = await http.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                    response.raise_for_status()
                times.sort()
                p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
                out[label] = {"p50_ms": statistics.median(times), "p99_ms": p99}
    finally:
        dash.close()
        await reader.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (and JSON with --json)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dashboard")
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--db", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--postgres", action="store_true", help="on a throwaway server")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        if args.postgres:
            from durable.testing.postgres import postgres_server

            url = stack.enter_context(postgres_server()).create_database("dashboard_bench")
        result = anyio.run(measure, url, args.tasks, args.loads)
    print(f"dashboard page loads with {args.tasks} tasks ({parse_url(url).scheme}), ms:")
    for label, figures in result.items():
        print(f"  {label:32} p50 {figures['p50_ms']:8.1f}   p99 {figures['p99_ms']:8.1f}")
    if args.json is not None:
        args.json.write_text(json.dumps({"tasks": args.tasks, "pages": result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
