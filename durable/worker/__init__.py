"""Workers: claim tasks, run them through the host, renew leases, wake timers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from durable.worker.config import WorkerConfig

if TYPE_CHECKING:
    from durable.worker.worker import Worker

__all__ = ["Worker", "WorkerConfig"]


def __getattr__(name: str) -> Any:
    # `Worker` loads the host (and wasmtime): only when asked for, so that reading a
    # worker's settings (`durable worker --help`) does not.
    if name == "Worker":
        from durable.worker.worker import Worker

        return Worker
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
