"""A child-process probe: can a `BaseException` raised in a host function leave the guest?

Suspension (`Suspend`), shutdown (`Release`) and the tests' injected crashes
(`SimulatedCrash`) are `BaseException`s raised inside host functions. If wasmtime's
component callback lets one escape without unwinding the guest, the process dies
(SIGSEGV) instead. The in-process property tests run this probe first, in a child
process, so that such an engine bug fails them with a clear message instead of
killing the whole pytest session.

Run as `python -m tests.property.probe WASM_PATH`; exit status 0 means both survive.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import anyio

from durable.host import HostConfig, Runtime
from tests.property.harness import (
    Component,
    crash_and_resume,
    launch,
    open_backend,
    run_until_suspended,
)
from tests.property.scripts import SUSPEND_AFTER


async def probe(wasm: bytes) -> None:
    """Suspend a task, then crash one in the guest's thread; raise if either goes wrong."""
    component = Component(wasm=wasm, hash=hashlib.sha256(wasm).hexdigest())
    runtime = Runtime(HostConfig(suspend_after=SUSPEND_AFTER))
    try:
        async with open_backend("memory") as store:
            task = await launch(store, component, [{"op": "long_sleep"}], seed=1)
            print("probe: suspending a task (Suspend raised in a host function)", flush=True)
            await run_until_suspended(store, runtime, task.id)
            print("probe: crashing in the guest's thread (SimulatedCrash)", flush=True)
            script = [{"op": "now"}, {"op": "sleep"}]  # the sleep's flush is write 0
            run = await crash_and_resume(
                store, runtime, component, script, 1, crash_at=0, after=False
            )
            if run.fired is None:
                raise AssertionError("the crash point was not reached")
    finally:
        runtime.close()


if __name__ == "__main__":
    anyio.run(probe, Path(sys.argv[1]).read_bytes())
    print("probe: ok", flush=True)
