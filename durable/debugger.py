"""`durable debug`: replay a task's history in CPython itself, so pdb and IDEs work.

The workflow's source runs in this interpreter with the guest SDK (`durable/guest/sdk`)
and the host's replay-only attempt (`AttemptContext`, as `durable replay` uses it,
around the same `ReplayMachine`). Where the component would call a WIT import, the SDK
here calls a stand-in module (`wit_world.imports.*`) that makes the host call directly:
every durable call (child tasks, HTTP requests and SQL transactions too:
`durable.debugger_effects`) is answered from the history, and the first call past its
end stops the run, as in `durable replay`. Time (`time.time`) and randomness (`os.urandom`) are
answered by the same machine, so the workflow sees the values it saw when it ran.

The SDK and the host are both the package `durable`. So the host's modules are
imported first, then moved out of the way in `sys.modules` (they keep working: each
holds its own globals), and `import durable` in the workflow finds the SDK. This is
one-way: the process is for debugging only and exits afterwards.

A host exception (a divergence, the end of the history) must not be caught by the
workflow's `except Exception`: as the component is trapped, the stand-ins park it and
raise `_Unwind`, a `BaseException`, which the SDK does not catch.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from durable.core.signals import ContinueAsNew, HistoryExhausted
from durable.debugger_effects import Datetime, effect_modules
from durable.errors import ConfigurationError, HostError, NondeterminismError
from durable.history import TaskHistory
from durable.host import continuation, coordination, patch, status
from durable.host.config import HostConfig
from durable.host.context import AttemptContext
from durable.replayer import replay_attempt

__all__ = ["DebugEnd", "debug_history"]

SDK_DIR = Path(__file__).parent / "guest" / "sdk"
#: The `time` functions the debug session replaces (here and in the SDK's `_runtime`).
_TIME_NAMES = (
    "time",
    "time_ns",
    "sleep",
    "monotonic",
    "monotonic_ns",
    "perf_counter",
    "perf_counter_ns",
)


class _Unwind(BaseException):
    """Unwinds the workflow after a host exception, past its `except Exception`."""


@dataclasses.dataclass(frozen=True, slots=True)
class DebugEnd:
    """How a debug replay ended: one line to print, and whether it was clean."""

    line: str
    clean: bool


class _Record:
    """A WIT record as the SDK reads it: attributes."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class _Err(Exception):
    """`componentize_py_types.Err`: an `err` result, raised."""

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value


def _datetime(ns: int) -> _Record:
    return _Record(seconds=ns // 1_000_000_000, nanoseconds=ns % 1_000_000_000)


def _stand_ins(ctx: AttemptContext, parked: list[BaseException]) -> dict[str, types.ModuleType]:
    """The `wit_world` and `componentize_py_types` modules, calling the host directly."""

    def host(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            try:
                return fn(*args)
            except (_Err, _Unwind):
                raise
            except BaseException as exc:
                parked.append(exc)
                raise _Unwind() from None

        return call

    def err_or(value: Any) -> Any:
        if isinstance(value, str):
            raise _Err(value)
        return value

    def info() -> _Record:
        task = ctx.task
        return _Record(
            id=task.id,
            name=task.name,
            entry=task.entry,
            input=task.input,
            created_at=_datetime(int(task.created_at.timestamp() * 1e9)),
            attempt=ctx.attempt,
        )

    def wait(event: str | None, timeout_ns: int | None) -> _Record | None:
        got = coordination.wait_notification(ctx, event, timeout_ns)
        if got is None:
            return None
        created = _datetime(int(got["created_at"] * 1e9))
        return _Record(event=got["event"], data=got["data"], created_at=created)

    def send(task_id: int, event: str, data: str) -> None:
        refused = coordination.send_notification(ctx, task_id, event, data)
        if refused is not None:  # the SDK reads the case from the type's name
            case = "".join(part.title() for part in refused.split("-"))
            raise _Err(type(f"SendError_{case}", (), {"value": None})())

    def enter_checked(label: str, digest: str | None) -> str | None:
        if ctx.cancelled():  # `task.cancelled`, then `step.enter`, as the host does
            raise _Err(None)
        return ctx.step_enter(label, digest)

    def take_ahead() -> None:
        raise HostError("step.take-ahead: no step handed out by step.enter-ahead is waiting")

    def module(name: str, **funcs: Any) -> types.ModuleType:
        mod = types.ModuleType(name)
        for key, value in funcs.items():
            setattr(
                mod, key, host(value) if callable(value) and not isinstance(value, type) else value
            )
        return mod

    class WitWorld:
        """The export's base class (the SDK's `_runtime.WitWorld` subclasses it)."""

    class WorkflowError(Exception):
        def __init__(self, *, kind: str, message: str, traceback: str) -> None:
            super().__init__(message)
            self.kind, self.message, self.traceback = kind, message, traceback

    mods = {
        "wit_world.imports.task": module("task", info=info, cancelled=lambda: ctx.cancelled()),
        "wit_world.imports.step": module(
            "step",
            enter=ctx.step_enter,
            exit=ctx.step_exit,
            enter_checked=enter_checked,
            # No replay buffer here: every step is matched by `enter_checked`.
            enter_ahead=lambda label, digest, _max: (enter_checked(label, digest), ""),
            take_ahead=take_ahead,
        ),
        "wit_world.imports.timer": module(
            "timer",
            sleep=ctx.sleep,
            sleep_until=lambda d: ctx.sleep_until(d.seconds * 1_000_000_000 + d.nanoseconds),
        ),
        "wit_world.imports.notify": module(
            "notify",
            wait=wait,
            send=send,
        ),
        # The workflow's module is bound before `run` (below), so the SDK never asks.
        "wit_world.imports.source": module("source", get=lambda: None),
        "wit_world.imports.status": module(
            "status", set=lambda k, v: err_or(status.set_status(ctx, k, v))
        ),
        "wit_world.imports.patch": module(
            "patch",
            patched=lambda i: err_or(patch.patched(ctx, i)),
            deprecate=lambda i: err_or(patch.patched(ctx, i, deprecated=True) or None),
        ),
        "wit_world.imports.continuation": module(
            "continuation",
            continue_as_new=lambda i: err_or(continuation.continue_as_new(ctx, i)),
        ),
        "wit_world.imports.types": module("types", WorkflowError=WorkflowError, Datetime=Datetime),
        **effect_modules(ctx, _Err, host),
    }
    imports = types.ModuleType("wit_world.imports")
    for name, mod in mods.items():
        setattr(imports, name.rsplit(".", 1)[1], mod)
    world = types.ModuleType("wit_world")
    world.WitWorld = WitWorld  # type: ignore[attr-defined]
    world.imports = imports  # type: ignore[attr-defined]
    cpt = types.ModuleType("componentize_py_types")
    cpt.Err = _Err  # type: ignore[attr-defined]
    return {"wit_world": world, "wit_world.imports": imports, "componentize_py_types": cpt, **mods}


def debug_history(
    history: TaskHistory, source: Path, *, config: HostConfig | None = None
) -> DebugEnd:
    """Replay `history` with the workflow `source` in this interpreter (see the module
    docstring). Call it once per process: afterwards `durable` is the guest SDK."""
    if not source.is_file():
        raise ConfigurationError(f"{source}: no such file")
    ctx = replay_attempt(history, config or HostConfig())
    task = ctx.task
    parked: list[BaseException] = []
    # The host's modules move aside; the SDK and the stand-ins take their names.
    for name in [n for n in sys.modules if n == "durable" or n.startswith("durable.")]:
        sys.modules[f"_durable_host.{name}"] = sys.modules.pop(name)
    sys.modules.update(_stand_ins(ctx, parked))
    sys.path[:0] = [str(SDK_DIR), str(source.parent)]
    # What the component's WASI does: the wall clock and the random source are the
    # history's (monotonic readings come from the wall clock: the SDK's `_runtime`).
    saved = {name: getattr(time, name) for name in _TIME_NAMES}
    saved_urandom = os.urandom
    host_clock = _host(ctx, parked)
    time.time_ns = host_clock
    time.time = lambda: host_clock() / 1e9
    os.urandom = _host_random(ctx, parked)

    runtime = importlib.import_module("durable._runtime")  # patches the stdlib first
    spec = importlib.util.spec_from_file_location(source.stem, source)
    if spec is None or spec.loader is None:
        raise ConfigurationError(f"{source}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[source.stem] = module
    err = sys.modules["componentize_py_types"].Err
    try:
        spec.loader.exec_module(module)
        runtime.bind(module)
        result = runtime.WitWorld().run(task.entry, task.input)
        end = f"completes: {result}"
    except _Unwind:
        return _unwound(history, parked[0] if parked else None)
    except err as exc:
        end = f"fails: {exc.value.kind}: {exc.value.message}"
    finally:  # the host's own clocks again, for what runs at exit
        for name, fn in saved.items():
            setattr(time, name, fn)
        os.urandom = saved_urandom
    try:
        ctx.cursor.check_finished()
    except NondeterminismError as exc:
        return DebugEnd(f"task {task.id} diverges: {exc}", clean=False)
    return DebugEnd(
        f"task {task.id} replays cleanly ({len(history.events)} events), then {end}", True
    )


def _host(ctx: AttemptContext, parked: list[BaseException]) -> Callable[[], int]:
    def now_ns() -> int:
        try:
            return ctx.now_ns()
        except BaseException as exc:
            parked.append(exc)
            raise _Unwind() from None

    return now_ns


def _host_random(ctx: AttemptContext, parked: list[BaseException]) -> Callable[[int], bytes]:
    def urandom(n: int) -> bytes:
        return ctx.random_bytes(n)

    return urandom


def _unwound(history: TaskHistory, exc: BaseException | None) -> DebugEnd:
    task_id = history.task.id
    if isinstance(exc, HistoryExhausted):
        return DebugEnd(
            f"task {task_id} replays cleanly to event {exc.position - 1} "
            f"({len(history.events)} events), then goes on past the history, to {exc.label!r}",
            clean=True,
        )
    if isinstance(exc, NondeterminismError):
        return DebugEnd(f"task {task_id} diverges: {exc}", clean=False)
    if isinstance(exc, ContinueAsNew):
        return DebugEnd(
            f"task {task_id} replays cleanly ({len(history.events)} events), "
            f"then continues as new on {exc.input}",
            clean=True,
        )
    raise exc if exc is not None else RuntimeError("the workflow unwound with no host error")
