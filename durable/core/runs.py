"""Runs of a task: `durable.continue_as_new(input)` ends run n and starts run n + 1.

A run starts with an empty history, so everything the engine derives from an event
position (entropy, the idempotency keys of spawned children and of notifications sent)
would repeat run 1's values in run 2, and collide with run 1's effects: a spawn in run 2
at position 3 would get back run 1's child. These functions put the run into them. Run
1 derives exactly what a task did before runs existed, so histories recorded then
replay unchanged.
"""

from __future__ import annotations

import hashlib

__all__ = ["effect_key", "run_seed"]

_SEED_BITS = (1 << 63) - 1


def run_seed(seed: int, run: int) -> int:
    """The entropy seed of `run` of a task whose seed is `seed` (run 1: the seed itself).

    Non-zero and 63 bits, like the seeds stores hand out.
    """
    if run <= 1:
        return seed
    digest = hashlib.blake2b(
        run.to_bytes(8, "big"), key=seed.to_bytes(8, "big", signed=False), digest_size=8
    ).digest()
    return (int.from_bytes(digest, "big") & _SEED_BITS) or 1


def effect_key(kind: str, task_id: int, run: int, position: int, call: int) -> str:
    """The idempotency key of an effect that must happen once per call site: its kind,
    the task (and its run, after the first), the event position and the calls so far
    at that position."""
    where = str(task_id) if run <= 1 else f"{task_id}.{run}"
    return f"{kind}:{where}:{position}:{call}"
