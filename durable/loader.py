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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from durable.builder import check_source, component_digest
from durable.bundle import collect, is_bundle
from durable.bundle import decode as decode_bundle
from durable.bundle import keep as keep_bundle
from durable.component_verdict import check_once
from durable.errors import ComponentError, ConfigurationError
from durable.interpreter import build_interpreter
from durable.task_names import INTERPRETER_PREFIX

#: File names taken as JavaScript workflows (ES modules).
JS_SUFFIXES = (".js", ".mjs")

if TYPE_CHECKING:
    from durable.host.cache import ComponentCache
    from durable.host.config import HostConfig


class WorkflowBinary:
    """A workflow component, checked against the workflow world and ready to store; or
    a Python workflow's bundle (`durable.bundle`), with the interpreter that runs it.

    Its bytes are read when first asked for: a cached `durable run` on a database that
    has the binary already needs only its hash, not 19 MB read from the build cache.
    """

    __slots__ = ("_read", "_wasm", "hash", "interpreter", "name")

    def __init__(
        self,
        *,
        hash: str,
        name: str,
        wasm: bytes | None = None,
        read: Callable[[], bytes] | None = None,
        interpreter: WorkflowBinary | None = None,
    ) -> None:
        """`hash`: the binary's SHA-256 (hex); `name`: the file's stem, a default task
        name; `wasm`: the component, or `read`: a function that reads it;
        `interpreter`: for a bundle, the interpreter component it names."""
        if wasm is None and read is None:
            raise TypeError("WorkflowBinary needs wasm or read")
        self.hash = hash
        self.name = name
        self._wasm = wasm
        self._read = read
        self.interpreter = interpreter

    @property
    def wasm(self) -> bytes:
        """The component."""
        if self._wasm is None:
            assert self._read is not None  # one of them was given
            self._wasm = self._read()
        return self._wasm

    def __repr__(self) -> str:
        return f"WorkflowBinary(name={self.name!r}, hash={self.hash[:12]!r})"


@dataclass(frozen=True, slots=True)
class _Found:
    """A workflow file, resolved to its component's hash and a way to read it."""

    digest: str
    read: Callable[[], bytes]
    kind: str
    interpreter: _Found | None = None  # for a bundle: the component that runs it


def read_workflow(path: Path) -> tuple[bytes, str]:
    """Build a `.py` or `.js` workflow or read a `.wasm` one. Returns `(bytes, kind)`.

    Raises:
        ConfigurationError: the file is missing, unreadable, or neither Python nor wasm.
        BuildError: the Python workflow does not build.
    """
    found = _find(path)
    return found.read(), found.kind


def _find(path: Path) -> _Found:
    """Build `path` (or find its build) or read it: its component's hash, not its bytes.

    Raises:
        ConfigurationError, BuildError: see `read_workflow`.
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
        try:
            wasm = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"{path}: {exc.strerror}") from None
        return _Found(hashlib.sha256(wasm).hexdigest(), lambda: wasm, "wasm")
    if path.suffix == ".py":
        return _found_bundle(path)
    if path.suffix in JS_SUFFIXES:
        from durable.js_build import build_js_workflow

        return _found_build(lambda: build_js_workflow(path).wasm_path, "javascript")
    raise ConfigurationError(
        f"{path}: neither a Python workflow (.py) nor a WebAssembly component (.wasm) "
        "nor a JavaScript workflow (.js)"
    )


def _found_build(build: Callable[[], Path], kind: str) -> _Found:
    """The build `build()` makes or finds, named by the digest kept beside it."""
    while True:
        wasm_path = build()
        try:
            digest = component_digest(wasm_path)
        except FileNotFoundError:
            continue  # evicted between the build and now (it was the oldest entry)
        return _Found(digest, lambda: _read_build(build), kind)


def _found_bundle(path: Path) -> _Found:
    """A Python workflow as a bundle of its source, for the shared interpreter."""
    source = path.resolve()
    check_source(source)
    interpreter = _found_build(lambda: build_interpreter().wasm_path, "python")
    data = collect(source, interpreter.digest).encode()
    return _Found(hashlib.sha256(data).hexdigest(), lambda: data, "python", interpreter)


def _binary(found: _Found, name: str) -> WorkflowBinary:
    interpreter = found.interpreter
    return WorkflowBinary(
        hash=found.digest,
        name=name,
        read=found.read,
        interpreter=None
        if interpreter is None
        else WorkflowBinary(hash=interpreter.digest, name=name, read=interpreter.read),
    )


def load_workflow(path: Path, cache: ComponentCache) -> WorkflowBinary:
    """Read or build `path`, then compile it (cached) to check it is a workflow component.

    The component is then loaded in `cache` (for a process that runs it next). When
    its build, check and compile are all cached, the component's bytes are not read.

    Raises:
        ConfigurationError, BuildError: see `read_workflow`.
        ComponentError: the binary does not target the durable:core workflow world.
    """
    found = _find(path)
    binary = _binary(found, path.stem)
    component = binary.interpreter or binary
    try:
        # In a tenth of a second (or, known to pass, none), before a compile of many.
        check_once(cache.cache_dir, component.hash, lambda: component.wasm)
        if cache.load_compiled(component.hash) is None:
            cache.load(component.hash, component.wasm)
    except ComponentError as exc:
        raise ComponentError(f"{path.name}: {exc}") from None
    if binary.interpreter is not None:
        keep_bundle(cache.cache_dir, binary.wasm)  # where this machine's workers find it
    return binary


def prepare_workflow(path: Path, config: HostConfig | None = None) -> WorkflowBinary:
    """Read or build `path`, and compile it into this machine's cache (or find it there).

    For a process that stores the workflow for workers to run (`durable launch`):
    nothing is loaded here.

    Raises:
        ConfigurationError, BuildError: see `read_workflow`.
        ComponentError: the binary does not target the durable:core workflow world.
    """
    binary = _binary(_find(path), path.stem)
    component = binary.interpreter or binary
    try:
        compile_for_machine(component.wasm, config)
    except ComponentError as exc:
        raise ComponentError(f"{path.name}: {exc}") from None
    if binary.interpreter is not None:
        keep_bundle((config or _default_config()).cache_dir, binary.wasm)
    return binary


def _default_config() -> HostConfig:
    from durable.host.config import HostConfig

    return HostConfig()


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
    max_bytes = cache_max_bytes(config.cache_max_bytes)  # a bad setting is said first
    # Refuse a mismatch before anything is compiled or written.
    check_once(config.cache_dir, digest, wasm)
    try:
        ensure_compiled(
            CompiledEntry.of(config.cache_dir, digest),
            digest,
            wasm,
            deadline=time.monotonic() + config.compile_timeout,
            max_bytes=max_bytes,
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


def _read_build(build: Callable[[], Path]) -> bytes:
    """The component `build()` makes or finds, read."""
    while True:
        try:
            return build().read_bytes()
        except FileNotFoundError:
            continue  # evicted between the build and the read (it was the oldest entry)


def interpreter_name(digest: str) -> str:
    """The name an interpreter component is stored under: finding it is its check."""
    return f"{INTERPRETER_PREFIX}{digest[:16]}"


def local_interpreter(digest: str) -> bytes:
    """The interpreter component `digest`, built on this machine (once per SDK version).

    Raises:
        ConfigurationError: this installation's interpreter is another one (a bundle
            made by another version of durable), and the store does not have it.
        BuildError: the interpreter does not build.
    """
    path = build_interpreter().wasm_path
    own = component_digest(path)
    if own != digest:
        raise ConfigurationError(
            f"the workflow needs Python interpreter {digest[:12]}, and this installation "
            f"of durable has {own[:12]}: launch it with the durable version that made it"
        )
    return _read_build(lambda: build_interpreter().wasm_path)


def runs_on(binary: bytes) -> tuple[str, bytes]:
    """The component a workflow binary runs on, as `(hash, bytes)`: a bundle's
    interpreter (built here), or the component itself. What to compile before running it.

    Raises:
        ConfigurationError, BuildError: see `local_interpreter`.
    """
    if is_bundle(binary):
        digest = decode_bundle(binary).interpreter
        return digest, local_interpreter(digest)
    return hashlib.sha256(binary).hexdigest(), binary
