"""`StoreDropper` closes stores on its own thread, and goes on after one fails to close."""

from __future__ import annotations

import threading
from typing import Any, cast

import wasmtime

from durable.host.store_drop import StoreDropper


class _Store:
    """Stands in for a store whose `close` fails (a real one cannot be made to)."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.closed_on: str | None = None

    def close(self) -> None:
        self.closed_on = threading.current_thread().name
        if self.fail:
            raise RuntimeError("close failed")


def test_a_store_that_fails_to_close_does_not_stop_the_next() -> None:
    done = threading.Semaphore(0)
    dropper = StoreDropper(done.release)
    bad, good = _Store(fail=True), _Store(fail=False)
    real = wasmtime.Store(wasmtime.Engine())
    for store in (bad, good, real):
        dropper.drop(cast("Any", store))
    for _ in range(3):
        assert done.acquire(timeout=60), "after() runs once per store, failed or not"
    assert bad.closed_on == good.closed_on == "durable-store-drop"
