"""Child-process entry: compile one workflow binary into the machine's cache.

Started by `durable.host._shared_compile.start_compile` in a session of its own. It
inherits the entry's lock, already taken, as descriptor LOCK_FD, and holds it until
it exits: that is how everyone else knows a compile is under way, and how they
learn that it ended (or died).

Usage: python -m durable.host._compiler_process CACHE_DIR WASM_HASH SOURCE LOCK_FD
MAX_BYTES CPU_SECONDS
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    """Compile SOURCE (deleted once read) into the entry of WASM_HASH; 0 when decided."""
    from durable.errors import ComponentError
    from durable.host._cache_files import append_log, evict, write_atomic
    from durable.host._shared_compile import CompiledEntry, reset_tries

    cache_arg, wasm_hash, source, lock_arg, max_bytes, cpu_seconds = argv
    cache_dir, lock_fd = Path(cache_arg), int(lock_arg)
    _limit_cpu(int(cpu_seconds))  # a compile that never ends would hold the lock forever
    entry = CompiledEntry.of(cache_dir, wasm_hash)
    started = time.monotonic()
    try:
        wasm = Path(source).read_bytes()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(source)
    if hashlib.sha256(wasm).hexdigest() != wasm_hash:
        append_log(cache_dir, f"{entry.key}: the binary handed over does not match its hash")
        return 1
    append_log(cache_dir, f"compiling {entry.key} ({len(wasm) / 2**20:.1f} MiB)")

    import wasmtime

    from durable.host.cache import compile_component, engine_config

    engine = wasmtime.Engine(engine_config())
    try:
        component = compile_component(engine, wasm)
    except ComponentError as exc:
        entry.mark_failed(str(exc))
        append_log(cache_dir, f"{entry.key} is not a workflow component: {exc}")
        return 0
    data = bytes(component.serialize())
    write_atomic(entry.artifact, data)
    reset_tries(lock_fd)
    seconds = time.monotonic() - started
    append_log(cache_dir, f"compiled {entry.key} in {seconds:.1f} s ({len(data) / 2**20:.1f} MiB)")
    evict(cache_dir, int(max_bytes), keep=entry.lock)
    return 0


def _limit_cpu(seconds: int) -> None:
    """Past `seconds` of CPU time the kernel stops this process (SIGXCPU)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    limit = seconds if hard == resource.RLIM_INFINITY else min(seconds, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CPU, (max(1, limit), hard))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
