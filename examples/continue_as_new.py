"""An endless counter whose history stays small: `durable.continue_as_new`.

Every iteration is a recorded step, so a task that looped for ever would record
events for ever, and every resume would replay all of them. Instead, every `every`
iterations the workflow continues as a new run of the same task, carrying its state as
the new run's input: each run starts with an empty history, and the old runs are kept
(`durable show TASK` lists them).

    durable run examples/continue_as_new.py --input '{"stop": 25}'

Without `stop` it counts for ever (stop it with `durable cancel`).
"""

from __future__ import annotations

from typing import Any

import durable


@durable.step
def tick(count: int) -> int:
    print(f"tick {count + 1}", flush=True)
    return count + 1


@durable.workflow
def main(state: dict[str, Any] | None = None) -> int:
    state = dict(state or {})
    count, every, stop = state.get("count", 0), state.get("every", 10), state.get("stop")
    for _ in range(every):
        if stop is not None and count >= stop:
            return count
        count = tick(count)
    durable.continue_as_new({**state, "count": count})
