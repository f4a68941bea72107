"""The wasmtime component host: loads workflow components and runs task attempts.

Host calls are synchronous: wasmtime-py calls our Python functions on the thread that
runs the guest, and the guest cannot proceed until they return. Each attempt therefore
runs in a worker thread, and reaches the async store through a sync `Sink` that the
worker provides (an `anyio.from_thread` bridge). Recorded events are group-committed:
they are written before anything the guest does becomes visible outside (a blocking
sleep, a suspension, the end of the task, an external effect), or after a short
interval, never later.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from durable.host.config import HostConfig

if TYPE_CHECKING:
    from durable.host.cache import ComponentCache
    from durable.host.context import AttemptContext, Sink
    from durable.host.runtime import Runtime

__all__ = ["AttemptContext", "ComponentCache", "HostConfig", "Runtime", "Sink"]

# Loaded when first named: `durable.host.config` (settings, no wasmtime) is imported by
# processes that never run a guest, and importing it runs this file.
_LAZY = {
    "AttemptContext": "durable.host.context",
    "ComponentCache": "durable.host.cache",
    "Runtime": "durable.host.runtime",
    "Sink": "durable.host.context",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
