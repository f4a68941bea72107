"""The `durable:core/spawn-options` host function: spawn a child onto a queue.

`spawn-queued` is `children.spawn` with a placement (queue, queue key, priority): the
same recorded effect (`coordination.spawn_child`), under its own label, with the
placement in the digest. The child's id is recorded, and the spawn carries an
idempotency key from the parent's event position, so a replay never spawns twice.
The placement comes from an untrusted workflow: the queue name and key are checked
as a launch's are, and refused with why (`other`), recorded like any outcome.
"""

from __future__ import annotations

from typing import Any

from wasmtime import component as wc

from durable.host._wit import Current, add_funcs
from durable.host.coordination import spawn_child
from durable.host.world import DURABLE_VERSION

__all__ = ["define_spawn_options"]


def define_spawn_options(root: wc.LinkerInstance, current: Current) -> None:
    """Link `durable:core/spawn-options`."""

    def spawn_queued(_store: object, request: Any, options: Any) -> int | wc.Variant:
        # A lifted record's attributes keep the WIT names, hyphens included.
        placement = (options.queue, getattr(options, "queue-key"), options.priority)
        out = spawn_child(
            current(), request.workflow, request.entry, request.input, request.name, placement
        )
        if "id" in out:
            return int(out["id"])
        kind, detail = out["error"]
        return wc.Variant(kind, detail)

    with root.add_instance(f"durable:core/spawn-options@{DURABLE_VERSION}") as inst:
        add_funcs(inst, current, {"spawn-queued": spawn_queued})
