"""Turning a path on the command line into a validated workflow binary."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from durable.builder import build_workflow
from durable.errors import ComponentError, ConfigurationError
from durable.host.cache import ComponentCache


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowBinary:
    """A workflow component, checked against the workflow world and ready to store."""

    wasm: bytes  # the component
    hash: str  # its SHA-256, hex
    name: str  # the file's stem, a default task name


def read_workflow(path: Path) -> tuple[bytes, str]:
    """Build a `.py` workflow or read a `.wasm` one. Returns `(bytes, kind)`.

    Raises:
        ConfigurationError: the file is missing, unreadable, or neither Python nor wasm.
        BuildError: the Python workflow does not build.
    """
    if not path.exists():
        raise ConfigurationError(f"{path}: no such file")
    if path.is_dir():
        raise ConfigurationError(f"{path}: is a directory, not a workflow file")
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise ConfigurationError(f"{path}: {exc.strerror}") from None
    if head.startswith(b"\0asm"):
        return path.read_bytes(), "wasm"
    if path.suffix == ".py":
        return build_workflow(path).wasm_path.read_bytes(), "python"
    raise ConfigurationError(
        f"{path}: neither a Python workflow (.py) nor a WebAssembly component (.wasm)"
    )


def load_workflow(path: Path, cache: ComponentCache) -> WorkflowBinary:
    """Read or build `path`, then compile it (cached) to check it is a workflow component.

    Raises:
        ConfigurationError, BuildError: see `read_workflow`.
        ComponentError: the binary does not target the durable:core workflow world.
    """
    wasm, _kind = read_workflow(path)
    digest = hashlib.sha256(wasm).hexdigest()
    try:
        cache.load(digest, wasm)
    except ComponentError as exc:
        raise ComponentError(f"{path.name}: {exc}") from None
    return WorkflowBinary(wasm=wasm, hash=digest, name=path.stem)
