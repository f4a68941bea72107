"""Closing an attempt's wasmtime store off the attempt's critical path (and making the
next attempt's instance, `durable.host.instance_pool`, on the same thread).

Dropping a store (its instance, memories and tables) takes a noticeable share of a
short task's time, and nothing the worker writes depends on it: the attempt's outcome
is known, and its context is closed, before the store goes. So the guest's thread
hands the store to one thread per runtime that closes it, and the attempt's end goes
to the database meanwhile. The thread still counts as inside wasmtime
(`durable.host.lifecycle.Guests`) until the store is closed, so a runtime's `close`
waits for it as it did for the guest's own thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

import wasmtime

log = logging.getLogger("durable.host")


class StoreDropper:
    """Closes stores in the order they come, and calls `after()` once each is closed,
    on its own thread (started on first use)."""

    def __init__(self, after: Callable[[], None]) -> None:
        """`after()` runs once per store, after it is closed."""
        self._after = after
        # Each store (or None: no store), and what to do on this thread once it is
        # closed (if anything).
        self._queue: queue.SimpleQueue[tuple[wasmtime.Store | None, Callable[[], None] | None]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def drop(self, store: wasmtime.Store, then: Callable[[], None] | None = None) -> None:
        """Close `store` soon, then call `then()` on the same thread unless more stores
        wait to be closed by then; never blocks."""
        self._put(store, then)

    def soon(self, then: Callable[[], None]) -> None:
        """Call `then()` on this thread soon, unless stores wait to be closed by then
        (a store's own `then` follows them); never blocks."""
        self._put(None, then)

    def _put(self, store: wasmtime.Store | None, then: Callable[[], None] | None) -> None:
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="durable-store-drop", daemon=True
                    )
                    self._thread.start()
        self._queue.put((store, then))

    def _run(self) -> None:
        while True:
            store, then = self._queue.get()
            if store is not None:
                try:
                    store.close()  # its output streams go now, or soon on wasmtime's threads
                except Exception:  # one store's failure must not stop the rest from closing
                    log.exception("closing a guest's store failed")
                finally:
                    self._after()
            # Stores to close come first: under load, a later store's `then` follows.
            if then is not None and self._queue.empty():
                try:
                    then()  # the next attempt's instance (`durable.host.instance_pool`)
                except Exception:
                    log.exception("making an instance ahead of its attempt failed")
