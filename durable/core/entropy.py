"""Randomness derived from a task's seed, so replays see the same bytes without
recording them.

CPython asks for about 2.5 KB of random bytes when it starts; recording those would
bloat every history. Instead, the bytes for a request are a pure function of the task's
seed, the event position at which the request happens, and how many requests came
before it at that position. Keying by position (not by a running total) keeps the
stream aligned on replay even when a recorded step's body, which made requests on the
first run, is skipped.
"""

from __future__ import annotations

import hashlib


def derive_bytes(seed: int, position: int, counter: int, length: int) -> bytes:
    """Return `length` pseudo-random bytes for request `counter` at event `position`."""
    out = bytearray()
    block = 0
    key = seed.to_bytes(8, "big", signed=False)
    while len(out) < length:
        h = hashlib.blake2b(
            position.to_bytes(8, "big") + counter.to_bytes(8, "big") + block.to_bytes(8, "big"),
            key=key,
            digest_size=64,
        )
        out += h.digest()
        block += 1
    return bytes(out[:length])
