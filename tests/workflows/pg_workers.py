"""Workflows for the many-worker Postgres tests: short jobs, sleepers, spinners, stale owners."""

from __future__ import annotations

import time

import durable


@durable.step
def double(x: int) -> int:
    return 2 * x


@durable.step
def first() -> str:
    return "first"


@durable.step
def extra() -> str:
    return "extra"


@durable.workflow
def main(i: int) -> int:
    """Trivial but not instant: a step, a short blocking sleep, another step."""
    a = double(i)
    time.sleep(0.3)
    return double(a)


@durable.workflow
def stale(seconds: float) -> str:
    """A step, a blocking sleep, then a path that depends on the attempt.

    The first attempt records one more step before it returns; any later attempt
    returns at once. So if a first attempt that lost its lease could still write, its
    extra step would land at an index the new owner never used, and show.
    """
    first()
    time.sleep(seconds)
    attempt = durable.info().attempt
    if attempt == 1:
        print("attempt 1 carries on")
        extra()
    print(f"finished by attempt {attempt}")
    return f"attempt {attempt}"


@durable.workflow
def nap(seconds: float) -> str:
    """A step, a blocking sleep of `seconds`, a step."""
    first()
    time.sleep(seconds)
    extra()
    return "rested"


@durable.workflow
def spin(n: int) -> int:
    """A CPU loop with no host calls at all: only the watchdog can stop it."""
    first()
    total = 0
    for k in range(n):
        total += k
    return total
