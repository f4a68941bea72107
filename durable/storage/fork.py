"""The fork role of a store: a new task whose history starts as a copy of another's.

`durable fork TASK --at K` and `durable retry TASK` create a task with the first K
events of TASK, on its binary or another, and let a worker run it from there. The copy
and the new task are one transaction; the original is untouched; the new task keeps a
link to where it came from (`TaskOrigin`). Every backend has this role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from durable.core.fork import check_at as check_at
from durable.core.model import Task


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskOrigin:
    """Where a forked task came from."""

    origin_id: int  # the task whose history was copied
    at: int  # how many of its events were copied (events 0 .. at-1)
    run: int = 1  # which of its runs (`durable.continue_as_new`) they were copied from


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFork:
    """A task forked from another."""

    task_id: int  # the fork
    at: int  # how many of the origin's events it copied
    run: int = 1  # from which of the origin's runs


@runtime_checkable
class ForkStore(Protocol):
    """The fork role (see the module docstring)."""

    async def fork_task(
        self,
        origin_id: int,
        *,
        at: int,
        workflow_hash: str,
        input: str | None = None,
        run: int | None = None,
    ) -> Task:
        """A new `ready` task: the origin's name and entry, the binary
        `workflow_hash`, `input` (default: the origin's), and the origin's first `at`
        events as its history with the output they account for (the log at positions
        0 .. `at`) and the status values set before event `at` (and not set again
        since: a store keeps only a key's latest value), all in one transaction.

        `run`: fork from that run of the origin (`durable.continue_as_new`; default:
        its current run): its events and output, its input by default, no status values
        (for an ended run). The fork is at its run 1, with the seed of the origin's run
        (`durable.core.runs.run_seed`), so that the copied events see their entropy.

        Raises:
            TaskNotFoundError: no task `origin_id`.
            NotFoundError: the binary is not stored.
            ConflictError: `at` is negative or past the end of the run's history, or
                the origin has no such run.
        """
        ...

    async def task_origin(self, task_id: int) -> TaskOrigin | None:
        """Where `task_id` was forked from; None for a task that is not a fork."""
        ...

    async def task_forks(self, origin_id: int, *, limit: int = 100) -> list[TaskFork]:
        """Up to `limit` of the tasks forked from `origin_id`, oldest first."""
        ...


def of_run(run: int) -> str:
    """Which run of its origin a fork copied, as `durable show` and the dashboard say
    it: only past the first (most tasks have one run)."""
    return "" if run == 1 else f" of run {run}"


#: The end of the current run's log range: no log seq is above it.
NO_END = 2**31 - 1


def log_range(run: int, current: int, bases: dict[int, int], base: int) -> tuple[int, int]:
    """The log seqs `(low, high]` of `run` of a task at run `current` whose log base is
    `base`, given each ended run's log base (`bases`)."""
    if run == current:
        return base, NO_END
    return bases[run], bases.get(run + 1, base)


def no_run(origin_id: int, run: int, current: int) -> str:
    """Why a fork of run `run` is refused: the origin has no such run."""
    return f"task {origin_id} has no run {run} (it is at run {current})"


@runtime_checkable
class WorkflowVersions(Protocol):
    """Every binary of a workflow name (for `durable upgrade`)."""

    async def workflow_hashes(self, name: str) -> list[str]:
        """The hashes of every binary stored under `name`, in no order."""
        ...
