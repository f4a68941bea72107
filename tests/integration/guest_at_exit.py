"""A process that exits right after `Runtime.close()`, while a guest was printing.

Run by `test_worker_stress.py` as `python -m tests.integration.guest_at_exit LIMITS_PY`.
A guest prints without end on a thread; another attempt ends on the main thread; the
runtime is closed and the interpreter exits at once. Before issue 12's fix, wasmtime's
tokio threads were still calling into Python (the printing guest's writes) when the
interpreter finalized, and the process died of SIGABRT (or printed a Rust panic).
Prints what `close()` returned: whether nothing was left inside wasmtime.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import anyio

from durable.core.model import NewTask, Task
from durable.host import HostConfig, Runtime
from durable.host.context import AttemptContext
from durable.storage.memory import MemoryStore
from tests.helpers import DiscardingSink, built, load_component


def main(source: Path) -> None:
    wasm, digest = built(source)

    async def create() -> list[Task]:
        store = MemoryStore()
        await store.put_workflow(wasm, name="limits")
        return [
            await store.create_task(
                NewTask(name=entry, workflow_hash=digest, entry=entry, input="null")
            )
            for entry in ("shout", "raises")
        ]

    shout, raises = anyio.run(create)
    runtime = Runtime(HostConfig())
    component = load_component(runtime, wasm)

    def attempt(task: Task) -> AttemptContext:
        return AttemptContext(
            task=task, attempt=1, history=[], sink=DiscardingSink(), config=runtime.config
        )

    printing = attempt(shout)
    # A daemon thread, as an abandoned attempt would be: nothing joins it at exit.
    threading.Thread(target=runtime.run, args=(component, printing), daemon=True).start()
    while not printing.take_logs(frontier=True):  # it has printed: its writer task runs
        time.sleep(0.01)
    runtime.run(component, attempt(raises))
    print(f"closed: {runtime.close()}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
