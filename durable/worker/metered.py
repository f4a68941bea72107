"""A worker that serves Prometheus metrics while it runs: `durable worker --metrics-port`."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from durable.storage.base import Store

MetricsServer = Callable[[], Coroutine[Any, Any, None]]


@contextlib.asynccontextmanager
async def metering(
    url: str | None, store: Store, address: tuple[str, int] | None
) -> AsyncIterator[tuple[Store, MetricsServer | None]]:
    """With an `address`: install this process's metrics, bind the address, and yield
    `store` counted (`metrics.metered`) and the server to run beside the worker until
    it stops. Without one: yield `store` as it is, and no server (and import nothing:
    the HTTP server and prometheus-client load only for a worker that serves them)."""
    if address is None:
        yield store, None
        return
    from durable import metrics
    from durable.metrics_http import listen, serve_metrics
    from durable.ui.counts import SharedCounts
    from durable.ui.reader import open_reader

    sock = listen(*address)
    meter = metrics.Metrics()
    remove = metrics.install(meter)
    try:
        reader = await open_reader(url)  # its own connection: scrapes never wait on writes
        try:
            counts = SharedCounts(reader.count_by_state)  # one count per moment, not per scrape
            server = functools.partial(serve_metrics, meter, counts, sock)
            yield metrics.metered(store, meter), server
        finally:
            await reader.close()
    finally:
        remove()
        sock.close()
