"""Workflows the benchmarks run. Each entry is one kind of load."""

from __future__ import annotations

import time

import durable


@durable.step
def add(a: int, b: int) -> int:
    return a + b


@durable.workflow
def main(_: object) -> float:
    """Trivial: one clock read (its recorded value marks the first guest instruction)."""
    return time.time()


@durable.workflow
def steps(n: int) -> int:
    """n recorded steps."""
    total = 0
    for i in range(n):
        total = add(total, i)
    return total


@durable.workflow
def wake_at(deadline: float) -> float:
    """Sleep until `deadline` (Unix seconds), then read the clock: the lateness."""
    durable.sleep_until(deadline)
    return time.time()


@durable.workflow
def block(seconds: float) -> float:
    """One sleep: with a worker's `--suspend-after` above `seconds` it holds its
    instance and a thread (an active task); below, it suspends (a parked task)."""
    durable.sleep(seconds)
    return time.time()


@durable.workflow
def hold(seconds: float) -> int:
    """Stay active for about `seconds`: read the clock, sleep 0.1 s, again and again.

    Each short sleep commits what came before it, so every clock reading is in the
    database within milliseconds: the first one taken by a new owner after a crash
    says when the task was running again.
    """
    end = time.time() + seconds
    rounds = 0
    while time.time() < end:
        durable.sleep(0.1)
        rounds += 1
    return rounds


@durable.workflow
def wake_after(n: int) -> float:
    """n recorded steps, then a wait for a notification (the task suspends); the clock
    read right after the wake-up is the guest's next instruction."""
    total = 0
    for i in range(n):
        total = add(total, i)
    durable.wait("go")
    return time.time()
