"""Fault injection for crash tests: a `Store` wrapper that dies at a chosen write.

`CrashingStore` counts the writes an attempt makes that carry its history (each
`append` and each `finish` call, and each commit of a workflow's own SQL transaction,
which carries the transaction's event) and, at write number `crash_at` (from 0), makes
the process "die":

* before the write (`after=False`): the write is not attempted, so nothing of it is
  durable;
* after the write (`after=True`): the write commits, then the process dies before the
  caller learns that it succeeded.

Dying means calling `on_crash`. In process, the default raises `SimulatedCrash`, a
`BaseException`, so no `except Exception` in the worker or the host can swallow it;
from then on every call on the wrapper raises `SimulatedCrash` again, as a dead process
makes no more calls. Between processes, `kill_self` sends SIGKILL to the process.

A process that dies inside a workflow's SQL transaction loses its connection, and the
database rolls the transaction back. In process the wrapper does that itself: a crash
before a guest commit rolls the transaction back, and so does the first call on a
transaction after the process is dead.

With `crash_at=None` the wrapper only counts and records the writes (`writes`), which
is how a test learns how many crash points a run has.

`from_environment` is the test-only hook a test harness installs around
`durable.storage.open_store` (`install`; the harness's CLI entry point,
`python -m durable.testing.cli`, does it first thing): it wraps a store only when
`DURABLE_TEST_CRASH_AT` is set, and then kills the process at that
write (`DURABLE_TEST_CRASH_POINT` = `before` or `after`, default `before`), reporting
each counted write on stderr first. With `DURABLE_TEST_CRASH_TASK` set to a task id,
only that task's writes count: every worker that runs it dies, and only there.
"""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from durable.core.model import Event, Lease, LogChunk
from durable.errors import ConfigurationError
from durable.storage.base import GuestTransaction, Store, WorkflowSQL
from durable.storage.guest import GuestResult, GuestValue

__all__ = [
    "CRASH_AT_ENV",
    "CRASH_POINT_ENV",
    "CRASH_TASK_ENV",
    "GUEST_COMMIT",
    "WRITE_REPORT",
    "CrashingStore",
    "SimulatedCrash",
    "Write",
    "from_environment",
    "install",
    "kill_self",
    "report_write",
]

#: The write (from 0) at which `from_environment` makes the process die.
CRASH_AT_ENV = "DURABLE_TEST_CRASH_AT"
#: `before` (the write is not made) or `after` (it commits, then the process dies).
CRASH_POINT_ENV = "DURABLE_TEST_CRASH_POINT"
#: A task id: count only the writes of that task (default: every task's).
CRASH_TASK_ENV = "DURABLE_TEST_CRASH_TASK"
#: The name a guest SQL transaction's commit is counted under (`Write.method`).
GUEST_COMMIT = "guest_commit"
#: Starts each stderr line on which the environment hook reports a write.
WRITE_REPORT = "durable-test-crash: write "


class SimulatedCrash(BaseException):
    """The process "died" at an injected crash point.

    A `BaseException`, like the engine's control signals, so that nothing between the
    store and the test can catch it and carry on as if the process were alive.
    """


def kill_self() -> NoReturn:
    """Kill this process with SIGKILL: no cleanup, no flush, no `finally`."""
    os.kill(os.getpid(), signal.SIGKILL)
    raise SimulatedCrash("SIGKILL did not kill the process")  # pragma: no cover


def _raise_crash() -> NoReturn:
    raise SimulatedCrash("injected crash")


@dataclass(frozen=True, slots=True, kw_only=True)
class Write:
    """One counted write, as the wrapper saw it (for reports and assertions)."""

    number: int  # the write's position among all counted writes, from 0
    method: str  # the store method called: "append", "finish", ...
    task_id: int  # the task written to
    events: tuple[int, ...]  # the indexes of the events it carries
    logs: int  # how many log chunks it carries
    outcome: str | None  # for `finish`: the outcome's type name (Completed, Suspended...)

    def describe(self) -> str:
        """A one-line description, e.g. `append(task 1, events [2, 3], 1 log chunk)`."""
        what = f"task {self.task_id}, events {list(self.events)}, {self.logs} log chunk(s)"
        if self.outcome is not None:
            what += f", {self.outcome}"
        return f"{self.method}({what})"


class CrashingStore:
    """A `Store` that dies at write number `crash_at`; see the module docstring.

    Every method of the wrapped store is available (looked up on it, so the wrapper
    follows the `Store` protocol as it grows). The methods named in `counted` are the
    writes that count; every other call only checks that the process is still alive.

    Args:
        inner: the store that really holds the data.
        crash_at: the write (from 0) to die at; None never dies (count only).
        after: die right after the write commits, rather than instead of making it.
        on_crash: what dying means; by default raise `SimulatedCrash`.
        counted: the names of the methods whose calls count as writes: by default
            `append`, `finish` and `GUEST_COMMIT` (a workflow SQL transaction's
            commit), the ones that carry a task's history. Effects that write
            elsewhere (a notification to another task, a child task) can be added here
            to crash around them too.
        on_write: called with each counted write as it is attempted, before the
            crash decision (the environment hook reports writes on stderr with it).
        only_task: count only the writes of this task; others pass through uncounted.

    Attributes:
        writes: every counted write attempted so far (including the fatal one).
        crashed: whether the crash point was reached.
    """

    COUNTED: tuple[str, ...] = ("append", "finish", GUEST_COMMIT)

    def __init__(
        self,
        inner: Store,
        *,
        crash_at: int | None,
        after: bool = False,
        on_crash: Callable[[], NoReturn] = _raise_crash,
        counted: Sequence[str] = COUNTED,
        on_write: Callable[[Write], None] | None = None,
        only_task: int | None = None,
    ) -> None:
        """Wrap `inner`; see the class docstring for the arguments."""
        if crash_at is not None and crash_at < 0:
            raise ValueError(f"crash_at must be >= 0, not {crash_at}")
        self.inner = inner
        self.crash_at = crash_at
        self.after = after
        self.counted = frozenset(counted)
        self._on_crash = on_crash
        self._on_write = on_write
        self._only_task = only_task
        self.writes: list[Write] = []
        self.crashed = False

    def _alive(self) -> None:
        if self.crashed:
            raise SimulatedCrash("the process is dead")

    def __getattr__(self, name: str) -> Any:
        """The wrapped store's attribute; its methods check first that we are alive."""
        attr = getattr(self.inner, name)
        if name == "begin_guest_transaction":  # only if the inner store has workflow SQL
            return self._begin_guest_transaction
        if name.startswith("_") or not callable(attr) or name == "close":
            return attr  # closing only releases resources, even after a crash
        if name in self.counted:
            return functools.partial(self._write, name, attr)
        if not inspect.iscoroutinefunction(attr):
            # `watch_end` and the like return a context manager, not a coroutine.
            return functools.partial(self._call_now, attr)
        return functools.partial(self._call, attr)

    async def _begin_guest_transaction(self, lease: Lease) -> GuestTransaction:
        """Open a guest transaction whose commit may be a counted write."""
        self._alive()
        assert isinstance(self.inner, WorkflowSQL)
        inner = await self.inner.begin_guest_transaction(lease)
        return _DyingTransaction(self, inner, lease, counted=GUEST_COMMIT in self.counted)

    async def _call(self, method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        self._alive()
        return await method(*args, **kwargs)

    def _call_now(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._alive()
        return method(*args, **kwargs)

    async def _write(
        self, name: str, method: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
    ) -> Any:
        self._alive()
        write = _describe_write(len(self.writes), name, method, args, kwargs)
        if self._only_task is not None and write.task_id != self._only_task:
            return await method(*args, **kwargs)
        self.writes.append(write)
        if self._on_write is not None:
            self._on_write(write)
        fatal = write.number == self.crash_at
        if fatal and not self.after:
            self.crashed = True
            self._on_crash()
        result = await method(*args, **kwargs)
        if fatal:
            self.crashed = True
            self._on_crash()
        return result


class _DyingTransaction:
    """A guest transaction of a `CrashingStore`: it dies with the process.

    Its `commit` is a counted write (when `counted`). Once the process is dead, the
    transaction is rolled back before the call fails, as the database does when a
    dead process's connection drops: the transaction must not hold its locks (on
    SQLite, the database's write lock) against the process that resumes the task.
    """

    def __init__(
        self, owner: CrashingStore, inner: GuestTransaction, lease: Lease, *, counted: bool
    ) -> None:
        self._owner = owner
        self._inner = inner
        self._lease = lease
        self._counted = counted

    async def _alive(self) -> None:
        if self._owner.crashed:
            await self.rollback()
            self._owner._alive()

    async def execute(
        self, sql: str, params: Sequence[GuestValue], *, max_bytes: int
    ) -> GuestResult:
        """Run one statement, if the process is alive."""
        await self._alive()
        return await self._inner.execute(sql, params, max_bytes=max_bytes)

    async def commit(self, events: Sequence[Event], logs: Sequence[LogChunk]) -> None:
        """Commit: a counted write, at which the process may die."""
        await self._alive()
        if not self._counted:
            await self._inner.commit(events, logs)
            return
        try:
            await self._owner._write(GUEST_COMMIT, self._guest_commit, self._lease, events, logs)
        except SimulatedCrash:
            await self.rollback()  # a no-op if the commit went through
            raise

    async def _guest_commit(
        self, lease: Lease, events: Sequence[Event], logs: Sequence[LogChunk]
    ) -> None:
        # Named like `append`'s parameters, so that `_describe_write` reads them.
        await self._inner.commit(events, logs)

    async def rollback(self) -> None:
        """Roll back: allowed even when dead, as it only releases the transaction."""
        await self._inner.rollback()


def _describe_write(
    number: int,
    name: str,
    method: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Write:
    """What a counted call writes, read from its arguments by parameter name."""
    bound = inspect.signature(method).bind(*args, **kwargs).arguments
    lease = bound.get("lease")
    task_id = lease.task_id if isinstance(lease, Lease) else int(bound.get("task_id", -1))
    events: Sequence[Event] = bound.get("events", ())
    logs: Sequence[LogChunk] = bound.get("logs", ())
    outcome = bound.get("outcome")
    return Write(
        number=number,
        method=name,
        task_id=task_id,
        events=tuple(e.index for e in events),
        logs=len(logs),
        outcome=None if outcome is None else type(outcome).__name__,
    )


def from_environment(store: Store, environ: Mapping[str, str] | None = None) -> Store:
    """Wrap `store` in a process-killing `CrashingStore` if the environment asks for it.

    Off unless `DURABLE_TEST_CRASH_AT` is set (to a write number, from 0). Then the
    process kills itself with SIGKILL at that write, before it is made or right after
    it commits, as `DURABLE_TEST_CRASH_POINT` (`before`, the default, or `after`) says.

    Raises:
        ConfigurationError: either variable has a value that makes no sense.
    """
    env = os.environ if environ is None else environ
    raw = env.get(CRASH_AT_ENV, "").strip()
    if not raw:
        return store
    try:
        crash_at = int(raw)
    except ValueError:
        crash_at = -1
    if crash_at < 0:
        raise ConfigurationError(f"{CRASH_AT_ENV} must be a write number >= 0, not {raw!r}")
    point = env.get(CRASH_POINT_ENV, "before").strip().lower() or "before"
    if point not in ("before", "after"):
        raise ConfigurationError(f"{CRASH_POINT_ENV} must be 'before' or 'after', not {point!r}")
    task = env.get(CRASH_TASK_ENV, "").strip()
    if task and not task.isdigit():
        raise ConfigurationError(f"{CRASH_TASK_ENV} must be a task id, not {task!r}")
    return CrashingStore(
        store,
        crash_at=crash_at,
        after=point == "after",
        on_crash=kill_self,
        on_write=report_write,
        only_task=int(task) if task else None,
    )


def report_write(write: Write) -> None:
    """Print a counted write on stderr (`WRITE_REPORT` and its description), flushed.

    What a test reads to learn which writes a killed process attempted: a process's
    group commit may batch differently from a reference run's.
    """
    sys.stderr.write(f"{WRITE_REPORT}{write.number}: {write.describe()}\n")
    sys.stderr.flush()


def install() -> Callable[[], None]:
    """Have every store `open_store` opens from now on pass through `from_environment`
    (the environment is read at each open). Returns the remover."""
    from durable.storage.open import add_store_wrapper

    return add_store_wrapper(_from_environment_now)


def _from_environment_now(store: Store) -> Store:
    return from_environment(store)
