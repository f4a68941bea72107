"""Workflows that run into the host's limits, or misbehave while they stop.

Used by the limit tests and by the worker stress test, with `coordination.py`'s `spin`
(a CPU loop), `hog` (allocation without bound) and `chatty` (many events).
"""

from __future__ import annotations

import sys
import time

import durable
from durable import http


@durable.step
def mark(label: str) -> str:
    return label


@durable.step
def blob(size: int) -> str:
    return "x" * size


@durable.workflow
def fine(n: int) -> int:
    """Ends at once: proof that the worker still runs tasks."""
    return n + 1


@durable.workflow
def raises(_: object) -> None:
    print("about to raise")
    raise ValueError("raised on purpose")


@durable.workflow
def huge(size: int) -> int:
    """Allocates one object of `size` bytes at once."""
    return len(bytes(size))


@durable.workflow
def echo_size(data: str) -> int:
    """Receives its input, however large."""
    return len(data)


@durable.workflow
def deep(depth: int) -> int:
    """Recursion through C (`map` calls back into Python), so each level uses wasm stack."""
    sys.setrecursionlimit(depth + 100)

    def down(n: int) -> int:
        return 0 if n == 0 else 1 + next(map(down, [n - 1]))

    return down(depth)


@durable.workflow
def big_result(size: int) -> int:
    """A step whose result is `size` bytes."""
    return len(blob(size))


@durable.workflow
def shout_and_hog(_: object) -> int:
    """Writes to stdout and stderr while it allocates without bound."""
    chunks = []
    while True:
        print("o" * 1000)
        print("e" * 1000, file=sys.stderr)
        chunks.append(bytearray(4 * 1024 * 1024))


@durable.workflow
def shout(_: object) -> None:
    """Writes to stdout without end, until it is stopped."""
    mark("started")
    while True:
        print("still here " * 50)


@durable.workflow
def ticker(n: int) -> str:
    """Prints a line, then sleeps a little, `n` times."""
    for i in range(n):
        print(f"tick {i}", flush=True)
        time.sleep(0.05)
    return "done"


@durable.workflow
def stall(url: str) -> int:
    """Waits on an HTTP request that gets no answer: a long host call."""
    return http.get(url, timeout=120).status
