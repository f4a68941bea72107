"""durable: durable execution for Python workflows, compiled to WebAssembly components.

This is the host-side package: the client API, the worker and the errors. A workflow
also says `import durable`, but inside its component that name is the guest SDK
(`durable.guest`), which `durable build` puts in its place.
"""

from __future__ import annotations

from importlib.metadata import version as _version

from durable.client import Client as Client
from durable.core.model import Task as Task
from durable.core.model import TaskState as TaskState
from durable.errors import DurableError as DurableError
from durable.errors import NondeterminismError as NondeterminismError
from durable.history import TaskHistory as TaskHistory
from durable.replayer import Replayer as Replayer
from durable.replayer import ReplayReport as ReplayReport
from durable.worker import Worker as Worker
from durable.worker import WorkerConfig as WorkerConfig

__version__ = _version("durable")

__all__ = [
    "Client",
    "DurableError",
    "NondeterminismError",
    "ReplayReport",
    "Replayer",
    "Task",
    "TaskHistory",
    "TaskState",
    "Worker",
    "WorkerConfig",
    "__version__",
]
