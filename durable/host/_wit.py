"""Helpers for defining host functions and building WIT values."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import component as wc

from durable.host import trampoline, watchdog
from durable.host.cancel_gate import gate
from durable.host.context import AttemptContext

#: How host functions find the attempt they serve (a thread-local lookup).
Current = Callable[[], AttemptContext]
#: A function that defines one interface's host functions on the linker root.
Definer = Callable[[wc.LinkerInstance, Current], None]


def guarded(current: Callable[[], AttemptContext], fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a host function so that no Python exception crosses into wasmtime.

    wasmtime-py's component callbacks catch only `Exception`, keep the last one in a
    process-wide global (shared by every guest thread), and crash the process on a
    `BaseException` such as our control signals. So a host function's exception is
    parked on its own attempt, and the guest is unwound with a plain trap; the runtime
    then re-raises the parked exception on the same thread.
    """

    def host_call(store: object, *args: Any) -> Any:
        try:
            if watchdog.CALLBACKS:
                return fn(store, *args)
            with watchdog.host_call(current()):  # the fallback's sweeps must wait
                return fn(store, *args)
        except BaseException as exc:
            raise parked(current, exc) from None

    return host_call


def parked(current: Callable[[], AttemptContext], exc: BaseException) -> wasmtime.WasmtimeError:
    """What `guarded` does with a host function's exception: park it on its attempt.
    Returns the error to raise in its place (wasmtime turns it into a trap)."""
    with contextlib.suppress(BaseException):  # no attempt: only through a host bug
        current().unwinding = exc
    return wasmtime.WasmtimeError(f"durable: unwinding ({type(exc).__name__})")


def add_funcs(
    inst: wc.LinkerInstance,
    current: Callable[[], AttemptContext],
    funcs: dict[str, Callable[..., Any]],
) -> None:
    """Define each host function of an interface instance, guarded, on the fast trampoline.

    A function that starts something new stops a guest that ignores a cancellation
    (`durable.host.cancel_gate`).
    """
    for name, fn in funcs.items():
        trampoline.add_func(inst, name, guarded(current, gate(name, current, fn)))


def record(**fields: Any) -> wc.Record:
    """A component record; keyword names use `_` where WIT uses `-`."""
    rec = wc.Record()
    for name, value in fields.items():
        setattr(rec, name.replace("_", "-"), value)
    return rec
