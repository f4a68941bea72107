"""`durable.continue_as_new`: bound the history of a workflow that loops for ever."""

from __future__ import annotations

import json
from typing import Any, NoReturn

from componentize_py_types import Err
from wit_world.imports import continuation as _continuation

from durable import _cancel


def continue_as_new(input: Any = None) -> NoReturn:
    """End this run and start the task again, on `input`, with a fresh history.

        @durable.workflow
        def counter(state):
            for _ in range(100):
                state["n"] += 1
                durable.sleep(60)
            durable.continue_as_new(state)

    Like a return, it ends the run: nothing after it runs. The task keeps its id; its
    next run calls the same entry with `input` (anything JSON can encode) and starts
    with an empty history, so a loop that never ends does not replay ever more events.
    The old run's history is kept, as run n of the task (`durable show` lists runs).
    Effects recorded in the old run are not repeated.

    Raises:
        TypeError: `input` cannot be encoded as JSON.
        ValueError: refused by the host: inside a step or a SQL transaction, or the
            input is over the payload limit.
    """
    try:
        text = json.dumps(input, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"continue_as_new input is not JSON-serialisable: {exc}") from None
    _cancel.check()
    try:
        _continuation.continue_as_new(text)
    except Err as exc:
        raise ValueError(str(exc.value)) from None
    raise RuntimeError("the host did not end the run")  # pragma: no cover - a host bug
