"""A worker that serves Prometheus metrics while it runs: `durable worker --metrics-port`."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

import anyio

from durable import metrics
from durable.metrics_http import listen, serve_metrics
from durable.ui.reader import open_reader
from durable.worker.config import WorkerConfig
from durable.worker.worker import Worker


async def serve_metered(
    url: str | None,
    config: WorkerConfig | None,
    address: tuple[str, int],
    *,
    migrate: bool | None,
    guest_url: str | None,
    alongside: Callable[[Worker], Coroutine[Any, Any, None]] | None,
) -> None:
    """`durable.app.serve`, with the process's metrics installed and served on
    `address` until the worker stops. The port is bound before the database is
    opened, so that a port in use fails first and alone."""
    from durable.app import open_store

    sock = listen(*address)
    meter = metrics.Metrics()
    remove = metrics.install(meter)
    try:
        store = await open_store(url, migrate=migrate, guest_url=guest_url)
        try:
            reader = await open_reader(url)
            try:
                worker = Worker(metrics.metered(store, meter), config)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(serve_metrics, meter, reader.count_by_state, sock)
                    if alongside is not None:
                        tg.start_soon(alongside, worker)
                    await worker.run()
                    tg.cancel_scope.cancel()
            finally:
                await reader.close()
        finally:
            await store.close()
    finally:
        remove()
        sock.close()
