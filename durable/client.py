"""The Python client API: launch tasks, inspect them, follow their logs.

The CLI is a thin layer over this module. Everything is async; a `Client` wraps one
open `Store` and can be used as an async context manager::

    async with await Client.open("sqlite:///app.db") as client:
        workflow_hash = await client.register_file(Path("greet.py"))
        task = await client.launch(workflow_hash, name="greet", input="world")
        done = await client.wait(task.id, timeout=60)

A client launches and inspects tasks; a `durable.Worker` (in this process or another
one, on the same database) runs them.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread

from durable.bundle import decode as decode_bundle
from durable.bundle import is_bundle
from durable.client_queues import QueueClient, check_flow
from durable.client_schedules import ScheduleClient
from durable.core.limits import input_too_large
from durable.core.model import LogChunk, NewTask, Notification, RunInfo, Task, TaskState
from durable.core.status import StatusValue
from durable.errors import ConfigurationError, InputTooLargeError, NotFoundError
from durable.history import TaskHistory
from durable.host.config import HostConfig
from durable.loader import compile_for_machine, interpreter_name, local_interpreter, read_workflow
from durable.storage import Store, open_store
from durable.storage._end_watch import EndWatch
from durable.storage.base import EndSignals, RunStore
from durable.task_names import INTERPRETER_PREFIX, name_problem, reserved_name

if TYPE_CHECKING:  # the replayer loads wasmtime: only for `replay`, when it is called
    from durable.replayer import Replayer, ReplayReport

#: The longest pause between two looks at a task that `wait` and `follow` poll.
_MAX_POLL = 0.25
#: With a store that signals a task's end, the longest pause between two looks at it:
#: only a safety net for a wake-up that was lost (a dropped datagram or connection).
_END_FALLBACK = 1.0
#: Log chunks `follow` reads at a time (a worker commits at most about 1 MiB per chunk).
_LOG_PAGE = 8


#: `Client.fork`'s default input: the original task's.
_KEEP: Any = object()


def encode_input(value: Any, *, max_bytes: int) -> str:
    """`value` as the JSON text a task stores, if it is within `max_bytes`.

    Raises:
        InputTooLargeError: the JSON text is longer than `max_bytes` bytes.
        TypeError: `value` is not JSON-serialisable.
    """
    text = json.dumps(value)
    reason = input_too_large(text, max_bytes)
    if reason is not None:
        raise InputTooLargeError(reason)
    return text


class Client(ScheduleClient, QueueClient):
    """A handle on a durable database for launching and inspecting tasks.

    Args:
        store: the open database.
        max_input_bytes: the largest input `launch` accepts, as JSON text; the
            workers' payload limit (`HostConfig.max_payload_bytes`) by default.
    """

    def __init__(self, store: Store, *, max_input_bytes: int | None = None) -> None:
        """Wrap an open store; `Client.open` opens one by URL."""
        self.store = store
        # The store `_watch_end` last asked for end signals, and its answer.
        self._signals: object = None
        self._has_signals = False
        self.max_input_bytes = (
            HostConfig().max_payload_bytes if max_input_bytes is None else max_input_bytes
        )

    @classmethod
    async def open(
        cls, url: str | None = None, *, migrate: bool = True, max_input_bytes: int | None = None
    ) -> Client:
        """Open the database at `url` (default: DURABLE_DATABASE_URL, or the local file)."""
        return cls(await open_store(url, migrate=migrate), max_input_bytes=max_input_bytes)

    async def close(self) -> None:
        """Close the underlying store."""
        await self.store.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def register(self, wasm: bytes, *, name: str | None = None, compile: bool = True) -> str:
        """Store a workflow binary; return its SHA-256 hex. Idempotent.

        With `compile` (the default), the binary is first compiled, in a separate
        process, into this machine's cache (`DURABLE_CACHE_DIR`): workers here then
        start its tasks in milliseconds, and a binary that is not a workflow component
        is refused before it is stored. That takes seconds the first time, and waits
        in a thread. Pass `compile=False` on a machine that runs no workers.

        Raises:
            ComponentError: `wasm` is not a workflow component (with `compile`).
            ConfigurationError: `name` is one of durable's own (`durable-interpreter-...`).
        """
        if name is not None and reserved_name(name):
            raise ConfigurationError(
                f"cannot register a workflow as {name!r}: names starting with"
                f" {INTERPRETER_PREFIX!r} are durable's own"
            )
        if is_bundle(wasm):  # a Python workflow's source: its interpreter goes first
            await self._register_interpreter(decode_bundle(wasm).interpreter, compile=compile)
        elif compile:
            await anyio.to_thread.run_sync(compile_for_machine, wasm)
        return await self.store.put_workflow(wasm, name=name)

    async def _register_interpreter(self, digest: str, *, compile: bool) -> None:
        """Store the interpreter component a bundle names, unless the store has it.

        Stored once per version of durable, under a name (`interpreter_name`) whose
        lookup is the check, so a run does not read 40 MB to find it there already.
        """
        name = interpreter_name(digest)
        try:
            if await self.store.find_workflow(name) == digest:
                return
        except NotFoundError:
            pass
        wasm = await anyio.to_thread.run_sync(local_interpreter, digest)
        if compile:
            await anyio.to_thread.run_sync(compile_for_machine, wasm)
        await self.store.put_workflow(wasm, name=name)

    async def register_file(
        self, path: Path, *, name: str | None = None, compile: bool = True
    ) -> str:
        """Build a `.py` workflow (cached by content) or read a `.wasm` one, and store it.

        The build runs in a thread, so the event loop carries on meanwhile. Returns the
        binary's SHA-256 hex; `name` defaults to the file's stem. `compile`: as for
        `register`.

        Raises:
            ConfigurationError: the file is missing, or neither Python nor wasm.
            BuildError: the Python workflow does not build.
            ComponentError: the binary is not a workflow component (with `compile`).
        """
        wasm, _kind = await anyio.to_thread.run_sync(read_workflow, Path(path))
        return await self.register(wasm, name=name or Path(path).stem, compile=compile)

    async def launch(
        self,
        workflow_hash: str,
        *,
        name: str,
        input: Any = None,
        entry: str = "",
        idempotency_key: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the task's own timeout, stored
        queue: str | None = None,
        queue_key: str | None = None,
        priority: int | None = None,
        debounce_key: str | None = None,
        debounce: float = 0.0,
    ) -> Task:
        """Enqueue a task running `workflow_hash` on `input` (any JSON value).

        Args:
            workflow_hash: a binary stored with `register` or `register_file`.
            name: a label for the task; need not be unique.
            input: the entry function's argument, any JSON-serialisable value.
            entry: the entry function; "" means the workflow's default.
            idempotency_key: launching again with the same key returns the task the
                first launch created, unchanged, instead of creating another.
            timeout: seconds from now after which the task fails if it has not ended.
            queue: the queue it waits in for a slot (`set_queue`: its limits).
            queue_key: its key in the queue, for the per-key limit (a tenant, say).
            priority: higher starts first within its queue (default: the queue's).
            debounce_key, debounce: the task waits `debounce` seconds before it may
                start; launching again with the same key meanwhile gives the waiting
                task the new input and restarts its wait, and returns it.

        Raises:
            ConfigurationError: `name` is empty, too long, or not one line of printable
                text (see `durable.task_names`); nothing is written.
            InputTooLargeError: `input` as JSON is over `max_input_bytes`; nothing is
                written.
            NotFoundError: no binary with this hash is stored.
        """
        problem = name_problem(name)
        if problem is not None:
            raise ConfigurationError(f"{problem}: {name[:60]!r}")
        spec = NewTask(
            name=name,
            workflow_hash=workflow_hash,
            input=encode_input(input, max_bytes=self.max_input_bytes),
            entry=entry,
            idempotency_key=idempotency_key,
            timeout=timeout,
            queue=queue,
            queue_key=queue_key,
            priority=priority,
            debounce_key=debounce_key,
            debounce=debounce,
        )
        check_flow(self.store, spec)
        return await self.store.create_task(spec)

    async def get(self, task_id: int) -> Task:
        """Return the task, or raise `TaskNotFoundError`."""
        return await self.store.get_task(task_id)

    async def list(
        self,
        *,
        states: Iterable[TaskState | str] | None = None,
        name: str | None = None,
        parent_id: int | None = None,
        limit: int = 100,
    ) -> builtins.list[Task]:
        """Return up to `limit` tasks, newest first.

        Args:
            states: only tasks in one of these states (`TaskState`s or their names).
            name: only tasks whose whole name matches this shell pattern (`*`, `?`,
                `[...]`), case-sensitive.
            parent_id: only the children of this task.
            limit: at most this many tasks (at least 1).

        Raises:
            ConfigurationError: an unknown state name, or a limit below 1.
        """
        if limit < 1:
            raise ConfigurationError(f"limit must be at least 1, not {limit}")
        wanted = None if states is None else [_state(s) for s in states]
        return await self.store.list_tasks(
            states=wanted or None, limit=limit, name_glob=name, parent_id=parent_id
        )

    async def history(self, task_id: int) -> TaskHistory:
        """Return the task and its recorded events: what `durable show --json` exports.

        Raises:
            TaskNotFoundError: no such task.
        """
        task = await self.store.get_task(task_id)
        events = await self.store.load_history(task_id)
        return TaskHistory(task=task, events=tuple(events))

    async def runs(self, task_id: int) -> builtins.list[RunInfo]:
        """The task's runs, oldest first: the ended ones (`durable.continue_as_new`),
        then the current one (its `ended_at` None). A task that never continued: one.

        Raises:
            TaskNotFoundError: no such task.
        """
        task = await self.store.get_task(task_id)
        ended = await self.store.list_runs(task_id) if isinstance(self.store, RunStore) else []
        events = await self.store.history_length(task_id)  # a count, not the events
        current = RunInfo(run=task.run, input=task.input, events=events, ended_at=None)
        return [*ended, current]

    async def run_history(self, task_id: int, run: int) -> TaskHistory:
        """The task with the events of one of its runs (ended or current).

        Raises:
            TaskNotFoundError: no such task.
            NotFoundError: the task has no such run.
        """
        task = await self.store.get_task(task_id)
        if run == task.run:
            return await self.history(task_id)
        if not 1 <= run < task.run or not isinstance(self.store, RunStore):
            raise NotFoundError(f"task {task_id} has no run {run} (it is at run {task.run})")
        (info,) = [r for r in await self.store.list_runs(task_id) if r.run == run]
        events = await self.store.load_run_history(task_id, run)
        # The task as that run saw it: its run number and input (which a replay needs:
        # the run's entropy derives from its number), and ready, as the run left it.
        as_run = dataclasses.replace(task, run=run, input=info.input, state=TaskState.READY)
        return TaskHistory(task=as_run, events=tuple(events))

    async def replay(
        self,
        task: int | TaskHistory,
        *,
        wasm: bytes | None = None,
        replayer: Replayer | None = None,
    ) -> ReplayReport:
        """Replay a task's history against its own code or new code; write nothing.

        This is the safe-upgrade check: a clean report means a worker running `wasm`
        would resume the task where it is. The guest runs in a thread.

        Args:
            task: a task id (its history is read from the store), or a history.
            wasm: the component to replay against; default: the binary the task runs,
                from the store.
            replayer: reuse this replayer's runtime and compiled components; default:
                a fresh one, closed afterwards.

        Raises:
            TaskNotFoundError: no such task.
            NotFoundError: the task's own binary is not in the store (and no `wasm`).
            ComponentError: `wasm` is not a workflow component.
        """
        from durable.replayer import Replayer

        history = task if isinstance(task, TaskHistory) else await self.history(task)
        own = replayer is None
        active = replayer or Replayer()
        try:
            if wasm is None and not active.is_compiled(history.task.workflow_hash):
                wasm = await self.store.get_workflow(history.task.workflow_hash)
            if wasm is not None and is_bundle(wasm):  # its interpreter, from the store too
                digest = decode_bundle(wasm).interpreter
                if not active.is_compiled(digest):
                    interpreter = await self.store.get_workflow(digest)
                    await anyio.to_thread.run_sync(active.add_interpreter, digest, interpreter)
            return await anyio.to_thread.run_sync(active.replay, history, wasm)
        finally:
            if own:
                active.close()

    async def notify(self, task_id: int, event: str, data: Any = None) -> Notification:
        """Send a notification (any JSON value as `data`) to a task.

        Raises:
            TaskNotFoundError: no such task.
            InvalidStateError: the task has ended.
        """
        return await self.store.notify(task_id, event, json.dumps(data))

    async def cancel(self, task_id: int) -> Task:
        """Cancel a task and its unfinished children.

        A waiting task is cancelled at once; a running one is stopped promptly, after
        its workflow has had the chance to run cleanup steps. Returns the task.

        Raises:
            TaskNotFoundError: no such task.
            InvalidStateError: the task has already ended.
        """
        return await self.store.request_cancel(task_id)

    async def logs(self, task_id: int, *, after_seq: int = 0) -> builtins.list[LogChunk]:
        """Return the task's output so far."""
        await self.store.get_task(task_id)  # a clear error for an unknown id
        return await self.store.read_logs(task_id, after_seq=after_seq)

    async def status(self, task_id: int) -> dict[str, Any]:
        """The task's status values (`durable.set_status` in the workflow): the latest
        value of each key, decoded from JSON, by key.

        A value shows as soon as the event that set it is committed, while the task
        runs, and stays after it ends.

        Raises:
            TaskNotFoundError: no such task.
        """
        return {v.key: json.loads(v.value) for v in await self.status_values(task_id)}

    async def status_values(self, task_id: int) -> builtins.list[StatusValue]:
        """The task's status values as stored (JSON text, position, time), by key.

        Raises:
            TaskNotFoundError: no such task.
        """
        await self.store.get_task(task_id)  # a clear error for an unknown id
        return await self.store.read_status(task_id)

    async def follow_status(
        self, task_id: int, *, key: str | None = None, poll: float = 0.05
    ) -> AsyncIterator[StatusValue]:
        """Yield each status value (only `key`'s, if given) as it is set, until the
        task ends: first the values set so far, then every later change.

        Polled, from every `poll` seconds up to every 0.25 s (the task's end is
        signalled, when the store can). Values set between two looks show only as the
        last one of them (what is kept is the latest value).

        Raises:
            TaskNotFoundError: no such task.
        """
        # A change is a new write (its time and value), not a new position: every run of
        # a task that continues as new starts again at position 0, and a value carried
        # over to the next run changes its position to -1 without being set again.
        seen: dict[str, tuple[datetime, str]] = {}
        pause, ended = poll, False
        async with self._watch_end(task_id) as watch:
            while True:
                changed = [
                    v
                    for v in await self.status_values(task_id)
                    if (key is None or v.key == key) and seen.get(v.key) != (v.updated_at, v.value)
                ]
                for value in sorted(changed, key=lambda v: (v.updated_at, v.position)):
                    seen[value.key] = (value.updated_at, value.value)
                    yield value
                if changed:
                    pause = poll
                if ended:
                    return
                if (await self.store.get_task(task_id)).state.is_terminal:
                    ended = True  # its last values commit with its end: one more look
                    continue
                await self._await_output(task_id, pause, watch)  # its end is signalled
                pause = min(pause * 2, _MAX_POLL)

    async def follow(
        self, task_id: int, *, poll: float = 0.05, until_end: bool = True
    ) -> AsyncIterator[LogChunk]:
        """Yield the task's output as it is written, until the task ends.

        The log is read a page at a time, so memory stays bounded for a log of any size.
        While nothing new is logged, the store is asked again after `poll` seconds,
        backing off to 0.25 s: output shows about that long after a worker commits it
        (which it does within `HostConfig.output_flush_interval` of the guest's print).
        With `until_end=False`, stop at the end of what is logged now.

        Raises:
            TaskNotFoundError: no such task.
        """
        await self.store.get_task(task_id)  # a clear error for an unknown id
        seq, pause, ended = 0, poll, False
        async with self._watch_end(task_id) as watch:
            while True:
                chunks = await self.store.read_logs(task_id, after_seq=seq, limit=_LOG_PAGE)
                for chunk in chunks:
                    seq = chunk.seq
                    yield chunk
                if chunks:
                    pause = poll
                    continue
                if ended or not until_end:
                    return
                if (await self.store.get_task(task_id)).state.is_terminal:
                    ended = True  # its last output commits with its end: one more look
                    continue
                await self._await_output(task_id, pause, watch)
                pause = min(pause * 2, _MAX_POLL)

    async def _await_output(
        self,
        task_id: int,
        timeout: float,  # noqa: ASYNC109
        watch: EndWatch | None = None,
    ) -> None:
        """Return when `task_id` may have logged more or ended, or after `timeout` seconds.

        Its end is signalled (`watch`, when the store has end signals); new output is
        not yet: it is found by the next look.
        """
        if watch is None:
            await anyio.sleep(timeout)
        else:
            await watch.wait(timeout)

    @asynccontextmanager
    async def _watch_end(self, task_id: int) -> AsyncIterator[EndWatch | None]:
        """The store's signal of `task_id`'s end (None: the store has none; poll)."""
        store = self.store
        if self._signals is not store:
            # Asked once per store: a protocol `isinstance` looks at its every method.
            self._signals, self._has_signals = store, isinstance(store, EndSignals)
        if self._has_signals:
            async with cast("EndSignals", store).watch_end(task_id) as watch:
                yield watch
        else:
            yield None

    async def wait(
        self,
        task_id: int,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the API the issue asks for
        poll: float = 0.02,
    ) -> Task:
        """Wait until the task ends; return it.

        The store says when the task ends (in this process, through SQLite's wake-up
        sockets or Postgres's LISTEN from another), and the task is read again then
        (unless the signal carried the ended row: an embedded worker's own end on
        SQLite), and at least every second in case a wake-up was lost. A store without end
        signals is polled, from every `poll` seconds up to every 0.25 s.

        Raises:
            TaskNotFoundError: no such task.
            TimeoutError: the task had not ended after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = poll
        # Watching before the first read: an end committed after it is never missed.
        async with self._watch_end(task_id) as watch:
            while True:
                task = await self.store.get_task(task_id)
                if task.state.is_terminal:
                    return task
                if watch is not None:
                    pause = _END_FALLBACK
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise TimeoutError(
                            f"task {task_id} is still {task.state.value} after {timeout:g}s"
                        )
                    pause = min(pause, left)
                if watch is None:
                    await anyio.sleep(pause)
                    pause = min(pause * 2, _MAX_POLL)
                else:
                    await watch.wait(pause)
                    if watch.task is not None:  # the ended row came with the signal
                        return watch.task

    async def migrate(self) -> int:
        """Apply every pending schema migration; return the schema version."""
        return await self.store.migrate()

    async def schema_version(self) -> tuple[int, int]:
        """Return `(current, latest)`: the database's schema version and this code's."""
        return await self.store.schema_version()

    async def fork(
        self,
        task_id: int,
        *,
        at: int,
        workflow_hash: str | None = None,
        input: Any = _KEEP,
        run: int | None = None,
    ) -> Task:
        """A new task whose history is the first `at` events of `task_id`, run from
        there by a worker, on the same binary or `workflow_hash`, with the same input
        or `input`. The original is untouched; `task_origin` links the new task to it.
        With `run`, from that run of the task (`durable.continue_as_new`; default:
        its current run), whose input is then the default.

        Raises:
            TaskNotFoundError: no such task.
            ConflictError: `at` is outside the run's history, or no such run.
            ConfigurationError: the store cannot fork (a custom store without the role).
        """
        from durable.storage.fork import ForkStore

        store = self.store
        if not isinstance(store, ForkStore):
            raise ConfigurationError("this store cannot fork tasks")
        origin = await self.store.get_task(task_id)
        text = None if input is _KEEP else encode_input(input, max_bytes=self.max_input_bytes)
        return await store.fork_task(
            task_id, at=at, workflow_hash=workflow_hash or origin.workflow_hash, input=text, run=run
        )

    async def retry(self, task_id: int) -> Task:
        """Re-run a failed task from its last clean event, on its own code, as a new task
        (`durable.core.fork.retry_at` says where that is).

        Raises:
            TaskNotFoundError: no such task.
            InvalidStateError: the task has not failed.
        """
        from durable.core.fork import retry_at
        from durable.errors import InvalidStateError

        history = await self.history(task_id)
        if history.task.state is not TaskState.FAILED:
            raise InvalidStateError(
                f"task {task_id} is {history.task.state.value}: only a failed task is retried"
            )
        return await self.fork(task_id, at=retry_at(history.events, history.task.error))


def _state(value: TaskState | str) -> TaskState:
    try:
        return TaskState(value)
    except ValueError:
        names = ", ".join(s.value for s in TaskState)
        raise ConfigurationError(f"unknown task state {value!r} (one of {names})") from None
