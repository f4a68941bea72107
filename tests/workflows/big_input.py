"""Workflows for the input-size tests: a large input, and a child spawned with one."""

from __future__ import annotations

import durable


@durable.workflow
def measure(data: dict) -> int:
    """Nap (blocking, so that the worker renews its lease meanwhile), then report the
    size of the input's blob."""
    durable.sleep(data.get("nap", 0))
    return len(data["blob"])


@durable.workflow
def spawn_big(size: int) -> str:
    """Spawn `measure` on a blob of `size` characters; say how that went."""
    try:
        child = durable.spawn(measure, {"blob": "x" * size})
    except durable.SpawnError as exc:
        return f"refused: {exc}"
    return f"child measured {child.result()}"
