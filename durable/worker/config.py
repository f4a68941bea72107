"""Worker settings, each with a production default."""

from __future__ import annotations

from dataclasses import dataclass, field

from durable.host.config import HostConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    """How a worker claims and runs tasks."""

    # How many task attempts run at once (each on its own thread while it runs).
    concurrency: int = 16
    # A lease not renewed for this long passes the task on to another worker.
    lease_seconds: float = 10.0
    # Longest idle wait between checks for work, a safety net under notifications.
    poll_interval: float = 1.0
    # Exit once nothing is runnable, nothing runs, and no timer is due soon.
    exit_when_idle: bool = False
    # Settings for the guest host.
    host: HostConfig = field(default_factory=HostConfig)
