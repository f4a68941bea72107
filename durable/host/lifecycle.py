"""What is still inside wasmtime, so that a process can stop without aborting.

Why this module exists (issue 12): a worker that exited right after its last attempt
sometimes died of SIGABRT, with wasmtime printing "panic in a function that cannot
unwind" from a `tokio-rt-worker` thread. The cause: wasmtime's C API runs a guest's
stdout and stderr through a `tokio` task (its `CustomOutputStream` has no synchronous
WASI p2 stream, so wasmtime-wasi wraps it in an `AsyncWriteStream`, whose writer task
lives on wasmtime's own tokio runtime). Closing a store aborts that task, but the task
is dropped later, on a tokio thread, and its drop calls the stream's finalizer, which
wasmtime-py implements in Python. If the interpreter is finalizing at that moment, the
thread's attempt to take the GIL makes CPython call `pthread_exit`, whose forced
unwinding reaches Rust's non-unwinding thread entry point: Rust aborts the process.
The same holds for any Python callback that a thread runs inside wasmtime while the
interpreter exits: a host function or the epoch watchdog on a guest thread, or an
output write (a guest can write without flushing, and the tokio task writes later).

The rule that follows: never let the interpreter finalize while a thread is inside
wasmtime or may still call into Python from it. This module keeps the books for it:

- each `Guests` (one per `Runtime`) counts the threads running an attempt, from the
  store's creation to its `close()`;
- guest output is attached here, with a finalizer that is plain C (wasmtime's own
  `wasm_byte_vec_delete` on a token we own), so that no Python runs when wasmtime drops
  a stream on a tokio thread; the token turning empty says the stream is gone, and with
  it every later write callback;
- `quiesce(timeout)` waits until no thread is inside and every stream is gone. The CLI
  calls it before exiting (and exits with `os._exit` if it cannot), `Runtime.close`
  waits for its own, and an `atexit` hook covers embedders.

Rejected: keeping wasmtime-py's `stdout_custom` and waiting for its Python finalizer
(the finalizer's own return still needs the GIL, so a race remains); closing the
interpreter with `os._exit` always (it would skip flushing and `atexit` for everyone).

The streams themselves are made in `durable.host._wasmtime`: with wasmtime-py's private
C bindings when they are in use, else with its public `stdout_custom` (whose finalizer is
Python: the race above remains on that path).
"""

from __future__ import annotations

import atexit
import threading
import time
import weakref

import wasmtime

from durable.host import _wasmtime
from durable.host._wasmtime import OutputStream, Write

__all__ = ["EXIT_WAIT", "Guests", "Write", "quiesce"]

#: How long the `atexit` hook waits for guests and their output streams to go.
EXIT_WAIT = 2.0


class Guests:
    """One runtime's share of wasmtime: threads running attempts, and their output."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._inside = 0
        self._streams: list[OutputStream] = []
        _ALL.add(self)

    def enter(self) -> None:
        """Count one more thread inside wasmtime (from its store's creation)."""
        with self._changed:
            self._inside += 1

    def leave(self) -> None:
        """Count one thread less inside wasmtime (its store is closed)."""
        with self._changed:
            self._inside -= 1
            self._changed.notify_all()

    def attach_output(self, wasi: wasmtime.WasiConfig, *, stdout: Write, stderr: Write) -> None:
        """Send the guest's stdout and stderr writes to `stdout` and `stderr`.

        They are called on wasmtime's threads, one write at a time per stream, and
        must not block for long; an exception fails the guest's write.
        """
        self._sweep()
        streams = _wasmtime.attach_output(wasi, stdout=stdout, stderr=stderr)
        with self._changed:
            self._streams.extend(streams)

    def idle(self) -> bool:
        """Whether no thread is inside and every output stream is gone."""
        self._sweep()
        with self._changed:
            return self._inside == 0 and not self._streams

    def wait_idle(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds for `idle()`; return it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._changed.wait_for(lambda: self._inside == 0, timeout)
        # Streams go on wasmtime's threads, without telling Python: poll.
        pause = 0.001
        while not self.idle():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)
        return True

    def _sweep(self) -> None:
        """Forget the streams wasmtime has released."""
        with self._changed:
            self._streams = [stream for stream in self._streams if not stream.released]


_ALL: weakref.WeakSet[Guests] = weakref.WeakSet()


def quiesce(timeout: float) -> bool:
    """Wait at most `timeout` seconds until nothing of any runtime is inside wasmtime.

    True when the interpreter may finalize safely; False when a thread is still inside
    (a guest in a long host call) or an output stream is still alive: then only
    `os._exit` ends the process without risking an abort.
    """
    deadline = time.monotonic() + timeout
    return all(g.wait_idle(max(0.0, deadline - time.monotonic())) for g in list(_ALL))


atexit.register(quiesce, EXIT_WAIT)
