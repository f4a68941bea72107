"""The component's export: run an entry function on a task's input.

`durable build` generates the component's top-level module, which imports this one
first (so the standard library is patched before the workflow's own imports), then the
workflow module, then hands the module to `bind`. The shared interpreter component
binds nothing: its first `run` imports the task's workflow from the host (`_source`).
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


def _load_source() -> None:
    """In the shared interpreter, import the task's workflow module (once per instance).

    After the reseed above: module-level randomness differs per task, as in `run`."""
    global _module
    if _module is None:
        _module = _source.load()


class WitWorld(wit_world.WitWorld):
    """The export componentize-py calls: `run(entry, input) -> result<string, error>`."""

    def run(self, entry: str, input: str) -> str:
        _state.in_step = False
        _state.ahead = []
        _info._reset()
        global _started
        if not _started:  # componentize-py has taken its copy; the workflow sees the real one
            _started = True
            random.seed = _seed
        # The interpreter's state was snapshotted at build time, so every task would
        # start with the same `random` state. Reseed from os.urandom, which the host
        # derives from this task's seed: a fresh sequence per task, the same on replay.
        _seed(int.from_bytes(os.urandom(32), "big"))
        try:
            _load_source()
            fn = resolve(entry, _module)
            result = fn(json.loads(input))
            try:
                return json.dumps(result, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"workflow result is not JSON-serialisable: {exc}") from None
        except (Exception, Cancelled) as exc:
            text = format_failure(exc)  # the user's paths, no SDK frames, a hint
            sys.stderr.write(text)
            sys.stderr.flush()
            raise Err(
                WorkflowError(kind=type(exc).__name__, message=str(exc), traceback=text)
            ) from None
