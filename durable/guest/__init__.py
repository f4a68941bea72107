"""Files that go into a workflow component, never imported by the host.

`sdk/durable/` is the `durable` package a workflow sees when it runs inside the
component. It is a separate package with the same import name on purpose: a workflow
file says `import durable` whether it is read by the host or built into a component,
and `durable build` puts only `sdk/` (never the host package) on componentize-py's
module path, so no host-only module can leak into the component.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def sdk_path() -> Path:
    """The directory to put first on the guest's module path."""
    return Path(str(files(__name__) / "sdk"))
