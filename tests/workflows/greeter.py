"""A small workflow whose history the replay tests and golden histories check.

`greeter_refactored.py` is the same behaviour written differently; `greeter_changed.py`
does one more step in the middle. Golden histories under tests/fixtures/histories/ were
recorded from these files: keep their recorded behaviour as it is.
"""

from __future__ import annotations

import time

import durable


@durable.step
def fetch_name(user_id: int) -> str:
    return f"user-{user_id}"


@durable.step
def greet(name: str) -> str:
    return f"Hello, {name}!"


@durable.workflow
def main(user_id: int) -> str:
    name = fetch_name(user_id)
    started = time.time()
    message = greet(name)
    print(message, "after", started > 0)
    return message


@durable.workflow
def patient(user_id: int) -> str:
    """Stays in flight, waiting for a `go` notification, between the two steps."""
    name = fetch_name(user_id)
    durable.wait("go")
    return greet(name)
