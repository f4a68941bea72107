"""Turning a path on the command line into a validated, compiled workflow binary.

Every way a workflow enters the system (`durable run`, `durable launch`,
`Client.register*`) compiles it into the machine's cache on the way in, so that the
workers on this machine start its tasks in milliseconds instead of compiling first.
The compile runs in a detached process (`durable.host._shared_compile`): this module
imports no wasmtime, so neither does an application that only registers workflows.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from durable.builder import build_workflow
from durable.component_check import check_component
from durable.errors import ComponentError, ConfigurationError

#: File names taken as JavaScript workflows (ES modules).
JS_SUFFIXES = (".js", ".mjs")

if TYPE_CHECKING:
    from durable.host.cache import ComponentCache
    from durable.host.config import HostConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowBinary:
    """A workflow component, checked against the workflow world and ready to store."""

    wasm: bytes  # the component
    hash: str  # its SHA-256, hex
    name: str  # the file's stem, a default task name


def read_workflow(path: Path) -> tuple[bytes, str]:
    """Build a `.py` or `.js` workflow or read a `.wasm` one. Returns `(bytes, kind)`.

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
        return _read_build(path), "python"
    if path.suffix in JS_SUFFIXES:
        return _read_js_build(path), "javascript"
    raise ConfigurationError(
        f"{path}: neither a Python workflow (.py) nor a WebAssembly component (.wasm) "
        "nor a JavaScript workflow (.js)"
    )


def load_workflow(path: Path, cache: ComponentCache) -> WorkflowBinary:
    """Read or build `path`, then compile it (cached) to check it is a workflow component.

    The component is then loaded in `cache` (for a process that runs it next).

    Raises:
        ConfigurationError, BuildError: see `read_workflow`.
        ComponentError: the binary does not target the durable:core workflow world.
    """
    wasm, _kind = read_workflow(path)
    digest = hashlib.sha256(wasm).hexdigest()
    try:
        check_component(wasm)  # in a tenth of a second, before a compile of many
        cache.load(digest, wasm)
    except ComponentError as exc:
        raise ComponentError(f"{path.name}: {exc}") from None
    return WorkflowBinary(wasm=wasm, hash=digest, name=path.stem)


def prepare_workflow(path: Path, config: HostConfig | None = None) -> WorkflowBinary:
    """Read or build `path`, and compile it into this machine's cache (or find it there).

    For a process that stores the workflow for workers to run (`durable launch`):
    nothing is loaded here.

    Raises:
        ConfigurationError, BuildError: see `read_workflow`.
        ComponentError: the binary does not target the durable:core workflow world.
    """
    wasm, _kind = read_workflow(path)
    try:
        digest = compile_for_machine(wasm, config)
    except ComponentError as exc:
        raise ComponentError(f"{path.name}: {exc}") from None
    return WorkflowBinary(wasm=wasm, hash=digest, name=path.stem)


def compile_for_machine(wasm: bytes, config: HostConfig | None = None) -> str:
    """Leave `wasm` compiled in the cache of this machine's workers; return its SHA-256.

    Blocks until the compile has ended (seconds, the first time; milliseconds after),
    at most `config.compile_timeout`. If the cache directory is unusable, the binary
    is compiled here only to check it, and workers will compile it themselves.

    Raises:
        ComponentError: `wasm` is not a workflow component, or the compile took too long.
        ConfigurationError: `DURABLE_CACHE_MAX_BYTES` is not a size.
    """
    from durable.host._shared_compile import CompiledEntry, ensure_compiled
    from durable.host.config import HostConfig, cache_max_bytes

    config = config or HostConfig()
    digest = hashlib.sha256(wasm).hexdigest()
    check_component(wasm)  # refuse a mismatch before anything is compiled or written
    try:
        ensure_compiled(
            CompiledEntry.of(config.cache_dir, digest),
            digest,
            wasm,
            deadline=time.monotonic() + config.compile_timeout,
            max_bytes=cache_max_bytes(config.cache_max_bytes),
            cpu_seconds=config.compile_timeout,
        )
    except OSError:
        _check_here(wasm)
    return digest


def _check_here(wasm: bytes) -> None:
    """Compile `wasm` in this process, only to check it (no usable cache directory)."""
    import wasmtime

    from durable.host.cache import compile_component, engine_config

    compile_component(wasmtime.Engine(engine_config()), wasm)


def _read_js_build(path: Path) -> bytes:
    """Build the JavaScript workflow `path` (or take its cached build) and read it."""
    from durable.js_build import build_js_workflow

    while True:
        try:
            return build_js_workflow(path).wasm_path.read_bytes()
        except FileNotFoundError:
            continue  # evicted between the build and the read


def _read_build(path: Path) -> bytes:
    """Build `path` (or take its cached build) and read the component."""
    while True:
        try:
            return build_workflow(path).wasm_path.read_bytes()
        except FileNotFoundError:
            continue  # evicted between the build and the read (it was the oldest entry)
