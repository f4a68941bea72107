"""The `durable:core/source` host function: a task's workflow source, for the interpreter.

The shared interpreter component (`durable.interpreter`) asks once per attempt for the
modules of the task's bundle (`durable.bundle`), which the worker put on the attempt.
Nothing is recorded: the source is a function of the task's binary hash, which the
task is pinned to, so a replay gets the same files.
"""

from __future__ import annotations

from wasmtime import component as wc

from durable.host._wit import Current, add_funcs, record
from durable.host.world import DURABLE_VERSION

__all__ = ["define_source"]


def define_source(root: wc.LinkerInstance, current: Current) -> None:
    """Define `durable:core/source` on the linker root."""

    def get(_store: object) -> wc.Record | None:
        bundle = current().source
        if bundle is None:
            return None  # a standalone component asks nothing; an interpreter gets none
        files = [record(name=name, text=text) for name, text in bundle.files]
        return record(main=bundle.main, files=files)

    with root.add_instance(f"durable:core/source@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"get": get})
