"""`wasi:clocks/monotonic-clock`, derived: the attempt's virtual clock and ready timers.

The readings come from `durable.core.virtual_clock` (the rule is there). The timers
are the awkward part: `subscribe-duration` and `subscribe-instant` must return a
`wasi:io/poll` pollable, a resource of wasmtime's built-in WASI that the C API offers
no way to create, and shadowing is per interface, so the host cannot keep wasmtime's
two functions and replace only `now`. So a tiny helper component (`timer_helper/`,
built from WAT with wasm-tools; `tests/unit/test_timer_helper.py` checks the shipped
bytes against the source) is instantiated in the guest's store, linked to the built-in
WASI only; its one export forwards to the real `subscribe-duration`. The host calls it
with 0, a pollable that is ready at once, and hands that to the guest, after moving
the virtual clock to the timer's deadline.

The helper is compiled once per engine, and instantiated in an attempt's store only
when its guest first subscribes (most guests never do).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component as wc

from durable.core.virtual_clock import QUANTUM_NS
from durable.host._wit import Current, add_funcs
from durable.host.context import AttemptContext

#: The helper component (960 bytes), built from `timer_helper/helper.wat` and `.wit`.
HELPER_WASM = Path(__file__).parent / "timer_helper" / "helper.wasm"


class TimerHelper:
    """The helper component compiled for one engine, and a linker for it that has
    wasmtime's own WASI (not the host's shadows, which would call back into us)."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._compiled: tuple[wc.Component, wc.Linker] | None = None

    def subscriber(self, store: wasmtime.Store) -> wc.Func:
        """Instantiate the helper in `store`; its `subscribe` export."""
        with self._lock:  # compiled on first use, once for all attempts
            if self._compiled is None:
                linker = wc.Linker(self.engine)
                linker.add_wasip2()
                self._compiled = (wc.Component(self.engine, HELPER_WASM.read_bytes()), linker)
            component, linker = self._compiled
        func = linker.instantiate(store, component).get_func(store, "subscribe")
        if func is None:  # pragma: no cover - the shipped helper exports it
            raise wasmtime.WasmtimeError("the timer helper has no `subscribe` export")
        return func


class ReadyPollables:
    """One attempt's source of ready pollables: the helper, instantiated on first use."""

    def __init__(self, helper: TimerHelper, store: wasmtime.Store) -> None:
        self._helper = helper
        self._store = store
        self._subscribe: wc.Func | None = None

    def ready(self) -> Any:
        """A real WASI pollable that is ready at once."""
        if self._subscribe is None:
            self._subscribe = self._helper.subscriber(self._store)
        pollable = self._subscribe(self._store, 0)
        self._subscribe.post_return(self._store)
        return pollable


def define_monotonic_clock(inst: wc.LinkerInstance, current: Current) -> None:
    """Every function of one version of `wasi:clocks/monotonic-clock`."""

    def now(_store: object) -> int:
        return current().machine.monotonic.now()

    def resolution(_store: object) -> int:
        return QUANTUM_NS

    def subscribe_duration(_store: object, duration_ns: int) -> Any:
        ctx = current()
        ctx.machine.monotonic.subscribe_duration(duration_ns)
        return _pollables(ctx).ready()

    def subscribe_instant(_store: object, deadline_ns: int) -> Any:
        ctx = current()
        ctx.machine.monotonic.subscribe_instant(deadline_ns)
        return _pollables(ctx).ready()

    add_funcs(
        inst,
        current,
        {
            "now": now,
            "resolution": resolution,
            "subscribe-duration": subscribe_duration,
            "subscribe-instant": subscribe_instant,
        },
    )


def _pollables(ctx: AttemptContext) -> ReadyPollables:
    if ctx.pollables is None:  # pragma: no cover - the runtime sets it for every attempt
        raise wasmtime.WasmtimeError("no timer pollables outside a running attempt")
    return ctx.pollables
