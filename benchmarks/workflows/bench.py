"""Workflows the benchmarks run."""

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
def sleeper(seconds: float) -> float:
    """Sleep, then read the clock: the reading minus the deadline is the lateness."""
    durable.sleep(seconds)
    return time.time()
