"""Fan out to 10 child tasks and sum their results.

    durable run examples/fan_out.py --input 10

Each child is a task of its own (same binary, entry `square`). Their ids are recorded,
so a crash of the parent never spawns a child twice; while it waits, the parent
suspends.
"""

from __future__ import annotations

import durable


@durable.workflow
def square(n: int) -> int:
    return n * n


@durable.workflow
def main(count: int | None = None) -> int:
    children = [durable.spawn(square, i) for i in range(1, (count or 10) + 1)]
    total = sum(child.result() for child in children)
    print(f"sum of squares: {total}")
    return total
