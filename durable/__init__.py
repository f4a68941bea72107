"""durable: durable execution for Python workflows, compiled to WebAssembly components.

This is the host-side package: the client API, the worker and the errors. A workflow
also says `import durable`, but inside its component that name is the guest SDK
(`durable.guest`), which `durable build` puts in its place.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from durable._version import __version__ as __version__

if TYPE_CHECKING:
    from durable.client import Client as Client
    from durable.core.model import RunInfo as RunInfo
    from durable.core.model import Task as Task
    from durable.core.model import TaskState as TaskState
    from durable.errors import DurableError as DurableError
    from durable.errors import NondeterminismError as NondeterminismError
    from durable.history import TaskHistory as TaskHistory
    from durable.replayer import Replayer as Replayer
    from durable.replayer import ReplayReport as ReplayReport
    from durable.worker.config import WorkerConfig as WorkerConfig
    from durable.worker.worker import Worker as Worker

__all__ = [
    "Client",
    "DurableError",
    "NondeterminismError",
    "ReplayReport",
    "Replayer",
    "RunInfo",
    "Task",
    "TaskHistory",
    "TaskState",
    "Worker",
    "WorkerConfig",
    "__version__",
]

# Each name is loaded when first used (PEP 562), so that `import durable` costs next to
# nothing: the CLI imports this package before it knows what it will do, and only
# `Worker` and `Replayer` run guests, which loads wasmtime. An application that only
# launches and inspects tasks (`durable.Client`) never loads it.
_LAZY = {
    "Client": "durable.client",
    "DurableError": "durable.errors",
    "NondeterminismError": "durable.errors",
    "ReplayReport": "durable.replayer",
    "Replayer": "durable.replayer",
    "RunInfo": "durable.core.model",
    "Task": "durable.core.model",
    "TaskHistory": "durable.history",
    "TaskState": "durable.core.model",
    "Worker": "durable.worker.worker",
    "WorkerConfig": "durable.worker.config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
