"""The schedule half of `durable.client.Client`: add, inspect, pause and fire schedules.

A mixin, so that the client's own module stays about tasks; every method needs a store
with the schedule role (SQLite or Postgres), and says so clearly on the memory store.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from durable.core.model import Task
from durable.core.schedule import (
    Cadence,
    CatchUp,
    Overlap,
    Schedule,
    ScheduleSpec,
    check_name,
    parse_every,
)
from durable.errors import ConfigurationError
from durable.storage.base import ScheduleStore

if TYPE_CHECKING:
    from durable.storage import Store


class ScheduleClient:
    """Schedules: each tick of a schedule launches one task of its workflow."""

    store: Store
    max_input_bytes: int

    def _schedules(self) -> ScheduleStore:
        if not isinstance(self.store, ScheduleStore):
            raise ConfigurationError(f"the store {self.store.url} cannot keep schedules")
        return self.store

    async def add_schedule(
        self,
        name: str,
        workflow: str,
        *,
        cron: str | None = None,
        tz: str = "UTC",
        every: int | str | None = None,
        input: Any = None,
        entry: str = "",
        overlap: Overlap | str = Overlap.SKIP,
        catch_up: CatchUp | str = CatchUp.LATEST,
        jitter: float = 0.0,
    ) -> Schedule:
        """Add a schedule `name` whose ticks each launch one task of `workflow`.

        Args:
            name: unique; letters, digits, `_`, `.` and `-`.
            workflow: the name a workflow was registered under (`register_file`
                uses the file's stem); each tick runs its newest binary.
            cron: a cron expression ("*/5 * * * *"), read in time zone `tz` ...
            every: ... or a period: seconds, or text like "30s", "5m", "1h30m".
            input: every task's input, any JSON value.
            overlap: "skip", "buffer-one" or "allow": what a tick does while the
                schedule's previous task still runs.
            catch_up: "none", "latest" or "all": what happens to ticks missed for
                longer than a minute (no worker ran, or the schedule was paused).
            jitter: seconds; each tick starts up to this much late, the same on every
                worker.

        Raises:
            ConfigurationError: a bad name, cadence, time zone, policy or input.
            ConflictError: a schedule of that name exists.
            NotFoundError: no workflow is registered under `workflow`.
        """
        from durable.client import encode_input  # the client imports this module

        check_name(name)
        period = parse_every(every) if isinstance(every, str) else every
        now = datetime.now(UTC).replace(microsecond=0)
        cadence = Cadence(cron=cron, tz=tz, every=period, anchor=now)
        if jitter < 0:
            raise ConfigurationError(f"--jitter must be 0 or more seconds, not {jitter:g}")
        spec = ScheduleSpec(
            name=name,
            workflow=workflow,
            cadence=cadence,
            input=encode_input(input, max_bytes=self.max_input_bytes),
            entry=entry,
            overlap=_choice(Overlap, overlap, "overlap"),
            catch_up=_choice(CatchUp, catch_up, "catch-up"),
            jitter=float(jitter),
        )
        return await self._schedules().add_schedule(spec)

    async def schedules(self) -> builtins.list[Schedule]:
        """Every schedule, by name."""
        return await self._schedules().list_schedules()

    async def get_schedule(self, name: str) -> Schedule:
        """The schedule `name`, or `NotFoundError`."""
        return await self._schedules().get_schedule(name)

    async def pause_schedule(self, name: str) -> Schedule:
        """Stop its ticks until `resume_schedule`."""
        return await self._schedules().pause_schedule(name, paused=True)

    async def resume_schedule(self, name: str) -> Schedule:
        """Let its ticks fire again; those missed meanwhile follow its catch-up policy."""
        return await self._schedules().pause_schedule(name, paused=False)

    async def delete_schedule(self, name: str) -> None:
        """Forget the schedule; the tasks it launched stay."""
        await self._schedules().delete_schedule(name)

    async def trigger_schedule(self, name: str) -> Task:
        """Launch one task of the schedule now (whatever its overlap policy)."""
        return await self._schedules().trigger_schedule(name)


def _choice(kind: type[Overlap] | type[CatchUp], value: str, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(v.value for v in kind)
        raise ConfigurationError(f"unknown {what} policy {value!r} (one of {names})") from None
