"""Workflows for the coordination tests: timers, notifications, children, cancellation, limits."""

from __future__ import annotations

import time

import durable


@durable.step
def mark(label: str) -> str:
    return label


@durable.workflow
def nap(seconds: float) -> float:
    """Sleep (suspending when long), then report when it woke."""
    print("going to sleep")
    durable.sleep(seconds)
    print("woke up")
    return time.time()


@durable.workflow
def inbox(args: dict) -> list:
    """Receive `count` notifications (optionally only one event), with a timeout each."""
    got = []
    for _ in range(args.get("count", 1)):
        note = durable.wait(args.get("event"), timeout=args.get("timeout"))
        got.append(None if note is None else [note.event, note.data])
    return got


@durable.workflow
def relay(target: int) -> str:
    """Send a notification to another task."""
    durable.notify(target, "ping", {"from": durable.info().id})
    return "sent"


@durable.workflow
def child(n: int) -> int:
    if n < 0:
        raise ValueError("negative")
    durable.sleep(abs(n) / 100)
    return n * 2


@durable.workflow
def parent(args: dict) -> list:
    handles = [durable.spawn(child, n) for n in args["inputs"]]
    out = []
    for h in handles:
        try:
            out.append(h.result(timeout=args.get("timeout")))
        except durable.ChildFailed as exc:
            out.append(f"failed: {exc.kind}")
        except TimeoutError:
            out.append("timeout")
    return out


@durable.workflow
def spin(_: object) -> None:
    """A guest stuck in an endless loop, making no host calls."""
    mark("started")
    n = 0
    while True:
        n += 1


@durable.workflow
def hog(_: object) -> int:
    """Allocates without bound."""
    chunks = []
    while True:
        chunks.append(bytearray(16 * 1024 * 1024))


@durable.workflow
def chatty(n: int) -> int:
    """Records n clock readings."""
    for _ in range(n):
        time.time()
    return n


@durable.workflow
def cleanup(seconds: float) -> str:
    """Sleeps; on cancellation, runs a recorded cleanup step."""
    try:
        durable.sleep(seconds)
        return "finished"
    finally:
        mark("cleaned up")


@durable.workflow
def ticks(limit: int) -> int:
    """Steps and nothing else, until cancelled (or `limit`); then one cleanup step. A
    cancellation can only be delivered at a step: `step.enter-checked` delivers it."""
    n = 0
    try:
        while n < limit:
            n = mark(n + 1)
    finally:
        mark("cleaned up")
    return n


@durable.workflow
def parent_of_sleepers(n: int) -> list:
    handles = [durable.spawn(nap, 3600) for _ in range(n)]
    return [h.result() for h in handles]
