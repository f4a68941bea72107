"""Compiled-component cache: in memory per process, on disk across processes.

Compiling an 18 MB Python component takes seconds; deserialising the compiled artifact
takes milliseconds. Artifacts are keyed by the binary's SHA-256, the wasmtime version
and the engine settings, because a serialized artifact is only valid for the exact
engine configuration that produced it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from importlib.metadata import version
from pathlib import Path

import wasmtime
from wasmtime import component as wc

from durable.errors import ComponentError
from durable.host.world import check_world

#: Part of every artifact key: bump when engine settings change.
ENGINE_SETTINGS = "epoch=1"


class ComponentCache:
    """Loads components by hash, compiling at most once per machine."""

    def __init__(self, engine: wasmtime.Engine, cache_dir: Path, *, capacity: int = 32) -> None:
        self._engine = engine
        self._dir = cache_dir / "compiled"
        self._capacity = capacity
        self._memory: OrderedDict[str, wc.Component] = OrderedDict()
        self._lock = threading.Lock()
        # One lock per hash being loaded, so that attempts starting together on a new
        # workflow wait for one compile instead of each compiling it (16 at once took
        # two minutes on two cores instead of seconds).
        self._loading: dict[str, threading.Lock] = {}
        self._suffix = hashlib.sha256(
            f"{version('wasmtime')}|{ENGINE_SETTINGS}".encode()
        ).hexdigest()[:12]

    def cached(self, wasm_hash: str) -> bool:
        """Whether loading `wasm_hash` will skip compilation."""
        return wasm_hash in self._memory or self._path(wasm_hash).exists()

    def load(self, wasm_hash: str, wasm: bytes | None = None) -> wc.Component:
        """Return the compiled component for `wasm_hash`, compiling `wasm` if needed.

        Raises:
            ComponentError: `wasm` is not a valid workflow component, or it is needed
                (nothing cached) but was not given.
        """
        with self._lock:
            hit = self._memory.get(wasm_hash)
            if hit is not None:
                self._memory.move_to_end(wasm_hash)
                return hit
            gate = self._loading.setdefault(wasm_hash, threading.Lock())
        with gate:
            with self._lock:
                hit = self._memory.get(wasm_hash)  # loaded while we waited at the gate
                if hit is not None:
                    self._memory.move_to_end(wasm_hash)
                    return hit
            try:
                component = self._load_uncached(wasm_hash, wasm)
                with self._lock:
                    self._memory[wasm_hash] = component
                    while len(self._memory) > self._capacity:
                        self._memory.popitem(last=False)
            finally:
                with self._lock:
                    if self._loading.get(wasm_hash) is gate:
                        del self._loading[wasm_hash]
        return component

    def _path(self, wasm_hash: str) -> Path:
        return self._dir / f"{wasm_hash}-{self._suffix}.cwasm"

    def _load_uncached(self, wasm_hash: str, wasm: bytes | None) -> wc.Component:
        path = self._path(wasm_hash)
        if path.exists():
            try:
                return wc.Component.deserialize_file(self._engine, str(path))
            except wasmtime.WasmtimeError:
                path.unlink(missing_ok=True)  # corrupt or foreign artifact: recompile
        if wasm is None:
            raise ComponentError(f"workflow {wasm_hash[:12]} is not compiled and no binary given")
        component = compile_component(self._engine, wasm)
        self._write(path, bytes(component.serialize()))
        return component

    def _write(self, path: Path, data: bytes) -> None:
        # Write to a temp file and rename, so a concurrent reader never sees half a file.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            pass  # an unwritable cache only costs speed


def compile_component(engine: wasmtime.Engine, wasm: bytes) -> wc.Component:
    """Compile and validate a workflow component.

    Raises:
        ComponentError: not a component, or not one that targets the workflow world.
    """
    if wasm[:4] != b"\0asm":
        raise ComponentError("not a WebAssembly binary")
    if wasm[4:8] == b"\x01\x00\x00\x00":
        raise ComponentError(
            "this is a core WebAssembly module, not a component: build it with "
            "`durable build` (or componentize-py) for the durable:core workflow world"
        )
    try:
        component = wc.Component(engine, wasm)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid binary"
        raise ComponentError(f"not a valid component: {first}") from exc
    check_world(engine, component)
    return component
