"""Serving `GET /metrics`: the route the dashboard mounts, and the small server of
`durable worker --metrics-port N`, which runs in the worker's own event loop."""

from __future__ import annotations

import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Generator, Mapping

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp as ASGIApplication

from durable.errors import ConfigurationError
from durable.metrics import CONTENT_TYPE, Metrics

CountTasks = Callable[[], Awaitable[Mapping[str, int]]]


def metrics_route(metrics: Metrics, count_tasks: CountTasks) -> Route:
    """`GET /metrics`: the Prometheus text format, task counts read at each scrape."""

    async def scrape(request: Request) -> Response:
        return Response(await metrics.render(count_tasks), media_type=CONTENT_TYPE)

    return Route("/metrics", scrape, methods=["GET"])


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: the process that embeds it (a
    worker) has its own SIGTERM handling, which uvicorn's would replace."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """Install nothing."""
        yield


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port`, bound here so that a port in use is a clear
    error (uvicorn would log it and exit the process).

    Raises:
        ConfigurationError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


async def serve_app(
    app: ASGIApplication, sock: socket.socket, *, until_signal: bool = False
) -> None:
    """Serve `app` on the bound `sock` until cancelled, or with `until_signal` until
    SIGTERM or SIGINT, after which open requests are finished and it returns."""
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = EmbeddedServer(config)
    if not until_signal:
        await server.serve(sockets=[sock])
        return
    async with anyio.create_task_group() as tg:

        async def stop_on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    server.should_exit = True
                    return

        tg.start_soon(stop_on_signal)
        await server.serve(sockets=[sock])
        tg.cancel_scope.cancel()


async def serve_metrics(metrics: Metrics, count_tasks: CountTasks, sock: socket.socket) -> None:
    """Serve `/metrics` on the bound `sock` until cancelled."""
    await serve_app(Starlette(routes=[metrics_route(metrics, count_tasks)]), sock)
