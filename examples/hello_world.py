"""Hello, world: the smallest workflow.

    durable run examples/hello_world.py --input '"world"'
"""

import durable


@durable.workflow
def main(name: str) -> None:
    print(f"Hello, {name}!")
