"""Exercises recorded steps, clocks, randomness and entries for the host tests."""

from __future__ import annotations

import random
import time
import uuid

import durable


@durable.step
def add(a: int, b: int) -> int:
    return a + b


@durable.step
def explode(msg: str) -> None:
    raise KeyError(msg)


class Custom(Exception):
    pass


@durable.step
def custom() -> None:
    raise Custom("custom failure")


@durable.workflow
def main(n: int) -> dict:
    total = 0
    for i in range(n):
        total = add(total, i)
    try:
        explode("missing")
    except KeyError as exc:
        key_error = str(exc)
    try:
        custom()
    except durable.StepFailed as exc:
        custom_error = exc.kind
    info = durable.info()
    return {
        "total": total,
        "key_error": key_error,
        "custom_error": custom_error,
        "time": time.time(),
        "random": random.random(),
        "uuid": str(uuid.uuid4()),
        "task": [info.id, info.name, info.input, info.attempt],
    }


@durable.workflow
def loop(n: int) -> int:
    """n recorded steps, for throughput measurements."""
    total = 0
    for i in range(n):
        total = add(total, i)
    return total


@durable.workflow
def clock(n: int) -> float:
    """n recorded clock reads."""
    t = 0.0
    for _ in range(n):
        t = time.time()
    return t
