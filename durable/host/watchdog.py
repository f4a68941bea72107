"""Stopping a guest that runs without making host calls: epoch deadline callbacks.

Every store gets a short epoch deadline. When it passes (the engine's epoch ticks every
10 ms), wasmtime calls back here on the guest's thread, and we either give the guest
another slice or trap it, for one of three reasons: the task was cancelled and the
grace period for reaching its next durable call is over; the worker is shutting down;
or the task's own timeout has passed. A slice that goes on also commits guest output
that has waited long enough (`AttemptContext.on_tick`). Guests run in parallel on their
own threads, so a guest in an endless loop costs one thread and one core, never the
others' progress.

wasmtime-py does not wrap the deadline callback, so it is registered through the
C API that wasmtime-py ships (`wasmtime._bindings`).
"""

from __future__ import annotations

import ctypes
import time
from datetime import UTC, datetime

import wasmtime
from wasmtime import _bindings

from durable.host.context import AttemptContext

#: Ticks (of 10 ms) between checks: how late a stop can come, at most.
SLICE_TICKS = 10
#: How long a running guest gets after shutdown begins before it is stopped in place.
SHUTDOWN_GRACE = 2.0

_CALLBACK_TYPE = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[1]
_FINALIZER_TYPE = _bindings._wasmtime_store_epoch_deadline_callback.argtypes[3]
_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE


def interruption(ctx: AttemptContext, now: float | None = None) -> str | None:
    """Why the guest must stop now ("cancelled", "shutdown", "timeout"), or None."""
    now = time.monotonic() if now is None else now
    if ctx.cancel.is_set():
        if ctx.cancel_seen_at is None:
            ctx.cancel_seen_at = now
        elif now - ctx.cancel_seen_at >= ctx.config.cancel_grace:
            return "cancelled"
    if ctx.interrupt.is_set():
        if ctx.interrupt_seen_at is None:
            ctx.interrupt_seen_at = now
        elif now - ctx.interrupt_seen_at >= SHUTDOWN_GRACE:
            return "shutdown"
    deadline = ctx.task.deadline_at
    if deadline is not None and datetime.now(UTC) >= deadline:
        return "timeout"
    return None


def _trap(why: str) -> int:
    """A trap for wasmtime to raise in the guest (the error's ownership passes to it)."""
    error = wasmtime.WasmtimeError(f"durable: {why}")
    return ctypes.cast(error._consume(), ctypes.c_void_p).value or 0


def install(store: wasmtime.Store, ctx: AttemptContext) -> object:
    """Arm `store` with the watchdog for `ctx`. Keep the returned object alive as long
    as the store: it owns the callback wasmtime calls."""

    def on_deadline(_context: object, _data: object, delta: object, kind: object) -> int:
        # Runs inside wasmtime, on the guest's thread: nothing may raise out of it (ctypes
        # would return a null error with `delta` and `kind` unset).
        try:
            reason = interruption(ctx)
            if reason is not None:
                ctx.stopped_by = reason
                return _trap(f"guest stopped ({reason})")
            try:
                ctx.on_tick()  # commit output that has waited (durable.host.context)
            except BaseException as exc:  # parked, like a host function's: the guest traps
                ctx.unwinding = exc
                return _trap("unwinding")
        except BaseException:
            pass  # give the guest another slice; the next check may succeed
        delta[0] = SLICE_TICKS  # type: ignore[index]
        kind[0] = _CONTINUE  # type: ignore[index]
        return 0

    callback = _CALLBACK_TYPE(on_deadline)
    finalizer = _FINALIZER_TYPE()  # a null function pointer: nothing to free
    _bindings.wasmtime_store_epoch_deadline_callback(store.ptr(), callback, None, finalizer)
    store.set_epoch_deadline(SLICE_TICKS)
    return callback
