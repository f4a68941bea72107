"""The workflow source of a task run by the shared interpreter component.

The shared interpreter component (`durable.interpreter`) receives the modules of the
task's bundle (`durable.bundle`) through its `prepare` export, which the host calls on
a fresh instance before its `run`: in the attempt, or ahead of any attempt in a
worker's pool of instances (`durable.host.instance_pool`). An interpreter built before
`prepare` existed asks instead, once per attempt, through the `durable:core/source`
import. Nothing is recorded either way: the source is a function of the task's binary
hash, which the task is pinned to, so a replay gets the same files.
"""

from __future__ import annotations

from wasmtime import component as wc

from durable.bundle import Bundle
from durable.host._wit import Current, add_funcs, record
from durable.host.world import DURABLE_VERSION

__all__ = ["define_source", "workflow_source"]

#: The interpreter's export that imports a workflow ahead of its `run`.
PREPARE = "prepare"


def workflow_source(bundle: Bundle) -> wc.Record:
    """`bundle` as the WIT `workflow-source` record."""
    files = [record(name=name, text=text) for name, text in bundle.files]
    return record(main=bundle.main, files=files)


def define_source(root: wc.LinkerInstance, current: Current) -> None:
    """Define `durable:core/source` on the linker root."""

    def get(_store: object) -> wc.Record | None:
        bundle = current().source
        if bundle is None:
            return None  # a standalone component asks nothing; an interpreter gets none
        return workflow_source(bundle)

    with root.add_instance(f"durable:core/source@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"get": get})
