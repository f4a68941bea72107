"""Instances made ahead of the claim, so that a short task does not wait for one.

Instantiating a compiled workflow (about 0.7 ms for a Python one) was on every
attempt's critical path, between the claim and the guest's first instruction. Nothing
in an instance depends on the task it will run: a componentize-py guest makes no host
call and no WASI call while it is instantiated (its interpreter was initialised when
the component was built; the task's seed, clock and input reach it only through host
calls made from `run`). So the runtime keeps, per compiled workflow, a few fresh
instances made on its store thread after an attempt ends (`durable.host.store_drop`),
and an attempt takes one instead of instantiating. Each is used once, by one attempt,
exactly as a new one would be: the per-task WASI configuration (output), limits and
watchdog are set on its store when it is taken.

What makes it sound for any component, not only Python ones: an instance is made with
no attempt (a durable host call, the clocks or the random source trap, as they find
none) and with its output going to a file. One that traps or writes while it is made
is thrown away, and its workflow is never pooled again in this runtime; its tasks
instantiate at the claim as before. A component's own reads of wasmtime's live WASI
(the insecure random seed, an empty environment) are live either way.

Rejected: keeping one instance and resetting its memory (the host cannot snapshot a
component's memory through wasmtime-py); making instances on the guest's thread right
after its run (on the attempt's critical path until its end is written).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import wasmtime
from wasmtime import component as wc

#: Epoch ticks an instantiation may take before it is stopped (the engine moves the
#: epoch every 10 ms): a start function that loops must not hold the store thread.
_INSTANTIATE_TICKS = 500
#: Compiled workflows with instances kept ready, least recently used out first.
MAX_WORKFLOWS = 8


@dataclass(slots=True)
class Prepared:
    """A fresh instance of one component, in a store of its own, not run yet."""

    store: wasmtime.Store
    run: wc.Func  # the component's `run` export


class InstancePool:
    """Per compiled workflow, up to `size` instances ready to run. Thread-safe.

    Making an instance counts as inside wasmtime (`enter` ... `leave`: its start code
    runs on the calling thread), so a runtime's close waits for it as for a running
    attempt. A ready instance does not count: no thread is inside it, and its output
    goes to a file, with no Python callback that could run while the interpreter exits
    (`durable.host.lifecycle`), so a process may exit with instances still kept.
    """

    def __init__(
        self,
        engine: wasmtime.Engine,
        linker: wc.Linker,
        *,
        size: int,
        memory_limit: int,
        enter: Callable[[], None],
        leave: Callable[[], None],
    ) -> None:
        """A pool of `size` instances per workflow (0: none)."""
        self._engine = engine
        self._linker = linker
        self._size = size
        self._memory_limit = memory_limit
        self._enter = enter
        self._leave = leave
        self._lock = threading.Lock()
        # By the component's id; each entry keeps its component alive, so an id is
        # never another component's while it is a key here.
        self._ready: OrderedDict[int, tuple[wc.Component, list[Prepared]]] = OrderedDict()
        self._refused: set[int] = set()  # ids of components never pooled (kept in `_keep`)
        self._keep: list[wc.Component] = []
        self._closed = False
        # Where instances being made write: anything there spoils the instance.
        # (An open descriptor of a file unlinked at once: nothing is left behind, even
        # by a process that is killed; wasmtime opens it again by its /proc path.)
        self._spill: int | None = None
        self.taken = 0  # attempts that ran on an instance from here (for tests, metrics)

    @property
    def enabled(self) -> bool:
        """Whether instances are kept at all."""
        return self._size > 0

    def ready(self) -> int:
        """How many instances are ready now, of all workflows."""
        with self._lock:
            return sum(len(kept) for _, kept in self._ready.values())

    def take(self, component: wc.Component) -> Prepared | None:
        """A ready instance of `component`, now the caller's to run and close; None if
        there is none."""
        with self._lock:
            entry = self._ready.get(id(component))
            if entry is None or not entry[1]:
                return None
            prepared = entry[1].pop()
            self._ready.move_to_end(id(component))
            self.taken += 1
        return prepared

    def fill(self, component: wc.Component) -> None:
        """Make instances of `component` until `size` are ready. Blocks: call it on the
        store thread, not on the event loop or a guest's critical path."""
        while self._wants(component):
            self._enter()
            try:
                prepared = self._make(component)
            finally:
                self._leave()
            if prepared is None:
                with self._lock:
                    self._refused.add(id(component))
                    self._keep.append(component)  # its id is not reused while refused
                return
            evicted: list[Prepared] = []
            with self._lock:
                if self._closed:
                    evicted.append(prepared)
                else:
                    entry = self._ready.setdefault(id(component), (component, []))
                    entry[1].append(prepared)
                    self._ready.move_to_end(id(component))
                    while len(self._ready) > MAX_WORKFLOWS:
                        evicted += self._ready.popitem(last=False)[1][1]
            for old in evicted:
                old.store.close()

    def clear(self) -> None:
        """Close every ready instance and keep none from now on (the runtime closes)."""
        with self._lock:
            self._closed = True
            ready = [p for _, kept in self._ready.values() for p in kept]
            self._ready.clear()
            spill, self._spill = self._spill, None
        for prepared in ready:
            prepared.store.close()
        if spill is not None:
            with contextlib.suppress(OSError):
                os.close(spill)

    def _wants(self, component: wc.Component) -> bool:
        with self._lock:
            if self._closed or self._size <= 0 or id(component) in self._refused:
                return False
            entry = self._ready.get(id(component))
            return entry is None or len(entry[1]) < self._size

    def _make(self, component: wc.Component) -> Prepared | None:
        """A new instance, or None if making it trapped or wrote output (or the pool
        was cleared meanwhile: `clear` runs on another thread)."""
        with self._lock:
            if self._closed:
                return None
            if self._spill is None:
                fd, path = tempfile.mkstemp(prefix="durable-pool-")
                os.unlink(path)
                self._spill = fd
            fd = self._spill
            wasi = wasmtime.WasiConfig()  # no args, environment, files or network
            # Opened here, under the lock: `clear` may close `fd`, and its number must
            # not name another file by then. Truncated: what is there was written now.
            try:
                wasi.stdout_file = f"/proc/self/fd/{fd}"
                wasi.stderr_file = f"/proc/self/fd/{fd}"
            except (wasmtime.WasmtimeError, OSError):  # no /proc here: no pool
                return None
        store = wasmtime.Store(self._engine)
        try:
            store.set_wasi(wasi)  # replaced by the attempt's own when it is taken
            store.set_limits(memory_size=self._memory_limit)
            store.set_epoch_deadline(_INSTANTIATE_TICKS)
            instance = self._linker.instantiate(store, component)
            run = instance.get_func(store, "run")
            spoiled = os.fstat(fd).st_size > 0  # OSError: closed by a `clear`
        except (wasmtime.WasmtimeError, OSError):
            store.close()
            return None
        if run is None or spoiled:
            store.close()
            return None
        return Prepared(store=store, run=run)
