"""Hello, world: the smallest workflow.

durable run examples/hello_world.py --input '"world"'
"""

from __future__ import annotations

import durable


@durable.workflow
def main(name: str) -> None:
    print(f"Hello, {name}!")
