"""A workflow that interprets a script, for the replay-correctness property tests.

The input is a list of operations, each a JSON object `{"op": NAME, ...arguments}`.
The workflow performs them in order and returns a list with one observation per
operation (what the operation returned, as JSON). `tests/property/scripts.py` holds
the host-side model of each operation: its arguments, the events it records and how
its observation is checked.

Adding an operation is one function here, registered in `OPS`, and one `OpSpec` in
the model. This file must stay alone in its directory: the build cache key covers
every `.py` file beside a workflow.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import durable

#: A short sleep: blocks in place (the tests' `suspend_after` is longer).
SLEEP_SECONDS = 0.01
#: A long sleep: longer than the tests' `suspend_after`, so the task suspends.
LONG_SLEEP_SECONDS = 0.1

Op = dict[str, Any]


class ScriptRaised(Exception):
    """Raised by the `raise` operation: the task fails."""


@durable.step
def script_step(arg: int) -> dict[str, Any]:
    """A recorded step whose value is derived from its argument only."""
    return {"arg": arg, "square": arg * arg, "text": f"step-{arg}"}


@durable.step
def script_step_error(arg: int) -> None:
    """A recorded step that raises a builtin exception (rebuilt as a KeyError on replay)."""
    raise KeyError(f"missing-{arg}")


@durable.step
def script_step_random(arg: int) -> int:
    """A recorded step whose body draws from `random` (live inside a step)."""
    return arg + random.randrange(1000)


@durable.step
def script_step_print(arg: int) -> str:
    """A recorded step that prints: its output is logged once, with the step."""
    line = f"in step {arg}"
    print(line)
    return line


def _now(i: int, op: Op) -> Any:
    return time.time()


def _random(i: int, op: Op) -> Any:
    return random.random()


def _uuid(i: int, op: Op) -> Any:
    return str(uuid.uuid4())


def _print(i: int, op: Op) -> Any:
    line = f"line {i}: {op.get('text', '')}"
    print(line)
    return line


def _step(i: int, op: Op) -> Any:
    return script_step(int(op["arg"]))


def _step_error(i: int, op: Op) -> Any:
    try:
        script_step_error(int(op["arg"]))
    except KeyError as exc:
        return f"KeyError {exc}"
    return "no error"


def _step_random(i: int, op: Op) -> Any:
    return script_step_random(int(op["arg"]))


def _step_print(i: int, op: Op) -> Any:
    return script_step_print(int(op["arg"]))


def _sleep(i: int, op: Op) -> Any:
    time.sleep(SLEEP_SECONDS)
    return None


def _long_sleep(i: int, op: Op) -> Any:
    durable.sleep(LONG_SLEEP_SECONDS)
    return None


def _http(i: int, op: Op) -> Any:
    # The harness binds `url` (the session's counting server) before launching.
    response = durable.http.get(op["url"])
    return {"status": response.status_code, "body": response.text}


def _notify_wait(i: int, op: Op) -> Any:
    event = f"self-{i}"
    durable.notify(durable.info().id, event, {"op": i, "data": op["data"]})
    got = durable.wait(event)
    return None if got is None else got.data


def _wait(i: int, op: Op) -> Any:
    # The harness sends this notification when it launches the task.
    got = durable.wait(f"ext-{i}")
    return None if got is None else got.data


@durable.workflow
def child(arg: int) -> dict[str, Any]:
    """A tiny entry of this same binary, run as a child task by `spawn`."""
    return {"child": arg, "square": arg * arg}


def _spawn(i: int, op: Op) -> Any:
    return durable.spawn(child, int(op["arg"])).result()


def _sql_insert(i: int, op: Op) -> Any:
    task = durable.info().id
    with durable.transaction(f"insert {i}") as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS prop_rows (task INTEGER, op INTEGER, arg INTEGER)")
        tx.execute("INSERT INTO prop_rows VALUES (?, ?, ?)", [task, i, int(op["arg"])])
        return tx.execute("SELECT count(*) AS n FROM prop_rows WHERE task = ?", [task]).scalar()


def _status(i: int, op: Op) -> Any:
    durable.set_status(op["key"], op["value"])
    return None


def _patched(i: int, op: Op) -> Any:
    # One id per op: the first answer for an id holds for the run, and records once.
    return durable.patched(f"p{i}")


def _deprecate_patch(i: int, op: Op) -> Any:
    durable.deprecate_patch(f"p{i}")
    return None


def _raise(i: int, op: Op) -> Any:
    raise ScriptRaised(f"script raised at op {i}")


#: Operation name -> function(op index, op) returning its observation.
OPS: dict[str, Callable[[int, Op], Any]] = {
    "now": _now,
    "random": _random,
    "uuid": _uuid,
    "print": _print,
    "step": _step,
    "step_error": _step_error,
    "step_random": _step_random,
    "step_print": _step_print,
    "sleep": _sleep,
    "long_sleep": _long_sleep,
    "http": _http,
    "notify_wait": _notify_wait,
    "wait": _wait,
    "spawn": _spawn,
    "sql_insert": _sql_insert,
    "status": _status,
    "patched": _patched,
    "deprecate_patch": _deprecate_patch,
    "raise": _raise,
}


@durable.workflow
def main(script: list[Op]) -> list[Any]:
    """Perform each operation of `script`; return what each one observed."""
    observed: list[Any] = []
    for i, op in enumerate(script):
        observed.append(OPS[op["op"]](i, op))
    return observed
