"""Worker settings, each with a production default."""

from __future__ import annotations

from dataclasses import dataclass, field

from durable.host.config import HostConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerConfig:
    """How a worker claims and runs tasks."""

    # How many task attempts run at once (each on its own thread while it runs).
    concurrency: int = 16
    # A lease not renewed for this long passes the task on to another worker. Leases
    # are renewed every second, so this is how long a network blip may last before a
    # task moves, and about how long a dead worker's tasks wait for a new home.
    lease_seconds: float = 5.0
    # Longest idle wait between checks for work: a slow safety net under the store's
    # wake-ups (LISTEN/NOTIFY on Postgres, wake-up sockets on SQLite), timers and
    # lease expiries, which wake the worker at the right moment by themselves.
    poll_interval: float = 5.0
    # A task whose attempts end with their worker dying this many times in a row (the
    # process was killed: by a crash the task causes, say, or the OOM killer) is failed
    # ("Quarantined") instead of being handed to the next worker to kill.
    max_worker_deaths: int = 3
    # Claim affinity: a task suspended by a worker that keeps its instance live is left
    # to that worker for this long after it becomes runnable, so that it goes on without
    # replay; then any worker takes it (a dead or busy keeper delays it by this much).
    # Long enough for the keeper, woken at the same moment, to claim on a busy machine.
    affinity_grace: float = 0.1
    # Exit once nothing is runnable, nothing runs, and no timer is due soon.
    exit_when_idle: bool = False
    # Settings for the guest host.
    host: HostConfig = field(default_factory=HostConfig)
