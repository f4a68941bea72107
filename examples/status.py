"""Publish what a task is doing while it runs: its status values.

`durable.set_status(key, value)` sets a value (any JSON) that anyone outside reads as
soon as the call returns, while the task runs on: `durable status TASK` (or
`--follow`), `durable show TASK`, `Client.status(task_id)`. Each call is recorded, so a
crash and replay neither loses a value nor sets it twice.

    durable run examples/status.py --input 5
    durable status 1                 # the latest value of each key
    durable status 1 progress        # one key's value, as JSON
"""

from __future__ import annotations

import durable


@durable.step
def process(item: int) -> int:
    return item * item  # stands for real work: an HTTP call, a computation ...


@durable.workflow
def main(count: int = 5) -> int:
    durable.set_status("phase", "processing")
    total = 0
    for i in range(count):
        total += process(i)
        durable.set_status("progress", {"done": i + 1, "of": count})
    durable.set_status("phase", "done")
    return total
