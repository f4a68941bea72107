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

The shared interpreter runs every Python workflow, so its instances are kept per
workflow source (`durable.bundle.Bundle`) too, each with its workflow module imported
already (the interpreter's `prepare` export, `durable.host.source`): importing a module
took about half of a short task's time. The same rule holds for that import: a host
call (any durable effect, a clock or random read) traps, output or a trap means the
instance is thrown away and that workflow is not pooled again in this runtime, and it
runs within a CPU budget, so that a slow import holds the pool's thread for a second at
most. Its tasks then import in their attempt as before, with the same result: the
interpreter imports before anything of the task reaches it in both paths. Without
epoch callbacks (wasmtime-py's fallback, `durable.host.watchdog`) nothing stops a guest
outside an attempt, so no workflow code runs ahead: its tasks import in the attempt.

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
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import wasmtime
from wasmtime import component as wc

from durable.bundle import Bundle
from durable.host.source import PREPARE, workflow_source

#: Epoch ticks an instantiation may take before it is stopped (the engine moves the
#: epoch every 10 ms): a start function that loops must not hold the store thread.
_INSTANTIATE_TICKS = 500
#: Epoch ticks a workflow's import ahead of its task may take (10 ms each): a module
#: that imports in milliseconds is pooled, one that computes for long is not.
_PREPARE_TICKS = 100
#: Workflows (compiled components, or sources for the interpreter) with instances kept
#: ready, least recently used out first.
MAX_WORKFLOWS = 8
#: Workflows refused remembered at most: beyond, forgotten (one more try each).
_MAX_REFUSED = 256


@dataclass(slots=True)
class Prepared:
    """A fresh instance of one component, in a store of its own, not run yet."""

    store: wasmtime.Store
    run: wc.Func  # the component's `run` export
    prepare: wc.Func | None  # the interpreter's `prepare` export, if it has one
    imported: bool  # `prepare` ran: the workflow module is imported


def prepare_export(instance: wc.Instance, store: wasmtime.Store) -> wc.Func | None:
    """The instance's `prepare` export (None for a component built with its workflow)."""
    return instance.get_func(store, PREPARE)


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
        import_ahead: bool = True,
    ) -> None:
        """A pool of `size` instances per workflow (0: none); with `import_ahead`, an
        interpreter's instances have their workflow imported."""
        self._engine = engine
        self._linker = linker
        self._size = size
        self._memory_limit = memory_limit
        self._enter = enter
        self._leave = leave
        self._import_ahead = import_ahead
        self._lock = threading.Lock()
        # By the component's id and the source (or None); each entry keeps its
        # component alive, so an id is never another component's while it is a key here.
        self._ready: OrderedDict[Hashable, tuple[wc.Component, list[Prepared]]] = OrderedDict()
        self._refused: set[Hashable] = set()  # keys never pooled (components in `_keep`)
        self._keep: dict[int, wc.Component] = {}
        self._closed = False
        # Where instances being made write: anything there spoils the instance.
        # (An open descriptor of a file unlinked at once: nothing is left behind, even
        # by a process that is killed; wasmtime opens it again by its /proc path.)
        self._spill: int | None = None
        self.taken = 0  # attempts that ran on an instance from here (for tests, metrics)
        self.imported = 0  # instances made with their workflow imported (the same)
        self.refusals = 0  # workflows refused: made with a trap, output or failure (same)

    @property
    def enabled(self) -> bool:
        """Whether instances are kept at all."""
        return self._size > 0

    def ready(self) -> int:
        """How many instances are ready now, of all workflows."""
        with self._lock:
            return sum(len(kept) for _, kept in self._ready.values())

    def _key(self, component: wc.Component, source: Bundle | None) -> Hashable:
        # Bundles compare by value: the same workflow parsed twice is one key.
        return (id(component), source if self._import_ahead else None)

    def take(self, component: wc.Component, source: Bundle | None = None) -> Prepared | None:
        """A ready instance of `component` (with `source` imported, when the pool
        imports ahead), now the caller's to run and close; None if there is none."""
        key = self._key(component, source)
        with self._lock:
            entry = self._ready.get(key)
            if entry is None or not entry[1]:
                return None
            prepared = entry[1].pop()
            self._ready.move_to_end(key)
            self.taken += 1
        return prepared

    def fill(self, component: wc.Component, source: Bundle | None = None) -> None:
        """Make instances of `component` (for a task of `source`) until `size` are
        ready. Blocks: call it on the store thread, not on the event loop or a guest's
        critical path."""
        key = self._key(component, source)
        ahead = source if self._import_ahead else None
        while self._wants(key):
            self._enter()
            try:
                prepared = self._make(component, ahead)
            finally:
                self._leave()
            if prepared is None:
                with self._lock:
                    if len(self._refused) >= _MAX_REFUSED:
                        self._refused.clear()
                        self._keep.clear()
                    self._refused.add(key)
                    self.refusals += 1
                    self._keep[id(component)] = component  # its id is not reused meanwhile
                return
            evicted: list[Prepared] = []
            with self._lock:
                if self._closed:
                    evicted.append(prepared)
                else:
                    self.imported += prepared.imported
                    entry = self._ready.setdefault(key, (component, []))
                    entry[1].append(prepared)
                    self._ready.move_to_end(key)
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

    def _wants(self, key: Hashable) -> bool:
        with self._lock:
            if self._closed or self._size <= 0 or key in self._refused:
                return False
            entry = self._ready.get(key)
            return entry is None or len(entry[1]) < self._size

    def _make(self, component: wc.Component, source: Bundle | None) -> Prepared | None:
        """A new instance, with `source` imported if the component can, or None if
        making it trapped, failed or wrote output (or the pool was cleared meanwhile:
        `clear` runs on another thread)."""
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
            prepare = prepare_export(instance, store)
            failed = None
            if source is not None and prepare is not None:
                store.set_epoch_deadline(_PREPARE_TICKS)
                failed = prepare(store, workflow_source(source))  # ok: None
            spoiled = os.fstat(fd).st_size > 0  # OSError: closed by a `clear`
        except (wasmtime.WasmtimeError, OSError):
            store.close()
            return None
        if run is None or spoiled or failed is not None:
            store.close()
            return None
        imported = source is not None and prepare is not None
        return Prepared(store=store, run=run, prepare=prepare, imported=imported)
