"""`greeter.py` refactored: other function names and code, the same recorded behaviour.

Renaming a step's function would rename its event, so `name=` keeps the old names.
"""

from __future__ import annotations

import time

import durable

GREETING = "Hello, {}!"


def _label(user_id: int) -> str:
    return "user-" + str(user_id)


@durable.step(name="fetch_name")
def load_user_name(user_id: int) -> str:
    return _label(user_id)


@durable.step(name="greet")
def render_greeting(name: str) -> str:
    return GREETING.format(name)


@durable.workflow
def main(user_id: int) -> str:
    name = load_user_name(user_id)
    started = time.time()
    message = render_greeting(name)
    print(message, "after", started > 0)
    return message


@durable.workflow
def patient(user_id: int) -> str:
    name = load_user_name(user_id)
    go = durable.wait("go")
    assert go is not None
    return render_greeting(name)
