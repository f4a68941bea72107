"""`greeter.py` with a behaviour change: an audit step between the first two events."""

from __future__ import annotations

import time

import durable


@durable.step
def fetch_name(user_id: int) -> str:
    return f"user-{user_id}"


@durable.step
def audit(name: str) -> bool:
    return name.startswith("user-")


@durable.step
def greet(name: str) -> str:
    return f"Hello, {name}!"


@durable.workflow
def main(user_id: int) -> str:
    name = fetch_name(user_id)
    audit(name)
    started = time.time()
    message = greet(name)
    print(message, "after", started > 0)
    return message


@durable.workflow
def patient(user_id: int) -> str:
    name = fetch_name(user_id)
    audit(name)
    durable.wait("go")
    return greet(name)
