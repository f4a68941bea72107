"""Replaying a recorded history against a workflow component, with no side effects.

This is the safe-upgrade check behind `durable replay`: before new code runs a task
whose history an older version recorded, replay that history against the new
component and see whether it performs the same operations, in the same order, with the
same arguments. The guest runs in the ordinary host (`durable.host.Runtime`), in a
replay-only attempt (`AttemptContext(replay_only=True)`): every host call is answered
from the history, and the first call past its end stops the run with the
`HistoryExhausted` signal instead of doing anything. Nothing is written anywhere: the
attempt's sink refuses every call.

Two things are stricter here than in `AttemptContext` itself, both so that a check can
never touch the world:

* A step that starts past the end of the history stops the run before its body runs
  (a body is live code: an HTTP request inside it would be sent for real).
* A store call (send a notification, spawn a child, look at a child) can only come
  from new work, so the sink answers it by ending the run there, like a recorded call
  past the history; a write is a bug and raises `ReplayError`.

Rejected alternative: a pure re-implementation of the host's matching rules, run
without wasmtime. It would check a model of the workflow, not the workflow: only the
real component, in the real host, performs exactly the calls it would perform in a
worker.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from durable.bundle import decode as decode_bundle
from durable.bundle import is_bundle
from durable.bundle import kept as kept_bundle
from durable.core import ops
from durable.core.model import (
    Cancelled,
    Completed,
    ContinuedAsNew,
    Event,
    Failed,
    LogChunk,
    NewTask,
    Notification,
    Suspended,
    Task,
    TaskState,
)
from durable.core.side_writes import SideWrite
from durable.core.signals import HistoryExhausted
from durable.core.task_error import TaskError
from durable.errors import NondeterminismError, ReplayError
from durable.history import TaskHistory
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from durable.host.runtime import AttemptEnd, Runtime
from durable.loader import WorkflowBinary, load_workflow


class ReplayEnd(enum.StrEnum):
    """How a replay check ended."""

    COMPLETE = "complete"  # every event matched, then the workflow returned a result
    FAILED = "failed"  # every event matched, then the workflow raised or trapped
    CANCELLED = "cancelled"  # every event matched, then the workflow ended cancelled
    CONTINUES = "continues"  # every event matched; the workflow then went on to new work
    DIVERGED = "diverged"  # the workflow did something other than what was recorded


@dataclass(frozen=True, slots=True, kw_only=True)
class Divergence:
    """Where a replay first departed from its history (a `NondeterminismError`)."""

    index: int  # the event index where the workflow departed
    expected: str  # the operation the history recorded there
    found: str  # the operation the workflow performed instead


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayReport:
    """The outcome of replaying one history."""

    task_id: int  # the task whose history was replayed
    events: int  # how many events the history holds
    end: ReplayEnd  # see ReplayEnd
    divergence: Divergence | None = None  # set when `end` is DIVERGED
    next_operation: str | None = None  # CONTINUES: the first operation past the history
    result: str | None = None  # COMPLETE: the JSON text the workflow returned
    error: str | None = None  # FAILED, CANCELLED: JSON text {"kind","message","traceback"}
    # Whether the replay ended as the task did (same result, or same error kind and
    # message); None when the task had not ended, or the replay diverged.
    same_end: bool | None = None

    @property
    def clean(self) -> bool:
        """True when every recorded event matched."""
        return self.divergence is None

    @property
    def last_index(self) -> int:
        """The index of the last event that replayed cleanly (-1: none)."""
        return (self.divergence.index if self.divergence else self.events) - 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what `durable replay --json` prints)."""
        return {
            "task": self.task_id,
            "clean": self.clean,
            "events": self.events,
            "last_index": self.last_index,
            "end": self.end.value,
            "divergence": None if self.divergence is None else dataclasses.asdict(self.divergence),
            "next_operation": self.next_operation,
            "result": self.result,
            "error": self.error,
            "same_end": self.same_end,
        }


class Replayer:
    """Replays histories against workflow components, writing nothing.

    Holds a wasmtime `Runtime` (engine, linker and compiled-component cache); close it
    when done, or use it as a context manager. Replays block: from async code, run them
    in a thread (as `Client.replay` does).
    """

    def __init__(self, config: HostConfig | None = None, *, runtime: Runtime | None = None) -> None:
        self._own_runtime = runtime is None
        self.runtime = runtime or Runtime(config)

    def close(self) -> None:
        """Stop the runtime, if this replayer created it."""
        if self._own_runtime:
            self.runtime.close()

    def __enter__(self) -> Replayer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def load(self, path: Path) -> WorkflowBinary:
        """Build (`.py`) or read (`.wasm`) a workflow and check it is a component.

        Raises:
            ConfigurationError, BuildError, ComponentError: see `load_workflow`.
        """
        return load_workflow(path, self.runtime.cache)

    def is_compiled(self, workflow_hash: str) -> bool:
        """Whether `replay` can run `workflow_hash` without being given its bytes."""
        source = kept_bundle(self.runtime.cache.cache_dir, workflow_hash)
        return self.runtime.cache.cached(workflow_hash if source is None else source.interpreter)

    def add_interpreter(self, digest: str, wasm: bytes) -> None:
        """Compile (or find compiled) the interpreter component `digest`, given its bytes,
        for bundles that name it.

        Raises:
            ComponentError: `wasm` is not a workflow component.
        """
        self.runtime.cache.load(digest, wasm)

    def replay(self, history: TaskHistory, wasm: bytes | None = None) -> ReplayReport:
        """Replay `history` against `wasm` (default: the task's own workflow binary).

        Without `wasm`, the task's binary must already be compiled on this machine
        (`is_compiled`). Blocks until the guest ends.

        Raises:
            ComponentError: `wasm` is not a workflow component, or none was given and
                the task's binary is not compiled here.
            ReplayError: the replay attempted a write (a bug in the host).
        """
        source = None
        if wasm is None:
            source = kept_bundle(self.runtime.cache.cache_dir, history.task.workflow_hash)
        elif is_bundle(wasm):
            source = decode_bundle(wasm)
        if source is not None:  # a Python workflow's source, for its interpreter
            component = self.runtime.cache.load(source.interpreter)
        elif wasm is None:
            component = self.runtime.cache.load(history.task.workflow_hash)
        else:
            component = self.runtime.cache.load(hashlib.sha256(wasm).hexdigest(), wasm)
        ctx = replay_attempt(history, self.runtime.config)
        ctx.source = source
        end = self.runtime.run(component, ctx)
        return _report(history, ctx, end)


def replay_attempt(history: TaskHistory, config: HostConfig) -> AttemptContext:
    """A replay-only attempt of `history` whose sink refuses every store call (also
    what `durable debug` runs the workflow's Python source against)."""
    # The check must not time out or be told it is cancelled because of the task's
    # state now: what it replays is the history alone.
    task = dataclasses.replace(history.task, deadline_at=None, cancel_requested=False)
    sink = _RefusingSink()
    ctx = _ReplayContext(
        task=task,
        # What the next real attempt would see as `durable.info().attempt`.
        attempt=task.attempts + 1,
        history=history.events,
        sink=sink,
        config=config,
        replay_only=True,
    )
    sink.ctx = ctx
    return ctx


class _ReplayContext(AttemptContext):
    """A replay-only attempt that also stops before running a step's body past the
    history (see the module docstring)."""

    def step_enter(self, label: str, digest: str | None) -> str | None:
        payload = super().step_enter(label, digest)
        if payload is None:
            self.in_step = False
            raise HistoryExhausted(self.cursor.position, label)
        return payload


class _RefusingSink:
    """The sink of a replay check: no call reaches a store."""

    ctx: AttemptContext | None = None

    def _past_history(self, operation: str) -> HistoryExhausted:
        position = self.ctx.cursor.position if self.ctx is not None else -1
        return HistoryExhausted(position, operation)

    def write(
        self, events: Sequence[Event], logs: Sequence[LogChunk], writes: Sequence[SideWrite] = ()
    ) -> None:
        raise ReplayError(
            f"a replay check tried to write {len(events)} events and {len(logs)} log "
            "chunks: this is a bug in durable"
        )

    def next_notification(self, task_id: int, event: str | None) -> Notification | None:
        raise self._past_history(ops.NOTIFY_WAIT.label)

    def notify(self, task_id: int, event: str, data: str, key: str) -> str | None:
        raise self._past_history(ops.NOTIFY_SEND.label)

    def spawn(self, spec: NewTask) -> int:
        raise self._past_history(ops.CHILDREN_SPAWN.label)

    def find_workflow(self, name: str) -> str | None:
        raise self._past_history(ops.CHILDREN_SPAWN.label)

    def get_task(self, task_id: int) -> Task:
        raise self._past_history(ops.CHILDREN_JOIN.label)


def _report(history: TaskHistory, ctx: AttemptContext, end: AttemptEnd) -> ReplayReport:
    task_id, events = history.task.id, len(history.events)
    if end.exhausted is not None:
        return ReplayReport(
            task_id=task_id,
            events=events,
            end=ReplayEnd.CONTINUES,
            next_operation=end.exhausted.label,
            same_end=_same_end(history.task, ReplayEnd.CONTINUES, None, None),
        )
    outcome = end.outcome
    divergence = _divergence(ctx, outcome)
    if divergence is not None:
        return ReplayReport(
            task_id=task_id, events=events, end=ReplayEnd.DIVERGED, divergence=divergence
        )
    if isinstance(outcome, Completed):
        how, result, error = ReplayEnd.COMPLETE, outcome.result, None
    elif isinstance(outcome, Failed):
        how, result, error = ReplayEnd.FAILED, None, outcome.error
    elif isinstance(outcome, Cancelled):
        how, result, error = ReplayEnd.CANCELLED, None, outcome.error
    elif isinstance(outcome, Suspended | ContinuedAsNew):
        # A wait past the history (no events to match), or the start of the next run.
        how, result, error = ReplayEnd.CONTINUES, None, None
    else:
        raise ReplayError(f"task {history.task.id}: the replay ended unexpectedly ({outcome})")
    return ReplayReport(
        task_id=task_id,
        events=events,
        end=how,
        result=result,
        error=error,
        same_end=_same_end(history.task, how, result, error),
    )


def _divergence(ctx: AttemptContext, outcome: object) -> Divergence | None:
    """The `NondeterminismError` that ended the run, if one did."""
    parked = ctx.unwinding
    if isinstance(parked, NondeterminismError):  # raised inside a host call
        return Divergence(index=parked.index, expected=parked.expected, found=parked.found)
    if isinstance(outcome, Failed) and _kind(outcome.error) == "NondeterminismError":
        try:  # the workflow ended with history left over
            ctx.cursor.check_finished()
        except NondeterminismError as exc:
            return Divergence(index=exc.index, expected=exc.expected, found=exc.found)
    return None


def _same_end(task: Task, how: ReplayEnd, result: str | None, error: str | None) -> bool | None:
    if not task.state.is_terminal:
        return None
    if task.state is TaskState.COMPLETE:
        return how is ReplayEnd.COMPLETE and _json(result) == _json(task.result)
    if task.state is TaskState.CANCELLED:
        return how is ReplayEnd.CANCELLED
    if how is not ReplayEnd.FAILED:
        return False
    if task.error is None or error is None:
        return task.error is None and error is None
    recorded, now = TaskError.from_json(task.error), TaskError.from_json(error)
    return (recorded.kind, recorded.message) == (now.kind, now.message)


def _kind(error: str) -> str:
    return TaskError.from_json(error).kind


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text
