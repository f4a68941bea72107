"""Compiling a workflow once per machine, in a process that outlives whoever asked.

Compiling a componentize-py component takes 5 s on a quiet machine and 40 s on a
loaded one. Done inside a worker, the work was lost whenever the worker was killed:
a worker restarted every second never finished a compile and never ran a task.

So a compile runs in a child process (`durable.host._compiler_process`) in a session
of its own, so a signal to its requester's process group does not reach it, and a
SIGKILL of the requester leaves it running. It holds the entry's lock (see
`durable.host._cache_files`) from before it starts until it exits, and writes the
artifact atomically. Anyone else who needs that artifact (a thread, a restarted
worker, another worker, `durable launch`) finds the lock held and waits for the file
instead of compiling it again. If the compiler dies, the kernel drops its lock and
the next process to look starts another, at most `MAX_TRIES` times in a row; then a
failure marker stops the retries. A binary that is not a workflow component gets a
marker holding the error, so everyone waiting fails fast with the same message.

Rejected: compiling in the requesting process under the lock (a kill throws the work
away, which is the bug), and a compile server (one more process to supervise).

This module does not import wasmtime: a client registering a workflow can compile it
for the machine's workers without loading a compiler itself.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from durable._dist import version
from durable.errors import ComponentError
from durable.host._cache_files import LOG_NAME, is_locked, lock_entry, write_atomic

#: Part of every artifact key: bump when the engine settings (`engine_config`) change.
ENGINE_SETTINGS = "epoch=1"
#: Compiles started in a row without a result (each compiler died) before giving up.
MAX_TRIES = 3
#: How often a waiter looks whether the compile it waits for has ended.
POLL_SECONDS = 0.05

_SUFFIX = hashlib.sha256(f"{version('wasmtime')}|{ENGINE_SETTINGS}".encode()).hexdigest()[:12]
#: What a failure marker was decided by: the checks a component must pass.
_CHECKS = "checks " + hashlib.sha256((Path(__file__).parent / "world.py").read_bytes()).hexdigest()

#: The directory that holds the `durable` package, for the compiler's module path.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class CompileState(enum.Enum):
    """Where the compile of one binary stands on this machine."""

    READY = "ready"  # the artifact exists
    FAILED = "failed"  # a marker says why it cannot be compiled
    RUNNING = "running"  # a process holds the entry's lock: it is being compiled
    ABSENT = "absent"  # none of these: nobody has compiled it, or its compiler died


@dataclass(frozen=True, slots=True)
class CompiledEntry:
    """The files of one binary's compiled artifact in a cache directory."""

    cache_dir: Path  # the cache directory (`HostConfig.cache_dir`)
    key: str  # the binary's SHA-256, and what the artifact depends on besides it

    @classmethod
    def of(cls, cache_dir: Path, wasm_hash: str) -> CompiledEntry:
        """The entry of binary `wasm_hash` for this wasmtime version and settings."""
        # Absolute: the compiler runs in another directory.
        return cls(cache_dir=cache_dir.absolute(), key=f"{wasm_hash}-{_SUFFIX}")

    @property
    def directory(self) -> Path:
        """Where the entry's files are."""
        return self.cache_dir / "compiled"

    @property
    def artifact(self) -> Path:
        """The serialised compiled component."""
        return self.directory / f"{self.key}.cwasm"

    @property
    def marker(self) -> Path:
        """The failure marker: the error that compiling the binary gives."""
        return self.directory / f"{self.key}.error"

    @property
    def lock(self) -> Path:
        """The lock file; its content counts the compiles started since the last success."""
        return self.directory / f"{self.key}.lock"

    def failure(self) -> str | None:
        """The marker's message, if the binary is known not to compile."""
        try:
            text = self.marker.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        checks, _, message = text.partition("\n")
        # A marker from other checks (another durable version) says nothing about these.
        return message.strip() or None if checks == _CHECKS else None

    def mark_failed(self, message: str) -> None:
        """Record that the binary does not compile, and why (for everyone waiting).

        Raises:
            OSError: the marker cannot be written.
        """
        write_atomic(self.marker, f"{_CHECKS}\n{message}".encode())

    def state(self) -> CompileState:
        """Where the compile stands (a snapshot: it may change at once)."""
        if self.artifact.exists():
            return CompileState.READY
        if self.failure() is not None:
            return CompileState.FAILED
        if is_locked(self.lock):
            return CompileState.RUNNING
        return CompileState.ABSENT


def start_compile(
    entry: CompiledEntry, wasm_hash: str, wasm: bytes, *, max_bytes: int, cpu_seconds: float
) -> bool:
    """Start compiling `wasm` in a detached child unless it is compiling or done already.

    Returns without waiting: False when another process held the entry's lock (it
    compiles the binary, or is loading or deleting its artifact), True otherwise.

    Raises:
        ComponentError: `wasm` is not the binary `wasm_hash` names.
        OSError: the cache directory cannot be written.
    """
    if hashlib.sha256(wasm).hexdigest() != wasm_hash:
        raise ComponentError(f"the binary given for workflow {wasm_hash[:12]} has another hash")
    fd = lock_entry(entry.lock, wait=False)
    if fd is None:
        return False
    try:
        if entry.state() in (CompileState.READY, CompileState.FAILED):
            return True  # finished while we took the lock
        try:
            check_binary(wasm)
        except ComponentError as exc:  # no process needed to tell
            entry.mark_failed(str(exc))
            return True
        tries = _tries(fd)
        if tries >= MAX_TRIES:
            entry.mark_failed(
                f"compiling workflow {wasm_hash[:12]} failed: the compiler process died "
                f"{tries} times without finishing (killed, or out of memory?); see "
                f"{entry.directory / LOG_NAME}, and delete {entry.marker} to try again"
            )
            return True
        _set_tries(fd, tries + 1)
        _spawn(entry, wasm_hash, wasm, fd, max_bytes=max_bytes, cpu_seconds=cpu_seconds)
    finally:
        os.close(fd)  # the child holds the lock through its own copy of the descriptor
    return True


def check_binary(wasm: bytes) -> None:
    """The checks that need no compiler.

    Raises:
        ComponentError: not a WebAssembly binary, or a core module, not a component.
    """
    if wasm[:4] != b"\0asm":
        raise ComponentError("not a WebAssembly binary")
    if wasm[4:8] == b"\x01\x00\x00\x00":
        raise ComponentError(
            "this is a core WebAssembly module, not a component: build it with "
            "`durable build` (or componentize-py) for the durable:core workflow world"
        )


def wait_while_running(entry: CompiledEntry, deadline: float) -> None:
    """Wait while a process holds the entry's lock: until a compile has ended.

    Raises:
        ComponentError: it still runs at `deadline` (a `time.monotonic()` value).
    """
    while is_locked(entry.lock):
        if time.monotonic() >= deadline:
            raise ComponentError(
                f"workflow {entry.key[:12]} is still being compiled by another process; "
                f"gave up waiting (see {entry.directory / LOG_NAME})"
            )
        time.sleep(POLL_SECONDS)


def ensure_compiled(
    entry: CompiledEntry,
    wasm_hash: str,
    wasm: bytes | None,
    *,
    deadline: float,
    max_bytes: int,
    cpu_seconds: float,
) -> None:
    """Return once the entry's artifact exists, compiling `wasm` (or waiting for the
    process that compiles it) if need be. The artifact may be evicted at any time after.

    Raises:
        ComponentError: the binary is not a workflow component (now or by its marker),
            it is needed but `wasm` is None, or the compile did not end by `deadline`.
        OSError: the cache directory cannot be written.
    """
    while True:
        state = entry.state()
        if state is CompileState.READY:
            return
        if state is CompileState.FAILED:
            raise ComponentError(entry.failure() or f"workflow {wasm_hash[:12]} failed to compile")
        if state is CompileState.ABSENT:
            if wasm is None:
                raise ComponentError(
                    f"workflow {wasm_hash[:12]} is not compiled and no binary was given"
                )
            if not start_compile(
                entry, wasm_hash, wasm, max_bytes=max_bytes, cpu_seconds=cpu_seconds
            ):
                time.sleep(POLL_SECONDS / 5)  # a reader's lock, held for milliseconds
        wait_while_running(entry, deadline)


def _tries(fd: int) -> int:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode(errors="replace").strip()
    return int(text) if text.isdigit() else 0


def _set_tries(fd: int, tries: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(tries).encode(), 0)


def reset_tries(fd: int) -> None:
    """Forget the compiles that died: one has just succeeded."""
    os.ftruncate(fd, 0)


def _spawn(
    entry: CompiledEntry,
    wasm_hash: str,
    wasm: bytes,
    lock_fd: int,
    *,
    max_bytes: int,
    cpu_seconds: float,
) -> None:
    """Start the compiler, handing it the binary (in a file) and the locked descriptor."""
    fd, source = tempfile.mkstemp(dir=entry.directory, prefix=f".{entry.key}.", suffix=".src")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(wasm)
        env = dict(os.environ)
        # The compiler must run this very `durable`, whatever the caller's cwd was.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p
        )
        args = [entry.cache_dir, wasm_hash, source, lock_fd, max_bytes, int(cpu_seconds)]
        with open(entry.directory / LOG_NAME, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "durable.host._compiler_process", *map(str, args)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,  # an unexpected traceback lands in the log
                pass_fds=(lock_fd,),
                start_new_session=True,
                cwd=entry.directory,
                env=env,
            )
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(source)
        raise
    # Reap it when it ends (if we are still alive), so it leaves no zombie behind.
    threading.Thread(target=proc.wait, name="durable-compile-reaper", daemon=True).start()
