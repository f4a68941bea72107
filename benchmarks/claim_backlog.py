"""Claim latency with a large backlog of waiting tasks (issue 16, item 4).

    python -m benchmarks.claim_backlog [--tasks 1000000] [--backend sqlite|postgres|all]

Fills a fresh database with TASKS sleeping tasks (suspended, due tomorrow) and TASKS
queued tasks held back by their queue's limit (concurrency 1, one task active), then
measures, with `Store.claim` as a worker calls it: claiming one new ready task, and
claiming one task from an open queue. Waiting tasks cost rows, not memory: a claim
reads partial indexes that hold only what is runnable, so its latency should not grow
with the backlog. Rows go in by bulk SQL (a launch each would take hours); each kind is
what `create_task` and `finish` leave behind.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import anyio

from durable.core.model import Completed, NewTask
from durable.core.queue import QueueSettings
from durable.storage import open_store
from durable.storage.base import QueueStore, Store
from durable.testing.postgres import fresh_database, postgres_server

ROUNDS = 200

_SQLITE_FILL = """
INSERT INTO durable_task (name, workflow_hash, entry, state, seed, created_at, updated_at,
                          wakeup_at, queue, priority)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
SELECT CASE WHEN ?2 IS NULL THEN 'sleeper' ELSE 'queued' END, ?3, '',
       CASE WHEN ?2 IS NULL THEN 'suspended' ELSE 'ready' END, i, ?4, ?4,
       CASE WHEN ?2 IS NULL THEN ?4 + 86400 END, ?2, 0
FROM n
"""

_PG_FILL = """
INSERT INTO durable.tasks (name, workflow_hash, entry, input, state, seed, wakeup_at, queue)
SELECT CASE WHEN $2::text IS NULL THEN 'sleeper' ELSE 'queued' END, $3, '', 'null',
       CASE WHEN $2::text IS NULL THEN 'suspended' ELSE 'ready' END, i,
       CASE WHEN $2::text IS NULL THEN now() + interval '1 day' END, $2
FROM generate_series(1, $1) AS i
"""


async def _fill(store: Store, url: str, tasks: int, workflow: str, queue: str | None) -> None:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path)
        with conn:
            conn.execute(_SQLITE_FILL, (tasks, queue, workflow, time.time()))
        conn.execute("ANALYZE")
        conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(_PG_FILL, tasks, queue, workflow)
        await conn.execute("ANALYZE durable.tasks")
    finally:
        await conn.close()


async def _claim_one(store: Store, spec: NewTask) -> float:
    """Launch one task, then time the claim that takes it; finish it."""
    await store.create_task(spec)
    started = time.perf_counter()
    claims = await store.claim(worker_id="bench", limit=1, lease_seconds=60)
    elapsed = time.perf_counter() - started
    assert len(claims) == 1, "the new task was not claimed"
    await store.finish(claims[0].lease, Completed(result="null"))
    return elapsed


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"


async def measure(url: str, tasks: int) -> dict[str, str]:
    """Fill the database at `url` and return the figures, as text."""
    store = await open_store(url)
    try:
        assert isinstance(store, QueueStore)
        workflow = await store.put_workflow(b"not run here", name="bench")
        await store.set_queue(QueueSettings(name="full", concurrency=1))
        await store.set_queue(QueueSettings(name="open"))
        await store.create_task(NewTask(name="holder", workflow_hash=workflow, input="0",
                                        queue="full"))  # fmt: skip
        assert await store.claim(worker_id="holder", limit=1, lease_seconds=3600)
        filled = time.perf_counter()
        await _fill(store, url, tasks, workflow, None)
        await _fill(store, url, tasks, workflow, "full")
        fill_s = time.perf_counter() - filled
        plain = NewTask(name="new", workflow_hash=workflow, input="0")
        queued = NewTask(name="new", workflow_hash=workflow, input="0", queue="open")
        ready = [await _claim_one(store, plain) for _ in range(ROUNDS)]
        from_queue = [await _claim_one(store, queued) for _ in range(ROUNDS)]
    finally:
        await store.close()
    return {
        "waiting tasks": f"{tasks} sleeping + {tasks} queued behind a full queue "
        f"(filled in {fill_s:.1f} s)",
        "claim a ready task": _summary(ready),
        "claim from an open queue": _summary(from_queue),
    }


def main() -> None:
    """Print the figures for each backend asked for."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "all"], default="all")
    args = parser.parse_args()
    if args.backend in ("sqlite", "all"):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'backlog.db'}"
            _print("sqlite", anyio.run(measure, url, args.tasks))
    if args.backend in ("postgres", "all"):
        with postgres_server() as server, fresh_database(server, "backlog") as url:
            _print("postgres", anyio.run(measure, url, args.tasks))


def _print(backend: str, figures: dict[str, str]) -> None:
    for name, value in figures.items():
        print(f"{backend:9} {name:26} {value}", flush=True)


if __name__ == "__main__":
    main()
