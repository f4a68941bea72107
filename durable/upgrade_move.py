"""`durable upgrade NAME NEW` without `--check`: move the clean tasks onto new code.

The new binary is stored under the workflow's name first, so that from then on a
launch, a spawn or a schedule of that name runs it (`find_workflow`). Then every
unfinished task of the workflow is replayed against it (`durable.upgrade`), and each
task that replays cleanly is moved onto it, one fenced transaction per task
(`durable.storage.moves`): a task that is running, or was claimed or grew its history
after it was replayed, is not moved but skipped (run the upgrade again later). The
tasks that diverge stay on their binary and finish on the old code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from durable.client import Client
from durable.errors import ConfigurationError
from durable.storage.fork import WorkflowVersions
from durable.storage.moves import MoveStore
from durable.upgrade import UpgradeReport, check_upgrade

__all__ = ["MoveReport", "upgrade_tasks"]


@dataclass(slots=True, kw_only=True)
class MoveReport:
    """What `durable upgrade` (without --check) did."""

    check: UpgradeReport  # the replays
    moved: list[int] = field(default_factory=list)  # task ids, now on the new binary
    skipped: list[int] = field(default_factory=list)  # clean, but running or changed since
    seconds: float = 0.0  # the moves' time (the replays' is the check's)

    @property
    def left(self) -> int:
        """Tasks left on an old binary: diverging, or skipped."""
        return len(self.check.reports) - len(self.moved)

    def lines(self) -> list[str]:
        """The report as `durable upgrade` prints it."""
        new = self.check.workflow_hash[:12]
        out = []
        for r in self.check.reports:
            old = self.check.seen[r.task_id].workflow_hash[:12]
            if r.divergence is not None:
                d = r.divergence
                out.append(
                    f"task {r.task_id}: diverges at event {d.index}: recorded {d.expected}, "
                    f"found {d.found}; stays on {old}"
                )
            elif r.task_id in self.moved:
                then = f", then {r.next_operation!r}" if r.next_operation else ""
                out.append(f"task {r.task_id}: moved from {old} to {new} ({r.events} events{then})")
            else:
                out.append(
                    f"task {r.task_id}: skipped: running, or its history grew since it was "
                    f"replayed; stays on {old} (run the upgrade again)"
                )
        diverged = len(self.check.reports) - len(self.check.clean)
        out.append(
            f"moved {len(self.moved)} of {len(self.check.reports)} unfinished task(s) of "
            f"{self.check.name!r} onto {new}: {diverged} diverge, {len(self.skipped)} skipped; "
            f"{self.check.already} already on it; "
            f"replayed {_rate(len(self.check.reports), self.check.seconds)} tasks/s, "
            f"moved {_rate(len(self.moved), self.seconds)} tasks/s"
        )
        return out


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.1f}" if seconds > 0 else "-"


async def upgrade_tasks(
    client: Client, name: str, wasm: bytes, *, parallel: int | None = None
) -> MoveReport:
    """Store `wasm` as the newest binary of `name`, replay every unfinished task of
    `name` against it, and move the clean ones onto it (see the module docstring).

    Raises:
        ConfigurationError: no binary is stored under `name`, or the store cannot move
            tasks; nothing is stored then.
        ComponentError: `wasm` is not a workflow component.
    """
    store = client.store
    if not isinstance(store, MoveStore) or not isinstance(store, WorkflowVersions):
        raise ConfigurationError("this store cannot move tasks onto a new binary")
    # The same refusal as --check for an unknown name, before anything is stored.
    if not await store.workflow_hashes(name):
        raise ConfigurationError(f"no workflow binary is stored under the name {name!r}")
    new_hash = await client.register(wasm, name=name)
    report = MoveReport(check=await check_upgrade(client, name, wasm, parallel=parallel))
    started = time.monotonic()
    for replay in report.check.clean:
        task = report.check.seen[replay.task_id]
        moved = await store.move_task(
            task.id,
            from_hash=task.workflow_hash,
            to_hash=new_hash,
            attempts=task.attempts,
            events=replay.events,
        )
        (report.moved if moved else report.skipped).append(task.id)
    report.seconds = time.monotonic() - started
    return report
