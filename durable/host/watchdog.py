"""Stopping a guest that runs without making host calls: epoch deadline callbacks.

Every store gets a short epoch deadline. When it passes (the engine's epoch ticks every
10 ms), wasmtime calls back here on the guest's thread, and we either give the guest
another slice or trap it, for one of three reasons: the task was cancelled and the
grace period for reaching its next durable call is over; the worker is shutting down;
or the task's own timeout has passed. A slice that goes on also commits guest output
that has waited long enough (`AttemptContext.on_tick`). Guests run in parallel on their
own threads, so a guest in an endless loop costs one thread and one core, never the
others' progress.

wasmtime-py does not wrap the deadline callback: `durable.host._wasmtime` registers it
through wasmtime-py's private C bindings. Without them (the fallback, public API only)
the deadline traps, so it cannot give a slice more. Then a store's deadline is one tick
ahead and the engine's epoch moves only when a guest must stop: the runtime's ticker
calls `sweep` every slice, off the guest's thread, which commits due output of guests
that are not in a host call, and for a guest that must stop records why and moves the
epoch. Every guest of the engine then traps at its next epoch check; those with no
reason of their own are marked `PREEMPTED` and released (run again later from their
history, as after a crash, with what they recorded committed). A stop costs the other
running guests a replay: rare (cancel or timeout of a guest in a CPU loop, shutdown),
and the price of the public API.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import wasmtime

from durable.host import _wasmtime
from durable.host.context import AttemptContext

#: Ticks (of 10 ms) between checks: how late a stop can come, at most.
SLICE_TICKS = 10
#: How long a running guest gets after shutdown begins before it is stopped in place.
SHUTDOWN_GRACE = 2.0
#: Seconds between the fallback's sweeps (`SLICE_TICKS` ticks of 10 ms).
SLICE_SECONDS = SLICE_TICKS * 0.01
#: Fallback: why a guest that had no reason to stop was stopped with the others.
PREEMPTED = "preempted"
#: Whether deadlines call back (else the fallback: see the module docstring).
CALLBACKS = _wasmtime.FAST


class _Armed:
    """Fallback: an attempt whose store is armed, on the engine whose epoch stops it, and
    a lock held by its host calls and by a sweep that commits its output (so that a
    commit never interleaves with a host call's recording)."""

    __slots__ = ("engine", "lock")

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.engine = engine
        self.lock = threading.Lock()


_ARMED: weakref.WeakKeyDictionary[AttemptContext, _Armed] = weakref.WeakKeyDictionary()
# Fallback: held while a store is armed and while a sweep marks guests and moves the
# epoch, so that every store armed before a move is marked, and none armed after it.
_ARMING = threading.Lock()


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


def install(store: wasmtime.Store, ctx: AttemptContext, engine: wasmtime.Engine) -> object:
    """Arm `store` (of `engine`) with the watchdog for `ctx`. Keep the returned object
    alive as long as the store: it owns the callback wasmtime calls."""
    if not CALLBACKS:
        with _ARMING:
            _ARMED[ctx] = _Armed(engine)
            store.set_epoch_deadline(1)  # trap at the first move of the epoch (see `sweep`)
        return ctx

    def on_deadline(delta: Any, kind: Any) -> int:
        # Runs inside wasmtime, on the guest's thread: nothing may raise out of it (ctypes
        # would return a null error with `delta` and `kind` unset).
        try:
            reason = interruption(ctx)
            if reason is not None:
                ctx.stopped_by = reason
                return _wasmtime.trap_error(f"durable: guest stopped ({reason})")
            try:
                ctx.on_tick()  # commit output that has waited (durable.host.context)
            except BaseException as exc:  # parked, like a host function's: the guest traps
                ctx.unwinding = exc
                return _wasmtime.trap_error("durable: unwinding")
        except BaseException:
            pass  # give the guest another slice; the next check may succeed
        delta[0] = SLICE_TICKS
        kind[0] = _wasmtime.DEADLINE_CONTINUE
        return 0

    keep = _wasmtime.on_epoch_deadline(store, on_deadline)
    store.set_epoch_deadline(SLICE_TICKS)
    return keep


@contextmanager
def host_call(ctx: AttemptContext) -> Iterator[None]:
    """Fallback: hold `ctx`'s lock for the length of one host call."""
    armed = _ARMED.get(ctx)
    if armed is None:
        yield
        return
    with armed.lock:
        yield


def sweep(running: Iterable[AttemptContext], engine: wasmtime.Engine) -> None:
    """Fallback, every slice, off the guests' threads: commit due output, and stop the
    guests that must stop (with every other guest of `engine`, see the module docstring)."""
    stop = False
    for ctx in running:
        armed = _ARMED.get(ctx)
        if armed is None or armed.engine is not engine:
            continue  # its store is not armed yet: the next sweep looks at it
        if ctx.stopped_by is not None:
            continue  # the epoch moved for it already: it traps on its next check
        reason = interruption(ctx)
        if reason is not None:
            ctx.stopped_by = reason
            stop = True
            continue
        if not armed.lock.acquire(blocking=False):
            continue  # in a host call, which commits what is due itself
        try:
            ctx.on_tick()
        except BaseException as exc:  # parked, as on the fast path: the guest traps
            ctx.unwinding = exc
            stop = True
        finally:
            armed.lock.release()
    if stop:
        with _ARMING:
            # Every guest armed on this engine traps at its next check: say why, where it
            # has no reason of its own. One armed after the move is not stopped by it.
            for ctx, armed in list(_ARMED.items()):
                if armed.engine is engine and ctx.stopped_by is None and ctx.unwinding is None:
                    ctx.stopped_by = PREEMPTED
            engine.increment_epoch()
