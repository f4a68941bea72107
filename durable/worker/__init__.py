"""Workers: claim tasks, run them through the host, renew leases, wake timers."""

from __future__ import annotations

from durable.worker.config import WorkerConfig
from durable.worker.worker import Worker

__all__ = ["Worker", "WorkerConfig"]
