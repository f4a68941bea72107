"""`durable upgrade --check`: replay every unfinished task of a workflow against new code.

The tasks are those whose binary was stored under the workflow's name (any version of
it) and that have not ended, except those already on the new binary. Each one's
history is replayed against the new component (`Replayer`: nothing is performed or
written), several at once in threads that share one runtime and its compiled
component. The report says, per task, whether it replays cleanly and where it stops,
or where it would diverge.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field

import anyio
import anyio.to_thread

from durable.client import Client
from durable.core.model import Task, TaskState
from durable.errors import ConfigurationError
from durable.history import TaskHistory
from durable.loader import runs_on
from durable.replayer import Replayer, ReplayReport
from durable.storage.fork import WorkflowVersions

__all__ = ["UpgradeReport", "check_upgrade"]

#: The states of a task that has not ended.
UNFINISHED = (TaskState.READY, TaskState.ACTIVE, TaskState.SUSPENDED)


@dataclass(slots=True, kw_only=True)
class UpgradeReport:
    """What replaying a workflow's unfinished tasks against new code found."""

    name: str
    workflow_hash: str  # the new binary's
    reports: list[ReplayReport] = field(default_factory=list)  # by task id
    already: int = 0  # unfinished tasks already on the new binary
    seconds: float = 0.0
    # Each replayed task as it was read with its history (`durable.upgrade_move` moves
    # only a task still exactly so).
    seen: dict[int, Task] = field(default_factory=dict)

    @property
    def clean(self) -> list[ReplayReport]:
        """The tasks that would resume on the new code."""
        return [r for r in self.reports if r.clean]

    def lines(self) -> list[str]:
        """The report as `durable upgrade --check` prints it."""
        out = []
        for r in self.reports:
            if r.divergence is not None:
                d = r.divergence
                out.append(
                    f"task {r.task_id}: diverges at event {d.index}: recorded {d.expected}, "
                    f"found {d.found}"
                )
            else:
                then = f", then {r.next_operation!r}" if r.next_operation else ""
                out.append(f"task {r.task_id}: clean ({r.events} events{then})")
        rate = len(self.reports) / self.seconds if self.seconds > 0 else 0.0
        out.append(
            f"{len(self.clean)} of {len(self.reports)} unfinished task(s) of {self.name!r} "
            f"replay cleanly against the new code ({rate:.1f} tasks/s); "
            f"{self.already} already on it"
        )
        return out


async def check_upgrade(
    client: Client, name: str, wasm: bytes, *, parallel: int | None = None
) -> UpgradeReport:
    """Replay every unfinished task of workflow `name` against `wasm` (see the module
    docstring). `parallel`: replays at once (default: the CPU count).

    Raises:
        ConfigurationError: the store cannot list a workflow's binaries, or no binary
            is stored under `name`.
    """
    store = client.store
    if not isinstance(store, WorkflowVersions):
        raise ConfigurationError("this store cannot list a workflow's binaries")
    hashes = set(await store.workflow_hashes(name))
    if not hashes:
        raise ConfigurationError(f"no workflow binary is stored under the name {name!r}")
    new_hash = hashlib.sha256(wasm).hexdigest()
    report = UpgradeReport(name=name, workflow_hash=new_hash)
    histories: list[TaskHistory] = []
    for task in await store.list_tasks(states=UNFINISHED, limit=1_000_000):
        if task.workflow_hash == new_hash:
            report.already += 1
        elif task.workflow_hash in hashes:
            history = await client.history(task.id)
            histories.append(history)
            report.seen[task.id] = history.task
    results: dict[int, ReplayReport] = {}
    limiter = anyio.CapacityLimiter(parallel or os.cpu_count() or 1)
    with Replayer() as replayer:
        # Compiled once, before the replays share it (and before the clock starts).
        await anyio.to_thread.run_sync(lambda: replayer.runtime.cache.load(*runs_on(wasm)))
        started = time.monotonic()

        async def one(history: TaskHistory) -> None:
            results[history.task.id] = await anyio.to_thread.run_sync(
                replayer.replay, history, wasm, limiter=limiter
            )

        async with anyio.create_task_group() as tg:
            for history in histories:
                tg.start_soon(one, history)
    report.seconds = time.monotonic() - started
    report.reports = [results[i] for i in sorted(results)]
    return report
