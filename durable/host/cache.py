"""Compiled-component cache: in memory per process, on disk per machine.

Compiling an 18 MB Python component takes seconds; deserialising the compiled artifact
takes milliseconds. Artifacts are keyed by the binary's SHA-256, the wasmtime version
and the engine settings, because a serialized artifact is only valid for the exact
engine configuration that produced it.

The disk half is shared by every process on the machine that uses the same cache
directory: one compile per binary, in a detached process that survives whoever asked
for it (`durable.host._shared_compile`), in a directory bounded by size with the least
recently used entries evicted (`durable.host._cache_files`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import wasmtime
from wasmtime import component as wc

from durable.component_check import check_component
from durable.errors import ComponentError
from durable.host._cache_files import lock_entry, touch
from durable.host._shared_compile import (
    CompiledEntry,
    CompileState,
    check_binary,
    ensure_compiled,
    start_compile,
)
from durable.host.config import cache_max_bytes
from durable.host.world import check_world

log = logging.getLogger("durable.host")


def engine_config() -> wasmtime.Config:
    """The engine settings of every worker, and of every artifact compiled for one.

    `ENGINE_SETTINGS` (in `durable.host._shared_compile`) names them in artifact keys.
    """
    config = wasmtime.Config()
    # Epoch interruption lets a watchdog stop a guest stuck in a loop.
    config.epoch_interruption = True
    return config


class ComponentCache:
    """Loads components by hash, compiling each at most once per machine."""

    def __init__(
        self,
        engine: wasmtime.Engine,
        cache_dir: Path,
        *,
        capacity: int = 32,
        max_bytes: int | None = None,
        compile_timeout: float = 600.0,
    ) -> None:
        """A cache over `cache_dir`, for components of `engine`.

        Args:
            engine: made with `engine_config()`, as the artifacts are.
            cache_dir: the machine's cache directory (`HostConfig.cache_dir`).
            capacity: components kept loaded in this process (their compiled code is
                mapped from the artifact's file, so this bounds few bytes).
            max_bytes: the cache directory's bound (None: `cache_max_bytes()`).
            compile_timeout: how long to wait for a compile (and its CPU-time limit).

        Raises:
            ConfigurationError: `DURABLE_CACHE_MAX_BYTES` is not a size.
        """
        self._engine = engine
        self._cache_dir = cache_dir
        self._capacity = capacity
        self._max_bytes = cache_max_bytes(max_bytes)
        self._timeout = compile_timeout
        self._memory: OrderedDict[str, wc.Component] = OrderedDict()
        self._lock = threading.Lock()
        # One lock per hash being loaded, so that attempts starting together on a new
        # workflow wait for one compile instead of each compiling it (16 at once took
        # two minutes on two cores instead of seconds).
        self._loading: dict[str, threading.Lock] = {}
        self._warned_unusable = False

    @property
    def cache_dir(self) -> Path:
        """The machine's cache directory this cache reads and writes."""
        return self._cache_dir

    def cached(self, wasm_hash: str) -> bool:
        """Whether loading `wasm_hash` will skip compilation."""
        return self.state(wasm_hash) is CompileState.READY

    def state(self, wasm_hash: str) -> CompileState:
        """Where the compile of `wasm_hash` stands on this machine (a snapshot)."""
        if wasm_hash in self._memory:
            return CompileState.READY
        return self._entry(wasm_hash).state()

    def load(self, wasm_hash: str, wasm: bytes | None = None) -> wc.Component:
        """Return the compiled component for `wasm_hash`, compiling `wasm` if needed.

        Blocks while the binary compiles, here or in another process, at most
        `compile_timeout` seconds.

        Raises:
            ComponentError: `wasm` is not a valid workflow component, it is needed
                (nothing cached) but was not given, or its compile took too long.
        """
        component = self._single_flight(wasm_hash, lambda: self._load_uncached(wasm_hash, wasm))
        if component is None:  # pragma: no cover - `_load_uncached` returns one or raises
            raise ComponentError(f"workflow {wasm_hash[:12]} did not load")
        return component

    def load_compiled(self, wasm_hash: str) -> wc.Component | None:
        """The compiled component if this machine has it, else None; never compiles.

        Raises:
            ComponentError: the binary is known not to compile (its failure marker).
        """
        component = self._single_flight(wasm_hash, lambda: self._from_disk(wasm_hash))
        if component is None and (failure := self._entry(wasm_hash).failure()):
            raise ComponentError(failure)
        return component

    def in_memory(self, wasm_hash: str) -> wc.Component | None:
        """The compiled component if this process holds it already, else None: no disk,
        no wait, so the event loop may ask without a hop to a thread."""
        with self._lock:
            hit = self._memory.get(wasm_hash)
            if hit is not None:
                self._memory.move_to_end(wasm_hash)
            return hit

    def compile_in_background(self, wasm_hash: str, wasm: bytes) -> bool:
        """Make sure `wasm` is being compiled (or is compiled) for this machine; no wait.

        Returns False when the cache directory is unusable, so that only a compile in
        this process (`load`) can produce the component.
        """
        try:
            start_compile(
                self._entry(wasm_hash),
                wasm_hash,
                wasm,
                max_bytes=self._max_bytes,
                cpu_seconds=self._timeout,
            )
        except OSError as exc:
            self._warn_unusable(exc)
            return False
        return True

    def _entry(self, wasm_hash: str) -> CompiledEntry:
        return CompiledEntry.of(self._cache_dir, wasm_hash)

    def _single_flight(
        self, wasm_hash: str, load: Callable[[], wc.Component | None]
    ) -> wc.Component | None:
        """`load()`, kept in memory; threads after the same hash wait for one load."""
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
                component = load()
                if component is not None:
                    with self._lock:
                        self._memory[wasm_hash] = component
                        while len(self._memory) > self._capacity:
                            self._memory.popitem(last=False)
            finally:
                with self._lock:
                    if self._loading.get(wasm_hash) is gate:
                        del self._loading[wasm_hash]
        return component

    def _load_uncached(self, wasm_hash: str, wasm: bytes | None) -> wc.Component:
        entry = self._entry(wasm_hash)
        deadline = time.monotonic() + self._timeout
        while True:
            component = self._deserialize(entry)
            if component is not None:
                return component
            try:
                ensure_compiled(
                    entry,
                    wasm_hash,
                    wasm,
                    deadline=deadline,
                    max_bytes=self._max_bytes,
                    cpu_seconds=self._timeout,
                )
            except OSError as exc:
                if wasm is None:
                    raise ComponentError(
                        f"workflow {wasm_hash[:12]} is not compiled and no binary was given"
                    ) from None
                self._warn_unusable(exc)
                return compile_component(self._engine, wasm)
            # The artifact exists now, unless it was evicted already: then round again.

    def _from_disk(self, wasm_hash: str) -> wc.Component | None:
        return self._deserialize(self._entry(wasm_hash))

    def _deserialize(self, entry: CompiledEntry) -> wc.Component | None:
        """The artifact, loaded under a shared lock (so it is not evicted meanwhile)."""
        if not entry.artifact.exists():
            return None
        try:
            fd = lock_entry(entry.lock, shared=True)
        except OSError:
            fd = None  # a read-only cache directory: read without the lock
        try:
            try:
                component = wc.Component.deserialize_file(self._engine, str(entry.artifact))
            except wasmtime.WasmtimeError as exc:
                if not entry.artifact.exists():
                    return None  # evicted between the check and the lock
                # Corrupt, or made by another engine: compile it again. No compile can
                # be running (we hold the lock shared), and a reader that has the file
                # open keeps it.
                log.warning("compiled artifact %s unusable, recompiling: %s", entry.artifact, exc)
                entry.artifact.unlink(missing_ok=True)
                return None
            touch(entry.artifact)
            return component
        finally:
            if fd is not None:
                os.close(fd)

    def _warn_unusable(self, exc: OSError) -> None:
        if not self._warned_unusable:
            self._warned_unusable = True
            log.warning(
                "cache directory %s unusable (%s): compiling in this process, not kept",
                self._cache_dir,
                exc.strerror or exc,
            )


def compile_component(engine: wasmtime.Engine, wasm: bytes) -> wc.Component:
    """Compile and validate a workflow component.

    Raises:
        ComponentError: not a component, or not one that targets the workflow world.
    """
    check_binary(wasm)
    check_component(wasm)  # full function types, before the compile
    try:
        component = wc.Component(engine, wasm)
    except wasmtime.WasmtimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid binary"
        raise ComponentError(f"not a valid component: {first}") from exc
    check_world(engine, component)
    return component
