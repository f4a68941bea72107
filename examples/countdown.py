"""Count down from 10, one line a second; kill it at any point and resume it.

Each line shows `time.time()` and a random number. Both are recorded (the clock) or
derived from the task's seed (randomness), so after `kill -9` and `durable worker`, the
lines printed before the kill are byte-identical, and none is printed twice.

    durable run examples/countdown.py
"""

from __future__ import annotations

import random
import time

import durable


@durable.workflow
def main(start: int | None = None) -> str:
    n = start or 10
    for i in range(n, 0, -1):
        print(f"{i:2d} at {time.time():.6f} random {random.random():.12f}", flush=True)
        time.sleep(1)
    return "liftoff"
