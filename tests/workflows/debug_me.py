"""A workflow to stop in with `durable debug`: a breakpoint after a step and a clock read."""

from __future__ import annotations

import os
import random
import time

import durable


@durable.step
def price(item: str) -> int:
    return len(item) * 100


@durable.workflow
def main(item: str) -> dict[str, object]:
    cents = price(item)
    started = time.time()
    lucky = random.randrange(1000)
    if os.environ.get("DEBUG_ME"):  # set in the debugging session only
        breakpoint()
    durable.set_status("cents", cents)
    return {"cents": cents, "started": started, "lucky": lucky}
