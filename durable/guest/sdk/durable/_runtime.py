"""The component's exports: run an entry function on a task's input, and (in the shared
interpreter) import a workflow ahead of its task.

`durable build` generates the component's top-level module, which imports this one
first (so the standard library is patched before the workflow's own imports), then the
workflow module, then hands the module to `bind`. The shared interpreter component
binds nothing: the host hands it the workflow's files through `prepare`, before the
first `run`, on a fresh instance in a task's attempt or ahead of any (a worker's pool of
instances). So the workflow module is imported before the task's reseed of `random`,
as in a standalone build, where it is imported at build time: a module-level draw
gives the same value on every instance, and the same on replay, whichever path made it.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from typing import Any

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import WorkflowError

from durable import _info, _source, _state, _stdio, _timers
from durable._errors import Cancelled
from durable._tracebacks import format_failure
from durable._workflows import resolve

_module: Any = None


def _monotonic() -> float:
    # The WASI monotonic clock is not recorded; derive monotonic readings from the
    # recorded wall clock so that code timing itself replays identically.
    return time.time()


def _monotonic_ns() -> int:
    return time.time_ns()


def _patch_stdlib() -> None:
    _stdio.install()  # a print of more than 8 KiB is written whole
    time.sleep = _timers.sleep
    time.monotonic = _monotonic
    time.perf_counter = _monotonic
    time.monotonic_ns = _monotonic_ns
    time.perf_counter_ns = _monotonic_ns


_patch_stdlib()

_seed = random.seed
_started = False


def _seed_before_first_run(a: Any = None, version: int = 2) -> None:
    """`random.seed` until the first `run`: a seed from the OS is skipped.

    componentize-py captures `random.seed` when the component is pre-initialised and
    calls it with no argument just before the first export call, so that the snapshot's
    state is not reused: 2,496 bytes of `os.urandom`, ten host calls on every task.
    `run` reseeds from the task's seed before any workflow code, so that state would
    never be read. An explicit seed still applies."""
    if a is None and not _started:
        return
    _seed(a, version)


random.seed = _seed_before_first_run


def bind(module: Any) -> None:
    """Remember the workflow module, to find its `main` when nothing is decorated."""
    global _module
    _module = module


def _start() -> None:
    """At the first export call: componentize-py has reseeded (or not) by now, so the
    workflow sees the real `random.seed`."""
    global _started
    if not _started:
        _started = True
        random.seed = _seed


def _failure(exc: BaseException) -> Err[WorkflowError]:
    """What an export returns for the workflow's exception, its traceback written out."""
    text = format_failure(exc)  # the user's paths, no SDK frames, a hint
    sys.stderr.write(text)
    sys.stderr.flush()
    return Err(WorkflowError(kind=type(exc).__name__, message=str(exc), traceback=text))


class WitWorld(wit_world.WitWorld):
    """The exports componentize-py calls: `run(entry, input) -> result<string, error>`
    and, in the shared interpreter, `prepare(source) -> result<_, error>`."""

    def prepare(self, source: Any) -> None:
        global _module
        _start()
        if _module is not None:
            raise AssertionError("prepare: this instance has imported its workflow already")
        try:
            _module = _source.load_given(source)
        except (Exception, Cancelled) as exc:
            raise _failure(exc) from None

    def run(self, entry: str, input: str) -> str:
        global _module
        _state.in_step = False
        _state.ahead = []
        _info._reset()
        _start()
        # The interpreter's state was snapshotted at build time, so every task would
        # start with the same `random` state. Reseed from os.urandom, which the host
        # derives from this task's seed: a fresh sequence per task, the same on replay.
        _seed(int.from_bytes(os.urandom(32), "big"))
        try:
            if _module is None:  # a host that did not `prepare`: ask for the source now
                _module = _source.load()
            fn = resolve(entry, _module)
            result = fn(json.loads(input))
            try:
                return json.dumps(result, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"workflow result is not JSON-serialisable: {exc}") from None
        except (Exception, Cancelled) as exc:
            raise _failure(exc) from None
