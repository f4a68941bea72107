"""Steps replayed through the replay buffer, with the host's position-derived answers
(random bytes, the monotonic clock, output) used between them."""

from __future__ import annotations

import os
import time

import durable


@durable.step
def add(a: int, b: int) -> int:
    return a + b


@durable.step
def other(a: int) -> int:
    return a


@durable.workflow
def mixed(n: int) -> list[str]:
    """n steps, each followed by a line with random bytes (derived from the position);
    a clock read in the middle (a run of steps ends there); then a sleep that suspends,
    so that the task ends after a replay of all of it. (The SDK's `time.monotonic` is
    the recorded wall clock: a reading per step would leave no run of steps.)"""
    lines = []
    total = 0
    for i in range(n):
        total = add(total, i)
        if i == n // 2:
            time.time()
        line = f"{i} {total} {os.urandom(4).hex()}"
        print(line)
        lines.append(line)
    durable.sleep(0.6)
    return lines


@durable.workflow
def diverge(how: str) -> int:
    """Ten steps, a suspension, ten more; after the suspension the replay does
    something else at step 6 (`how`), where the history holds a step."""
    total = 0
    replaying = durable.info().attempt > 1
    for i in range(20):
        if i == 10:
            durable.sleep(0.6)
        if replaying and i == 6:
            if how == "digest":
                total = add(total, 999)
            elif how == "label":
                total = other(total)
            elif how == "clock":
                time.time()
            elif how == "sleep":
                durable.sleep(0.01)
        total = add(total, i)
    return total


@durable.workflow
def cancel_late(n: int) -> int:
    """n steps, then a long sleep. Replayed with the cancellation requested, the task
    must learn of it only after the sleep (the end of its history), not at a step."""
    total = 0
    try:
        for i in range(n):
            total = add(total, i)
        durable.sleep(3600)
    except durable.Cancelled:
        add(total, -1)  # a cleanup step, recorded after the delivery
    return total


@durable.step(retry=durable.Retry(attempts=3, backoff=0.01))
def flaky(a: int) -> int:
    if durable.step_attempt() < 3:
        raise ValueError(f"attempt {durable.step_attempt()}")
    return a


@durable.workflow
def retried(n: int) -> int:
    """Steps, a step that fails twice and is retried, more steps, a suspension, then
    live steps: the replay goes through recorded failures and retry timers, and then
    records again."""
    total = 0
    for i in range(n):
        total = add(total, i)
    total = flaky(total)
    for i in range(n):
        total = add(total, i)
    durable.sleep(0.6)
    for i in range(n):
        total = add(total, i)
    return total
